"""Faulting instructions under translation, checked against the architecture
(they cannot run natively inside the test process): #DE for division by zero
and quotient overflow, #UD for ud2 and undefined encodings, #GP for
privileged instructions in user mode (and misaligned cmpxchg16b), and a host
SIGSEGV for loads and stores to unmapped guest memory.

A fault must be precise: rip points at the faulting instruction, the
registers and memory are as before it (so effects of earlier instructions of
the snippet are visible, and none of the faulting one)."""
from __future__ import annotations

import os
import signal
import sys

import pytest
from hypothesis_profiles import examples  # noqa: E402
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
from bttool.ir import state as S  # noqa: E402
from native import CODE_ADDR, DATA_ADDR, DATA_SIZE  # noqa: E402

pytestmark = pytest.mark.usefixtures("isa_tier")   # every test runs under every tier (conftest.py)

EXAMPLES = max(5, int(os.environ.get("BTTOOL_ISA_EXAMPLES", "30")) // 2)
SETTINGS = settings(max_examples=examples(EXAMPLES), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
M64 = (1 << 64) - 1
MEM_BASE = DATA_ADDR + 0x8000
BACKGROUND = bytes((i * 29 + 3) & 0xFF for i in range(DATA_SIZE))
FAULT_NAMES = {0: "none", S.FAULT_DE: "#DE", S.FAULT_UD: "#UD", S.FAULT_GP: "#GP",
               S.FAULT_BP: "#BP", S.FAULT_PF: "#PF"}
U64 = st.integers(0, M64)


def base_regs() -> dict[str, int]:
    regs = N.default_regs()
    regs["rsi"] = MEM_BASE
    regs["rdi"] = MEM_BASE + 0x100
    return regs


def expect_fault(code: bytes, regs: dict[str, int], *, fault: int = 0, host_signal: int = 0,
                 at: int = 0, changed: dict[str, int] | None = None, data: bytes = BACKGROUND,
                 rip: int | None = None, what: str = "") -> None:
    """Run ``code`` translated; it must stop with ``fault`` (or ``host_signal``)
    at offset ``at`` with the registers of the input, updated by ``changed``,
    and the data area untouched."""
    r = N.run_translated(code, regs, 0x202, data=data)
    head = f"{what} [{code.hex()}]"
    assert (r.fault, r.host_signal) == (fault, host_signal), (
        f"{head}: expected fault {FAULT_NAMES[fault]} signal {host_signal}, got "
        f"{FAULT_NAMES.get(r.fault, r.fault)} signal {r.host_signal}")
    want_rip = CODE_ADDR + at if rip is None else rip
    assert r.regs["rip"] == want_rip, f"{head}: rip {r.regs['rip']:#x}, expected {want_rip:#x}"
    want = dict(regs)
    want.update(changed or {})
    diffs = [f"  {k}: expected {want[k] & M64:#x} got {r.regs[k]:#x}"
             for k in N.GPRS if r.regs[k] != want[k] & M64]
    assert not diffs, f"{head}: registers changed by a faulting instruction:\n" + "\n".join(diffs)
    assert r.data == data, f"{head}: data area changed by a faulting instruction"


# ---------------------------------------------------------------------------
# #DE: division by zero and quotient overflow

DIV_FORMS = [  # (asm, width, divisor location: register name or memory offset)
    ("div bl", 8, "bl"), ("div ch", 8, "ch"), ("div r10w", 16, "r10w"), ("div r11d", 32, "r11d"),
    ("div rbx", 64, "rbx"), ("div byte ptr [rsi+0x18]", 8, 0x18),
    ("div word ptr [rsi+0x18]", 16, 0x18), ("div dword ptr [rsi+0x18]", 32, 0x18),
    ("div qword ptr [rsi+0x18]", 64, 0x18),
]
DIV_FORMS += [("i" + a, w, loc) for a, w, loc in DIV_FORMS]
_div_codes = dict(zip([f[0] for f in DIV_FORMS], N.assemble([f[0] for f in DIV_FORMS])))
_REGPART = {"bl": ("rbx", 0), "ch": ("rcx", 8), "r10w": ("r10", 0), "r11d": ("r11", 0),
            "rbx": ("rbx", 0)}


def _sx(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _div_faults(signed: bool, bits: int, dividend: int, divisor: int) -> bool:
    """The architectural rule, to check the test's own inputs."""
    if divisor == 0:
        return True
    if signed:
        n, d = _sx(dividend, 2 * bits), _sx(divisor, bits)
        q = abs(n) // abs(d) * (1 if (n < 0) == (d < 0) else -1)
        return not -(1 << (bits - 1)) <= q < (1 << (bits - 1))
    return dividend // divisor >= 1 << bits


def _setup_div(asm: str, bits: int, loc, dividend: int, divisor: int, regs: dict[str, int],
               data: bytearray) -> None:
    m = (1 << bits) - 1
    if bits == 8:
        regs["rax"] = (regs["rax"] & ~0xFFFF) | (dividend & 0xFFFF)
    else:
        regs["rax"] = (regs["rax"] & ~m) | (dividend & m)
        regs["rdx"] = (regs["rdx"] & ~m) | ((dividend >> bits) & m)
    if isinstance(loc, int):
        at = MEM_BASE - DATA_ADDR + loc
        data[at:at + bits // 8] = (divisor & m).to_bytes(bits // 8, "little")
    else:
        full, shift = _REGPART[loc]
        regs[full] = (regs[full] & ~(m << shift)) | ((divisor & m) << shift)


@st.composite
def overflowing(draw, signed: bool, bits: int) -> tuple[int, int]:
    """(dividend, divisor) whose quotient does not fit in ``bits``."""
    m = (1 << bits) - 1
    wide = (1 << 2 * bits) - 1
    if not signed:
        d = draw(st.integers(1, m))
        hi = draw(st.integers(d, m))          # high half >= divisor: quotient >= 2**bits
        return (hi << bits) | draw(st.integers(0, m)), d
    if draw(st.booleans()):                   # INT_MIN / -1 and the most negative dividend
        n = draw(st.sampled_from([-(1 << (bits - 1)), -(1 << (2 * bits - 1))]))
        return n & wide, m
    ad = draw(st.integers(1, (1 << (bits - 1)) - 1))
    aq = draw(st.integers((1 << (bits - 1)) + 1, ((1 << (2 * bits - 1)) - 1) // ad))
    n = aq * ad
    r = draw(st.integers(0, ad - 1))
    if n + r < 1 << (2 * bits - 1):
        n += r
    n *= draw(st.sampled_from([1, -1]))
    return n & wide, (ad * draw(st.sampled_from([1, -1]))) & m


@pytest.mark.parametrize("asm,bits,loc", DIV_FORMS, ids=[f[0].replace(" ", "_") for f in DIV_FORMS])
@pytest.mark.parametrize("why", ["zero", "overflow"])
def test_divide_error(asm, bits, loc, why):
    signed = asm.startswith("idiv")
    code = _div_codes[asm]

    @SETTINGS
    @given(st.data())
    def check(data):
        regs = base_regs()
        for r in ("rax", "rbx", "rcx", "rdx", "r10", "r11"):
            regs[r] = data.draw(U64, label=r)
        if why == "zero":
            dividend, divisor = data.draw(st.integers(0, (1 << 2 * bits) - 1), label="dividend"), 0
        else:
            dividend, divisor = data.draw(overflowing(signed, bits), label="dividend,divisor")
        mem = bytearray(BACKGROUND)
        _setup_div(asm, bits, loc, dividend, divisor, regs, mem)
        assert _div_faults(signed, bits, dividend, divisor), (dividend, divisor)
        expect_fault(code, regs, fault=S.FAULT_DE, data=bytes(mem), what=asm)

    check()


@pytest.mark.parametrize("asm", ["div cl", "idiv qword ptr [rsi]"])
def test_divide_error_is_precise(asm):
    """Earlier instructions of the block are committed, rip is the div."""
    pre, code = N.assemble(["mov r11d, 0x1234; add rbx, 5", asm])
    regs = base_regs()
    regs["rcx"] = 0xFF00
    mem = bytearray(BACKGROUND)
    mem[0x8000:0x8008] = bytes(8)
    expect_fault(pre + code, regs, fault=S.FAULT_DE, at=len(pre), data=bytes(mem),
                 changed={"r11": 0x1234, "rbx": regs["rbx"] + 5}, what=asm)


# ---------------------------------------------------------------------------
# #UD

UD = {
    "ud2": "ud2", "ud1": "ud1 eax, dword ptr [rax]", "ud0": ".byte 0x0f, 0xff",
    "rep-ud2": ".byte 0xf3, 0x0f, 0x0b",
    # not valid in 64-bit mode
    "push-es": ".byte 0x06", "pop-es": ".byte 0x07", "aaa": ".byte 0x37", "daa": ".byte 0x27",
    "pusha": ".byte 0x60", "into": ".byte 0xce", "salc": ".byte 0xd6",
    # lock on something that is not a locked read-modify-write of memory
    "lock-add-reg": ".byte 0xf0, 0x01, 0xd8", "lock-mov": ".byte 0xf0, 0x8b, 0x03",
    "lock-nop": ".byte 0xf0, 0x90", "lock-cmpxchg8b-reg": ".byte 0xf0, 0x0f, 0xc7, 0xc8",
    # lea with a register source
    "lea-reg": ".byte 0x48, 0x8d, 0xc3",
}
_ud_codes = dict(zip(UD, N.assemble(list(UD.values()))))


@pytest.mark.parametrize("name", list(UD))
def test_invalid_opcode(name):
    expect_fault(_ud_codes[name], base_regs(), fault=S.FAULT_UD, what=name)


def test_invalid_opcode_is_precise():
    pre, code = N.assemble(["mov eax, 5; push 7", "ud2"])
    regs = base_regs()
    expect_fault(pre + code, regs, fault=S.FAULT_UD, at=len(pre),
                 changed={"rax": 5, "rsp": regs["rsp"] - 8}, what="ud2")


# ---------------------------------------------------------------------------
# #GP: privileged instructions in user mode

PRIVILEGED = {
    "cli": "cli", "sti": "sti", "hlt": "hlt",
    "in-al-dx": "in al, dx", "in-eax-imm": "in eax, 0x60", "out-dx-al": "out dx, al",
    "out-imm-eax": "out 0x80, eax", "insb": "insb", "outsw": "outsw", "rep-outsb": "rep outsb",
    "mov-cr0-rax": "mov cr0, rax", "mov-rax-cr0": "mov rax, cr0", "mov-cr3-rax": "mov cr3, rax",
    "mov-rax-cr2": "mov rax, cr2", "mov-dr7-rax": "mov dr7, rax", "mov-rax-dr6": "mov rax, dr6",
    "lgdt": "lgdt [rsi]", "lidt": "lidt [rsi]", "lldt": "lldt ax", "ltr": "ltr ax",
    "wrmsr": "wrmsr", "rdmsr": "rdmsr", "invlpg": "invlpg [rsi]", "wbinvd": "wbinvd",
    "invd": "invd", "swapgs": "swapgs", "clts": "clts", "lmsw": "lmsw ax",
}
_gp_codes = dict(zip(PRIVILEGED, N.assemble(list(PRIVILEGED.values()))))


@pytest.mark.parametrize("name", list(PRIVILEGED))
def test_privileged(name):
    expect_fault(_gp_codes[name], base_regs(), fault=S.FAULT_GP, what=name)


def test_privileged_is_precise():
    pre, code = N.assemble(["xor ecx, ecx; inc rcx", "wrmsr"])
    expect_fault(pre + code, base_regs(), fault=S.FAULT_GP, at=len(pre), changed={"rcx": 1},
                 what="wrmsr")


def test_sysret_is_privileged():
    code, = N.assemble(["sysretq"])
    expect_fault(code, base_regs(), fault=S.FAULT_GP, what="sysretq")


@pytest.mark.parametrize("disp", [8, 4, 1, 0x7FF9])
@pytest.mark.parametrize("lock", ["", "lock "])
def test_cmpxchg16b_misaligned(disp, lock):
    """cmpxchg16b needs a 16-byte aligned operand (#GP otherwise, even if
    the comparison would fail); aligned ones work (test_isa_integer)."""
    code, = N.assemble([f"{lock}cmpxchg16b xmmword ptr [rsi+{disp}]"])
    regs = base_regs()
    expect_fault(code, regs, fault=S.FAULT_GP, what=f"{lock}cmpxchg16b [rsi+{disp:#x}]")


# ---------------------------------------------------------------------------
# host SIGSEGV: guest memory that is not mapped (or not writable)

UNMAPPED = [0, 8, 0x1000, DATA_ADDR - 0x20, DATA_ADDR + DATA_SIZE, 0x7FFF_FFFF_F000, 1 << 47,
            (1 << 60), M64 & ~7, 0x8000_0000_0000_0000]
MEM_FAULTS = {
    "load-abs-0": ("mov rax, qword ptr [0]", {}),
    "load-abs-neg": ("mov eax, dword ptr [-8]", {}),
    "load": ("mov rax, qword ptr [rbx]", None),
    "load8": ("mov cl, byte ptr [rbx+1]", None),
    "store": ("mov qword ptr [rbx], rax", None),
    "store-imm": ("mov dword ptr [rbx+4], 7", None),
    "rmw-add": ("add dword ptr [rbx], eax", None),
    "lock-xadd": ("lock xadd qword ptr [rbx], rcx", None),
    "cmpxchg": ("cmpxchg dword ptr [rbx], ecx", None),
    "xchg": ("xchg qword ptr [rbx], rdx", None),
    "bt-mem": ("bt dword ptr [rbx], 3", None),
    "inc-mem": ("inc byte ptr [rbx]", None),
    "movzx-load": ("movzx eax, word ptr [rbx]", None),
    "push-mem": ("push qword ptr [rbx]", None),
    "pop-mem": ("pop qword ptr [rbx]", None),
    "movsb-src": ("movsb", "rsi"),
    "stosq-dst": ("stosq", "rdi"),
    "rep-movsq": ("rep movsq", "rsi"),
    "lodsd": ("lodsd", "rsi"),
    "scasb": ("scasb", "rdi"),
}
_mem_codes = dict(zip(MEM_FAULTS, N.assemble([v[0] for v in MEM_FAULTS.values()])))


@pytest.mark.parametrize("name", list(MEM_FAULTS))
def test_unmapped_access(name):
    asm, how = MEM_FAULTS[name]
    code = _mem_codes[name]

    @SETTINGS
    @given(st.sampled_from(UNMAPPED), st.integers(0, 7))
    def check(addr, off):
        regs = base_regs()
        regs["rcx"] = 1
        if how is None:
            regs["rbx"] = (addr + off) & M64 if addr else addr
        elif isinstance(how, str):
            regs[how] = addr
        if name == "pop-mem":   # the load from the stack works, the store faults
            regs["rsp"] = MEM_BASE
        expect_fault(code, regs, host_signal=signal.SIGSEGV, what=f"{asm} @ {addr:#x}")

    check()


@pytest.mark.parametrize("asm,reg,value", [
    ("mov rax, qword ptr [rbx]", "rbx", DATA_ADDR + DATA_SIZE - 4),    # straddles the end
    ("mov qword ptr [rbx], rax", "rbx", DATA_ADDR + DATA_SIZE - 1),
    ("push rax", "rsp", 0x1000),                                      # stack not mapped
    ("push rax", "rsp", N.STACK_ADDR),                                # just below the stack
    ("call 1f; 1: nop", "rsp", 0x8),
    ("pop rax", "rsp", N.STACK_ADDR + N.STACK_SIZE),                  # just above the stack
    ("ret", "rsp", 0x100),
    ("mov dword ptr [rip], eax", None, 0),                            # code is not writable
    ("add byte ptr [rip-8], 1", None, 0),
    ("mov byte ptr [rbx], 1", "rbx", CODE_ADDR),
    ("cmpxchg16b xmmword ptr [rbx]", "rbx", 0x2000),
], ids=lambda v: v.replace(" ", "_") if isinstance(v, str) else hex(v) if isinstance(v, int) else str(v))
def test_segv_edges(asm, reg, value):
    code, = N.assemble([asm])
    regs = base_regs()
    if reg:
        regs[reg] = value
    expect_fault(code, regs, host_signal=signal.SIGSEGV, what=asm)


def test_segv_first_access_in_block():
    """A fault on the first instruction of a block: nothing is committed."""
    code, = N.assemble(["mov rax, qword ptr [rcx]; mov ebx, 5; mov qword ptr [rsi], rbx"])
    regs = base_regs()
    regs["rcx"] = 0
    expect_fault(code, regs, host_signal=signal.SIGSEGV, what="load at block start")


# Code before a fault in the same region, for which the host CPU gives the
# state the fault must report: each reads memory (or an x87 register) that
# it or a later one writes, so running it twice would be seen (the x87
# register file, kept in the state, gets the same commits: ir/commits.py).
PRECISE_PREFIXES = [
    "mov eax, 5",
    "add dword ptr [rsi], 1",
    "inc qword ptr [rsi+8]",
    "mov eax, dword ptr [rsi]; add eax, 7; mov dword ptr [rsi], eax",
    "mov eax, dword ptr [rsi+4]; mov dword ptr [rsi], eax; add dword ptr [rsi+4], eax",
    "lock xadd dword ptr [rsi], edx",
    "xchg qword ptr [rsi], rdx",
    "mov eax, dword ptr [rsi]; lock cmpxchg dword ptr [rsi], edx",
    "push qword ptr [rsi]; add qword ptr [rsp], 3; pop qword ptr [rsi]",
    "mov r8d, 3; 1: add dword ptr [rsi], 1; add rsi, 2; dec r8d; jnz 1b",
    "neg byte ptr [rsi]; not word ptr [rsi+2]; sub dword ptr [rsi+4], 3",
]


# (and code after the fault that overwrites the flags: they must still be
# the ones before it, across a block boundary too)
PRECISE_WITH_SUFFIX = [(p, "") for p in PRECISE_PREFIXES] + [
    ("add dword ptr [rsi], 1", "xor eax, eax"),
    ("sub qword ptr [rsi], 9; jmp 1f; 1:", "cmp eax, eax"),
    ("mov eax, dword ptr [rsi]; inc eax; mov dword ptr [rsi], eax; test eax, eax; jz 1f; 1:",
     "add eax, 1"),
]


@pytest.mark.parametrize("pre,suffix", PRECISE_WITH_SUFFIX)
def test_segv_is_precise(pre, suffix):
    """In code translated for a guest with a SIGSEGV handler (precise
    faults), a host memory fault is reported with rip at the faulting
    instruction and the registers, flags and memory that the instructions
    before it in the same region leave on the host CPU: none is run twice."""
    pre_code, code = N.assemble([pre, "mov rbx, qword ptr [rcx]" + (f"; {suffix}" if suffix else "")])
    regs = base_regs()
    regs["rcx"], regs["rdx"] = 0, 0x1111
    native = N.run_native(pre_code, regs, 0x202, data=BACKGROUND)
    r = N.run_translated(pre_code + code, regs, 0x202, data=BACKGROUND, reuse=False,
                         precise_faults=True)
    assert (r.fault, r.host_signal) == (0, signal.SIGSEGV), (r.fault, r.host_signal)
    assert r.regs["rip"] == CODE_ADDR + len(pre_code), hex(r.regs["rip"])
    r.host_signal = 0
    N.compare(native, r, what=pre)


@pytest.mark.parametrize("target", [0x1000, 0x7FFF_0000, DATA_ADDR])
@pytest.mark.parametrize("how", ["jmp rbx", "call rbx"])
def test_fetch_from_non_code(target, how):
    """Jumping to memory that is not mapped executable: #PF at the target
    (a call has pushed its return address)."""
    code, = N.assemble([how])
    regs = base_regs()
    regs["rbx"] = target
    changed = {"rsp": regs["rsp"] - 8} if how.startswith("call") else {}
    r = N.run_translated(code, regs)
    assert r.fault == S.FAULT_PF and r.regs["rip"] == target, (r.fault, hex(r.regs["rip"]))
    for k in N.GPRS:
        assert r.regs[k] == changed.get(k, regs[k]), k
