/* strings: glibc's string and memory routines (memcpy, memmove, memset,
 * strlen, strchr, strcmp, memcmp, strstr) over many sizes (0 bytes to
 * 16 KiB) and every source/destination alignment modulo 16.  glibc picks
 * the implementation of each routine at start-up from cpuid (SSE2, AVX2,
 * EVEX...), so this stresses whatever vector code the CPU model selects,
 * plus the many short calls' entry and exit paths.
 *
 *   strings [SCALE]    SCALE (default 1.0) multiplies the repetition count.
 *
 * Only the sign of strcmp/memcmp results is used: glibc's variants may
 * return different magnitudes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef REPS
#define REPS 1750
#endif
#define BUFSIZE (64 * 1024)

static unsigned char src[BUFSIZE], dst[BUFSIZE], work[BUFSIZE];
static char hay[BUFSIZE], s1[BUFSIZE], s2[BUFSIZE];

static uint64_t h = 1469598103934665603ull;
static inline void mix(uint64_t v)
{
    h = (h ^ v) * 1099511628211ull;
}
static int sgn(int r) { return (r > 0) - (r < 0); }

static uint64_t fnv(const unsigned char *p, size_t n)
{
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        x = (x ^ p[i]) * 1099511628211ull;
    return x;
}

static size_t sizes[256];
static int nsizes;

static void make_sizes(void)
{
    for (int i = 0; i <= 70; i++)
        sizes[nsizes++] = (size_t)i;
    static const size_t big[] = {95, 96, 97, 127, 128, 129, 191, 255, 256, 257,
                                 300, 511, 512, 513, 777, 1023, 1024, 1025,
                                 2047, 2048, 3001, 4095, 4096, 4097, 8191,
                                 8192, 12345, 16384};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        sizes[nsizes++] = big[i];
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long reps = (long)(REPS * scale);
    if (reps < 1)
        reps = 1;

    make_sizes();
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < BUFSIZE; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        src[i] = (unsigned char)x;
        hay[i] = (char)('a' + x % 4);        /* small alphabet: partial matches */
        s1[i] = s2[i] = (char)(1 + (x >> 8) % 255);
    }
    hay[BUFSIZE - 1] = 0;

    for (long rep = 0; rep < reps; rep++) {
        for (int si = 0; si < nsizes; si++) {
            size_t n = sizes[si];
            for (size_t sa = 0; sa < 16; sa++) {
                size_t r = (size_t)rep % 64;
                size_t da = (sa * 7 + r) % 16;
                unsigned char *d = dst + 64 + da;
                const unsigned char *s = src + 64 + sa + r;

                /* memcpy */
                memcpy(d, s, n);
                if (n)
                    mix(d[0] ^ (uint64_t)d[n - 1] << 8 ^ (uint64_t)d[n / 2] << 16);
                mix((uint64_t)sgn(memcmp(d, s, n)));

                /* memset */
                memset(work + 32 + sa, (int)(n & 0xff), n);
                if (n)
                    mix(work[32 + sa + n - 1]);

                /* memmove, overlapping both ways */
                memcpy(work + 256, s, n + 64);
                memmove(work + 256 + da + 1, work + 256, n);   /* forward overlap */
                memmove(work + 256, work + 256 + sa + 3, n);   /* backward overlap */
                if (n)
                    mix(work[256] ^ (uint64_t)work[256 + n - 1] << 8);

                /* memcmp: equal prefix, difference in the last byte */
                if (n) {
                    d[n - 1] ^= 0x40;
                    mix((uint64_t)(sgn(memcmp(d, s, n)) + 1));
                    mix((uint64_t)(sgn(memcmp(s, d, n)) + 3));
                    d[n - 1] ^= 0x40;
                }

                /* strlen / strchr / strcmp on NUL-terminated copies */
                char *a = s1 + 64 + sa, *b = s2 + 64 + da;
                char savea = a[n], saveb = b[n];
                memcpy(b, a, n);
                a[n] = 0;
                b[n] = 0;
                mix(strlen(a));
                mix((uint64_t)sgn(strcmp(a, b)) + 5);
                if (n) {
                    char c = a[n - 1];
                    char *p = strchr(a, c);
                    mix((uint64_t)(p - a));
                    mix(strchr(a, 0) == a + n);
                    b[n - 1] = (char)(b[n - 1] == 1 ? 2 : b[n - 1] - 1);
                    mix((uint64_t)sgn(strcmp(a, b)) + 7);
                    b[n - 1] = a[n - 1];
                }
                mix(strchr(a, 0) - a);
                a[n] = savea;
                b[n] = saveb;

                /* strstr: find the tail of a window of the haystack */
                if (n >= 2 && n <= 4096) {
                    size_t start = (sa * 131 + r * 17) % 1024;
                    size_t nl = 1 + (n % 24);
                    char needle[32];
                    char *win = hay + start;
                    char save = win[n];
                    win[n] = 0;
                    if (nl > n)
                        nl = n;
                    memcpy(needle, win + n - nl, nl);
                    needle[nl] = 0;
                    char *p = strstr(win, needle);
                    mix(p ? (uint64_t)(p - win) : 0xffffffffu);
                    needle[0] = 'z';                     /* never present */
                    mix(strstr(win, needle) == NULL);
                    win[n] = save;
                }
            }
        }
        /* all bytes written this repetition lie below 17000 */
        mix(fnv(dst, 17000));
        mix(fnv(work, 17000));
    }
    printf("strings reps=%ld sizes=%d checksum=%016llx\n", reps, nsizes,
           (unsigned long long)h);
    return 0;
}
