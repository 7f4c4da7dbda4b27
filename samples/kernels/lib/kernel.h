/* Shared definitions of the sample kernels (C and assembler). */
#ifndef KERNEL_H
#define KERNEL_H

#define BOOT_BTTOOL    1        /* bttool boot protocol, RDI = bt_bootinfo */
#define BOOT_MULTIBOOT 2        /* Multiboot v1, info = Multiboot information */

/* Selectors of the kernels' own GDT (gdt_init); the first two are the ones
 * both boot protocols use.  The user selectors are laid out for
 * syscall/sysret: STAR[47:32] = KERNEL_CS, STAR[63:48] = USER_CS32, so
 * sysretq loads SS = USER_CS32 + 8 (USER_DS) and CS = USER_CS32 + 16
 * (USER_CS), both with RPL 3. */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS32 0x18          /* 32-bit user code (unused, for STAR) */
#define USER_DS   0x20
#define USER_CS   0x28
#define TSS_SEL   0x30          /* 16-byte descriptor: 0x30..0x3f */
#define LDT_SEL   0x40          /* 16-byte descriptor: 0x40..0x4f */
#define GDT_LIMIT 0x4f

/* fixed addresses of the system tables (kernel.ld) */
#define GDT_ADDR  0x101000
#define TSS_ADDR  0x101800
#define LDT_ADDR  0x101c00
#define IDT_ADDR  0x102000

/* exit statuses through isa-debug-exit (QEMU exits with (v << 1) | 1) */
#define EXIT_PANIC   0x01       /* status 3 */
#define EXIT_COMPUTE 0x10       /* status 33 */

#ifndef __ASSEMBLER__

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef long int64_t;
typedef unsigned long size_t;
typedef unsigned long uintptr_t;

#define NORETURN __attribute__((noreturn))

/* ---- port I/O and control registers ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }

static inline uint64_t read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr0(uint64_t v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline void write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void write_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }
static inline void invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (uint64_t)hi << 32 | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline uint64_t read_flags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f) : : "memory");
    return f;
}
static inline void write_flags(uint64_t f)
{
    __asm__ volatile("pushq %0; popfq" : : "r"(f) : "memory", "cc");
}

#define MSR_EFER   0xC0000080
#define MSR_STAR   0xC0000081
#define MSR_LSTAR  0xC0000082
#define MSR_FMASK  0xC0000084

#define RFLAGS_IF   0x200
#define RFLAGS_IOPL 0x3000

/* ---- boot ---- */
extern int boot_protocol;               /* BOOT_BTTOOL or BOOT_MULTIBOOT */
extern uint64_t boot_mem_bytes;         /* RAM size from the boot information */
void kmain(void);                       /* each kernel's body */
void kentry(int protocol, uint64_t info) NORETURN;

/* ---- serial console (COM1) and printing ---- */
void serial_init(void);
void putc(char c);
void puts(const char *s);               /* no newline added */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- ending the run ---- */
void poweroff(void) NORETURN;           /* outw(0x604, 0x2000), then cli; hlt */
void debug_exit(uint8_t v) NORETURN;    /* outb(0xF4, v) */
void panic(const char *fmt, ...) NORETURN __attribute__((format(printf, 1, 2)));

/* ---- memory ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

/* ---- 8259 PIC, 8254 PIT ---- */
void pic_init(uint8_t mask_master, uint8_t mask_slave); /* vectors 0x20..0x2f */
void pic_eoi(int irq);
void pit_init(uint32_t hz);

/* ---- descriptor tables ---- */
struct frame {                          /* what isr.S pushes */
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;  /* pushed by the CPU */
};
typedef void (*isr_handler)(struct frame *f);
#define IDT_VECTORS 256
#define GATE_INTR 0xE
#define GATE_TRAP 0xF
void gdt_init(uint64_t rsp0, uint64_t ist1);    /* GDT, TSS, LDT at fixed addresses, ltr, lldt */
void idt_init(void);                    /* all stub gates, DPL 0 interrupt gates, lidt */
void idt_set(int vector, isr_handler h);
void idt_gate(int vector, int type, int dpl, int ist);
extern uint64_t isr_stubs[IDT_VECTORS]; /* isr.S */

/* ---- identity page tables owned by the kernel (4 GiB, 2 MiB pages) ---- */
extern uint64_t id_pml4[512], id_pdpt[512], id_pd[4][512];
void vm_identity_init(void);            /* builds them and loads CR3 */

/* ---- user mode and syscalls ---- */
struct sysframe {                       /* what syscall_entry pushes */
    uint64_t r15, r14, r13, r12, r11_unused, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rbx, rax;
    uint64_t rip, rflags, rsp;          /* user RCX, R11, RSP */
};
extern void (*syscall_handler)(struct sysframe *f);
void syscall_init(uint64_t fmask);      /* EFER.SCE, STAR, LSTAR, FMASK */
void enter_user(uint64_t rip, uint64_t rsp, uint64_t rflags) NORETURN;
extern char syscall_entry[];

#endif /* __ASSEMBLER__ */
#endif
