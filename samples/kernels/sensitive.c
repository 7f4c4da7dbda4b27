/* sensitive: the unprivileged instructions that reveal or silently fail to
 * change privileged state.  The kernel first sets CR0, RFLAGS, GDT, IDT, TR
 * and LDTR to values of its own (fixed addresses, see kernel.ld), so the
 * output does not depend on the boot variant.  The same probe routine runs
 * at CPL 0 and then three times at CPL 3 (entered with IF=1, with IF=0, and
 * with IOPL=3); it records pushf, the flags after popf tries to clear IF,
 * to set IF and to raise IOPL to 3, and what sgdt, sidt, smsw, str and sldt
 * store.  At CPL 3 with IOPL 0, popf leaves IF and IOPL alone without a
 * fault; with IOPL 3, popf may change IF but still not IOPL (only CPL 0
 * can).  The user side reports through syscall. */
#include "kernel.h"

struct results {
    uint64_t pushf;                     /* 0 */
    uint64_t popf_clear_if;             /* 8 */
    uint64_t popf_set_if;               /* 16 */
    uint64_t popf_iopl3;                /* 24 */
    uint8_t gdtr[16];                   /* 32: limit (2) + base (8) */
    uint8_t idtr[16];                   /* 48 */
    uint16_t msw, tr, ldtr;             /* 64, 66, 68 */
} __attribute__((aligned(16)));

_Static_assert(__builtin_offsetof(struct results, gdtr) == 32, "layout");
_Static_assert(__builtin_offsetof(struct results, msw) == 64, "layout");
_Static_assert(__builtin_offsetof(struct results, ldtr) == 68, "layout");

/* probe(struct results *): the same instructions at every CPL; restores the
 * flags it found.  user_probe: the CPL 3 entry point. */
__asm__(
    "    .text\n"
    "    .globl probe\n"
    "probe:\n"
    "    pushfq\n"
    "    popq    0(%rdi)\n"
    "    pushfq\n"
    "    popq    %rax\n"
    "    mov     %rax, %rcx\n"
    "    and     $~0x200, %rcx\n"
    "    push    %rcx\n"
    "    popfq\n"
    "    pushfq\n"
    "    popq    8(%rdi)\n"
    "    mov     %rax, %rcx\n"
    "    or      $0x200, %rcx\n"
    "    push    %rcx\n"
    "    popfq\n"
    "    pushfq\n"
    "    popq    16(%rdi)\n"
    "    mov     %rax, %rcx\n"
    "    or      $0x3000, %rcx\n"
    "    push    %rcx\n"
    "    popfq\n"
    "    pushfq\n"
    "    popq    24(%rdi)\n"
    "    push    %rax\n"
    "    popfq\n"
    "    sgdt    32(%rdi)\n"
    "    sidt    48(%rdi)\n"
    "    smsw    64(%rdi)\n"
    "    str     66(%rdi)\n"
    "    sldt    68(%rdi)\n"
    "    ret\n"
    "    .globl user_probe\n"
    "user_probe:\n"
    "    lea     user_results(%rip), %rdi\n"
    "    call    probe\n"
    "    lea     user_results(%rip), %rdi\n"
    "    mov     $1, %eax\n"
    "    syscall\n"
    "    ud2\n");

void probe(struct results *r);
extern char user_probe[];
struct results user_results;

static uint8_t kstack[16384] __attribute__((aligned(16)));
static uint8_t ustack[16384] __attribute__((aligned(16)));

static void show_flags(const char *what, uint64_t f)
{
    kprintf("  %-28s IF=%lu IOPL=%lu\n", what, (f >> 9) & 1, (f >> 12) & 3);
}

static void show(const char *title, const struct results *r)
{
    kprintf("%s\n", title);
    show_flags("pushf:", r->pushf);
    show_flags("popf clearing IF, pushf:", r->popf_clear_if);
    show_flags("popf setting IF, pushf:", r->popf_set_if);
    show_flags("popf setting IOPL=3, pushf:", r->popf_iopl3);
    uint16_t gl, il;
    uint64_t gb, ib;
    memcpy(&gl, r->gdtr, 2);
    memcpy(&gb, r->gdtr + 2, 8);
    memcpy(&il, r->idtr, 2);
    memcpy(&ib, r->idtr + 2, 8);
    kprintf("  sgdt: base=0x%lx limit=0x%x\n", gb, gl);
    kprintf("  sidt: base=0x%lx limit=0x%x\n", ib, il);
    kprintf("  smsw: 0x%04x\n", r->msw);
    kprintf("  str: 0x%x\n", r->tr);
    kprintf("  sldt: 0x%x\n", r->ldtr);
}

static const struct {
    const char *title;
    uint64_t rflags;
} runs[] = {
    {"CPL 3, entered with IF=1 IOPL=0:", 0x202},
    {"CPL 3, entered with IF=0 IOPL=0:", 0x002},
    {"CPL 3, entered with IF=1 IOPL=3:", 0x3202},
};
static unsigned run;

static void next_run(void)
{
    if (run == sizeof runs / sizeof runs[0]) {
        kprintf("powering off\n");
        poweroff();
    }
    memset(&user_results, 0, sizeof user_results);
    enter_user((uint64_t)user_probe, (uint64_t)(ustack + sizeof ustack), runs[run].rflags);
}

static void on_syscall(struct sysframe *f)
{
    /* never returns: each report starts the next run */
    show(runs[run].title, (const struct results *)f->rdi);
    run++;
    next_run();
}

void kmain(void)
{
    write_flags(0x2);
    write_cr0(0x80010033);
    vm_identity_init();
    gdt_init((uint64_t)(kstack + sizeof kstack), 0);
    idt_init();
    syscall_handler = on_syscall;
    syscall_init(RFLAGS_IF | 0x100 | 0x400);
    kprintf("CR0=0x%lx, GDT, IDT, TR, LDTR loaded\n", read_cr0());

    struct results r;
    memset(&r, 0, sizeof r);
    probe(&r);
    show("CPL 0, IF=0 IOPL=0:", &r);
    next_run();
}
