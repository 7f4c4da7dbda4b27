/* Interrupt and exception entry stubs, the syscall entry, the boot stack
 * and enter_user.  Every IDT vector has a stub that pushes a dummy error
 * code (unless the CPU pushes one), the vector number, and all general
 * registers, and calls isr_dispatch(struct frame *) (lib.c); handlers may
 * change the frame (RIP, registers) before it is restored by iretq. */
#include "kernel.h"

    .altmacro
    .macro ISR_STUB v
    .align  16
isr_stub_\v:
    .if (\v == 8) || (\v == 10) || (\v == 11) || (\v == 12) || (\v == 13) || (\v == 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushq   $0
    .endif
    pushq   $\v
    jmp     isr_common
    .endm

    .macro ISR_ADDR v
    .quad   isr_stub_\v
    .endm

    .text
    .code64
    .set    vec, 0
    .rept   256
    ISR_STUB %vec
    .set    vec, vec + 1
    .endr

isr_common:
    push    %rax
    push    %rbx
    push    %rcx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %rbp
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    cld
    mov     %rsp, %rdi
    call    isr_dispatch
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rbp
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rbx
    pop     %rax
    add     $16, %rsp                   /* vector, error code */
    iretq

    .section .rodata
    .align  8
    .globl  isr_stubs
isr_stubs:
    .set    vec, 0
    .rept   256
    ISR_ADDR %vec
    .set    vec, vec + 1
    .endr

/* syscall: RCX = user RIP, R11 = user RFLAGS, RSP still the user's.  No
 * swapgs games: a single CPU and one syscall stack. */
    .text
    .globl  syscall_entry
syscall_entry:
    mov     %rsp, syscall_user_rsp(%rip)
    lea     syscall_stack_top(%rip), %rsp
    pushq   $0                          /* keeps the call 16-byte aligned */
    pushq   syscall_user_rsp(%rip)
    push    %r11
    push    %rcx
    push    %rax
    push    %rbx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %rbp
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    cld
    mov     %rsp, %rdi
    call    *syscall_handler(%rip)
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    add     $8, %rsp                    /* r11 copy */
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rbp
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rbx
    pop     %rax
    pop     %rcx
    pop     %r11
    pop     %rsp
    sysretq

/* enter_user(rip, rsp, rflags): iretq to CPL 3 with USER_CS/USER_DS */
    .globl  enter_user
enter_user:
    pushq   $(USER_DS | 3)
    push    %rsi
    push    %rdx
    pushq   $(USER_CS | 3)
    push    %rdi
    xor     %eax, %eax
    xor     %ebx, %ebx
    xor     %ecx, %ecx
    xor     %edx, %edx
    xor     %esi, %esi
    xor     %edi, %edi
    xor     %ebp, %ebp
    xor     %r8d, %r8d
    xor     %r9d, %r9d
    xor     %r10d, %r10d
    xor     %r11d, %r11d
    iretq

    .bss
    .align  16
syscall_user_rsp:
    .skip   8
    .align  16
    .skip   16384
    .globl  syscall_stack_top
syscall_stack_top:
    .skip   16384
    .globl  boot_stack_top
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
