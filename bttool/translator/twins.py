"""Encodings the CPU executes as a documented instruction but capstone 5
cannot decode (or decodes as something else), recognised from their bytes
and rewritten to that documented twin, with the same length, before
capstone reads them (translator/decoder.py).  The one place for such
aliases; each rule was checked natively on the host (AMD Zen 4, tests in
tests/test_isa_corners.py):

* the undocumented x87 register forms: fxch (DD C8+i "fxch4", DF C8+i
  "fxch7"), fcom (DC D0+i "fcom2"), fcomp (DC D8+i "fcomp3", DE D0+i
  "fcomp5"), fstp (D9 D8+i "fstp1", DF D0+i "fstp8", DF D8+i "fstp9");
* the fences with a nonzero ModRM rm field, ``0F AE E8+i``/``F0+i``/
  ``F8+i`` without a 66/F2/F3/F0 prefix: lfence, mfence, sfence (the CPU
  ignores rm; with 66/F2/F3 they are other instructions or #UD);
* bsf/bsr (``0F BC``/``0F BD``) with a stray F2 prefix (and no F3, which
  would make them tzcnt/lzcnt): the CPU ignores the F2;
* AMD's ``F0 0F 20``/``F0 0F 22``: LOCK is the alternative encoding of
  REX.R for mov from/to control registers (``lock mov cr0`` is mov cr8;
  privileged, so SIGSEGV in user mode);
* ``F0 0F 00 /5`` with a memory operand: this host ignores LOCK on verw.
"""
from __future__ import annotations

from typing import Callable

from bttool.translator.encoding import Encoding, encoding

_LOCK, _REPNE, _REP, _OPSIZE = 0xF0, 0xF2, 0xF3, 0x66
_DS = 0x3E            # a prefix that means nothing in 64-bit mode: fills a dropped byte

_X87_ALIASES = {      # (first byte, ModRM base) -> the documented twin's
    (0xDD, 0xC8): (0xD9, 0xC8), (0xDF, 0xC8): (0xD9, 0xC8),
    (0xDC, 0xD0): (0xD8, 0xD0),
    (0xDC, 0xD8): (0xD8, 0xD8), (0xDE, 0xD0): (0xD8, 0xD8),
    (0xD9, 0xD8): (0xDD, 0xD8), (0xDF, 0xD0): (0xDD, 0xD8), (0xDF, 0xD8): (0xDD, 0xD8),
}


def _modrm(code: bytes, enc: Encoding) -> int | None:
    at = enc.opcode_at + 1
    return code[at] if at < len(code) else None


def _x87(code: bytes, enc: Encoding, mode: int) -> bytes | None:
    modrm = _modrm(code, enc)
    if enc.escape or modrm is None:
        return None
    twin = _X87_ALIASES.get((enc.opcode, modrm & 0xF8))
    if twin is None:
        return None
    at = enc.opcode_at
    return code[:at] + bytes([twin[0], twin[1] | (modrm & 7)]) + code[at + 2:]


def _fence(code: bytes, enc: Encoding, mode: int) -> bytes | None:
    modrm = _modrm(code, enc)
    if (not enc.escape or enc.opcode != 0xAE or modrm is None or modrm >> 6 != 3
            or (modrm >> 3) & 7 < 5 or not modrm & 7
            or set(enc.prefixes) & {_LOCK, _REPNE, _REP, _OPSIZE}):
        return None
    at = enc.opcode_at + 1
    return code[:at] + bytes([modrm & 0xF8]) + code[at + 1:]


def _stray_f2_bit_scan(code: bytes, enc: Encoding, mode: int) -> bytes | None:
    if (not enc.escape or enc.opcode not in (0xBC, 0xBD) or _REPNE not in enc.prefixes
            or _REP in enc.prefixes):
        return None
    return _replace_prefix(code, enc, _REPNE)


def _lock_mov_cr(code: bytes, enc: Encoding, mode: int) -> bytes | None:
    if mode != 64 or not enc.escape or enc.opcode not in (0x20, 0x22) or _LOCK not in enc.prefixes:
        return None
    prefixes = bytearray(enc.prefixes)
    prefixes.remove(_LOCK)
    rex = (enc.rex or 0x40) | 0x04                   # REX.R: reg field n means CR(8+n)
    head = bytes(prefixes) + bytes([rex])
    pad = bytes([_DS]) * (enc.opcode_at - 1 - len(head))
    return pad + head + code[enc.opcode_at - 1:]     # 0F, opcode, ModRM ...


def _lock_verw(code: bytes, enc: Encoding, mode: int) -> bytes | None:
    modrm = _modrm(code, enc)
    if (not enc.escape or enc.opcode != 0x00 or modrm is None or modrm >> 6 == 3
            or (modrm >> 3) & 7 != 5 or _LOCK not in enc.prefixes):
        return None
    return _replace_prefix(code, enc, _LOCK)


def _replace_prefix(code: bytes, enc: Encoding, prefix: int) -> bytes:
    """``code`` with every legacy ``prefix`` byte replaced by DS (ignored)."""
    head = bytes(_DS if c == prefix else c for c in code[:enc.opcode_at])
    return head + code[enc.opcode_at:]


_RULES: tuple[Callable[[bytes, Encoding, int], bytes | None], ...] = (
    _x87, _fence, _stray_f2_bit_scan, _lock_mov_cr, _lock_verw)


def twin(code: bytes, mode: int = 64, enc: Encoding | None = None) -> bytes | None:
    """``code`` with the alias at its start rewritten to its documented twin
    (same length), or None when it starts with no such alias.  ``enc``:
    ``encoding(code, mode)``, when the caller has it."""
    enc = enc or encoding(code, mode)
    if enc is None:
        return None
    for rule in _RULES:
        out = rule(code, enc, mode)
        if out is not None:
            assert len(out) == len(code), (rule.__name__, code.hex(), out.hex())
            return out
    return None
