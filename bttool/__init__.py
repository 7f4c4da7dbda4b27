"""bttool: an x86 binary translator (x86 -> LLVM IR -> host code)."""

__version__ = "0.1.0"

# Cache keys carry no hand-bumped version: bttool/translator/identity.py
# derives the translator's identity from its sources.

# Every bttool process (`bttool ...`, and the one a guest execve becomes)
# collects cyclic garbage rarely: bttool/runtime/heap.py says why.
from bttool.runtime.heap import collect_rarely as _collect_rarely  # noqa: E402

_collect_rarely()
