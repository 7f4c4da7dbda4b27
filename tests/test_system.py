"""System mode: bttool boots the sample kernels of samples/kernels/ and
small kernels assembled here, and must produce exactly the serial output and
exit status in samples/kernels/expected/ (the same files QEMU is checked
against in test_kernels_qemu.py).

Each sample kernel is booted in both variants: NAME.elf through the bttool
boot protocol (entered in long mode) and NAME.mb through Multiboot (32-bit
protected mode; the kernel builds page tables and enters long mode itself).
The .mb images are run without --system: a Multiboot header is enough.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import programs  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

KERNELS = programs.REPO / "samples" / "kernels"
EXPECTED = KERNELS / "expected"


def _status_table() -> dict[str, int]:
    table = {}
    for line in (EXPECTED / "status.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, status, _boots = line.split()
            table[name] = int(status)
    return table


STATUS = _status_table()


@pytest.fixture(scope="session")
def kernels_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kernels")
    subprocess.run([str(KERNELS / "build.sh"), str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def boot(kernel: os.PathLike | str, cache, *options: str, timeout: float = 120,
         stdin: bytes | None = None) -> programs.Result:
    return programs.run_bttool([kernel], cache, options=list(options), timeout=timeout, stdin=stdin)


@pytest.mark.parametrize("variant", ["elf", "mb"])
@pytest.mark.parametrize("name", sorted(STATUS))
def test_sample_kernel(kernels_dir, bttool_cache, name, variant):
    """Serial output byte for byte and the exit status (power-off: 0,
    isa-debug-exit v: (v << 1) | 1), as on QEMU."""
    opts = ["--system"] if variant == "elf" else []
    r = boot(kernels_dir / f"{name}.{variant}", bttool_cache, *opts)
    assert r.stdout.decode() == (EXPECTED / f"{name}.txt").read_text()
    assert r.returncode == STATUS[name], r.stderr
    assert b"Traceback" not in r.stderr


def test_warm_boot_translates_nothing(kernels_dir, tmp_path):
    """Kernel translations go through the persistent cache like user code,
    and `bttool cache` shows them.  (A kernel driven by a timer can still
    translate a little on a warm boot: an interrupt returns to whatever
    instruction it interrupted, which may start a region never seen before.)"""
    cache = tmp_path / "cache"
    kernel = kernels_dir / "rings.mb"   # no timer: every run takes the same paths
    for _ in range(2):
        stats = tmp_path / "stats.json"
        r = boot(kernel, cache, "--stats-json", str(stats))
        assert r.returncode == 0, r.stderr
        s = json.loads(stats.read_text())
    assert s["regions_translated"] == 0 and s["regions_from_cache"] > 10, s
    ls = subprocess.run(programs.bttool_argv("cache", "--cache-dir", cache, "ls", "--image", kernel,
                                             "--json"), capture_output=True, env=programs.guest_env(),
                        cwd=programs.work_dir(), check=True)
    rows = json.loads(ls.stdout)
    modes = {r["options"].split("|")[0] for r in rows}
    assert modes == {"mode32", "mode64"}, modes    # the Multiboot stub ran as 32-bit code
    entry = min(r["guest_start"] for r in rows if r["options"].startswith("mode32"))
    show = subprocess.run(programs.bttool_argv("cache", "--cache-dir", cache, "show", hex(entry),
                                               "--image", kernel, "--section", "guest"),
                          capture_output=True, env=programs.guest_env(), cwd=programs.work_dir(), check=True)
    assert b"== guest code ==" in show.stdout


# -- small kernels assembled here ----------------------------------------------------

PRELUDE = """
    .code64
    .globl _start
    .set COM1, 0x3f8
    .macro PUTS label
    lea \\label(%rip), %rsi
    call puts
    .endm
    .macro GATE vector, handler     # 64-bit interrupt gate in the IDT at rdi
    lea \\handler(%rip), %rax
    mov %ax, \\vector*16(%rdi)
    movw $0x08, \\vector*16+2(%rdi)
    movw $0x8e00, \\vector*16+4(%rdi)
    shr $16, %rax
    mov %ax, \\vector*16+6(%rdi)
    shr $16, %rax
    mov %eax, \\vector*16+8(%rdi)
    .endm
"""
PUTS = """
puts:                          # print the NUL-terminated string at rsi
    mov $COM1, %dx
1:  lodsb
    test %al, %al
    jz 2f
    outb %al, %dx
    jmp 1b
2:  ret
poweroff:
    mov $0x604, %dx
    mov $0x2000, %ax
    outw %ax, %dx
    cli
    hlt
"""


def assemble(tmp_path: Path, name: str, body: str) -> Path:
    """An ELF64 kernel at 1 MiB for the bttool boot protocol."""
    src = tmp_path / f"{name}.S"
    src.write_text(PRELUDE + body + PUTS)
    obj, out = tmp_path / f"{name}.o", tmp_path / f"{name}.elf"
    subprocess.run(["gcc", "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run(["ld", "-nostdlib", "-static", "-z", "max-page-size=0x1000", "-Ttext=0x100000",
                    "-e", "_start", str(obj), "-o", str(out)], check=True)
    return out


SELF_MODIFYING = r"""
_start:
    # call code that returns an immediate, patch the immediate, call again:
    # the second call must see the new bytes (the first translation is dropped)
    call get
    add $'0', %al
    mov %al, out1(%rip)
    movb $7, get+1(%rip)          # same page as the code running now
    call get
    add $'0', %al
    mov %al, out2(%rip)
    # copy a routine to a fresh page and run it, twice with different bytes
    lea tmpl(%rip), %rsi
    mov $0x300000, %rdi
    mov $tmpl_end - tmpl, %ecx
    rep movsb
    mov $0x300000, %rax
    call *%rax
    add $'0', %al
    mov %al, out3(%rip)
    movb $9, 0x300001
    mov $0x300000, %rax
    call *%rax
    add $'0', %al
    mov %al, out4(%rip)
    PUTS msg
    call poweroff
get:
    mov $3, %al
    ret
tmpl:
    mov $5, %al
    ret
tmpl_end:
    .data
msg: .ascii "values: "
out1: .ascii "?"
      .ascii " "
out2: .ascii "?"
      .ascii " "
out3: .ascii "?"
      .ascii " "
out4: .ascii "?"
      .asciz "\n"
"""


def test_self_modifying_code(tmp_path, bttool_cache):
    r = boot(assemble(tmp_path, "smc", SELF_MODIFYING), bttool_cache, "--system")
    assert (r.returncode, r.stdout) == (0, b"values: 3 7 5 9\n"), r.stderr


TIMER_SPIN = r"""
_start:
    lea idt(%rip), %rdi            # IDT: vector 0x20 -> tick
    GATE 0x20, tick
    lidt idtr(%rip)
    mov $0x11, %al                 # PIC: ICW1..4, IRQ0 -> vector 0x20, only IRQ0 unmasked
    out %al, $0x20
    mov $0x20, %al
    out %al, $0x21
    mov $4, %al
    out %al, $0x21
    mov $1, %al
    out %al, $0x21
    mov $0xfe, %al
    out %al, $0x21
    mov $0x34, %al                 # PIT channel 0, mode 2, 1 kHz
    out %al, $0x43
    mov $1193, %ax
    out %al, $0x40
    mov %ah, %al
    out %al, $0x40
    PUTS started
    sti
spin:
    jmp spin                       # must still receive the timer interrupt
tick:
    incl count(%rip)
    mov $0x20, %al
    out %al, $0x20                 # EOI
    cmpl $5, count(%rip)
    jb 1f
    PUTS done
    call poweroff
1:  iretq
    .data
    .align 16
idtr: .word 0x2ff
      .quad idt
started: .asciz "spinning with sti; jmp .\n"
done: .asciz "5 timer interrupts taken\n"
count: .long 0
    .align 16
idt: .fill 0x300, 1, 0
"""


def test_timer_interrupts_reach_a_spinning_guest(tmp_path, bttool_cache):
    r = boot(assemble(tmp_path, "spin", TIMER_SPIN), bttool_cache, "--system", timeout=60)
    assert (r.returncode, r.stdout) == (0, b"spinning with sti; jmp .\n5 timer interrupts taken\n"), \
        r.stderr


def test_hlt_with_interrupts_disabled_ends_the_run(tmp_path, bttool_cache):
    k = assemble(tmp_path, "halt", "_start:\n    PUTS msg\n    cli\n    hlt\n"
                 "    .data\nmsg: .asciz \"halting\\n\"\n")
    r = boot(k, bttool_cache, "--system", timeout=60)
    assert (r.returncode, r.stdout) == (0, b"halting\n")
    assert b"bttool: guest halted with interrupts disabled at 0x" in r.stderr


def test_guest_cli_does_not_block_host_signals(tmp_path, bttool_cache):
    """A guest spinning with interrupts off still stops on the host's ^C:
    its cli acted on the virtual CPU only."""
    k = assemble(tmp_path, "clispin", "_start:\n    PUTS msg\n    cli\n1:  jmp 1b\n"
                 "    .data\nmsg: .asciz \"spinning\\n\"\n")
    cmd = programs.bttool_command([k], bttool_cache, ["--system"])
    p = subprocess.Popen(cmd, env=programs.guest_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"spinning\n"
        time.sleep(0.3)
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=20) == -signal.SIGINT
    finally:
        p.kill()
        p.wait()


def test_reset_limit(tmp_path, bttool_cache):
    """ud2 with no IDT: #UD cannot be delivered -> #DF -> triple fault ->
    reset, again and again, until --max-resets."""
    k = assemble(tmp_path, "triple", "_start:\n    PUTS msg\n    ud2\n"
                 "    .data\nmsg: .asciz \"booted\\n\"\n")
    r = boot(k, bttool_cache, "--system", "--max-resets", "2", timeout=60)
    assert r.stdout == b"booted\n" * 3
    assert r.returncode == 123
    assert b"reset more than --max-resets=2 times (last: triple fault" in r.stderr


def test_uart_input(tmp_path, bttool_cache):
    """COM1 receive: the guest echoes stdin upper-cased until a '.'."""
    k = assemble(tmp_path, "echo", r"""
_start:
    mov $COM1+5, %dx
1:  inb %dx, %al
    test $1, %al                   # data ready
    jz 1b
    mov $COM1, %dx
    inb %dx, %al
    cmp $'.', %al
    je 2f
    cmp $'a', %al
    jb 3f
    sub $32, %al
3:  outb %al, %dx
    mov $COM1+5, %dx
    jmp 1b
2:  call poweroff
""")
    r = boot(k, bttool_cache, "--system", stdin=b"hello, vm.ignored", timeout=60)
    assert (r.returncode, r.stdout) == (0, b"HELLO, VM")


@pytest.mark.parametrize("content, message", [
    (b"", "not an ELF kernel"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 9, "truncated"),
    (b"just some text\n" * 10, "not an ELF kernel"),
])
def test_bad_kernel_images(tmp_path, bttool_cache, content, message):
    k = tmp_path / "bad"
    k.write_bytes(content)
    r = boot(k, bttool_cache, "--system", timeout=60)
    assert r.returncode == 126
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bttool: error: ") and message in lines[0], lines


def test_debug_exit_status(tmp_path, bttool_cache):
    k = assemble(tmp_path, "dexit", "_start:\n    mov $0x15, %eax\n    out %eax, $0xf4\n    hlt\n")
    assert boot(k, bttool_cache, "--system", timeout=60).returncode == (0x15 << 1) | 1


PRIVILEGED_MISC = r"""
    .macro EXPECT value, name       # compare rax with \value, print "name ok|BAD"
    mov $\value, %rbx
    lea ok(%rip), %r13
    cmp %rbx, %rax
    je 9f
    lea bad(%rip), %r13
9:  lea 8f(%rip), %rsi
    call puts
    mov %r13, %rsi
    call puts
    .section .rodata
8:  .asciz "\name "
    .text
    .endm
_start:
    lea idt(%rip), %rdi             # vector 13 (#GP) -> gp_handler
    GATE 13, gp_handler
    lidt idtr(%rip)
    # swapgs exchanges GS.base and KERNEL_GS_BASE
    mov $0xc0000101, %ecx
    mov $0x5678, %eax
    xor %edx, %edx
    wrmsr
    mov $0xc0000102, %ecx
    mov $0x1234, %eax
    wrmsr
    swapgs
    mov $0xc0000101, %ecx
    rdmsr
    EXPECT 0x1234, swapgs
    # clts clears CR0.TS; lmsw sets MP/EM/TS bits but cannot clear PE
    mov %cr0, %rax
    or $8, %rax
    mov %rax, %cr0
    clts
    mov %cr0, %rax
    and $8, %rax
    EXPECT 0, clts
    mov $0x8, %ax
    lmsw %ax
    mov %cr0, %rax
    and $0xf, %rax
    EXPECT 0x9, lmsw
    wbinvd
    # debug registers are plain virtual registers
    mov $0x4000, %rax
    mov %rax, %dr0
    xor %eax, %eax
    mov %dr0, %rax
    EXPECT 0x4000, dr0
    mov %dr7, %rax
    EXPECT 0x400, dr7
    # the virtual TSC only moves forward
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    mov %rax, %r12
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    cmp %r12, %rax
    seta %al
    movzx %al, %eax
    EXPECT 1, rdtsc
    # an MSR the virtual CPU does not have: #GP, the handler skips the wrmsr
    mov $0x12345, %ecx
    wrmsr
    mov gp_count(%rip), %eax
    EXPECT 1, unknown-msr-gp
    # cpuid answers from the virtual CPU model
    mov $0x80000002, %eax
    cpuid
    mov %eax, %eax
    EXPECT 0x6f747462, cpuid-brand  # "btto": the brand string is "bttool virtual ..."
    # rdrand: CF=1 with the other flags clear; a 16-bit destination keeps
    # the rest of the register, a 32-bit one is zero-extended
    mov $-1, %rbx
    mov $-1, %rcx
    pushfq
    orq $0x8d5, (%rsp)
    popfq
    rdrand %bx
    rdseed %ecx
    pushfq
    pop %rax
    and $0x8d5, %eax
    shr $16, %rbx
    shr $32, %rcx
    shl $4, %rcx
    or %rcx, %rax
    mov $0xffffffffffff, %rdx
    cmp %rdx, %rbx
    jne 1f
    or $0x100, %rax
1:
    EXPECT 0x101, rdrand
    # string I/O: rep insb from the UART, rep outsb to it
    lea buf(%rip), %rdi
    mov $COM1, %dx
    mov $3, %ecx
    rep insb
    lea buf(%rip), %rsi
    mov $3, %ecx
    rep outsb
    mov %ecx, %eax
    EXPECT 0, rep-outsb
    call poweroff
gp_handler:
    incl gp_count(%rip)
    addq $2, 8(%rsp)                # skip the 2-byte wrmsr (after the error code)
    add $8, %rsp                    # pop the error code
    iretq
    .section .rodata
ok: .asciz "ok\n"
bad: .asciz "BAD\n"
    .data
    .align 16
idtr: .word 0xff
      .quad idt
gp_count: .long 0
buf: .fill 4, 1, 0
    .align 16
idt: .fill 0x100, 1, 0
"""


def test_privileged_and_sensitive_instructions(tmp_path, bttool_cache):
    """swapgs, clts, lmsw, wbinvd, mov DRn, rdtsc, rdmsr/wrmsr (#GP on an
    unknown MSR), cpuid, rdrand/rdseed and string port I/O act on the
    virtual CPU."""
    r = boot(assemble(tmp_path, "misc", PRIVILEGED_MISC), bttool_cache, "--system",
             stdin=b"xyz", timeout=60)
    expected = ("swapgs ok\nclts ok\nlmsw ok\ndr0 ok\ndr7 ok\nrdtsc ok\nunknown-msr-gp ok\n"
                "cpuid-brand ok\nrdrand ok\nxyzrep-outsb ok\n")
    assert (r.returncode, r.stdout.decode()) == (0, expected), r.stderr


ADDRESS_SPACES = r"""
    # two address spaces mapping virtual 0x40000000 to different code pages
    .macro TABLES pml4, code
    movq $\pml4 + 0x1007, \pml4           # PML4[0] -> PDPT
    movq $0x3007, \pml4 + 0x1000          # PDPT[0] -> the boot identity PD (first GiB)
    movq $\pml4 + 0x2007, \pml4 + 0x1008  # PDPT[1] -> PD for 0x40000000
    movq $\pml4 + 0x3007, \pml4 + 0x2000  # PD[0] -> PT
    movq $\code + 7, \pml4 + 0x3000       # PT[0] -> the code page
    .endm
_start:
    TABLES 0x400000, 0x500000
    TABLES 0x410000, 0x501000
    movl $0xc3000000 + 0x01b8, 0x500000   # mov $1, %eax; ret  (b8 01 00 00 00 c3)
    movw $0xc300, 0x500004
    movl $0xc3000000 + 0x02b8, 0x501000   # mov $2, %eax; ret
    movw $0xc300, 0x501004
    mov $0x400000, %rax
    call run
    mov $0x410000, %rax
    call run
    mov $0x400000, %rax
    call run
    lea nl(%rip), %rsi
    call puts
    call poweroff
run:                                       # switch to address space rax, call 0x40000000
    mov %rax, %cr3
    mov $0x40000000, %rax
    call *%rax
    add $'0', %al
    mov %al, digit(%rip)
    lea digit(%rip), %rsi
    jmp puts
    .data
digit: .asciz "?"
nl: .asciz "\n"
"""


def test_cr3_switch_runs_the_code_now_mapped(tmp_path, bttool_cache):
    """The same virtual address holds different code in two address
    spaces: after each CR3 write the code now mapped runs."""
    r = boot(assemble(tmp_path, "aspaces", ADDRESS_SPACES), bttool_cache, "--system", timeout=60)
    assert (r.returncode, r.stdout) == (0, b"121\n"), r.stderr


DOUBLE_FAULT = r"""
_start:
    lea idt(%rip), %rdi             # only vector 8 (#DF) has a gate
    GATE 8, df_handler
    lidt idtr(%rip)
    ud2                             # #UD: no gate -> #NP; no gate -> #DF
df_handler:
    cmpq $0, (%rsp)                 # #DF pushes error code 0
    jne 1f
    PUTS msg
1:  call poweroff
    .data
msg: .asciz "double fault delivered with error code 0\n"
    .align 16
idtr: .word 0xff
      .quad idt
    .align 16
idt: .fill 0x100, 1, 0
"""


def test_double_fault(tmp_path, bttool_cache):
    """An exception whose gate is missing escalates (#NP, then #DF) as the
    SDM's double-fault rules say; the #DF handler runs."""
    r = boot(assemble(tmp_path, "df", DOUBLE_FAULT), bttool_cache, "--system", timeout=60)
    assert (r.returncode, r.stdout) == (0, b"double fault delivered with error code 0\n"), r.stderr
