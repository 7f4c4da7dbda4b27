/* gmp: big-number arithmetic with libgmp: N! (mpz_fac_ui: products of
 * huge numbers, FFT multiplication), its conversion to decimal (mpz_get_str:
 * divide-and-conquer division), and digits of pi from the benchmarks-game
 * spigot (pidigits: many small mpz_mul_ui/mpz_add/mpz_tdiv_q on growing
 * numbers); prints sizes, digit sums, and a CRC-32 (data.h's) of the
 * decimal strings.  Static libgmp (Debian's is a "fat" build choosing its
 * assembly from cpuid; the results do not depend on which).
 *
 *   gmp [SCALE]        SCALE (default 1.0) multiplies N and the number of
 *                      pi digits. */
#include <gmp.h>

#include "data.h"

#ifndef FACT_N
#define FACT_N 800000
#endif
#ifndef PI_DIGITS
#define PI_DIGITS 7500
#endif

/* pidigits (the Computer Language Benchmarks Game's algorithm) */
static mpz_t tmp1, tmp2, acc, den, num;

static unsigned extract_digit(unsigned nth)
{
    mpz_mul_ui(tmp1, num, nth);
    mpz_add(tmp2, tmp1, acc);
    mpz_tdiv_q(tmp1, tmp2, den);
    return (unsigned)mpz_get_ui(tmp1);
}

static void eliminate_digit(unsigned d)
{
    mpz_submul_ui(acc, den, d);
    mpz_mul_ui(acc, acc, 10);
    mpz_mul_ui(num, num, 10);
}

static void next_term(unsigned k)
{
    unsigned k2 = k * 2U + 1U;
    mpz_addmul_ui(acc, num, 2U);
    mpz_mul_ui(acc, acc, k2);
    mpz_mul_ui(den, den, k2);
    mpz_mul_ui(num, num, k);
}

static void pi_digits(long n, char *out)
{
    mpz_inits(tmp1, tmp2, acc, NULL);
    mpz_init_set_ui(den, 1);
    mpz_init_set_ui(num, 1);
    long i = 0;
    for (unsigned k = 0; i < n;) {
        next_term(++k);
        if (mpz_cmp(num, acc) > 0)
            continue;
        unsigned d = extract_digit(3);
        if (d != extract_digit(4))
            continue;
        out[i++] = (char)('0' + d);
        eliminate_digit(d);
    }
    out[i] = 0;
    mpz_clears(tmp1, tmp2, acc, den, num, NULL);
}

static long digit_sum(const char *s)
{
    long t = 0;
    for (; *s; s++)
        t += *s - '0';
    return t;
}

int main(int argc, char **argv)
{
    double scale = real_scale(argc, argv);
    unsigned long n = (unsigned long)real_scaled(FACT_N, scale, 10);
    long ndig = real_scaled(PI_DIGITS, scale, 10);

    mpz_t f, m;
    mpz_inits(f, m, NULL);
    mpz_fac_ui(f, n);
    char *s = mpz_get_str(NULL, 10, f);
    size_t len = strlen(s);
    /* trailing zeros of n! in decimal, counted, and checked against Legendre */
    size_t zeros = 0;
    while (zeros < len && s[len - 1 - zeros] == '0')
        zeros++;
    unsigned long legendre = 0;
    for (unsigned long p = 5; p <= n; p *= 5)
        legendre += n / p;
    if (zeros != legendre) {
        printf("gmp: %lu! has %zu trailing zeros, expected %lu\n", n, zeros, legendre);
        return 1;
    }
    mpz_set_ui(m, 1000000007UL);
    mpz_mod(m, f, m);
    printf("gmp fact n=%lu bits=%zu digits=%zu zeros=%zu digit_sum=%ld mod_1e9+7=%lu crc=%08x\n",
           n, mpz_sizeinbase(f, 2), len, zeros, digit_sum(s), mpz_get_ui(m),
           real_crc32(0, (const unsigned char *)s, len));
    free(s);
    mpz_clears(f, m, NULL);

    char *pi = malloc((size_t)ndig + 1);
    if (!pi)
        return 1;
    pi_digits(ndig, pi);
    printf("gmp pi digits=%ld first=%.20s last=%s digit_sum=%ld crc=%08x\n", ndig, pi,
           pi + (ndig > 20 ? ndig - 20 : 0), digit_sum(pi),
           real_crc32(0, (const unsigned char *)pi, (size_t)ndig));
    free(pi);
    return 0;
}
