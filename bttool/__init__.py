"""bttool: an x86 binary translator (x86 -> LLVM IR -> host code)."""

__version__ = "0.1.0"

# Cache keys carry no hand-bumped version: bttool/translator/identity.py
# derives the translator's identity from its sources.
