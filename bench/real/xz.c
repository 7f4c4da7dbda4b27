/* xz: liblzma .xz compression at preset 1 (single-threaded) and
 * decompression of generated text-like data (data.h), with the streaming
 * API, CRC-64 integrity check in the stream; checks the round trip and
 * prints the compressed sizes and CRC-32s of the compressed streams (data.h's)
 * and of the output (liblzma's lzma_crc32).  Static liblzma.
 *
 *   xz [SCALE]         SCALE (default 1.0) multiplies the number of rounds. */
#include <lzma.h>

#include "data.h"

#ifndef ROUNDS
#define ROUNDS 14
#endif
#define CHUNK (1 << 20)

static size_t code_all(lzma_stream *s, const unsigned char *in, size_t n,
                       unsigned char *out, size_t cap)
{
    s->next_in = in;
    s->avail_in = n;
    s->next_out = out;
    s->avail_out = cap;
    lzma_ret ret;
    do
        ret = lzma_code(s, LZMA_FINISH);
    while (ret == LZMA_OK && s->avail_out > 0);
    if (ret != LZMA_STREAM_END) {
        printf("xz: lzma_code failed (%d)\n", (int)ret);
        exit(1);
    }
    return cap - s->avail_out;
}

int main(int argc, char **argv)
{
    long rounds = real_scaled(ROUNDS, real_scale(argc, argv), 1);
    unsigned char *in = malloc(CHUNK), *out = malloc(2 * CHUNK), *back = malloc(CHUNK);
    if (!in || !out || !back)
        return 1;
    unsigned long total_in = 0, total_out = 0;
    uint32_t crc_c = 0, crc_d = 0;
    for (long r = 0; r < rounds; r++) {
        size_t n = CHUNK - (size_t)(r % 5) * 8191;
        real_fill_text(in, n, 2000 + (uint64_t)r);
        lzma_stream s = LZMA_STREAM_INIT;
        if (lzma_easy_encoder(&s, 1, LZMA_CHECK_CRC64) != LZMA_OK)
            return 1;
        size_t clen = code_all(&s, in, n, out, 2 * CHUNK);
        lzma_end(&s);
        lzma_stream d = LZMA_STREAM_INIT;
        if (lzma_stream_decoder(&d, UINT64_MAX, 0) != LZMA_OK)
            return 1;
        size_t dlen = code_all(&d, out, clen, back, CHUNK + 1);
        lzma_end(&d);
        if (dlen != n || memcmp(in, back, n) != 0) {
            printf("xz: round trip failed in round %ld\n", r);
            return 1;
        }
        total_in += n;
        total_out += clen;
        crc_c = real_crc32(crc_c, out, clen);
        crc_d = lzma_crc32(back, dlen, crc_d);
    }
    printf("xz rounds=%ld in=%lu out=%lu crc_compressed=%08x crc_data=%08x crc64_last=%016llx\n",
           rounds, total_in, total_out, crc_c, crc_d,
           (unsigned long long)lzma_crc64(back, CHUNK / 2, 0));
    free(in);
    free(out);
    free(back);
    return 0;
}
