"""Lifted IR is freed by reference counting once compiled (ir/lifetime.py,
the emitter's finish), so the cyclic garbage collector, with the start-up
heap frozen (runtime/heap.py), has next to nothing to scan during a run."""
from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import native as N  # noqa: E402
from programs import samples_dir  # noqa: E402,F401  (fixture)
from bttool.ir import codegen  # noqa: E402
from bttool.runtime.window import user_options  # noqa: E402
from bttool.translator.translate import lift  # noqa: E402
import programs  # noqa: E402

_CODE = """
    mov eax, 1
1:  add eax, ecx
    test eax, 1
    jz 2f
    imul rax, rdx
2:  dec ecx
    jnz 1b
    mov rax, [rdi]
    add rax, [rdi + 8]
    mov [rsi], rax
    ret
"""


@pytest.mark.parametrize("tier", [1, 2])
def test_a_compiled_module_is_freed_without_the_collector(tier):
    """A performance property (nothing left for the cyclic collector to
    scan; a run is the same either way), so it looks at the lifted IR's
    objects themselves."""
    code, = N.assemble([_CODE])
    base = 0x1000
    read = lambda a, n: code[a - base:a - base + n] if 0 <= a - base < len(code) else b""  # noqa: E731
    options = user_options(hot_counters=True)
    gc.disable()
    try:
        lifted = lift([base], read, options.tier2() if tier == 2 else options, codegen.host_target(tier))
        fn = next(g for g in lifted.module.globals.values() if g.name == lifted.regions[0].symbol)
        values = [fn, *fn.blocks, *(i for b in fn.blocks for i in b.instructions)]
        assert len(values) > 50
        refs = [weakref.ref(v) for v in values]
        del fn, values
        assert lifted.compile().object_code
        alive = [r() for r in refs if r() is not None]
        assert alive == []
    finally:
        gc.enable()


def test_a_run_with_the_frozen_heap_keeps_stderr_clean(samples_dir, tmp_path):
    """lief's bindings report objects alive at interpreter exit on stderr;
    the frozen heap must be thawed before then."""
    exe = samples_dir / "hello"
    run = subprocess.run(programs.bttool_argv("run", "--cache-dir", tmp_path, exe),
                         capture_output=True, cwd=programs.work_dir(), env=programs.guest_env())
    native = subprocess.run([str(exe)], capture_output=True)
    assert (run.returncode, run.stdout, run.stderr) == (native.returncode, native.stdout, native.stderr)
