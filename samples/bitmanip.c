/* BMI1, BMI2 and ADX in a program: the pragma below lets GCC use them in
 * this file, as -march=haswell or x86-64-v3 would (andn, bextr, blsi,
 * bzhi, pdep, pext, shrx, lzcnt, tzcnt, and more where it likes); mulx,
 * adcx and adox, which GCC does not emit for their intrinsics, are
 * written out in inline assembly as GMP's and OpenSSL's multiplications
 * are.  The program prints checksums of Morton codes (pdep/pext), bit-field
 * extraction, variable shifts and rotates, and of 512-bit products made
 * with mulx and two interleaved carry chains, then 3^300 in hex, computed
 * the same way.  ADX is in no psABI level: as GMP and OpenSSL do, the
 * program asks CPUID (leaf 7, EBX bit 19) and multiplies with plain adds
 * where the CPU lacks it, with the same results. */
#pragma GCC target("bmi,bmi2,adx,lzcnt")
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>

typedef unsigned long long u64;

static u64 seed = 0x9E3779B97F4A7C15u;

static u64 next(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* r[0..16) = a[0..8) * b[0..8), schoolbook.  GCC compiles _mulx_u64 and
 * _addcarryx_u64 to mul and adc, so each row is written out as the
 * hand-written multiplications of GMP and OpenSSL are: mulx, and the
 * adcx (carry flag) and adox (overflow flag) chains interleaved. */
static void mul(u64 *r, const u64 *a, const u64 *b)
{
    for (int i = 0; i < 16; i++)
        r[i] = 0;
    for (int i = 0; i < 8; i++) {
        unsigned char c, o;
        __asm__ volatile(
            "xorl %%eax, %%eax\n\t"          /* CF = OF = 0 */
            "xorl %%r11d, %%r11d\n\t"
            ".irp j,0,1,2,3,4,5,6,7\n\t"
            "mulx 8*\\j(%[a]), %%r8, %%r9\n\t"
            "movq 8*\\j(%[r]), %%r10\n\t"
            "adcx %%r8, %%r10\n\t"
            "adox %%r11, %%r10\n\t"
            "movq %%r10, 8*\\j(%[r])\n\t"
            "movq %%r9, %%r11\n\t"
            ".endr\n\t"
            "movq 64(%[r]), %%r10\n\t"
            "adcx %%r11, %%r10\n\t"
            "movl $0, %%r8d\n\t"
            "adox %%r8, %%r10\n\t"
            "movq %%r10, 64(%[r])\n\t"
            "setc %[c]\n\t"
            "seto %[o]\n\t"
            : [c] "=r"(c), [o] "=r"(o)
            : [a] "r"(a), [r] "r"(r + i), "d"(b[i])
            : "rax", "r8", "r9", "r10", "r11", "cc", "memory");
        if (i < 7)
            r[i + 9] += (u64)c + o;
    }
}

/* the same product without ADX: 128-bit sums */
static void mul_plain(u64 *r, const u64 *a, const u64 *b)
{
    for (int i = 0; i < 16; i++)
        r[i] = 0;
    for (int i = 0; i < 8; i++) {
        unsigned __int128 carry = 0;
        for (int j = 0; j < 8; j++) {
            unsigned __int128 t = (unsigned __int128)a[j] * b[i] + r[i + j] + carry;
            r[i + j] = (u64)t;
            carry = t >> 64;
        }
        r[i + 8] = (u64)carry;
    }
}

static int have_adx(void)
{
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (ebx >> 19 & 1);
}

static u64 __attribute__((noinline)) shifts(u64 x, unsigned s)
{
    long long sx = (long long)x;
    return (x << (s & 63)) ^ (x >> ((s * 7) & 63)) ^ (u64)(sx >> ((s * 3) & 63))
           ^ ((x >> 11) | (x << 53)) ^ (~x & (x >> 3));
}

int main(void)
{
    void (*mul_fn)(u64 *, const u64 *, const u64 *) = have_adx() ? mul : mul_plain;
    u64 morton = 0, fields = 0, shifted = 0, lowbits = 0;
    for (u64 i = 0; i < 200000; i++) {
        u64 v = next();
        u64 x = v & 0xFFFFFFFF, y = v >> 32;
        u64 m = _pdep_u64(x, 0x5555555555555555u) | _pdep_u64(y, 0xAAAAAAAAAAAAAAAAu);
        morton = morton * 31 + m;
        morton ^= _pext_u64(m, 0x5555555555555555u) ^ (_pext_u64(v, next()) << 1);
        fields += _bextr_u64(v, (unsigned)(i % 70), (unsigned)((i * 13) % 70));
        fields ^= _bzhi_u64(v, (unsigned)(i % 130)) + _blsr_u64(v) + _blsi_u64(v)
                  + _blsmsk_u64(v) + _andn_u64(v, fields);
        shifted = shifted * 3 + shifts(v, (unsigned)i);
        lowbits += _tzcnt_u64(v) + _lzcnt_u64(v >> (i & 63));
    }
    printf("morton %016llx\nfields %016llx\nshifts %016llx\nlowbits %llu\n",
           morton, fields, shifted, lowbits);

    u64 a[8], b[8], r[16], sum = 0;
    for (int k = 0; k < 20000; k++) {
        for (int i = 0; i < 8; i++) {
            a[i] = next();
            b[i] = k & 1 ? ~0ull - (next() & 0xFF) : next();
        }
        mul_fn(r, a, b);
        for (int i = 0; i < 16; i++)
            sum = (sum ^ r[i]) * 0x100000001B3u;
    }
    printf("products %016llx\n", sum);

    /* 3^300 = 3^(5*60): repeated multiplication by 243 in 8 limbs */
    u64 p[8] = {1}, three[8] = {243}, t[16];
    for (int k = 0; k < 60; k++) {
        mul_fn(t, p, three);
        for (int i = 0; i < 8; i++)
            p[i] = t[i];
    }
    printf("3^300 = 0x");
    int started = 0;
    for (int i = 7; i >= 0; i--) {
        if (started)
            printf("%016llx", p[i]);
        else if (p[i]) {
            printf("%llx", p[i]);
            started = 1;
        }
    }
    printf("\n");
    return 0;
}
