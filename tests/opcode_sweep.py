"""The opcode sweep (issue 23): every opcode of the one-byte map, the
two-byte map (0F xx) and the three-byte maps (0F 38 xx, 0F 3A xx), with the
prefixes that change their meaning, run natively and under bttool; the
outcomes are compared.

    python3 tests/opcode_sweep.py [--json FILE] [--list] [--only HEX...]

prints the result table (and with ``--list`` every encoding that differs,
is untranslatable or is a known gap).  ``tests/test_opcode_sweep.py`` runs the same sweep under pytest.

How it works:

* ``encodings()`` builds the candidates: for each opcode, each prefix set of
  ``PREFIXES`` (none, 66, F3, F2, REX.W, 66+REX.W, F3/F2+REX.W on the 0F
  maps, REX.RB for the extended registers, LOCK with memory operands), a
  few ModRM forms (register-register forms with every reg field, since the
  reg field selects the instruction in group opcodes, and ``[rbx]`` with
  rbx pointing into the data area), followed by a fixed immediate pattern;
  capstone tells the length.  Candidates that capstone decodes to the same
  text are one encoding (a prefix that changes nothing in the disassembly
  does not change the meaning), and each (prefix, opcode, form, mnemonic)
  keeps at most ``PER_MNEMONIC`` register choices.  Bytes capstone cannot
  decode are run as they are, padded with nops: natively they mostly raise
  SIGILL, and where they run, bttool must not be silently unable to.
* Branches get displacement 0 (they fall through).  ``SKIP`` lists what
  is not run at all, with the reason (system calls, instructions that would
  change the host thread's segment/TLS state, VEX/EVEX/XOP prefixes, ...).
* Every encoding runs from two input states (structured values, and
  random bits), natively and translated, each side in forked worker
  processes that batch many encodings: natively, a fault (SIGSEGV,
  SIGILL, SIGFPE, SIGBUS, SIGTRAP) is caught by a small machine-code
  signal handler that resumes in the trampoline's epilogue, so one child
  runs everything; a child that dies anyway is restarted after the culprit.
* The outcome is compared: all GPRs, the arithmetic flags and DF (without
  the flags capstone says the instruction leaves undefined), xmm0-15, the
  MXCSR control bits, the data area and the stack; or the signal.  x87
  and MMX instructions start from ``fninit`` and a known x87/MMX state,
  and their registers are stored to the data area afterwards.
* Classes: ``same``, ``same-signal``, ``differs``, ``untranslatable``
  (bttool reported the instruction as untranslatable or undecodable while
  the host runs it or faults differently), ``excepted`` (differs or is
  untranslatable, but ``EXCEPTIONS`` names the reason), ``known-gap``
  (untranslatable or differs, and pinned in ``KNOWN_GAPS`` as exactly
  that: an open gap of issue 23, counted by group in the table),
  ``skipped``.  The exit status is 1 when an encoding differs or is
  untranslatable outside ``KNOWN_GAPS``, or a ``KNOWN_GAPS`` entry is no
  longer a gap.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import random
import select
import signal
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_HERE, os.path.dirname(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import capstone  # noqa: E402
from capstone import x86_const as X  # noqa: E402

import native as N  # noqa: E402
from native import CODE_ADDR, DATA_ADDR, DATA_SIZE, STACK_ADDR, STACK_SIZE, STACK_TOP  # noqa: E402

M64 = (1 << 64) - 1

# ---------------------------------------------------------------------------
# encodings

# Prefix sets that change the meaning of some opcode.  REX.W is the last
# prefix byte; 0x45 (REX.R+B) reaches r8-r15 and spl/bpl/sil/dil.
PREFIXES_1 = [b"", b"\x66", b"\xf3", b"\xf2", b"\x48", b"\x66\x48", b"\x45"]
PREFIXES_0F = PREFIXES_1 + [b"\xf3\x48", b"\xf2\x48"]
PREFIXES_0F38 = [b"", b"\x66", b"\xf3", b"\xf2", b"\x66\x48", b"\xf2\x48", b"\xf3\x48"]
LOCK = b"\xf0"
IMM = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
UNDECODABLE_SAMPLE = 16   # one in this many undecodable, natively-SIGILL encodings is translated
PER_MNEMONIC = 2          # register-form encodings kept per (prefix, opcode, mnemonic)
MEM_BASE = DATA_ADDR + 0x8000      # rbx: [rbx] is the memory operand of every memory form
X87_INIT = MEM_BASE - 0x100        # two doubles loaded onto the x87 stack first
X87_OUT = MEM_BASE - 0x200         # where x87/MMX registers are stored afterwards
MOFFS = MEM_BASE + 0x10            # the absolute address of mov al/ax/eax/rax, moffs

# (reg, rm) register forms; the reg field selects the instruction in groups.
REG_FORMS = [(r, (r + 3) % 8) for r in range(8)]

PREFIX_BYTES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3} | set(range(0x40, 0x50))

# What is not run, by (map, opcode) and optionally the ModRM reg field /
# the mod==3 form: (map, opcode, reg or None, regform or None) -> reason.
SKIP_OPCODES: dict[tuple, str] = {}


def _skip(m: str, ops, reason: str, reg=None, regform=None) -> None:
    for op in ([ops] if isinstance(ops, int) else ops):
        SKIP_OPCODES[(m, op, reg, regform)] = reason


_skip("1", [0x0F], "escape to the two-byte map")
_skip("1", sorted(PREFIX_BYTES), "a prefix (swept as prefix of the other opcodes)")
_skip("1", [0xC4, 0xC5, 0x62], "VEX/EVEX prefix: AVX and AVX-512 are another issue")
_skip("1", 0x8F, "XOP prefix (8F with reg != 0; not on this host family, another issue)", reg=None)
_skip("1", 0x8E, "mov Sreg would change the host's segment registers")
_skip("1", [0xC2, 0xC3, 0xCA, 0xCB, 0xCF], "return: leaves the snippet")
_skip("1", 0xFF, "indirect call/jmp leaves the snippet", reg=2)
_skip("1", 0xFF, "far call leaves the snippet", reg=3)
_skip("1", 0xFF, "indirect jmp leaves the snippet", reg=4)
_skip("1", 0xFF, "far jmp leaves the snippet", reg=5)
_skip("0F", [0x05], "syscall: a real system call with arbitrary registers")
_skip("0F", [0x34], "sysenter: a system call on Intel hosts")
_skip("0F", [0xA1, 0xA9], "pop fs/gs would change the host's TLS segment")
_skip("0F", [0xB2, 0xB4, 0xB5], "lss/lfs/lgs would change the host's segment registers")
_skip("0F", 0xAE, "wrfsbase/wrgsbase would change the host thread's TLS base", reg=2, regform=True)
_skip("0F", 0xAE, "wrfsbase/wrgsbase would change the host thread's TLS base", reg=3, regform=True)
_skip("0F", 0x01, "rdpkru/wrpkru/... reg-form 0F 01 /5 (wrpkru changes host memory keys)",
      reg=5, regform=True)

# Branch opcodes whose relative displacement is set to 0 (falls through).
BRANCH_REL = {("1", op) for op in list(range(0x70, 0x80)) + [0xE0, 0xE1, 0xE2, 0xE3, 0xE8, 0xE9, 0xEB]}
BRANCH_REL |= {("0F", op) for op in range(0x80, 0x90)}

# Features beyond the virtual CPU model (bttool/runtime/cpuid.py: x86-64-v2
# with AES-NI, PCLMULQDQ and SHA): an encoding of these may differ (bttool need
# not implement what it does not advertise) and is reported as excepted.
NOT_ADVERTISED_GROUPS = {
    X.X86_GRP_3DNOW: "3DNow!", X.X86_GRP_ADX: "ADX",
    X.X86_GRP_AVX: "AVX", X.X86_GRP_AVX2: "AVX2", X.X86_GRP_AVX512: "AVX-512",
    X.X86_GRP_BMI: "BMI1", X.X86_GRP_BMI2: "BMI2", X.X86_GRP_F16C: "F16C",
    X.X86_GRP_FMA: "FMA", X.X86_GRP_FMA4: "FMA4", X.X86_GRP_FSGSBASE: "FSGSBASE",
    X.X86_GRP_RTM: "RTM", X.X86_GRP_SGX: "SGX",
    X.X86_GRP_SSE4A: "SSE4a", X.X86_GRP_TBM: "TBM",
    X.X86_GRP_XOP: "XOP", X.X86_GRP_VM: "VMX/SVM",
}
NOT_ADVERTISED_MNEMONICS = {
    "movbe": "MOVBE", "lzcnt": "LZCNT (ABM)", "tzcnt": "BMI1", "andn": "BMI1",
    "rdtscp": "RDTSCP", "rdpid": "RDPID",
    "xsave": "XSAVE", "xsave64": "XSAVE", "xrstor": "XSAVE", "xrstor64": "XSAVE",
    "xsaveopt": "XSAVEOPT", "xsaveopt64": "XSAVEOPT", "xsavec": "XSAVEC", "xsavec64": "XSAVEC",
    "xsaves": "XSAVES", "xsaves64": "XSAVES", "xrstors": "XSAVES", "xrstors64": "XSAVES",
    "xgetbv": "XSAVE (xgetbv)", "xsetbv": "XSAVE", "clflushopt": "CLFLUSHOPT", "clwb": "CLWB",
    "prefetchw": "PREFETCHW (3DNowPrefetch)", "prefetchwt1": "PREFETCHWT1",
    "monitor": "MONITOR/MWAIT", "mwait": "MONITOR/MWAIT", "monitorx": "MONITORX",
    "mwaitx": "MONITORX", "clzero": "CLZERO", "rdpkru": "PKU", "wrpkru": "PKU",
    "adcx": "ADX", "adox": "ADX", "crc32": None,   # crc32 is SSE4.2: advertised
    "gf2p8affineqb": "GFNI", "gf2p8affineinvqb": "GFNI",
    "gf2p8mulb": "GFNI", "movdiri": "MOVDIRI", "movdir64b": "MOVDIR64B",
    "xbegin": "RTM", "xend": "RTM", "xabort": "RTM", "xtest": "RTM/HLE",
    "clac": "SMAP", "stac": "SMAP", "encls": "SGX", "enclu": "SGX", "rdfsbase": "FSGSBASE",
    "rdgsbase": "FSGSBASE", "wrfsbase": "FSGSBASE", "wrgsbase": "FSGSBASE",
    "invpcid": "INVPCID", "ptwrite": "PTWRITE", "umonitor": "WAITPKG", "umwait": "WAITPKG",
    "tpause": "WAITPKG", "cldemote": "CLDEMOTE", "serialize": "SERIALIZE", "wbnoinvd": "WBNOINVD",
    "rdpru": "RDPRU", "mcommit": "MCOMMIT", "invlpgb": "INVLPGB", "tlbsync": "INVLPGB",
    "pconfig": "PCONFIG", "enqcmd": "ENQCMD", "enqcmds": "ENQCMD", "incsspd": "CET",
    "incsspq": "CET", "rdsspd": "CET", "rdsspq": "CET", "saveprevssp": "CET",
    "rstorssp": "CET", "wrssd": "CET", "wrssq": "CET", "wrussd": "CET", "wrussq": "CET",
    "setssbsy": "CET", "clrssbsy": "CET", "endbr64": None, "endbr32": None,
    "extrq": "SSE4a", "insertq": "SSE4a", "movntsd": "SSE4a", "movntss": "SSE4a",
    "femms": "3DNow!", "pi2fd": "3DNow!", "sysret": None,
}

# The one place for encodings that may differ or be untranslatable, with
# the reason: EXCEPTIONS by mnemonic, and the rules of ``_exception_for``
# below (host values, vendor differences, results the SDM leaves undefined
# or implementation-specific).  Encodings of features the virtual CPU model
# does not advertise (``_not_advertised``) are excepted as well.  Anything
# else that differs or is untranslatable fails tests/test_opcode_sweep.py.
EXCEPTIONS: dict[str, str] = {
    "cpuid": "answers from the virtual CPU model (bttool/runtime/cpuid.py), not the host",
    "rdtsc": "time stamp counter: a different value on every read",
    "rdtscp": "time stamp counter and TSC_AUX: a different value on every read",
    "rdpmc": "performance counter: host-specific",
    "rdrand": "a random value: a different one on every read",
    "rdseed": "a random value: a different one on every read",
    "xgetbv": "XCR0 of the virtual model (x87+SSE) is not the host's",
    "sgdt": "descriptor-table address of the host kernel (or UMIP)",
    "sidt": "descriptor-table address of the host kernel (or UMIP)",
    "sldt": "host LDT selector (or UMIP)",
    "str": "host task register (or UMIP)",
    "smsw": "host CR0 bits (or UMIP)",
    "fnstenv": "x87 last-instruction/operand pointers (FIP, FDP, FOP) are not tracked",
    "fnsave": "x87 last-instruction/operand pointers (FIP, FDP, FOP) are not tracked",
    "fxsave": "x87 last-instruction/operand pointers (FIP, FDP, FOP) are not tracked",
    "fxsave64": "x87 last-instruction/operand pointers (FIP, FDP, FOP) are not tracked",
    "fldenv": "an environment with unmasked x87 exceptions: bttool raises no x87 exceptions",
    "frstor": "an environment with unmasked x87 exceptions: bttool raises no x87 exceptions",
    "fldcw": "a control word with unmasked x87 exceptions: bttool raises no x87 exceptions",
    "fxrstor": "loaded x87/SSE state with unmasked exceptions: bttool raises no FP exceptions",
    "fxrstor64": "loaded x87/SSE state with unmasked exceptions: bttool raises no FP exceptions",
    "ldmxcsr": "MXCSR exception flags are not tracked (README), so neither are unmasked ones",
}


# Known gaps (issue 23, open): the exact set of encodings that the host runs
# (or faults on differently) but bttool cannot translate, or that end
# differently for a reason no rule above explains.  One row per group:
# (group, class it is pinned as, reason, encoding keys: hex of the
# instruction bytes, prefixes included, as ``Encoding.key`` and ``--list``
# show them).  Such an encoding is classed ``known-gap``, not a failure;
# tests/test_opcode_sweep.py fails when an encoding not listed here is
# untranslatable or differs, and when a listed one no longer is (it was
# fixed: delete its key, and the row once it is empty).
KNOWN_GAPS: list[tuple[str, str, str, str]] = [
]


def _known_gaps() -> dict[str, tuple[str, str, str]]:
    """key -> (group, class, reason) of KNOWN_GAPS; each key once."""
    out: dict[str, tuple[str, str, str]] = {}
    for group, cls, reason, keys in KNOWN_GAPS:
        assert cls in ("differs", "untranslatable"), (group, cls)
        for k in keys.split():
            assert k not in out, f"{k} is in KNOWN_GAPS twice ({out[k][0]}, {group})"
            out[k] = (group, cls, reason)
    return out


KNOWN_GAP_KEYS = _known_gaps()


def _exception_for(insn, worst: str) -> str | None:
    """The reason an encoding may differ (``worst``: differs or
    untranslatable), or None."""
    if insn is None:
        return None
    m = insn.mnemonic
    reason = EXCEPTIONS.get(m)
    if reason:
        return reason
    if X.X86_GRP_BRANCH_RELATIVE in insn.groups and 0x66 in insn.prefix:
        return ("66-prefixed near branch: bttool truncates rip to 16 bits as AMD hosts do "
                "(SIGSEGV here), Intel hosts ignore the prefix (README, the ISA's corners)")
    if m in ("rcpps", "rcpss", "rsqrtps", "rsqrtss"):
        return "approximation: the SDM bounds only the relative error (1.5 * 2**-12)"
    w16 = 0x66 in insn.prefix and not (insn.rex & 8)
    if m == "bswap" and w16:
        return "bswap of a 16-bit register: the SDM leaves the result undefined"
    if m in ("shld", "shrd") and w16:
        return "16-bit shld/shrd with a count above 16: the SDM leaves result and flags undefined"
    if m in ("rdfsbase", "rdgsbase"):
        return "reads the host thread's TLS base"
    return None


def _undecodable_exception(raw: bytes) -> str | None:
    """The reason bytes capstone cannot decode (so bttool raises SIGILL)
    may end otherwise natively, or None: vendor behaviour, or a feature of
    the host's that the CPU model does not advertise (measured on an Intel
    Emerald Rapids host, family 6)."""
    from bttool.translator.encoding import encoding
    enc = encoding(raw)
    if enc is None or not enc.escape:
        return None
    after = raw[enc.opcode_at + 1:]         # ModRM, or the 0F 38 opcode
    if enc.opcode == 0x0D and after[:1] and after[0] >> 6 == 3:
        return ("0F 0D with a register operand: a reserved NOP on Intel hosts, #UD on AMD "
                "ones, which bttool gives (tests/test_isa_corners.py pins it)")
    if enc.opcode == 0x01 and after[:1] == b"\xcc" and 0x66 in enc.prefixes:
        return "not in the CPU model: TDX (tdcall; the host raises #GP outside a trust domain)"
    if enc.opcode == 0x38 and after[:1] == b"\xf8" and {0xF2, 0xF3} & set(enc.prefixes):
        return "not in the CPU model: ENQCMD (enqcmd, enqcmds)"
    return None


def _not_advertised(insn) -> str | None:
    if insn is None:
        return None
    for g in insn.groups:
        if g in NOT_ADVERTISED_GROUPS:
            return NOT_ADVERTISED_GROUPS[g]
    return NOT_ADVERTISED_MNEMONICS.get(insn.mnemonic)


_md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_md.detail = True


def _decode(code: bytes):
    for insn in _md.disasm(code, CODE_ADDR):
        return insn
    return None


def _decode_twin(code: bytes):
    """capstone's reading of the documented twin of bytes it cannot decode
    (bttool/translator/twins.py: aliases the CPU runs as another
    instruction), for the flags that twin leaves undefined; or None."""
    from bttool.translator import twins
    twin = twins.twin(code + b"\x90" * 8)
    return _decode(twin) if twin is not None else None


def _uses_mmx(insn) -> bool:
    ops = " " + insn.op_str.replace(",", " ")
    return any(f" mm{i}" in ops for i in range(8))


def _is_x87(insn) -> bool:
    return X.X86_GRP_FPU in insn.groups or insn.mnemonic.startswith("f") and insn.mnemonic not in (
        "fxsave", "fxsave64", "fxrstor", "fxrstor64")


def _asm(lines: list[str]) -> bytes:
    return b"".join(N.assemble(lines))


_SETUP: dict[str, bytes] = {}


def _setup_code(kind: str) -> tuple[bytes, bytes]:
    """(prefix, suffix) code around the instruction under test."""
    if not _SETUP:
        # six values on the x87 stack: st(0)-st(5) valid, two free slots
        x87_pre = ["fninit"] + [f"fld qword ptr [rbx - {MEM_BASE - X87_INIT - 8 * i:#x}]"
                                for i in range(6)]
        off = MEM_BASE - X87_OUT
        x87_post = [f"fstp tbyte ptr [rbx - {off - 10 * i:#x}]" for i in range(8)] + ["fninit"]
        mmx_pre = ["fninit"] + [f"movq mm{i}, qword ptr [rbx - {MEM_BASE - X87_INIT - 8 * i:#x}]"
                                for i in range(8)]
        mmx_post = [f"movq qword ptr [rbx - {off - 8 * i:#x}], mm{i}" for i in range(8)] + ["emms"]
        _SETUP.update({
            "plain_pre": _asm(["fninit"]), "plain_post": b"",
            "x87_pre": _asm(x87_pre), "x87_post": _asm(x87_post),
            "mmx_pre": _asm(mmx_pre), "mmx_post": _asm(mmx_post),
        })
    return _SETUP[kind + "_pre"], _SETUP[kind + "_post"]


@dataclass
class Encoding:
    key: str                   # hex of the instruction bytes
    insn_bytes: bytes
    text: str                  # capstone's text, or "(undecodable)"
    map: str
    opcode: int
    kind: str                  # plain, x87, mmx
    code: bytes = b""          # setup + insn + teardown
    offset: int = 0            # of the instruction in code
    flag_mask: int = N.ARITH | N.DF
    advertised: str | None = None     # feature name when beyond the model
    skip: str | None = None
    insn: object = None        # capstone's instruction (not pickled to the workers)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["insn"] = None
        return d


def _modrm_candidates(m: str, op: int, pfx: bytes, opbytes: bytes):
    """(bytes, regform, reg) candidates for one opcode and prefix set."""
    out = []
    mems = [(0x00 | (r << 3) | 0x3, False, r) for r in range(8)]
    regs = [(0xC0 | (r << 3) | rm, True, r) for r, rm in REG_FORMS]
    if (m, op) in BRANCH_REL:               # no ModRM; displacement 0 falls through
        return [(pfx + opbytes + bytes(8), True, 0, None)]
    for modrm, regform, reg in regs + mems:
        imm = IMM
        if m == "1" and op in (0xA0, 0xA1, 0xA2, 0xA3):
            imm = MOFFS.to_bytes(8, "little")
        out.append((pfx + opbytes + bytes([modrm]) + imm, regform, reg, modrm))
        if not regform and pfx == b"":
            out.append((LOCK + opbytes + bytes([modrm]) + imm, regform, reg, modrm))
    return out


def _skip_reason(m: str, op: int, reg: int, regform: bool, insn) -> str | None:
    for key in ((m, op, None, None), (m, op, reg, None), (m, op, reg, regform)):
        if key in SKIP_OPCODES:
            if key == ("1", 0x8F, None, None) and reg == 0:
                continue
            return SKIP_OPCODES[key]
    if insn is not None:
        if X.X86_GRP_JUMP in insn.groups or X.X86_GRP_CALL in insn.groups:
            # relative branches with displacement 0 fall through
            if not ((m, op) in BRANCH_REL):
                return "indirect or far branch leaves the snippet"
        if insn.mnemonic in ("syscall", "sysenter", "int") and insn.op_str == "0x80":
            return "system call"
    return None


def encodings(maps=("1", "0F", "0F38", "0F3A")) -> list[Encoding]:
    seen_text: set[tuple[str, str]] = set()
    seen_bytes: set[bytes] = set()
    per_mn: collections.Counter = collections.Counter()
    result: list[Encoding] = []
    skipped: dict[str, Encoding] = {}
    for m in maps:
        esc, prefixes = {"1": (b"", PREFIXES_1), "0F": (b"\x0f", PREFIXES_0F),
                         "0F38": (b"\x0f\x38", PREFIXES_0F38),
                         "0F3A": (b"\x0f\x3a", PREFIXES_0F38)}[m]
        for op in range(256):
            if m == "0F" and op in (0x38, 0x3A):
                continue
            for pfx in prefixes:
                for cand, regform, reg, modrm in _modrm_candidates(m, op, pfx, esc + bytes([op])):
                    insn = _decode(cand)
                    reason = _skip_reason(m, op, reg, regform, insn)
                    if insn is None:
                        ib = cand[:len(cand) - len(IMM)]        # prefix, opcode, modrm
                        text = "(undecodable)"
                        code_insn = ib + b"\x90" * 8
                    else:
                        ib = bytes(insn.bytes)
                        text = f"{insn.mnemonic} {insn.op_str}".strip()
                        code_insn = ib
                    if reason:
                        k = f"{m} {op:02x}" + (f" /{reg}" if SKIP_OPCODES.get((m, op, reg, None)) or
                                               SKIP_OPCODES.get((m, op, reg, regform)) else "")
                        if k not in skipped:
                            skipped[k] = Encoding(k, ib, text, m, op, "plain", skip=reason)
                        continue
                    if ib in seen_bytes:
                        continue
                    seen_bytes.add(ib)
                    form = "r" if regform else "m"
                    if insn is not None:
                        tkey = (form, text)
                        if tkey in seen_text:
                            continue
                        seen_text.add(tkey)
                        mk = (m, op, pfx, form, insn.mnemonic, cand[0] == 0xF0)
                    else:
                        # the reg field may select an instruction capstone lacks,
                        # so every reg without a prefix, once with each prefix
                        mk = (m, op, pfx, form, "?", reg if pfx == b"" else None, cand[0] == 0xF0)
                    if per_mn[mk] >= (PER_MNEMONIC if insn is not None else 1):
                        continue
                    per_mn[mk] += 1
                    kind = "plain"
                    if insn is not None:
                        kind = "mmx" if _uses_mmx(insn) else "x87" if _is_x87(insn) else "plain"
                    e = Encoding(ib.hex(), ib, text, m, op, kind)
                    pre, post = _setup_code(kind)
                    e.code = pre + code_insn + post
                    e.offset = len(pre)
                    if insn is not None:
                        e.flag_mask &= ~_undefined_flags(insn)
                        e.advertised = _not_advertised(insn)
                        e.insn = insn
                    elif (twin := _decode_twin(ib)) is not None:
                        e.flag_mask &= ~_undefined_flags(twin)
                    result.append(e)
    return result + list(skipped.values())


_UNDEF = [(X.X86_EFLAGS_UNDEFINED_CF, N.CF), (X.X86_EFLAGS_UNDEFINED_PF, N.PF),
          (X.X86_EFLAGS_UNDEFINED_AF, N.AF), (X.X86_EFLAGS_UNDEFINED_ZF, N.ZF),
          (X.X86_EFLAGS_UNDEFINED_SF, N.SF), (X.X86_EFLAGS_UNDEFINED_OF, N.OF)]


_A, _C, _O, _P, _S, _Z = N.AF, N.CF, N.OF, N.PF, N.SF, N.ZF
# Flags the SDM leaves undefined, where capstone's tables do not say so
# (OF of shifts and rotates is undefined only for counts other than 1; the
# sweep's counts are 3, 0x11 and random, so it is masked for them all).
SDM_UNDEFINED = {
    "mul": _S | _Z | _A | _P, "imul": _S | _Z | _A | _P,
    "div": _C | _O | _S | _Z | _A | _P, "idiv": _C | _O | _S | _Z | _A | _P,
    "bsf": _C | _O | _S | _A | _P, "bsr": _C | _O | _S | _A | _P,
    "bt": _O | _S | _A | _P, "bts": _O | _S | _A | _P, "btr": _O | _S | _A | _P,
    "btc": _O | _S | _A | _P,
    "shl": _A | _O, "sal": _A | _O, "shr": _A | _O, "sar": _A | _O,
    "shld": _A | _O, "shrd": _A | _O,
    "rol": _O, "ror": _O, "rcl": _O, "rcr": _O,
    "and": _A, "or": _A, "xor": _A, "test": _A,
    "lzcnt": _O | _S | _P | _A, "tzcnt": _O | _S | _P | _A,
}


def _undefined_flags(insn) -> int:
    extra = SDM_UNDEFINED.get(insn.mnemonic, 0)
    try:
        ef = insn.eflags
    except capstone.CsError:
        return extra
    return extra | sum(bit for cs, bit in _UNDEF if ef & cs)


# ---------------------------------------------------------------------------
# input states

def _states() -> list[dict]:
    rnd = random.Random(23)
    data = bytearray(rnd.randbytes(DATA_SIZE))
    nice_d = [1.5, -3.25, 0.1, 1e300, -0.0, 2.0, 7.0, -1.0]
    nice_f = [1.5, -2.25, 3.0, 0.5, -0.1, 100.0, 1e-3, 8.0]
    at = X87_INIT - DATA_ADDR
    data[at:at + 64] = struct.pack("<8d", *nice_d)
    data_a = bytearray(data)
    at = MEM_BASE - DATA_ADDR
    data_a[at:at + 32] = struct.pack("<4d", 2.5, -1.75, 1e10, 0.3)
    data_a[at + 32:at + 64] = struct.pack("<8f", *nice_f)
    data_a[at + 64:at + 80] = b"hello, world\0\0\0\0"
    stack = bytearray()
    for i in range(STACK_SIZE // 8):
        v = rnd.getrandbits(64)
        v = (v & ~0x0000_0000_0007_7F00) | 0x202     # TF, DF, IOPL, NT, AC clear for popf
        stack += v.to_bytes(8, "little")
    pointers = {"rbx": MEM_BASE, "rsi": DATA_ADDR + 0x4000, "rdi": DATA_ADDR + 0xC000,
                "rsp": STACK_TOP - 0x800, "rbp": STACK_TOP - 0x400}
    regs_a = {r: (0x0123456789ABCDEF * (i + 1)) & M64 for i, r in enumerate(N.GPRS)}
    regs_a.update({"rax": 0x7FFF_1234_8000_00F0, "rcx": 3, "rdx": 0x10, "r8": 5,
                   "r9": 0xFFFF_FFFF_FFFF_FFFE, "r10": 0x8000_0000_0000_0000, "r11": 0x40})
    regs_a.update(pointers)
    regs_b = {r: rnd.getrandbits(64) for r in N.GPRS}
    regs_b.update(pointers)
    regs_b["r11"] = MEM_BASE + 0x40    # REX.B memory forms: [r11] unmapped in A, data in B
    pd = lambda *v: int.from_bytes(struct.pack("<2d", *v), "little")  # noqa: E731
    pf = lambda *v: int.from_bytes(struct.pack("<4f", *v), "little")  # noqa: E731
    xmm_a = [pd(1.5, -2.0), pf(1.0, -0.5, 3.5, 1e20), pd(0.25, 1e-310), pf(2.0, 2.0, -8.0, 0.0),
             pd(3.0, 10.0), 0x0102030405060708090A0B0C0D0E0F10, pd(-1.0, 0.5), pf(7.0, 6.0, 5.0, 4.0),
             0x8000_7FFF_0001_FFFF_8080_7F7F_0000_FFFF, pd(100.0, -100.0), pf(0.1, 0.2, 0.3, 0.4),
             0xFFFF_FFFF_0000_0000_1234_5678_9ABC_DEF0, pd(2.0, 4.0), pf(1.0, 2.0, 3.0, 4.0),
             0x00FF_00FF_00FF_00FF_FF00_FF00_FF00_FF00, pd(-0.0, 1.0)]
    xmm_b = [rnd.getrandbits(128) for _ in range(16)]
    flags = N.CF | N.ZF | N.SF | N.OF | N.AF | N.PF
    return [
        {"regs": regs_a, "rflags": 0x202, "xmm": xmm_a, "data": bytes(data_a), "stack": bytes(stack),
         "mxcsr": 0x1F80},
        {"regs": regs_b, "rflags": 0x202 | flags, "xmm": xmm_b, "data": bytes(data),
         "stack": bytes(stack), "mxcsr": 0x1F80},
    ]


# ---------------------------------------------------------------------------
# results: small, picklable

@dataclass
class Run:
    signal: int = 0
    regs: dict = field(default_factory=dict)
    rflags: int = 0
    xmm: list = field(default_factory=list)
    mxcsr: int = 0
    data: tuple = ()           # changed byte runs: ((offset, bytes), ...)
    stack: tuple = ()
    untranslatable: tuple = ()
    error: str = ""            # a Python exception in the translator/runtime
    fault_rip: int = 0


def _changes(before: bytes, after: bytes) -> tuple:
    if before == after:
        return ()
    out = []
    i, n = 0, len(before)
    while i < n:
        if before[i] != after[i]:
            j = i
            while j < n and before[j] != after[j]:
                j += 1
            out.append((i, after[i:j]))
            i = j
        else:
            i += 1
    return tuple(out)


# ---------------------------------------------------------------------------
# native runs (a fault resumes in the trampoline's epilogue: native.NativeFault)

FAULT_SIGNALS = N.FAULT_SIGNALS


def native_run(e: Encoding, s: dict) -> Run:
    try:
        out = N.run_native(e.code, s["regs"], s["rflags"], s["xmm"], s["data"], s["mxcsr"],
                           s["stack"], check_features=False)
    except N.NativeFault as f:
        return Run(signal=f.signo, fault_rip=f.rip)
    return Run(regs={r: out.regs[r] for r in N.GPRS}, rflags=out.rflags, xmm=out.xmm, mxcsr=out.mxcsr,
               data=_changes(s["data"], out.data),
               stack=_changes(s["stack"], out.stack))


# ---------------------------------------------------------------------------
# translated runs

def _fault_signal(kind: int) -> int:
    from bttool.ir import state as S
    return {S.FAULT_DE: signal.SIGFPE, S.FAULT_UD: signal.SIGILL, S.FAULT_GP: signal.SIGSEGV,
            S.FAULT_BP: signal.SIGTRAP, S.FAULT_PF: signal.SIGSEGV}.get(kind, 1000 + kind)


# Each encoding's translated side runs under one tier (tests/native.py TIER),
# the tiers taking turns by the encoding's bytes: the sweep covers every
# tier at the cost of one (BTTOOL_ISA_TIER, when set, picks one for all).
def tier_of(e: Encoding) -> str:
    """The tier ``e``'s translated side runs under."""
    if os.environ.get("BTTOOL_ISA_TIER"):
        return os.environ["BTTOOL_ISA_TIER"]
    return N.TIERS[zlib.crc32(e.insn_bytes) % len(N.TIERS)]


def translated_run(e: Encoding, s: dict) -> Run:
    from bttool.ir import intrinsics, state as S
    from bttool.runtime import snippet
    from bttool.runtime.linux import breakpoint_trap
    _, _ex = snippet._machine()
    N.TIER = tier_of(e)
    try:
        r = N.run_translated(e.code, s["regs"], s["rflags"], s["xmm"], s["data"], s["mxcsr"], s["stack"])
    except Exception as exc:  # noqa: BLE001 - reported as a difference
        st = _ex.state
        if str(exc).startswith(f"snippet exit {S.EXIT_INTRINSIC} ") and st.rip == CODE_ADDR + e.offset:
            # A runtime call the snippet runner does not perform: the signal
            # bttool/runtime/linux.py (_intrinsic) delivers for it.
            name = intrinsics.split_exit_info(int(st.exit_info))[0].name
            if breakpoint_trap(name, e.insn_bytes):
                return Run(signal=signal.SIGTRAP, fault_rip=st.rip)
            if name not in ("cpuid", "xgetbv"):
                return Run(signal=signal.SIGSEGV, fault_rip=st.rip)
            return Run(error=f"runtime intrinsic {name} (not performed by the snippet runner)")
        return Run(error=f"{type(exc).__name__}: {str(exc)[:200]}")
    at = CODE_ADDR + e.offset
    unt = tuple(t if pc == at else f"{t} (in the {e.kind} setup/teardown code)"
                for pc, t in r.untranslatable)
    if r.spurious_faults:
        return Run(error=f"the {N.TIER} code faulted where the guest instructions did not")
    if r.fault or r.host_signal:
        sig = r.host_signal or _fault_signal(r.fault)
        return Run(signal=sig, untranslatable=unt, fault_rip=r.regs["rip"])
    return Run(regs={k: r.regs[k] for k in N.GPRS}, rflags=r.rflags, xmm=r.xmm, mxcsr=r.mxcsr,
               data=_changes(s["data"], r.data),
               stack=_changes(s["stack"], r.stack), untranslatable=unt)


# ---------------------------------------------------------------------------
# forked batch workers

def _child_setup(side: str) -> None:
    import faulthandler
    import resource
    faulthandler.disable()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for sig in FAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    if side == "native":
        N.install_fault_guard()
    else:
        # The snippet machine may have been made before the fork (by an
        # earlier test of this pytest process): its engine's fault handler
        # must be routed again after the reset above, or a translated fault
        # kills the worker.
        from bttool.runtime.hostsignals import install_fault_handler
        from bttool.runtime.snippet import _machine
        install_fault_handler(_machine()[1].engine.signal_handler)


def _worker(side: str, encs: list[Encoding], states: list[dict], fd: int) -> None:
    _child_setup(side)
    run = native_run if side == "native" else translated_run
    with os.fdopen(fd, "wb", buffering=1 << 16) as out:
        for i, e in enumerate(encs):
            res = [run(e, s) for s in states]
            blob = pickle.dumps((i, res))
            out.write(struct.pack("<I", len(blob)) + blob)
            if side != "native" or i % 64 == 63:
                out.flush()


def _run_side(jobs: list[tuple[str, list[Encoding]]], states, timeout: float = 30.0,
              progress=None) -> list[list]:
    """Run every job (side, encodings) in forked children, at most
    ``os.cpu_count()`` at a time; a child that dies or hangs is restarted
    after the encoding it was on, which gets a Run with that signal."""
    results: list[list] = [[None] * len(encs) for _side, encs in jobs]
    pending = list(range(len(jobs)))
    running: dict[int, tuple] = {}      # fd -> (job, start, pid, reader, last_time)
    nextpos = {j: 0 for j in range(len(jobs))}
    ncpu = max(1, os.cpu_count() or 1)

    def start(j: int) -> None:
        side, encs = jobs[j]
        pos = nextpos[j]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                _worker(side, encs[pos:], states, w)
                os._exit(0)
            except BaseException:  # noqa: BLE001
                import traceback
                traceback.print_exc()
                os._exit(99)
        os.close(w)
        running[r] = (j, pos, pid, None, time.time(), bytearray())

    while pending or running:
        while pending and len(running) < ncpu:
            start(pending.pop(0))
        fds = list(running)
        ready, _, _ = select.select(fds, [], [], 1.0)
        now = time.time()
        for fd in fds:
            j, base, pid, _u, last, buf = running[fd]
            side, encs = jobs[j]
            dead = None
            if fd in ready:
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    buf += chunk
                    while len(buf) >= 4:
                        (size,) = struct.unpack_from("<I", buf)
                        if len(buf) < 4 + size:
                            break
                        i, res = pickle.loads(bytes(buf[4:4 + size]))
                        del buf[:4 + size]
                        results[j][base + i] = res
                        nextpos[j] = base + i + 1
                        if progress:
                            progress(side)
                    running[fd] = (j, base, pid, _u, now, buf)
                    continue
                dead = "eof"
            elif now - last > timeout:
                os.kill(pid, signal.SIGKILL)
                dead = "hang"
            if dead:
                _, status = os.waitpid(pid, 0)
                os.close(fd)
                del running[fd]
                pos = nextpos[j]
                if pos < len(encs):
                    if dead == "hang":
                        why = Run(error=f"{side} run hangs (> {timeout:.0f} s)")
                    elif os.WIFSIGNALED(status):
                        why = Run(error=f"{side} worker killed by signal {os.WTERMSIG(status)}")
                    else:
                        why = Run(error=f"{side} worker exited with {os.WEXITSTATUS(status)}")
                    if side == "native" and os.WIFEXITED(status) and os.WEXITSTATUS(status) > 100:
                        why = Run(signal=os.WEXITSTATUS(status) - 100)
                    results[j][pos] = [why] * len(states)
                    nextpos[j] = pos + 1
                    if nextpos[j] < len(encs):
                        pending.insert(0, j)
    return results


# ---------------------------------------------------------------------------
# comparison and classification

def _sig_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def compare_runs(e: Encoding, nat: Run, tr: Run) -> tuple[str, str]:
    """(class, detail) for one input state."""
    if tr.error:
        return "differs", f"bttool error: {tr.error}"
    if nat.error:
        return "differs", f"native: {nat.error}"
    if tr.untranslatable:
        if nat.signal == signal.SIGILL:
            return "same-signal", "SIGILL (bttool: untranslatable)"
        return "untranslatable", ("native " + (_sig_name(nat.signal) if nat.signal else "runs") +
                                  f"; bttool: {', '.join(tr.untranslatable)}")
    if nat.signal or tr.signal:
        if nat.signal == tr.signal:
            return "same-signal", _sig_name(nat.signal)
        return "differs", (f"native {_sig_name(nat.signal) if nat.signal else 'runs'}, "
                           f"bttool {_sig_name(tr.signal) if tr.signal else 'runs'}")
    probs = []
    for r in N.GPRS:
        if nat.regs[r] != tr.regs[r]:
            probs.append(f"{r} {nat.regs[r]:#x}/{tr.regs[r]:#x}")
    d = (nat.rflags ^ tr.rflags) & e.flag_mask
    if d:
        probs.append(f"flags [{N.flag_str(d)}] {N.flag_str(nat.rflags & e.flag_mask)}/"
                     f"{N.flag_str(tr.rflags & e.flag_mask)}")
    for i in range(16):
        if nat.xmm[i] != tr.xmm[i]:
            probs.append(f"xmm{i} {nat.xmm[i]:#x}/{tr.xmm[i]:#x}")
    if (nat.mxcsr ^ tr.mxcsr) & ~0x3F:
        probs.append(f"mxcsr {nat.mxcsr:#x}/{tr.mxcsr:#x}")
    if nat.data != tr.data:
        probs.append("data " + _runs_diff(nat.data, tr.data))
    if nat.stack != tr.stack:
        probs.append("stack " + _runs_diff(nat.stack, tr.stack, STACK_ADDR - DATA_ADDR))
    if probs:
        return "differs", "; ".join(probs)
    return "same", ""


def _runs_diff(a: tuple, b: tuple, base: int = 0) -> str:
    def flat(runs):
        return {o + k: v for o, bs in runs for k, v in enumerate(bs)}
    fa, fb = flat(a), flat(b)
    offs = sorted(o for o in set(fa) | set(fb) if fa.get(o) != fb.get(o))
    if not offs:
        return "?"
    lo = offs[0]
    hi = min(offs[-1], lo + 15)
    na = bytes(fa.get(o, 0) for o in range(lo, hi + 1))
    nb = bytes(fb.get(o, 0) for o in range(lo, hi + 1))
    return f"@{DATA_ADDR + base + lo:#x} ({len(offs)} bytes) native {na.hex()} bttool {nb.hex()}"


ORDER = ["same", "same-signal", "excepted", "differs", "untranslatable"]   # known-gap: see sweep()


def classify(e: Encoding, nats: list[Run], trs: list[Run]) -> tuple[str, str]:
    """The class over all input states: the worst comparison; same-signal
    only when every state faulted alike."""
    got = [compare_runs(e, nat, tr) for nat, tr in zip(nats, trs)]
    worst, detail = max(got, key=lambda cd: ORDER.index(cd[0]))
    if worst in ("differs", "untranslatable"):
        reason = _exception_for(e.insn, worst) or (
            f"not in the CPU model: {e.advertised}" if e.advertised else None) or (
            _undecodable_exception(e.insn_bytes) if e.insn is None else None)
        if reason and detail == "native SIGSEGV, bttool runs" and "66-prefixed" not in reason:
            reason = None       # a lost memory fault is never what the reasons explain
        if reason:
            return "excepted", f"{reason} [{worst}: {detail}]"
        return worst, detail
    if all(c == "same-signal" for c, _d in got):
        return "same-signal", got[0][1]
    return "same", ""


@dataclass
class Sweep:
    rows: list                 # (encoding, class, detail)
    seconds: float
    complete: bool = False     # every map, no --only: every KNOWN_GAPS key must be swept

    def stale_gaps(self) -> list[tuple[str, str, str]]:
        """KNOWN_GAPS entries that are no longer gaps: (group, key, what
        the encoding is now); their keys are to be deleted from the table."""
        now = {e.key: c for e, c, _d in self.rows}
        out = []
        for k, (group, cls, _reason) in KNOWN_GAP_KEYS.items():
            if k not in now:
                if self.complete:
                    out.append((group, k, "no longer an encoding of the sweep"))
            elif now[k] != "known-gap":
                out.append((group, k, f"now {now[k]}, pinned as {cls}"))
        return sorted(out)

    def stale_message(self) -> str:
        stale = self.stale_gaps()
        by_group = collections.defaultdict(list)
        for group, k, what in stale:
            by_group[group].append(f"{k} ({what})")
        return (f"{len(stale)} KNOWN_GAPS entries in tests/opcode_sweep.py are no longer gaps; "
                "delete these keys (and a group once it is empty):\n" +
                "\n".join(f"  {g!r}: {', '.join(ks)}" for g, ks in sorted(by_group.items())))

    def counts(self) -> collections.Counter:
        return collections.Counter(c for _e, c, _d in self.rows)

    def by_class(self, cls: str) -> list:
        return [(e, d) for e, c, d in self.rows if c == cls]

    def failures(self) -> list:
        return [(e, c, d) for e, c, d in self.rows if c in ("differs", "untranslatable")]

    def table(self) -> str:
        cnt = self.counts()
        total = sum(cnt[c] for c in cnt if c != "skipped")
        lines = ["| class | encodings |", "|---|---|"]
        labels = {"same": "run as natively (same result)",
                  "same-signal": "fault natively and under bttool with the same signal",
                  "excepted": "differ, listed in EXCEPTIONS or beyond the CPU model (reasons below)",
                  "known-gap": "known gaps: untranslatable or differ, pinned in KNOWN_GAPS (issue 23)",
                  "differs": "differ (unexplained)",
                  "untranslatable": "untranslatable while the host runs them",
                  "skipped": "opcodes not run (reasons below)"}
        for c in ["same", "same-signal", "excepted", "known-gap", "differs", "untranslatable",
                  "skipped"]:
            lines.append(f"| {labels[c]} | {cnt.get(c, 0)} |")
        lines.append(f"| total run | {total} |")
        lines.append("")
        reasons = collections.Counter()
        for e, d in self.by_class("excepted"):
            reasons[d.split(" [")[0]] += 1
        if reasons:
            lines.append("Excepted, by reason:")
            lines += [f"  {n:5}  {r}" for r, n in reasons.most_common()]
        gaps = collections.Counter(d.split(" [")[0] for _e, d in self.by_class("known-gap"))
        if gaps:
            lines.append("Known gaps (KNOWN_GAPS, issue 23), by group:")
            for group, cls, reason, _keys in KNOWN_GAPS:
                if gaps[group]:
                    lines.append(f"  {gaps[group]:5}  {group} ({cls}): {reason}")
        stale = self.stale_gaps()
        if stale:
            lines.append(f"KNOWN_GAPS entries no longer gaps (delete them): {len(stale)}")
        sk = collections.defaultdict(list)
        for e, c, d in self.rows:
            if c == "skipped":
                sk[e.skip].append(e.key)
        if sk:
            lines.append("Skipped opcodes, by reason:")
            lines += [f"  {r}: {', '.join(ks)}" for r, ks in sk.items()]
        return "\n".join(lines)

    def listing(self, classes=("differs", "untranslatable")) -> str:
        groups = collections.defaultdict(list)
        for e, c, d in self.rows:
            if c in classes:
                groups[(c, e.text.split(" ")[0])].append((e, d))
        out = []
        for (c, mn), items in sorted(groups.items()):
            out.append(f"{c}: {mn} ({len(items)} encodings)")
            for e, d in items[:6]:
                out.append(f"    {e.key:24} {e.text:40} {' '.join(d.split())[:300]}")
            if len(items) > 6:
                out.append(f"    ... {len(items) - 6} more")
        return "\n".join(out)

    def to_json(self) -> dict:
        return {"seconds": self.seconds, "counts": dict(self.counts()),
                "rows": [{"bytes": e.key, "text": e.text, "map": e.map, "class": c, "detail": d,
                          "skip": e.skip} for e, c, d in self.rows]}


ALL_MAPS = ("1", "0F", "0F38", "0F3A")


def sweep(maps=ALL_MAPS, only: list[str] | None = None, progress=None,
          jobs: int | None = None) -> Sweep:
    t0 = time.time()
    encs = encodings(maps)
    if only:
        encs = [e for e in encs if any(e.key.startswith(o.lower()) for o in only)]
    run = [e for e in encs if e.skip is None]
    states = _states()
    n = jobs or max(1, os.cpu_count() or 1)
    res = _run_side([("native", run[i::n]) for i in range(n)], states, progress=progress)
    nat = {}
    for i in range(n):
        nat.update({id(e): r for e, r in zip(run[i::n], res[i])})
    # Bytes capstone cannot decode and the host rejects with SIGILL: bttool
    # decodes with the same capstone and raises SIGILL for them by
    # construction; one in UNDECODABLE_SAMPLE is translated to check that.
    todo = [e for k, e in enumerate(run)
            if e.text != "(undecodable)" or k % UNDECODABLE_SAMPLE == 0
            or any(r.signal != signal.SIGILL for r in nat[id(e)])]
    res = _run_side([("translated", todo[i::n]) for i in range(n)], states, progress=progress)
    tr = {}
    for i in range(n):
        tr.update({id(e): r for e, r in zip(todo[i::n], res[i])})
    ill = Run(signal=signal.SIGILL, untranslatable=("(undecodable, not run)",))
    rows = []
    for e in encs:
        if e.skip is not None:
            rows.append((e, "skipped", e.skip))
            continue
        c, d = classify(e, nat[id(e)], tr.get(id(e), [ill] * len(states)))
        gap = KNOWN_GAP_KEYS.get(e.key)
        if gap and gap[1] == c:
            c, d = "known-gap", f"{gap[0]} [{d}]"
        elif gap and c in ("differs", "untranslatable"):
            d += f" (KNOWN_GAPS pins it as {gap[1]} in {gap[0]!r})"
        rows.append((e, c, d))
    return Sweep(rows, time.time() - t0, complete=only is None and set(maps) >= set(ALL_MAPS))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write every encoding's class and detail to this file")
    ap.add_argument("--list", action="store_true",
                    help="list differing/untranslatable encodings and the known gaps")
    ap.add_argument("--excepted", action="store_true", help="list excepted encodings too")
    ap.add_argument("--maps", default="1,0F,0F38,0F3A")
    ap.add_argument("--only", nargs="*", help="only encodings whose bytes start with these hex strings")
    a = ap.parse_args(argv)
    s = sweep(tuple(a.maps.split(",")), a.only)
    print(s.table())
    if a.list or a.excepted:
        print()
        print(s.listing(("differs", "untranslatable", "known-gap")
                        + (("excepted",) if a.excepted else ())))
    if s.stale_gaps():
        print("\n" + s.stale_message())
    print(f"\n{len(s.rows)} encodings in {s.seconds:.1f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s.to_json(), f, indent=1)
    return 1 if s.failures() or s.stale_gaps() else 0


if __name__ == "__main__":
    sys.exit(main())
