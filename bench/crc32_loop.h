/* The CRC-32 workload shared by bench/crc32.c (a Linux program) and
 * samples/kernels/compute.c (a bare-metal kernel), so that system mode and
 * user mode are timed on exactly the same loop (bench/system).
 *
 * Freestanding: the includer provides uint8_t, uint32_t and size_t. */
#define CRC32_BUFSIZE (1 << 20)

static uint32_t crc32_table[4][256];
static uint8_t crc32_buf[CRC32_BUFSIZE];

static void crc32_make_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc32_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++)
            crc32_table[t][i] = (crc32_table[t - 1][i] >> 8) ^
                                crc32_table[0][crc32_table[t - 1][i] & 0xff];
}

static uint32_t crc32_bytewise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc32_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t crc32_slice4(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n >= 4) {
        crc ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 24;
        crc = crc32_table[3][crc & 0xff] ^ crc32_table[2][(crc >> 8) & 0xff] ^
              crc32_table[1][(crc >> 16) & 0xff] ^ crc32_table[0][crc >> 24];
        p += 4;
        n -= 4;
    }
    while (n--)
        crc = crc32_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* Tables, a generated 1 MiB buffer, and the self-test: 0 when it passes. */
static int crc32_setup(void)
{
    crc32_make_tables();
    uint32_t x = 0x12345678u;
    for (size_t i = 0; i < CRC32_BUFSIZE; i++) {
        x = x * 1664525u + 1013904223u;
        crc32_buf[i] = (uint8_t)(x >> 24);
    }
    return crc32_bytewise(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u ? 0 : -1;
}

/* ``passes`` passes over the buffer (byte-at-a-time every fourth pass,
 * slicing-by-4 otherwise, varying alignment, the buffer changing between
 * passes); returns the combined checksum. */
static uint32_t crc32_run(long passes)
{
    uint32_t acc = 0;
    for (long p = 0; p < passes; p++) {
        size_t off = (size_t)(p * 7) % 64;        /* vary alignment */
        size_t len = CRC32_BUFSIZE - 64;
        uint32_t c;
        if (p % 4 == 0)
            c = crc32_bytewise((uint32_t)p, crc32_buf + off, len);
        else
            c = crc32_slice4((uint32_t)p, crc32_buf + off, len);
        acc = (acc << 5 | acc >> 27) ^ c;
        crc32_buf[(p * 7919) % CRC32_BUFSIZE] ^= (uint8_t)c;  /* next pass differs */
    }
    return acc;
}
