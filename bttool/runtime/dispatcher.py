"""Executing translated code: the lookup table, translation on a miss, and
the loop around the native dispatcher (ir/support.py).

Python runs only when the native loop returns: an untranslated target, a
system call or runtime intrinsic, a fault, or exit.  The guest personality
(linux-user now, a system VM later) handles those exits.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from bttool.ir import codegen, state as st
from bttool.ir.support import TABLE_ENTRIES, table_index
from bttool.runtime.engine import Engine
from bttool.translator.blocks import UnmappedCode
from bttool.translator.lifter import LiftOptions
from bttool.translator.translate import translate

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.cache import RunCache

_EMPTY = 0xFFFFFFFFFFFFFFFF  # never a guest pc (outside the guest window)


@dataclass
class Stats:
    regions_translated: int = 0
    regions_from_cache: int = 0
    guest_instructions_translated: int = 0
    translate_seconds: float = 0.0
    cache_load_seconds: float = 0.0
    exits_to_python: int = 0
    syscalls: int = 0
    untranslatable: list[tuple[int, str]] = field(default_factory=list)


class Executor:
    """Runs guest code from ``state.rip`` until the personality says stop."""

    def __init__(self, state, memory, options: LiftOptions, cache: "RunCache | None" = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.state = state
        self.memory = memory
        self.options = options
        self.cache = cache
        self.log = log or (lambda msg: None)
        self.stats = Stats()
        self.engine = Engine()
        self.target = codegen.host_target()
        # The lookup table lives in the support object (native code reads it
        # directly); Python fills it.
        self.table = (ctypes.c_uint64 * (2 * TABLE_ENTRIES)).from_address(
            self.engine.global_address("bt_table"))
        self.clear_table()
        self.known: dict[int, int] = {}

    def clear_table(self) -> None:
        """Forget every installed entry (translations stay loaded)."""
        self.table[0::2] = [_EMPTY] * TABLE_ENTRIES
        self.table[1::2] = [0] * TABLE_ENTRIES

    def install(self, pc: int, addr: int) -> None:
        self.known[pc] = addr
        i = table_index(pc)
        self.table[2 * i] = pc
        self.table[2 * i + 1] = addr

    def ensure(self, pc: int) -> None:
        """Make ``pc`` runnable: reinstall, load from cache, or translate.
        Raises UnmappedCode when pc is not in executable guest memory."""
        addr = self.known.get(pc)
        if addr is not None:
            self.install(pc, addr)
            return
        read = self.memory.read_code
        if not read(pc, 1):
            raise UnmappedCode(pc)
        if self.cache is not None and self._from_cache(pc, read):
            return
        t = translate([pc], read, self.options, self.target, known=self.known.__contains__)
        region = t.regions[0]
        self.stats.regions_translated += 1
        self.stats.guest_instructions_translated += t.insn_count
        self.stats.translate_seconds += t.seconds
        self.stats.untranslatable.extend(region.untranslatable)
        for upc, text in region.untranslatable:
            self.log(f"cannot translate {upc:#x}: {text}")
        self.log(f"translated region {pc:#x}: {len(region.ranges)} blocks, {t.insn_count} insns, "
                 f"{t.seconds * 1000:.1f} ms")
        self.engine.load_object(t.object_code)
        self.install(pc, self.engine.address(region.symbol))
        if self.cache is not None:
            self.cache.store_translation(t)

    def _from_cache(self, pc: int, read) -> bool:
        t0 = time.perf_counter()
        hit = self.cache.lookup(pc, read)
        if hit is None:
            return False
        if not self.engine.has_symbol(hit.symbol):
            data = self.cache.read_object(hit)
            if data is None:
                return False
            self.engine.load_object(data)
        self.install(pc, self.engine.address(hit.symbol))
        self.stats.regions_from_cache += 1
        self.stats.cache_load_seconds += time.perf_counter() - t0
        return True

    def run_once(self) -> int:
        """Run native code until an exit; returns the exit reason."""
        s = self.state
        r = self.engine.run_fn(ctypes.addressof(s), self.memory.base)
        s.exit_reason = st.EXIT_NONE
        self.stats.exits_to_python += 1
        return r
