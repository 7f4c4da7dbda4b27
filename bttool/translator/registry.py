"""One registry from capstone instruction ids to semantic functions.

Family modules (translator/semantics/*.py) decorate their functions with
``@semantic("add", "adc", ...)``; names are capstone mnemonics.
"""
from __future__ import annotations

from typing import Callable

from capstone import x86_const as X

SemanticFn = Callable[..., None]
_TABLE: dict[int, SemanticFn] = {}
_TERMINAL: set[int] = set()


def semantic(*mnemonics: str, terminal: bool = False) -> Callable[[SemanticFn], SemanticFn]:
    """Register ``fn`` for the given mnemonics.  ``terminal`` instructions
    always end a unit (control transfers, exits to the runtime)."""
    def register(fn: SemanticFn) -> SemanticFn:
        for m in mnemonics:
            insn_id = getattr(X, "X86_INS_" + m.upper())
            if insn_id in _TABLE:
                raise ValueError(f"{m} registered twice")
            _TABLE[insn_id] = fn
            if terminal:
                _TERMINAL.add(insn_id)
        return fn
    return register


_loaded = False


def is_terminal(insn_id: int) -> bool:
    if not _loaded:
        _load_families()
    return insn_id in _TERMINAL


def lookup(insn_id: int) -> SemanticFn | None:
    if not _loaded:
        _load_families()
    return _TABLE.get(insn_id)


def known(insn_id: int) -> bool:
    """Whether the lifter has semantics for some form of this instruction:
    a registered one, or a row of the AVX decode table (translator/avxtable.py,
    which decides by the encoding, and the CPU model, at lift time)."""
    if lookup(insn_id) is not None:
        return True
    from bttool.translator.avxtable import table_ids
    return insn_id in table_ids()


def table() -> dict[int, SemanticFn]:
    if not _loaded:
        _load_families()
    return _TABLE


def host_only(insn_id: int) -> bool:
    """Semantics that only an x86 host can compile (x87: x86_fp80 and host
    transcendental instructions)."""
    fn = lookup(insn_id)
    return fn is not None and ".x87" in getattr(fn, "__module__", "")


def _load_families() -> None:
    """Import every family (through ``__import__``, so that bttool's import
    guard, runtime/hostfds.py, can retry one that finds no free descriptor);
    loaded only once all are."""
    global _loaded
    from bttool.translator.semantics import FAMILIES
    for name in FAMILIES:
        __import__(f"bttool.translator.semantics.{name}")
    _loaded = True
