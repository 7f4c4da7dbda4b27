"""bttool: an x86 binary translator (x86 -> LLVM IR -> host code)."""

__version__ = "0.1.0"

# Cache keys carry no hand-bumped version: bttool/translator/identity.py
# derives the translator's identity from its sources.

# Python's cyclic garbage collector runs every 700 new container objects:
# some 60 times in a warm start (imports, cache rows), 8.5 ms of a
# dynamically linked program's 200, and 1,460 times (155 ms) in a cold run
# that translates.  bttool makes few reference cycles, so every bttool
# process (`bttool ...`, and the one a guest execve becomes) collects
# rarely.
import gc as _gc

_gc.set_threshold(100_000, 50, 100)
