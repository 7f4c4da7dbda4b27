"""Results that differ between correct x86-64 CPUs: the one place where the
differential tests stop comparing something, each entry with its reason.

A test that meets one of these compares everything else.  What is listed
here is what the manuals (or the CPUs, against their manual) leave to the
implementation, so it may differ between the host and bttool without
either being wrong; it is never a place for what bttool gets wrong.  Where
bttool makes a choice for such a result, a test with the expected values
written out pins it (so it is checked on any host); the entry names it.

(The flags the SDM calls *undefined* after an instruction are masked per
case in tests/test_isa_integer.py, and the x87 C1 bits where the SDM leaves
them undefined in tests/test_x87_semantics.py: both are the manual's own
per-instruction lists.)

dpps/dppd where NaNs meet: the SDM's pseudocode fixes the order of the
sums ((p0+p1) + (p2+p3)) and so which NaN each lane gets; bttool follows it
and so does the AMD family 25 host, but an Intel Xeon host gives different
lanes different NaNs for the same inputs (DPP_NANS).
"""
from __future__ import annotations

from dataclasses import dataclass

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1


@dataclass(frozen=True)
class Entry:
    name: str
    reason: str
    pinned_by: str          # the test that checks bttool's own choice inline


def _addr32_rep_zero_count(regs_in: dict[str, int]) -> dict[str, int] | None:
    if regs_in.get("rcx", 1) & M32:
        return None
    return {"rcx": M32, "rsi": M32, "rdi": M32}


ADDR32_REP_ZERO_COUNT = Entry(
    "addr32 rep string instruction starting with ECX = 0",
    "No iteration runs.  The SDM's REP pseudocode then writes neither the count "
    "nor ESI/EDI, and this AMD host (family 25) leaves RCX, RSI and RDI whole, "
    "for movs/stos/lods/cmps/scas with rep, repe and repne alike (bttool does the "
    "same).  Other implementations write them anyway, zero-extended: Bochs, "
    "which models Intel CPUs, clears RSI/RDI[63:32] after every addr32 rep "
    "string instruction, and issue 14 reports a host that clears RCX[63:32].  "
    "Only bits 31:0 of RCX, RSI and RDI are compared then.",
    "tests/test_isa_integer.py::test_addr32_rep_zero_count_inline")

def host_vendor() -> str:
    """The host CPU's vendor string (``vendor_id`` in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


AMD_ENCODINGS = Entry(
    "encodings that AMD and Intel CPUs execute differently",
    "bttool's translator follows AMD (family 25), the host its tests were first "
    "written on: 66-prefixed near branches take a 16-bit operand size (Intel "
    "ignores the prefix), 0f 0d with a register operand is #UD (a hint-space NOP "
    "on Intel), LOCK verw runs (Intel, and AMD from family 26 on: #UD), movsxd "
    "r16, m reads 4 bytes (Intel: "
    "2), LOCK mov to or from cr0 is AMD's alternative encoding of cr8, #GP in user "
    "mode (Intel: #UD).  On a host of another vendor (and for LOCK verw on an AMD "
    "host of family 26 or later) these cases skip the native comparison; what "
    "bttool does is checked inline on every host.",
    "tests/test_isa_corners.py::test_amd_encodings_translated")

# Cases of AMD_ENCODINGS, by their name in tests/test_isa_corners.py
AMD_ENCODING_CASES = frozenset({
    "0f0d reg /0", "0f0d reg /1", "0f0d reg /7", "lock verw [rbx]", "lock verw [rbx] with REX.W",
    "movsxd cx, [rbx] near the end of memory", "lock mov rbx, cr0 = mov rbx, cr8",
    "lock mov cr0, r11 = mov cr8, r11"})
HOST_IS_AMD = host_vendor() == "AuthenticAMD"


def host_family() -> int:
    """The host CPU's family (``cpu family`` in /proc/cpuinfo; 0 if unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu family"):
                    return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return 0


# Cases of AMD_ENCODINGS where AMD family 26 (Zen 5) behaves as Intel does
# (seen: LOCK verw is #UD natively there)
INTEL_LIKE_FROM_FAMILY_26 = frozenset({"lock verw [rbx]", "lock verw [rbx] with REX.W"})


def host_runs_as_pinned_amd(case: str) -> bool:
    """Whether the host executes AMD_ENCODINGS case ``case`` as bttool
    does (the AMD family 25 behaviour)."""
    if not HOST_IS_AMD:
        return False
    return case not in INTEL_LIKE_FROM_FAMILY_26 or host_family() < 26

DPP_NANS = Entry(
    "dpps/dppd results where NaNs meet",
    "The SDM's pseudocode sums the products as (p0+p1) + (p2+p3), which fixes the "
    "NaN each result lane gets; bttool and the AMD family 25 host follow it.  An "
    "Intel Xeon host returned 7fe00001 in two lanes and 7fc00000 in the other two "
    "for one dpps (a quieted sNaN input and a default NaN), where the pseudocode "
    "gives 7fe00001 in all four.  On a host that is not AMD a lane that is a NaN "
    "on both sides is not compared further.",
    "tests/test_sse_semantics.py::test_dot_product_nans_inline")

ENTRIES = [ADDR32_REP_ZERO_COUNT, AMD_ENCODINGS, DPP_NANS]


def addr32_rep_zero_count(regs_in: dict[str, int]) -> dict[str, int] | None:
    """The register mask (``native.compare``'s ``reg_mask``) for an addr32
    rep string instruction run from ``regs_in``: see ADDR32_REP_ZERO_COUNT."""
    return _addr32_rep_zero_count(regs_in)


def dpp_nan_lanes_agree(insn: str, native: int, translated: int) -> bool:
    """Whether two xmm values of ``insn`` differ only where DPP_NANS allows:
    on a host that is not AMD, a dpps/dppd result lane that is a NaN in both
    (any payload)."""
    if HOST_IS_AMD or not insn.startswith(("dpps", "dppd")):
        return False
    bits = 32 if insn.startswith("dpps") else 64
    exp = ((1 << (bits - 1)) - 1) & ~((1 << (23 if bits == 32 else 52)) - 1)
    mant = (1 << (23 if bits == 32 else 52)) - 1

    def nan(v: int) -> bool:
        return v & exp == exp and bool(v & mant)
    for lane in range(128 // bits):
        a = (native >> (lane * bits)) & ((1 << bits) - 1)
        b = (translated >> (lane * bits)) & ((1 << bits) - 1)
        if a != b and not (nan(a) and nan(b)):
            return False
    return True


__all__ = ["Entry", "ENTRIES", "ADDR32_REP_ZERO_COUNT", "addr32_rep_zero_count", "AMD_ENCODINGS",
           "AMD_ENCODING_CASES", "HOST_IS_AMD", "host_vendor", "host_family",
           "INTEL_LIKE_FROM_FAMILY_26", "host_runs_as_pinned_amd", "DPP_NANS", "dpp_nan_lanes_agree"]
