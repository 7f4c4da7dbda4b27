/* MMX through the compiler's intrinsics (mmintrin.h, and the SSE ones that
 * work on __m64: xmmintrin.h), and the x87 interplay around _mm_empty.
 *
 * On x86-64 GCC implements the MMX intrinsics with SSE registers whenever
 * SSE2 is enabled; the pragma below turns SSE2 off for this file so that
 * they compile to real MMX instructions (paddusb mm0, ...).  The program
 * uses no floating point but x87 long double.  It prints checksums of
 * saturating, multiplying, packing, shifting and shuffling loops over
 * pseudo-random data, then x87 results after emms, and what x87 code sees
 * when an MMX register was written and emms was forgotten (the stack is
 * full: the load overflows and yields the indefinite NaN). */
#pragma GCC target("no-sse2")
#include <mmintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xmmintrin.h>

#define N 4096

static uint64_t seed = 0x243F6A8885A308D3u;

static uint64_t next(void)
{
    seed = seed * 6364136223846793005u + 1442695040888963407u;
    return seed ^ (seed >> 29);
}

static __m64 a[N], b[N], out[N];

static uint64_t checksum(const __m64 *v, int n)
{
    uint64_t h = 1469598103934665603u;
    for (int i = 0; i < n; i++) {
        uint64_t x;
        memcpy(&x, &v[i], 8);
        h = (h ^ x) * 1099511628211u;
    }
    return h;
}

typedef __m64 (*binop)(__m64, __m64);

#define OP(name, expr) \
    static __m64 name(__m64 x, __m64 y) { return expr; }

OP(adds_pu8, _mm_adds_pu8(x, y))
OP(adds_pi16, _mm_adds_pi16(x, y))
OP(subs_pu16, _mm_subs_pu16(x, y))
OP(subs_pi8, _mm_subs_pi8(x, y))
OP(add_pi32, _mm_add_pi32(x, y))
OP(madd_pi16, _mm_madd_pi16(x, y))
OP(mulhi_pi16, _mm_mulhi_pi16(x, y))
OP(mullo_pi16, _mm_mullo_pi16(x, y))
OP(mulhi_pu16, _mm_mulhi_pu16(x, y))
OP(packs_pi16, _mm_packs_pi16(x, y))
OP(packs_pu16, _mm_packs_pu16(x, y))
OP(packs_pi32, _mm_packs_pi32(x, y))
OP(unpacklo_pi8, _mm_unpacklo_pi8(x, y))
OP(unpackhi_pi16, _mm_unpackhi_pi16(x, y))
OP(cmpgt_pi16, _mm_cmpgt_pi16(x, y))
OP(cmpeq_pi8, _mm_cmpeq_pi8(_mm_and_si64(x, _mm_set1_pi8(3)), _mm_and_si64(y, _mm_set1_pi8(3))))
OP(andnot_xor, _mm_xor_si64(_mm_andnot_si64(x, y), _mm_or_si64(x, _mm_set1_pi16(0x0F0))))
OP(sll_pi16, _mm_sll_pi16(x, _mm_cvtsi32_si64(_mm_cvtsi64_si32(y) & 31)))
OP(srl_pi32, _mm_srl_pi32(x, _mm_cvtsi32_si64(_mm_cvtsi64_si32(y) & 63)))
OP(sra_pi16, _mm_sra_pi16(x, _mm_cvtsi32_si64(_mm_cvtsi64_si32(y) & 31)))
OP(shifts_imm, _mm_add_pi8(_mm_slli_si64(x, 7), _mm_add_pi8(_mm_srli_pi16(y, 3), _mm_srai_pi32(x, 9))))
OP(avg_pu8, _mm_avg_pu8(x, y))
OP(sad_pu8, _mm_sad_pu8(x, y))
OP(max_pi16, _mm_max_pi16(x, y))
OP(min_pu8, _mm_min_pu8(x, y))
OP(shuffle_pi16, _mm_add_pi16(_mm_shuffle_pi16(x, 0x1B), _mm_shuffle_pi16(y, 0xB1)))
OP(insert_extract, _mm_insert_pi16(x, _mm_extract_pi16(y, 2) + _mm_movemask_pi8(x), 1))

static const struct {
    const char *name;
    binop fn;
} ops[] = {
    {"adds_pu8", adds_pu8}, {"adds_pi16", adds_pi16}, {"subs_pu16", subs_pu16},
    {"subs_pi8", subs_pi8}, {"add_pi32", add_pi32}, {"madd_pi16", madd_pi16},
    {"mulhi_pi16", mulhi_pi16}, {"mullo_pi16", mullo_pi16}, {"mulhi_pu16", mulhi_pu16},
    {"packs_pi16", packs_pi16}, {"packs_pu16", packs_pu16}, {"packs_pi32", packs_pi32},
    {"unpacklo_pi8", unpacklo_pi8}, {"unpackhi_pi16", unpackhi_pi16},
    {"cmpgt_pi16", cmpgt_pi16}, {"cmpeq_pi8", cmpeq_pi8}, {"andnot_xor", andnot_xor},
    {"sll_pi16", sll_pi16}, {"srl_pi32", srl_pi32}, {"sra_pi16", sra_pi16},
    {"shifts_imm", shifts_imm}, {"avg_pu8", avg_pu8}, {"sad_pu8", sad_pu8},
    {"max_pi16", max_pi16}, {"min_pu8", min_pu8}, {"shuffle_pi16", shuffle_pi16},
    {"insert_extract", insert_extract},
};

/* A saturating brightness loop as image code writes it: in place, then emms. */
static void brighten(uint8_t *pix, int n, uint8_t by)
{
    __m64 k = _mm_set1_pi8((char)by);
    for (int i = 0; i + 8 <= n; i += 8) {
        __m64 p;
        memcpy(&p, pix + i, 8);
        p = _mm_adds_pu8(p, k);
        memcpy(pix + i, &p, 8);
    }
    _mm_empty();
}

/* maskmovq: bytes whose mask byte has its top bit set are stored.  (The
 * builtin: xmmintrin.h's _mm_maskmove_si64 takes an SSE2 path whenever the
 * command line enables SSE2, whatever the pragma says.) */
static void masked(uint8_t *dst, __m64 data, __m64 mask)
{
    __builtin_ia32_maskmovq((__v8qi)data, (__v8qi)mask, (char *)dst);
    _mm_empty();
}

int main(void)
{
    for (int i = 0; i < N; i++) {
        uint64_t x = next(), y = next();
        if (i % 7 == 0)
            x |= 0x8080808080808080u;      /* hit the saturation edges often */
        if (i % 5 == 0)
            y = ~x;
        memcpy(&a[i], &x, 8);
        memcpy(&b[i], &y, 8);
    }
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        for (int i = 0; i < N; i++)
            out[i] = ops[k].fn(a[i], b[i]);
        _mm_empty();
        printf("%-15s %016llx\n", ops[k].name, (unsigned long long)checksum(out, N));
    }

    static uint8_t pix[1024];
    for (int i = 0; i < 1024; i++)
        pix[i] = (uint8_t)(i * 37);
    brighten(pix, 1024, 100);
    printf("brighten        %016llx\n", (unsigned long long)checksum((const __m64 *)pix, 128));

    uint8_t buf[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    masked(buf, _mm_set_pi8(-1, -2, -3, -4, -5, -6, -7, -8), _mm_set_pi8(-128, 0, 127, -1, 0, 0, -2, 64));
    printf("maskmovq       ");
    for (int i = 0; i < 8; i++)
        printf(" %02x", buf[i]);
    printf("\n");

    /* x87 after emms: the whole stack is free again */
    volatile long double x = 1.0L;
    for (int i = 0; i < 20; i++)
        x = x * 1.5L + 0.25L;
    printf("x87 after emms  %.6Lf\n", (long double)x);

    /* an MMX write without emms: every tag valid, TOP 0, so the next x87
     * load overflows the stack and yields the indefinite value */
    long double y;
    __m64 m = _mm_set_pi32(0x12345678, 0x9abcdef0);
    __asm__ volatile("movq %1, %%mm3\n\t"
                     "fld1\n\t"
                     "fstpt %0\n\t"
                     "emms"
                     : "=m"(y) : "m"(m) : "mm3", "st");
    unsigned char raw[10];
    memcpy(raw, &y, 10);
    printf("fld1 without emms:");
    for (int i = 9; i >= 0; i--)
        printf(" %02x", raw[i]);
    printf("\n");
    return 0;
}
