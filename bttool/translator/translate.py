"""The translation pipeline for one region: discover -> lift -> compile."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from bttool.ir import codegen
from bttool.translator.blocks import CodeReader, Region, discover_region
from bttool.translator.decoder import Decoder
from bttool.translator.lifter import LiftOptions, lift_region


@dataclass
class Translation:
    entry: int
    object_code: bytes
    entries: dict[int, str]                 # guest pc -> symbol in the object
    insn_count: int
    code_ranges: list[tuple[int, int]]      # guest [start, end) of every block
    untranslatable: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0
    ir_text: str | None = None

    def guest_digest(self, read: CodeReader) -> str:
        h = hashlib.sha256()
        for start, end in self.code_ranges:
            h.update(start.to_bytes(8, "little") + read(start, end - start))
        return h.hexdigest()


def translate_region(entry: int, read: CodeReader, options: LiftOptions,
                     target: codegen.Target, known=lambda pc: False,
                     want_ir: bool = False, max_blocks: int = 24) -> Translation:
    t0 = time.perf_counter()
    region: Region = discover_region(Decoder(options.mode), read, entry, known=known,
                                     max_blocks=max_blocks)
    lifted = lift_region(region, options, module_name=f"region_{entry:x}")
    obj, ir_text = codegen.compile_module(lifted.module, target, want_ir=want_ir)
    ranges = [(b.start, b.end) for b in region.blocks.values()]
    return Translation(entry, obj, lifted.entries, lifted.insn_count, ranges,
                       lifted.untranslatable, time.perf_counter() - t0, ir_text)
