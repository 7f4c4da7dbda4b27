/* zstd: libzstd compression at level 9 and decompression of generated
 * text-like data (data.h), one-shot (ZSTD_compressCCtx) and streaming
 * (ZSTD_compressStream2) APIs; checks the round trip and prints the
 * compressed sizes and a CRC-32 (data.h's) of the compressed frames (the
 * round trip itself is checked with memcmp).  Static libzstd, single-threaded.
 *
 *   zstd [SCALE]       SCALE (default 1.0) multiplies the number of rounds. */
#include <zstd.h>

#include "data.h"

#ifndef ROUNDS
#define ROUNDS 34
#endif
#define CHUNK (1 << 20)

int main(int argc, char **argv)
{
    long rounds = real_scaled(ROUNDS, real_scale(argc, argv), 1);
    size_t cap = ZSTD_compressBound(CHUNK);
    unsigned char *in = malloc(CHUNK), *out = malloc(cap), *back = malloc(CHUNK);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!in || !out || !back || !cctx || !dctx)
        return 1;
    unsigned long total_in = 0, total_out = 0;
    uint32_t crc_c = 0;
    for (long r = 0; r < rounds; r++) {
        size_t n = CHUNK - (size_t)(r % 3) * 12289;
        real_fill_text(in, n, 3000 + (uint64_t)r);
        size_t clen;
        if (r % 2 == 0) {
            clen = ZSTD_compressCCtx(cctx, out, cap, in, n, 9);
        } else {
            ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 9);
            ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
            ZSTD_inBuffer ib = {in, n, 0};
            ZSTD_outBuffer ob = {out, cap, 0};
            size_t left;
            do
                left = ZSTD_compressStream2(cctx, &ob, &ib, ZSTD_e_end);
            while (left != 0 && !ZSTD_isError(left));
            clen = ZSTD_isError(left) ? left : ob.pos;
        }
        if (ZSTD_isError(clen)) {
            printf("zstd: compress failed: %s\n", ZSTD_getErrorName(clen));
            return 1;
        }
        size_t dlen = ZSTD_decompressDCtx(dctx, back, CHUNK, out, clen);
        if (ZSTD_isError(dlen) || dlen != n || memcmp(in, back, n) != 0) {
            printf("zstd: round trip failed in round %ld\n", r);
            return 1;
        }
        total_in += n;
        total_out += clen;
        crc_c = real_crc32(crc_c, out, clen);
    }
    printf("zstd rounds=%ld in=%lu out=%lu crc_compressed=%08x\n",
           rounds, total_in, total_out, crc_c);
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    free(in);
    free(out);
    free(back);
    return 0;
}
