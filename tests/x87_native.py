"""Native side of the x87 differential tests: assemble snippets with GNU as
and run them on the host CPU.

* ``assemble(snippets)`` turns ``{name: intel-syntax text}`` into raw bytes,
  all snippets in one ``as`` + ``objcopy`` run.
* ``runner().run(code, regs, data, rflags)`` runs ``code`` (ending by
  falling off its end) in an RWX page through a small trampoline that saves
  and restores the host's callee-saved registers and its whole x87/SSE state
  (``fxsave``).  The code starts from the state run_snippet starts from:
  ``fninit`` with all eight registers holding +0 (all empty), MXCSR 0x1F80,
  zeroed xmm registers; rax..r11 come from ``regs`` (rsi defaults to the
  data area).  It returns those registers, rflags and the data area.

The data area is mapped at ``DATA_ADDR`` when that address is free
(MAP_FIXED_NOREPLACE), so absolute addresses would match the translated run;
the tests address data relative to rsi anyway.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import re
import shutil
import subprocess
import tempfile

# the same values as bttool.runtime.snippet (not imported: this module is
# usable on its own)
DATA_ADDR = 0x200000
DATA_SIZE = 0x10000

REG_ORDER = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")
_CTX_CODE = 8 * len(REG_ORDER)          # code address
_CTX_FLAGS = _CTX_CODE + 8              # rflags in/out
_CTX_WORDS = len(REG_ORDER) + 2

_TRAMPOLINE = """
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    mov rbp, rsp
    and rsp, -64
    sub rsp, 512
    fxsave [rsp]
    mov r15, rdi
    fninit
    fldz
    fldz
    fldz
    fldz
    fldz
    fldz
    fldz
    fldz
    fninit
    pxor xmm0, xmm0
    pxor xmm1, xmm1
    pxor xmm2, xmm2
    pxor xmm3, xmm3
    pxor xmm4, xmm4
    pxor xmm5, xmm5
    pxor xmm6, xmm6
    pxor xmm7, xmm7
    pxor xmm8, xmm8
    pxor xmm9, xmm9
    pxor xmm10, xmm10
    pxor xmm11, xmm11
    pxor xmm12, xmm12
    pxor xmm13, xmm13
    pxor xmm14, xmm14
    pxor xmm15, xmm15
    mov dword ptr [rsp-8], 0x1f80
    ldmxcsr [rsp-8]
    push r15
    push qword ptr [r15+%(flags)d]
    popfq
    mov rax, [r15+0]
    mov rbx, [r15+8]
    mov rcx, [r15+16]
    mov rdx, [r15+24]
    mov rsi, [r15+32]
    mov rdi, [r15+40]
    mov r8,  [r15+48]
    mov r9,  [r15+56]
    mov r10, [r15+64]
    mov r11, [r15+72]
    call qword ptr [r15+%(code)d]
    mov r15, [rsp]
    pushfq
    pop qword ptr [r15+%(flags)d]
    pop r15
    mov [r15+0], rax
    mov [r15+8], rbx
    mov [r15+16], rcx
    mov [r15+24], rdx
    mov [r15+32], rsi
    mov [r15+40], rdi
    mov [r15+48], r8
    mov [r15+56], r9
    mov [r15+64], r10
    mov [r15+72], r11
    fxrstor [rsp]
    mov rsp, rbp
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
""" % {"flags": _CTX_FLAGS, "code": _CTX_CODE}

_TOOLS = ("as", "objcopy", "nm")


def tools_available() -> bool:
    return all(shutil.which(t) for t in _TOOLS)


def assemble(snippets: dict[str, str]) -> dict[str, bytes]:
    """Assemble every snippet (Intel syntax, no prefixes) in one batch."""
    names = list(snippets)
    lines = [".intel_syntax noprefix", ".text"]
    for i, name in enumerate(names):
        lines += [f"__s{i}_begin:", snippets[name], f"__s{i}_end:", "nop"]
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, binf = (os.path.join(tmp, n) for n in ("a.s", "a.o", "a.bin"))
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run(["as", "--64", "-o", obj, src], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"as failed:\n{r.stderr}")
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, binf], check=True)
        syms = subprocess.run(["nm", obj], check=True, capture_output=True, text=True).stdout
        with open(binf, "rb") as f:
            blob = f.read()
    addr = {}
    for line in syms.splitlines():
        m = re.match(r"([0-9a-f]+)\s+\w\s+(__s\d+_(?:begin|end))$", line)
        if m:
            addr[m.group(2)] = int(m.group(1), 16)
    return {name: blob[addr[f"__s{i}_begin"]:addr[f"__s{i}_end"]]
            for i, name in enumerate(names)}


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_MAP_FIXED_NOREPLACE = 0x100000
_MAP_FAILED = ctypes.c_void_p(-1).value


class NativeRunner:
    """One RWX code page, one data area and the trampoline."""

    CODE_SIZE = 1 << 16

    def __init__(self) -> None:
        prot_rwx = mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        self.code = _libc.mmap(None, self.CODE_SIZE, prot_rwx, flags, -1, 0)
        if self.code in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap code")
        data = _libc.mmap(DATA_ADDR, DATA_SIZE, mmap.PROT_READ | mmap.PROT_WRITE,
                          flags | _MAP_FIXED_NOREPLACE, -1, 0)
        if data in (None, _MAP_FAILED) or data != DATA_ADDR:
            data = _libc.mmap(None, DATA_SIZE, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0)
            if data in (None, _MAP_FAILED):
                raise OSError(ctypes.get_errno(), "mmap data")
        self.data = data
        tramp = assemble({"t": _TRAMPOLINE})["t"]
        ctypes.memmove(self.code, tramp, len(tramp))
        self.snippet_at = self.code + ((len(tramp) + 63) & -64)
        self._fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self.code)

    def run(self, code: bytes, regs: dict[str, int] | None = None, data: bytes = b"",
            rflags: int = 0x202) -> tuple[dict[str, int], int, bytes]:
        """(Code needing a feature the host lacks, e.g. fisttp without SSE3,
        skips the calling test: native.skip_unless_host_runs.)"""
        from native import skip_unless_host_runs   # (native imports bttool: not at the top)
        skip_unless_host_runs(code)
        body = code + b"\xc3"
        assert self.snippet_at + len(body) <= self.code + self.CODE_SIZE
        ctypes.memmove(self.snippet_at, body, len(body))
        ctypes.memset(self.data, 0, DATA_SIZE)
        ctypes.memmove(self.data, data, min(len(data), DATA_SIZE))
        ctx = (ctypes.c_uint64 * _CTX_WORDS)()
        regs = dict(regs or {})
        regs.setdefault("rsi", self.data)
        for i, name in enumerate(REG_ORDER):
            ctx[i] = regs.get(name, 0) & 0xFFFFFFFFFFFFFFFF
        ctx[len(REG_ORDER)] = self.snippet_at
        ctx[len(REG_ORDER) + 1] = rflags & 0x8D5 | 0x202
        self._fn(ctypes.addressof(ctx))
        out = {name: ctx[i] for i, name in enumerate(REG_ORDER)}
        return out, ctx[len(REG_ORDER) + 1], ctypes.string_at(self.data, DATA_SIZE)


_runner: NativeRunner | None = None


def runner() -> NativeRunner:
    global _runner
    if _runner is None:
        _runner = NativeRunner()
    return _runner
