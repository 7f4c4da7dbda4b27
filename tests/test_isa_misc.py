"""Differential tests (host CPU as oracle) for the odd integer instructions:
crc32 (SSE4.2), xlatb, enter, clflush, rdrand and rdseed."""
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


@pytest.mark.usefixtures("isa_tier")
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


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("hot_counters", [True, False], ids=["tier1-ir", "tier2-ir"])
def test_parity_flag_of_every_low_byte(hot_counters):
    """PF has two IR shapes (translator/flags.py): shifts and xors in tier-1
    code, ctpop in tier-2 code.  Both must match the host for every low
    byte, whatever the bits above it."""
    code, = N.assemble(["xor rax, rbx"])
    for v in range(256):
        regs = {"rax": 0x5A5A_0000_0000_FF00 | v, "rbx": 0x0123_4567_89AB_CD00}
        native = N.run_native(code, regs)
        trans = N.run_translated(code, regs, hot_counters=hot_counters, reuse=False)
        N.compare(native, trans, flag_mask=N.PF | N.ZF | N.SF, what=f"low byte {v:#x}")


def _crc32c(crc: int, value: int, nbytes: int) -> int:
    """The crc32 instruction: CRC-32C (reflected polynomial 0x82F63B78) of
    ``nbytes`` little-endian bytes of ``value``, from ``crc``, no inversion."""
    for i in range(nbytes):
        crc ^= (value >> 8 * i) & 0xFF
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc


_CRC_FORMS = {"crc32 eax, bl": 1, "crc32 eax, bx": 2, "crc32 eax, ebx": 4, "crc32 rax, rbx": 8}


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("form", list(_CRC_FORMS))
@settings(max_examples=examples(10), deadline=None)
@given(rax=u64, rbx=u64)
def test_crc32_reference(form, rax, rbx):
    """crc32 against a reference model: checked on any host, SSE4.2 or not
    (test_matches_host skips where the host has no crc32)."""
    tr = N.run_translated(CODES[form], {"rax": rax, "rbx": rbx})
    assert tr.regs["rax"] == _crc32c(rax & 0xFFFFFFFF, rbx, _CRC_FORMS[form]), form
    # the model itself: CRC-32C("a") with the usual inversions is 0xC1D04330
    assert _crc32c(0xFFFFFFFF, 0x61, 1) ^ 0xFFFFFFFF == 0xC1D04330


def test_oracle_skips_without_the_feature(monkeypatch):
    """On a host without SSE4.2 the native crc32 run skips (with the reason)
    instead of failing or dying of SIGILL."""
    monkeypatch.setattr(N, "_host_flags", N.host_flags() - {"sse4_2"})
    monkeypatch.setattr(N, "_missing_cache", {})
    with pytest.raises(pytest.skip.Exception, match="lacks sse4_2 for crc32"):
        N.run_native(CODES["crc32 eax, bl"], {"rax": 1, "rbx": 2})
    assert N.missing_host_feature(CODES["xlatb"]) is None


# rdrand/rdseed: (form, destination, bits the instruction replaces)
_RANDOM_FORMS = [("rdrand ax", "rax", 16), ("rdrand ecx", "rcx", 32), ("rdrand r9", "r9", 64),
                 ("rdseed r11w", "r11", 16), ("rdseed edx", "rdx", 32), ("rdseed rax", "rax", 64)]
_RANDOM_CODES = dict(zip([f for f, _, _ in _RANDOM_FORMS], N.assemble([f for f, _, _ in _RANDOM_FORMS])))


@pytest.mark.usefixtures("isa_tier")
@pytest.mark.parametrize("form,dest,bits", _RANDOM_FORMS, ids=[f for f, _, _ in _RANDOM_FORMS])
def test_random_numbers_match_the_host_but_for_the_value(form, dest, bits):
    """rdrand and rdseed (runtime/randomsource.py) against the host: from
    every arithmetic flag set, CF=1 and the others clear; every register
    but the destination's replaced bits as natively (a 16-bit destination
    keeps its upper 48 bits, a 32-bit one is zero-extended).  A drained
    host source answers CF=0, so the native run is retried until it
    delivers, as software does."""
    regs = {r: 0x0123_4567_89AB_CDEF * (i + 1) & N.M64 for i, r in enumerate(N.GPRS) if r != "rsp"}
    code = _RANDOM_CODES[form]
    for _ in range(1000):
        nat = N.run_native(code, regs, rflags=0x202 | N.ARITH)
        if nat.rflags & N.CF:
            break
    else:
        pytest.fail(f"the host's {form} never delivered")
    mask = {dest: N.M64 & ~((1 << bits) - 1)}
    values = set()
    for _ in range(4):
        tr = N.run_translated(code, regs, rflags=0x202 | N.ARITH)
        N.compare(nat, tr, reg_mask=mask, what=form)
        values.add(tr.regs[dest] & ((1 << bits) - 1))
    assert len(values) > 1, f"{form}: four draws gave one value"
