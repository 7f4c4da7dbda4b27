"""The virtual CPU model that `cpuid` (and AT_HWCAP, xgetbv) report.

A fixed, documented model so a guest behaves the same on every host:

* vendor GenuineIntel, family 6 model 0x2C (a Westmere part): x86-64-v2
  (SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, CX16, LAHF/SAHF in
  64-bit mode), AES-NI and PCLMULQDQ, which Westmere added, and the SHA
  extensions (leaf 7 EBX bit 29, as Goldmont has them without AVX):
  OpenSSL's AES, GCM, SHA-1 and SHA-256 use them (each the host's own
  instruction where it has it: translator/semantics/aes.py, sha.py);
  RDRAND and RDSEED (leaf 1 ECX bit 30, leaf 7 EBX bit 18), served by the
  runtime from the host kernel's entropy (runtime/randomsource.py); no
  XSAVE/OSXSAVE, so no AVX, and leaf 7 reports no BMI/AVX2/ERMS (glibc
  picks its SSE2/SSE4 routines);
* deterministic cache parameters (leaf 4): L1d 32 KiB, L1i 32 KiB,
  L2 1 MiB, L3 8 MiB, 64-byte lines; one core, one thread;
* brand string "bttool virtual x86-64-v2 CPU".

``LEVEL`` selects the baseline x86-64 (SSE2 only) subset instead, for
debugging a guest against the smaller instruction set.
"""
from __future__ import annotations

LEVEL = "x86-64-v2"

_EDX1 = sum(1 << b for b in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26))
# SSE3 PCLMULQDQ SSSE3 CX16 SSE4.1 SSE4.2 POPCNT AES RDRAND
_ECX1_V2 = sum(1 << b for b in (0, 1, 9, 13, 19, 20, 23, 25, 30))
_SIGNATURE = 0x000206C2                                  # family 6, model 0x2C, stepping 2
_LEAF7_EBX = (1 << 18) | (1 << 29)                       # RDSEED SHA
_BRAND = b"bttool virtual x86-64-v2 CPU".ljust(48, b"\0")
_VENDOR = b"GenuineIntel"


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _cache_leaf4(sub: int) -> tuple[int, int, int, int]:
    # (type, level, ways, sets, shared-by-threads)
    caches = [(1, 1, 8, 64), (2, 1, 8, 64), (3, 2, 16, 1024), (3, 3, 16, 8192)]
    if sub >= len(caches):
        return 0, 0, 0, 0
    ctype, level, ways, sets = caches[sub]
    eax = ctype | (level << 5) | (1 << 8)
    ebx = ((ways - 1) << 22) | (63)
    return eax, ebx, sets - 1, 0


def hwcap() -> int:
    """AT_HWCAP on x86-64 is CPUID.1:EDX."""
    return _EDX1


def cpuid(leaf: int, sub: int) -> tuple[int, int, int, int]:
    leaf &= 0xFFFFFFFF
    ecx1 = _ECX1_V2 if LEVEL == "x86-64-v2" else 0
    if leaf == 0:
        return 7, _le(_VENDOR[0:4]), _le(_VENDOR[8:12]), _le(_VENDOR[4:8])
    if leaf == 1:
        return _SIGNATURE, (8 << 8) | (1 << 16), ecx1, _EDX1
    if leaf == 2:
        return 0x00FEFF01, 0, 0, 0
    if leaf == 4:
        return _cache_leaf4(sub)
    if leaf == 7:
        return 0, (_LEAF7_EBX if LEVEL == "x86-64-v2" and sub == 0 else 0), 0, 0
    if leaf in (3, 5, 6):
        return 0, 0, 0, 0
    if leaf == 0x80000000:
        return 0x80000008, 0, 0, 0
    if leaf == 0x80000001:
        return 0, 0, 1, (1 << 11) | (1 << 20) | (1 << 29)   # LAHF; SYSCALL, NX, LM
    if 0x80000002 <= leaf <= 0x80000004:
        chunk = _BRAND[(leaf - 0x80000002) * 16:][:16]
        return tuple(_le(chunk[i:i + 4]) for i in range(0, 16, 4))  # type: ignore[return-value]
    if leaf == 0x80000006:
        return 0, 0, (1024 << 16) | (0x6 << 12) | 64, 0
    if leaf == 0x80000008:
        return 0x3028, 0, 0, 0
    return 0, 0, 0, 0


def xcr0() -> int:
    """XCR0: x87 and SSE state only (no AVX state enabled)."""
    return 0x3
