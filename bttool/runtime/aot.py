"""`bttool translate`: ahead-of-time translation into the persistent cache.

Discovery (translator/discovery.py) runs here, in one process; the regions
it finds are lifted and compiled in batches by a pool of worker processes
(one object file per batch), then stored in the cache.  Regions that the
cache already holds for this image, target and options are skipped.  The
code map recorded by earlier runs adds entries that static discovery cannot
see (targets reached only through indirect branches).  The workers die
with the `bttool translate` that started them, however it ends (kill -9
included: PR_SET_PDEATHSIG), and a cache that cannot be written is an
error here, not a silent no-op.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from bttool.errors import BttoolError
from bttool.ir import codegen
from bttool.runtime.cache import CacheStore, RunCache
from bttool.translator.options import LiftOptions
from bttool.translator.loader import PF_X, GuestImage
from bttool.translator.translate import Translation, translate

BATCH = 48


class ImageReader:
    """Reads guest code straight from the image file (no guest memory)."""

    def __init__(self, image: GuestImage, base: int) -> None:
        self.segments = [(base + s.vaddr, base + s.vaddr + s.filesz, s.offset, bool(s.flags & PF_X))
                         for s in image.segments]
        self.data = image.data

    def executable(self, addr: int) -> bool:
        return any(start <= addr < end and x for start, end, _, x in self.segments)

    def read(self, addr: int, length: int) -> bytes:
        """Executable bytes only (what the translator may decode)."""
        return self._read(addr, length, True)

    def read_data(self, addr: int, length: int) -> bytes:
        """File-backed bytes of any segment (jump tables)."""
        return self._read(addr, length, False)

    def _read(self, addr: int, length: int, code: bool) -> bytes:
        for start, end, off, x in self.segments:
            if (x or not code) and start <= addr < end:
                n = min(length, end - addr)
                return self.data[off + addr - start: off + addr - start + n]
        return b""


@dataclass
class AotSummary:
    functions: int = 0
    regions: int = 0
    regions_cached_before: int = 0
    guest_instructions: int = 0
    untranslatable: list[tuple[int, str]] = field(default_factory=list)
    failed_regions: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    bytes_added: int = 0
    jump_tables: int = 0
    codemap_entries: int = 0


_worker: dict = {}


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a freshly forked helper: be killed when ``parent`` (the process
    that forked it) dies, and end now if it already has (it died before
    the request was made: this process was reparented)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(parent: int, image: GuestImage, base: int, options: LiftOptions,
                 target: codegen.Target, known: frozenset[int],
                 tables: dict[int, list[int]]) -> None:
    die_with_parent(parent)
    _worker.update(reader=ImageReader(image, base), options=options, target=target, known=known,
                   tables=tables)


# A region holding a switch's dispatch takes the switch's cases in, up to
# the bounds of a run-time tier-2 region (runtime/dispatcher.py promote):
# the cases are entries of their own too, and a region stopping at every
# one of them left an interpreter's dispatch to the lookup table at every
# bytecode (bench interp translated with --opt 2 ran 2.2 s, not 0.94).
DISPATCH_BLOCKS, DISPATCH_INSNS = 64, 3000


def _translate_batch(job: tuple[list[int], bool]) -> tuple[list[Translation], list[tuple[int, str]]]:
    """Translate a batch (its entries, and whether they are dispatchers:
    ``DISPATCH_BLOCKS``) into one object; on a compile error, fall back to
    one region at a time and report the regions that cannot be compiled."""
    entries, dispatch = job
    w = _worker
    # (a dispatch region takes in every block it reaches, as tier 2 at run time does)
    known = (lambda p: False) if dispatch else w["known"].__contains__
    bounds = {"max_blocks": DISPATCH_BLOCKS, "max_insns": DISPATCH_INSNS,
              "known_tables": w["tables"].get, "follow_calls": True} if dispatch else {}
    skipped: list[tuple[int, str]] = []
    try:
        t = translate(entries, w["reader"].read, w["options"], w["target"],
                      known=known, read_data=w["reader"].read_data, skipped=skipped, **bounds)
        return ([t] if t.regions else []), skipped
    except Exception:  # noqa: BLE001 - retried region by region below
        pass
    out, failed = [], []
    for pc in entries:
        try:
            t = translate([pc], w["reader"].read, w["options"], w["target"],
                          known=known, read_data=w["reader"].read_data, **bounds)
            if t.regions:
                out.append(t)
        except Exception as e:  # noqa: BLE001
            failed.append((pc, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
    return out, failed


def data_pointers(image: GuestImage, reader: "ImageReader") -> list[int]:
    """Code addresses stored in the image's data (function pointer tables,
    such as busybox's applet table): every 8-byte aligned value of a
    non-executable segment that points into executable code (size-optimised
    code does not align functions, so neither do we).  A false candidate
    costs only a translation that is never run."""
    import array
    out = []
    for start, end, off, x in reader.segments:
        if x:
            continue
        lo = (start + 7) & ~7
        blob = image.data[off + lo - start: off + end - start]
        words = array.array("Q", blob[:len(blob) // 8 * 8])
        lo_x = min(s for s, _, _, x in reader.segments if x)
        hi_x = max(e for _, e, _, x in reader.segments if x)
        out += [w for w in words if lo_x <= w < hi_x and reader.executable(w)]
    return list(dict.fromkeys(out))


def function_starts(image: GuestImage, base: int) -> list[int]:
    """Entry point, FUNC symbols and .eh_frame FDEs (uses lief)."""
    import lief

    from bttool.translator.discovery import eh_frame_functions
    lief.logging.disable()
    elf = lief.ELF.parse(image.path)
    starts = [base + image.entry]
    for sym in elf.symbols:
        if sym.type == lief.ELF.Symbol.TYPE.FUNC and sym.value:
            starts.append(base + sym.value)
    sec = elf.get_section(".eh_frame")
    if sec is not None:
        starts += [base + a for a in eh_frame_functions(bytes(sec.content), sec.virtual_address)]
    return starts


def translate_program(image: GuestImage, store: CacheStore, target: codegen.Target, jobs: int,
                      progress=None, log=None) -> AotSummary:
    from bttool.runtime.memory import PIE_BASE
    from bttool.runtime.process import program_window
    from bttool.translator.discovery import discover

    if store.readonly or store.disabled:
        raise BttoolError(f"cache {store.root} cannot be written")
    t0 = time.perf_counter()
    base = PIE_BASE if image.pie else 0
    # The quick tier keeps its execution counters, so hot code is still
    # re-optimised (and cached) at run time.
    # (in the window a run gives the program; an ET_EXEC interpreter that
    # would move it is not looked at)
    options = program_window(image).options(base if image.pie else None,
                                            hot_counters=target.opt_level < 2,
                                            unit_image=image.sha256 if image.pie else "")
    reader = ImageReader(image, base)
    summary = AotSummary()
    starts = function_starts(image, base)
    summary.functions = len({s for s in starts if reader.executable(s)})
    if not image.pie:   # PIE data pointers are only filled in by relocation
        starts += data_pointers(image, reader)
    codemap = [base + e for e in store.codemap(image.sha256, options.mode_key())]
    summary.codemap_entries = len(codemap)
    disc = discover(reader.read, starts + codemap, reader.executable, read_data=reader.read_data)
    summary.jump_tables = disc.jump_tables
    run_cache = RunCache(store, image.sha256, os.path.abspath(image.path),
                         [(target.key(), options.key())], target.triple, options.mode_key(), base)
    todo = []
    for pc in disc.entries:
        if run_cache.lookup(pc, reader.read) is not None:
            summary.regions_cached_before += 1
        else:
            todo.append(pc)
    size_before = store.total_size()
    plain = [pc for pc in todo if pc not in disc.dispatchers]
    batches = [(plain[i:i + BATCH], False) for i in range(0, len(plain), BATCH)]
    batches += [([pc], True) for pc in todo if pc in disc.dispatchers]
    known = frozenset(disc.entries)
    if progress:
        progress(0, len(todo))
    done = 0
    # forked workers (never a fork server's children): the parent they watch is this process
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=multiprocessing.get_context("fork"),
                             initializer=_init_worker,
                             initargs=(os.getpid(), image, base, options, target, known,
                                       disc.site_targets)) as pool:
        futures = {pool.submit(_translate_batch, b): b for b in batches}
        for fut in as_completed(futures):
            try:
                translations, failed = fut.result()
            except BrokenProcessPool:
                raise BttoolError("a translation worker died (LLVM aborted); "
                                  "the regions translated so far are kept in the cache") from None
            summary.failed_regions += failed
            for t in translations:
                store.write_translation(t, image.sha256, os.path.abspath(image.path), target.key(),
                                        target.triple, options.key())
                summary.regions += len(t.regions)
                summary.guest_instructions += t.insn_count
                for r in t.regions:
                    summary.untranslatable += r.untranslatable
            done += len(futures[fut][0])
            if progress:
                progress(done, len(todo))
    summary.bytes_added = store.total_size() - size_before
    summary.seconds = time.perf_counter() - t0
    return summary


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def progress_printer(stream=sys.stderr):
    """A one-line progress bar on a terminal; silence otherwise."""
    if not stream.isatty():
        return None
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        width = 30
        frac = done / total if total else 1.0
        bar = "#" * int(frac * width)
        stream.write(f"\rtranslating [{bar:<{width}}] {done}/{total} regions "
                     f"{time.perf_counter() - start:5.1f}s")
        if done >= total:
            stream.write("\n")
        stream.flush()
    return show
