"""System mode under bad kernel images and odd guest memory accesses
(issue 24).

* A malformed kernel is refused before it runs: status 126, exactly one
  ``bttool: error: ...`` line on stderr, within a bounded time (the run is
  killed and the test fails after TIMEOUT seconds; before the fix several of
  these ran zeroed memory until killed).  The images are made here from two
  good kernels assembled by the tests, by patching bytes: an ELF64 kernel of
  the bttool boot protocol and a Multiboot kernel with the address fields.
* A guest access that spans two virtual pages whose frames are not adjacent
  reads and writes each part in its own frame, and an access beyond RAM
  reads all ones and writes nothing, as on a PC; code fetched from beyond
  RAM is an invalid opcode (#UD), a page table beyond RAM a reserved-bit
  #PF.
"""
from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import programs  # noqa: E402
import test_system  # noqa: E402  (its PUTS)
from programs import bttool_cache  # noqa: E402,F401  (fixture)

TIMEOUT = 30          # seconds: a malformed kernel must be refused well within this

SERIAL = r"""
    .set COM1, 0x3f8
    .macro PUTS label
    lea \label(%rip), %rsi
    call puts
    .endm
"""
PUTS = "\n    .text\n" + test_system.PUTS     # puts (string at rsi to COM1), poweroff


def _build(tmp_path: Path, name: str, source: str, ld_args: list[str], as_args: list[str] = ()) -> Path:
    src, obj, out = tmp_path / f"{name}.S", tmp_path / f"{name}.o", tmp_path / name
    src.write_text(source)
    subprocess.run(["gcc", *as_args, "-c", str(src), "-o", str(obj)], check=True)
    subprocess.run(["ld", "-nostdlib", "-static", "-z", "max-page-size=0x1000", "-Ttext=0x100000",
                    "-e", "_start", *ld_args, str(obj), "-o", str(out)], check=True)
    return out


def assemble64(tmp_path: Path, name: str, body: str) -> Path:
    """An ELF64 kernel at 1 MiB for the bttool boot protocol."""
    return _build(tmp_path, f"{name}.elf", "    .code64\n    .globl _start\n" + SERIAL + body + PUTS, [])


def boot(kernel: os.PathLike | str, cache, *options: str, timeout: float = TIMEOUT) -> programs.Result:
    return programs.run_bttool([kernel], cache, options=list(options), timeout=timeout)


# -- the good kernels the malformed ones are made from ---------------------------------

HELLO64 = r"""
_start:
    PUTS msg
    call poweroff
    .data
msg: .asciz "hello\n"
    .bss
    .fill 0x2000, 1, 0
"""

# A flat binary with a Multiboot header carrying the address fields (flag
# 16): the whole file is loaded at load_addr, bss follows, 32-bit entry.
KLUDGE32 = r"""
    .code32
    .globl _start
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010000
    .text
header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long header                # header_addr
    .long header                # load_addr
    .long load_end              # load_end_addr
    .long bss_end               # bss_end_addr
    .long _start                # entry_addr
_start:
    mov $msg, %esi
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    outb %al, %dx
    jmp 1b
2:  mov $0x604, %dx
    mov $0x2000, %ax
    outw %ax, %dx
    cli
    hlt
msg: .asciz "kludge\n"
    .balign 4
load_end:
    .bss
    .fill 0x1000, 1, 0
bss_end:
"""
MB_FIELDS = 12      # header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr follow


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, bytes]:
    """The two good images (each boots and prints its line)."""
    d = tmp_path_factory.mktemp("good")
    elf = assemble64(d, "hello", HELLO64)
    flat = _build(d, "kludge.bin", KLUDGE32, ["-m", "elf_i386", "--oformat", "binary"], ["-m32"])
    return {"elf": elf.read_bytes(), "kludge": flat.read_bytes()}


def test_the_good_images_boot(good, tmp_path, bttool_cache):
    """The base of every malformed image below is itself fine."""
    for name, flags, out in (("elf", ["--system"], b"hello\n"), ("kludge", [], b"kludge\n")):
        k = tmp_path / name
        k.write_bytes(good[name])
        r = boot(k, bttool_cache, *flags)
        assert (r.returncode, r.stdout) == (0, out), r.stderr


# -- patching helpers ---------------------------------------------------------------------

def phdrs(raw: bytes) -> list[int]:
    """File offsets of the program headers of an ELF64 image."""
    phoff, = struct.unpack_from("<Q", raw, 32)
    phentsize, phnum = struct.unpack_from("<HH", raw, 54)
    return [phoff + i * phentsize for i in range(phnum)]


def loads(raw: bytes) -> list[int]:
    """File offsets of the PT_LOAD program headers, in file order."""
    return [o for o in phdrs(raw) if struct.unpack_from("<I", raw, o)[0] == 1]


def text_load(raw: bytes) -> int:
    """The PT_LOAD that holds the entry point."""
    entry, = struct.unpack_from("<Q", raw, 24)
    for o in loads(raw):
        paddr, filesz = struct.unpack_from("<Q", raw, o + 24)[0], struct.unpack_from("<Q", raw, o + 32)[0]
        if paddr <= entry < paddr + filesz:
            return o
    raise AssertionError("no segment holds the entry point")


def patched(raw: bytes, *edits: tuple[str, int, int]) -> bytes:
    """``raw`` with struct-formatted values written at offsets."""
    out = bytearray(raw)
    for fmt, off, value in edits:
        struct.pack_into(fmt, out, off, value)
    return bytes(out)


def elf_case(name: str):
    """Malformed variants of the ELF64 kernel, by name."""
    def make(raw: bytes) -> bytes:
        t = text_load(raw)
        first, second = loads(raw)[0], loads(raw)[1]
        p_paddr, p_filesz, p_memsz = t + 24, t + 32, t + 40
        return {
            "entry-0xc0000000": lambda: patched(raw, ("<Q", 24, 0xC0000000)),
            "entry-in-bss": lambda: patched(raw, ("<Q", 24, max(
                struct.unpack_from("<Q", raw, o + 24)[0] + struct.unpack_from("<Q", raw, o + 40)[0]
                for o in loads(raw)) - 16)),
            "entry-non-canonical": lambda: patched(raw, ("<Q", 24, 0x8000_0000_0010_0000)),
            "phentsize-0": lambda: patched(raw, ("<H", 54, 0)),
            "phentsize-64": lambda: patched(raw, ("<H", 54, 64)),
            "phnum-65535": lambda: patched(raw, ("<H", 56, 0xFFFF)),
            "phoff-beyond-file": lambda: patched(raw, ("<Q", 32, len(raw) + 4096)),
            "phoff-huge": lambda: patched(raw, ("<Q", 32, (1 << 64) - 8)),
            "filesz-over-memsz": lambda: patched(raw, ("<Q", p_memsz, 1)),
            "segment-beyond-file": lambda: patched(raw, ("<Q", p_filesz, len(raw) * 4),
                                                   ("<Q", p_memsz, len(raw) * 4)),
            "memsz-huge": lambda: patched(raw, ("<Q", p_memsz, 1 << 62)),
            "segment-beyond-ram": lambda: patched(raw, ("<Q", p_paddr, 0x8000000 - 8)),
            "segment-above-4g": lambda: patched(raw, ("<Q", p_paddr, 5 << 30)),
            "segment-on-page-tables": lambda: patched(raw, ("<Q", p_paddr, 0x1000)),
            "overlapping-segments": lambda: patched(raw, ("<Q", second + 24,
                                                          struct.unpack_from("<Q", raw, first + 24)[0])),
            "no-pt-load": lambda: patched(raw, *[("<I", o, 6) for o in loads(raw)]),
            "big-endian": lambda: patched(raw, ("<B", 5, 2)),
            "not-x86": lambda: patched(raw, ("<H", 18, 183)),
            "bad-class": lambda: patched(raw, ("<B", 4, 7)),
            "truncated-header": lambda: raw[:40],
            "truncated-phdrs": lambda: raw[:64 + 20],
            "truncated-segment": lambda: raw[:struct.unpack_from("<Q", raw, t + 8)[0] + 4],
            "class-32-over-64-bit-headers": lambda: patched(raw, ("<B", 4, 1)),
        }[name]()
    return make


ELF_CASES = {
    "entry-0xc0000000": "entry point 0xc0000000 is outside the loaded bytes",
    "entry-in-bss": "is outside the loaded bytes",
    "entry-non-canonical": "is outside the loaded bytes",
    "phentsize-0": "program header size 0",
    "phentsize-64": "program header size 64",
    "phnum-65535": "truncated program headers",
    "phoff-beyond-file": "truncated program headers",
    "phoff-huge": "truncated program headers",
    "filesz-over-memsz": "larger than its memory size",
    "segment-beyond-file": "truncated segment",
    "memsz-huge": "does not fit in 128 MiB of guest memory",
    "segment-beyond-ram": "does not fit in 128 MiB of guest memory",
    "segment-above-4g": "does not fit in 128 MiB",
    "segment-on-page-tables": "overlaps the boot structures",
    "overlapping-segments": "overlap",
    "no-pt-load": "no loadable segments",
    "big-endian": "not a little-endian ELF",
    "not-x86": "not an x86 kernel",
    "bad-class": "bad ELF class",
    "truncated-header": "truncated ELF header",
    "truncated-phdrs": "truncated program headers",
    "truncated-segment": "truncated segment",
    "class-32-over-64-bit-headers": "program header size 0",
}


def kludge_case(name: str):
    """Malformed variants of the Multiboot address-kludge kernel, by name."""
    def make(raw: bytes) -> bytes:
        _header, load_addr, load_end, bss_end, entry = struct.unpack_from("<IIIII", raw, MB_FIELDS)
        f = MB_FIELDS
        return {
            "load-end-before-load-addr": lambda: patched(raw, ("<I", f + 8, load_addr - 0x1000)),
            "header-below-load-range": lambda: patched(raw, ("<I", f, load_addr - 0x100)),
            "header-beyond-load-range": lambda: patched(raw, ("<I", f, load_end + 0x10)),
            "entry-outside": lambda: patched(raw, ("<I", f + 16, 0xC0000000)),
            "entry-at-load-end": lambda: patched(raw, ("<I", f + 16, load_end)),
            "entry-in-bss": lambda: patched(raw, ("<I", f + 16, bss_end - 4)),
            "bss-end-before-load-end": lambda: patched(raw, ("<I", f + 12, load_end - 4)),
            "bss-beyond-ram": lambda: patched(raw, ("<I", f + 12, 0xFFFF0000)),
            "load-end-beyond-file": lambda: patched(raw, ("<I", f + 8, load_addr + len(raw) + 64)),
            "load-below-loader-area": lambda: patched(raw, ("<I", f, 0x1000), ("<I", f + 4, 0x1000),
                                                      ("<I", f + 8, 0x1000 + load_end - load_addr),
                                                      ("<I", f + 12, 0), ("<I", f + 16, 0x1000 + entry - load_addr)),
            "truncated-header": lambda: raw[:MB_FIELDS + 8],
            "unknown-required-flag": lambda: patched(raw, ("<I", 4, 0x10008),
                                                     ("<I", 8, (-(0x1BADB002 + 0x10008)) & 0xFFFFFFFF)),
        }[name]()
    return make


KLUDGE_CASES = {
    "load-end-before-load-addr": "load_end_addr",
    "header-below-load-range": "header_addr",
    "header-beyond-load-range": "is not inside the loaded range",
    "entry-outside": "entry point 0xc0000000 is outside the loaded bytes",
    "entry-at-load-end": "is outside the loaded bytes",
    "entry-in-bss": "is outside the loaded bytes",
    "bss-end-before-load-end": "bss_end_addr",
    "bss-beyond-ram": "does not fit in 128 MiB",
    "load-end-beyond-file": "outside the file",
    "load-below-loader-area": "overlaps the boot structures",
    "truncated-header": "truncated Multiboot header",
    "unknown-required-flag": "requires features",
}


def assert_refused(r: programs.Result, message: str, wall: float) -> None:
    """Status 126, one ``bttool: error:`` line naming the problem, nothing
    on stdout, no traceback, and quickly."""
    lines = r.stderr.decode(errors="replace").splitlines()
    assert r.returncode == 126, lines
    assert len(lines) == 1 and lines[0].startswith("bttool: error: ") and message in lines[0], lines
    assert r.stdout == b""
    assert wall < TIMEOUT


@pytest.mark.parametrize("case", sorted(ELF_CASES))
def test_malformed_elf64_kernel(good, tmp_path, bttool_cache, case):
    k = tmp_path / f"{case}.elf"
    k.write_bytes(elf_case(case)(good["elf"]))
    t0 = time.monotonic()
    r = boot(k, bttool_cache, "--system")
    assert_refused(r, ELF_CASES[case], time.monotonic() - t0)


@pytest.mark.parametrize("case", sorted(KLUDGE_CASES))
@pytest.mark.parametrize("system", [True, False], ids=["system", "sniffed"])
def test_malformed_multiboot_kludge_kernel(good, tmp_path, bttool_cache, case, system):
    """Refused both with --system and when only the Multiboot header
    makes bttool boot it."""
    k = tmp_path / f"{case}.bin"
    k.write_bytes(kludge_case(case)(good["kludge"]))
    t0 = time.monotonic()
    r = boot(k, bttool_cache, *(["--system"] if system else []))
    assert_refused(r, KLUDGE_CASES[case], time.monotonic() - t0)


@pytest.mark.parametrize("system", [True, False], ids=["system", "sniffed"])
def test_a_fifo_is_refused_without_blocking(tmp_path, bttool_cache, system):
    """Opening a FIFO for reading waits for a writer: bttool must not, nor
    when it only looks for a Multiboot header (without --system)."""
    fifo = tmp_path / "kernel.fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    r = boot(fifo, bttool_cache, *(["--system"] if system else []))
    assert_refused(r, "is a FIFO" if system else "", time.monotonic() - t0)


@pytest.mark.parametrize("what, message", [
    ("directory", "is a directory"),
    ("empty", "not an ELF kernel"),
    ("chardev", "is a character device"),
    ("unreadable", "Permission denied"),
])
def test_files_that_are_no_kernel(tmp_path, bttool_cache, what, message):
    if what == "directory":
        k = tmp_path / "dir"
        k.mkdir()
    elif what == "empty":
        k = tmp_path / "empty"
        k.write_bytes(b"")
    elif what == "chardev":
        k = Path("/dev/zero")          # reading it would never end
    else:
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        k = tmp_path / "secret"
        k.write_bytes(b"\x7fELF")
        k.chmod(0)
    t0 = time.monotonic()
    r = boot(k, bttool_cache, "--system")
    assert_refused(r, message, time.monotonic() - t0)
    if what == "unreadable":
        k.chmod(stat.S_IRUSR | stat.S_IWUSR)


# -- memory accesses that one TLB entry cannot serve ----------------------------------

# Virtual 0x40000000 and 0x40001000 map to frames 0x300000 and 0x200000: an
# access across the boundary touches the end of one frame and the start of
# another that precedes it.  Each result is printed as text.
SPLIT_ACCESS = r"""
    .macro SHOW phys                # print the 8 bytes at physical \phys
    mov \phys, %rax
    mov %rax, buf(%rip)
    PUTS buf
    PUTS nl
    .endm
_start:
    movq $0x500003, 0x4000          # PD entry of 0x40000000 -> page table at 0x500000
    movq $0x300003, 0x500000        # 0x40000000 -> frame 0x300000
    movq $0x200003, 0x500008        # 0x40001000 -> frame 0x200000
    mov %cr3, %rax
    mov %rax, %cr3
    mov $0x6867666564636261, %rax   # "abcdefgh" at the end of frame 0x300000
    mov %rax, 0x300ff8
    mov $0x706f6e6d6c6b6a69, %rax   # "ijklmnop" at the start of frame 0x200000
    mov %rax, 0x200000
    mov 0x40000ffc, %rax            # split read: "efghijkl"
    mov %rax, buf(%rip)
    PUTS buf
    PUTS nl
    mov $0x4847464544434241, %rax   # split write of "ABCDEFGH" at 0x40000ffa
    mov %rax, 0x40000ffa
    SHOW 0x300ff8                   # "abABCDEF"
    SHOW 0x200000                   # "GHklmnop"
    addl $0x01010101, 0x40000ffe    # split read-modify-write: "EFGH" -> "FGHI"
    SHOW 0x300ff8                   # "abABCDFG"
    SHOW 0x200000                   # "HIklmnop"
    mov $0x5a595857, %eax           # "WXYZ"
    xchg %eax, 0x40000ffe           # split locked exchange, old value back in eax
    mov %eax, buf(%rip)
    movl $0, buf+4(%rip)
    PUTS buf                        # "FGHI"
    PUTS nl
    SHOW 0x300ff8                   # "abABCDWX"
    SHOW 0x200000                   # "YZklmnop"
    movdqu 0x40000ff8, %xmm0        # 16-byte split read
    movdqu %xmm0, wide(%rip)
    PUTS wide                       # "abABCDWXYZklmnop"
    PUTS nl
    # an interrupt frame pushed across the boundary by the runtime and
    # popped by iretq
    lea idt(%rip), %rdi
    lea handler(%rip), %rax
    mov %ax, 0x30*16(%rdi)
    movw $0x08, 0x30*16+2(%rdi)
    movw $0x8e00, 0x30*16+4(%rdi)
    shr $16, %rax
    mov %ax, 0x30*16+6(%rdi)
    shr $16, %rax
    mov %eax, 0x30*16+8(%rdi)
    lidt idtr(%rip)
    mov %rsp, %rbx
    mov $0x40001010, %rsp           # the 40-byte frame spans both pages
    int $0x30
    mov %rbx, %rsp
    PUTS back
    call poweroff
handler:
    mov 8(%rsp), %rax               # CS from the split frame
    cmp $0x08, %rax
    jne 1f
    PUTS inhandler
1:  iretq
    .data
nl: .asciz "\n"
inhandler: .asciz "handler ran on a split stack\n"
back: .asciz "iretq returned\n"
buf: .fill 9, 1, 0
wide: .fill 17, 1, 0
    .align 16
idtr: .word 0x3ff
      .quad idt
    .align 16
idt: .fill 0x400, 1, 0
"""
SPLIT_OUTPUT = ("efghijkl\nabABCDEF\nGHklmnop\nabABCDFG\nHIklmnop\nFGHI\nabABCDWX\nYZklmnop\n"
                "abABCDWXYZklmnop\nhandler ran on a split stack\niretq returned\n")


def test_access_across_pages_that_are_not_physically_adjacent(tmp_path, bttool_cache):
    r = boot(assemble64(tmp_path, "split", SPLIT_ACCESS), bttool_cache, "--system")
    assert (r.returncode, r.stdout.decode()) == (0, SPLIT_OUTPUT), r.stderr


# Booted with --memory 16M: RAM ends at 0x1000000 (identity-mapped, like the
# rest of the first 4 GiB).
BEYOND_RAM = r"""
    .macro CHECK label              # print "label ok" if ZF else "label BAD"
    lea ok(%rip), %rsi
    je 9f
    lea bad(%rip), %rsi
9:  push %rsi
    PUTS \label
    pop %rsi
    call puts
    .endm
    .macro GATE vector, handler
    lea \handler(%rip), %rax
    mov %ax, \vector*16(%rdi)
    movw $0x08, \vector*16+2(%rdi)
    movw $0x8e00, \vector*16+4(%rdi)
    shr $16, %rax
    mov %ax, \vector*16+6(%rdi)
    shr $16, %rax
    mov %eax, \vector*16+8(%rdi)
    .endm
_start:
    lea idt(%rip), %rdi
    GATE 6, ud_handler
    GATE 14, pf_handler
    lidt idtr(%rip)
    mov 0x10000000, %rax            # read beyond RAM: all ones
    cmp $-1, %rax
    CHECK m_read
    movq $0x1234, 0x10000000        # a write there is discarded
    mov 0x10000000, %rax
    cmp $-1, %rax
    CHECK m_write
    addl $1, 0x10000040             # read-modify-write: reads ones, writes nothing
    mov 0x10000040, %eax
    cmp $0xffffffff, %eax
    CHECK m_rmw
    movl $0x11223344, 0xfffffc      # the last 4 bytes of RAM
    mov 0xfffffc, %rax              # straddling the end: RAM, then ones
    mov $0xffffffff11223344, %rbx
    cmp %rbx, %rax
    CHECK m_sread
    mov $0x5566778899aabbcc, %rax
    mov %rax, 0xfffffc              # only the RAM half is stored
    mov 0xfffffc, %eax
    cmp $0x99aabbcc, %eax
    CHECK m_swrite
    # a page table beyond RAM: its entry reads as all ones, present with
    # reserved bits set: #PF with error code P|RSVD
    movq $0x20000003, 0x4008        # PD entry of 0x40200000 -> "page table" at 512 MiB
    mov %cr3, %rax
    mov %rax, %cr3
    lea after_pf(%rip), %rax
    mov %rax, resume(%rip)
    mov 0x40200000, %rax
after_pf:
    mov pf_error(%rip), %rax
    cmp $9, %rax
    CHECK m_pf
    # code beyond RAM: ff ff ... is an invalid opcode
    mov $0x10000000, %rax
    jmp *%rax
pf_handler:
    pop %rax
    mov %rax, pf_error(%rip)
    mov resume(%rip), %rax
    mov %rax, (%rsp)
    iretq
ud_handler:
    mov (%rsp), %rax
    cmp $0x10000000, %rax
    CHECK m_ud
    call poweroff
    .data
m_read: .asciz "read "
m_write: .asciz "write "
m_rmw: .asciz "rmw "
m_sread: .asciz "straddle-read "
m_swrite: .asciz "straddle-write "
m_pf: .asciz "pf-rsvd "
m_ud: .asciz "fetch-ud "
ok: .asciz "ok\n"
bad: .asciz "BAD\n"
resume: .quad 0
pf_error: .quad 0
    .align 16
idtr: .word 0xff
      .quad idt
    .align 16
idt: .fill 0x100, 1, 0
"""


def test_accesses_beyond_ram(tmp_path, bttool_cache):
    r = boot(assemble64(tmp_path, "beyond", BEYOND_RAM), bttool_cache, "--system", "--memory", "16M")
    expected = "".join(f"{n} ok\n" for n in ("read", "write", "rmw", "straddle-read", "straddle-write",
                                            "pf-rsvd", "fetch-ud"))
    assert (r.returncode, r.stdout.decode()) == (0, expected), r.stderr


# -- bad options ---------------------------------------------------------------------

@pytest.mark.parametrize("value,why", [("BAD", b"is not a size"), ("12Q", b"is not a size"),
                                       ("1M", b"is out of range")])
def test_bad_memory_option_is_a_usage_error(tmp_path, bttool_cache, value, why):
    """--memory BAD: click's usage error (status 2) whose one Error: line
    names the option and the accepted forms, not Python's int() message
    with status 125."""
    r = boot(tmp_path / "no-such-kernel", bttool_cache, "--system", "--memory", value)
    assert r.returncode == 2, r
    errors = [line for line in r.stderr.splitlines() if line.startswith(b"Error:")]
    assert len(errors) == 1 and b"'--memory'" in errors[0] and why in errors[0], r.stderr
    assert b"64M" in errors[0] and b"1G" in errors[0] and b"int()" not in r.stderr, r.stderr
