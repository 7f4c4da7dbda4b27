/* Entry stub of the NAME.mb variant: Multiboot v1, a kernel that enters long
 * mode itself.
 *
 * The header asks for memory information (flag bit 1) and page-aligned
 * modules (bit 0); no address kludge, so the loader takes the ELF32 program
 * headers (build.sh converts the linked ELF64 image with objcopy -O
 * elf32-i386, which is the form QEMU's -kernel accepts).
 *
 * The loader enters _mb_start in 32-bit protected mode, paging off, flat
 * segments, IF=0, EAX=0x2BADB002, EBX=physical address of the Multiboot
 * information.  The stub zeroes the bss, builds its own page tables in the
 * bss (identity map of the first 4 GiB with 2 MiB pages, like the bttool
 * boot protocol), enables PAE, sets EFER.LME, enables paging, loads a
 * 64-bit GDT, far-jumps to 64-bit code and calls kentry(BOOT_MULTIBOOT,
 * info), the same C entry the NAME.elf variant uses. */
#include "kernel.h"

#define MB_MAGIC  0x1BADB002
#define MB_FLAGS  0x00000003

    .section .boot.header, "a"
    .align  4
    .long   MB_MAGIC
    .long   MB_FLAGS
    .long   -(MB_MAGIC + MB_FLAGS)

    .section .boot.text, "ax"
    .code32
    .globl _mb_start
_mb_start:
    cli
    cld
    cmp     $0x2BADB002, %eax
    jne     bad_magic
    mov     %ebx, %esi                  /* Multiboot information */

    /* zero the bss (it holds the page tables and the stack) */
    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    xor     %eax, %eax
    rep stosb

    /* PML4[0] -> PDPT; PDPT[0..3] -> PD0..PD3 */
    mov     $mb_pdpt, %eax
    or      $0x7, %eax
    mov     %eax, mb_pml4
    mov     $mb_pd, %eax
    or      $0x7, %eax
    xor     %ecx, %ecx
1:  mov     %eax, mb_pdpt(,%ecx,8)
    add     $0x1000, %eax
    inc     %ecx
    cmp     $4, %ecx
    jne     1b
    /* 2048 PDEs: 2 MiB pages, present|writable|user|PS */
    xor     %ecx, %ecx
2:  mov     %ecx, %eax
    shl     $21, %eax
    or      $0x87, %eax
    mov     %eax, mb_pd(,%ecx,8)
    mov     %ecx, %eax
    shr     $11, %eax                   /* bits 32.. of the address */
    mov     %eax, mb_pd+4(,%ecx,8)
    inc     %ecx
    cmp     $2048, %ecx
    jne     2b

    mov     $0x620, %eax                /* PAE | OSFXSR | OSXMMEXCPT */
    mov     %eax, %cr4
    mov     $mb_pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx           /* EFER.LME */
    rdmsr
    or      $0x100, %eax
    wrmsr
    mov     $0x80010033, %eax           /* PG|WP|NE|ET|MP|PE, as protocol (a) */
    mov     %eax, %cr0
    lgdt    mb_gdt_ptr
    ljmp    $0x08, $mb_long

bad_magic:
    /* not started by a Multiboot loader: nothing sensible to do */
    hlt
    jmp     bad_magic

    .code64
mb_long:
    mov     $0x10, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    mov     %eax, %fs
    mov     %eax, %gs
    lea     boot_stack_top(%rip), %rsp
    xor     %ebp, %ebp
    mov     $BOOT_MULTIBOOT, %edi
    /* %rsi: Multiboot information, zero-extended by the 32-bit mov above */
    call    kentry
3:  cli
    hlt
    jmp     3b

    .section .boot.rodata, "a"
    .align  8
mb_gdt:
    .quad   0                           /* 0x00 null */
    .quad   0x00AF9A000000FFFF          /* 0x08 64-bit code, DPL 0 */
    .quad   0x00CF92000000FFFF          /* 0x10 data, DPL 0 */
mb_gdt_end:
    .align  4
mb_gdt_ptr:
    .word   mb_gdt_end - mb_gdt - 1
    .long   mb_gdt

    .section .boot.bss, "aw", @nobits
    .align  4096
mb_pml4: .skip 4096
mb_pdpt: .skip 4096
mb_pd:   .skip 4 * 4096

    .section .note.GNU-stack, "", @progbits
