/* interrupts: IDT with gates for every vector, PICs remapped to 0x20/0x28,
 * PIT channel 0 at 100 Hz on IRQ 0.  With interrupts enabled it computes a
 * fixed workload (the checksum is printed: an interrupt that corrupts a
 * register shows up there) while the IRQ 0 handler counts ticks, then waits
 * with sti; hlt until the count reaches TICKS.  Then int3 (#BP, a trap: the
 * handler returns after the int3), a divide by zero (#DE, a fault: the
 * handler fixes the divisor and the div is executed again), ud2 (#UD: the
 * handler skips the two bytes) and a software interrupt int $0x41. */
#include "kernel.h"

#define TICKS 20

static volatile uint64_t ticks;

static void irq0(struct frame *f)
{
    ticks++;
    pic_eoi(0);
}

static void on_bp(struct frame *f)
{
    kprintf("#BP: vector %lu, error code %lu\n", f->vector, f->error);
}

extern char de_insn[], ud_insn[], ud_insn_end[];

static void on_de(struct frame *f)
{
    kprintf("#DE: vector %lu at the div: %s, divisor %lu -> 7\n", f->vector,
            f->rip == (uint64_t)de_insn ? "yes" : "no", f->rcx);
    f->rcx = 7;                         /* the div runs again with ECX = 7 */
}

static void on_ud(struct frame *f)
{
    kprintf("#UD: vector %lu at the ud2: %s\n", f->vector, f->rip == (uint64_t)ud_insn ? "yes" : "no");
    f->rip = (uint64_t)ud_insn_end;
}

static void on_int41(struct frame *f)
{
    kprintf("int $0x41: vector 0x%lx, rax 0x%lx\n", f->vector, f->rax);
    f->rax = 0x4141;
}

/* xorshift64 and a multiply-accumulate: about 50 ms natively */
static uint64_t workload(void)
{
    uint64_t x = 88172645463325252ull, acc = 0;
    for (long i = 0; i < 20000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc * 31 + (x >> 11);
    }
    return acc;
}

void kmain(void)
{
    idt_init();
    idt_set(0x20, irq0);
    idt_set(3, on_bp);
    idt_set(0, on_de);
    idt_set(6, on_ud);
    idt_set(0x41, on_int41);
    pic_init(0xFE, 0xFF);               /* only IRQ 0 */
    pit_init(100);
    kprintf("PIT at 100 Hz, interrupts on\n");
    sti();

    uint64_t sum = workload();
    kprintf("workload checksum: %016lx\n", sum);

    for (;;) {
        cli();
        if (ticks >= TICKS)
            break;
        __asm__ volatile("sti; hlt" ::: "memory");  /* no lost wake-up: sti shadow */
    }
    kprintf("timer: %u ticks counted (sti; hlt)\n", TICKS);
    sti();

    __asm__ volatile("int3");
    kprintf("after int3\n");

    uint32_t q, r;
    __asm__ volatile(".globl de_insn\n"
                     "de_insn: divl %%ecx"
                     : "=a"(q), "=d"(r)
                     : "a"(100), "d"(0), "c"(0));
    kprintf("100 / 7 = %u remainder %u\n", q, r);

    __asm__ volatile(".globl ud_insn, ud_insn_end\n"
                     "ud_insn: ud2\n"
                     "ud_insn_end:");
    kprintf("after ud2\n");

    uint64_t rax = 0x41;
    __asm__ volatile("int $0x41" : "+a"(rax) : : "memory");
    kprintf("int $0x41 returned rax 0x%lx\n", rax);

    cli();
    pit_init(100);
    pic_init(0xFF, 0xFF);
    kprintf("powering off\n");
}
