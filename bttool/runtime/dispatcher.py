"""Executing translated code: the lookup table, translation on a miss, and
the loop around the native dispatcher (runtime/nativeloop.py).

Python runs only when the native loop returns: an untranslated target, a
system call or runtime intrinsic, a fault, or exit.  The guest personality
(linux-user now, a system VM later) handles those exits.
"""
from __future__ import annotations

import ctypes
import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from bttool.ir import codegen, state as st
from bttool.ir.tables import (COUNTER_BITS, EMPTY_PC, HOT_THRESHOLD, STITCHED_HOT_THRESHOLD, TABLE_ENTRIES,
                              TABLE_ENTRY_SIZE, TABLE_SET_SIZE, TABLE_WAYS, TARGET_BITS, counter_slot,
                              table_set, target_index)
from bttool.runtime.coderanges import CodeRanges
from bttool.runtime.engine import Engine, SupportCompiler
from bttool.runtime.guestthreads import LOCK, PerThread
from bttool.translator.guestcode import Span, UnmappedCode, foreign_base_symbol
from bttool.translator.options import LiftOptions

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.background import BackgroundCompiler
    from bttool.runtime.cache import RunCache
    from bttool.runtime.codeunits import CodeUnits
    from bttool.runtime.keptcode import KeptUnit
    from bttool.translator.translate import RegionInfo, Translation

# objects of a warm set read and loaded together (Dispatcher._install_warm)
_WARM_BATCH = 256


@dataclass
class Stats:
    regions_translated: int = 0
    regions_from_cache: int = 0
    guest_instructions_translated: int = 0
    translate_seconds: float = 0.0
    cache_load_seconds: float = 0.0
    exits_to_python: int = 0
    syscalls: int = 0
    threads: int = 1            # guest threads that ran (the first included)
    cache_dropped: int = 0      # cache rows and objects found corrupt and dropped
    cache_rows_read: int = 0    # region rows read from the cache index
    background_compiles: int = 0    # tier-2 objects made by the compile server
    background_fallbacks: int = 0   # tier-2 jobs compiled in this process instead
    # wall time the guest stood still waiting for tier-2 compilations still
    # under way (before exit and exec: ``collect(wait=True)``)
    compile_wait_seconds: float = 0.0
    execs_in_place: int = 0     # guest execve served in this process before this program
    regions_kept: int = 0       # installed as the program that execve replaced had them (keptcode.py)
    untranslatable: list[tuple[int, str]] = field(default_factory=list)
    # per code unit's file path: [regions translated, regions from the cache]
    by_image: dict[str, list[int]] = field(default_factory=dict)


class Executor:
    """Runs guest code from ``state.rip`` until the personality says stop.
    Shared by the guest's threads (runtime/guestthreads.py): ``state`` is
    the calling thread's own."""

    state = PerThread()

    def __init__(self, state, memory, options: LiftOptions, cache: "RunCache | None" = None,
                 log: Callable[[str], None] | None = None,
                 compile_support: SupportCompiler | None = None,
                 engine: Engine | None = None) -> None:
        """``engine``: the loaded code of the guest an execve in this
        process replaced (runtime/execinplace.py), kept: what is loaded
        there need not be read and linked again.  Its counters and targets
        are emptied here, its lookup table by runtime/keptcode.settle
        unless the new guest keeps every entry."""
        self.state = state
        self.memory = memory
        self.options = options
        self.cache = cache
        self.log = log or (lambda msg: None)
        self.stats = Stats()
        self.engine = engine or Engine(compile_support)
        self.target = codegen.host_target(1)     # tier 1: quick
        self.target2 = codegen.host_target(2)    # tier 2: hot regions, full O2
        self.promoted: set[int] = set()
        # Block starts of the tier-2 regions this run translated (see promote).
        self.tier2_blocks: set[int] = set()
        # Tier-2 compilations under way in the compile server (user mode):
        # job number -> (entry, the [start, end) ranges of its blocks), until
        # installed; and the jobs among them whose guest code was forgotten
        # since they were lifted (not installed when they arrive).  Keyed by
        # job, not by entry: a tier-1 translation of the same entry made
        # meanwhile (the code was replaced and ran again) must neither take
        # nor clear the job's stale mark.
        self.background: "BackgroundCompiler | None" = None
        self.compiling: dict[int, tuple[int, list[tuple[int, int]]]] = {}
        self.stale: set[int] = set()
        self._jobs = 0
        # The lookup table lives in the support object (native code reads it
        # directly); Python fills it.
        for link, table in zip(st.RUNTIME_LINKS, ("bt_table", "bt_counters", "bt_targets")):
            setattr(state, link, self.engine.global_address(table))
        self._table_base = state.table_base
        # bumped at every change of what is installed (runtime/keptcode.py
        # reuses what it worked out while nothing changed)
        self.generation = 0
        self.kept_memo: tuple | None = None
        if engine is None:
            self.clear_table()
        else:
            # the last guest's counts and targets go; its table holds its
            # entries until runtime/keptcode.settle keeps them all or empties it
            ctypes.memset(state.counters_base, 0, 4 << COUNTER_BITS)
            ctypes.memset(state.targets_base, 0, 8 << TARGET_BITS)
        self.known: dict[int, int] = {}
        # Known translations made without commits before the guest needed
        # precise faults: replaced when next entered (require_precise_faults)
        self.imprecise: set[int] = set()
        # tier 1's stencils (translator/stitch.py), by options and target key
        self._stencils: dict[tuple[str, str], object] = {}
        self.loaded_objects: set[str] = set()   # cache objects already in the engine
        # System mode: regions stay inside [lo, hi) = region_bound(entry), and
        # on_install(pc) is told of every translation newly made runnable
        # (not of reinstalls after the table was cleared).
        self.region_bound: Callable[[int], tuple[int, int]] | None = None
        self.on_install: Callable[[int], None] | None = None
        # System mode: whether a known translation of pc still applies after
        # the table was cleared because guest mappings changed (CR3).
        self.still_valid: Callable[[int], bool] | None = None
        # Last targets of tier-1 indirect calls and jumps (ir/tables.py).
        self.target_profile = (ctypes.c_uint64 * (1 << TARGET_BITS)).from_address(
            state.targets_base)
        # User mode: the code units (program, interpreter, libraries), each
        # translated relative to its own base (runtime/codeunits.py).
        self.units: "CodeUnits | None" = None
        self._unit_options: dict[tuple[int, bool, str], LiftOptions] = {}
        # User mode: told the guest ranges of every translation made
        # runnable (runtime/codepages.py watches their writable pages).
        self.on_code: Callable[[list[tuple[int, int]]], None] | None = None
        # The guest ranges of the translations at each known pc, findable by
        # address (an munmap's or mprotect's: runtime/coderanges.py).
        self.code_ranges = CodeRanges()
        # User mode: the units whose warm set was installed (_install_warm)
        self._warmed: set[tuple[str, int, int]] = set()
        # User mode: the translations of the guest an execve in this process
        # replaced, of units mapped since, by unit, for _install_warm to
        # keep (runtime/keptcode.py)
        self.kept: "dict[tuple[str, int, int], KeptUnit]" = {}

    @property
    def empty_table(self) -> int:
        """Address of a lookup table with no entries: translated code whose
        table link points there returns to ``bt_run`` at every region exit
        (single steps, runtime/precisefault.py; a caught signal,
        runtime/guestsignals.py)."""
        return self.engine.empty_table

    def new_thread_state(self):
        """A state for a new guest thread: a copy of the calling thread's,
        with the host side (jump buffer, caught signals) cleared."""
        s = st.new_state()
        ctypes.memmove(ctypes.addressof(s), ctypes.addressof(self.state), st.offset("tlb"))
        s.irq_pending = 0
        s.table_base = self.engine.global_address("bt_table")
        return s

    def options_for(self, pc: int) -> LiftOptions:
        """The lift options for code at ``pc``: position-independent
        relative to its unit's base, or absolute."""
        if self.units is None:
            return self.options
        u = self.units.find(pc)
        k = (u.base, u.pic, u.image)
        opts = self._unit_options.get(k)
        if opts is None:
            opts = self._unit_options[k] = dataclasses.replace(
                self.options, pic_base=u.base if u.pic else None,
                unit_image=u.image if u.pic else "")
        return opts

    def _count(self, pc: int, translated: int, cached: int) -> None:
        path = self.units.find(pc).path if self.units is not None else ""
        n = self.stats.by_image.setdefault(path, [0, 0])
        n[0] += translated
        n[1] += cached

    def require_precise_faults(self) -> None:
        """From now on translate with commits (LiftOptions.precise_faults):
        the guest has a handler that will see the state at a host fault.
        The translations made before are replaced as they are next entered
        (``ensure``: from the cache, or translated again), so no code
        without commits runs once the handler is there."""
        if self.options.precise_faults:
            return
        self.options = dataclasses.replace(self.options, precise_faults=True)
        self._unit_options.clear()
        self.imprecise.update(self.known)
        self.clear_table()

    def clear_table(self) -> None:
        """Forget every installed entry (translations stay loaded); each
        entry is emptied in one atomic store (runtime/nativeloop.py)."""
        self.generation += 1
        self.engine.table_fill(self._table_base, TABLE_ENTRIES)

    def _install_new(self, pc: int, addr: int) -> None:
        if self.on_install is not None:
            self.on_install(pc)
        self.install(pc, addr)

    def forget(self, pcs) -> None:
        """Drop the translations at ``pcs`` (all when None) from the lookup
        table; they are looked up again (cache, or retranslated) on use.
        Nothing to drop leaves the table alone (ld.so's mmaps over data
        replace no code, and refilling a table of hundreds of entries for
        each of them cost a dynamically linked program's start-up)."""
        wanted = None if pcs is None else set(pcs)
        if wanted is not None and not wanted:
            return
        self.generation += 1
        self.stale.update(job for job, (pc, _) in self.compiling.items()
                          if wanted is None or pc in wanted)
        if wanted is None:
            self.known.clear()
            self.imprecise.clear()
            self.code_ranges.clear()
            self.promoted.clear()
            self.tier2_blocks.clear()
        else:
            for pc in wanted:
                self.known.pop(pc, None)
                self.imprecise.discard(pc)
                self.code_ranges.pop(pc, None)
                self.promoted.discard(pc)
        self.clear_table()
        for pc, a in self.known.items():
            if pc not in self.imprecise:
                self.install(pc, a)

    def install(self, pc: int, addr: int) -> None:
        """Publish ``pc``'s translation in the lookup table: in the way that
        holds ``pc`` already, else an empty way, else the first way, whose
        entry moves to the second (the set's older entry leaves).  Only
        Python writes the table (under the runtime lock); each store is one
        atomic entry, so a racing reader sees an old or a new entry, never a
        torn one, and at worst misses once."""
        self.known[pc] = addr
        self.generation += 1
        first = self._table_base + TABLE_SET_SIZE * table_set(pc)
        ways = [first + TABLE_ENTRY_SIZE * w for w in range(TABLE_WAYS)]
        pcs = [ctypes.c_uint64.from_address(a).value for a in ways]
        for want in (pc, EMPTY_PC):
            if want in pcs:
                self.engine.table_put(ways[pcs.index(want)], pc, addr)
                return
        for w in range(TABLE_WAYS - 1, 0, -1):       # age the set by one way
            prev = ways[w - 1]
            self.engine.table_put(ways[w], pcs[w - 1], ctypes.c_uint64.from_address(prev + 8).value)
        self.engine.table_put(first, pc, addr)

    def ensure(self, pc: int) -> None:
        """Make ``pc`` runnable: reinstall, load from cache, or translate.
        Raises UnmappedCode when pc is not in executable guest memory."""
        addr = self.known.get(pc)
        if addr is not None:
            if pc in self.imprecise:            # made before precise faults were needed
                self.imprecise.discard(pc)
                self.promoted.discard(pc)       # (tier 2 may make it again)
                del self.known[pc]
            elif self.still_valid is None or self.still_valid(pc):
                self.install(pc, addr)
                return
            else:
                del self.known[pc]
        read = self.memory.read_code
        if not read(pc, 1):
            raise UnmappedCode(pc)
        cached: Callable[[int], bool] = lambda p: False
        if self.cache is not None:
            if self.units is not None:
                self._install_warm(pc, read)
                if pc in self.known:
                    return
            if self._from_cache(pc, read):
                return
            # Pcs with a cached region count as known: discovery stops
            # there, and (user mode) they are not translated along as the
            # entry block's callee or return site (translator/translate.py).
            cached = self.cache.has_entry
        self._translate(pc, read, self.options_for(pc), self.target,
                        known=lambda p: p in self.known or cached(p),
                        with_entry_call=self.region_bound is None)

    def _read_data(self, addr: int, length: int) -> bytes:
        """Guest data for resolving jump tables ('' where unreadable)."""
        try:
            return self.memory.read(addr, length)
        except OSError:
            return b""

    def promote(self, pc: int) -> None:
        """Tier 2: retranslate hot code at ``pc`` as a bigger region with full
        optimisation and make it the translation of ``pc``.  In user mode
        the O2 compilation runs in the background (runtime/background.py):
        the guest goes on in tier-1 code until the result is installed."""
        if pc in self.promoted:
            return
        if any(s <= pc < e for _, ranges in self.compiling.values() for s, e in ranges):
            return      # the region being compiled covers pc; count again later
        self.promoted.add(pc)
        read = self.memory.read_code
        opts = self.options_for(pc).tier2()
        if self.cache is not None:
            hit = self.cache.lookup(pc, read, tier=0)
            if hit is not None and self._load_hit(pc, hit):
                return
        # A tier-2 region takes in every block it reaches (up to the bounds),
        # even ones that are tier-1 region entries; a jump table whose base
        # register is set up outside the region is guessed from the
        # registers now (see translator/jumptables.py).
        #
        # A pc inside an earlier tier-2 region is typically the return site
        # of a call in that region's loop: the call leaves the region and the
        # return comes back through the lookup table.  Following calls from
        # there (return sites as successors) would copy the whole loop again
        # for every call in it; without, the region runs from the return
        # site to the next call, and the loop's pieces between calls are
        # translated once each.
        region = self._translate(pc, read, opts, self.target2, known=lambda p: False,
                                 max_blocks=64, max_insns=3000, reg_value=self._reg_value,
                                 follow_calls=pc not in self.tier2_blocks,
                                 guess_target=self._guess_target,
                                 background=self.region_bound is None)
        self.tier2_blocks.update(start for start, _ in region.ranges)

    def _guess_target(self, site: int) -> int | None:
        """The last target tier-1 code saw at the indirect call/jump at
        ``site`` (or at a site colliding with it: only a guess).  A target
        in another code unit is taken too (libc's qsort calling the
        program's comparison function): the region holds that unit's code
        as a foreign span, placed at the unit's base in each run
        (translator/guestcode.Span); not when either end lies outside the
        mapped units (JIT code)."""
        guess = self.target_profile[target_index(site - (self.options_for(site).pic_base or 0))]
        if not guess:
            return None
        if self.units is not None:
            here, there = self.units.find(site), self.units.find(guess)
            if there is not here and not (here.contains(site) and there.contains(guess)):
                return None
        return guess

    def _reg_value(self, register: str) -> int | None:
        """The current value of a 64-bit register (a guess for jump-table
        bases: translator/jumptables.py)."""
        return getattr(self.state, register, None)

    def _translate(self, pc: int, read, options: LiftOptions, target, known=None,
                   background: bool = False, **kw) -> "RegionInfo":
        """Translate the region at ``pc``; with ``background`` only lift it
        here and leave the compilation to the compile server (the region is
        installed when its object arrives, see ``collect``)."""
        from bttool.translator.translate import lift  # not needed by warm runs
        if self.region_bound is not None:
            kw["within"] = [self.region_bound(pc)]
        elif self.units is not None:
            # A region's blocks lie in mapped units: the entry's, and (tier
            # 2, through a guessed indirect target) others as foreign spans;
            # each span is keyed by its file and placed at its unit's base.
            # Tier 1 stays in its own unit.  A file mapped twice is one unit
            # to a region (its cell holds one base): its first mapping.
            u = self.units.find(pc)
            if u.contains(pc):
                others = [v for v in self.units.all() if v.image != u.image
                          and self.units.by_image(v.image) is v] if kw.get("guess_target") else []
                kw["within"] = [(v.start, v.end) for v in [u] + others]
                kw["foreign"] = [Span(v.start, v.end, v.base, v.image) for v in others]
        lifted = None
        if options.stitched() and not kw.get("foreign") and not background:
            lifted = self._stitch(pc, read, options, target, known, kw.get("within"))
        if lifted is None:
            lifted = lift([pc], read, options, target, known=known or self.known.__contains__,
                          read_data=self._read_data, **kw)

        if not background:
            self._finish(lifted.compile(), target, options)
            return lifted.regions[0]
        self._jobs += 1
        job = self._jobs
        self.compiling[job] = (pc, lifted.regions[0].ranges)

        def done(t: "Translation") -> None:
            del self.compiling[job]
            current = job not in self.stale
            if not current:
                self.stale.discard(job)
                self.promoted.discard(pc)       # may be promoted again
            self._finish(t, target, options, current=current)
            if current:
                self._hurry_to(pc, options, ranges=t.regions[0].ranges)
        if self.background is None:
            from bttool.runtime.background import BackgroundCompiler
            self.background = BackgroundCompiler(self.log)
        self.background.submit(lifted, done)
        return lifted.regions[0]

    def _stitch(self, pc: int, read, options: LiftOptions, target, known, within):
        """Tier 1 by copy and patch (translator/stitch.py), or None where
        the region has an instruction without a stencil."""
        from bttool.translator.translate import host_features, stitch
        from bttool.translator.stitch import StencilLibrary
        k = (options.key(), target.key())
        library = self._stencils.get(k)
        if library is None:
            store = None
            if self.cache is not None and self.cache.store is not None:
                from bttool.runtime.stencilstore import StencilFile, stencil_root
                store = StencilFile(stencil_root(), "|".join(k))
            library = self._stencils[k] = StencilLibrary(options, target, host_features(options, target),
                                                         store)
        return stitch(pc, read, options, target, library, known=known or self.known.__contains__,
                      read_data=self._read_data, within=within)

    def _hurry_to(self, pc: int, options: LiftOptions, ranges=()) -> None:
        """Make the tier-1 code at ``pc`` leave at its next count (as hot:
        ``promote`` then finds pc done and the guest goes on in the tier-2
        code just installed there), and the tier-1 code at the other
        blocks of the new region (``ranges``) count afresh.  Without the
        first, a loop whose head was promoted runs on in tier 1 for up to
        a threshold's more rounds; without the second, a return site in
        the loop, counted about as often as its head, may go hot on the
        way back to the head and get a tier-2 region of its own that the
        new code never needs.  A return site the new code does leave to
        (a call out of the region) counts up again and is promoted then."""
        counters = self.state.counters_base
        if not counters:
            return
        base = options.pic_base or 0
        for start, _ in ranges:
            if start != pc:
                ctypes.c_uint32.from_address(counters + counter_slot(start - base)).value = 0
        # past either threshold, compiled or stitched
        ctypes.c_uint32.from_address(counters + counter_slot(pc - base)).value = \
            max(HOT_THRESHOLD, STITCHED_HOT_THRESHOLD)

    def forget_compiling(self) -> None:
        """In a forked child: the compilations under way are the parent's
        (runtime/background.py after_fork); their entries may be promoted
        here again."""
        for pc, _ranges in self.compiling.values():
            self.promoted.discard(pc)
        self.compiling.clear()
        self.stale.clear()

    def compiling_over(self, start: int, end: int) -> list[int]:
        """Entries of the tier-2 compilations under way whose guest code
        overlaps [start, end)."""
        return [pc for pc, ranges in self.compiling.values()
                if any(s < end and start < e for s, e in ranges)]

    def _finish(self, t: "Translation", target, options: LiftOptions, current: bool = True) -> None:
        """Load a compiled translation, install its regions (unless guest
        code was forgotten since it was lifted: ``current`` false) and
        store it in the cache."""
        if self.options.precise_faults and not options.precise_faults:
            current = False     # lifted before precise faults were needed: cached only
        self.stats.translate_seconds += t.seconds
        self.engine.load_object(t.object_code)
        for region in t.regions:
            self.stats.regions_translated += 1
            self._count(region.entry, 1, 0)
            self.stats.guest_instructions_translated += region.insn_count
            self.stats.untranslatable.extend(region.untranslatable)
            for upc, text in region.untranslatable:
                self.log(f"cannot translate {upc:#x}: {text}")
            self.log(f"translated region {region.entry:#x} (O{target.opt_level}): "
                     f"{len(region.ranges)} blocks, {region.insn_count} insns"
                     + (f", {t.seconds * 1000:.1f} ms" if region is t.regions[0] else ", same module"))
            if current:
                self.code_ranges[region.entry] = region.ranges
                if self.on_code is not None:
                    self.on_code(region.ranges)
                self._bind_foreign(region.symbol, {s.image: s.base for s in region.spans if s.image})
                self._install_new(region.entry, self.engine.address(region.symbol))
        if self.cache is not None:
            self.cache.store_translation(t, target.key(), options.key())

    def collect(self, wait: bool = False, store: bool = False) -> None:
        """Install the background compilations that have finished (all of
        them, waiting, with ``wait``: before exit and exec).  With ``wait``
        or ``store`` (before a fork), the translations not yet in the
        cache are written there too."""
        if self.background is not None and self.background.pending:
            if wait:
                t0 = time.perf_counter()
                self.background.drain()
                self.stats.compile_wait_seconds += time.perf_counter() - t0
            else:
                self.background.poll()
        if (wait or store) and self.cache is not None:
            self.cache.flush()

    def _from_cache(self, pc: int, read) -> bool:
        hit = self.cache.lookup(pc, read)
        return hit is not None and self._load_hit(pc, hit)

    def _install_warm(self, pc: int, read) -> None:
        """When the code of a unit first runs: install at once the regions
        the last run of this program used there (RunCache.warm_hits), each
        checked as a lookup would.  A dynamically linked program's start-up
        takes some 550 regions from the cache; one exit, lookup and object
        read each made a warm run of one that returns 0 take 204 ms where
        it now takes 178 (README.md, the warm set).  Their objects are
        read (one query) and loaded (one batch) ``_WARM_BATCH`` at a time:
        a warm CPython's 15,000 objects (65 MB), read and parsed at once,
        raised its peak memory by more than their size."""
        u = self.units.find(pc)
        key = (u.image, u.base, u.start)
        if key in self._warmed:
            return
        self._warmed.add(key)
        kept = self.kept.pop(key, None)
        if kept is not None and kept.matches(u) and self.keep(kept, u, kept.usable(read), False):
            return
        hits = self.cache.warm_hits(u, read, self.known.__contains__, self.loaded_objects)
        fresh = list({h.object_id: h for _, h in hits if h.object_id not in self.loaded_objects}.values())
        for i in range(0, len(fresh), _WARM_BATCH):
            found = self.cache.read_objects(fresh[i:i + _WARM_BATCH])
            t0 = time.perf_counter()
            self.engine.load_objects(list(found.values()))
            self.stats.cache_load_seconds += time.perf_counter() - t0
            self.loaded_objects.update(found)
        code: list[tuple[int, int]] = []
        for at, hit in hits:
            if hit.object_id in self.loaded_objects and self._load_hit(at, hit, watch=False):
                code += hit.ranges
        if code and self.on_code is not None:
            self.on_code(code)          # (once: most regions share their pages)

    def keep(self, kept: "KeptUnit", unit, entries: dict[int, tuple[int, bool]],
             installed: tuple | None = None) -> bool:
        """Install ``entries``, translations of ``unit`` that the guest an
        execve in this process replaced had installed, and whose code this
        guest holds too (runtime/keptcode.py).  ``installed``: the old
        executor's known entries and tier-2 pcs, when the lookup table
        still holds them, they are all kept and this executor has none
        yet: taken over as they are, with its code ranges.  Whether that
        was all of them (else the unit's warm set is installed too, for
        the rest)."""
        self._warmed.add(kept.key)
        whole = len(entries) == len(kept.entries)
        if installed is not None and whole and not self.known:
            self.known, self.promoted = installed
            self.code_ranges = kept.index
            self.generation += 1
            n = len(entries)
        else:
            fresh = [pc for pc in entries if pc not in self.known]
            for pc in fresh:
                self._install_new(pc, entries[pc][0])
            self.code_ranges.merge(kept.index, fresh)
            self.promoted.update(pc for pc in fresh if entries[pc][1])
            n = len(fresh)
        if self.on_code is not None:        # (its code's pages in one go, when all are kept)
            self.on_code(kept.pages() if whole else [r for pc in entries for r in kept.index[pc]])
        if self.cache is not None and kept.records is not None:
            self.cache.adopt_records(kept.records)
        self.stats.regions_from_cache += n
        self.stats.regions_kept += n
        if n:
            self._count(unit.start, 0, n)
        return whole

    def _load_hit(self, pc: int, hit, watch: bool = True) -> bool:
        """Install a region from the cache (its object read and loaded if
        it is not yet); ``watch``: tell on_code of its ranges now (else
        the caller does, for many at once)."""
        t0 = time.perf_counter()
        if hit.object_id not in self.loaded_objects:
            data = self.cache.read_object(hit)
            if data is None:
                return False
            self.engine.load_object(data)
            self.loaded_objects.add(hit.object_id)
        self.code_ranges[pc] = hit.ranges
        if watch and hit.ranges and self.on_code is not None:
            self.on_code(hit.ranges)
        self._bind_foreign(hit.symbol, hit.foreign)
        self._install_new(pc, self.engine.address(hit.symbol))
        if hit.rank == 0:
            self.promoted.add(pc)
        self.stats.regions_from_cache += 1
        self._count(pc, 0, 1)
        self.stats.cache_load_seconds += time.perf_counter() - t0
        return True

    def _bind_foreign(self, symbol: str, bases: dict[str, int]) -> None:
        """Tell the translation ``symbol`` where its foreign units are in
        this run (translator/guestcode.Span): written before every install,
        since the unit may have moved since the object was loaded."""
        for image, base in bases.items():
            cell = self.engine.global_address(foreign_base_symbol(symbol, image))
            ctypes.c_uint64.from_address(cell).value = base

    def run(self) -> int:
        """Run until an exit the personality must handle (misses and hot
        regions are handled here); returns that exit reason."""
        while True:
            self.collect()
            r = self.run_once()
            if r == st.EXIT_MISS:
                self.ensure(self.state.rip)
            elif r == st.EXIT_HOT:
                self.promote(self.state.rip)
            else:
                return r

    def run_once(self) -> int:
        """Run native code until an exit; returns the exit reason."""
        s = self.state
        with LOCK.released():
            r = self.engine.run_fn(ctypes.addressof(s), self.memory.arg_base)
        s.exit_reason = st.EXIT_NONE
        self.stats.exits_to_python += 1
        return r
