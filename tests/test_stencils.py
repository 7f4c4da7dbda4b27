"""Tier 1 by copy and patch (translator/stitch.py): regions stitched from
per-instruction stencils compute what the host computes, sample programs
behave as natively, and stencils kept in the cache serve later runs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)
from test_isa_integer import MULF, Case, check_case  # noqa: E402

from bttool.runtime.stencilstore import StencilFile  # noqa: E402
from bttool.translator.decoder import Decoder  # noqa: E402
from bttool.translator.stitch import StencilLibrary, abstract_form, stencil_key  # noqa: E402


def _insn(hexcode: str, pc: int = 0x401000):
    return Decoder(64).decode_one(bytes.fromhex(hexcode), pc)


@pytest.mark.parametrize("a,b", [
    ("7405", "747f"),                      # je rel8, two displacements
    ("0f8412345678", "0f84fffffff0"),      # je rel32
    ("e800000010", "e8f0ffffff"),          # call rel32
    ("488b0510000000", "488b05f0ffffff"),  # mov rax, [rip+d]
    ("8d0510000000", "8d05f0ffffff"),      # lea eax, [rip+d]
])
def test_displacements_are_holes(a, b):
    """Branch and rip-relative displacements are left out of the key, so
    those instructions share a stencil wherever they are."""
    assert stencil_key(_insn(a)) == stencil_key(_insn(b))
    assert stencil_key(_insn(a, 0x401000)) == stencil_key(_insn(a, 0x7f0000123000))


@pytest.mark.parametrize("a,b", [
    ("4883c001", "4883c301"),              # add rax, 1 / add rbx, 1
    ("4883c001", "4883c002"),              # the immediate
    ("488b4308", "488b4310"),              # a displacement off a register
    ("7405", "7505"),                      # je / jne
])
def test_other_bytes_are_kept(a, b):
    assert stencil_key(_insn(a)) != stencil_key(_insn(b))


@pytest.mark.parametrize("a,b", [
    ("4883c001", "4883c301"),              # add rax, 1 / add rbx, 1
    ("4883c001", "4983c7f0"),              # add r15, -0x10
    ("488b4308", "488b5610"),              # mov rax, [rbx+8] / mov rdx, [rsi+0x10]
    ("4c8b4c2408", "488b5c2478"),          # mov r9, [rsp+8] / mov rbx, [rsp+0x78]
    ("b801000000", "bf02000000"),          # mov eax, 1 / mov edi, 2
    ("488d04c8", "4a8d1cf3"),              # lea rax, [rax+rcx*8] / lea rbx, [rbx+r14*8]
    ("31c0", "31d2"),                      # xor eax, eax / xor edx, edx
    ("53", "55"),                          # push rbx / push rbp
])
def test_abstract_forms_share(a, b):
    """Instructions that differ only in their explicit registers (same
    widths, same pattern of equal ones), their displacement or their ALU
    immediate have one abstract key, so one stencil serves both."""
    fa, fb = abstract_form(_insn(a)), abstract_form(_insn(b))
    assert fa is not None and fa.key == fb.key
    assert (fa.fields, fa.disp, fa.imm) != (fb.fields, fb.disp, fb.imm)


@pytest.mark.parametrize("a,b", [
    ("4801d8", "4801c0"),                  # add rax, rbx / add rax, rax: equal registers
    ("4801d8", "01d8"),                    # the width
    ("88e0", "88c0"),                      # mov al, ah / mov al, al: a high byte
    ("4889e0", "4889d8"),                  # mov rax, rsp: rsp stays itself
    ("4883c001", "4883e801"),              # add / sub
    ("488b4308", "488b03"),                # [rbx+8] / [rbx]: no displacement
    ("488b8300000001", "488b8300000002"),  # displacements past the bound are kept
    ("c1e002", "c1e003"),                  # a shift count is not a plain value
    ("df00", "df28"),                      # fild word / qword: x87 keeps ModRM.reg
])
def test_abstract_forms_differ(a, b):
    fa, fb = abstract_form(_insn(a)), abstract_form(_insn(b))
    assert fa is None or fb is None or fa.key != fb.key


def test_abstract_forms_lift_alike(samples_dir):
    """Every pair of instructions of a real program (the static hello: its
    libc) that share an abstract key lifts to the same stencil IR, holes
    aside: the semantics read nothing of an instruction that its key
    leaves out."""
    import re
    import lief
    from llvmlite import ir
    from bttool.ir import codegen
    from bttool.ir.clamp import AddressClamp
    from bttool.translator.decoder import Decoder
    from bttool.translator.options import LiftOptions
    text = lief.parse(str(samples_dir / "hello")).get_section(".text")
    code, base = bytes(text.content), text.virtual_address
    library = StencilLibrary(LiftOptions(hot_counters=True, stencils=True,
                                         clamp=AddressClamp(1 << 40, 1 << 30)), codegen.host_target(1))
    decoder, groups, at = Decoder(64), {}, 0
    while at < min(len(code), 150_000):
        insn = decoder.decode_one(code[at:at + 16], base + at)
        if insn is None:
            at += 1
            continue
        at += insn.size
        form = abstract_form(insn)
        if form is not None:
            seen = groups.setdefault(form.key, [])
            if len(seen) < 2 and all(f != form for _i, f in seen):
                seen.append((insn, form))

    def lifted(insn, form) -> tuple[str, list[str]]:
        module = ir.Module()
        ports = form.ports(module)
        try:
            library._lift(module, "st", insn, ports)
        except Exception as e:      # noqa: BLE001 -- both must fail alike
            return type(e).__name__, []
        names: dict[str, str] = {}
        text = re.sub(r"%\"?(_\d+)\"?", lambda m: "%" + names.setdefault(m.group(1), f"v{len(names)}"),
                      str(module))
        return text, [kind for kind, _v in ports.holes]
    pairs = [g for g in groups.values() if len(g) == 2]
    assert len(pairs) > 300
    for (i, fi), (j, fj) in pairs:
        assert lifted(i, fi) == lifted(j, fj), f"{i.mnemonic} {i.op_str} / {j.mnemonic} {j.op_str}"


@pytest.fixture
def stitched(monkeypatch):
    monkeypatch.setattr(N, "TIER", "stitched")


# Regions whose instructions share abstract stencils: the first of a key is
# compiled, the others are served from it with registers, displacements and
# immediates of their own; ``mul rax`` and ``mul rdx`` (rdx:rax is mul's
# implicit operand) need a stencil of their own.
SHARED = [
    Case("shared-alu", "add rax, rbx\nadd rcx, rdx\nadd rdx, rcx\nadd r8, r8\nsub r9d, 0x12345\n"
         "sub ebx, -7\nxor r10d, r10d\nxor r11d, r10d\nmov bl, ah\nmov cl, dh"),
    Case("shared-mem", "mov rax, qword ptr [rsi+0x10]\nmov rbx, qword ptr [rsi+0x18]\n"
         "add qword ptr [rsi+0x20], rax\nadd qword ptr [rsi+0x28], 0x11\n"
         "mov ecx, dword ptr [rsi-0x123]\nlea rdx, [rsi+rcx*4+0x40]\nlea rdi, [rsi+rax*2-0x40]",
         mem=[(0x10, 64), (0x18, 64), (0x20, 64), (0x28, 64), (-0x123, 32)]),
    Case("shared-mul", "mul rcx\nmul rax\nmul rbx\nmul rdx\nmul rsi", mask=MULF),
]


for _c, _code in zip(SHARED, N.assemble([c.asm for c in SHARED])):
    _c.code = _code


@pytest.mark.parametrize("c", SHARED, ids=[c.id for c in SHARED])
def test_shared_stencils_stitched(stitched, c: Case) -> None:
    check_case(c, 3)


def test_stencil_data_keeps_its_alignment(stitched, monkeypatch) -> None:
    """A stencil's read-only data lands at the alignment its sections ask
    for (StencilCode.data_align): the generic pcmpistri stencils load a
    32-byte constant with vmovaps, which raised #GP when the stitcher placed
    data at 16 bytes.  The result stayed right only through a precise-fault
    replay of the region, so this test forbids the replay: a stitched
    stencil must not fault on the host where the guest does not."""
    import random

    from test_sse_semantics import ALL_FLAGS, Spec, _pcmp_group, _pcmp_inputs, check
    from test_sse_semantics import _CODES as SSE_CODES

    from bttool.runtime import precisefault

    def no_replay(self):
        raise AssertionError("stitched code raised a host fault the guest does not")
    monkeypatch.setattr(precisefault.FaultReplay, "replay", no_replay)
    monkeypatch.setattr(N, "HOST_INSTRUCTIONS", False)
    rng = random.Random(1)
    groups = [list(range(g, 128, 8)) for g in range(8)]
    asms = [_pcmp_group("pcmpistri", imms) for imms in groups]
    for asm, code in zip(asms, N.assemble(asms)):
        SSE_CODES[asm] = code
        for inp in _pcmp_inputs(rng, False, 1):
            check(Spec(asm, flags=ALL_FLAGS), inp)


PLAIN = ["hello", "jumps", "strings", "sighandlers", "atomics", "jit", "segv", "divzero"]


@pytest.mark.parametrize("name", PLAIN)
def test_sample_stitched(samples_dir, bttool_cache, tmp_path, monkeypatch, name):
    """Whole programs (loops, signal handlers, faults, code written at run
    time) run stitched as natively."""
    monkeypatch.setenv("BTTOOL_TIER1", "stencils")
    lines = 1 if name in ("segv", "divzero") else 0
    programs.compare_run([str(samples_dir / name)], bttool_cache, cwd=tmp_path, bttool_lines=lines)


def _stencil_bytes(store: Path) -> int:
    return sum(f.stat().st_size for f in (store / "stencils").glob("*.bin"))


def test_stencils_are_kept_for_later_runs(samples_dir, tmp_path, monkeypatch):
    """A run with a new translation cache (holding only the host's
    description and support object, which any cache keeps) stitches its
    regions from the stencils earlier runs with another cache made: it
    compiles no stencil (the user's stencil file does not grow, and LLVM is
    never loaded) and still translates every region itself."""
    monkeypatch.setenv("BTTOOL_TIER1", "stencils")
    store = tmp_path / "store"
    monkeypatch.setenv("BTTOOL_STENCIL_DIR", str(store))
    argv = [str(samples_dir / "hello")]
    native = programs.run_native(argv, cwd=tmp_path)
    first = tmp_path / "first"
    programs.assert_same(native, programs.run_bttool(argv, str(first), cwd=tmp_path))
    assert not (first / "stencils").exists()
    fresh = tmp_path / "fresh"
    shutil.copytree(first / "support", fresh / "support")
    shutil.copy(first / "host-target.json", fresh)
    size = _stencil_bytes(store)
    assert size > 0
    stats = tmp_path / "stats.json"
    run = programs.run_bttool(argv, fresh, cwd=tmp_path, options=["--stats-json", str(stats)])
    programs.assert_same(native, run)
    report = json.loads(stats.read_text())
    assert report["regions_translated"] > 0
    assert report["llvm_loaded"] is False
    assert _stencil_bytes(store) == size


def test_stencil_file_keeps_intact_records(tmp_path):
    """Records are read back in order; one cut short (a crash while
    appending) is dropped, never misread, and cut off, so what is appended
    next is read again."""
    f = StencilFile(str(tmp_path), "kind")
    f.append([(b"a", (b"code", [], b"", [], None, ["next"], ["next"], False))])
    f.append([(b"b", None), ((0x1000, b"\x90"), (b"x", [], b"", [], (0, 0), [], [], True))])
    assert [k for k, _ in f.load()] == [b"a", b"b", (0x1000, b"\x90")]
    whole = Path(f.path).read_bytes()
    Path(f.path).write_bytes(whole[:-3])
    assert [k for k, _ in f.load()] == [b"a"]
    Path(f.path).write_bytes(whole[:-3] + b"more garbage")
    assert [k for k, _ in f.load()] == [b"a"]
    f.append([(b"c", None)])
    assert [k for k, _ in f.load()] == [b"a", b"c"]
    assert StencilFile(str(tmp_path), "other kind").load() == []
