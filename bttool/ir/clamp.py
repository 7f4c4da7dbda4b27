"""The address clamp of linux-user code (how ir/memory.py keeps guest
addresses inside the host reservation): a value of its own, free of
llvmlite, because it is part of the translation options
(translator/options.py) that warm runs build without importing LLVM's IR
layer.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddressClamp:
    """How linux-user code keeps guest addresses inside the host
    reservation (ir/memory.py): the register part of an address is clamped
    into [low - guard, low + limit] and a displacement of at most ``guard``
    is added after.  ``low`` is the lowest guest address the reservation
    holds (runtime/window.py: 0, or higher for a program whose image
    Linux places above the usual window).  ``limit`` None: no clamp at all
    (benchmarks of the sandbox's cost only).  Part of the translation's
    cache key (translator/options.LiftOptions)."""
    limit: int | None
    guard: int
    low: int = 0

    @property
    def bias(self) -> int:
        """What code adds to an address before the clamp, and the runtime
        therefore subtracts from the memory argument: the guard, less the
        window's low end (just -low without the clamp)."""
        return -self.low if self.limit is None else self.guard - self.low

    @property
    def ceiling(self) -> int:
        """The largest biased address the clamp lets through (``limit`` above
        ``low``, biased)."""
        assert self.limit is not None
        return self.limit + self.guard

    def key(self) -> str:
        at = f"@{self.low:x}" if self.low else ""
        return ("unsafe-no-clamp" if self.limit is None else f"clamp{self.limit:x}/{self.guard:x}") + at
