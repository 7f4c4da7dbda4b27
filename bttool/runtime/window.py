"""The guest window: where linux-user guest memory lives in the host.

A window holds the guest addresses [low, low + MAP_LIMIT); guest address
``a`` lives at host ``base + a`` (``base`` being the host address of the
reservation's guest ``low``, less ``low``).  One host reservation
(runtime/memory.py) covers, from low to high (offsets from guest ``low``)::

    [-2*GUEST_LIMIT - DISP_GUARD, 0)             guard, never mapped
    [0, MAP_LIMIT)                               where guest memory is mapped
    [MAP_LIMIT, 4*GUEST_LIMIT + DISP_GUARD + GUARD_SIZE)
                                                 guard, never mapped

The window holds 1 TiB of Linux's 128 TiB user address space: a host
process has room for a few such reservations beside its own memory (a
forked child's window and a new one in it, the tests' in-process windows),
where half of user space would leave room for one.  Every program gets the
window at 0 (``LOW``), except one whose image Linux maps at fixed addresses
above it (ET_EXEC, or its interpreter): that program gets a window that
starts at its image (``windows_for``), up to the top of user space
(``HIGH``), with its stack and mmap area above the image as in Linux.  An
image whose fixed addresses are further apart than a window holds (a
segment at 4 MiB and another at 2 TiB) is the one layout bttool cannot
give, and is refused with a one-line error; so is a mapping the guest
asks for at a fixed address outside its window (ENOMEM).

Generated code (ir/memory.py, with the window's ``clamp``) clamps an
address's register parts, its base (relative to ``low``) and its index (in
a window above 0, base plus index as one part: either register may hold the
pointer), each into [-GUEST_LIMIT, 2*GUEST_LIMIT] as a signed number (a
part outside becomes 2*GUEST_LIMIT), and then adds the instruction's
displacement ``d`` (|d| <= DISP_GUARD), so every access stays inside the
reservation (the entry rip of a translation, known to be mapped, is left as
the clamp would leave it).  The result is exact whenever both parts were
inside the clamp range, which compiled code's addresses always are: a
pointer into the window, an index or a difference of two such
pointers.  Otherwise it lies at least ``low + MAP_LIMIT`` up, where nothing
is ever mapped for the guest, and faults.  The one difference from the CPU:
an address whose parts are far outside the window but sum into it (a base
of 2**50 and an index of -2**50) faults here.  Translated linux-user code
receives ``base - bias`` as its memory argument, which absorbs the clamp's
bias (ir/memory.py), so the host instruction needs no 32-bit displacement
for it.  The clamp travels to the translator in the translation options
(``Window.options``), which are part of the cache key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from bttool.ir.clamp import AddressClamp
from bttool.runtime import cpuid
from bttool.translator.loader import TASK_SIZE
from bttool.translator.options import LiftOptions

GUEST_BITS = 40
GUEST_LIMIT = 1 << GUEST_BITS          # the clamp's limit L: parts are kept in [-L, 2L]
DISP_GUARD = 1 << 30                   # |displacement| added after the clamp, at most
MAP_LIMIT = GUEST_LIMIT - DISP_GUARD   # guest memory is mapped in [low, low + MAP_LIMIT)
GUARD_SIZE = 1 << 20                   # past the top guard: room for the access's size
# base and index each clamped into [-GUEST_LIMIT, 2*GUEST_LIMIT], then the
# displacement: what an access can reach, below and above low
RESERVE_BELOW = 2 * GUEST_LIMIT + DISP_GUARD   # the reservation starts this far below low
RESERVE_SIZE = RESERVE_BELOW + 4 * GUEST_LIMIT + DISP_GUARD + GUARD_SIZE

# BTTOOL_UNSAFE_NO_CLAMP=1 (benchmarks only): skip the clamp, so the cost
# of the sandbox can be measured against an unchecked base+address mapping.
# Part of the cache key (LiftOptions.key), so such code never mixes with safe code.
UNSAFE_NO_CLAMP = os.environ.get("BTTOOL_UNSAFE_NO_CLAMP") == "1"


def stitched_tier1() -> bool:
    """Whether tier-1 regions are stitched from stencils (the default) or,
    with ``BTTOOL_TIER1=llvm``, compiled by LLVM."""
    return os.environ.get("BTTOOL_TIER1", "stencils") != "llvm"


@dataclass(frozen=True)
class Window:
    """Which guest addresses the reservation holds: [low, end)."""
    low: int = 0

    @property
    def end(self) -> int:
        return self.low + MAP_LIMIT

    def holds(self, addr: int, length: int = 0) -> bool:
        """Whether guest [addr, addr+length) lies inside the window."""
        return self.low <= addr and addr + length <= self.end

    @property
    def clamp(self) -> AddressClamp:
        return AddressClamp(None if UNSAFE_NO_CLAMP else GUEST_LIMIT, DISP_GUARD, self.low)

    def options(self, pic_base: int | None = None, **kw) -> LiftOptions:
        """The options of linux-user x86-64 code in this window (``pic_base``
        and the rest as LiftOptions has them)."""
        kw.setdefault("cpu", cpuid.model().name)
        kw.setdefault("stencils", stitched_tier1())
        return LiftOptions(64, True, pic_base, clamp=self.clamp, **kw)


LOW = Window(0)
# the highest window: its end is Linux's TASK_SIZE
HIGH = Window(TASK_SIZE - MAP_LIMIT)


def windows_for(lowest: int) -> list[Window]:
    """The windows a program whose lowest fixed address (ET_EXEC image or
    interpreter) is ``lowest`` may get, in order of preference: the usual
    one, one that starts at that address, the highest one."""
    return [LOW, Window(min(lowest & ~(DISP_GUARD - 1), HIGH.low)), HIGH]


# the window of code that is not a program's (tests, snippets)
CLAMP = LOW.clamp


def user_options(pic_base: int | None = None, **kw) -> LiftOptions:
    """The options of linux-user x86-64 code in the usual window (LOW)."""
    return LOW.options(pic_base, **kw)
