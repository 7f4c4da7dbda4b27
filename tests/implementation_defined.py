"""Results the manuals leave to the implementation: the one place where the
differential tests stop comparing something, each with the reason.

A test that meets one of these compares everything else; what is listed
here is exactly what may differ between two correct CPUs (and so between
the host and bttool), not what bttool happens to get wrong.
"""
from __future__ import annotations

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1


def addr32_rep_zero_count(regs_in: dict[str, int]) -> dict[str, int] | None:
    """``addr32 rep`` string instructions that start with ECX = 0 run no
    iteration.  The SDM's pseudocode then writes neither ECX nor ESI/EDI,
    and AMD CPUs leave RCX, RSI, RDI as they were; Intel CPUs zero-extend
    them (RCX[63:32] cleared).  Compare their low 32 bits only."""
    if regs_in.get("rcx", 1) & M32:
        return None
    return {"rcx": M32, "rsi": M32, "rdi": M32}


def same_dot_product(native: int, translated: int, lane_bits: int, lanes: int) -> bool:
    """``dpps``/``dppd``: when several NaNs meet in the sums of one lane, which
    NaN's payload the lane gets depends on the order in which the CPU adds
    the products (Intel and AMD differ; the SDM's pseudocode gives an order
    that not every implementation follows).  A lane that is a NaN on both
    sides is equal; every other bit must match."""
    if native == translated:
        return True
    mask = (1 << lane_bits) - 1
    exp = {32: 0x7F800000, 64: 0x7FF0000000000000}[lane_bits]
    frac = {32: 0x007FFFFF, 64: 0x000FFFFFFFFFFFFF}[lane_bits]

    def is_nan(v: int) -> bool:
        return v & exp == exp and v & frac != 0

    for i in range(128 // lane_bits):
        n = (native >> (lane_bits * i)) & mask
        t = (translated >> (lane_bits * i)) & mask
        if n != t and not (i < lanes and is_nan(n) and is_nan(t)):
            return False
    return True
