"""XSAVE: the guest's xsave/xrstor (translator/semantics/xsave.py) and the
XSAVE-format FPU state of signal frames on x86-64-v3 (runtime/fpstate.py,
runtime/guestsignals.py).

* The ``xstate`` sample (samples/xstate.c) runs natively and under
  ``bttool run --cpu x86-64-v3`` and must print the same bytes: xsave with
  RFBM 7, 3, 4, 2, 1, 0, xrstor with XSTATE_BV initialising components,
  the faults (misaligned area, bad header, reserved MXCSR bits) and the
  state at the fault, and signal frames: the software bytes and magics,
  the ymm upper halves in the frame, a handler's edits of the frame (ymmh,
  xmm, MXCSR, XSTATE_BV, an fxsave-only frame, the features, a moved
  fpstate) and rt_sigreturn's SIGSEGV for a bad one.  Both runs get
  GLIBC_TUNABLES that keep glibc's AVX code out, so the test needs no AVX
  semantics besides the instructions it is about.
* Under x86-64-v2 the sample's xsave is SIGILL; dynamically linked Debian
  programs, whose lazy binding goes through ld.so's
  _dl_runtime_resolve_xsave on v3, run as natively.
* ``xstate compact`` (xsaveopt, xsavec and the compacted form of xrstor,
  with their faults) runs natively and under ``--cpu x86-64-v3+xsavec``
  and must print the same bytes (on a host with XSAVEOPT and XSAVEC).
* Without the host: translated snippets (runtime/snippet.py) for what the
  host cannot be compared on (the model's #UD for XSAVEC/XSAVES, the
  compacted format the host supports and the default model does not,
  XSTATE_BV bits the host's XCR0 may have), xsavec's results recorded
  here, round trips in every code tier, and the frame rules of fpstate.py
  directly.
"""
from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)

from bttool.ir import state as st  # noqa: E402
from bttool.runtime import cpuid, fpstate, snippet  # noqa: E402
from bttool.translator import cpumodel  # noqa: E402

V3 = ["--cpu", cpumodel.V3]
# glibc without its AVX routines (ifuncs), natively and translated alike
NO_AVX_LIBC = {"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-AVX,-AVX_Fast_Unaligned_Load"}
D = snippet.DATA_ADDR


def _host_has_avx_state() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return {"xsave", "avx"} <= set(flags)


needs_host_avx = pytest.mark.skipif(not _host_has_avx_state(), reason="the host has no XSAVE/AVX")


def _host_has_compaction() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return {"xsave", "avx", "xsaveopt", "xsavec"} <= set(flags)


needs_host_xsavec = pytest.mark.skipif(not _host_has_compaction(),
                                       reason="the host has no XSAVEOPT/XSAVEC")
V3_XSAVEC = ["--cpu", cpumodel.V3 + "+xsavec"]


# ---------------------------------------------------------------------------
# the sample, natively and translated

@needs_host_avx
def test_xstate_sample_matches_native(samples_dir, bttool_cache, tmp_path):
    env = programs.guest_env(NO_AVX_LIBC)
    native, _ = programs.compare_run([str(samples_dir / "xstate")], bttool_cache, cwd=tmp_path,
                                     env=env, options=V3)
    out = native.stdout
    assert native.returncode == 0 and b"signal frames:" in out, out[-500:]
    # the oracle does what the sample says: the frame is the XSAVE format,
    # and the faults are #GP
    sw_ok = b"magic1 ok, extended size size+4, features&7 0x7, size >= 832, magic2 ok"
    assert out.count(sw_ok) == 9
    assert b"xrstor xcomp_bv 1: signal 11 code 0x80 trapno 13 err 0, state unchanged" in out
    segv = b"SIGSEGV after rt_sigreturn: code 0x80; the registers are the frame's: yes"
    assert out.count(segv) == 2
    assert b"AT_MINSIGSTKSZ is the frame overhead plus the XSAVE size: yes" in out


@needs_host_xsavec
def test_xstate_compact_matches_native(samples_dir, bttool_cache, tmp_path):
    """xsaveopt, xsavec (every RFBM, the init optimisation, MXCSR saving
    SSE) and xrstor of compacted areas (loaded and initialised components,
    MXCSR by SSE's bits only, the #GP cases) give the host's bytes."""
    env = programs.guest_env(NO_AVX_LIBC)
    native, _ = programs.compare_run([str(samples_dir / "xstate"), "compact"], bttool_cache,
                                     cwd=tmp_path, env=env, options=V3_XSAVEC)
    out = native.stdout
    assert out.count(b"\nxsaveopt rfbm") == 4 and out.count(b"\nxsavec rfbm") == 10, out[-500:]
    assert out.count(b": signal 11 code 0x80 trapno 13 err 0, state unchanged") == 7
    assert b"xsavec rfbm 7, init but MXCSR\n" in out


def test_xsave_is_sigill_on_v2(samples_dir, bttool_cache, tmp_path):
    env = programs.guest_env(NO_AVX_LIBC)
    prog = str(samples_dir / "xstate")
    v2 = ["--cpu", cpumodel.V2]
    r = programs.run_bttool([prog, "ud"], bttool_cache, options=v2, cwd=tmp_path, env=env)
    assert r.returncode == -4, programs.describe_status(r.returncode)
    assert r.stdout == b"xsave without asking CPUID\n"
    _, ours = programs.split_bttool_lines(r.stderr)
    assert len(ours) == 1 and b"xsave64" in ours[0], r.stderr
    r = programs.run_bttool([prog], bttool_cache, options=v2, cwd=tmp_path, env=env)
    assert r.returncode == 0
    assert r.stdout == b"no AVX state (XSAVE, OSXSAVE and XCR0 x87|SSE|AVX needed)\n"


@needs_host_avx
@pytest.mark.parametrize("argv", [
    ["/bin/ls", "-la", "--time-style=+%s", "{tree}"],
    ["/usr/bin/printf", "%.3f %s %d\\n", "2.5", "x", "42"],
    ["/bin/sh", "-c", "echo $(( 6 * 7 )) | /bin/cat"],
], ids=["ls", "printf", "sh"])
def test_dynamic_programs_on_v3(bttool_cache, tmp_path, argv):
    """ld.so binds lazily through _dl_runtime_resolve_xsave on a CPU with
    XSAVE but not XSAVEC (the v3 model): xsave and xrstor of the state
    around every first call of a library function."""
    if not os.path.exists(argv[0]):
        pytest.skip("not installed")
    tree = tmp_path / "tree"
    for i, name in enumerate(["a.txt", "b.txt", "sub/c.txt"]):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(name * (i + 1))
        os.utime(tree / name, (1_000_000_000 + i,) * 2)
    for d in (tree / "sub", tree):
        os.utime(d, (1_000_000_000,) * 2)
    argv = [a.replace("{tree}", str(tree)) for a in argv]
    programs.compare_run(argv, bttool_cache, cwd=tmp_path, env=programs.guest_env(NO_AVX_LIBC),
                         options=V3)


@needs_host_xsavec
def test_dynamic_program_with_xsavec(bttool_cache, tmp_path):
    """With XSAVEC reported, ld.so binds lazily through
    _dl_runtime_resolve_xsavec: xsavec and a compacted xrstor around every
    first call of a library function."""
    argv = ["/usr/bin/printf", "%.3f %s %d\\n", "2.5", "x", "42"]
    if not os.path.exists(argv[0]):
        pytest.skip("not installed")
    programs.compare_run(argv, bttool_cache, cwd=tmp_path, env=programs.guest_env(NO_AVX_LIBC),
                         options=V3_XSAVEC)


# ---------------------------------------------------------------------------
# translated snippets

def _asm(text: str) -> bytes:
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("needs GNU as and objcopy")
    with tempfile.TemporaryDirectory() as d:
        source = ".intel_syntax noprefix\n.text\n" + text.replace(";", "\n") + "\n"
        Path(d, "a.s").write_text(source)
        subprocess.run(["as", "-o", f"{d}/a.o", f"{d}/a.s"], check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", f"{d}/a.o", f"{d}/a.bin"],
                       check=True, capture_output=True)
        return Path(d, "a.bin").read_bytes()


@pytest.fixture
def model():
    """Select a CPU model for the snippets; the previous one afterwards."""
    before = cpuid.model().name
    yield cpuid.select
    cpuid.select(before)


def _run(code: str, data: bytes = b"", **kw) -> snippet.SnippetResult:
    code = _asm(f"mov rdi, {D}; mov eax, 7; xor edx, edx; " + code)
    return snippet.run_snippet(code, data=data, **kw)


def _image(x87: bool = True, sse: bool = True, avx: bool = True, bv: int = 7, mxcsr: int = 0x3F80,
           seed: int = 1) -> bytearray:
    """A standard-format area: a state with every component away from its
    initial configuration (those asked for), XSTATE_BV ``bv``."""
    rng = random.Random(seed)
    a = bytearray(cpumodel.xsave_size(7))
    struct.pack_into("<HHB", a, 0, 0x037F, 0, 0)
    struct.pack_into("<I", a, 24, mxcsr)
    if x87:
        struct.pack_into("<HHB", a, 0, 0x027F, 0x3900, 0x81)
        for i in range(8):
            a[32 + 16 * i:42 + 16 * i] = rng.randbytes(10)
    if sse:
        a[160:416] = rng.randbytes(256)
    if avx:
        a[576:832] = rng.randbytes(256)
    struct.pack_into("<Q", a, 512, bv)
    return a


def _ymmh(r: snippet.SnippetResult) -> bytes:
    return b"".join(v.to_bytes(16, "little") for v in r.ymmh)


def _xmm(r: snippet.SnippetResult) -> bytes:
    return b"".join(v.to_bytes(16, "little") for v in r.xmm)


@pytest.mark.parametrize("tier", ["tier1", "tier2", "precise"])
def test_xrstor_xsave_round_trip(model, tier):
    """xrstor of an area, then xsave into another, filled with 0xA5: the
    same components, MXCSR_MASK, XSTATE_BV merged with the old bits, the
    rest of the area untouched; the registers hold what was loaded."""
    model(cpumodel.V3)
    kw = {"tier1": {}, "tier2": {"hot_counters": False}, "precise": {"precise_faults": True}}[tier]
    img = _image(seed={"tier1": 11, "tier2": 12, "precise": 13}[tier])
    data = bytes(img).ljust(1024, b"\0") + b"\xA5" * 1024
    r = _run("xrstor64 [rdi]; lea rsi, [rdi+1024]; xsave64 [rsi]", data, **kw)
    assert (r.fault, r.untranslatable) == (0, [])
    out = r.data[1024:2048]
    want = bytearray(img)
    struct.pack_into("<I", want, 28, st.MXCSR_MASK)
    want[416:512] = b"\xA5" * 96
    want[512:576] = b"\xA5" * 64
    want[512] = 0xA5 & ~7 | 7
    assert out[:832] == bytes(want)
    assert out[832:] == b"\xA5" * 192
    assert _xmm(r) == bytes(img[160:416]) and _ymmh(r) == bytes(img[576:832])
    assert r.mxcsr == 0x3F80


@pytest.mark.parametrize("rfbm", [7, 3, 4, 1, 2, 0])
def test_xsave_writes_only_rfbm_components(model, rfbm):
    model(cpumodel.V3)
    img = _image()
    data = bytes(img).ljust(1024, b"\0") + b"\xA5" * 1024
    r = _run(f"xrstor64 [rdi]; lea rsi, [rdi+1024]; mov eax, {rfbm}; xsave64 [rsi]", data)
    assert r.fault == 0
    out = r.data[1024:1024 + 832]
    fill = b"\xA5"
    assert out[0:24] == (bytes(img[0:24]) if rfbm & 1 else fill * 24)
    mxcsr = bytes(img[24:28]) + struct.pack("<I", st.MXCSR_MASK)
    assert out[24:32] == (mxcsr if rfbm & 6 else fill * 8)
    assert out[32:160] == (bytes(img[32:160]) if rfbm & 1 else fill * 128)
    assert out[160:416] == (bytes(img[160:416]) if rfbm & 2 else fill * 256)
    assert out[416:512] == fill * 96
    assert out[512] == 0xA5 & ~rfbm | rfbm and out[513:576] == fill * 63
    assert out[576:832] == (bytes(img[576:832]) if rfbm & 4 else fill * 256)


def test_xstate_bv_reports_components_by_value(model):
    """XINUSE as the AMD host has it: a component whose registers hold
    their initial values is not in use, however it got them; MXCSR does
    not count."""
    model(cpumodel.V3)
    img = _image(x87=False, sse=False, avx=False, mxcsr=0x3F80)
    r = _run("xrstor64 [rdi]; lea rsi, [rdi+1024]; xsave64 [rsi]", bytes(img))
    assert r.fault == 0 and r.data[1024 + 512] == 0
    for comp, bit in (("x87", 1), ("sse", 2), ("avx", 4)):
        img = _image(**{k: k == comp for k in ("x87", "sse", "avx")})
        r = _run("xrstor64 [rdi]; lea rsi, [rdi+1024]; xsave64 [rsi]", bytes(img))
        assert r.data[1024 + 512] == bit, comp
    # only the upper half of one ymm register
    r = snippet.run_snippet(_asm(f"mov rdi, {D}; mov eax, 7; xor edx, edx; xsave64 [rdi]"),
                            ymm=[0, 0, 0, 1 << 200])
    assert r.data[512] == 4


@pytest.mark.parametrize("bv,rfbm", [(0, 7), (1, 7), (6, 7), (3, 7), (5, 7), (7, 4), (7, 1),
                                     (0, 2)])
def test_xrstor_initialises_components(model, bv, rfbm):
    model(cpumodel.V3)
    start = _image(seed=7)
    src = _image(bv=bv, mxcsr=0x5F80, seed=8)
    data = bytes(start).ljust(1024, b"\0") + bytes(src)
    r = _run(f"xrstor64 [rdi]; lea rsi, [rdi+1024]; mov eax, {rfbm}; xrstor64 [rsi]; mov eax, 7;"
             f" lea rsi, [rdi+2048]; xsave64 [rsi]", data)
    assert r.fault == 0
    out = r.data[2048:2048 + 832]
    init = _image(x87=False, sse=False, avx=False)

    def expect(bit: int, lo: int, hi: int) -> bytes:
        """What component ``bit``'s bytes [lo, hi) of the area hold now."""
        return bytes((src if bv & bit else init) if rfbm & bit else start)[lo:hi]
    assert out[0:6] == expect(1, 0, 6)             # FCW, FSW, abridged tags
    assert out[32:160] == expect(1, 32, 160)
    assert struct.unpack_from("<I", out, 24)[0] == (0x5F80 if rfbm & 6 else 0x3F80)
    assert _xmm(r) == expect(2, 160, 416)
    assert _ymmh(r) == expect(4, 576, 832)


@pytest.mark.parametrize("case,expect", [
    ("xsave64 [rdi+16]", st.FAULT_GP),
    ("xsave [rdi+8]", st.FAULT_GP),
    ("xrstor64 [rdi+32]", st.FAULT_GP),
    ("mov byte ptr [rdi+527], 0x80; xrstor64 [rdi]", st.FAULT_GP),       # compacted: no XSAVEC
    ("mov byte ptr [rdi+520], 1; xrstor64 [rdi]", st.FAULT_GP),
    ("mov byte ptr [rdi+535], 1; xrstor64 [rdi]", st.FAULT_GP),
    ("mov byte ptr [rdi+512], 0xF; xrstor64 [rdi]", st.FAULT_GP),         # MPX's bit: not in XCR0
    # PKRU's bit, even outside RFBM
    ("mov byte ptr [rdi+513], 2; mov eax, 1; xrstor64 [rdi]", st.FAULT_GP),
    # the header's bytes 24-63 are not checked
    ("mov byte ptr [rdi+536], 1; mov byte ptr [rdi+575], 1; xrstor64 [rdi]", 0),
    ("mov byte ptr [rdi+26], 1; xrstor64 [rdi]", st.FAULT_GP),            # MXCSR bit 16
    ("mov byte ptr [rdi+26], 1; mov eax, 4; xrstor64 [rdi]", st.FAULT_GP),
    ("mov byte ptr [rdi+26], 1; mov eax, 1; xrstor64 [rdi]", 0),
    ("xsaveopt [rdi]", 0),                                                # as Haswell
    ("xsaveopt64 [rdi+8]", st.FAULT_GP),
    ("xsavec [rdi]", st.FAULT_UD),
    ("xsavec64 [rdi]", st.FAULT_UD),
    ("xsaves [rdi]", st.FAULT_UD),
    ("xrstors64 [rdi]", st.FAULT_UD),
])
def test_faults_on_v3(model, case, expect):
    """#GP leaves the state as it was; the instructions the model does not
    report are #UD (no untranslatable instruction); a compacted area is
    #GP without XSAVEC."""
    model(cpumodel.V3)
    img = _image(seed=3)
    r = _run(case, bytes(img), ymm=[(1 << 255) | 5] * 16)
    assert (r.fault, r.untranslatable) == (expect, [])
    if expect:
        assert r.ymmh == [1 << 127] * 16 and r.xmm == [5] * 16 and r.mxcsr == 0x1F80


@pytest.mark.parametrize("case", ["xsave [rdi]", "xsave64 [rdi]", "xrstor [rdi]", "xrstor64 [rdi]",
                                  "xsaveopt [rdi]", "xsavec64 [rdi]"])
def test_xsave_family_is_ud_on_v2(model, case):
    model(cpumodel.V2)
    r = _run(case)
    assert (r.fault, r.untranslatable) == (st.FAULT_UD, [])


# ---------------------------------------------------------------------------
# xsavec and the compacted form of xrstor (x86-64-v3+xsavec), recorded

COMPACTED = 1 << 63


@pytest.mark.parametrize("tier", ["tier1", "tier2", "precise"])
@pytest.mark.parametrize("rfbm", [7, 5, 3, 1, 0])
def test_xsavec_then_compacted_xrstor(model, tier, rfbm):
    """xsavec of a state with every component in use: the RFBM components
    at their standard offsets (AVX at 576 even without SSE), XSTATE_BV =
    RFBM, XCOMP_BV = RFBM | 1 << 63, the header's bytes 16-63 and the
    legacy region's 416-511 untouched (the area is filled with 0xA5 but for
    those header bytes, which xrstor wants 0); xrstor of that area over the
    init state loads the saved components and initialises the others
    (SSE's MXCSR to 0x1F80)."""
    model(cpumodel.V3 + "+xsavec")
    kw = {"tier1": {}, "tier2": {"hot_counters": False}, "precise": {"precise_faults": True}}[tier]
    img = _image(seed=20 + rfbm)
    init = _image(x87=False, sse=False, avx=False, bv=0, mxcsr=0x1F80)
    area = bytearray(b"\xA5" * 1024)
    area[528:576] = bytes(48)
    data = bytes(img).ljust(1024, b"\0") + bytes(area) + bytes(init).ljust(1024, b"\0")
    r = _run(f"xrstor64 [rdi]; lea rsi, [rdi+1024]; mov eax, {rfbm}; xsavec64 [rsi];"
             f" lea rsi, [rdi+2048]; mov eax, 7; xrstor64 [rsi]; lea rsi, [rdi+1024];"
             f" xrstor64 [rsi]", data, **kw)
    assert (r.fault, r.untranslatable) == (0, [])
    out = r.data[1024:2048]
    fill = b"\xA5"
    assert out[0:24] == (bytes(img[0:24]) if rfbm & 1 else fill * 24)
    mxcsr = bytes(img[24:28]) + struct.pack("<I", st.MXCSR_MASK)
    assert out[24:32] == (mxcsr if rfbm & 2 else fill * 8)
    assert out[32:160] == (bytes(img[32:160]) if rfbm & 1 else fill * 128)
    assert out[160:416] == (bytes(img[160:416]) if rfbm & 2 else fill * 256)
    assert out[416:512] == fill * 96
    assert struct.unpack_from("<QQ", out, 512) == (rfbm, rfbm | COMPACTED)
    assert out[528:576] == bytes(48)
    assert out[576:832] == (bytes(img[576:832]) if rfbm & 4 else fill * 256)
    assert out[832:] == fill * 192
    assert _xmm(r) == (bytes(img[160:416]) if rfbm & 2 else bytes(256))
    assert _ymmh(r) == (bytes(img[576:832]) if rfbm & 4 else bytes(256))
    assert r.mxcsr == (0x3F80 if rfbm & 2 else 0x1F80)


@pytest.mark.parametrize("mxcsr,rfbm,bv", [(0x1F80, 7, 0), (0x3F80, 7, 2), (0x3F80, 4, 0),
                                           (0x3F80, 1, 0)])
def test_xsavec_init_optimisation(model, mxcsr, rfbm, bv):
    """Components in their initial configuration are not written (their
    XSTATE_BV bit is 0), except SSE when MXCSR is not 0x1F80 and RFBM
    names SSE: then MXCSR, MXCSR_MASK and the zero xmm registers are."""
    model(cpumodel.V3 + "+xsavec")
    init = _image(x87=False, sse=False, avx=False, bv=0, mxcsr=mxcsr)
    data = bytes(init).ljust(1024, b"\0") + b"\xA5" * 1024
    r = _run(f"xrstor64 [rdi]; lea rsi, [rdi+1024]; mov eax, {rfbm}; xsavec64 [rsi]", data)
    assert r.fault == 0
    out = r.data[1024:2048]
    assert struct.unpack_from("<QQ", out, 512) == (bv, rfbm | COMPACTED)
    sse = struct.pack("<II", mxcsr, st.MXCSR_MASK)
    assert out[24:32] == (sse if bv & 2 else b"\xA5" * 8)
    assert out[160:416] == (bytes(256) if bv & 2 else b"\xA5" * 256)
    assert out[0:24] + out[32:160] + out[576:832] == b"\xA5" * (24 + 128 + 256)


@pytest.mark.parametrize("case,expect", [
    ("xsavec64 [rdi+16]", st.FAULT_GP),
    ("mov byte ptr [rdi+521], 2; xrstor64 [rdi]", st.FAULT_GP),      # XCOMP_BV bit 9: not in XCR0
    ("mov byte ptr [rdi+520], 0x83; xrstor64 [rdi]", st.FAULT_GP),   # XSTATE_BV 7, XCOMP_BV 3
    ("mov byte ptr [rdi+520], 0x83; mov eax, 1; xrstor64 [rdi]", st.FAULT_GP),
    ("mov byte ptr [rdi+552], 1; xrstor64 [rdi]", st.FAULT_GP),      # header byte 40
    ("mov byte ptr [rdi+575], 0x80; xrstor64 [rdi]", st.FAULT_GP),   # header byte 63
    ("mov byte ptr [rdi+26], 1; xrstor64 [rdi]", st.FAULT_GP),       # MXCSR bit 16
    ("mov byte ptr [rdi+26], 1; mov eax, 4; xrstor64 [rdi]", 0),     # not loaded: RFBM has no SSE
    ("mov byte ptr [rdi+26], 1; mov byte ptr [rdi+512], 5; xrstor64 [rdi]", 0),  # SSE init
    ("xsaveopt64 [rdi]", 0),
    ("xsaves64 [rdi]", st.FAULT_UD),
])
def test_compacted_faults(model, case, expect):
    """The compacted form's #GP cases leave the state as it was."""
    model(cpumodel.V3 + "+xsavec")
    img = _image(seed=4)
    struct.pack_into("<Q", img, 520, 7 | COMPACTED)
    r = _run(case, bytes(img), ymm=[(1 << 255) | 5] * 16)
    assert (r.fault, r.untranslatable) == (expect, [])
    if expect:
        assert r.ymmh == [1 << 127] * 16 and r.xmm == [5] * 16 and r.mxcsr == 0x1F80


@pytest.mark.parametrize("name,sub1", [(cpumodel.V3, (1, 0, 0, 0)),
                                       (cpumodel.V3 + "+xsavec", (3, 832, 0, 0))])
def test_cpuid_reports_xsaveopt_and_xsavec(model, name, sub1):
    model(name)
    assert cpuid.cpuid(0xD, 1) == sub1
    assert cpuid.cpuid(0xD, 2) == (256, 576, 0, 0)


# ---------------------------------------------------------------------------
# signal frames (fpstate.py)

def _state(seed: int = 5, avx: bool = True) -> "st.CpuState":
    rng = random.Random(seed)
    s = st.new_state()
    s.fpu_cw, s.fpu_sw, s.fpu_top, s.fpu_tag, s.mxcsr = 0x027F, 0x4100, 3, 0x0F, 0x3F80
    for i in range(8):
        getattr(s, f"fpr{i}")[:] = list(rng.randbytes(10) + bytes(6))
    for i in range(16):
        st.set_ymm(s, i, rng.getrandbits(256 if avx else 128))
    return s


def _copy(s: "st.CpuState") -> bytes:
    return bytes(s)


def test_frame_layout_v3():
    s = _state()
    frame = fpstate.sigframe_xstate(s, 7)
    assert fpstate.sigframe_size(True, 7) == len(frame) == 836
    assert frame[:416] == fpstate.fxsave_image(s)[:416] and frame[416:464] == bytes(48)
    assert struct.unpack_from("<IIQI", frame, 464) == (0x46505853, 836, 7, 832)
    assert frame[484:512] == bytes(28)
    assert struct.unpack_from("<Q", frame, 512)[0] == 7 and frame[520:576] == bytes(56)
    assert frame[576:832] == b"".join(bytes(getattr(s, f"ymmh{i}")) for i in range(16))
    assert struct.unpack_from("<I", frame, 832)[0] == 0x46505845
    # x87 and SSE are always reported in the frame; AVX when in use
    s = st.new_state()
    assert struct.unpack_from("<Q", fpstate.sigframe_xstate(s, 7), 512)[0] == 3


def test_frame_v2_is_the_fxsave_image():
    s = _state(avx=False)
    assert fpstate.sigframe_size(False, 3) == fpstate.SIZE == 512
    image = fpstate.fxsave_image(s)
    assert len(image) == 512 and image[416:] == bytes(96)


def _restore(frame: bytes, addr: int = 0x10000, into=None):
    s = into if into is not None else st.new_state()

    def read(a: int, n: int) -> bytes:
        off = a - addr
        if off < 0 or off + n > len(frame):
            raise IndexError("unmapped")
        return frame[off:off + n]
    return s, fpstate.restore_sigframe(s, addr, read, 7)


def test_frame_round_trip():
    s = _state()
    s2, ok = _restore(fpstate.sigframe_xstate(s, 7))
    assert ok
    for name in ("fpu_cw", "fpu_sw", "fpu_top", "fpu_tag", "mxcsr"):
        assert getattr(s2, name) == getattr(s, name), name
    for i in range(16):
        assert st.get_ymm(s2, i) == st.get_ymm(s, i)
    for i in range(8):
        assert bytes(getattr(s2, f"fpr{i}")) == bytes(getattr(s, f"fpr{i}"))


def test_frame_restore_rules():
    s = _state()
    frame = bytearray(fpstate.sigframe_xstate(s, 7))
    # XSTATE_BV without AVX: the upper halves are zero
    f = bytearray(frame)
    f[512] &= ~4
    s2, ok = _restore(bytes(f))
    assert ok and all(st.get_ymm(s2, i) >> 128 == 0 for i in range(16))
    assert all(st.get_xmm(s2, i) == st.get_xmm(s, i) for i in range(16))
    # an fxsave-only frame (no magic1): legacy region, AVX init, MXCSR kept
    f = bytearray(frame)
    f[464:468] = bytes(4)
    struct.pack_into("<I", f, 24, 0x7F80)
    s2, ok = _restore(bytes(f[:512]))       # nothing after the legacy region is read
    assert ok and s2.mxcsr == 0x7F80 and all(st.get_ymm(s2, i) >> 128 == 0 for i in range(16))
    assert all(st.get_xmm(s2, i) == st.get_xmm(s, i) for i in range(16))
    # features without SSE: SSE init and the default MXCSR (the host's kernel)
    f = bytearray(frame)
    struct.pack_into("<Q", f, 472, 5)
    s2, ok = _restore(bytes(f))
    assert ok and s2.mxcsr == 0x1F80 and all(st.get_xmm(s2, i) == 0 for i in range(16))
    assert all(st.get_ymm(s2, i) >> 128 == st.get_ymm(s, i) >> 128 for i in range(16))
    # magic2 missing: the legacy region only
    f = bytearray(frame)
    f[832:836] = bytes(4)
    s2, ok = _restore(bytes(f))
    assert ok and all(st.get_ymm(s2, i) >> 128 == 0 for i in range(16))
    # faults: misaligned XSAVE area, misaligned fxsave image, bad header,
    # reserved MXCSR bits; nothing is loaded
    for addr, edit in ((0x10010, None), (0x10000, (520, 1)), (0x10000, (512 + 7, 0x40)),
                       (0x10000, (26, 1))):
        f = bytearray(frame)
        if edit:
            f[edit[0]] = edit[1]
        before = _state(seed=9)
        snapshot = _copy(before)
        _, ok = _restore(bytes(f), addr, into=before)
        assert not ok and _copy(before) == snapshot, (addr, edit)
    f = bytearray(frame)
    f[464:468] = bytes(4)
    assert not _restore(bytes(f), 0x10008)[1]
    assert _restore(bytes(f), 0x10010)[1]        # fxrstor needs 16 only


def test_handler_starts_with_the_init_state():
    s = _state()
    fpstate.reset_for_handler(s)
    assert (s.fpu_cw, s.fpu_sw, s.fpu_top, s.fpu_tag, s.mxcsr) == (0x037F, 0, 0, 0xFF, 0x1F80)
    assert all(st.get_ymm(s, i) == 0 for i in range(16)) and fpstate.xinuse(s) == 0
