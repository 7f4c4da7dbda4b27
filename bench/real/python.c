/* python: CPython 3.11 embedded from Debian's static libpython3.11.a,
 * running a small pure-Python script: dict and list work (a word
 * frequency count, sorting with keys, comprehensions), str methods and
 * formatting, a little class-based simulation and integer arithmetic;
 * prints results and a checksum.  The interpreter is configured isolated
 * (no environment variables, no user site, no site module) with a fixed
 * hash seed, so dict/set iteration order and the output are deterministic;
 * it reads its standard library (encodings, ...) from /usr/lib/python3.11.
 *
 *   python [SCALE]     SCALE (default 1.0) multiplies the amount of work. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "data.h"

static const char script[] =
    "import sys\n"
    "sys.set_int_max_str_digits(0)\n"
    "scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0\n"
    "def n_of(x, lo=1):\n"
    "    return max(lo, int(x * scale))\n"
    "def rng(seed):\n"
    "    while True:\n"
    "        seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)\n"
    "        yield seed >> 33\n"
    "r = rng(12345)\n"
    "words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta',\n"
    "         'iota', 'kappa', 'lambda', 'mu', 'nu', 'xi', 'omicron', 'pi']\n"
    "# text building and word counts\n"
    "lines = []\n"
    "for i in range(n_of(80000)):\n"
    "    ws = [words[next(r) % len(words)] + str(next(r) % 50) for _ in range(6)]\n"
    "    lines.append(f'{i:06d} ' + ' '.join(ws))\n"
    "text = '\\n'.join(lines)\n"
    "counts = {}\n"
    "for w in text.split():\n"
    "    if not w.isdigit():\n"
    "        counts[w] = counts.get(w, 0) + 1\n"
    "top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]\n"
    "print('python words', len(counts), top)\n"
    "# str methods\n"
    "up = text.upper().replace('A', '@').split('\\n')\n"
    "joined = '|'.join(s[::-1].strip() for s in up[::3])\n"
    "h = 0\n"
    "for ch in joined[::11]:\n"
    "    h = (h * 31 + ord(ch)) & 0xffffffff\n"
    "print('python strings', len(joined), joined.count('@'), f'{h:08x}')\n"
    "# records: dicts, lists, sorting, grouping\n"
    "recs = [{'id': i, 'group': words[next(r) % 16], 'v': next(r) % 1000, 'w': (next(r) % 997) / 7}\n"
    "        for i in range(n_of(120000))]\n"
    "recs.sort(key=lambda d: (d['group'], -d['v'], d['id']))\n"
    "groups = {}\n"
    "for d in recs:\n"
    "    groups.setdefault(d['group'], []).append(d['v'])\n"
    "stats = {g: (len(v), sum(v), max(v), min(v)) for g, v in groups.items()}\n"
    "evens = {d['id'] for d in recs if d['v'] % 2 == 0}\n"
    "wsum = round(sum(d['w'] for d in recs), 6)\n"
    "print('python records', len(recs), len(evens), wsum, sorted(stats.items())[:2])\n"
    "# objects\n"
    "class Particle:\n"
    "    __slots__ = ('x', 'v')\n"
    "    def __init__(self, x, v):\n"
    "        self.x, self.v = x, v\n"
    "    def step(self):\n"
    "        self.x += self.v\n"
    "        if self.x < 0 or self.x > 1000:\n"
    "            self.v = -self.v\n"
    "ps = [Particle(next(r) % 1000, next(r) % 7 - 3) for _ in range(1000)]\n"
    "for _ in range(n_of(300)):\n"
    "    for p in ps:\n"
    "        p.step()\n"
    "print('python particles', sum(p.x for p in ps), sum(abs(p.v) for p in ps))\n"
    "# integers\n"
    "f = 1\n"
    "for k in range(2, n_of(6000, 2)):\n"
    "    f *= k\n"
    "s = str(f)\n"
    "print('python ints', len(s), sum(map(int, s)), s.rstrip('0')[-10:])\n";

int main(int argc, char **argv)
{
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.use_hash_seed = 1;
    config.hash_seed = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    PyStatus status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        printf("python: initialisation failed: %s\n", status.err_msg ? status.err_msg : "?");
        return 1;
    }
    int rc = PyRun_SimpleString(script);
    if (Py_FinalizeEx() < 0)
        rc = 1;
    (void)real_scale;
    return rc == 0 ? 0 : 1;
}
