"""Flag liveness across blocks (bttool/translator/flaglive.py).

* The tables must agree with the lifter: lifting every instruction of real
  static binaries one at a time, an instruction may read a flag only if the
  table says so (or writes it back and the table does not count that write:
  a pass-through), and every flag
  the table says it writes must be set by its semantics.
* Flags that live across block boundaries (through pass-through
  instructions, partial writers and conditional reads) must reach the
  reader exactly as on the host CPU.
* Dead flags are really left out: the IR of a compare-and-branch diamond
  stores no flag at the compare's block end.
"""
from __future__ import annotations

import os
import sys

import pytest
from llvmlite import ir

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
import programs  # noqa: E402
from bttool.ir.emitter import FunctionEmitter  # noqa: E402
from bttool.translator import flaglive  # noqa: E402
from bttool.translator import registry  # noqa: E402
from bttool.translator.blocks import discover_region  # noqa: E402
from bttool.translator.decoder import Decoder  # noqa: E402
from bttool.translator.lifter import lift_region  # noqa: E402
from bttool.translator.operands import Insn, UnsupportedOperand  # noqa: E402
from bttool.runtime.window import CLAMP  # noqa: E402
from bttool.translator.options import LiftOptions  # noqa: E402

PER_MNEMONIC = 6      # instances of each mnemonic lifted by the table check


class _Recorder(FunctionEmitter):
    """An emitter that notes which flags are read and set."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.reads: set[str] = set()
        self.sets: set[str] = set()

    def get(self, name: str):
        if name in flaglive.ALL:
            self.reads.add(name)
        return super().get(name)

    def set(self, name: str, value) -> None:
        if name in flaglive.ALL:
            self.sets.add(name)
        super().set(name, value)


def _text_instructions(path) -> list:
    """Every instruction of the binary's executable sections (linear sweep)."""
    import lief
    binary = lief.parse(str(path))
    decoder = Decoder(64)
    out = []
    for section in binary.sections:
        if not section.has(lief.ELF.Section.FLAGS.EXECINSTR):
            continue
        code = bytes(section.content)
        pos = 0
        while pos < len(code):
            insn = decoder.decode_one(code[pos:pos + 15], section.virtual_address + pos)
            if insn is None:
                pos += 1
                continue
            out.append(insn)
            pos += insn.size
    return out


def test_tables_match_what_the_lifter_reads_and_writes():
    build = programs.build_samples()
    seen: dict[str, int] = {}
    checked = 0
    for name in ("hello", "sortheavy", "floats", "strings"):
        for insn in _text_instructions(build / name):
            fn = registry.lookup(insn.id)
            if fn is None or seen.get(insn.mnemonic, 0) >= PER_MNEMONIC:
                continue
            seen[insn.mnemonic] = seen.get(insn.mnemonic, 0) + 1
            em = _Recorder(ir.Module(), "f", None, False, clamp=CLAMP)
            em.begin_insn(insn.address)
            try:
                fn(Insn(em, insn, 64, True))
            except UnsupportedOperand:
                continue
            reads, writes = flaglive.effects(insn)
            what = f"{insn.mnemonic} {insn.op_str}"
            # a flag read only to be written back unchanged (a pass-through)
            # is no read if the table does not count the write either
            assert em.reads <= reads | (em.sets - writes), \
                f"{what} reads {sorted(em.reads)}, table {sorted(reads)} (writes {sorted(writes)})"
            assert writes <= em.sets, f"{what} sets {sorted(em.sets)}, table says {sorted(writes)}"
            checked += 1
    assert checked > 500 and len(seen) > 100


# Each case: code whose flags cross block boundaries before they are read
# (or reach the end of the snippet, where all are live).
CROSSING = {
    "cmp-jcc-then-shift-by-zero-keeps-flags": "cmp rax, rbx; jne 1f; nop; 1: mov ecx, 0; shl rdx, cl",
    "inc-keeps-carry-for-adc": "cmp rax, rbx; jb 1f; inc rdx; 1: inc rdx; adc rdi, 0",
    "setcc-in-successor": "sub rax, rbx; jmp 1f; 1: seta dl; setl dh; setp cl; sets ch",
    "cmov-in-successor": "add rax, rbx; jmp 1f; 1: cmovo rdx, rdi; cmovbe rsi, rdi",
    "loop-with-partial-writers": "and ecx, 7; inc ecx; 2: add rdx, rax; dec rcx; jnz 2b; adc rdi, rdx",
    "flags-dead-in-one-successor-live-in-other":
        "cmp rax, rbx; je 1f; xor edx, edx; jmp 3f; 1: mov rdx, rsi; 3: nop",
    "diamond-then-jcc": "test rax, rax; js 1f; add rbx, 1; jmp 2f; 1: sub rbx, 1; 2: jo 4f; inc rsi; 4: nop",
}


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("name", sorted(CROSSING))
@pytest.mark.parametrize("regs", [
    dict(rax=5, rbx=5, rcx=0, rdx=0x8000000000000000, rsi=7, rdi=-1),
    dict(rax=3, rbx=0x7FFFFFFFFFFFFFFF, rcx=3, rdx=1, rsi=0, rdi=0xFF),
    dict(rax=-1, rbx=1, rcx=1, rdx=-2, rsi=-3, rdi=2),
], ids=["equal", "overflow", "negative"])
def test_flags_crossing_blocks_match_the_host(name, regs):
    code, = N.assemble([CROSSING[name]])
    full = {**N.default_regs(), **{k: v & ((1 << 64) - 1) for k, v in regs.items()}}
    for rflags in (0x202, 0x202 | 0x8D5 & ~0x400):
        N.compare(N.run_native(code, full, rflags), N.run_translated(code, full, rflags),
                  what=f"{name} rflags={rflags:#x}")


def test_dead_flags_are_not_computed_at_block_ends():
    """An IR-shape test.  In user mode it guards a performance property:
    storing flags that no one reads gives the same results (which
    test_flags_crossing_blocks_match_the_host checks), only slower code.
    In system mode every flag must be stored, since an interrupt or fault
    between any two instructions pushes RFLAGS (translator/flaglive.py):
    a correctness property, checked here because no run can time an
    interrupt to a given block end."""
    # cmp; je A; (B) add; jmp C; A: sub; C: ret -- both successors overwrite
    # every flag before reading one, so the compare's block stores none.
    code, = N.assemble(["cmp rax, rbx; je 1f; add rcx, 1; jmp 2f; 1: sub rcx, 1; 2: ret"])
    read = lambda a, n: code[a - 0x1000:a - 0x1000 + n] if 0 <= a - 0x1000 < len(code) else b""
    region = discover_region(Decoder(64), read, 0x1000)
    assert flaglive.liveness(region).dead_at_end[0x1000] == flaglive.ALL

    def flag_stores(user_mode: bool) -> int:
        module = ir.Module()
        lift_region(region, LiftOptions(64, user_mode, clamp=CLAMP), module, "f")
        entry_block = next(b for b in module.get_global("f").blocks if b.name == "g_1000")
        return sum(1 for i in entry_block.instructions
                   if i.opname == "store" and i.operands[0].type == ir.IntType(1))
    assert flag_stores(user_mode=True) == 0
    # system mode keeps every flag (an interrupt may push RFLAGS anywhere)
    assert flag_stores(user_mode=False) == 6


@pytest.mark.parametrize("asm, live", [
    ("cmp rax, rbx; je 1f; add rcx, 1; 1: ret", set()),        # overwrites all six first
    ("cmovc rax, rbx; cmp rax, rbx; ret", {"cf"}),              # reads CF first
    ("inc rax; cmp rax, rbx; ret", {"cf"}),                     # inc keeps CF: it is read
    ("mov rax, rbx; ret", set(flaglive.ALL)),                   # leaves with them unchanged
    ("test rax, rax; jz 1f; ret; 1: add rax, 1; ret", set()),
])
def test_flags_live_at_a_region_entry_and_its_mark(asm, live):
    """flaglive.liveness's live_at_entry: the flags a region may read or
    leave with before it overwrites them.  A tier-2 unit that needs none has the
    flags mark FLAGS_UNNEEDED in its prefix (ir/unitabi.py), every other
    unit FLAGS_NEEDED, and so has tier 1 (it may leave at its entry's
    counter)."""
    from bttool.ir.unitabi import FLAGS_NEEDED, FLAGS_UNNEEDED
    code, = N.assemble([asm])
    read = lambda a, n: code[a - 0x1000:a - 0x1000 + n] if 0 <= a - 0x1000 < len(code) else b""
    region = discover_region(Decoder(64), read, 0x1000)
    assert flaglive.liveness(region).live_at_entry == live

    def mark(tier: int) -> str:
        module = ir.Module()
        lift_region(region, LiftOptions(64, True, clamp=CLAMP, hot_counters=tier == 1), module, "f")
        head = next(line for line in str(module).splitlines() if line.startswith("define"))
        return head.split("prefix ")[1]
    want = FLAGS_UNNEEDED if not live else FLAGS_NEEDED
    assert mark(2).endswith(f"i8 {want} }}>")
    assert mark(1).endswith(f"i8 {FLAGS_NEEDED} }}>")
