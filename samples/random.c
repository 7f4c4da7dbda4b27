/* RDRAND and RDSEED as a program sees them: the CPUID bits that advertise
 * them, the flags they leave (CF=1 and OF, SF, ZF, AF, PF cleared, from a
 * state with every flag set), what they do to the rest of a 16-bit and a
 * 32-bit destination, and that the values are random (64 draws of 64 bits,
 * all different).  A real RDSEED may answer CF=0 when its source is
 * drained; the program retries as software must.  Everything printed is
 * deterministic, so the output is compared byte for byte with a native run. */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>

#define ARITH 0x8D5UL   /* OF SF ZF AF PF CF */

/* One draw into a register preset to `before` with every arithmetic flag
 * set; returns the flags after it.  MOD is GCC's operand modifier for the
 * register's width (w: 16 bits, k: 32, q: 64). */
#define DRAW(INSN, MOD)                                                     \
    static unsigned long draw_##INSN##_##MOD(uint64_t before, uint64_t *out) \
    {                                                                       \
        uint64_t r = before;                                                \
        unsigned long flags;                                                \
        __asm__ volatile("pushfq\n\t"                                       \
                         "orq $0x8d5, (%%rsp)\n\t"                          \
                         "popfq\n\t"                                        \
                         #INSN " %" #MOD "0\n\t"                            \
                         "pushfq\n\t"                                       \
                         "popq %1"                                          \
                         : "+r"(r), "=r"(flags) : : "cc");                  \
        *out = r;                                                           \
        return flags & ARITH;                                               \
    }

DRAW(rdrand, w)
DRAW(rdrand, k)
DRAW(rdrand, q)
DRAW(rdseed, w)
DRAW(rdseed, k)
DRAW(rdseed, q)

typedef unsigned long (*drawfn)(uint64_t, uint64_t *);

/* Draw until the CPU delivers (CF=1), at most 100000 tries. */
static int draw(drawfn fn, uint64_t before, uint64_t *out, unsigned long *flags)
{
    for (int i = 0; i < 100000; i++) {
        *flags = fn(before, out);
        if (*flags & 1)
            return 1;
    }
    return 0;
}

static void check(const char *name, drawfn fn, int bits)
{
    const uint64_t before = 0x0123456789ABCDEFULL;
    uint64_t v;
    unsigned long flags;
    if (!draw(fn, before, &v, &flags)) {
        printf("%-12s never delivered\n", name);
        return;
    }
    const char *rest = "";
    if (bits == 16)
        rest = (v >> 16) == (before >> 16) ? ", bits 16-63 kept" : ", bits 16-63 CHANGED";
    else if (bits == 32)
        rest = (v >> 32) == 0 ? ", bits 32-63 zeroed" : ", bits 32-63 NOT zeroed";
    printf("%-12s delivered, flags after %#05lx%s\n", name, flags, rest);
}

int main(void)
{
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        c = 0;
    printf("cpuid.1:ecx.rdrand %u\n", (c >> 30) & 1);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        b = 0;
    printf("cpuid.7:ebx.rdseed %u\n", (b >> 18) & 1);

    check("rdrand r16", draw_rdrand_w, 16);
    check("rdrand r32", draw_rdrand_k, 32);
    check("rdrand r64", draw_rdrand_q, 64);
    check("rdseed r16", draw_rdseed_w, 16);
    check("rdseed r32", draw_rdseed_k, 32);
    check("rdseed r64", draw_rdseed_q, 64);

    uint64_t seen[64];
    int distinct = 1;
    for (int i = 0; i < 64; i++) {
        unsigned long flags;
        if (!draw(i & 1 ? draw_rdseed_q : draw_rdrand_q, 0, &seen[i], &flags))
            distinct = 0;
        for (int j = 0; j < i; j++)
            if (seen[j] == seen[i])
                distinct = 0;
    }
    printf("64 draws of 64 bits: %s\n", distinct ? "all different" : "REPEATED");
    return 0;
}
