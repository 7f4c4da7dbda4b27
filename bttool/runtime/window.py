"""The guest window: where linux-user guest memory lives in the host.

Guest address ``a`` lives at host ``base + a``.  One host reservation
(runtime/memory.py) covers, from low to high::

    [base - 2*DISP_GUARD, base)                  guard, never mapped
    [base, base + MAP_LIMIT)                     where guest memory is mapped
    [base + MAP_LIMIT, base + GUEST_LIMIT + DISP_GUARD + GUARD_SIZE)
                                                 guard, never mapped

Generated code (ir/memory.py, with ``CLAMP`` below) clamps an address's register part ``x``
(base + index, as a signed number) into [-DISP_GUARD, GUEST_LIMIT] and then
adds the instruction's displacement ``d`` (|d| <= DISP_GUARD), so every
access stays inside the reservation.  The result is exact whenever ``x`` was
inside the clamp range, and otherwise the true address x + d is negative or
at least MAP_LIMIT, where nothing is ever mapped for the guest: it faults
natively and it faults here.  Translated linux-user code receives
``base - ARG_BIAS`` as its memory argument, which absorbs the clamp's bias
(ir/memory.py), so the host instruction needs no 32-bit displacement for it.
The clamp travels to the translator in the translation options
(``user_options``), which are part of the cache key.
"""
from __future__ import annotations

import os

from bttool.ir.clamp import AddressClamp
from bttool.translator.options import LiftOptions

GUEST_BITS = 40
GUEST_LIMIT = 1 << GUEST_BITS          # upper end of the clamp range
DISP_GUARD = 1 << 30                   # |displacement| added after the clamp, at most
MAP_LIMIT = GUEST_LIMIT - DISP_GUARD   # guest memory is mapped in [0, MAP_LIMIT)
GUARD_SIZE = 1 << 20                   # past the top guard: room for the access's size
RESERVE_BELOW = 2 * DISP_GUARD         # the reservation starts this far below base
RESERVE_SIZE = RESERVE_BELOW + GUEST_LIMIT + DISP_GUARD + GUARD_SIZE

# BTTOOL_UNSAFE_NO_CLAMP=1 (benchmarks only): skip the clamp, so the cost
# of the sandbox can be measured against an unchecked base+address mapping.
# Part of the cache key (LiftOptions.key), so such code never mixes with safe code.
UNSAFE_NO_CLAMP = os.environ.get("BTTOOL_UNSAFE_NO_CLAMP") == "1"
CLAMP = AddressClamp(None if UNSAFE_NO_CLAMP else GUEST_LIMIT, DISP_GUARD)

# What generated code adds to an address before the clamp, and the runtime
# therefore subtracts from the memory argument (none without the clamp).
ARG_BIAS = CLAMP.bias


def user_options(pic_base: int | None = None, **kw) -> LiftOptions:
    """The options of linux-user x86-64 code in this window (``pic_base``
    and the rest as LiftOptions has them)."""
    return LiftOptions(64, True, pic_base, clamp=CLAMP, **kw)
