/* btboot: the bttool boot protocol, implemented as a Multiboot kernel so
 * that QEMU can check NAME.elf kernels and the protocol definition itself.
 *
 *   qemu-system-x86_64 ... -kernel build/btboot.mb -initrd build/NAME.elf
 *
 * QEMU loads btboot (Multiboot, 32-bit protected mode) and NAME.elf as
 * module 0.  btboot copies every PT_LOAD of the ELF64 to p_paddr and zeroes
 * the rest of p_memsz, then builds the machine state that bttool gives a
 * protocol (a) kernel (samples/kernels/README.md):
 *   GDT at 0x800 (null, 0x08 code64 DPL0, 0x10 data DPL0), limit 0x17;
 *   PML4 0x1000, PDPT 0x2000, PDs 0x3000..0x6fff: identity map of 4 GiB
 *   with 2 MiB pages (PDE 0x87, PML4E/PDPTE 0x07);
 *   boot information at 0x7000, memory map at 0x7040, command line (empty)
 *   at 0x7100; mem_bytes = (mem_upper + 1 MiB) rounded up to a MiB;
 *   CR0 0x80010033, CR4 0x620, EFER LME (LMA once paging is on), IDTR 0/0,
 *   LDTR 0, CS 0x08, data segments 0x10, RFLAGS 0x2, RSP 0x80000,
 *   RDI 0x7000, other GPRs 0, jump to e_entry.
 * TR is not loaded (QEMU leaves it 0 after the firmware: no null load is
 * possible). */

#define BI      0x7000
#define MMAP    0x7040
#define CMDLINE 0x7100

    .section .mbheader, "a"
    .align  4
    .long   0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)

    .text
    .code32
    .globl  _start
_start:
    cli
    cld
    cmp     $0x2BADB002, %eax
    jne     fail
    mov     $0x3f8, %dx                 /* no UART set-up: failures only */
    testl   $0x8, (%ebx)                /* modules present? */
    jz      fail
    cmpl    $1, 20(%ebx)                /* mods_count */
    jb      fail
    mov     8(%ebx), %eax               /* mem_upper (KiB) */
    add     $1024 + 1023, %eax
    shr     $10, %eax                   /* MiB, rounded up */
    mov     %eax, mem_mib
    mov     24(%ebx), %esi              /* mods_addr */
    mov     (%esi), %esi                /* mod_start: the ELF64 image */
    mov     %esi, image

    /* ELF64 header: magic, class 2, little endian, x86-64, ET_EXEC */
    cmpl    $0x464c457f, (%esi)
    jne     fail
    cmpw    $0x0102, 4(%esi)
    jne     fail
    cmpw    $2, 16(%esi)
    jne     fail
    cmpw    $62, 18(%esi)
    jne     fail
    mov     24(%esi), %eax              /* e_entry (low half; high must be 0) */
    mov     %eax, entry
    cmpl    $0, 28(%esi)
    jne     fail
    mov     32(%esi), %ebx              /* e_phoff */
    add     %esi, %ebx                  /* first program header */
    movzwl  56(%esi), %ebp              /* e_phnum */
1:  test    %ebp, %ebp
    jz      2f
    cmpl    $1, (%ebx)                  /* PT_LOAD */
    jne     3f
    mov     image, %esi
    add     8(%ebx), %esi               /* source: image + p_offset */
    mov     24(%ebx), %edi              /* p_paddr */
    mov     32(%ebx), %ecx              /* p_filesz */
    rep movsb
    mov     40(%ebx), %ecx              /* p_memsz - p_filesz */
    sub     32(%ebx), %ecx
    xor     %eax, %eax
    rep stosb
3:  add     $56, %ebx
    dec     %ebp
    jmp     1b
2:
    /* GDT at 0x800 */
    movl    $0, 0x800
    movl    $0, 0x804
    movl    $0x0000FFFF, 0x808
    movl    $0x00AF9A00, 0x80c
    movl    $0x0000FFFF, 0x810
    movl    $0x00CF9200, 0x814

    /* page tables */
    mov     $0x1000, %edi
    mov     $(6 * 4096 / 4), %ecx
    xor     %eax, %eax
    rep stosl
    movl    $0x2007, 0x1000
    movl    $0x3007, 0x2000
    movl    $0x4007, 0x2008
    movl    $0x5007, 0x2010
    movl    $0x6007, 0x2018
    xor     %ecx, %ecx
4:  mov     %ecx, %eax
    shl     $21, %eax
    or      $0x87, %eax
    mov     %eax, 0x3000(,%ecx,8)
    mov     %ecx, %eax
    shr     $11, %eax
    mov     %eax, 0x3004(,%ecx,8)
    inc     %ecx
    cmp     $2048, %ecx
    jne     4b

    /* boot information */
    mov     $BI, %edi
    mov     $(0x200 / 4), %ecx
    xor     %eax, %eax
    rep stosl
    movl    $0x4254424F, BI + 0         /* magic */
    movl    $1, BI + 4                  /* version */
    mov     mem_mib, %eax
    mov     %eax, %edx
    shl     $20, %eax
    shr     $12, %edx
    mov     %eax, BI + 8                /* mem_bytes */
    mov     %edx, BI + 12
    movl    $CMDLINE, BI + 16           /* cmdline: "" */
    movl    $2, BI + 24                 /* mmap_count */
    movl    $MMAP, BI + 32
    movl    $0x100000, MMAP + 8         /* [0, 1 MiB) reserved */
    movl    $2, MMAP + 16
    movl    $0x100000, MMAP + 24        /* [1 MiB, mem_bytes) usable */
    sub     $0x100000, %eax
    sbb     $0, %edx
    mov     %eax, MMAP + 32
    mov     %edx, MMAP + 36
    movl    $1, MMAP + 40

    /* long mode */
    mov     $0x620, %eax
    mov     %eax, %cr4
    mov     $0x1000, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx
    xor     %edx, %edx
    mov     $0x100, %eax
    wrmsr
    mov     $0x80010033, %eax
    mov     %eax, %cr0
    lgdt    gdtr
    ljmp    $0x08, $long64

fail:
    mov     $0x3f8, %dx
    mov     $'!', %al
    out     %al, %dx
    mov     $0xf4, %dx
    mov     $0x7e, %al                  /* QEMU exit status 253 */
    out     %al, %dx
5:  hlt
    jmp     5b

    .code64
long64:
    mov     $0x10, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    mov     %eax, %fs
    mov     %eax, %gs
    xor     %eax, %eax
    lldt    %ax
    lidt    idtr(%rip)
    mov     $0x80000, %esp
    pushq   $2
    popfq
    mov     $BI, %edi
    xor     %eax, %eax
    xor     %ebx, %ebx
    xor     %ecx, %ecx
    xor     %edx, %edx
    xor     %esi, %esi
    xor     %ebp, %ebp
    xor     %r8d, %r8d
    xor     %r9d, %r9d
    xor     %r10d, %r10d
    xor     %r11d, %r11d
    xor     %r12d, %r12d
    xor     %r13d, %r13d
    xor     %r14d, %r14d
    xor     %r15d, %r15d
    jmp     *entry(%rip)

    .data
    .align  8
entry:  .quad 0
image:  .long 0
mem_mib: .long 0
gdtr:   .word 0x17
        .long 0x800
idtr:   .word 0
        .quad 0

    .section .note.GNU-stack, "", @progbits
