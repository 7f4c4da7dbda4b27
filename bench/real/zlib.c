/* zlib: deflate at level 6 and inflate of generated text-like data
 * (data.h), several buffers of different sizes and seeds; checks the round
 * trip and prints the compressed sizes and CRC-32s (zlib's crc32) of the
 * compressed streams and of the inflated output.  Static libz.
 *
 *   zlib [SCALE]       SCALE (default 1.0) multiplies the number of rounds. */
#include <zlib.h>

#include "data.h"

#ifndef ROUNDS
#define ROUNDS 16
#endif
#define CHUNK (1 << 20)

int main(int argc, char **argv)
{
    long rounds = real_scaled(ROUNDS, real_scale(argc, argv), 1);
    unsigned char *in = malloc(CHUNK), *out = malloc(2 * CHUNK), *back = malloc(CHUNK);
    if (!in || !out || !back)
        return 1;
    uLong total_in = 0, total_out = 0, crc_c = crc32(0, Z_NULL, 0), crc_d = crc32(0, Z_NULL, 0);
    for (long r = 0; r < rounds; r++) {
        size_t n = CHUNK - (size_t)(r % 7) * 4099;
        real_fill_text(in, n, 1000 + (uint64_t)r);
        /* deflate with the streaming API, in 64 KiB output pieces */
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (deflateInit(&zs, 6) != Z_OK)
            return 1;
        zs.next_in = in;
        zs.avail_in = (uInt)n;
        int ret;
        do {
            zs.next_out = out + zs.total_out;
            zs.avail_out = 65536;
            ret = deflate(&zs, Z_FINISH);
        } while (ret == Z_OK);
        if (ret != Z_STREAM_END) {
            printf("zlib: deflate failed (%d)\n", ret);
            return 1;
        }
        size_t clen = zs.total_out;
        deflateEnd(&zs);
        crc_c = crc32(crc_c, out, (uInt)clen);
        /* inflate in one call */
        memset(&zs, 0, sizeof zs);
        if (inflateInit(&zs) != Z_OK)
            return 1;
        zs.next_in = out;
        zs.avail_in = (uInt)clen;
        zs.next_out = back;
        zs.avail_out = CHUNK;
        ret = inflate(&zs, Z_FINISH);
        if (ret != Z_STREAM_END || zs.total_out != n || memcmp(in, back, n) != 0) {
            printf("zlib: round trip failed in round %ld (%d)\n", r, ret);
            return 1;
        }
        inflateEnd(&zs);
        /* and the one-shot API, on a slice, at level 1 */
        uLongf dlen = 2 * CHUNK;
        if (compress2(out, &dlen, in, n / 4, 1) != Z_OK)
            return 1;
        total_in += n;
        total_out += clen + dlen;
        crc_c = crc32(crc_c, out, (uInt)dlen);
        crc_d = crc32(crc_d, back, (uInt)n);
    }
    printf("zlib rounds=%ld in=%lu out=%lu crc_compressed=%08lx crc_data=%08lx\n",
           rounds, total_in, total_out, crc_c, crc_d);
    free(in);
    free(out);
    free(back);
    return 0;
}
