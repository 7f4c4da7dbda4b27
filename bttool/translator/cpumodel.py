"""The virtual CPU models a guest can run on (``--cpu``, ``BTTOOL_CPU``).

A model is a fixed, documented set of instruction-set features,
independent of the host: the runtime's CPUID, XCR0 and AT_HWCAP answer
from it (runtime/cpuid.py), and the lifter gives an instruction whose
feature the model lacks the #UD (SIGILL) a CPU without it would raise
(translator/avxtable.py).  It shapes generated code, so its name is part
of every cache key (LiftOptions.cpu).

* ``x86-64-v2``: SSE to SSE4.2, POPCNT, CX16, LAHF/SAHF, plus AES-NI,
  PCLMULQDQ, SHA, RDRAND and RDSEED.  No XSAVE, so no AVX.
* ``x86-64-v3`` (the default): v2 plus XSAVE/OSXSAVE with XCR0 = x87|SSE|AVX, AVX,
  AVX2, FMA, F16C, BMI1, BMI2, LZCNT and MOVBE (the psABI's level 3), and
  ERMS and XSAVEOPT, as the Haswell it reports itself as.
* either with ``OPTIONAL`` features added: ``x86-64-v3+adx`` (ADX is in
  no psABI level; Haswell, which v3 reports itself as, lacks it),
  ``x86-64-v3+xsavec`` (the compacted XSAVE format, from Skylake on: glibc's
  ld.so then saves the state around lazy binding with xsavec).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

V2, V3 = "x86-64-v2", "x86-64-v3"
# v3, the level distributions and HPC builds now assume: glibc takes its
# AVX2 string functions (faster under bttool than the SSE2 ones), and
# -march=x86-64-v3 programs run.  v2 remains for a guest that must not see
# AVX (or a host without it, where AVX runs as generic IR).
DEFAULT = V3
ENV = "BTTOOL_CPU"

# XSAVE state components (the bits of XCR0) and the standard, non-compacted
# layout of an XSAVE area (SDM vol. 1, 13.4-13.5): the legacy fxsave region,
# the 64-byte header, the AVX component (bits 255:128 of ymm0-15).  One
# place for the CPUID leaf 0xD answer (runtime/cpuid.py), the guest's
# xsave/xrstor (semantics/xsave.py) and the signal frame (runtime/fpstate.py).
XCR0_X87, XCR0_SSE, XCR0_AVX = 1, 2, 4
XSAVE_HEADER, XSAVE_HEADER_SIZE = 512, 64
XSAVE_AVX_OFFSET, XSAVE_AVX_SIZE = 576, 256


def xsave_size(xcr0: int) -> int:
    """The standard format's size for the components of ``xcr0`` (what
    CPUID.(0DH,0).EBX reports, and Linux's user_size)."""
    return XSAVE_AVX_OFFSET + XSAVE_AVX_SIZE if xcr0 & XCR0_AVX else XSAVE_AVX_OFFSET


_V2 = frozenset({"sse", "sse2", "sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16", "lahf",
                 "aes", "pclmul", "sha", "rdrand", "rdseed"})
# erms (Haswell has it): glibc then copies and fills large blocks with rep
# movsb/stosb, which bttool translates a chunk at a time (semantics/string.py)
_V3 = _V2 | {"xsave", "osxsave", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "lzcnt", "movbe",
             "erms", "xsaveopt"}


# Features bttool translates that neither model has.  A model name may add
# them, as QEMU's "-cpu Haswell,+adx" does: "x86-64-v3+adx".  (xsavec needs
# xsave, which only v3 has; on v2 it stays #UD like the rest of the family.)
OPTIONAL = frozenset({"adx", "xsavec"})


@dataclass(frozen=True)
class CpuModel:
    name: str
    features: frozenset[str]
    base: str = ""              # the named model it extends ("": itself)

    @property
    def family(self) -> str:
        """The named model (x86-64-v2 or -v3) this one is or extends."""
        return self.base or self.name

    def has(self, feature: str) -> bool:
        return feature in self.features

    @property
    def xcr0(self) -> int:
        """XCR0 as the guest finds it: x87 and SSE state, and AVX state
        where the model has AVX."""
        return XCR0_X87 | XCR0_SSE | (XCR0_AVX if self.has("avx") else 0)


MODELS = {V2: CpuModel(V2, _V2), V3: CpuModel(V3, _V3)}


class UnknownCpuModel(ValueError):
    pass


def get(name: str | None = None) -> CpuModel:
    """Model ``name`` ("x86-64-v3", or with optional features added:
    "x86-64-v3+adx"); None: ``BTTOOL_CPU`` or the default."""
    name = name or os.environ.get(ENV) or DEFAULT
    base, *extras = name.split("+")
    model = MODELS.get(base)
    if model is None:
        raise UnknownCpuModel(f"unknown CPU model {base!r} (choose {', '.join(MODELS)})")
    for extra in extras:
        if extra not in OPTIONAL:
            raise UnknownCpuModel(f"unknown CPU feature {extra!r} in {name!r} "
                                  f"(a model can add: {', '.join(sorted(OPTIONAL))})")
    if not extras:
        return model
    extra_set = frozenset(extras)
    canonical = base + "".join("+" + e for e in sorted(extra_set))   # one cache key per model
    return CpuModel(canonical, model.features | extra_set, base)
