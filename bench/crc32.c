/* crc32: table-driven (byte-at-a-time and slicing-by-4) CRC-32 over a
 * generated buffer, many passes.  Stresses loads, shifts, xors and table
 * lookups in a tight loop.  The loop is in crc32_loop.h, shared with the
 * system-mode kernel samples/kernels/compute.c.
 *
 *   crc32 [SCALE]      SCALE (default 1.0) multiplies the pass count. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "crc32_loop.h"

#ifndef PASSES
#define PASSES 900
#endif

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long passes = (long)(PASSES * scale);
    if (passes < 1)
        passes = 1;
    if (crc32_setup() != 0) {
        puts("crc32: self-test failed");
        return 1;
    }
    printf("crc32 passes=%ld checksum=%08x\n", passes, crc32_run(passes));
    return 0;
}
