"""What kind of guest code a translation is for (its lifting options).

A module of its own because the runtime needs the options (and their cache
key) on every run, warm ones included, without importing the lifter.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from bttool.ir.clamp import AddressClamp
from bttool.translator.cpumodel import DEFAULT as DEFAULT_CPU


@dataclass(frozen=True)
class LiftOptions:
    mode: int = 64          # CPU mode: 64-bit long mode or 32-bit protected mode
    user_mode: bool = True  # linux-user (privileged insns fault) or system mode
    # Load base of a position-independent image (None: absolute addresses).
    # Code is generated relative to it; only "is it PIC" belongs in a cache key.
    pic_base: int | None = None
    # Tier-1 code counts region entries and loop back-edges and exits with
    # EXIT_HOT when a counter passes the threshold (adaptive retranslation).
    hot_counters: bool = False
    # Linux-user code that commits the guest state where replaying it after
    # a host fault would otherwise run a memory write twice (ir/commits.py):
    # what a guest with a SIGSEGV or SIGBUS handler gets, so that handler
    # sees exact registers and memory.  It costs the fault-free path, so
    # other guests do without.
    precise_faults: bool = False
    # Lower a few guest instructions to the host's same instruction when the
    # target has it (x86 hosts: SSE4.2's pcmpXstrX, AVX-512's rounding forms
    # of SSE arithmetic), which gives the host's results bit for bit.  Off:
    # generic IR only, what other hosts get (tests run both).  Which
    # instructions the target has is the target's part of the cache key.
    host_instructions: bool = True
    # Linux-user code: how guest addresses are kept inside the host
    # reservation that holds guest memory, which the runtime lays out and
    # therefore chooses (runtime/window.py); required there, unused by
    # system-mode code.
    clamp: AddressClamp | None = None
    # Position-independent code: the file digest of the unit it lies in
    # (the cache row's image).  Part of a region's key (guestcode.region_key)
    # but not of key(): the cache looks a PIC unit's regions up by its file,
    # so identical code in two files (every PIE's PLT stubs and start-up
    # code) must make two rows, not one row that each program takes over
    # from the other and then misses.
    unit_image: str = ""
    # The virtual CPU model (translator/cpumodel.py): instructions of
    # features it lacks are #UD.
    cpu: str = DEFAULT_CPU
    # Tier 1 by copy and patch (translator/stitch.py): regions stitched
    # from per-instruction stencils instead of compiled (hot_counters code
    # in 64-bit linux-user mode only; other code ignores it).
    stencils: bool = False

    def __post_init__(self) -> None:
        if self.user_mode and self.clamp is None:
            raise ValueError("linux-user code needs an address clamp (runtime/window.py Window.clamp)")

    def mode_key(self) -> str:
        """What kind of guest code this is (names the code map)."""
        return (f"mode{self.mode}|{'user' if self.user_mode else 'system'}|"
                f"{'pic' if self.pic_base is not None else 'abs'}")

    def key(self) -> str:
        """Everything in the options that changes generated code, with the
        translator's identity (translator/identity.py: a digest of the
        sources and libraries that make the code) and the CPU state layout
        the code is compiled against.  The cache selects candidates by this
        key, so neither an edited translator nor a layout change ever reuses
        stale code."""
        from bttool.ir.state import LAYOUT_DIGEST
        from bttool.translator.identity import translator_identity
        return self.mode_key() + ("|hot" if self.hot_counters else "") + \
            ("|cp" if self.stitched() else "") + \
            ("" if self.cpu == DEFAULT_CPU else f"|{self.cpu}") + \
            ("|precise" if self.precise_faults else "") + \
            ("" if self.host_instructions else "|generic") + \
            (f"|{self.clamp.key()}" if self.user_mode and self.clamp else "") + \
            f"|t{translator_identity()}" + \
            f"|state-{LAYOUT_DIGEST}"

    def stitched(self) -> bool:
        """Whether tier-1 regions are stitched from stencils."""
        return self.stencils and self.hot_counters and self.user_mode and self.mode == 64

    def tier2(self) -> "LiftOptions":
        return replace(self, hot_counters=False, stencils=False)
