"""The sample kernels of samples/kernels/, booted in QEMU (real emulation of
a PC) as the reference for bttool's system mode: the serial output and the
exit status of every kernel must be the ones in samples/kernels/expected/.

Optional: skipped when qemu-system-x86_64 is not installed.  QEMU's -kernel
only boots 32-bit Multiboot images: the NAME.mb variants boot directly; the
NAME.elf variants (bttool boot protocol) boot through btboot.mb, a Multiboot
kernel that loads NAME.elf (given as module 0 with -initrd) and enters it in
exactly the machine state that protocol defines, so both variants and the
protocol definition itself are checked on real emulation.

QEMU boots through its firmware: SeaBIOS writes a banner to the serial port
("\\x1bc...SeaBIOS (version ...)\\r\\n ... Booting from ROM..") before every
boot, i.e. again after each reset.  That text is not the kernel's: the test
removes exactly one such preamble per boot, checks each removed piece
against a strict pattern and the number of boots, and then requires the
rest (the kernels print plain text and bare \\n, never \\r or escape
sequences) to equal the expected file byte for byte.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "samples" / "kernels"
EXPECTED = KERNELS / "expected"
QEMU = shutil.which("qemu-system-x86_64")

pytestmark = pytest.mark.skipif(
    QEMU is None,
    reason="qemu-system-x86_64 is not installed (apt-get install qemu-system-x86); "
    "the QEMU comparison of samples/kernels is optional",
)

QEMU_ARGS = [
    "-accel", "tcg",
    "-nographic",
    "-serial", "stdio",
    "-monitor", "none",
    "-m", "128",
    "-net", "none",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
]  # fmt: skip

TIMEOUT = 120  # seconds per kernel; the slowest (compute) takes a few

# One firmware preamble: optional terminal escapes, the SeaBIOS banner line,
# any further firmware lines (option ROMs such as iPXE when a NIC exists),
# then "Booting from ROM.." after which the kernel runs.
PREAMBLE = re.compile(
    rb"(?:\x1b(?:c|\[[0-9;?]*[A-Za-z]))*"
    rb"SeaBIOS \(version [^)\r\n]*\)\r\n"
    rb"(?:[^\n]*\n)*?"
    rb"Booting from ROM\.\.\.?(?:\r\n)?"
)


def read_status_table() -> dict[str, tuple[int, int]]:
    """expected/status.txt: NAME STATUS BOOTS per line, '#' comments."""
    table = {}
    for line in (EXPECTED / "status.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, status, boots = line.split()
            table[name] = (int(status), int(boots))
    return table


STATUS = read_status_table()
NAMES = sorted(STATUS)


def split_serial(raw: bytes) -> tuple[list[bytes], bytes]:
    """Remove the firmware preambles: returns (preambles, kernel output).
    The stream must start with a preamble; every later preamble must start
    right after kernel output (a reset)."""
    preambles = []
    text = []
    pos = 0
    while pos < len(raw):
        m = PREAMBLE.match(raw, pos)
        if m is None:
            if not preambles:
                raise AssertionError(f"serial output does not start with a SeaBIOS preamble: {raw[:200]!r}")
            # kernel output up to the next banner (a reset), or the end
            nxt = re.compile(rb"(?:\x1b(?:c|\[[0-9;?]*[A-Za-z]))*SeaBIOS \(version ").search(raw, pos)
            end = nxt.start() if nxt else len(raw)
            if end == pos:
                raise AssertionError(f"malformed firmware preamble at byte {pos}: {raw[pos:pos + 200]!r}")
            text.append(raw[pos:end])
            pos = end
        else:
            preambles.append(m.group())
            pos = m.end()
    return preambles, b"".join(text)


@pytest.fixture(scope="module")
def kernels_dir() -> Path:
    proc = subprocess.run(
        ["bash", str(KERNELS / "build.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"samples/kernels/build.sh failed with status {proc.returncode}\n"
            f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}",
            pytrace=False,
        )
    return KERNELS / "build"


def boot(image: Path, module: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["-initrd", str(module)] if module is not None else []
    return subprocess.run(
        [QEMU, *QEMU_ARGS, "-kernel", str(image), *extra],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
    )


def test_every_kernel_has_expectations():
    sources = sorted(p.stem for p in KERNELS.glob("*.c"))
    assert sources == NAMES
    for name in NAMES:
        assert (EXPECTED / f"{name}.txt").is_file()


@pytest.mark.parametrize("variant", ["mb", "elf"])
@pytest.mark.parametrize("name", NAMES)
def test_kernel_in_qemu(kernels_dir, name, variant):
    status, boots = STATUS[name]
    if variant == "mb":
        proc = boot(kernels_dir / f"{name}.mb")
    else:
        proc = boot(kernels_dir / "btboot.mb", module=kernels_dir / f"{name}.elf")
    preambles, text = split_serial(proc.stdout)
    expected = (EXPECTED / f"{name}.txt").read_bytes()
    assert b"\r" not in text and b"\x1b" not in text, text
    assert text.decode(errors="replace") == expected.decode()
    assert len(preambles) == boots, f"{len(preambles)} firmware boots, expected {boots}"
    assert proc.returncode == status, proc.stderr.decode(errors="replace")
    assert proc.stderr == b"", proc.stderr.decode(errors="replace")


def test_preamble_pattern_is_strict():
    """The stripping only accepts firmware text, never kernel text."""
    pre = b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from ROM.."
    assert split_serial(pre + b"a\n" + pre + b"b\n") == ([pre, pre], b"a\nb\n")
    with pytest.raises(AssertionError):
        split_serial(b"kernel text first\n" + pre)
