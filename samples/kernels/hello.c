/* hello: the smallest kernel.  Prints a greeting and the RAM size the boot
 * information reports (bt_bootinfo.mem_bytes, or Multiboot mem_upper + 1 MiB),
 * rounded up to a whole MiB because firmware may reserve the top of RAM
 * (under QEMU, SeaBIOS keeps the last 128 KiB out of mem_upper), then powers
 * off. */
#include "kernel.h"

void kmain(void)
{
    kprintf("Hello from a bare-metal kernel!\n");
    kprintf("RAM: %lu MiB\n", (boot_mem_bytes + 0xFFFFF) >> 20);
    kprintf("powering off\n");
}
