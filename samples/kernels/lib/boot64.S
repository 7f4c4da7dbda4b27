/* Entry stub of the NAME.elf variant: the bttool boot protocol.
 *
 * The loader enters at _start in 64-bit long mode, CPL 0, paging on
 * (identity map of the first 4 GiB), IF=0, with RDI = physical address of
 * the boot information block (struct bt_bootinfo, see README.md).  The stub
 * zeroes the bss (the loader does it too; this keeps a warm reboot honest),
 * switches to the kernel's own stack and calls kentry(BOOT_BTTOOL, info). */
#include "kernel.h"

    .section .boot.text, "ax"
    .code64
    .globl _start
_start:
    cli
    cld
    mov     %rdi, %rsi                  /* boot info pointer */
    lea     __bss_start(%rip), %rdi
    lea     __bss_end(%rip), %rcx
    sub     %rdi, %rcx
    xor     %eax, %eax
    rep stosb
    lea     boot_stack_top(%rip), %rsp
    xor     %ebp, %ebp
    mov     $BOOT_BTTOOL, %edi
    call    kentry
1:  cli
    hlt
    jmp     1b

    .section .note.GNU-stack, "", @progbits
