"""Debian's statically linked busybox (package busybox-static), run natively
and under ``bttool run``.  Each case is a short sequence of applet
invocations over a small, fixed set of input files.  The native run and the
bttool run each work in their own identical copy of the inputs; every step's
stdout, stderr and status must match, and so must the files left behind."""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache  # noqa: E402,F401  (fixture)

BUSYBOX = "/bin/busybox"

pytestmark = pytest.mark.skipif(
    not os.path.exists(BUSYBOX),
    reason=f"{BUSYBOX} not found: install Debian's busybox-static (apt-get install busybox-static)",
)

# every input file and directory gets this mtime (2001-09-09 01:46:40 UTC), so
# that ls -l, tar, gzip and diff -u output does not depend on when the test ran
FIXED_MTIME = 1_000_000_000


# ---------------------------------------------------------------------------
# input files


def _lcg(seed: int):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield x >> 33


WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
    "Foo foo FOO bar baz the a an of to in"
).split()


def _inputs() -> dict[str, bytes]:
    rnd = _lcg(12345)
    files: dict[str, bytes] = {}
    files["words.txt"] = "".join(WORDS[next(rnd) % len(WORDS)] + "\n" for _ in range(400)).encode()
    nums = []
    for i in range(150):
        v = next(rnd)
        if i % 5 == 0:
            nums.append(f"-{v % 1000}")
        elif i % 7 == 0:
            nums.append(f"{v % 100}.{v % 97:02d}")
        else:
            nums.append(str(v % 100000))
    files["nums.txt"] = ("\n".join(nums) + "\n").encode()
    lines = []
    for i in range(90):
        n = 3 + next(rnd) % 9
        words = [WORDS[next(rnd) % len(WORDS)] for _ in range(n)]
        if i % 11 == 0:
            lines.append("# comment line %d" % i)
        lines.append(" ".join(words) + (" %d" % (next(rnd) % 1000) if i % 3 == 0 else ""))
    files["text.txt"] = ("\n".join(lines) + "\n").encode()
    files["passwd.txt"] = "".join(
        f"user{i}:x:{1000 + next(rnd) % 900}:{100 + i % 7}:User Number {i}:/home/user{i}:/bin/sh\n"
        for i in range(40)
    ).encode()
    files["table.txt"] = "".join(
        f"{WORDS[next(rnd) % len(WORDS)]:<10} {next(rnd) % 5000:>6} "
        f"{next(rnd) % 10000 / 100:8.2f}\n"
        for _ in range(60)
    ).encode()
    files["bin.dat"] = bytes(next(rnd) & 0xFF for _ in range(1536))
    files["b64.txt"] = base64.encodebytes(files["bin.dat"])
    old = files["text.txt"].splitlines(keepends=True)[:40]
    new = list(old)
    new[5] = b"this line was changed\n"
    del new[17:19]
    new.insert(30, b"an inserted line\n")
    files["old.txt"] = b"".join(old)
    files["new.txt"] = b"".join(new)
    # a small tree for ls, find and tar
    files["tree/a/x.txt"] = b"x file\n"
    files["tree/a/y.txt"] = b"y file, a bit longer\n" * 3
    files["tree/a/.hidden"] = b"hidden\n"
    files["tree/b/c/z.txt"] = files["words.txt"][:700]
    files["tree/b/data.bin"] = files["bin.dat"][:300]
    files["tree/empty/"] = b""  # an empty directory
    return files


INPUTS = _inputs()


def make_inputs(root: Path) -> None:
    root.mkdir(parents=True)
    for rel, data in INPUTS.items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o644)
    (root / "tree" / "link-to-x").symlink_to("a/x.txt")
    # fixed permissions and times, deepest first so parents keep their mtime
    for dirpath, dirnames, filenames in sorted(os.walk(root), key=lambda t: -len(t[0])):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and os.path.isdir(p):
                os.chmod(p, 0o755)
            os.utime(p, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(root, (FIXED_MTIME, FIXED_MTIME))


# ---------------------------------------------------------------------------
# cases


@dataclass
class Step:
    args: list[str]  # applet and its arguments
    stdin: bytes | None = None


@dataclass
class Case:
    id: str
    steps: list[Step]
    # names of files (relative to the work dir) that must exist afterwards
    creates: list[str] = field(default_factory=list)


def case(id: str, *args: str, stdin: bytes | None = None) -> Case:
    return Case(id, [Step(list(args), stdin)])


CASES = [
    # sorting and counting
    case("sort", "sort", "words.txt"),
    case("sort-n", "sort", "-n", "nums.txt"),
    case("sort-ru", "sort", "-r", "-u", "words.txt"),
    case("sort-key", "sort", "-t:", "-k3,3n", "-k1,1", "passwd.txt"),
    Case(
        "sort-o-uniq-c",
        [Step(["sort", "-o", "sorted.txt", "words.txt"]), Step(["uniq", "-c", "sorted.txt"])],
        creates=["sorted.txt"],
    ),
    case("uniq-d-stdin", "uniq", "-d", stdin=b"a\na\nb\nc\nc\nc\nd\n"),
    case("wc", "wc", "text.txt", "words.txt", "bin.dat"),
    case("wc-l-stdin", "wc", "-l", stdin=INPUTS["text.txt"]),
    case("nl", "nl", "text.txt"),
    case("tac", "tac", "words.txt"),
    # field and character processing
    case("cut-fields", "cut", "-d:", "-f1,3,5", "passwd.txt"),
    case("cut-chars", "cut", "-c2-8,12-", "text.txt"),
    case("paste", "paste", "-d,", "words.txt", "nums.txt"),
    case("tr-upper", "tr", "a-z", "A-Z", stdin=INPUTS["text.txt"]),
    case("tr-delete-squeeze", "tr", "-s", "a-z", "-d", "0-9", stdin=INPUTS["text.txt"]),
    case("fold", "fold", "-w", "23", "text.txt"),
    case("rev", "rev", "text.txt"),
    case("expand", "expand", "-t", "5", stdin=b"a\tbb\tccc\tdddd\te\n\t\tx\n"),
    # sed, grep, awk
    case("sed-subst", "sed", "-e", "s/foo/BAR/g", "-e", "/^#/d", "text.txt"),
    case("sed-range", "sed", "-n", "3,7p;$=", "text.txt"),
    case("sed-regex", "sed", "-E", "s/([a-z]+) ([a-z]+)/\\2 \\1/", "text.txt"),
    Case(
        "sed-inplace",
        [Step(["sed", "-i", "s/[0-9][0-9]*/N/g", "nums.txt"]), Step(["cat", "nums.txt"])],
    ),
    case("grep-c", "grep", "-c", "foo", "text.txt"),
    case("grep-nie", "grep", "-n", "-i", "-E", "^(the|a|foo) ", "text.txt"),
    case("grep-v-w", "grep", "-v", "-w", "alpha", "words.txt"),
    case("grep-no-match", "grep", "zzzz", "text.txt"),  # status 1
    case("grep-r", "grep", "-r", "-l", "file", "tree"),
    case(
        "awk-sum",
        "awk",
        '{ s += $2; t += $3; n++ } END { printf "%d %d %.2f %.4f\\n", n, s, t, t / n }',
        "table.txt",
    ),
    case(
        "awk-fields",
        "awk",
        "-F:",
        '$3 > 1400 { print NR, $1, toupper($5), length($0) } END { print "records", NR }',
        "passwd.txt",
    ),
    case(
        "awk-assoc",
        "awk",
        '{ c[$1]++ } END { for (w in c) if (c[w] > 15) n++; print n; '
        'print substr("abcdef", 2, 3), index("hello", "l"), 7 % 3, int(-3.7), '
        'sprintf("%05.1f", 3.14159) }',
        "words.txt",
    ),
    # binary data, checksums, encodings
    case("od-x", "od", "-x", "bin.dat"),
    case("od-c", "od", "-A", "x", "-c", "old.txt"),
    case("hexdump-C", "hexdump", "-C", "bin.dat"),
    case("md5sum", "md5sum", "bin.dat", "text.txt", "words.txt"),
    case("sha1sum", "sha1sum", "bin.dat", "text.txt"),
    case("sha256sum", "sha256sum", "bin.dat", "text.txt", "words.txt"),
    case("sha512sum", "sha512sum", "bin.dat"),
    case("sha3sum", "sha3sum", "bin.dat"),
    case("md5sum-stdin", "md5sum", stdin=INPUTS["bin.dat"] * 3),
    case("base64", "base64", "bin.dat"),
    case("base64-d", "base64", "-d", "b64.txt"),
    # compression
    case("gzip-c", "gzip", "-c", "text.txt"),
    case("gzip-9-stdin", "gzip", "-9", stdin=INPUTS["bin.dat"] + INPUTS["words.txt"]),
    Case(
        "gzip-gunzip-roundtrip",
        [
            Step(["gzip", "words.txt"]),
            Step(["gunzip", "-c", "words.txt.gz"]),
            Step(["gzip", "-t", "words.txt.gz"]),
            Step(["gunzip", "words.txt.gz"]),
        ],
        creates=["words.txt"],
    ),
    Case(
        "bzip2-roundtrip",
        [Step(["bzip2", "-k", "text.txt"]), Step(["bzcat", "text.txt.bz2"])],
        creates=["text.txt.bz2"],
    ),
    # arithmetic and formatting
    case("seq", "seq", "1", "3", "100"),
    case("seq-w-s", "seq", "-w", "-s", ",", "8", "12"),
    case("seq-negative", "seq", "-s", ":", "--", "-5", "3", "12"),
    case("seq-down", "seq", "5", "-1", "-3"),
    case("expr-mul", "expr", "12345", "*", "6789"),
    case("expr-string", "expr", "length", "hello world"),
    case("expr-zero", "expr", "0", "+", "0"),  # status 1
    case("factor", "factor", "1234567890", "600851475143", "9999999967", "4294967297", "97"),
    case(
        "printf",
        "printf",
        "%s-%05d-%x-%o-%.3f|%-6s|%c|%b\\n",
        "abc",
        "42",
        "255",
        "8",
        "3.14159",
        "hi",
        "Z",
        "tab\\there",
    ),
    case("echo-e", "echo", "-e", "a\\tb\\nc\\0101 \\\\ end"),
    case("echo-n", "echo", "-n", "no newline", "two  spaces"),
    case("basename", "basename", "/usr/local/lib/libfoo.so.1", ".1"),
    case("dirname", "dirname", "/usr/local/lib/libfoo.so.1"),
    case("true", "true"),
    case("false", "false"),  # status 1
    # heads and tails, cat
    case("head-n", "head", "-n", "5", "text.txt"),
    case("head-c", "head", "-c", "100", "bin.dat"),
    case("tail-n", "tail", "-n", "3", "text.txt"),
    case("tail-c-plus", "tail", "-c", "+3000", "text.txt"),
    case("cat-stdin", "cat", stdin=INPUTS["bin.dat"] * 4),
    case("cat-n-dash", "cat", "-n", "old.txt", "-", "tree/a/x.txt", stdin=b"from stdin\n"),
    case("cat-missing", "cat", "no-such-file"),  # error on stderr, status 1
    case("diff-u", "diff", "-u", "old.txt", "new.txt"),  # status 1
    case("cmp", "cmp", "old.txt", "new.txt"),  # status 1
    # directories, metadata, archives
    case("ls-lR", "ls", "-lR", "tree"),
    case("ls-1A", "ls", "-1A", "tree/a"),
    case("ls-F-sort-size", "ls", "-FS", "tree/a", "tree/b"),
    case("stat-c", "stat", "-c", "%n %s %F %a %Y", "tree/a/x.txt", "tree/b", "tree/link-to-x"),
    case("find", "find", "tree", "-name", "*.txt"),
    case("du-a", "du", "-a", "tree"),
    Case(
        "tar-create-list-extract",
        [
            Step(["tar", "-cf", "out.tar", "tree"]),
            Step(["tar", "-tvf", "out.tar"]),
            Step(["mkdir", "x"]),
            Step(["tar", "-xf", "out.tar", "-C", "x"]),
            Step(["ls", "-RsF", "x"]),  # (extracted dirs have fresh mtimes)
        ],
        creates=["out.tar", "x/tree/b/c/z.txt"],
    ),
    Case(
        "cp-mv-rm",
        [
            Step(["cp", "-p", "text.txt", "copy.txt"]),
            Step(["mv", "copy.txt", "moved.txt"]),
            Step(["mkdir", "-p", "d1/d2"]),
            Step(["cp", "-a", "tree", "d1/d2/"]),
            Step(["rm", "-r", "d1/d2/tree/b"]),
            Step(["ls", "-RsF", "d1"]),  # (new dirs have fresh mtimes)
            Step(["stat", "-c", "%n %s %a %Y", "moved.txt", "d1/d2/tree/a/y.txt"]),
        ],
        creates=["moved.txt", "d1/d2/tree/a/x.txt"],
    ),
    # shell (builtins only, then with a pipeline that forks)
    case(
        "sh-builtins",
        "sh",
        "-c",
        'i=0; s=""; while [ $i -lt 25 ]; do i=$((i + 1)); s="$s$i,"; '
        'case $i in *5) echo "five-ish $i";; esac; done; echo "$s"; '
        'set -- a "b c" d; echo "$# $2"; printf "%s|" "$@"; echo; exit 3',
    ),
    case(
        "sh-pipeline",
        "sh",
        "-c",
        "echo $(echo sub shell) | tr a-z A-Z; sort words.txt | uniq | wc -l",
    ),
    case("env", "env"),
    case("uname", "uname", "-s", "-m"),
]

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_busybox(case: Case, bttool_cache, tmp_path):
    native_dir, bttool_dir = tmp_path / "native", tmp_path / "bttool"
    make_inputs(native_dir)
    make_inputs(bttool_dir)
    for step in case.steps:
        programs.compare_run(
            [BUSYBOX, *step.args],
            bttool_cache,
            cwd=native_dir,
            bttool_cwd=bttool_dir,
            stdin=step.stdin,
        )
    for rel in case.creates:
        assert (native_dir / rel).exists(), f"native run did not create {rel}"
    programs.assert_same_tree(native_dir, bttool_dir)


def test_gzip_roundtrip_restores_input(tmp_path):
    """Oracle check for the gzip case: native gzip/gunzip really round-trip."""
    work = tmp_path / "w"
    make_inputs(work)
    for args in (["gzip", "words.txt"], ["gunzip", "words.txt.gz"]):
        r = programs.run_native([BUSYBOX, *args], cwd=work)
        assert r.returncode == 0, r
    assert (work / "words.txt").read_bytes() == INPUTS["words.txt"]
