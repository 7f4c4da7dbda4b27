/* openssl: libcrypto through the EVP interfaces: SHA-256 of a generated
 * buffer, AES-128-CBC and AES-128-GCM encryption and decryption (checked
 * round trips, GCM tag verified), HMAC-SHA256 and PBKDF2-HMAC-SHA256, all
 * with fixed keys, IVs and data; prints digests and a CRC-32 (data.h's) of
 * the ciphertexts' first and last 4 KiB and the GCM tags.  Static libcrypto (OpenSSL 3): whichever code paths its
 * cpuid probe picks (AES-NI, SHA extensions, SSE2), the results are the
 * same.
 *
 *   openssl [SCALE]    SCALE (default 1.0) multiplies the number of rounds. */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "data.h"

#ifndef ROUNDS
#define ROUNDS 350
#endif
#ifndef PBKDF2_ITERS
#define PBKDF2_ITERS 600000
#endif
#define CHUNK (1 << 20)

static void hex(char *dst, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(dst + 2 * i, "%02x", p[i]);
}

static int cipher(const EVP_CIPHER *c, int enc, const unsigned char *key, const unsigned char *iv,
                  const unsigned char *in, int n, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, ok = ctx && EVP_CipherInit_ex(ctx, c, NULL, key, iv, enc);
    if (ok && tag) {
        static const unsigned char aad[] = "bttool real-programs benchmark";
        int alen;
        ok = EVP_CipherUpdate(ctx, NULL, &alen, aad, sizeof aad - 1);
        if (ok && !enc)
            ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag);
    }
    ok = ok && EVP_CipherUpdate(ctx, out, &len, in, n);
    ok = ok && EVP_CipherFinal_ex(ctx, out + len, &fin);
    if (ok && tag && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? len + fin : -1;
}

int main(int argc, char **argv)
{
    double scale = real_scale(argc, argv);
    long rounds = real_scaled(ROUNDS, scale, 1);
    int iters = (int)real_scaled(PBKDF2_ITERS, scale, 1);
    unsigned char *buf = malloc(CHUNK), *enc = malloc(CHUNK + 32), *dec = malloc(CHUNK + 32);
    if (!buf || !enc || !dec)
        return 1;
    real_fill_text(buf, CHUNK, 4000);
    unsigned char key[16], iv[16], md[EVP_MAX_MD_SIZE], tag[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (unsigned char)(i * 17 + 3);
        iv[i] = (unsigned char)(255 - i * 7);
    }
    unsigned int mdlen;
    uint32_t crc = 0;
    unsigned char acc[32] = {0};
    for (long r = 0; r < rounds; r++) {
        int n = CHUNK - (int)(r % 4) * 1000 - (int)(r % 16);
        buf[r % CHUNK] ^= (unsigned char)r;          /* every round hashes other data */
        if (!EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL))
            return 1;
        for (int i = 0; i < 32; i++)
            acc[i] ^= md[i];
        key[r % 16] ^= md[0];
        int elen = cipher(EVP_aes_128_cbc(), 1, key, iv, buf, n, enc, NULL);
        int dlen = elen < 0 ? -1 : cipher(EVP_aes_128_cbc(), 0, key, iv, enc, elen, dec, NULL);
        if (dlen != n || memcmp(buf, dec, (size_t)n) != 0) {
            printf("openssl: AES-128-CBC round trip failed in round %ld\n", r);
            return 1;
        }
        crc = real_crc32(crc, enc, 4096);              /* a sample: the round trip checks the rest */
        crc = real_crc32(crc, enc + elen - 4096, 4096);
        elen = cipher(EVP_aes_128_gcm(), 1, key, iv, buf, n, enc, tag);
        dlen = elen < 0 ? -1 : cipher(EVP_aes_128_gcm(), 0, key, iv, enc, elen, dec, tag);
        if (dlen != n || memcmp(buf, dec, (size_t)n) != 0) {
            printf("openssl: AES-128-GCM round trip failed in round %ld\n", r);
            return 1;
        }
        crc = real_crc32(crc, enc, 4096);
        crc = real_crc32(crc, enc + elen - 4096, 4096);
        crc = real_crc32(crc, tag, 16);
        if (!HMAC(EVP_sha256(), key, 16, buf, (size_t)n / 2, md, &mdlen))
            return 1;
        for (int i = 0; i < 32; i++)
            acc[i] += md[i];
    }
    unsigned char dk[32];
    if (!PKCS5_PBKDF2_HMAC("correct horse battery staple", -1, (const unsigned char *)"salt", 4,
                           iters, EVP_sha256(), sizeof dk, dk))
        return 1;
    char h1[65], h2[65];
    hex(h1, acc, 32);
    hex(h2, dk, 32);
    printf("openssl rounds=%ld crc_ciphertext=%08x digests=%s\n", rounds, crc, h1);
    printf("openssl pbkdf2 iterations=%d key=%s\n", iters, h2);
    free(buf);
    free(enc);
    free(dec);
    return 0;
}
