"""The static programs in samples/, run natively and under ``bttool run``:
stdout, stderr and exit status (or fatal signal) must be identical."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)


def sample(samples_dir: Path, name: str) -> str:
    path = samples_dir / name
    assert path.is_file(), f"sample {name} was not built"
    return str(path)


# ---------------------------------------------------------------------------
# plain runs: no arguments, no input

# (name, bttool: lines allowed on stderr).  A guest fault must be reported by
# exactly one "bttool:" line; abort() is a signal the guest sends itself, so a
# report line is optional there.
PLAIN = [
    ("hello", 0),
    ("exit42", 0),
    ("jumps", 0),
    ("gotodispatch", 0),
    ("floats", 0),
    ("strings", 0),
    ("sortheavy", 0),
    ("children", 0),
    ("descriptors", 0),
    ("procself", 0),
    ("ipc", 0),
    ("sigdisp", 0),
    ("sighandlers", 0),
    ("rtsignals", 0),
    ("atomics", 0),
    ("jit", 0),
    ("mmsg", 0),
    ("segv", 1),
    ("divzero", 1),
    ("abort", (0, 1)),
]


@pytest.mark.parametrize("name,bttool_lines", PLAIN, ids=[p[0] for p in PLAIN])
def test_plain(samples_dir, bttool_cache, tmp_path, name, bttool_lines):
    native, _ = programs.compare_run(
        [sample(samples_dir, name)], bttool_cache, cwd=tmp_path, bttool_lines=bttool_lines
    )
    # guard against a broken oracle: the samples do what their names say
    expected_status = {"exit42": 42, "segv": -11, "divzero": -8, "abort": -6}.get(name, 0)
    assert native.returncode == expected_status, programs.describe_status(native.returncode)
    if name == "rtsignals":     # queued real-time signals: none lost natively
        assert b"9 signals" in native.stdout and b"60 of 60 delivered, in order" in native.stdout


def test_hello_status_and_text(samples_dir, bttool_cache, tmp_path):
    """The smallest possible check, with explicit expectations."""
    result = programs.run_bttool([sample(samples_dir, "hello")], bttool_cache, cwd=tmp_path)
    native = programs.run_native([sample(samples_dir, "hello")], cwd=tmp_path)
    assert native.stdout == b"Hello, world!\n"
    programs.assert_same(native, result)


# ---------------------------------------------------------------------------
# argv and environment

def test_exec_chain_passes_exactly_the_guest_environment(samples_dir, bttool_cache, tmp_path):
    """execchain execs itself four times, changing its environment (and
    passing one with LD_PRELOAD and PYTHONPATH), argv and descriptors, and
    prints them at every step: nothing of bttool's may show up.  The
    environment is the caller's, without LC_ALL, as a user's shell would
    have it: Python adds LC_CTYPE to its own environment then (PEP 538)."""
    env = {"PATH": "/usr/bin:/bin", "X": "1", "LANG": "C", "EMPTY": ""}
    programs.compare_run([sample(samples_dir, "execchain")], bttool_cache, cwd=tmp_path, env=env)


ARGV_CASES = {
    "no-args": [],
    "simple": ["one", "two", "three"],
    "empty-strings": ["", "middle", ""],
    "only-empty": [""],
    "spaces-and-quotes": ["a b", "  leading", "trailing  ", "'single'", '"double"', "back\\slash"],
    "unicode": ["h\u00e9llo", "\u65e5\u672c\u8a9e", "emoji \U0001f389", "\u00df\u00f8\u00e5"],
    "option-like": ["-v", "--help", "--cache-dir", "x", "--", "-", "--no-cache"],
    "newline-tab": ["line1\nline2", "tab\there"],
    "long": ["x" * 10000, "y" * 4096],
    "many": [str(i) for i in range(300)],
}


@pytest.mark.parametrize("args", ARGV_CASES.values(), ids=ARGV_CASES.keys())
def test_echo_args_argv(samples_dir, bttool_cache, tmp_path, args):
    programs.compare_run([sample(samples_dir, "echo_args"), *args], bttool_cache, cwd=tmp_path)


def _placements(cmd: list[str], runs: int) -> set[tuple[int, int]]:
    out = set()
    for _ in range(runs):
        r = programs.run_command(cmd)
        assert r.returncode == 0, r.stderr
        vec, gap = map(int, r.stdout.split())
        assert vec % 16 == 8       # argv is rsp + 8, rsp 16-aligned
        out.add((vec, gap))
    return out


def test_stack_start_is_randomised_as_linux_does(samples_dir, bttool_cache):
    """Linux starts the argument vectors a random 0-8 KiB below the
    argument strings (arch_align_stack); so does bttool, so that a guest's
    speed does not hang on the environment's size (bench recurse ran 1.13
    or 1.30 s by it alone).  Under ``setarch -R`` (ADDR_NO_RANDOMIZE) both
    place them the same every time."""
    randomised = Path("/proc/sys/kernel/randomize_va_space").read_text().strip() != "0"
    prog = sample(samples_dir, "stackplace")
    cmd = programs.bttool_command([prog], bttool_cache)
    # between argv and argv[0]'s string: at most the random offset, AT_RANDOM's
    # bytes and the platform string, the auxv (32 pairs at most), the argv
    # and envp vectors, and (bttool puts it below argv[0]) the exec's path
    bound = 8192 + 64 + 16 * 32 + 8 * (len(programs.guest_env()) + 4) + len(str(prog)) + 1
    seen = _placements(cmd, 5)
    assert all(gap < bound for _, gap in seen), (bound, seen)
    native = _placements([prog], 5)
    assert all(gap < bound for _, gap in native), (bound, native)
    if randomised:
        assert len(seen) > 1, seen
        assert len(native) > 1      # (as natively)
    if shutil.which("setarch"):
        assert len(_placements(["setarch", "-R", *cmd], 3)) == 1


ENV_CASES = {
    "none": {},
    "one": {"BTTOOL_SAMPLE_ONE": "1"},
    "several": {
        "BTTOOL_SAMPLE_A": "alpha",
        "BTTOOL_SAMPLE_EMPTY": "",
        "BTTOOL_SAMPLE_SPACES": "with spaces = and equals",
        "BTTOOL_SAMPLE_UNICODE": "\u00e9t\u00e9 \u2603",
        "BTTOOL_SAMPLE_Z": "z" * 3000,
    },
}


@pytest.mark.parametrize("extra", ENV_CASES.values(), ids=ENV_CASES.keys())
def test_echo_args_env(samples_dir, bttool_cache, tmp_path, extra):
    env = programs.guest_env(extra)
    native, _ = programs.compare_run(
        [sample(samples_dir, "echo_args"), "arg"], bttool_cache, cwd=tmp_path, env=env
    )
    assert f"matching env entries: {len(extra)}\n".encode() in native.stdout


def test_echo_args_relative_path(samples_dir, bttool_cache):
    """argv[0] is passed as given, also for a path relative to the cwd."""
    programs.compare_run(["./echo_args", "rel"], bttool_cache, cwd=samples_dir)


# ---------------------------------------------------------------------------
# file system


@pytest.mark.parametrize("how", ["cwd", "argv"])
def test_fileio(samples_dir, bttool_cache, tmp_path, how):
    native_dir, bttool_dir = tmp_path / "native", tmp_path / "bttool"
    for d in (native_dir, bttool_dir):
        (d / "area").mkdir(parents=True)
    if how == "cwd":
        argv, sub = [sample(samples_dir, "fileio")], "area"
    else:
        argv, sub = [sample(samples_dir, "fileio"), "area"], ""
    native, _ = programs.compare_run(
        argv, bttool_cache, cwd=native_dir / sub, bttool_cwd=bttool_dir / sub
    )
    assert native.returncode == 0 and b"failures: 0\n" in native.stdout
    # the sample cleans up after itself; both sides must be left equal
    programs.assert_same_tree(native_dir, bttool_dir)


# ---------------------------------------------------------------------------
# stdin passthrough


def _blob(n: int, seed: int = 1) -> bytes:
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out += (x >> 11).to_bytes(8, "little")
    return bytes(out[:n])


STDIN_CASES = {
    "devnull": None,
    "empty-pipe": b"",
    "one-line": b"hello through stdin\n",
    "no-newline": b"no newline at end",
    "text-64k": b"".join(b"line %06d of some text\n" % i for i in range(2800)),
    "binary-1m": _blob(1 << 20),
}


@pytest.mark.parametrize("data", STDIN_CASES.values(), ids=STDIN_CASES.keys())
def test_cat_stdin_pipe(samples_dir, bttool_cache, tmp_path, data):
    native, _ = programs.compare_run(
        [sample(samples_dir, "cat_stdin")], bttool_cache, cwd=tmp_path, stdin=data
    )
    assert native.stdout == (data or b"")


def test_cat_stdin_file(samples_dir, bttool_cache, tmp_path):
    """stdin redirected from a regular file rather than a pipe."""
    src = tmp_path / "input.bin"
    src.write_bytes(_blob(300_000, seed=7))
    native, _ = programs.compare_run(
        [sample(samples_dir, "cat_stdin")], bttool_cache, cwd=tmp_path, stdin=src
    )
    assert native.stdout == src.read_bytes()


# ---------------------------------------------------------------------------
# CLI options and the translation cache


def test_no_cache(samples_dir, tmp_path):
    """--no-cache runs the program the same way, without a cache directory."""
    argv = [sample(samples_dir, "hello")]
    native = programs.run_native(argv, cwd=tmp_path)
    translated = programs.run_bttool(argv, None, options=["--no-cache"], cwd=tmp_path)
    programs.assert_same(native, translated)


def test_cold_then_warm_cache(samples_dir, tmp_path):
    """A fresh cache directory, used twice: both runs behave like native."""
    cache = tmp_path / "cache"
    argv = [sample(samples_dir, "jumps")]
    native = programs.run_native(argv, cwd=tmp_path)
    cold = programs.run_bttool(argv, cache, cwd=tmp_path)
    programs.assert_same(native, cold, what="cold cache")
    warm = programs.run_bttool(argv, cache, cwd=tmp_path)
    programs.assert_same(native, warm, what="warm cache")


def test_verbose_keeps_guest_output(samples_dir, bttool_cache, tmp_path):
    """-v may add diagnostics on stderr, but the guest's stdout and status are
    unchanged."""
    argv = [sample(samples_dir, "exit42")]
    native = programs.run_native(argv, cwd=tmp_path)
    translated = programs.run_bttool(argv, bttool_cache, options=["-v"], cwd=tmp_path)
    assert translated.returncode == native.returncode, programs.describe_status(
        translated.returncode
    )
    assert translated.stdout == native.stdout
    assert b"Traceback" not in translated.stderr, translated.stderr.decode(errors="replace")


def test_samples_build_is_idempotent(samples_dir):
    """A second build.sh run rebuilds nothing (fast when up to date)."""
    before = {p.name: p.stat().st_mtime_ns for p in samples_dir.iterdir() if p.is_file()}
    proc = subprocess.run(
        ["bash", str(programs.BUILD_SCRIPT), str(samples_dir)], capture_output=True, check=True
    )
    after = {p.name: p.stat().st_mtime_ns for p in samples_dir.iterdir() if p.is_file()}
    assert before == after, proc.stdout
    assert b" 0 built" in proc.stdout, proc.stdout
    for src in programs.SAMPLES_SRC.glob("*.c"):
        assert programs.is_static_x86_64(samples_dir / src.stem), src.stem


def test_native_oracle_is_deterministic(samples_dir, tmp_path):
    """Two native runs of every sample agree with each other (otherwise the
    comparison with bttool would be meaningless)."""
    for name in ("floats", "strings", "sortheavy", "jumps", "mmx"):
        a = programs.run_native([sample(samples_dir, name)], cwd=tmp_path)
        b = programs.run_native([sample(samples_dir, name)], cwd=tmp_path)
        assert a == b, name



def test_mmx(samples_dir, bttool_cache, tmp_path):
    """MMX intrinsics compiled to real MMX code (samples/mmx.c), byte for byte
    as natively.  The native run's last line guards the oracle: an x87 load
    after an MMX write without emms overflows the stack (the indefinite
    value), which happens only where mm registers alias the x87 ones."""
    native, _ = programs.compare_run([sample(samples_dir, "mmx")], bttool_cache, cwd=tmp_path)
    assert native.returncode == 0
    assert native.stdout.endswith(b"fld1 without emms: ff ff c0 00 00 00 00 00 00 00\n")


def test_bit_manipulation(samples_dir, bttool_cache, tmp_path):
    """BMI1, BMI2 and ADX in a compiled program (samples/bitmanip.c: pdep
    and pext Morton codes, bextr, bzhi, shlx/sarx/rorx, and 512-bit products
    with mulx and the adcx/adox carry chains where CPUID reports ADX, plain
    adds where not), byte for byte as natively on x86-64-v3+adx, so the
    ADX path runs (v2 has no BMI: SIGILL, test_bmi_is_ud_on_v2; CPUID's ADX
    bit per model: test_avx_semantics); the native run's last line is
    3^300, which the test computes too."""
    model = "x86-64-v3+adx"
    import native as N
    lacking = sorted({"bmi1", "bmi2", "adx", "abm"} - N.host_flags()) if N.host_flags() else []
    if lacking:
        pytest.skip(f"the host CPU lacks {', '.join(lacking)}: no oracle here")
    native, _ = programs.compare_run([sample(samples_dir, "bitmanip")], bttool_cache, cwd=tmp_path,
                                     options=["--cpu", model])
    assert native.returncode == 0
    assert native.stdout.endswith(f"3^300 = {3 ** 300:#x}\n".encode())


def test_x86_64_v3_code(samples_dir, bttool_cache, tmp_path):
    """AVX2, FMA, F16C and BMI in a compiled program (samples/avx2.c:
    vectorised loops, libm, gathers, masked moves, lane permutes, and glibc's
    AVX2 string functions, which the x86-64-v3 model makes it choose), byte
    for byte as natively."""
    import native as N
    lacking = sorted({"avx2", "fma", "f16c", "bmi2"} - N.host_flags()) if N.host_flags() else []
    if lacking:
        pytest.skip(f"the host CPU lacks {', '.join(lacking)}: no oracle here")
    native, _ = programs.compare_run([sample(samples_dir, "avx2")], bttool_cache, cwd=tmp_path,
                                     options=["--cpu", "x86-64-v3"])
    assert native.returncode == 0 and b"gather -1 44 92 -7 20 8 -4 182" in native.stdout


def test_random_numbers(samples_dir, bttool_cache, tmp_path):
    """rdrand and rdseed in a program (samples/random.c): advertised by
    CPUID, CF=1 with the other flags clear, 16-bit destinations keep their
    upper bits and 32-bit ones are zero-extended, 64 draws all differ;
    byte for byte as natively."""
    import native as N
    lacking = sorted({"rdrand", "rdseed"} - N.host_flags()) if N.host_flags() else []
    if lacking:
        pytest.skip(f"the host CPU lacks {', '.join(lacking)}: no oracle here")
    native, _ = programs.compare_run([sample(samples_dir, "random")], bttool_cache, cwd=tmp_path)
    assert native.returncode == 0
    assert native.stdout.startswith(b"cpuid.1:ecx.rdrand 1\ncpuid.7:ebx.rdseed 1\n")
    assert native.stdout.endswith(b"64 draws of 64 bits: all different\n")


def test_cxx_exceptions(samples_dir, bttool_cache, tmp_path):
    """A static g++ program (samples/cxx_exceptions.cc): exceptions through
    50 frames (libgcc's unwinder runs rdsspq, a hint-space NOP), RTTI,
    iostreams, std::regex, algorithms; byte for byte as natively (issue 23)."""
    native, _ = programs.compare_run(
        [sample(samples_dir, "cxx_exceptions")], bttool_cache, cwd=tmp_path
    )
    assert native.returncode == 0
    assert b"depth=50 destroyed=1275" in native.stdout and native.stdout.endswith(b"done: final\n")


def test_signals_ignored_by_the_starter_stay_ignored(samples_dir, bttool_cache, tmp_path):
    """Started as nohup starts a program (SIGHUP and SIGINT ignored), the
    guest finds them ignored, before and after its own execve, as natively:
    bttool passes on what it inherited, not what Python set up for itself."""
    import signal

    def starter():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    prog = sample(samples_dir, "sigdisp")
    outs = []
    for argv in ([prog], programs.bttool_argv("run", "--cache-dir", bttool_cache, prog)):
        r = subprocess.run(argv, capture_output=True, cwd=tmp_path, env=programs.guest_env(),
                           preexec_fn=starter, timeout=600)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        outs.append(r.stdout.decode())
    assert outs[0].startswith("at start: ignored 1 2;"), outs[0]
    assert outs[1] == outs[0]


def test_nohup_under_bttool(samples_dir, bttool_cache, tmp_path):
    """Debian's nohup (run translated) ignores SIGHUP and execs the sample:
    the exec keeps it ignored."""
    if not Path("/usr/bin/nohup").exists():
        pytest.skip("coreutils' nohup is not installed")
    native, _ = programs.compare_run(["/usr/bin/nohup", sample(samples_dir, "sigdisp")], bttool_cache,
                                     cwd=tmp_path)
    assert b"at start: ignored 1;" in native.stdout
