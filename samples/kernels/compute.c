/* compute: the CRC-32 loop of bench/crc32.c (the same table-driven
 * byte-at-a-time and slicing-by-4 code, the same generated 1 MiB buffer and
 * the same checksum: the loop is bench/crc32_loop.h, included by both), with a
 * fixed pass count of 450: `bench/crc32 0.5`
 * prints the same line in user mode, which makes the two directly
 * comparable.  Ends through isa-debug-exit with value 0x10 (QEMU status 33). */
#include "kernel.h"

#define PASSES 450

#include "../../bench/crc32_loop.h"

void kmain(void)
{
    if (crc32_setup() != 0)
        panic("crc32: self-test failed");
    kprintf("crc32 passes=%ld checksum=%08x\n", (long)PASSES, crc32_run(PASSES));
    debug_exit(EXIT_COMPUTE);
}
