"""Which instructions of a program or library bttool cannot translate
(``bttool coverage``).

A translator's gaps show up one SIGILL at a time at run time; users
porting a program, and whoever extends the instruction set, want the whole
list before that.  This sweeps the executable sections (lief, the section
headers; the executable PT_LOAD segments when there are none) linearly
with the decoder the translator uses (translator/decoder.py: its hint-NOP,
near-branch and twin rules included), and asks of each instruction what
the lifter asks: is there a semantic for it (translator/registry.py), and,
once per distinct operand form, does lifting it alone succeed (a semantic
may refuse a form: UnsupportedOperand).  What fails either way is a gap,
counted per mnemonic with one example address.  A LOCK prefix the CPU
itself rejects is no gap (bttool raises #UD there as the CPU does; the
decoder mostly finds no instruction there at all).

A linear sweep also meets what is not code (padding, data in .text); bytes
where the decoder finds no instruction count as undecodable, separately,
and the sweep goes on at the next byte.  The virtual CPU model is
the chosen one (``--cpu``, translator/cpumodel.py): instructions of
features it does not advertise show as gaps ("not in x86-64-v2 (avx2)"),
which is what a program that used them would meet.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from capstone import x86_const as X

from bttool.translator import cpumodel, vex
from bttool.translator.cpumodel import CpuModel
from bttool.translator.decoder import Decoder
from bttool.translator.loader import GuestImage, PF_X

# The longest x86 instruction.
_MAX_INSN = 15


@dataclass
class Gap:
    """One mnemonic bttool cannot translate, in one image."""
    mnemonic: str
    reason: str                 # "no semantics", "operand form", "not in MODEL (feature)"
    count: int
    example: int                # an address where it occurs
    text: str                   # that instruction, disassembled
    # a feature the CPU model lacks: SIGILL, as on such a CPU (no gap of
    # bttool's, and apart in the totals)
    outside_model: bool = False


@dataclass
class Coverage:
    """What ``scan`` found in one image."""
    path: str
    instructions: int = 0
    undecodable: int = 0        # bytes the sweep could not decode
    gaps: list[Gap] = field(default_factory=list)

    @property
    def untranslatable(self) -> int:
        """Instructions of the model that bttool cannot translate."""
        return sum(g.count for g in self.gaps if not g.outside_model)

    @property
    def outside_model(self) -> int:
        """Instructions of features the CPU model lacks."""
        return sum(g.count for g in self.gaps if g.outside_model)

    def as_dict(self) -> dict:
        return {"path": self.path, "instructions": self.instructions, "undecodable_bytes": self.undecodable,
                "untranslatable": self.untranslatable, "outside_model": self.outside_model,
                "gaps": [{"mnemonic": g.mnemonic, "reason": g.reason, "count": g.count,
                          "outside_model": g.outside_model,
                          "example": g.example, "text": g.text} for g in self.gaps]}


def executable_ranges(image: GuestImage) -> list[tuple[int, bytes]]:
    """(address, bytes) of each executable section (at the image's own
    addresses), or of each executable segment's file part when the image
    has no section headers."""
    import lief
    lief.logging.disable()
    elf = lief.ELF.parse(image.path)
    out = []
    if elf is not None:
        for sec in elf.sections:
            if sec.has(lief.ELF.Section.FLAGS.EXECINSTR) and sec.type != lief.ELF.Section.TYPE.NOBITS \
                    and sec.size:
                out.append((sec.virtual_address, image.data[sec.offset:sec.offset + sec.size]))
    if not out:
        out = [(s.vaddr, image.data[s.offset:s.offset + s.filesz])
               for s in image.segments if s.flags & PF_X and s.filesz]
    return out


# capstone's groups of the AVX-512 family (EVEX forms and the VEX-encoded
# mask-register instructions); these, AMD's FMA4, TSX and protection keys
# are features no model of bttool's has
_AVX512_GROUPS = frozenset(getattr(X, "X86_GRP_" + g) for g in (
    "AVX512", "BWI", "CDI", "DQI", "ERI", "PFI", "VLX"))
_RTM = frozenset(("xbegin", "xend", "xabort", "xtest"))
# CET shadow-stack instructions that are #UD while the process has no shadow
# stack (this host: incsspq is SIGILL natively); rdssp is a hint NOP then
_SHSTK = frozenset(("incsspd", "incsspq", "rstorssp", "saveprevssp", "wrssd", "wrssq",
                    "wrussd", "wrussq", "setssbsy", "clrssbsy"))


def _outside_models(insn, raw: bytes) -> str | None:
    """The feature of an instruction that no CPU model has, or None."""
    groups = getattr(insn, "groups", ())
    if vex.is_evex(raw) or _AVX512_GROUPS.intersection(groups) or any(
            op.type == X.X86_OP_REG and X.X86_REG_K0 <= op.reg <= X.X86_REG_K7 for op in insn.operands):
        return "avx512"
    if X.X86_GRP_FMA4 in groups:
        return "fma4"
    if insn.mnemonic in _RTM:
        return "rtm"
    if insn.mnemonic in _SHSTK:
        return "shstk"
    if insn.mnemonic in ("rdpkru", "wrpkru"):
        return "pku"
    return None


def _form(insn) -> tuple:
    """What distinguishes one operand form of an instruction from another
    for the lifter: its id, prefixes and each operand's kind and size."""
    ops = tuple((op.type, op.size) for op in getattr(insn, "operands", ()))
    return insn.id, tuple(getattr(insn, "prefix", ())), ops


def scan(image: GuestImage, lifts, model: CpuModel | None = None) -> Coverage:
    """Sweep ``image`` (see the module docstring).  ``lifts(pc, read)``
    answers whether the one instruction at ``pc`` lifts (``read(addr, n)``
    gives the image's bytes); ``model``: the virtual CPU (default: the
    default model), whose missing features are gaps too."""
    from bttool.translator import avxtable, registry
    from bttool.translator.lifter import lock_is_invalid

    model = model or cpumodel.get(cpumodel.DEFAULT)
    dec = Decoder(64)
    result = Coverage(image.path)
    gaps: dict[str, Gap] = {}
    forms: dict[tuple, bool] = {}
    ranges = executable_ranges(image)

    def read(addr: int, n: int) -> bytes:
        for start, code in ranges:
            if start <= addr < start + len(code):
                return code[addr - start:addr - start + n]
        return b""

    def gap(insn, reason: str, outside: bool = False) -> None:
        g = gaps.get(insn.mnemonic)
        if g is None:
            gaps[insn.mnemonic] = Gap(insn.mnemonic, reason, 1, insn.address,
                                      f"{insn.mnemonic} {insn.op_str}".strip(), outside)
        else:
            g.count += 1

    for start, code in ranges:
        pos = 0
        while pos < len(code):
            insn = dec.decode_one(code[pos:pos + _MAX_INSN], start + pos)
            if insn is None:
                result.undecodable += 1
                pos += 1
                continue
            pos += insn.size
            result.instructions += 1
            if lock_is_invalid(insn):
                continue
            raw = bytes(insn.bytes)
            outside = _outside_models(insn, raw)
            if outside is not None:
                gap(insn, f"not in {model.name} ({outside})", True)
                continue
            table = avxtable.decide(insn, 64, model)
            if table is not None and table.ud == "encoding":
                continue            # #UD on the CPU too: no gap
            if table is not None and table.ud is not None:
                gap(insn, f"not in {model.name} ({table.ud})", True)
                continue
            if table is None and registry.lookup(insn.id) is None:
                gap(insn, "no semantics")
                continue
            key = _form(insn)
            ok = forms.get(key)
            if ok is None:
                ok = forms[key] = lifts(insn.address, read)
            if not ok:
                gap(insn, "operand form")
    result.gaps = sorted(gaps.values(), key=lambda g: (g.outside_model, -g.count, g.mnemonic))
    return result


def lifter_check(target, model: CpuModel | None = None):
    """A ``lifts`` for ``scan``: lift the one instruction as a region of its
    own, as the runtime's single-step replay does, and see whether the
    lifter gave up on it."""
    from bttool.translator.options import LiftOptions
    from bttool.translator.translate import lift
    from bttool.ir.clamp import AddressClamp
    # no clamp: only whether the instruction lifts is asked, not the code
    options = LiftOptions(64, True, None, clamp=AddressClamp(None, 0),
                          cpu=(model or cpumodel.get(cpumodel.DEFAULT)).name).tier2()

    def lifts(pc: int, read) -> bool:
        lifted = lift([pc], read, options, target, known=lambda p: True, max_blocks=1,
                      within=[(pc, pc + 1)])
        return not any(r.untranslatable for r in lifted.regions)
    return lifts
