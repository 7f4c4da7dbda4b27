"""Runtime behaviour: the sandbox, the CLI's statistics and the translation
cache, checked on real runs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bttool.runtime.window import DISP_GUARD, GUEST_LIMIT, MAP_LIMIT
from bttool.runtime.snippet import CODE_ADDR, DATA_ADDR, run_snippet
import programs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _mov_load(addr: int) -> bytes:
    # movabs rax, addr ; mov rbx, [rax]
    return b"\x48\xb8" + addr.to_bytes(8, "little") + b"\x48\x8b\x18"


@pytest.mark.parametrize("addr", [0, 0x1000, GUEST_LIMIT - 8, GUEST_LIMIT, GUEST_LIMIT + 0x1000,
                                  1 << 47, (1 << 63) | DATA_ADDR, 0xFFFFFFFFFFFFFFF8,
                                  # guest address + host base offset: still not host memory
                                  DATA_ADDR + (1 << 44)])
def test_forged_addresses_fault_inside_the_sandbox(addr):
    """Loads from unmapped or out-of-window guest addresses raise a guest
    SIGSEGV; none of them reaches host memory (bttool would report a sandbox
    violation, or crash)."""
    r = run_snippet(_mov_load(addr))
    assert r.host_signal == 11
    assert r.fault == 0


def test_mapped_guest_memory_is_reachable():
    data = bytes(range(256)) * 4
    r = run_snippet(_mov_load(DATA_ADDR + 8), data=data)
    assert r.host_signal == 0
    assert r.regs["rbx"] == int.from_bytes(data[8:16], "little")


def _load_disp(reg: int, disp: int, data: bytes = b""):
    """mov rbx, [rax + disp32] with rax = reg, unknown at translation time."""
    return run_snippet(b"\x48\x8b\x98" + disp.to_bytes(4, "little", signed=True),
                       regs={"rax": reg}, data=data)


M64 = (1 << 64) - 1


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


@pytest.mark.parametrize("reg,disp", [
    (DATA_ADDR, -0x3FFF0000), (DATA_ADDR, -0x80000000),      # wraps below 0
    (DATA_ADDR, 0x3FFF0000), (DATA_ADDR, 0x7FFFFFF0),        # a mapped register, unmapped address
    (GUEST_LIMIT + 0x1000, -0x3FFF0000), (GUEST_LIMIT + 0x1000, -0x7FFFFFF0),
    (GUEST_LIMIT - 0x1000, 0x3FFF0000), (GUEST_LIMIT - 0x1000, 0x7FFFFFF0),
    (MAP_LIMIT, 0), (MAP_LIMIT - 8, 16),                     # the never-mapped top of the window
    ((-4 * DISP_GUARD) & M64, 0x3FFF0000),                   # a very negative register
    ((-DISP_GUARD) & M64, 0x3FFF0000),
    (0xFFFFFFFFFFFFFFF0, 0x7FFFFFF0),
])
def test_forged_register_plus_displacement_faults(reg, disp):
    """The register part of an address is clamped before the displacement is
    added (ir/memory.py): every combination outside guest memory still
    faults inside the reservation, and reports the address the CPU would
    compute whenever the clamped part was in the clamp range
    ([-GUEST_LIMIT, 2*GUEST_LIMIT])."""
    r = _load_disp(reg, disp)
    assert r.host_signal == 11
    clamped = reg if abs(disp) < DISP_GUARD - 4096 else (reg + disp) & M64
    if -GUEST_LIMIT <= _signed(clamped) <= 2 * GUEST_LIMIT:
        assert r.fault_addr == (reg + disp) & M64


@pytest.mark.parametrize("reg,disp", [
    (DATA_ADDR + 0x100, -0x100),               # base above, displacement back into the data
    ((DATA_ADDR - 0x3FFFF000) & M64, 0x3FFFF000),   # negative register, absolute displacement
    ((DATA_ADDR - 0x7FFFF000) & M64, 0x7FFFF000),
    ((-8) & M64, DATA_ADDR + 8),               # table[-1] with the table address as disp
])
def test_register_plus_displacement_reaches_guest_memory(reg, disp):
    """Address arithmetic wraps mod 2**64 as on the CPU, also when the
    register alone is "negative" (a negative index into an absolute table)."""
    data = bytes(range(256))
    r = _load_disp(reg, disp, data)
    assert r.host_signal == 0
    off = ((reg + disp) & M64) - DATA_ADDR
    assert r.regs["rbx"] == int.from_bytes(data[off:off + 8], "little")


def _rip_load(target: int, pic: bool):
    """mov rbx, [rip + disp32] reaching guest address ``target`` from the
    snippet's first instruction."""
    disp = _signed((target - (CODE_ADDR + 7)) & M64)
    return run_snippet(b"\x48\x8b\x1d" + disp.to_bytes(4, "little", signed=True),
                       data=bytes(range(256)), pic=pic)


@pytest.mark.parametrize("pic", [False, True], ids=["absolute", "pic"])
@pytest.mark.parametrize("target,exact", [
    ((CODE_ADDR - DISP_GUARD + 0x2000) & M64, True),   # below the window, within the guard
    (CODE_ADDR + 0x7FFFFFF0, True),                    # above the data, unmapped
    ((CODE_ADDR - 0x7FFFFFF0) & M64, False),           # further below than the guard
])
def test_rip_relative_addresses_outside_guest_memory_fault(target, exact, pic):
    """Position-independent code adds a rip-relative displacement of up to
    the guard to the rip it was entered with, unclamped (ir/memory.py
    host_pointer ``mapped``); a larger one is clamped as any address.
    Either way the access stays in the reservation and faults, at the
    address the CPU computes where nothing was clamped."""
    r = _rip_load(target, pic)
    assert r.host_signal == 11
    if exact:
        assert r.fault_addr == target


@pytest.mark.parametrize("pic", [False, True], ids=["absolute", "pic"])
def test_rip_relative_data_is_read(pic):
    r = _rip_load(DATA_ADDR + 8, pic)
    assert r.host_signal == 0
    assert r.regs["rbx"] == int.from_bytes(bytes(range(8, 16)), "little")


def test_rip_relative_accesses_of_pic_code_are_not_clamped():
    """The other half of the rule above: in position-independent code a
    rip-relative access within the guard is one add to the entry rip, no
    compare and select, so PIC code costs what absolute code does (the
    dynamic builds of bench/); a register-based access keeps its clamp."""
    from llvmlite import ir
    from bttool.runtime.window import user_options
    from bttool.translator.blocks import discover_region
    from bttool.translator.decoder import Decoder
    from bttool.translator.lifter import lift_region
    # mov rbx, [rip + 0x100]; mov rcx, [rip + 0x2000]; mov rdx, [rax]; ud2
    code = b"\x48\x8b\x1d\x00\x01\x00\x00\x48\x8b\x0d\x00\x20\x00\x00\x48\x8b\x10\x0f\x0b"
    region = discover_region(Decoder(64), lambda a, n: code[a - 0x1000:a - 0x1000 + n], 0x1000)

    def selects(pic_base) -> int:
        module = ir.Module()
        lift_region(region, user_options(pic_base), module, "f")
        return str(module).count(" select ")
    assert selects(0x1000) == 1            # [rax] only
    assert selects(None) == 1              # absolute: constants, clamped when lifted


def test_absolute_addresses_are_clamped_when_lifted():
    """An absolute address ([disp32], absolute code's [rip + d]) is
    clamped at translation time, as the run-time clamp would: one inside
    the window stays exact, a forged one far outside lands at the clamp's
    ceiling, in the guard."""
    import re
    from llvmlite import ir
    from bttool.runtime.window import user_options
    from bttool.translator.blocks import discover_region
    from bttool.translator.decoder import Decoder
    from bttool.translator.lifter import lift_region
    # mov rbx, [0x2000]; movabs rax, [0x8000000000000000]; ud2
    code = b"\x48\x8b\x1c\x25\x00\x20\x00\x00\x48\xa1" + bytes(7) + b"\x80\x0f\x0b"
    region = discover_region(Decoder(64), lambda a, n: code[a - 0x1000:a - 0x1000 + n], 0x1000)
    options = user_options(None)
    module = ir.Module()
    lift_region(region, options, module, "f")
    text = str(module)
    offsets = [int(x) for x in re.findall(r'getelementptr i8, ptr %"mem", i64 (\d+)', text)]
    clamp = options.clamp
    assert offsets == [0x2000 + clamp.bias, clamp.ceiling], text
    assert " select " not in text


def _lifted_with_a_foreign_unit(code: dict[int, bytes], **discover):
    """The region at 0x1000 over ``code`` (address -> bytes), lifted for a
    unit at 0x1000 with a foreign unit at [0x5000, 0x6000) whose base is
    0x4000 (tier 2 taking in another file's code): (region, IR text)."""
    from llvmlite import ir
    from bttool.runtime.window import user_options
    from bttool.translator.blocks import discover_region
    from bttool.translator.decoder import Decoder
    from bttool.translator.guestcode import Span
    from bttool.translator.lifter import lift_region

    def read(a, n):
        for start, data in code.items():
            if start <= a < start + len(data):
                return data[a - start:a - start + n]
        return b""
    region = discover_region(Decoder(64), read, 0x1000, **discover)
    module = ir.Module()
    lift_region(region, user_options(0x1000), module, "f", foreign=[Span(0x5000, 0x6000, 0x4000, "ab" * 32)])
    return region, str(module)


def test_foreign_code_addresses_its_own_files_data_from_its_base():
    """A tier-2 region may hold code of another file (libc's malloc reached
    through the program's PLT stub).  That code's rip-relative data lies
    past the span of code taken in (libc's .data), and is addressed from
    the foreign file's base in the run, which the runtime writes, never
    the guest: so unclamped, as the entry rip is (ir/memory.py
    host_pointer ``mapped``).  It was addressed from the program's base,
    which is wrong as soon as the files lie at another distance (an
    LD_PRELOAD; tests/test_dynamic.py has the run)."""
    import re
    # own unit at 0x1000: jmp 0x5000 (into the foreign file's code, whose
    # base is 0x4000); there: mov rbx, [rip + 0x2000] (0x7007); ud2
    region, text = _lifted_with_a_foreign_unit({0x1000: b"\xe9\xfb\x3f\x00\x00",
                                                0x5000: b"\x48\x8b\x1d\x00\x20\x00\x00\x0f\x0b"})
    assert 0x5000 in region.blocks
    cell = re.search(r"(%\S+) = load i64, i64\* @\"f\.base\.", text).group(1)
    assert f"add i64 {cell}, {0x7007 - 0x4000}" in text
    assert " select " not in text


def test_returns_into_foreign_code_switch_on_the_offset_from_its_base():
    """A PLT region that took in libc's malloc returns to many sites in
    libc: one switch on the target's offset from libc's base in the run,
    as for the region's own code (a jump table when dense), not one
    compare with each site's address in turn (14 compares per return
    from malloc in recurse-dyn)."""
    import re
    # own unit at 0x1000: jmp 0x5000; foreign (base 0x4000): three calls
    # to a leaf at 0x5100 (ret), then ud2
    call = lambda at: b"\xe8" + (0x5100 - at - 5).to_bytes(4, "little", signed=True)
    region, text = _lifted_with_a_foreign_unit(
        {0x1000: b"\xe9\xfb\x3f\x00\x00", 0x5000: call(0x5000) + call(0x5005) + call(0x500a) + b"\x0f\x0b",
         0x5100: b"\xc3"}, follow_calls=True)
    assert {0x5000, 0x5005, 0x500a, 0x500f, 0x5100} <= set(region.blocks)
    switches = re.findall(r"switch i64 [^\]]*\]", text)
    assert len(switches) == 1
    assert sorted(map(int, re.findall(r"i64 (\d+), label", switches[0]))) == [0x1005, 0x100a, 0x100f]


L = GUEST_LIMIT


def _load_base_index(base: int, index: int, disp: int = 0, data: bytes = b""):
    """mov rbx, [rax + rcx + disp32] with rax = base, rcx = index."""
    return run_snippet(b"\x48\x8b\x9c\x08" + disp.to_bytes(4, "little", signed=True),
                       regs={"rax": base & M64, "rcx": index & M64}, data=data)


@pytest.mark.parametrize("base,index,disp", [
    (DATA_ADDR, 8, 0), (8, DATA_ADDR, 0),                  # the pointer in either register
    (-8, DATA_ADDR + 16, 0),                               # a negative base (table[-1] forms)
    (DATA_ADDR + L, -L + 0x10, -8),                        # parts far apart, summing into the data
    (-L, L + DATA_ADDR, 0),
    (DATA_ADDR - 0x100000, 0x100000 - 0x3FFFF000, 0x3FFFF000),
])
def test_base_and_index_inside_the_clamp_range_are_exact(base, index, disp):
    """Base and index are clamped apart (ir/memory.py), each into
    [-L, 2L]: within that range any split of an address reads what the
    CPU reads."""
    data = bytes(range(256))
    r = _load_base_index(base, index, disp, data)
    assert r.host_signal == 0, r
    off = ((base + index + disp) & M64) - DATA_ADDR
    assert r.regs["rbx"] == int.from_bytes(data[off:off + 8], "little")


@pytest.mark.parametrize("base,index,disp,exact", [
    (DATA_ADDR, 2 * L + 8, 0, False),              # an index out of range
    (2 * L + 8, DATA_ADDR, 0, False),              # a base out of range
    (-L - 8, -L, -0x3FFFF000, False),
    (1 << 63, 1 << 63, 0, False),                  # both forged; they wrap to 0
    (1 << 50, DATA_ADDR - (1 << 50), 0, False),    # far out, summing into guest memory
    (-L, -L, -0x3FFFF000, True),                   # the lowest and highest reachable
    (2 * L, 2 * L, 0x3FFFF000, True),
    (MAP_LIMIT - 0x1000, 0x1000, 0, True),         # the window's never-mapped top
])
def test_forged_base_and_index_fault(base, index, disp, exact):
    """Every combination of forged parts stays in the reservation and
    faults: a part outside the clamp range becomes 2L, which no other part
    and displacement bring back below MAP_LIMIT.  The address reported is
    the CPU's when both parts were in range.  The one difference from the
    CPU is the case of parts far outside the window that sum into it: they
    fault here (no compiler makes such addresses)."""
    r = _load_base_index(base, index, disp)
    assert r.host_signal == 11, r
    if exact:
        assert r.fault_addr == (base + index + disp) & M64


def test_window_does_not_alias_high_addresses():
    """A high address whose low 40 bits equal a mapped guest address must not
    alias that mapping (no masking of addresses)."""
    r = run_snippet(_mov_load((1 << 40) | DATA_ADDR), data=b"\x11" * 64)
    assert r.host_signal == 11


def _bttool(*args, env=None, **kw):
    return subprocess.run(programs.bttool_argv(*args), capture_output=True,
                          env={**programs.guest_env(), **(env or {})}, cwd=programs.work_dir(), timeout=600, **kw)


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    out = tmp_path_factory.mktemp("bin")
    src = out / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void){puts("hi there");return 3;}\n')
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out / "hello"), str(src)], check=True)
    return out / "hello"


def test_stats_json_and_warm_cache(hello, tmp_path):
    cache = tmp_path / "cache"
    native = subprocess.run([str(hello)], capture_output=True)
    first = _bttool("run", "--cache-dir", str(cache), "--stats-json", str(tmp_path / "a.json"), str(hello))
    assert (first.returncode, first.stdout) == (native.returncode, native.stdout)
    a = json.loads((tmp_path / "a.json").read_text())
    for key in ("regions_translated", "regions_from_cache", "guest_instructions_translated",
                "translate_seconds", "wall_seconds"):
        assert key in a
    assert a["regions_translated"] > 0 and a["guest_instructions_translated"] > 0
    second = _bttool("run", "--cache-dir", str(cache), "--stats-json", str(tmp_path / "b.json"), str(hello))
    assert (second.returncode, second.stdout) == (native.returncode, native.stdout)
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["regions_translated"] == 0
    # every region the warm run needs came from the cache; the cold run may
    # have translated a few more (a callee or return site it translated
    # along with a region, see translator/translate.py, that never ran:
    # the return site after a call to exit)
    assert 0.9 * a["regions_translated"] <= b["regions_from_cache"] <= a["regions_translated"]


def test_profile_of_bttool_itself(hello, tmp_path):
    """BTTOOL_PROFILE=FILE: a cProfile of the run (written although the
    run ends with os._exit), naming the translator's work and the native
    call that runs guest code; the guest behaves as without it."""
    import pstats
    prof = tmp_path / "run.prof"
    native = subprocess.run([str(hello)], capture_output=True)
    r = _bttool("run", "--cache-dir", str(tmp_path / "cache"), str(hello),
                env={"BTTOOL_PROFILE": str(prof)})
    assert (r.returncode, r.stdout, r.stderr) == (native.returncode, native.stdout, b"")
    names = {fn for (_file, _line, fn) in pstats.Stats(str(prof)).stats}
    assert {"run_program", "run_once", "ensure"} <= names
    bad = _bttool("run", "--cache-dir", str(tmp_path / "cache"), str(hello),
                  env={"BTTOOL_PROFILE": str(tmp_path / "no" / "such" / "dir" / "p")})
    assert bad.returncode == native.returncode and bad.stdout == native.stdout
    assert bad.stderr.decode().startswith("bttool: warning: cannot write the profile"), bad.stderr


def test_read_only_cache_dir_still_runs(hello, tmp_path):
    if os.geteuid() == 0:
        # root ignores directory permissions; use a path below a regular file
        cache = tmp_path / "file"
        cache.write_text("x")
        cache = cache / "sub"
    else:
        cache = tmp_path / "ro"
        cache.mkdir()
        cache.chmod(0o500)
    native = subprocess.run([str(hello)], capture_output=True)
    r = _bttool("run", "--cache-dir", str(cache), str(hello))
    assert (r.returncode, r.stdout) == (native.returncode, native.stdout)
    assert r.stderr.count(b"warning") == 1


def test_no_cache_writes_nothing(hello, tmp_path):
    cache = tmp_path / "cache"
    r = _bttool("run", "--no-cache", "--cache-dir", str(cache), str(hello))
    assert r.returncode == subprocess.run([str(hello)]).returncode
    assert not cache.exists()


# The callees call on (g), so no tier-2 region takes them in (only small
# leaf functions join one: translator/blocks.py _small_leaf); LEAF=1 makes
# them leaves.
_CALLS_IN_LOOP = r"""
#include <stdio.h>
#ifdef LEAF
#define F(name, body) static __attribute__((noinline)) long name(long x) { return body; }
#else
static __attribute__((noinline)) long g(long x) { return x & 1; }
#define F(name, body) static __attribute__((noinline)) long name(long x) { return body + g(x); }
#endif
F(f1, x * 3 + 1) F(f2, x ^ (x >> 7)) F(f3, x + 12345) F(f4, x * 7 - 5)
int main(void) {
    long s = 0;
    for (long i = 0; i < 3000000; i++) {
        s += f1(i);
        s ^= f2(s);
        s += f3(i ^ s);
        s -= f4(s >> 3);
    }
    printf("%ld\n", s);
    return 0;
}
"""


def _static_program(tmp_path, name: str, source: str, *cflags: str) -> Path:
    """``source`` (C) built with gcc -O2 -static into ``tmp_path/name``."""
    src, exe = tmp_path / f"{name}.c", tmp_path / name
    src.write_text(source)
    subprocess.run(["gcc", "-O2", "-static", *cflags, "-o", str(exe), str(src)], check=True)
    return exe


def _tier2_regions_in_main(tmp_path, *cflags: str) -> list[dict]:
    """Build _CALLS_IN_LOOP with ``cflags``, run it under bttool (output as
    natively) and return the tier-2 regions it left in its cache that start
    in main.  `bttool cache ls --json` lists each region made with its
    target (``|O2|`` for tier 2), entry and instruction count."""
    exe = _static_program(tmp_path, "calls", _CALLS_IN_LOOP, *cflags)
    native = subprocess.run([str(exe)], capture_output=True)
    cache = tmp_path / "cache"
    # (tier 2 compiles in the background, as in any run: a compilation
    # ending while the loop runs on in tier 1 must not let a return site
    # of the loop go hot, runtime/dispatcher.py _hurry_to)
    run = _bttool("run", "--cache-dir", str(cache), str(exe), text=True)
    assert (run.returncode, run.stdout) == (native.returncode, native.stdout.decode())
    nm = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    syms = {line.split()[2]: int(line.split()[0], 16) for line in nm.splitlines()
            if len(line.split()) == 3}
    main_lo, main_hi = syms["main"], min(a for a in syms.values() if a > syms["main"])
    ls = _bttool("cache", "--cache-dir", str(cache), "ls", "--json", text=True)
    assert ls.returncode == 0, ls.stderr
    tier2 = [r for r in json.loads(ls.stdout) if "|O2|" in r["target"]]
    return [r for r in tier2 if main_lo <= r["entry"] < main_hi]


def test_return_sites_in_a_hot_loop_do_not_copy_the_loop(tmp_path):
    """Tier 2: the loop in main gets one region; each call's return site
    (re-entered through the lookup table) gets a region only up to the next
    call, not another copy of the whole loop (the output stays native).
    A performance property (copies of the loop would run correctly, only
    compiled at O2 several times over), read from the run's cache."""
    in_main = _tier2_regions_in_main(tmp_path)
    sizes = [r["insn_count"] for r in in_main]
    assert len(sizes) >= 4, in_main           # the loop, and the return sites made hot
    assert sum(sizes) < 2 * max(sizes), sizes


def test_small_leaf_callees_run_inside_the_loops_region(tmp_path):
    """The same loop calling four small leaf functions: tier 2 takes them
    into the loop's region, so no return site is re-entered through the
    lookup table often enough to get a tier-2 region of its own, and the
    output stays native."""
    in_main = _tier2_regions_in_main(tmp_path, "-DLEAF")
    assert len(in_main) == 1, in_main


_MANY_RETURN_SITES = r"""
#include <stdio.h>
#define LEAF(name, body) static __attribute__((noipa)) long name(long x) { return body; }
LEAF(f1, x * 3 + 1) LEAF(f2, x ^ (x >> 7)) LEAF(f3, x + 12345)
int main(void) {
    long s = 0;
    for (long i = 0; i < 2000000; i++) {      /* 12 calls, 128 bytes of nops apart */
#define P __asm__ volatile(".nops 128");
        s += f1(i); P s ^= f2(s); P s += f3(i ^ s); P s -= f1(s >> 3); P
        s ^= f2(i + 7); P s += f3(s & 1023); P s -= f1(i * 5); P s ^= f2(s >> 11); P
        s += f3(i >> 2); P s -= f1(s ^ i); P s ^= f2(s + i); P s += f3(s >> 5);
    }
    printf("%ld\n", s);
    return 0;
}
"""


def test_many_return_sites_switch_through_a_small_table(tmp_path):
    """A loop whose region takes in its small leaf callees: every ret
    becomes a switch over the loop's twelve return sites (emitter
    switch_leave), spread over some 1,500 bytes: one indirect jump through
    a table of block addresses indexed by a hash of the return address,
    with two to four slots per site (not one per byte of the span they
    cover: SQLite's regions held tables of 2,967 entries per ret).  The
    output is the native one."""
    exe = _static_program(tmp_path, "rets", _MANY_RETURN_SITES)
    native = subprocess.run([str(exe)], capture_output=True)
    cache = tmp_path / "cache"
    run = _bttool("run", "--cache-dir", str(cache), str(exe), text=True,
                  env={"BTTOOL_BACKGROUND_COMPILE": "0"})
    assert (run.returncode, run.stdout) == (native.returncode, native.stdout.decode())
    ls = _bttool("cache", "--cache-dir", str(cache), "ls", "--json", text=True)
    assert ls.returncode == 0, ls.stderr
    sizes = []
    for r in json.loads(ls.stdout):
        if "|O2|" not in r["target"]:
            continue
        ir_text = _bttool("cache", "--cache-dir", str(cache), "show", r["key"], "--section", "ir",
                          text=True).stdout
        sizes += [int(n) for n in re.findall(r"\.sw(?:\.\d+)?\" = private constant \[(\d+) x ptr\]",
                                             ir_text)]
    assert sizes, "no switch table in any tier-2 region"
    assert max(sizes) <= 4 * 12, sizes



# A hot loop that leaves through an indirect jump right after an `add` that
# sets every flag, to one of four targets: two read CF first (their units
# need the flags), two overwrite all six first (units whose flags mark lets
# the jump leave the flags unwritten).
_FLAGS_ACROSS_CHAINS = r"""
#include <stdio.h>
#include <stdint.h>
uint64_t mix(uint64_t n);
__asm__(".intel_syntax noprefix\n"
        ".text\n"
        "mix: push rbx; xor ebx, ebx; xor ecx, ecx\n"
        "1: mov rax, rcx; movabs rdx, 0x9E3779B97F4A7C15; imul rax, rdx\n"
        "   mov rdx, rax; shr rdx, 62; lea r8, [rip + mix_targets]; mov r8, [r8 + rdx*8]\n"
        "   add rax, rax\n"
        "   jmp r8\n"
        "mix_t0: cmovc rbx, rcx; add rbx, 1; jmp 2f\n"
        "mix_t1: setc dl; movzx edx, dl; lea rbx, [rbx + rdx*4]; jmp 2f\n"
        "mix_t2: cmp rax, rcx; sbb rbx, 0; jmp 2f\n"
        "mix_t3: test eax, eax; setz dl; movzx edx, dl; add rbx, rdx; jmp 2f\n"
        "2: inc rcx; cmp rcx, rdi; jb 1b\n"
        "   mov rax, rbx; pop rbx; ret\n"
        ".section .rodata\n"
        "mix_targets: .quad mix_t0, mix_t1, mix_t2, mix_t3\n"
        ".text\n"
        ".att_syntax\n");
int main(void) { printf("%llu\n", (unsigned long long)mix(400000)); return 0; }
"""


def test_flags_reach_the_unit_that_needs_them_across_a_chain(tmp_path):
    """Tier-2 exits leave the flags they changed unwritten when the unit
    they chain to overwrites them first (ir/unitabi.py, the flags mark),
    and write them when it reads them: a hot indirect jump after `add` to
    targets of both kinds computes what it does natively."""
    exe = _static_program(tmp_path, "flagchain", _FLAGS_ACROSS_CHAINS)
    native = subprocess.run([str(exe)], capture_output=True)
    cache = tmp_path / "cache"
    for _ in range(2):          # cold, then warm from the cache
        run = _bttool("run", "--cache-dir", str(cache), str(exe), text=True,
                      env={"BTTOOL_BACKGROUND_COMPILE": "0"})
        assert (run.returncode, run.stdout) == (native.returncode, native.stdout.decode())

_FORK_THEN_EXEC_HOT = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static __attribute__((noipa)) long spin(long n) {
    long s = 0;
    for (long i = 0; i < n; i++) s = (s ^ (i * 2654435761u)) >> 1 ^ i;
    return s;
}
static __attribute__((noipa)) long spin2(long n) {
    long s = 1;
    for (long i = 0; i < n; i++) s = s * 31 + (i ^ (s >> 9));
    return s;
}
int main(int argc, char **argv) {
    if (argc > 1) {                 /* after the exec: new hot code */
        printf("child %ld\n", spin2(20000000));
        return 7;
    }
    long s = spin(20000000);        /* hot: a tier-2 job, and so a compile-server client */
    printf("parent %ld\n", s);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        execl(argv[0], argv[0], "child", (char *)0);
        _exit(99);
    }
    int st;
    waitpid(p, &st, 0);
    printf("child status %d\n", WEXITSTATUS(st));
    return 0;
}
"""


def test_exec_in_place_after_fork_hands_the_compile_client_over(tmp_path):
    """A forked child (whose compile-server connection fork closed) execs
    in place and runs new hot code: the client, handed to the new guest,
    starts a server of its own and reports that through the new guest's
    log (BackgroundCompiler.adopt; through the old, retired guest's it
    ended the run with an internal error).  Output and status native, with
    and without -v."""
    exe = _static_program(tmp_path, "forkexec", _FORK_THEN_EXEC_HOT)
    native = subprocess.run([str(exe)], capture_output=True, text=True)
    assert native.stdout.endswith("child status 7\n"), native.stdout
    for flags in ([], ["-v"]):
        run = _bttool("run", *flags, "--cache-dir", str(tmp_path / f"cache{len(flags)}"),
                      str(exe), text=True)
        assert (run.returncode, run.stdout) == (native.returncode, native.stdout), run.stderr
        assert "internal error" not in run.stderr
        if flags:
            assert run.stderr.count("compile server started") >= 2, run.stderr


def test_entry_block_call_brings_callee_and_return_site_into_the_module():
    """A region whose entry block ends with a call is translated together
    with the callee and the return site (one module, one object), unless
    they are known already; other regions come alone."""
    sys.path.insert(0, str(REPO / "tests"))
    import native as N
    from bttool.ir import codegen
    from bttool.runtime.window import user_options
    from bttool.translator.translate import translate
    code, = N.assemble(["mov eax, 1; call 1f; add eax, 2; ret; 1: add eax, 4; ret"])
    base = 0x1000
    read = lambda a, n: code[a - base:a - base + n] if 0 <= a - base < len(code) else b""
    callee = base + code.index(bytes.fromhex("83c004"))
    ret_site = base + 5 + 5
    opts, target = user_options(hot_counters=True), codegen.host_target(1)
    t = translate([base], read, opts, target, with_entry_call=True)
    assert [r.entry for r in t.regions] == [base, callee, ret_site]
    t = translate([base], read, opts, target, with_entry_call=True, known=lambda p: p == callee)
    assert [r.entry for r in t.regions] == [base, ret_site]
    assert [r.entry for r in translate([callee], read, opts, target, with_entry_call=True).regions] == [callee]
    assert [r.entry for r in translate([base], read, opts, target).regions] == [base]


def _colliding_calls(count: int, iterations: int) -> tuple[bytes, list[str]]:
    """Guest code that calls ``count`` functions in a loop, placed where
    their entries fall in one lookup-table set (ir/tables.py) shared with
    no other entry of the code; each function adds 1 to its own register."""
    from bttool.ir.tables import table_set
    from bttool.runtime.snippet import CODE_ADDR
    regs = ["eax", "ebx", "edx"][:count]
    adds = {"eax": b"\x83\xc0\x01", "ebx": b"\x83\xc3\x01", "edx": b"\x83\xc2\x01"}
    loop = 5
    after = [loop + 5 * (i + 1) for i in range(count)]          # return sites
    tail = loop + 5 * count                                     # dec ecx; jnz loop; jmp end
    main_entries = {CODE_ADDR, CODE_ADDR + loop, CODE_ADDR + tail + 4, *(CODE_ADDR + a for a in after)}
    taken = {table_set(pc) for pc in main_entries}
    by_set: dict[int, list[int]] = {}
    for off in range(0x100, 0xF000):
        by_set.setdefault(table_set(CODE_ADDR + off), []).append(off)

    def apart(offs: list[int]) -> bool:             # room for each 4-byte function
        return all(b - a >= 8 for a, b in zip(offs, offs[1:]))
    offs = next(o[:count] for s, o in sorted(by_set.items())
                if len(o) >= count and s not in taken and apart(o[:count]))
    end = max(offs) + 4 + 16                                    # past the last function
    code = bytearray(b"\xcc" * end)
    code[0:5] = b"\xb9" + iterations.to_bytes(4, "little")      # mov ecx, iterations
    for i, off in enumerate(offs):                              # call f_i
        at = loop + 5 * i
        code[at:at + 5] = b"\xe8" + (off - (at + 5)).to_bytes(4, "little", signed=True)
        code[off:off + 4] = adds[regs[i]] + b"\xc3"             # add reg, 1; ret
    code[tail:tail + 4] = b"\xff\xc9\x75" + (loop - (tail + 4)).to_bytes(1, "little", signed=True)
    code[tail + 4:tail + 9] = b"\xe9" + (end - (tail + 9)).to_bytes(4, "little", signed=True)
    return bytes(code), regs


def test_two_hot_targets_in_one_lookup_set_both_stay_installed():
    """Two call targets whose entries hash to the same set of the native
    lookup table both stay in it (two ways): 1000 iterations finish within
    200 returns to Python, where a direct-mapped table missed twice per
    iteration."""
    code, regs = _colliding_calls(2, 1000)
    r = run_snippet(code, regs={"rax": 0, "rbx": 0}, max_exits=200)
    assert (r.regs["rax"], r.regs["rbx"], r.regs["rcx"]) == (1000, 1000, 0)


def test_three_targets_in_one_lookup_set_still_run_correctly():
    """A third target in a full set ages the older entry out (installs at
    every miss); the code still computes what it should."""
    code, regs = _colliding_calls(3, 300)
    r = run_snippet(code, regs={"rax": 0, "rbx": 0, "rdx": 0}, max_exits=5000)
    assert (r.regs["rax"], r.regs["rbx"], r.regs["rdx"], r.regs["rcx"]) == (300, 300, 300, 0)


def test_code_ranges_find_the_translations_an_unmap_touches():
    """runtime/coderanges.py against a plain scan of every entry, over
    ranges that straddle chunk edges, one-byte and empty queries, a query
    wider than the index (the chunk loop turns into a key scan) and
    entries replaced and dropped."""
    import random
    from bttool.runtime.coderanges import CHUNK_BITS, CodeRanges
    rng = random.Random(7)
    chunk = 1 << CHUNK_BITS
    code, plain = CodeRanges(), {}
    for pc in range(0x400000, 0x400000 + 40 * chunk, chunk // 3):
        ranges = [(s, s + rng.randrange(1, 3 * chunk)) for s in (pc, pc + rng.randrange(0, 5 * chunk))]
        code[pc] = plain[pc] = ranges
    for pc in list(plain)[::4]:
        code[pc] = plain[pc] = [(pc + 5, pc + 9)]
    for pc in list(plain)[1::5]:
        assert code.pop(pc) == plain.pop(pc)
    queries = [(0x400000 + rng.randrange(0, 45 * chunk), rng.choice([1, 8, chunk, 7 * chunk])) for _ in range(300)]
    queries += [(0, 1 << 47), (0x400000 + chunk - 1, 2), (0x400000, 0)]
    for addr, length in queries:
        end = addr + length
        want = {pc for pc, ranges in plain.items()
                if addr <= pc < end or any(s < end and addr < e for s, e in ranges)}
        assert set(code.touching(addr, end)) == want, (hex(addr), length)
    assert len(code) == len(plain) and all(pc in code for pc in plain)
    code.clear()
    assert code.touching(0, 1 << 47) == []
