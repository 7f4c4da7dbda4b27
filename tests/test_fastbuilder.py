"""The fast instruction builder (bttool/ir/fastbuilder.py) must not change
what is generated: lifting the same regions of real binaries with it and
with llvmlite's own instructions must give byte-identical object code, at
both tiers and in both guest modes.  The IR text may differ only in value
names."""
from __future__ import annotations

import os
import re
import sys

import pytest
from llvmlite import ir

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from bttool.ir import codegen, fastbuilder  # noqa: E402
from bttool.translator.blocks import discover_region  # noqa: E402
from bttool.translator.decoder import Decoder  # noqa: E402
from bttool.translator.guestcode import UnmappedCode  # noqa: E402
from bttool.translator.lifter import lift_region  # noqa: E402
from bttool.runtime.window import CLAMP  # noqa: E402
from bttool.translator.options import LiftOptions  # noqa: E402

FUNCTIONS_PER_BINARY = 30


def _functions(path):
    """(reader, function entries) of a static sample binary."""
    import lief
    binary = lief.parse(str(path))
    sections = [(s.virtual_address, bytes(s.content)) for s in binary.sections
                if s.has(lief.ELF.Section.FLAGS.EXECINSTR)]

    def read(addr: int, length: int) -> bytes:
        for start, data in sections:
            if start <= addr < start + len(data):
                return data[addr - start:addr - start + length]
        return b""
    entries = sorted({s.value for s in binary.symbols
                      if s.type == lief.ELF.Symbol.TYPE.FUNC and s.value and read(s.value, 1)})
    # spread over the whole text: program code, libc, libm, string variants
    step = max(1, len(entries) // FUNCTIONS_PER_BINARY)
    return read, entries[::step]


def _build(region, options: LiftOptions, target, fast: bool) -> tuple[bytes, str]:
    saved = fastbuilder.ENABLED
    fastbuilder.ENABLED = fast
    try:
        module = ir.Module(name="m")
        lift_region(region, options, module, "f")
        text = str(module)
    finally:
        fastbuilder.ENABLED = saved
    obj, _ = codegen.compile_module(text, target)
    return obj, text


def _shape(text: str) -> str:
    """IR text with every local value name replaced by one placeholder and
    runs of blanks made one (llvmlite prints ``select  i1`` with two)."""
    return re.sub(r" +", " ", re.sub(r'%("[^"]*"|[-\w.$]+)', "%v", text))


# system-mode tier 2 adds little (the IR is compared at every tier) and
# costs the most
@pytest.mark.parametrize("user_mode,tier", [(True, 1), (True, 2), (False, 1)],
                         ids=["user-tier1", "user-tier2", "system-tier1"])
def test_fast_builder_generates_the_same_code(user_mode, tier):
    """The behaviour: byte-identical object code.  The IR text is the
    builder's own output, compared too.  The count of ``%_N`` values (the
    names FastInstr gives, ir/fastbuilder.py) guards a performance
    property: the fast path was really taken, so this does not compare
    llvmlite's instructions with themselves, and lifting stays as cheap as
    bench/translate_cost measured."""
    build = programs.build_samples()
    target = codegen.host_target(tier)
    options = LiftOptions(64, user_mode, hot_counters=tier == 1, clamp=CLAMP)
    fast_instructions = compared = 0
    for name in ("floats", "strings", "sortheavy"):
        read, entries = _functions(build / name)
        for pc in entries:
            try:
                region = discover_region(Decoder(64), read, pc, max_blocks=24, max_insns=600)
            except UnmappedCode:
                continue
            obj_fast, text_fast = _build(region, options, target, True)
            obj_plain, text_plain = _build(region, options, target, False)
            assert _shape(text_fast) == _shape(text_plain), f"{name} {pc:#x}: IR differs"
            assert obj_fast == obj_plain, f"{name} {pc:#x}: object code differs"
            fast_instructions += text_fast.count("%_")
            compared += 1
    assert compared > 60
    assert fast_instructions > 10 * compared     # the fast path was really taken
