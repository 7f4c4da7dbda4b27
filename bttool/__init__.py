"""bttool: an x86 binary translator (x86 -> LLVM IR -> host code)."""

__version__ = "0.1.0"

# Bumped whenever the translator's output for the same guest bytes changes;
# part of every cache key so stale translations are never reused.
TRANSLATOR_VERSION = "14"
