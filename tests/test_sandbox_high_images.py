"""Programs linked at addresses above the usual guest window (issue 21:
"the loader refuses or runs exactly what Linux refuses or runs").

Linux maps an ET_EXEC image wherever in its 128 TiB user address space the
image says.  bttool's guest window holds 1 TiB (runtime/window.py); a
program whose fixed addresses lie above it gets a window that starts at its
image.
Each program here is linked at a fixed address with ``-Ttext-segment`` and
compared with its native run byte for byte: the addresses it prints are the
link's, so they match exactly when the image is where Linux puts it.  The
one layout no window gives, fixed segments further apart than 1 TiB, is
refused with a one-line error (status 126) that says why.
"""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

# a glibc program: where its code, data, heap, mmap'd page and stack are,
# relative to its own image (fixed by the link), and that each works
GLIBC_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static int table[4] = {11, 22, 33, 44};
int main(int argc, char **argv) {
    char *heap = malloc(1 << 20), *big = malloc(64 << 20);
    char *page = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int local = argc;
    memset(big, 7, 64 << 20);
    strcpy(heap, argv[argc - 1]);
    page[4096] = 'x';
    printf("main %p table %p value %d\n", (void *)main, (void *)table, table[argc]);
    printf("heap %s above image %d, big %d, page %c, stack above image %d\n", heap,
           (unsigned long)heap > (unsigned long)table, big[12345], page[4096],
           (unsigned long)&local > (unsigned long)table);
    return 40 + argc;
}
"""

# no libc at all: a static ET_EXEC that prints its own address and exits
TINY_C = r"""
static long sys(long n, long a, long b, long c, long d, long e, long f) {
    long r;
    register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return r;
}
static char buf[64];
void _start(void) {
    unsigned long at = (unsigned long)&_start;
    int n = 0;
    char *page = (char *)sys(9, 0, 4096, 3, 0x22, -1, 0);
    page[0] = 'm';
    buf[n++] = page[0];
    buf[n++] = ' ';
    for (int shift = 44; shift >= 0; shift -= 4)
        buf[n++] = "0123456789abcdef"[(at >> shift) & 15];
    buf[n++] = '\n';
    sys(1, 1, (long)buf, n, 0, 0, 0);
    sys(60, 7, 0, 0, 0, 0, 0);
    for (;;) ;
}
"""

# where each program is linked: 2 TiB (the first address the usual window
# refused), just below and above 64 TiB, 100 TiB, and the
# last TiB of user space (higher, Linux's randomised mmap base may fall
# below the image or above it, and the native run is no fixed oracle)
ADDRESSES = [0x200_0000_0000, 0x3F00_0000_0000, 0x4000_4000_0000, 0x6400_0000_0000, 0x7F00_0000_0000]
LIB = "/usr/lib/x86_64-linux-gnu"


def _link(src: Path, out: Path, at: int, glibc: bool) -> None:
    """``src`` linked as an ET_EXEC at ``at``.  Code is compiled
    position-independent (so every reference is rip-relative) and linked
    without relaxation; glibc's crtbegin has 32-bit absolute references, so
    the glibc program is linked dynamically with crt1/crti/crtn only (the
    static libc has a weak call that cannot reach that far)."""
    cmd = ["gcc", "-O2", "-fpie", "-no-pie", "-Wl,--no-relax", f"-Wl,-Ttext-segment={at:#x}", "-o", str(out)]
    if glibc:
        cmd += ["-nostartfiles", f"{LIB}/crt1.o", f"{LIB}/crti.o", str(src), f"{LIB}/crtn.o"]
    else:
        cmd += ["-static", "-nostdlib", "-fno-stack-protector", str(src)]
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("high-images")
    (d / "glibc.c").write_text(GLIBC_C)
    (d / "tiny.c").write_text(TINY_C)
    for at in ADDRESSES:
        _link(d / "glibc.c", d / f"glibc-{at:x}", at, True)
        _link(d / "tiny.c", d / f"tiny-{at:x}", at, False)
    return d


@pytest.mark.parametrize("at", ADDRESSES, ids=[f"{a:#x}" for a in ADDRESSES])
@pytest.mark.parametrize("kind", ["glibc", "tiny"])
def test_image_linked_high_runs_as_natively(build, bttool_cache, kind, at):
    path = build / f"{kind}-{at:x}"
    native, _ = programs.compare_run([str(path), "one", "two"], bttool_cache)
    assert native.returncode == (43 if kind == "glibc" else 7)
    assert f"{at + 0x1000:x}"[:6] in native.stdout.decode(), native.stdout


def _split_image(src: bytes, far: int) -> bytes:
    """The tiny program with a second, empty-but-mapped PT_LOAD at ``far``:
    Linux maps both (the text at 4 MiB, a bss page far above)."""
    phoff = struct.unpack_from("<Q", src, 32)[0]
    phnum = struct.unpack_from("<H", src, 56)[0]
    d = bytearray(src)
    for i in range(phnum):
        p_type, flags, _off, vaddr = struct.unpack_from("<IIQQ", d, phoff + 56 * i)
        if p_type == 0x6474E551:    # PT_GNU_STACK becomes a bss page at ``far``
            struct.pack_into("<IIQQQQQQ", d, phoff + 56 * i, 1, 6, 0, far, far, 0, 4096, 4096)
            return bytes(d)
    raise AssertionError("no PT_GNU_STACK to reuse")


def test_fixed_segments_wider_than_a_window_are_refused_with_a_reason(build, bttool_cache, tmp_path):
    """Linux runs it; no 1 TiB window holds 4 MiB and 100 TiB at once: the
    one layout bttool refuses, with one line and status 126."""
    subprocess.run(["gcc", "-O2", "-static", "-nostdlib", "-fno-stack-protector", "-fno-pie", "-no-pie",
                    "-o", str(tmp_path / "low"), str(build / "tiny.c")], check=True, capture_output=True)
    path = tmp_path / "split"
    path.write_bytes(_split_image((tmp_path / "low").read_bytes(), 0x6400_0000_0000))
    path.chmod(0o755)
    native = programs.run_native([str(path)])
    assert native.returncode == 7 and native.stdout.startswith(b"m 0000004"), native
    res = programs.run_bttool([str(path)], bttool_cache)
    lines = res.stderr.splitlines()
    assert res.returncode == 126 and len(lines) == 1, res
    assert b"outside bttool's guest address space" in lines[0] and b"0x640000000000" in lines[0], lines
