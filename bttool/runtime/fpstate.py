"""The guest's x87/SSE state as the 512-byte fxsave image, both ways.

Linux puts this image in a signal frame (the ``fpstate`` of the ucontext;
the virtual CPU has no XSAVE, so it is the plain fxsave format, as Linux
writes it on such a CPU) and loads it back at rt_sigreturn.  The layout is
the one the guest's own ``fxsave``/``fxrstor`` use
(translator/semantics/x87_env.py): abridged tag byte, MXCSR and
st.MXCSR_MASK, ST0..ST7 in 16-byte slots, xmm0..xmm15; FOP, FIP and FDP are
not tracked and read 0.
"""
from __future__ import annotations

import struct

from bttool.ir import state as st

SIZE = 512
_SW_TOP = 0x3800
# MXCSR and the x87 control/tag words Linux gives a signal handler
# (fpu__clear_user_states: the init state; every register zero)
INIT_MXCSR, INIT_FCW = 0x1F80, 0x037F


def fxsave_image(s: "st.CpuState") -> bytes:
    """The fxsave image of state ``s``."""
    top = s.fpu_top & 7
    fsw = (s.fpu_sw & ~_SW_TOP & 0xFFFF) | (top << 11)
    head = struct.pack("<HHBxHQQII", s.fpu_cw, fsw, ~s.fpu_tag & 0xFF, 0, 0, 0,
                       s.mxcsr, st.MXCSR_MASK)
    stack = b"".join(bytes(getattr(s, f"fpr{(top + i) & 7}"))[:10] + bytes(6) for i in range(8))
    xmm = b"".join(bytes(getattr(s, f"xmm{i}")) for i in range(st.XMM_COUNT))
    return head + stack + xmm + bytes(SIZE - 416)


def load_fxsave_image(s: "st.CpuState", data: bytes) -> bool:
    """Load an fxsave image into ``s``; False (nothing loaded) when its
    MXCSR has reserved bits set, which fxrstor and Linux refuse."""
    fcw, fsw, ftw, _, _, _, mxcsr, _ = struct.unpack_from("<HHBxHQQII", data)
    if mxcsr & ~st.MXCSR_MASK:
        return False
    top = (fsw >> 11) & 7
    s.fpu_cw, s.fpu_sw, s.fpu_top, s.fpu_tag = fcw, fsw & ~_SW_TOP & 0xFFFF, top, ~ftw & 0xFF
    s.mxcsr = mxcsr
    for i in range(8):
        getattr(s, f"fpr{(top + i) & 7}")[:] = list(data[32 + 16 * i:32 + 16 * i + 10] + bytes(6))
    for i in range(st.XMM_COUNT):
        getattr(s, f"xmm{i}")[:] = list(data[160 + 16 * i:176 + 16 * i])
    return True


def reset_for_handler(s: "st.CpuState") -> None:
    """The FPU state a signal handler starts with: Linux's init state."""
    s.fpu_cw, s.fpu_sw, s.fpu_top, s.fpu_tag, s.mxcsr = INIT_FCW, 0, 0, 0xFF, INIT_MXCSR
    for i in range(8):
        getattr(s, f"fpr{i}")[:] = [0] * 16
    for i in range(st.XMM_COUNT):
        getattr(s, f"xmm{i}")[:] = [0] * 16
