"""The virtual CPU's random-number source: what rdrand and rdseed return.

Translated code never runs the host's rdrand (the guest must not depend on
what the host CPU has, and a sandboxed guest gets nothing from the host
but through the runtime): the instruction leaves for the runtime, which
takes the bits from the host kernel's entropy (os.urandom, read a page at a
time) and reports success.  A real DRNG may answer CF=0 when drained; this
one never does, which every guest must accept (CF=0 is "try again").
"""
from __future__ import annotations

import os

from bttool.ir import intrinsics
from bttool.ir.state import GPR_NAMES

_POOL_BYTES = 4096
_pool = b""


def random_bits(width: int) -> int:
    """``width`` bytes of fresh randomness, as an unsigned integer."""
    global _pool
    if len(_pool) < width:
        _pool = os.urandom(_POOL_BYTES)
    value, _pool = _pool[:width], _pool[width:]
    return int.from_bytes(value, "little")


def set_success_flags(state) -> None:
    """rdrand/rdseed's flags when a value was delivered: CF=1, OF, SF, ZF,
    AF and PF cleared."""
    state.cf = 1
    state.pf = state.af = state.zf = state.sf = state.of = 0


def rdrand(state, info: int) -> None:
    """Perform rdrand/rdseed on ``state`` for an exit whose ``exit_info``
    is ``info`` (intrinsics.exit_register names the register): a 16-bit
    destination keeps the bits above it, a 32-bit one is zero-extended."""
    number, width = intrinsics.exit_register(info)
    name = GPR_NAMES[number]
    value = random_bits(width)
    if width == 2:
        value |= getattr(state, name) & ~0xFFFF & 0xFFFF_FFFF_FFFF_FFFF
    setattr(state, name, value)
    set_success_flags(state)
