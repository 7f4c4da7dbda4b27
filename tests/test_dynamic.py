"""Dynamically linked programs: Debian's own binaries, unchanged, started
through their ELF interpreter (the guest's ld.so maps libc.so.6 and friends
with file-backed mmap, all translated), compared byte for byte with native
runs.  A dynamically linked build of a sample is compared too."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import programs
from programs import bttool_cache  # noqa: F401  (fixture)


def _have(*paths: str) -> bool:
    return all(os.path.exists(p) for p in paths)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A small fixed tree with fixed times, for ls, find, grep, tar."""
    root = tmp_path_factory.mktemp("tree")
    for i, name in enumerate(["alpha.txt", "beta.txt", "sub/gamma.txt", "sub/deeper/delta.log"]):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"line {j} of {name}: {j * 7919 % 97}\n" for j in range(20 + i * 5)))
        os.utime(p, (1_000_000_000 + i, 1_000_000_000 + i))
    for d in [root / "sub" / "deeper", root / "sub", root]:
        os.utime(d, (1_000_000_000, 1_000_000_000))
    return root


NUMBERS = "".join(f"{(i * 7919) % 1009}\n" for i in range(300)).encode()

# (id, argv, stdin); programs not installed on the host are skipped by the test
CASES = [
    ("true", ["/bin/true"], None),
    ("echo", ["/bin/echo", "dynamic", "programs", "run"], None),
    ("ls", ["/bin/ls", "-la", "--time-style=+%s", "{tree}", "{tree}/sub"], None),
    ("sort-n", ["/usr/bin/sort", "-n"], NUMBERS),
    ("sha256sum", ["/usr/bin/sha256sum"], NUMBERS),
    ("grep-rn", ["/bin/grep", "-rn", "of beta\\|delta", "{tree}"], None),
    ("sed-E", ["/bin/sed", "-E", "s/line ([0-9]+)/<\\1>/; 3q", "{tree}/alpha.txt"], None),
    ("awk", ["/usr/bin/awk", "{ s += $1 } END { print NR, s }"], NUMBERS),
    ("date", ["/bin/date", "-u", "-d", "@0"], None),
    ("sh-pipeline", ["/bin/sh", "-c", "/bin/cat {tree}/beta.txt | /usr/bin/sort -r | /usr/bin/head -n 3; "
                     "echo status $?"], None),
    ("perl", ["/usr/bin/perl", "-e", "my %h = map { $_ => length } qw(a bb ccc); "
              "print join(',', map { \"$_=$h{$_}\" } sort keys %h), \"\\n\"; "
              "print \"ok\\n\" if 'abc123' =~ /^([a-z]+)(\\d+)$/ && $2 == 123;"], None),
    ("missing-file", ["/bin/cat", "/nonexistent/file"], None),
    ("bash", ["/bin/bash", "-c", "for i in 3 1 2; do echo $i; done | /usr/bin/sort -r; "
              "x=$(( 6 * 7 )); echo ${x}; [[ abc == a* ]] && echo glob"], None),
    ("tar-gzip-xz", ["/bin/sh", "-c", "cd {tree} && /bin/tar czf - sub | /bin/tar tzvf - "
                     "--numeric-owner | /usr/bin/sort; /bin/gzip -9 -c alpha.txt | /bin/gzip -d "
                     "| /usr/bin/md5sum; /usr/bin/xz -c beta.txt | /usr/bin/xz -d | /usr/bin/md5sum"],
     None),
    ("find-xargs", ["/bin/sh", "-c", "/usr/bin/find {tree} -name '*.txt' | /usr/bin/sort "
                    "| /usr/bin/xargs /usr/bin/wc -l"], None),
]


def _case(c):
    """A CASES row as a pytest parameter (id, argv, stdin), keeping its marks."""
    if not hasattr(c, "marks"):
        return pytest.param(c[1], c[2], id=c[0])
    (name, argv, stdin), marks = c.values, c.marks
    return pytest.param(argv, stdin, id=name, marks=marks)


@pytest.mark.parametrize("argv,stdin", [_case(c) for c in CASES])
def test_debian_dynamic_program(tree, bttool_cache, argv, stdin):
    if not _have(argv[0]):
        pytest.skip(f"{argv[0]} is not installed")
    assert programs.elf_info(os.path.realpath(argv[0]))["interp"], f"{argv[0]} is not dynamically linked"
    argv = [a.replace("{tree}", str(tree)) for a in argv]
    programs.compare_run(argv, bttool_cache, stdin=stdin)


@pytest.mark.parametrize("name", ["floats", "procself"])
def test_dynamically_linked_sample(tmp_path, bttool_cache, name):
    """Programs of ours linked against the host's libc.so.6 and libm
    (procself: /proc/self/maps names the program, libc and ld.so with
    their devices, inodes and offsets, as Linux does)."""
    src = programs.SAMPLES_SRC / f"{name}.c"
    exe = tmp_path / f"{name}-dynamic"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src), "-lm"], check=True, capture_output=True)
    assert programs.elf_info(exe)["interp"]
    programs.compare_run([exe], bttool_cache)


DLOPEN_C = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *m = dlopen("libm.so.6", RTLD_NOW);
    if (!m) { printf("dlopen: %s\n", dlerror()); return 1; }
    double (*c)(double) = (double (*)(double))dlsym(m, "cos");
    double (*p)(double, double) = (double (*)(double, double))dlsym(m, "pow");
    printf("cos(0)=%a pow(2,10)=%a\n", c(0.0), p(2.0, 10.0));
    void *bad = dlopen("libdoes-not-exist.so.7", RTLD_NOW);
    printf("missing library: %s\n", bad ? "loaded?!" : "NULL");
    printf("dlclose=%d\n", dlclose(m));
    return 0;
}
"""


def test_dlopen_and_dlsym_at_run_time(tmp_path, bttool_cache):
    """Libraries loaded by the program itself (what python3's extension
    modules and perl's XS modules do), and a dlopen that fails."""
    src, exe = tmp_path / "dl.c", tmp_path / "dl"
    src.write_text(DLOPEN_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src), "-ldl"], check=True, capture_output=True)
    native, _ = programs.compare_run([exe], bttool_cache)
    assert native.stdout.startswith(b"cos(0)=0x1p+0 pow(2,10)=0x1p+10\n"), native.stdout


@pytest.mark.skipif(not shutil.which("python3") or not _have("/usr/bin/python3"),
                    reason="Debian's python3 is not installed")
@pytest.mark.slow
def test_debian_python3_script(tmp_path, bttool_cache):
    """CPython with extension modules loaded by dlopen (slow cold: ~100 s;
    test_dlopen_and_dlsym_at_run_time covers the same path in the default run)."""
    script = ("import json, re, hashlib, zlib, sqlite3, subprocess\n"
              "print(json.dumps({'a': [1, 2]}), re.sub('a+', 'b', 'caaat'),\n"
              "      hashlib.sha256(b'x').hexdigest()[:16], zlib.crc32(b'abc'))\n"
              "db = sqlite3.connect(':memory:')\n"
              "db.execute('create table t (k integer, v text)')\n"
              "db.executemany('insert into t values (?, ?)', [(i, str(i * i)) for i in range(50)])\n"
              "print(db.execute('select count(*), sum(k), max(v) from t').fetchone())\n"
              "r = subprocess.run(['/bin/echo', 'from', 'a child'], capture_output=True, text=True)\n"
              "print(r.returncode, r.stdout.strip())\n")
    programs.compare_run(["/usr/bin/python3", "-c", script], bttool_cache)


def _stats_run(argv, cache, tmp_path, env=None) -> dict:
    out = tmp_path / f"stats-{os.urandom(4).hex()}.json"
    r = programs.run_bttool(argv, cache, options=["--stats-json", str(out)], env=env)
    n = programs.run_native(argv, env=env)
    programs.assert_same(n, r)
    import json
    return json.loads(out.read_text())["images"]


def _by_name(images: dict, name: str) -> dict:
    found = [v for k, v in images.items() if os.path.basename(k).startswith(name)]
    assert len(found) == 1, (name, images)
    return found[0]


@pytest.mark.skipif(not _have("/bin/ls", "/usr/bin/sort"), reason="coreutils not installed")
def test_libraries_are_translated_once_for_every_program(tmp_path, tree):
    """Translations of ld.so and libc.so.6 are keyed by the file's content
    and the code's offset in it: what `ls` translated is served to `sort`,
    and served again when the library lands at another address (an
    LD_PRELOAD'ed library is mapped first and moves libc)."""
    cache = tmp_path / "cache"
    ls = _stats_run(["/bin/ls", "-la", str(tree)], cache, tmp_path)
    assert _by_name(ls, "libc.so")["regions_translated"] > 100
    sort = _stats_run(["/usr/bin/sort", "-n"], cache, tmp_path)
    assert _by_name(sort, "ld-linux")["regions_translated"] == 0, sort
    assert _by_name(sort, "ld-linux")["regions_from_cache"] > 100, sort
    assert _by_name(sort, "libc.so")["regions_from_cache"] > 100, sort
    moved = _stats_run(["/bin/ls", "-la", str(tree)], cache, tmp_path,
                       env=programs.guest_env({"LD_PRELOAD": "libm.so.6"}))
    libc = _by_name(moved, "libc.so")
    assert libc["regions_from_cache"] > 100, moved
    # (ld.so runs a little libc code for LD_PRELOAD that plain ls never ran)
    assert libc["regions_translated"] <= libc["regions_from_cache"] // 20, moved


def _ld_so_list(program: str) -> set[str]:
    """The libraries ld.so itself resolves for ``program`` (ld.so --list)."""
    out = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--list", program], capture_output=True,
                         text=True, check=True).stdout
    return {os.path.realpath(line.split("=>")[1].split("(")[0].strip())
            for line in out.splitlines() if "=>" in line and "/" in line.split("=>")[1]}


@pytest.mark.parametrize("program", ["/bin/ls", "/usr/bin/perl", "/bin/grep"])
def test_dependencies_are_resolved_as_ld_so_resolves_them(program):
    """`bttool translate --deps` finds what the program's ld.so loads."""
    if not _have(program):
        pytest.skip(f"{program} is not installed")
    from bttool.runtime.libdeps import resolve
    deps = resolve(program, env={})
    assert deps.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert not deps.missing
    assert set(deps.libraries) == _ld_so_list(program)


def test_an_interpreter_translated_ahead_of_time_serves_every_program(tmp_path):
    """`bttool translate` takes a shared object (here ld.so itself); a run
    then finds its code in the cache."""
    cache = tmp_path / "cache"
    r = subprocess.run(programs.bttool_argv("translate", "--cache-dir", cache, "--json",
                                            "/lib64/ld-linux-x86-64.so.2"),
                       capture_output=True, env=programs.guest_env(), cwd=programs.work_dir(),
                       timeout=600)
    assert r.returncode == 0, r.stderr
    import json
    assert json.loads(r.stdout)["regions_translated"] > 1000
    images = _stats_run(["/bin/echo", "hi"], cache, tmp_path)
    ld = _by_name(images, "ld-linux")
    assert ld["regions_from_cache"] > 100 and ld["regions_translated"] < ld["regions_from_cache"] / 10, ld


HOT_PLT_C = r"""
#include <stdio.h>
#include <string.h>
#ifndef SCALE
#define SCALE 1
#endif
static char a[64], b[64];
/* ends in a tail jump through the PLT into libc: tier 2 follows the jump
   to the PLT stub and the stub's jmp *GOT into libc */
__attribute__((noinline)) void *copy(void *d, const void *s, size_t n) { return memcpy(d, s, n); }
int main(void) {
    unsigned long sum = 0;
    for (int i = 0; i < 300000; i++) {
        a[i & 63] = (char)(i * SCALE);
        copy(b, a, 16 + (i & 31));
        sum += (unsigned char)b[i & 15];
    }
    printf("%lu\n", sum);
    return 0;
}
"""


def test_hot_code_calling_into_a_library_is_served_warm(tmp_path):
    """A hot loop in the program calling libc through its PLT: the tier-2
    region takes libc's memcpy in as code of another file (keyed by that
    file, placed at its base in each run), so the cache can serve it; the
    third run translates nothing (the second may still translate a little,
    see README "Translation, tiers and the cache")."""
    src, exe = tmp_path / "hot.c", tmp_path / "hot"
    src.write_text(HOT_PLT_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True, capture_output=True)
    cache = tmp_path / "cache"
    import json
    runs = []
    for i in range(3):
        out = tmp_path / f"s{i}.json"
        r = programs.run_bttool([exe], cache, options=["--stats-json", str(out)])
        programs.assert_same(programs.run_native([exe]), r)
        runs.append(json.loads(out.read_text()))
    assert runs[0]["regions_translated"] > 0
    assert runs[2]["regions_translated"] == 0, runs[2]


def test_programs_with_identical_code_keep_their_own_translations(tmp_path):
    """Every PIE has the same PLT stubs and start-up code, often at the
    same offsets.  Two programs that share that code, run in turn, are each
    served their own translations: neither takes over the other's and then
    misses (regions of position-independent code are keyed by their file
    too, LiftOptions.unit_image).  Each program's hot loop reaches libc
    through the shared PLT stub, so the tier-2 regions are the same code."""
    src = tmp_path / "hot.c"
    src.write_text(HOT_PLT_C)
    exes = []
    for scale in (1, 3):
        exe = tmp_path / f"hot{scale}"
        subprocess.run(["gcc", "-O2", f"-DSCALE={scale}", "-o", str(exe), str(src)], check=True,
                       capture_output=True)
        exes.append(exe)
    cache = tmp_path / "cache"
    import json

    def run(exe, i) -> dict:
        out = tmp_path / f"s{i}.json"
        r = programs.run_bttool([exe], cache, options=["--stats-json", str(out)])
        programs.assert_same(programs.run_native([exe]), r)
        return json.loads(out.read_text())

    for i, exe in enumerate(exes * 3):
        stats = run(exe, i)
    again = [run(exe, 10 + i) for i, exe in enumerate(exes)]
    for exe, stats in zip(exes, again):
        assert stats["regions_translated"] == 0, (exe.name, stats)
        assert _by_name(stats["images"], exe.name)["regions_from_cache"] > 5, stats


HOT_MALLOC_C = r"""
#include <stdio.h>
#include <stdlib.h>
/* a hot loop calling malloc and free through the PLT: the tier-2 region
   at the PLT stub holds libc's code, which reads libc's own data (the
   tcache, its flags) rip-relative */
static unsigned char *ring[8];
int main(void) {
    unsigned long sum = 0;
    for (int i = 0; i < 200000; i++) {
        free(ring[i & 7]);
        ring[i & 7] = malloc(24 + (i & 63));
        ring[i & 7][0] = (unsigned char)i;
        sum += ring[(i + 3) & 7] ? ring[(i + 3) & 7][0] : 1;
    }
    printf("%lu\n", sum);
    return 0;
}
"""


def test_library_code_in_a_program_region_finds_its_data_when_the_library_moves(tmp_path):
    """A region of the program that holds libc's code (malloc reached
    through the PLT) addresses libc's data from libc's base in the run,
    not from the program's: an LD_PRELOAD that places libc elsewhere
    relative to the program leaves the warm run correct (it crashed,
    reading libc's data at the old distance from the program)."""
    import json
    src, exe, pre = tmp_path / "hm.c", tmp_path / "hm", tmp_path / "libpre.so"
    src.write_text(HOT_MALLOC_C)
    (tmp_path / "pre.c").write_text("int bt_preloaded[40000] = {1};\n")
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True, capture_output=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(pre), str(tmp_path / "pre.c")],
                   check=True, capture_output=True)
    cache = tmp_path / "cache"
    native = programs.run_native([exe])
    for _ in range(3):
        programs.assert_same(native, programs.run_bttool([exe], cache))
    env = programs.guest_env({"LD_PRELOAD": str(pre)})
    out = tmp_path / "s.json"
    r = programs.run_bttool([exe], cache, env=env, options=["--stats-json", str(out)])
    programs.assert_same(programs.run_native([exe], env=env), r)
    libc = next(p for p in _ld_so_list(str(exe)) if "libc.so" in os.path.basename(p))
    ls = subprocess.run(programs.bttool_argv("cache", "--cache-dir", cache, "ls", "--image",
                                             str(exe), "--json"),
                        capture_output=True, text=True, check=True)
    import hashlib
    libc_sha = hashlib.sha256(Path(libc).read_bytes()).hexdigest()
    assert any(r["foreign_images"] == [libc_sha] for r in json.loads(ls.stdout)), \
        "no region of the program holds libc's code"
    assert _by_name(json.loads(out.read_text())["images"], exe.name)["regions_from_cache"] > 0


CALLBACK_C = r"""
#include <stdio.h>
#include <stdlib.h>
static const int weight[16] = {5, 3, 9, 1, 7, 2, 8, 6, 4, 0, 15, 11, 13, 10, 12, 14};
static long calls;
/* called by libc's qsort; reads the program's data rip-relative, so code
   placed at a wrong base computes a wrong order or count */
static int by_weight(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    calls++;
    if (weight[x & 15] != weight[y & 15]) return weight[x & 15] - weight[y & 15];
    return (x > y) - (x < y);
}
static int descending(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    calls += 1000;
    return (x < y) - (x > y);
}
int main(void) {
    enum { N = 20000 };
    static unsigned v[N];
    unsigned s = 12345;
    unsigned long sum = 0;
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < N; i++) { s = s * 1103515245u + 12345u; v[i] = s >> 8; }
        /* the same call site in qsort reaches another function now and then */
        qsort(v, N, sizeof v[0], round % 3 == 2 ? descending : by_weight);
        for (int i = 0; i < N; i += 97) sum = sum * 31 + v[i];
    }
    printf("%lu %ld\n", sum, calls);
    return 0;
}
"""


def test_library_code_calling_back_into_the_program(tmp_path):
    """libc's qsort calling the program's comparison function: the hot
    tier-2 region in libc.so.6 takes the function in (a span of the
    program's file, `cache ls --json` lists it under ``foreign_images``),
    and a warm run with the program at another base places that code at
    the new base; a call that reaches another function leaves the region
    as before.  Every run prints what the native run prints."""
    import hashlib
    import json
    src, exe = tmp_path / "cb.c", tmp_path / "cb"
    src.write_text(CALLBACK_C)
    subprocess.run(["gcc", "-O2", "-fpie", "-pie", "-o", str(exe), str(src)], check=True,
                   capture_output=True)
    cache = tmp_path / "cache"
    native = programs.run_native([exe])
    for pie_base in (None, None, "0x7a0000000000"):
        env = programs.guest_env({"BTTOOL_PIE_BASE": pie_base} if pie_base else None)
        programs.assert_same(native, programs.run_bttool([exe], cache, env=env))
    libc = next(p for p in _ld_so_list(str(exe)) if "libc.so" in os.path.basename(p))
    ls = subprocess.run(programs.bttool_argv("cache", "--cache-dir", cache, "ls", "--image", libc,
                                             "--json"), capture_output=True, text=True, check=True)
    program_sha = hashlib.sha256(exe.read_bytes()).hexdigest()
    holding = [r for r in json.loads(ls.stdout) if r["foreign_images"] == [program_sha]]
    assert holding, "no region of libc.so.6 holds the program's comparison function"


ET_EXEC_INTERP_S = r"""
.globl _start
_start:
  mov $1, %edi
  lea msg(%rip), %rsi
  mov $22, %edx
  mov $1, %eax
  syscall
  mov $7, %edi
  mov $60, %eax
  syscall
msg: .ascii "the interpreter ran.\n\n"
"""


@pytest.mark.parametrize("pie", [True, False], ids=["pie-program", "program-at-its-interpreter"])
def test_interpreter_of_type_et_exec(tmp_path, bttool_cache, pie):
    """Linux runs an ET_EXEC interpreter at its own addresses (AT_BASE 0),
    even over a non-PIE program's pages; bttool used to refuse it."""
    interp, prog = tmp_path / "interp-exec", tmp_path / "uses-interp-exec"
    (tmp_path / "interp.S").write_text(ET_EXEC_INTERP_S)
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-nostdlib", "-static", "-no-pie", "-o", str(interp), str(tmp_path / "interp.S")],
                   check=True, capture_output=True)
    subprocess.run(["gcc", "-O2", "-pie" if pie else "-no-pie", "-o", str(prog), str(tmp_path / "main.c"),
                    f"-Wl,--dynamic-linker={interp}"], check=True, capture_output=True)
    native, _ = programs.compare_run([prog], bttool_cache)
    assert native.returncode == 7 and native.stdout.startswith(b"the interpreter ran.")


SYSROOT_LIB_C = "int bt_value(void) { return 42; }\n"
SYSROOT_PROG_C = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int bt_value(void);
int main(int argc, char **argv) {
    char line[64] = "missing";
    FILE *f = fopen("/etc/btsys-test.conf", "r");
    if (f) { fgets(line, sizeof line, f); line[strcspn(line, "\n")] = 0; fclose(f); }
    printf("%s value %d conf %s\n", argc > 1 ? argv[1] : "first", bt_value(), line);
    fflush(stdout);
    if (argc == 1) {
        execl("/opt/btsys/again", "again", "exec'd", (char *)0);
        perror("execl");
        return 1;
    }
    return 0;
}
"""


def test_sysroot_holds_the_interpreter_libraries_files_and_programs(tmp_path):
    """--sysroot DIR (and BTTOOL_SYSROOT), as qemu-user's -L: a program
    whose interpreter (/opt/btsys/ld.so), library (rpath /usr/lib/btsys),
    data file and exec'd program exist only under DIR runs as it would in
    that root, and the exec'd bttool keeps the sysroot; without it the
    interpreter is missing (status 127, as a shell reports it)."""
    root = tmp_path / "root"
    (root / "usr/lib/btsys").mkdir(parents=True)
    (root / "opt/btsys").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/btsys-test.conf").write_text("hello-from-sysroot\n")
    shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"), root / "opt/btsys/ld.so")
    lib_src, prog_src = tmp_path / "lib.c", tmp_path / "prog.c"
    lib_src.write_text(SYSROOT_LIB_C)
    prog_src.write_text(SYSROOT_PROG_C)
    libdir = root / "usr/lib/btsys"
    subprocess.run(["gcc", "-O2", "-shared", "-fpic", "-o", str(libdir / "libbtsys.so"), str(lib_src)],
                   check=True, capture_output=True)
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(prog_src), f"-L{libdir}", "-lbtsys",
                    "-Wl,-rpath,/usr/lib/btsys", "-Wl,--dynamic-linker=/opt/btsys/ld.so"],
                   check=True, capture_output=True)
    shutil.copy(exe, root / "opt/btsys/again")
    assert not os.path.exists("/opt/btsys/ld.so") and not os.path.exists("/usr/lib/btsys")
    cache = tmp_path / "cache"
    plain = programs.run_bttool([exe], cache)
    assert plain.returncode == 127 and b"/opt/btsys/ld.so" in plain.stderr, plain
    # the host's own ld.so, told where the library is, gives the library's part natively
    hosted = subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--library-path", str(libdir), str(exe),
                             "exec'd"], capture_output=True, text=True, check=True)
    assert hosted.stdout == "exec'd value 42 conf missing\n"
    expected = b"first value 42 conf hello-from-sysroot\nexec'd value 42 conf hello-from-sysroot\n"
    by_option = programs.run_bttool([exe], cache, options=["--sysroot", str(root)])
    assert (by_option.returncode, by_option.stdout) == (0, expected), by_option
    by_env = programs.run_bttool([exe], cache, env=programs.guest_env({"BTTOOL_SYSROOT": str(root)}))
    assert (by_env.returncode, by_env.stdout) == (0, expected), by_env
