"""The x86 condition codes (jcc, setcc, cmovcc), defined once.

``CODES`` are the sixteen canonical suffixes in encoding order (the low
nibble of 70-7F, 0F 80-8F, 0F 40-4F, 0F 90-9F): an even code tests a
condition, the odd one after it tests its negation.  ``TESTS`` says what
each even one tests: the OR of some flags, ORed with SF != OF for the
signed comparisons.  ``ALIASES`` are the other names capstone and
assemblers use.  flags.condition builds the IR from this table,
flaglive.py reads which flags each code reads from it, and the registry
(control.py, dataxfer.py), blocks.py and decoder.py take their lists of
mnemonics from ``CODES``.
"""
from __future__ import annotations

CODES = ("o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g")

# Each tested condition (an even code): (flags ORed, whether SF != OF is ORed too).
TESTS = {
    "o": (("of",), False),
    "b": (("cf",), False),
    "e": (("zf",), False),
    "be": (("cf", "zf"), False),
    "s": (("sf",), False),
    "p": (("pf",), False),
    "l": ((), True),
    "le": (("zf",), True),
}

ALIASES = {"c": "b", "nae": "b", "nb": "ae", "nc": "ae", "z": "e", "nz": "ne", "na": "be",
           "nbe": "a", "pe": "p", "po": "np", "nge": "l", "nl": "ge", "ng": "le", "nle": "g"}


def test(cc: str) -> tuple[str, bool]:
    """(the condition ``cc`` tests or negates, whether it negates it), for
    any name of a code; ValueError for anything else."""
    name = ALIASES.get(cc, cc)
    if name not in CODES:
        raise ValueError(f"unknown condition {cc}")
    i = CODES.index(name)
    return CODES[i & ~1], bool(i & 1)


def reads(cc: str) -> frozenset[str]:
    """The flags a code reads."""
    ored, signed = TESTS[test(cc)[0]]
    return frozenset(ored + (("sf", "of") if signed else ()))


# Every name of every code -> the flags it reads.
READS = {cc: reads(cc) for cc in CODES + tuple(ALIASES)}
