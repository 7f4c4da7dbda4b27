"""A seeded ELF mutation fuzzer: bttool's loader refuses or runs exactly what
Linux's execve refuses or runs (issue 21, hostile executables).

Three valid programs (a -nostdlib static one, a static glibc hello and a
dynamically linked hello) are mutated with a fixed seed: ELF header fields,
program header fields (type, flags, offset, addresses, sizes, alignment)
set to boundary values (0, -1, 2^40, 2^47, 2^63, TASK_SIZE, unaligned, past
the end of the file, another segment's value: overlaps), program headers
swapped (unsorted) or copied over each other, PT_INTERP broken, truncations
and byte flips in the headers.

Every case goes through what ``bttool run`` does before the guest's first
instruction (load_image, load_interpreter, the mapping of the images and
the stack, as LinuxProcess does), in a forked child with a time limit, and
runs natively (the oracle).  Invariants: no Python exception other than
bttool's own errors, no warning, bounded time and memory, and the same
outcome class as Linux: both refuse (execve fails; ENOENT is bttool's 127,
any other error its 126), or Linux kills the program during the exec with
SIGSEGV and bttool does too (ExecFault), or both start it.  The one
admitted difference: an image whose segments lie further apart than
bttool's guest window holds (1 TiB, placed where the image is; Linux's
user space is 128 TiB) is refused with a message saying so.  The test checks that every
such refusal is one (``wide``).  A sample of cases then goes through the installed ``bttool run``
end to end.  The counts by outcome are printed (``pytest -s``).
"""
from __future__ import annotations

import collections
import errno
import json
import os
import random
import resource
import select
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from hypothesis_profiles import factor  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

SEED = 21_0432
# Cases per base image in the default run (1,100, issue 21 asks for at
# least 1,000 there; about 40 s); the deep profile
# (--hypothesis-profile=deep) runs ten times as many.
CASES_PER_BASE = {"tiny": 400, "static": 300, "dynamic": 220, "interp": 180}
CHILD_TIMEOUT = 10.0          # seconds for loading + mapping one case
NATIVE_TIMEOUT = 3.0
MAX_CHILD_RSS = 512 << 20     # bytes above the parent's own
E2E_SAMPLE = 30
LIMITATION = ("outside bttool's guest address space", "more than bttool's guest address space")

TASK_SIZE = 0x7FFF_FFFF_F000
U64 = (1 << 64) - 1

TINY_C = r"""
void _start(void) {
    static const char m[] = "tiny\n";
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(1), "D"(1), "S"(m), "d"(5) : "rcx", "r11", "memory");
    __asm__ volatile("syscall" : : "a"(60), "D"(0) : "rcx", "r11", "memory");
    for (;;) ;
}
"""


# --------------------------------------------------------------------------
# the base programs and their mutations

@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("elf-bases")
    (d / "tiny.c").write_text(TINY_C)
    hello = programs.SAMPLES_SRC / "hello.c"
    builds = {
        "tiny": ["gcc", "-O2", "-static", "-nostdlib", "-fno-pie", "-no-pie", "-o", "tiny", "tiny.c"],
        "static": ["gcc", "-O2", "-static", "-o", "static", str(hello)],
        "dynamic": ["gcc", "-O2", "-o", "dynamic", str(hello)],
    }
    out = {}
    for name, cmd in builds.items():
        subprocess.run(cmd, cwd=d, check=True, capture_output=True)
        out[name] = (d / name).read_bytes()
    # "interp": the dynamic program's ELF interpreter, mutated in its turn
    # (the program is pointed at the mutated copy, see interp_program)
    out["interp"] = Path(_interp_of(out["dynamic"])).read_bytes()
    return out


def _interp_of(data: bytes) -> str:
    for p in _phdrs(data):
        if p[0] == 3:
            return data[p[2]:p[2] + p[5]].split(b"\0")[0].decode()
    raise AssertionError("no PT_INTERP")


def interp_program(dynamic: bytes, interp_path: str) -> bytes:
    """The dynamic program with its PT_INTERP naming ``interp_path`` (NUL
    padded: Linux reads the name up to its first NUL)."""
    d = bytearray(dynamic)
    p = next(p for p in _phdrs(dynamic) if p[0] == 3)
    name = interp_path.encode() + b"\0"
    assert len(name) <= p[5], interp_path
    d[p[2]:p[2] + p[5]] = name + bytes(p[5] - len(name))
    return bytes(d)


def _phdrs(data: bytes) -> list[tuple[int, ...]]:
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phnum = struct.unpack_from("<H", data, 56)[0]
    if struct.unpack_from("<H", data, 54)[0] != 56 or phoff + 56 * phnum > len(data):
        return []
    return [struct.unpack_from("<IIQQQQQQ", data, phoff + 56 * i) for i in range(phnum)]


BOUNDARY = [0, 1, 0xFFF, 0x1000, 0x1001, 1 << 32, (1 << 40) - 0x1000, 1 << 40, 1 << 46,
            1 << 47, TASK_SIZE, 1 << 63, U64, U64 - 0xFFF]
PH_FIELDS = {"p_type": (0, "<I"), "p_flags": (4, "<I"), "p_offset": (8, "<Q"), "p_vaddr": (16, "<Q"),
             "p_filesz": (32, "<Q"), "p_memsz": (40, "<Q"), "p_align": (48, "<Q")}
EH_FIELDS = {"e_type": (16, "<H", [0, 1, 2, 3, 4, 0xFFFF]),
             "e_machine": (18, "<H", [0, 3, 62, 183, 0xFFFF]),
             "e_version": (20, "<I", [0, 2, 0xFFFFFFFF]),
             "e_entry": (24, "<Q", None), "e_phoff": (32, "<Q", None),
             "e_ehsize": (52, "<H", [0, 1, 0xFFFF]),
             "e_phentsize": (54, "<H", [0, 32, 55, 57, 64, 0xFFFF]),
             "e_phnum": (56, "<H", None)}


def _value(rng: random.Random, orig: int, data: bytes, others: list[int]) -> int:
    r = rng.random()
    if r < 0.45:
        return rng.choice(BOUNDARY)
    if r < 0.75:
        return (orig + rng.choice([1, -1, 0x10, 0x1000, -0x1000, 0x123, orig, 1 << 20])) & U64
    if r < 0.9:
        return (len(data) + rng.choice([-0x1000, -1, 0, 1, 0x1000])) & U64
    return rng.choice(others) if others else 0


def _mutate_phdr(rng: random.Random, d: bytearray) -> str:
    phs = _phdrs(bytes(d))
    loads = [i for i, p in enumerate(phs) if p[0] in (1, 3)]
    i = rng.choice(loads) if loads and rng.random() < 0.75 else rng.randrange(len(phs))
    name = rng.choice(list(PH_FIELDS))
    off, fmt = PH_FIELDS[name]
    pos = struct.unpack_from("<Q", d, 32)[0] + 56 * i + off
    orig = struct.unpack_from(fmt, d, pos)[0]
    if name == "p_type":
        v = rng.choice([0, 1, 2, 3, 4, 6, 7, 0x6474E550, 0x6474E551, 0x6474E553, 0x70000000, 0xFFFFFFFF])
    elif name == "p_flags":
        v = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 0xFFFFFFFF])
    else:
        idx = {"p_offset": 2, "p_vaddr": 3, "p_filesz": 5, "p_memsz": 6, "p_align": 7}[name]
        v = _value(rng, orig, bytes(d), [p[idx] for p in phs])
    mask = 0xFFFFFFFF if fmt == "<I" else U64
    struct.pack_into(fmt, d, pos, v & mask)
    return f"ph{i}.{name}={v & mask:#x}"


def _mutate_header(rng: random.Random, d: bytearray) -> str:
    name = rng.choice(list(EH_FIELDS))
    off, fmt, choices = EH_FIELDS[name]
    orig = struct.unpack_from(fmt, d, off)[0]
    if choices is not None:
        v = rng.choice(choices)
    elif name == "e_phnum":
        v = rng.choice([0, 1, orig - 1, orig + 1, 1170, 1171, 0xFFFF])
    else:
        v = _value(rng, orig, bytes(d), [])
    mask = {"<H": 0xFFFF, "<I": 0xFFFFFFFF, "<Q": U64}[fmt]
    struct.pack_into(fmt, d, off, v & mask)
    return f"{name}={v & mask:#x}"


def _mutate_structure(rng: random.Random, d: bytearray) -> tuple[bytearray, str]:
    phoff = struct.unpack_from("<Q", d, 32)[0]
    phs = _phdrs(bytes(d))
    n = len(phs)
    kind = rng.choice(["swap", "copy", "truncate", "flip", "ident", "interp"])
    if kind == "swap" and n > 1:
        i, j = rng.sample(range(n), 2)
        a, b = d[phoff + 56 * i:phoff + 56 * i + 56], d[phoff + 56 * j:phoff + 56 * j + 56]
        d[phoff + 56 * i:phoff + 56 * i + 56], d[phoff + 56 * j:phoff + 56 * j + 56] = b, a
        return d, f"swap ph{i} ph{j}"
    if kind == "copy" and n > 1:
        i, j = rng.sample(range(n), 2)
        d[phoff + 56 * j:phoff + 56 * j + 56] = d[phoff + 56 * i:phoff + 56 * i + 56]
        return d, f"ph{j}=ph{i}"
    if kind == "truncate":
        end = phoff + 56 * n
        cut = rng.choice([rng.randrange(0, 64), rng.randrange(64, end + 1), rng.randrange(end, len(d)),
                          rng.randrange(len(d) // 2, len(d))])
        return d[:cut], f"truncate {cut}"
    if kind == "flip":
        what = []
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(0, min(len(d), phoff + 56 * n + 64))
            bit = 1 << rng.randrange(8)
            d[pos] ^= bit
            what.append(f"{pos}^{bit:#x}")
        return d, "flip " + ",".join(what)
    if kind == "ident":
        pos = rng.randrange(4, 16)
        d[pos] = rng.choice([0, 1, 2, 3, 0xFF])
        return d, f"ident[{pos}]={d[pos]}"
    interp = [p for p in phs if p[0] == 3]
    if not interp:
        return d, "none"
    _t, _f, off, _v, _pa, filesz, _m, _a = interp[0]
    if not 8 <= filesz <= 4096 or off + filesz > len(d):
        return d, "none"
    i = next(k for k, p in enumerate(phs) if p[0] == 3)
    how = rng.choice(["no-nul", "size1", "size-big", "missing", "relative", "directory", "empty"])
    if how == "no-nul":
        d[off + filesz - 1] = ord("x")
    elif how == "size1":
        struct.pack_into("<Q", d, phoff + 56 * i + 32, 1)
    elif how == "size-big":
        struct.pack_into("<Q", d, phoff + 56 * i + 32, rng.choice([4096, 4097, 1 << 40]))
    elif how == "missing":
        d[off + 1] = ord("X")
    elif how == "relative":
        d[off:off + 2] = b"x\0"
    elif how == "directory":
        d[off:off + 5] = b"/tmp\0"
    else:
        d[off] = 0
    return d, f"interp {how}"


def make_cases() -> list[tuple[str, str, int]]:
    """(base, description, per-case seed); the bytes come from mutate()."""
    rng = random.Random(SEED)
    return [(base, f"{base}#{k}", rng.getrandbits(64))
            for base, n in CASES_PER_BASE.items() for k in range(round(n * factor()))]


def mutate(data: bytes, seed: int) -> tuple[bytes, str]:
    rng = random.Random(seed)
    d = bytearray(data)
    what = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if len(d) < 64 + 56:
            break
        ok = bool(_phdrs(bytes(d)))
        r = rng.random()
        if r < 0.55 and ok:
            what.append(_mutate_phdr(rng, d))
        elif r < 0.7:
            what.append(_mutate_header(rng, d))
        elif ok:
            d, w = _mutate_structure(rng, d)
            what.append(w)
    return bytes(d), "; ".join(what)


# --------------------------------------------------------------------------
# running a case: in process (forked) and natively

def _start_in_child(path: str) -> dict:
    """What bttool run does before the guest's first instruction
    (session.run_program, LinuxProcess.__init__), without a translator."""
    import warnings
    warnings.simplefilter("error")
    from bttool.errors import BttoolError, ExecFault
    from bttool.runtime.memory import GuestMemory
    from bttool.runtime.process import build_stack, image_span, map_image, program_window
    from bttool.runtime.session import load_interpreter
    from bttool.translator.loader import load_image
    try:
        image = load_image(path)
        interp = load_interpreter(image) if image.interpreter is not None else None
        mem = GuestMemory(program_window(image, interp))
        base, _end = map_image(mem, image)
        interp_base = 0
        if interp is not None:
            interp_base = mem.find_free(image_span(interp))
            map_image(mem, interp, interp_base)
        build_stack(mem, image, base, [path.encode()], [b"A=1"], path.encode(), bytes(16), interp_base)
        return {"kind": "start"}
    except ExecFault as e:
        return {"kind": "execfault", "msg": str(e)}
    except BttoolError as e:
        kind = "limitation" if any(m in str(e) for m in LIMITATION) else "refuse"
        return {"kind": kind, "status": e.status, "msg": str(e)}
    except BaseException:  # noqa: BLE001 - the invariant under test
        return {"kind": "bug", "msg": traceback.format_exc()}


def run_in_child(path: str) -> dict:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            out = json.dumps(_start_in_child(path)).encode()
            os.write(w, out)
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + CHILD_TIMEOUT
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return {"kind": "hang"}
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    if not buf:
        return {"kind": "bug", "msg": f"child ended with wait status {status:#x} and no answer"}
    res = json.loads(buf)
    res["maxrss"] = usage.ru_maxrss * 1024
    return res


def _native_setup() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setpgid(0, 0)


def run_native(path: str, cwd: str) -> dict:
    try:
        proc = subprocess.Popen([path], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                                preexec_fn=_native_setup)
    except OSError as e:
        return {"kind": "notfound" if e.errno == errno.ENOENT else "refuse",
                "errno": errno.errorcode.get(e.errno, str(e.errno))}
    try:
        out, _ = proc.communicate(timeout=NATIVE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"kind": "hang"}
    if proc.returncode < 0:
        return {"kind": "signal", "sig": -proc.returncode}
    return {"kind": "exit", "status": proc.returncode, "stdout": out.decode("latin-1")}


def wide(data: bytes) -> bool:
    """Whether ``data`` is an ELF image whose PT_LOAD segments span more than
    half of bttool's guest window (runtime/window.py: 1 TiB), at fixed
    addresses (ET_EXEC) or as one block placed anywhere (ET_DYN): the one
    kind of image bttool may refuse where Linux runs it."""
    if len(data) < 64 or struct.unpack_from("<H", data, 16)[0] not in (2, 3):
        return False
    loads = [(p[3], p[3] + p[6]) for p in _phdrs(data) if p[0] == 1]
    return bool(loads) and max(hi for _, hi in loads) - min(lo for lo, _ in loads) > (1 << 39)


def agree(bt: dict, nat: dict, is_wide: bool = False) -> bool:
    """Whether bttool's outcome (in process) is Linux's outcome class
    (``is_wide``: the image or its interpreter is ``wide``)."""
    k = bt["kind"]
    if k in ("bug", "hang"):
        return False
    if nat["kind"] == "notfound":
        return k == "refuse" and bt["status"] == 127
    if nat["kind"] == "refuse":
        return k == "refuse" and bt["status"] == 126
    if k == "execfault":
        return nat["kind"] == "signal" and nat["sig"] == signal.SIGSEGV
    if k == "limitation":
        return is_wide  # counted and reported, see the module docstring
    return k == "start"


def outcome_key(bt: dict, nat: dict) -> str:
    n = nat["kind"]
    if n == "signal":
        n = f"signal {signal.Signals(nat['sig']).name}"
    elif n == "exit":
        n = f"exit {nat['status']}"
    elif n in ("refuse", "notfound"):
        n = f"execve {nat['errno']}"
    b = bt["kind"] if bt["kind"] != "refuse" else f"refuse {bt['status']}"
    return f"bttool {b} / native {n}"


# --------------------------------------------------------------------------
# the tests

@pytest.fixture(scope="module")
def short_dir():
    """A directory with a name short enough for PT_INTERP (27 bytes)."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="bti", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def fuzz_results(bases, tmp_path_factory, short_dir) -> list[dict]:
    # imported here once, not in every forked child
    import bttool.runtime.process  # noqa: F401
    import bttool.runtime.session  # noqa: F401
    import bttool.translator.loader  # noqa: F401
    d = tmp_path_factory.mktemp("elf-fuzz")
    run_dir = d / "cwd"
    run_dir.mkdir()
    results = []
    for base, name, seed in make_cases():
        data, what = mutate(bases[base], seed)
        path = d / name.replace("#", "-")
        is_wide = wide(data)
        if base == "interp":
            interp = short_dir / name.split("#")[1]
            interp.write_bytes(data)
            interp.chmod(0o755)
            data = interp_program(bases["dynamic"], str(interp))
        path.write_bytes(data)
        path.chmod(0o755)
        bt = run_in_child(str(path))
        nat = run_native(str(path), str(run_dir))
        results.append({"name": name, "base": base, "what": what, "path": str(path), "bt": bt, "nat": nat,
                        "wide": is_wide})
    return results


def test_elf_mutations_in_process(fuzz_results):
    parent_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    counts = collections.Counter(outcome_key(r["bt"], r["nat"]) for r in fuzz_results)
    print(f"\nELF mutation fuzzer (seed {SEED}): {len(fuzz_results)} cases")
    for key, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n:5d}  {key}")
    bad = []
    for r in fuzz_results:
        bt, nat = r["bt"], r["nat"]
        if bt["kind"] in ("bug", "hang"):
            bad.append(f"{r['name']} [{r['what']}]: {bt['kind']}: {bt.get('msg', '')}")
        elif bt.get("maxrss", 0) > parent_rss + MAX_CHILD_RSS:
            bad.append(f"{r['name']} [{r['what']}]: {bt['maxrss'] >> 20} MiB resident")
        elif not agree(bt, nat, r["wide"]):
            bad.append(f"{r['name']} [{r['what']}]: bttool {bt} / native {nat}")
    assert len(fuzz_results) == len(make_cases()) >= 1000
    assert not bad, f"{len(bad)} of {len(fuzz_results)} cases break an invariant:\n" + "\n".join(bad[:40])


def _e2e_sample(results: list[dict]) -> list[dict]:
    """Up to E2E_SAMPLE cases spread over the outcome classes (fixed seed)."""
    rng = random.Random(SEED + 1)
    by_key: dict[str, list[dict]] = collections.defaultdict(list)
    for r in results:
        if r["nat"]["kind"] != "hang" and r["bt"]["kind"] not in ("bug", "hang"):
            by_key[outcome_key(r["bt"], r["nat"])].append(r)
    picked: list[dict] = []
    keys = sorted(by_key)
    while len(picked) < E2E_SAMPLE and any(by_key.values()):
        for k in keys:
            if by_key[k] and len(picked) < E2E_SAMPLE:
                picked.append(by_key[k].pop(rng.randrange(len(by_key[k]))))
    return picked


def test_elf_mutations_end_to_end(fuzz_results, bttool_cache, tmp_path):
    """A sample through the installed ``bttool run``: one line and 126/127
    where Linux refuses, killed by SIGSEGV where Linux kills it during the
    exec, and otherwise the native run's exit status (and output) or
    signal."""
    bad = []
    for r in _e2e_sample(fuzz_results):
        res = programs.run_bttool([r["path"]], bttool_cache, cwd=tmp_path, timeout=120,
                                  env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
        err = res.stderr.decode("utf-8", "replace")
        bt, nat = r["bt"], r["nat"]
        where = f"{r['name']} [{r['what']}] (in process {bt['kind']}, native {nat})"
        for word in ("Traceback", "internal error", "Warning"):
            if word in err:
                bad.append(f"{where}: {word!r} on stderr: {err[-800:]}")
        if bt["kind"] in ("refuse", "limitation"):
            lines = res.stderr.splitlines()
            if res.returncode != bt["status"] or len(lines) != 1 or not lines[0].startswith(b"bttool: error: "):
                bad.append(f"{where}: {programs.describe_status(res.returncode)}, stderr {err!r}")
        elif bt["kind"] == "execfault" or nat["kind"] == "signal":
            want = -signal.SIGSEGV if bt["kind"] == "execfault" else -nat["sig"]
            if res.returncode != want:
                bad.append(f"{where}: {programs.describe_status(res.returncode)}, stderr {err[-500:]!r}")
        elif nat["kind"] == "exit":
            if res.returncode != nat["status"] or res.stdout.decode("latin-1") != nat["stdout"]:
                bad.append(f"{where}: {programs.describe_status(res.returncode)}, "
                           f"stdout {res.stdout[:200]!r}, stderr {err[-500:]!r}")
    assert not bad, "\n".join(bad)
