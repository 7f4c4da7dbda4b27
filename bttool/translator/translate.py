"""The translation pipeline: discover -> lift -> compile, for one region (at
run time) or a batch of regions compiled into one object (ahead of time).

Lifting (Python) and compiling (LLVM) are separate steps so that the runtime
can compile tier-2 regions in the background (runtime/background.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from capstone.x86_const import X86_INS_CALL
from llvmlite import ir

from bttool.ir import codegen
from bttool.ir.lifetime import release_module
from bttool.translator import registry
from bttool.translator.blocks import Region, discover_region
from bttool.translator.decoder import Decoder
from bttool.translator.guestcode import CodeReader, Span, UnmappedCode, guest_digest, region_key
from bttool.translator.lifter import lift_region
from bttool.translator.options import LiftOptions


@dataclass
class RegionInfo:
    entry: int                              # absolute guest pc at translation time
    entry_rel: int                          # relative to the image base
    key: str
    symbol: str
    insn_count: int
    spans: list[Span]                       # every block, with its unit's base (and file)
    guest_code: bytes                       # the bytes of those spans, concatenated
    digest: str
    untranslatable: list[tuple[int, str]] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)   # where execution re-enters next

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """Absolute [start, end) of every block."""
        return [(s.start, s.end) for s in self.spans]

    @property
    def foreign_images(self) -> list[str]:
        """The files of the foreign units the region took code from."""
        return sorted({s.image for s in self.spans if s.image})


@dataclass
class Translation:
    object_code: bytes
    regions: list[RegionInfo]
    seconds: float = 0.0
    ir_text: str | None = None      # the optimised IR, when asked for (want_ir)
    # The LLVM IR the object was compiled from (a stitched region's
    # listing instead: ir/stencil.STITCHED_HEADER); the cache keeps it with
    # the object (`bttool cache show --section ir`).
    source_ir: str | None = None

    @property
    def insn_count(self) -> int:
        return sum(r.insn_count for r in self.regions)


def _describe(region: Region, read: CodeReader, options: LiftOptions,
              target: codegen.Target, foreign: Sequence[Span] = ()) -> RegionInfo:
    base = options.pic_base or 0
    spans = []
    for b in sorted(region.blocks.values(), key=lambda b: b.start):
        unit = _foreign_unit(b.start, foreign)
        spans.append(Span(b.start, b.end, unit.base, unit.image) if unit else Span(b.start, b.end, base))
    digest = guest_digest(read, spans)
    key = region_key(digest, region.entry - base, options, target)
    entries = sorted({e for b in region.blocks.values() for e in b.entries}
                     | {s for b in region.blocks.values() for s in b.successors
                        if s not in region.blocks})
    return RegionInfo(region.entry, region.entry - base, key, f"bt_{region.entry - base:x}_{key[:16]}",
                      region.insn_count, spans, b"".join(read(s.start, s.end - s.start) for s in spans),
                      digest, [], entries)


def _other_host(target: codegen.Target) -> bool:
    return not target.triple.startswith(("x86_64", "i386", "i686"))


def host_features(options: LiftOptions, target: codegen.Target) -> frozenset[str]:
    """What the code may use of the target beyond generic IR (x86 hosts
    only; see LiftOptions.host_instructions)."""
    if _other_host(target) or not options.host_instructions:
        return frozenset()
    return frozenset(target.features.split(","))


def _foreign_unit(pc: int, foreign: Sequence[Span]) -> Span | None:
    return next((u for u in foreign if u.start <= pc < u.end), None)


@dataclass
class Lifted:
    """Regions lifted into one LLVM module, not compiled yet."""
    module: ir.Module | str                 # becomes its IR text (see ir_text)
    regions: list[RegionInfo]
    target: codegen.Target
    seconds: float                          # spent discovering and lifting

    def ir_text(self) -> str:
        """The module as LLVM IR text.  Rendered once; the llvmlite objects
        are released then (ir/lifetime.py), since nothing reads them after
        printing and the garbage collector would otherwise scan them."""
        if not isinstance(self.module, str):
            module, self.module = self.module, str(self.module)
            release_module(module)
        return self.module

    def compile(self, want_ir: bool = False) -> Translation:
        t0 = time.perf_counter()
        obj, ir_text = codegen.compile_module(self.ir_text(), self.target, want_ir=want_ir)
        return Translation(obj, self.regions, self.seconds + time.perf_counter() - t0, ir_text,
                           self.ir_text())


_MAX_BATCH = 8     # with_entry_call stops adding once the batch has this many
# how far a tier-1 region reaches by default (lift and stitch alike)
MAX_BLOCKS, MAX_INSNS = 24, 600


def translate(entries: list[int], read: CodeReader, options: LiftOptions, target: codegen.Target,
              want_ir: bool = False, **kw) -> Translation:
    """Lift (see ``lift``) and compile the regions at ``entries`` into one
    object file."""
    return lift(entries, read, options, target, **kw).compile(want_ir)


def lift(entries: list[int], read: CodeReader, options: LiftOptions, target: codegen.Target,
         known: Callable[[int], bool] = lambda pc: False,
         max_blocks: int = MAX_BLOCKS, max_insns: int = MAX_INSNS,
         read_data: CodeReader | None = None,
         skipped: list[tuple[int, str]] | None = None,
         reg_value: Callable[[str], int | None] | None = None,
         follow_calls: bool = False,
         guess_target: Callable[[int], int | None] | None = None,
         within: Sequence[tuple[int, int]] | None = None,
         foreign: Sequence[Span] = (),
         with_entry_call: bool = False,
         known_tables: Callable[[int], Sequence[int] | None] | None = None) -> Lifted:
    """Lift the regions at ``entries`` into one LLVM module.

    The first entry must be fetchable (UnmappedCode otherwise); later ones
    that are not are skipped.  For a foreign target, regions using x87
    (which only an x86 host can compile) are skipped and listed in
    ``skipped``.  ``within`` = [(lo, hi), ...] keeps every block inside
    those address ranges (system mode: one guest page; user mode: the code
    units).  ``foreign``: the code units other than the entry's, as spans
    (start, end, base, image), whose blocks a region may take in (tier 2,
    through ``guess_target``); their code is translated relative to the
    base that unit has in the run that installs it (ir/emitter.py).

    ``with_entry_call``: when a region's entry block ends with a call, the
    direct callee and the return site (the block's ``entries``) join the
    batch, unless ``known``, until it holds ``_MAX_BATCH`` regions.  The
    entry block is about to run, so both are all but certain to run next, and sharing this module saves each of them the fixed cost of a
    translation of its own (Python set-up, an LLVM module, an object, a
    cache write: about half the cost of a small region)."""
    other_host = _other_host(target)
    t0 = time.perf_counter()
    decoder = Decoder(options.mode)
    module = ir.Module(name=f"bt_{entries[0]:x}")
    features = host_features(options, target)
    infos: list[RegionInfo] = []
    entries = list(entries)     # may grow (with_entry_call)
    batch = set(entries)
    for n, pc in enumerate(entries):
        try:
            region = discover_region(decoder, read, pc, max_blocks=max_blocks, max_insns=max_insns,
                                     known=lambda p: p in batch or known(p), read_data=read_data,
                                     reg_value=reg_value, follow_calls=follow_calls,
                                     guess_target=guess_target, within=within,
                                     known_tables=known_tables)
        except UnmappedCode:
            if n == 0:
                raise
            continue
        if other_host and any(registry.host_only(i.id) for b in region.blocks.values() for i in b.insns):
            if skipped is not None:
                skipped.append((pc, "x87 code cannot be translated for " + target.triple))
            continue
        info = _describe(region, read, options, target, foreign)
        used = [u for u in foreign if u.image in info.foreign_images]
        lifted = lift_region(region, options, module, info.symbol, used, features)
        info.untranslatable = lifted.untranslatable
        infos.append(info)
        if with_entry_call and len(entries) < _MAX_BATCH:
            first = region.blocks[pc]
            after_call = first.entries if first.insns and first.insns[-1].id == X86_INS_CALL else []
            for nxt in after_call:
                if nxt not in batch and not known(nxt) and read(nxt, 1):
                    entries.append(nxt)          # the loop goes on to it
                    batch.add(nxt)
    return Lifted(module, infos, target, time.perf_counter() - t0)


@dataclass
class Stitched:
    """A region stitched from stencils (translator/stitch.py): already
    machine code; ``compile`` only hands it over like ``Lifted.compile``."""
    translation: Translation

    @property
    def regions(self) -> list[RegionInfo]:
        return self.translation.regions

    def compile(self, want_ir: bool = False) -> Translation:
        return self.translation


def stitch(pc: int, read: CodeReader, options: LiftOptions, target: codegen.Target, library,
           known: Callable[[int], bool] = lambda pc: False, max_blocks: int = MAX_BLOCKS,
           max_insns: int = MAX_INSNS, read_data: CodeReader | None = None,
           within: Sequence[tuple[int, int]] | None = None) -> Stitched | None:
    """The region at ``pc`` stitched from ``library``'s stencils
    (translator/stitch.StencilLibrary), or None when some instruction of
    it has none (then it is lifted and compiled as usual).  Raises
    UnmappedCode like ``lift``."""
    from bttool.translator import stitch as stitching
    t0 = time.perf_counter()
    region = discover_region(Decoder(options.mode), read, pc, max_blocks=max_blocks, max_insns=max_insns,
                             known=known, read_data=read_data, within=within)
    info = _describe(region, read, options, target)
    made = stitching.stitch(region, library, info.symbol, options.pic_base or 0)
    if made is None:
        return None
    obj, listing = made
    return Stitched(Translation(obj, [info], time.perf_counter() - t0, source_ir=listing))
