/* reboot: a boot counter in CMOS NVRAM byte 0x48 (zero at power-on under
 * QEMU, and not used by QEMU or SeaBIOS; CMOS survives a reset, RAM contents
 * must not be relied on).  Each boot increments it and prints it; boot 1
 * resets the machine through the keyboard controller (0x64 <- 0xFE), boot 2
 * through the PIIX3 reset control register (0xCF9 <- 0x02, then 0x06, as
 * Linux does), boot 3 clears the counter and powers off. */
#include "kernel.h"

#define CMOS_COUNTER 0x48

static uint8_t cmos_read(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static void cmos_write(uint8_t reg, uint8_t v)
{
    outb(0x70, reg);
    outb(0x71, v);
}

static void NORETURN stop(void)
{
    /* the reset is taken asynchronously: wait for it with the CPU stopped */
    for (;;)
        __asm__ volatile("cli; hlt");
}

void kmain(void)
{
    unsigned n = cmos_read(CMOS_COUNTER) + 1u;
    cmos_write(CMOS_COUNTER, (uint8_t)n);
    kprintf("boot %u (RAM: %lu MiB)\n", n, (boot_mem_bytes + 0xFFFFF) >> 20);
    switch (n) {
    case 1:
        kprintf("resetting through the keyboard controller (0x64 <- 0xFE)\n");
        while (inb(0x64) & 0x02)        /* input buffer full: wait */
            ;
        outb(0x64, 0xFE);
        stop();
    case 2:
        kprintf("resetting through the reset control register (0xCF9 <- 0x06)\n");
        outb(0xCF9, 0x02);
        outb(0xCF9, 0x06);
        stop();
    case 3:
        cmos_write(CMOS_COUNTER, 0);
        kprintf("done: two resets survived, counter cleared\n");
        kprintf("powering off\n");
        break;
    default:
        panic("boot counter %u: CMOS byte 0x%x was not zero at power-on", n, CMOS_COUNTER);
    }
}
