/* Shared library of the sample kernels: boot information, COM1, kprintf,
 * power-off, PIC, PIT, GDT/TSS/LDT/IDT at fixed addresses, identity page
 * tables, syscall set-up. */
#include "kernel.h"

#define COM1 0x3F8

int boot_protocol;
uint64_t boot_mem_bytes;

/* ------------------------------------------------------------------ */
/* memory */

void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--)
        *p++ = (uint8_t)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

/* ------------------------------------------------------------------ */
/* 16550 UART on COM1, polled */

void serial_init(void)
{
    outb(COM1 + 1, 0x00);               /* IER: no interrupts */
    outb(COM1 + 3, 0x80);               /* LCR: DLAB */
    outb(COM1 + 0, 0x01);               /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);               /* LCR: 8 data bits, no parity, 1 stop */
    outb(COM1 + 2, 0xC7);               /* FCR: FIFO on, clear both, 14-byte trigger */
    outb(COM1 + 4, 0x03);               /* MCR: DTR | RTS */
}

void putc(char c)
{
    while (!(inb(COM1 + 5) & 0x20))     /* LSR: THR empty */
        ;
    outb(COM1, (uint8_t)c);
}

void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

/* kprintf: %c %s %d %i %u %x %X %%, flags '0' and '-', a width, and the
 * length modifiers l, ll, z. */
static void put_num(uint64_t v, int base, int upper, int neg, int width, int zero, int left)
{
    char buf[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    do {
        buf[n++] = digits[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (!left && !zero)
        for (; width > len; width--)
            putc(' ');
    if (neg)
        putc('-');
    if (!left && zero)
        for (; width > len; width--)
            putc('0');
    while (n)
        putc(buf[--n]);
    if (left)
        for (; width > len; width--)
            putc(' ');
}

static void vkprintf(const char *fmt, __builtin_va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            putc(*fmt);
            continue;
        }
        fmt++;
        int zero = 0, left = 0, width = 0, lng = 0;
        for (;; fmt++) {
            if (*fmt == '0')
                zero = 1;
            else if (*fmt == '-')
                left = 1;
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            lng = 1;
            fmt++;
        }
        switch (*fmt) {
        case 'c':
            putc((char)__builtin_va_arg(ap, int));
            break;
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            int len = 0;
            while (s[len])
                len++;
            if (!left)
                for (; width > len; width--)
                    putc(' ');
            puts(s);
            if (left)
                for (; width > len; width--)
                    putc(' ');
            break;
        }
        case 'd':
        case 'i': {
            int64_t v = lng ? __builtin_va_arg(ap, int64_t) : __builtin_va_arg(ap, int);
            put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, 0, v < 0, width, zero, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? __builtin_va_arg(ap, uint64_t) : __builtin_va_arg(ap, unsigned);
            put_num(v, *fmt == 'u' ? 10 : 16, *fmt == 'X', 0, width, zero, left);
            break;
        }
        case '%':
            putc('%');
            break;
        default:
            putc('%');
            putc(*fmt);
            break;
        }
    }
}

void kprintf(const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    vkprintf(fmt, ap);
    __builtin_va_end(ap);
}

/* ------------------------------------------------------------------ */
/* ending the run */

static void NORETURN halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* ACPI PM1a control register of QEMU's pc machine (PIIX4 PM, I/O base 0x600
 * as SeaBIOS programs it): SLP_EN with SLP_TYP 0 is soft power-off.  QEMU
 * acts on it asynchronously, so the CPU must stop right after the write. */
void poweroff(void)
{
    outw(0x604, 0x2000);
    halt_forever();
}

void debug_exit(uint8_t v)
{
    outb(0xF4, v);
    halt_forever();
}

void panic(const char *fmt, ...)
{
    __builtin_va_list ap;
    puts("PANIC: ");
    __builtin_va_start(ap, fmt);
    vkprintf(fmt, ap);
    __builtin_va_end(ap);
    putc('\n');
    debug_exit(EXIT_PANIC);
}

/* ------------------------------------------------------------------ */
/* 8259 PIC pair and 8254 PIT */

void pic_init(uint8_t mask_master, uint8_t mask_slave)
{
    outb(0x20, 0x11);                   /* ICW1: edge, cascade, ICW4 follows */
    outb(0xA0, 0x11);
    outb(0x21, 0x20);                   /* ICW2: vectors 0x20..0x27 */
    outb(0xA1, 0x28);                   /*       vectors 0x28..0x2f */
    outb(0x21, 0x04);                   /* ICW3: slave on IRQ2 */
    outb(0xA1, 0x02);                   /*       slave identity 2 */
    outb(0x21, 0x01);                   /* ICW4: 8086 mode, normal EOI */
    outb(0xA1, 0x01);
    outb(0x21, mask_master);            /* OCW1: masks */
    outb(0xA1, mask_slave);
}

void pic_eoi(int irq)
{
    if (irq >= 8)
        outb(0xA0, 0x20);
    outb(0x20, 0x20);
}

void pit_init(uint32_t hz)
{
    uint32_t div = (1193182 + hz / 2) / hz;
    outb(0x43, 0x34);                   /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(0x40, (uint8_t)div);
    outb(0x40, (uint8_t)(div >> 8));
}

/* ------------------------------------------------------------------ */
/* GDT, TSS, LDT, IDT at the fixed addresses of kernel.ld */

uint64_t gdt[GDT_LIMIT / 8 + 1] __attribute__((section(".sys.gdt"), aligned(16))) = {
    [0] = 0,
    [KERNEL_CS / 8] = 0x00AF9A000000FFFF,   /* 64-bit code, DPL 0 */
    [KERNEL_DS / 8] = 0x00CF92000000FFFF,   /* data, DPL 0 */
    [USER_CS32 / 8] = 0x00CFFA000000FFFF,   /* 32-bit code, DPL 3 */
    [USER_DS / 8] = 0x00CFF2000000FFFF,     /* data, DPL 3 */
    [USER_CS / 8] = 0x00AFFA000000FFFF,     /* 64-bit code, DPL 3 */
};

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

struct tss tss __attribute__((section(".sys.tss"), aligned(16)));
uint64_t ldt[2] __attribute__((section(".sys.ldt"), aligned(16)));

struct idt_entry {
    uint16_t off_lo, sel;
    uint8_t ist, attr;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed));

struct idt_entry idt[IDT_VECTORS] __attribute__((section(".sys.idt"), aligned(16)));
static isr_handler handlers[IDT_VECTORS];

struct __attribute__((packed)) desc_ptr {
    uint16_t limit;
    uint64_t base;
};

static void system_descriptor(int sel, uint64_t base, uint32_t limit, uint8_t type)
{
    gdt[sel / 8] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | (uint64_t)(0x80 | type) << 40 |
                   (uint64_t)((limit >> 16) & 0xF) << 48 | ((base >> 24) & 0xFF) << 56;
    gdt[sel / 8 + 1] = base >> 32;
}

void gdt_init(uint64_t rsp0, uint64_t ist1)
{
    memset(&tss, 0, sizeof tss);
    tss.rsp[0] = rsp0;
    tss.ist[0] = ist1;
    tss.iomap_base = sizeof tss;        /* no I/O permission bitmap */
    memset(ldt, 0, sizeof ldt);
    system_descriptor(TSS_SEL, (uint64_t)&tss, sizeof tss - 1, 0x9);  /* available 64-bit TSS */
    system_descriptor(LDT_SEL, (uint64_t)ldt, sizeof ldt - 1, 0x2);   /* LDT */
    struct desc_ptr p = {GDT_LIMIT, (uint64_t)gdt};
    __asm__ volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "movl %2, %%eax\n\t"
        "movl %%eax, %%ds\n\t"
        "movl %%eax, %%es\n\t"
        "movl %%eax, %%ss\n\t"
        "movl %%eax, %%fs\n\t"
        "movl %%eax, %%gs\n\t"
        "movw %3, %%ax\n\t"
        "ltr %%ax\n\t"
        "movw %4, %%ax\n\t"
        "lldt %%ax"
        :
        : "m"(p), "i"(KERNEL_CS), "i"(KERNEL_DS), "i"(TSS_SEL), "i"(LDT_SEL)
        : "rax", "memory");
}

void idt_gate(int v, int type, int dpl, int ist)
{
    uint64_t a = isr_stubs[v];
    idt[v].off_lo = (uint16_t)a;
    idt[v].sel = KERNEL_CS;
    idt[v].ist = (uint8_t)ist;
    idt[v].attr = (uint8_t)(0x80 | dpl << 5 | type);
    idt[v].off_mid = (uint16_t)(a >> 16);
    idt[v].off_hi = (uint32_t)(a >> 32);
    idt[v].zero = 0;
}

void idt_init(void)
{
    for (int v = 0; v < IDT_VECTORS; v++)
        idt_gate(v, GATE_INTR, 0, 0);
    struct desc_ptr p = {sizeof idt - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

void idt_set(int v, isr_handler h)
{
    handlers[v] = h;
}

void isr_dispatch(struct frame *f)
{
    if (handlers[f->vector]) {
        handlers[f->vector](f);
        return;
    }
    if (f->vector >= 0x20 && f->vector < 0x30) {
        /* an IRQ nobody asked for (all are masked unless a kernel unmasks
         * them): acknowledge it silently */
        pic_eoi((int)f->vector - 0x20);
        return;
    }
    panic("unexpected exception: vector %lu error 0x%lx cs 0x%lx", f->vector, f->error, f->cs);
}

/* ------------------------------------------------------------------ */
/* identity map of the first 4 GiB with 2 MiB pages, user accessible */

uint64_t id_pml4[512] __attribute__((aligned(4096)));
uint64_t id_pdpt[512] __attribute__((aligned(4096)));
uint64_t id_pd[4][512] __attribute__((aligned(4096)));

void vm_identity_init(void)
{
    memset(id_pml4, 0, sizeof id_pml4);
    memset(id_pdpt, 0, sizeof id_pdpt);
    id_pml4[0] = (uint64_t)id_pdpt | 0x7;
    for (int i = 0; i < 4; i++) {
        id_pdpt[i] = (uint64_t)id_pd[i] | 0x7;
        for (int j = 0; j < 512; j++)
            id_pd[i][j] = ((uint64_t)i << 30 | (uint64_t)j << 21) | 0x87;
    }
    write_cr3((uint64_t)id_pml4);
}

/* ------------------------------------------------------------------ */
/* syscall/sysret */

void (*syscall_handler)(struct sysframe *f);

void syscall_init(uint64_t fmask)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);   /* SCE */
    wrmsr(MSR_STAR, (uint64_t)USER_CS32 << 48 | (uint64_t)KERNEL_CS << 32);
    wrmsr(MSR_LSTAR, (uint64_t)syscall_entry);
    wrmsr(MSR_FMASK, fmask);
}

/* ------------------------------------------------------------------ */
/* C entry from both stubs */

struct bt_bootinfo {
    uint32_t magic, version;
    uint64_t mem_bytes, cmdline;
    uint32_t mmap_count, reserved;
    uint64_t mmap;
};

struct multiboot_info {
    uint32_t flags, mem_lower, mem_upper;
    /* ... */
};

void kentry(int protocol, uint64_t info)
{
    serial_init();
    boot_protocol = protocol;
    if (protocol == BOOT_BTTOOL) {
        const struct bt_bootinfo *bi = (const struct bt_bootinfo *)info;
        if (bi->magic != 0x4254424F || bi->version != 1)
            panic("bad boot information: magic 0x%x version %u", bi->magic, bi->version);
        boot_mem_bytes = bi->mem_bytes;
    } else {
        const struct multiboot_info *mi = (const struct multiboot_info *)info;
        if (!(mi->flags & 1))
            panic("Multiboot information without memory sizes");
        /* mem_upper: KiB of memory from 1 MiB up to the first hole.  QEMU
         * derives it from the BIOS e820 map, where SeaBIOS reserves the top
         * 128 KiB of RAM: -m 128 gives mem_upper = 129920 (not 130048). */
        boot_mem_bytes = ((uint64_t)mi->mem_upper + 1024) * 1024;
    }
    /* whatever a BIOS left in the PICs: remap them, mask everything */
    pic_init(0xFF, 0xFF);
    kmain();
    poweroff();
}
