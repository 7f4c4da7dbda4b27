"""The virtual CPU that `cpuid` (and AT_HWCAP, xgetbv) report, for the
model the run selected (translator/cpumodel.py: ``select``).

A fixed, documented CPU so a guest behaves the same on every host:

* x86-64-v2: vendor GenuineIntel, family 6 model 0x2C (a Westmere part):
  SSE to SSE4.2, POPCNT, CX16, LAHF/SAHF in 64-bit mode, AES-NI and
  PCLMULQDQ, which Westmere added, and the SHA extensions (leaf 7 EBX bit
  29, as Goldmont has them without AVX): OpenSSL's AES, GCM, SHA-1 and
  SHA-256 use them (each the host's own instruction where it has it:
  translator/semantics/aes.py, sha.py); RDRAND and RDSEED (leaf 1 ECX bit
  30, leaf 7 EBX bit 18), served by the runtime from the host kernel's
  entropy (runtime/randomsource.py); no XSAVE/OSXSAVE, so no AVX, and leaf
  7 reports no BMI/AVX2/ERMS (glibc picks its SSE2/SSE4 routines);
* x86-64-v3: family 6 model 0x3C (a Haswell part): the same plus FMA,
  MOVBE, XSAVE, OSXSAVE, AVX, F16C (leaf 1 ECX), BMI1, AVX2, BMI2, ERMS
  (leaf 7 EBX) and LZCNT (leaf 0x80000001 ECX); XCR0 enables x87, SSE and AVX
  state, and leaf 0xD describes the standard XSAVE layout of those three
  (832 bytes, the AVX component at 576); XSAVEOPT (leaf 0xD sub-leaf 1
  EAX bit 0), as Haswell, but not XSAVEC (bit 1: ``x86-64-v3+xsavec``,
  whose compacted layout of those components is the same 832 bytes) nor
  XSAVES;
* deterministic cache parameters (leaf 4): L1d 32 KiB, L1i 32 KiB,
  L2 1 MiB, L3 8 MiB, 64-byte lines; one core, one thread;
* brand string "bttool virtual x86-64-v2 CPU" (or -v3);
* a model with optional features (``x86-64-v3+adx``) reports them too and
  is otherwise its base model.
"""
from __future__ import annotations

from bttool.translator import cpumodel

_model = cpumodel.get(cpumodel.DEFAULT)

_EDX1 = sum(1 << b for b in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26))
# Where CPUID reports each model feature: (leaf, register, bit).  SSE and
# SSE2 are in leaf 1 EDX with the rest of the baseline (_EDX1).
_FEATURE_BITS = {
    "sse3": (1, "ecx", 0), "pclmul": (1, "ecx", 1), "ssse3": (1, "ecx", 9), "fma": (1, "ecx", 12),
    "cx16": (1, "ecx", 13), "sse4.1": (1, "ecx", 19), "sse4.2": (1, "ecx", 20),
    "movbe": (1, "ecx", 22), "popcnt": (1, "ecx", 23), "aes": (1, "ecx", 25),
    "xsave": (1, "ecx", 26), "osxsave": (1, "ecx", 27), "avx": (1, "ecx", 28),
    "f16c": (1, "ecx", 29), "rdrand": (1, "ecx", 30),
    "bmi1": (7, "ebx", 3), "avx2": (7, "ebx", 5), "bmi2": (7, "ebx", 8), "erms": (7, "ebx", 9),
    "rdseed": (7, "ebx", 18), "adx": (7, "ebx", 19), "sha": (7, "ebx", 29),
    "lahf": (0x80000001, "ecx", 0), "lzcnt": (0x80000001, "ecx", 5),
}
_SIGNATURE = {cpumodel.V2: 0x000206C2,                   # family 6, model 0x2C, stepping 2
              cpumodel.V3: 0x000306C3}                   # family 6, model 0x3C, stepping 3
_VENDOR = b"GenuineIntel"


def select(name: str | None) -> cpumodel.CpuModel:
    """Make model ``name`` (None: BTTOOL_CPU or the default) the one this
    process's guest sees; raises cpumodel.UnknownCpuModel."""
    global _model
    _model = cpumodel.get(name)
    return _model


def model() -> cpumodel.CpuModel:
    return _model


def _bits(leaf: int, reg: str) -> int:
    """The model's feature bits in ``reg`` of ``leaf``."""
    return sum(1 << bit for f, (lf, r, bit) in _FEATURE_BITS.items()
               if lf == leaf and r == reg and _model.has(f))


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
    xsave = _model.has("xsave")
    if leaf == 0:
        return 0xD if xsave else 7, _le(_VENDOR[0:4]), _le(_VENDOR[8:12]), _le(_VENDOR[4:8])
    if leaf == 1:
        return _SIGNATURE[_model.family], (8 << 8) | (1 << 16), _bits(1, "ecx"), _EDX1
    if leaf == 2:
        return 0x00FEFF01, 0, 0, 0
    if leaf == 4:
        return _cache_leaf4(sub)
    if leaf == 7:
        return 0, (_bits(7, "ebx") if sub == 0 else 0), 0, 0
    if leaf == 0xD and xsave:
        if sub == 0:        # supported XCR0 bits; size for XCR0 now, largest size
            size = cpumodel.xsave_size(_model.xcr0)
            return _model.xcr0, size, size, 0
        if sub == 1:        # XSAVEOPT (bit 0), XSAVEC (bit 1); the compacted size
            compact = _model.has("xsavec")
            return (int(_model.has("xsaveopt")) | compact << 1,
                    cpumodel.xsave_size(_model.xcr0) if compact else 0, 0, 0)
        if sub == 2:        # the AVX component: size, offset (compacted: the same, unaligned)
            return cpumodel.XSAVE_AVX_SIZE, cpumodel.XSAVE_AVX_OFFSET, 0, 0
        return 0, 0, 0, 0
    if leaf in (3, 5, 6):
        return 0, 0, 0, 0
    if leaf == 0x80000000:
        return 0x80000008, 0, 0, 0
    if leaf == 0x80000001:
        # LAHF (and LZCNT on v3); SYSCALL, NX, LM
        return 0, 0, _bits(0x80000001, "ecx"), (1 << 11) | (1 << 20) | (1 << 29)
    if 0x80000002 <= leaf <= 0x80000004:
        brand = f"bttool virtual {_model.name} CPU".encode().ljust(48, b"\0")
        chunk = brand[(leaf - 0x80000002) * 16:][:16]
        return tuple(_le(chunk[i:i + 4]) for i in range(0, 16, 4))  # type: ignore[return-value]
    if leaf == 0x80000006:
        return 0, 0, (1024 << 16) | (0x6 << 12) | 64, 0
    if leaf == 0x80000008:
        return 0x3028, 0, 0, 0
    return 0, 0, 0, 0


def xcr0() -> int:
    """XCR0: x87 and SSE state, and AVX state on v3."""
    return _model.xcr0


def execute(name: str, s) -> bool:
    """Run intrinsic ``name`` ("cpuid" or "xgetbv") on CPU state ``s``, as
    the virtual CPU does; False when it raises #GP instead (xgetbv of an XCR
    other than 0).  The linux-user runtime and the snippet runner both
    serve the two instructions through this."""
    if name == "cpuid":
        s.rax, s.rbx, s.rcx, s.rdx = cpuid(s.rax & 0xFFFFFFFF, s.rcx & 0xFFFFFFFF)
        return True
    if s.rcx & 0xFFFFFFFF:
        return False
    v = xcr0()
    s.rax, s.rdx = v & 0xFFFFFFFF, v >> 32
    return True
