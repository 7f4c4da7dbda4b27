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
    reservation (ir/memory.py).  An address is its register parts (a base,
    an index) plus a displacement of at most ``guard``; each part ``p`` is
    clamped on its own into [-limit, 2*limit] (relative to ``low`` for the
    base: ``low`` is the lowest guest address the reservation holds,
    runtime/window.py), a part outside that range becoming 2*limit, and the
    displacement is added after.  A result is then either exact or at
    least ``limit - guard`` above ``low`` where nothing is ever mapped:
    however the parts were forged, a wrong address is never a mapped one.
    ``limit`` None: no clamp at all (benchmarks of the sandbox's cost only).
    Part of the translation's cache key (translator/options.LiftOptions)."""
    limit: int | None
    guard: int
    low: int = 0

    @property
    def bias(self) -> int:
        """What code adds to a base part before its clamp, and the runtime
        therefore subtracts from the memory argument: the limit, less the
        window's low end (just -low without the clamp)."""
        return -self.low if self.limit is None else self.limit - self.low

    @property
    def ceiling(self) -> int:
        """The largest biased part the clamp lets through; a part clamps to
        ``umin(p + limit, ceiling) - limit``."""
        assert self.limit is not None
        return 3 * self.limit

    @property
    def splits(self) -> bool:
        """Whether base and index are clamped apart.  Only in a window at 0:
        in one higher up, the operand that holds the pointer (relative to
        ``low``) may be either of the two, so base + index is clamped as one
        part there."""
        return self.limit is not None and self.low == 0

    def key(self) -> str:
        at = f"@{self.low:x}" if self.low else ""
        return ("unsafe-no-clamp" if self.limit is None
                else f"clamp{self.limit:x}/{self.guard:x}/parts") + at
