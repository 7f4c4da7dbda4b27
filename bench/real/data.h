/* data.h: deterministic, compressible test data shared by the compression
 * drivers (zlib, xz, zstd): lines of words drawn from a fixed vocabulary
 * by a fixed-seed LCG, with numbers mixed in, so compressors find both
 * repeats and entropy.  Also a tiny CRC-32 (for checksums that do not
 * depend on the library under test) and the scale-factor parser. */
#ifndef BENCH_REAL_DATA_H
#define BENCH_REAL_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline double real_scale(int argc, char **argv)
{
    double s = argc > 1 ? atof(argv[1]) : 1.0;
    return s > 0 ? s : 1.0;
}

static inline long real_scaled(long n, double scale, long min)
{
    long v = (long)(n * scale);
    return v < min ? min : v;
}

static inline uint64_t real_lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Fill buf[0..n) with text-like data; the same (n, seed) always gives the
 * same bytes. */
static inline void real_fill_text(unsigned char *buf, size_t n, uint64_t seed)
{
    static const char *words[] = {
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
        "translation", "binary", "register", "memory", "cache", "block",
        "instruction", "guest", "host", "compile", "region", "branch",
        "return", "stack", "frame", "value", "pointer", "buffer", "stream",
        "deflate", "inflate", "checksum", "lorem", "ipsum", "dolor", "sit",
        "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    };
    const size_t nwords = sizeof words / sizeof words[0];
    size_t i = 0;
    int col = 0;
    while (i < n) {
        uint64_t r = real_lcg(&seed);
        char tmp[32];
        const char *w;
        size_t len;
        if (r % 11 == 0) {
            len = (size_t)snprintf(tmp, sizeof tmp, "%u", (unsigned)(r >> 8) % 100000u);
            w = tmp;
        } else {
            w = words[(r >> 4) % nwords];
            len = strlen(w);
        }
        for (size_t k = 0; k < len && i < n; k++)
            buf[i++] = (unsigned char)w[k];
        col += (int)len + 1;
        if (i < n) {
            if (col > 70) {
                buf[i++] = '\n';
                col = 0;
            } else {
                buf[i++] = ' ';
            }
        }
    }
}

static inline uint32_t real_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    while (n--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#endif
