"""Results that differ between correct x86-64 CPUs: the one place where the
differential tests stop comparing something, each entry with its reason.

A test that meets one of these compares everything else.  What is listed
here is what the manuals (or the CPUs, against their manual) leave to the
implementation, so it may differ between the host and bttool without
either being wrong; it is never a place for what bttool gets wrong.  Where
bttool makes a choice for such a result, a test with the expected values
written out pins it (so it is checked on any host); the entry names it.

(The flags the SDM calls *undefined* after an instruction are masked per
case in tests/test_isa_integer.py, and the x87 C1 bits where the SDM leaves
them undefined in tests/test_x87_semantics.py: both are the manual's own
per-instruction lists.)

Not listed, on purpose: dpps/dppd where NaNs meet.  The SDM's pseudocode
fixes the order of the sums ((p0+p1) + (p2+p3)) and so which NaN each lane
gets; bttool follows it and so does the AMD family 25 host
(tests/test_sse_semantics.py::test_dot_product_nans_inline).
"""
from __future__ import annotations

from dataclasses import dataclass

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1


@dataclass(frozen=True)
class Entry:
    name: str
    reason: str
    pinned_by: str          # the test that checks bttool's own choice inline


def _addr32_rep_zero_count(regs_in: dict[str, int]) -> dict[str, int] | None:
    if regs_in.get("rcx", 1) & M32:
        return None
    return {"rcx": M32, "rsi": M32, "rdi": M32}


ADDR32_REP_ZERO_COUNT = Entry(
    "addr32 rep string instruction starting with ECX = 0",
    "No iteration runs.  The SDM's REP pseudocode then writes neither the count "
    "nor ESI/EDI, and this AMD host (family 25) leaves RCX, RSI and RDI whole, "
    "for movs/stos/lods/cmps/scas with rep, repe and repne alike (bttool does the "
    "same).  Other implementations write them anyway, zero-extended: Bochs, "
    "which models Intel CPUs, clears RSI/RDI[63:32] after every addr32 rep "
    "string instruction, and issue 14 reports a host that clears RCX[63:32].  "
    "Only bits 31:0 of RCX, RSI and RDI are compared then.",
    "tests/test_isa_integer.py::test_addr32_rep_zero_count_inline")

ENTRIES = [ADDR32_REP_ZERO_COUNT]


def addr32_rep_zero_count(regs_in: dict[str, int]) -> dict[str, int] | None:
    """The register mask (``native.compare``'s ``reg_mask``) for an addr32
    rep string instruction run from ``regs_in``: see ADDR32_REP_ZERO_COUNT."""
    return _addr32_rep_zero_count(regs_in)


__all__ = ["Entry", "ENTRIES", "ADDR32_REP_ZERO_COUNT", "addr32_rep_zero_count"]
