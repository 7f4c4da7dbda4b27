"""Differential tests (host CPU as oracle) for the odd integer instructions:
crc32 (SSE4.2), xlatb, enter, clflush."""
from __future__ import annotations

import os
import sys

import pytest
from hypothesis_profiles import examples  # noqa: E402
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))
import native as N  # noqa: E402

FORMS = ["crc32 eax, bl", "crc32 eax, bx", "crc32 eax, ebx", "crc32 rax, rbx",
         "crc32 eax, byte ptr [rsi+3]", "crc32 rax, qword ptr [rsi+8]",
         "xlatb", "enter 0x20, 0\nleave", "enter 0x108, 0", "clflush [rsi+64]"]
CODES = dict(zip(FORMS, N.assemble(FORMS)))
u64 = st.integers(0, (1 << 64) - 1)


@pytest.mark.parametrize("form", FORMS)
@settings(max_examples=examples(25), deadline=None)
@given(rax=u64, rbx=u64, data=st.binary(min_size=64, max_size=64))
def test_matches_host(form, rax, rbx, data):
    regs = {"rax": rax, "rbx": N.DATA_ADDR + (rbx & 0xFF) if form == "xlatb" else rbx,
            "rsi": N.DATA_ADDR, "rbp": rbx}
    data = data * 8
    nat = N.run_native(CODES[form], regs, data=data)
    tr = N.run_translated(CODES[form], regs, data=data)
    N.compare(nat, tr, what=form)


@pytest.mark.parametrize("hot_counters", [True, False], ids=["tier1-ir", "tier2-ir"])
def test_parity_flag_of_every_low_byte(hot_counters):
    """PF has two IR shapes (translator/flags.py): shifts and xors in tier-1
    code, ctpop in tier-2 code.  Both must match the host for every low
    byte, whatever the bits above it."""
    from bttool.runtime.snippet import run_snippet
    code, = N.assemble(["xor rax, rbx"])
    for v in range(256):
        regs = {"rax": 0x5A5A_0000_0000_FF00 | v, "rbx": 0x0123_4567_89AB_CD00}
        native = N.run_native(code, regs)
        trans = run_snippet(code, N._complete(regs), hot_counters=hot_counters)
        N.compare(native, trans, flag_mask=N.PF | N.ZF | N.SF, what=f"low byte {v:#x}")
