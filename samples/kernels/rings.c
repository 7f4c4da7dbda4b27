/* rings: a GDT with user segments and a TSS (RSP0, IST1), EFER.SCE and the
 * STAR/LSTAR/FMASK MSRs; iretq to CPL 3.  The user code (user_main below)
 * executes instructions it may not: cli, out, in, hlt, mov from CR0 (#GP,
 * error code 0), int $0x40 through a DPL 0 gate (#GP with the IDT bit set in
 * the error code; only that bit is printed, because QEMU's TCG reports
 * vector * 16 + 2 = 0x402 where the CPU reports vector * 8 + 2 = 0x202), a read of a supervisor-only page (#PF, error code U|P);
 * the kernel's handlers report vector, error code, CPL and which
 * instruction, and skip it.  int3 goes through a DPL 3 gate on the IST1
 * stack.  Then syscall: a print call, an add call that returns with sysretq,
 * and an exit call after which the kernel finishes without returning. */
#include "kernel.h"

#define SYS_PUTS 1
#define SYS_ADD  2
#define SYS_EXIT 3

#define SUPERVISOR_PAGE 0x6000000ul     /* a 2 MiB page without the U bit */

static uint8_t kstack[16384] __attribute__((aligned(16)));
static uint8_t iststack[8192] __attribute__((aligned(16)));
static uint8_t ustack[16384] __attribute__((aligned(16)));

/* ---- the user code: runs at CPL 3 ---- */
__asm__(
    "    .text\n"
    "    .globl user_main\n"
    "user_main:\n"
    "    lea     msg_user(%rip), %rdi\n"
    "    mov     $1, %eax\n"                /* SYS_PUTS */
    "    syscall\n"
    "u_cli: cli\n"
    "u_cli_end:\n"
    "    mov     $0x3f8, %dx\n"
    "    mov     $'!', %al\n"
    "u_out: outb %al, %dx\n"
    "u_out_end:\n"
    "u_in: inb %dx, %al\n"
    "u_in_end:\n"
    "u_hlt: hlt\n"
    "u_hlt_end:\n"
    "u_cr0: mov %cr0, %rax\n"
    "u_cr0_end:\n"
    "u_int40: int $0x40\n"
    "u_int40_end:\n"
    "u_kread: movl 0x6000000, %eax\n"
    "u_kread_end:\n"
    "    int3\n"
    "    mov     $2, %eax\n"                /* SYS_ADD */
    "    mov     $40, %edi\n"
    "    mov     $2, %esi\n"
    "    syscall\n"
    "u_after_add:\n"
    "    mov     %rax, %rdi\n"              /* exit status: the sum */
    "    mov     $3, %eax\n"                /* SYS_EXIT */
    "    syscall\n"
    "    ud2\n"
    "    .section .rodata\n"
    "msg_user: .asciz \"hello from CPL 3 (via syscall)\\n\"\n"
    "    .text\n");

extern char user_main[], u_cli[], u_cli_end[], u_out[], u_out_end[], u_in[], u_in_end[], u_hlt[],
    u_hlt_end[], u_cr0[], u_cr0_end[], u_int40[], u_int40_end[], u_kread[], u_kread_end[],
    u_after_add[];

static const struct {
    const char *name;
    char *start, *end;
} insns[] = {
    {"cli", u_cli, u_cli_end},
    {"out %al,%dx", u_out, u_out_end},
    {"in %dx,%al", u_in, u_in_end},
    {"hlt", u_hlt, u_hlt_end},
    {"mov %cr0,%rax", u_cr0, u_cr0_end},
    {"int $0x40", u_int40, u_int40_end},
    {"mov 0x6000000,%eax", u_kread, u_kread_end},
};

static int on_stack(const void *p, const uint8_t *stack, size_t size)
{
    return (const uint8_t *)p >= stack && (const uint8_t *)p < stack + size;
}

/* Faulting user instruction: report and skip it.  For int $0x40 the CPU
 * reports the address of the int instruction itself (a fault). */
static void report_and_skip(struct frame *f, const char *what)
{
    for (unsigned i = 0; i < sizeof insns / sizeof insns[0]; i++) {
        if (f->rip == (uint64_t)insns[i].start) {
            if (insns[i].start == u_int40)
                kprintf("%s: vector %lu, error code IDT=%lu EXT=%lu, ", what, f->vector,
                        (f->error >> 1) & 1, f->error & 1);
            else
                kprintf("%s: vector %lu, error code 0x%lx, ", what, f->vector, f->error);
            kprintf("CPL %lu, instruction: %s, on the RSP0 stack: %s\n", f->cs & 3, insns[i].name,
                    on_stack(f, kstack, sizeof kstack) ? "yes" : "no");
            f->rip = (uint64_t)insns[i].end;
            return;
        }
    }
    panic("%s at an unexpected place, error 0x%lx, CPL %lu", what, f->error, f->cs & 3);
}

static void on_gp(struct frame *f)
{
    report_and_skip(f, "#GP");
}

static void on_pf(struct frame *f)
{
    uint64_t cr2 = read_cr2();
    if (cr2 != SUPERVISOR_PAGE)
        panic("#PF at 0x%lx", cr2);
    kprintf("#PF: CR2=0x%lx\n", cr2);
    report_and_skip(f, "#PF");
}

static void on_bp(struct frame *f)
{
    kprintf("#BP: vector %lu from CPL %lu through a DPL 3 gate, on the IST1 stack: %s\n", f->vector,
            f->cs & 3, on_stack(f, iststack, sizeof iststack) ? "yes" : "no");
}

static void on_syscall(struct sysframe *f)
{
    int if_now = !!(read_flags() & RFLAGS_IF);
    switch (f->rax) {
    case SYS_PUTS:
        kprintf("syscall %lu (puts), kernel IF=%d, user IF=%d: ", f->rax, if_now,
                !!(f->rflags & RFLAGS_IF));
        puts((const char *)f->rdi);
        f->rax = 0;
        break;
    case SYS_ADD:
        kprintf("syscall %lu (add %lu, %lu), returns to the instruction after it: %s\n", f->rax,
                f->rdi, f->rsi, f->rip == (uint64_t)u_after_add ? "yes" : "no");
        f->rax = f->rdi + f->rsi;
        kprintf("sysretq with rax=%lu\n", f->rax);
        break;
    case SYS_EXIT:
        kprintf("syscall %lu (exit %lu): back in the kernel for good\n", f->rax, f->rdi);
        kprintf("powering off\n");
        poweroff();
    default:
        panic("unknown syscall %lu", f->rax);
    }
}

void kmain(void)
{
    vm_identity_init();
    id_pd[0][SUPERVISOR_PAGE >> 21] &= ~0x4ul;     /* no U bit */
    invlpg(SUPERVISOR_PAGE);
    gdt_init((uint64_t)(kstack + sizeof kstack), (uint64_t)(iststack + sizeof iststack));
    idt_init();
    idt_gate(3, GATE_INTR, 3, 1);       /* int3 allowed from CPL 3, IST1 */
    idt_set(3, on_bp);
    idt_set(13, on_gp);
    idt_set(14, on_pf);
    syscall_handler = on_syscall;
    syscall_init(RFLAGS_IF | 0x100 | 0x400);   /* FMASK: IF, TF, DF */
    kprintf("GDT, TSS (RSP0, IST1), IDT, syscall MSRs set; entering CPL 3 with iretq\n");
    enter_user((uint64_t)user_main, (uint64_t)(ustack + sizeof ustack), 0x202);
}
