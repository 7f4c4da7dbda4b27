"""The guest's x87/SSE/AVX state as the fxsave image and the XSAVE area,
both ways: what Linux puts in a signal frame (the ``fpstate`` of the
ucontext) and loads back at rt_sigreturn.

* Without XSAVE (x86-64-v2) the frame holds the plain 512-byte fxsave
  image, as Linux writes it on such a CPU.  Its layout is the one the
  guest's own ``fxsave``/``fxrstor`` use (translator/semantics/x87_env.py):
  abridged tag byte, MXCSR and st.MXCSR_MASK, ST0..ST7 in 16-byte slots,
  xmm0..xmm15; FOP, FIP and FDP are not tracked and read 0.
* With XSAVE (x86-64-v3) it is the standard-format XSAVE area of the
  guest's ``xsave``/``xrstor`` (translator/semantics/xsave.py): that image
  as the legacy region, the XSAVE header at 512 and the AVX state (the
  upper halves of ymm0..15) at 576; ``xsave_image`` and ``xrstor_image``
  follow those instructions, XINUSE included.  The frame's additions
  (Linux's fpu/signal.c) are in ``sigframe_xstate`` and
  ``restore_sigframe``: the software bytes in the legacy region's last 48
  bytes (struct _fpx_sw_bytes: FP_XSTATE_MAGIC1, the extended size, the
  features and the XSAVE size), FP_XSTATE_MAGIC2 after the area, and the
  rules rt_sigreturn applies to a frame the handler may have changed.
"""
from __future__ import annotations

import struct
from typing import Callable

from bttool.ir import state as st
from bttool.translator import cpumodel

SIZE = 512
_SW_TOP = 0x3800
# MXCSR and the x87 control/tag words Linux gives a signal handler
# (fpu__clear_user_states: the init state; every register zero)
INIT_MXCSR, INIT_FCW = 0x1F80, 0x037F

# XSAVE state components (XCR0 bits) and the standard format's offsets
X87, SSE, AVX = cpumodel.XCR0_X87, cpumodel.XCR0_SSE, cpumodel.XCR0_AVX
HEADER, HEADER_SIZE = cpumodel.XSAVE_HEADER, cpumodel.XSAVE_HEADER_SIZE
AVX_OFFSET, AVX_SIZE = cpumodel.XSAVE_AVX_OFFSET, cpumodel.XSAVE_AVX_SIZE
# the legacy region's bytes reserved for software (struct _fpx_sw_bytes)
SW_BYTES = 464
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
MAGIC2_SIZE = 4
_MXCSR_AT, _ST0_AT, _XMM0_AT = 24, 32, 160


def fxsave_image(s: "st.CpuState") -> bytes:
    """The fxsave image of state ``s``."""
    top = s.fpu_top & 7
    fsw = (s.fpu_sw & ~_SW_TOP & 0xFFFF) | (top << 11)
    head = struct.pack("<HHBxHQQII", s.fpu_cw, fsw, ~s.fpu_tag & 0xFF, 0, 0, 0,
                       s.mxcsr, st.MXCSR_MASK)
    stack = b"".join(bytes(getattr(s, f"fpr{(top + i) & 7}"))[:10] + bytes(6) for i in range(8))
    xmm = b"".join(bytes(getattr(s, f"xmm{i}")) for i in range(st.XMM_COUNT))
    return head + stack + xmm + bytes(SIZE - 416)


def _load_x87(s: "st.CpuState", data: bytes) -> None:
    fcw, fsw, ftw = struct.unpack_from("<HHB", data)
    top = (fsw >> 11) & 7
    s.fpu_cw, s.fpu_sw, s.fpu_top, s.fpu_tag = fcw, fsw & ~_SW_TOP & 0xFFFF, top, ~ftw & 0xFF
    for i in range(8):
        at = _ST0_AT + 16 * i
        getattr(s, f"fpr{(top + i) & 7}")[:] = list(data[at:at + 10] + bytes(6))


def _load_xmm(s: "st.CpuState", data: bytes) -> None:
    for i in range(st.XMM_COUNT):
        getattr(s, f"xmm{i}")[:] = list(data[_XMM0_AT + 16 * i:_XMM0_AT + 16 * (i + 1)])


def load_fxsave_image(s: "st.CpuState", data: bytes) -> bool:
    """Load an fxsave image into ``s``; False (nothing loaded) when its
    MXCSR has reserved bits set, which fxrstor and Linux refuse."""
    mxcsr = struct.unpack_from("<I", data, _MXCSR_AT)[0]
    if mxcsr & ~st.MXCSR_MASK:
        return False
    s.mxcsr = mxcsr
    _load_x87(s, data)
    _load_xmm(s, data)
    return True


# -- the XSAVE area ------------------------------------------------------------

def _init_x87(s: "st.CpuState") -> None:
    s.fpu_cw, s.fpu_sw, s.fpu_top, s.fpu_tag = INIT_FCW, 0, 0, 0xFF
    for i in range(8):
        getattr(s, f"fpr{i}")[:] = [0] * 16


def _init_xmm(s: "st.CpuState") -> None:
    for i in range(st.XMM_COUNT):
        getattr(s, f"xmm{i}")[:] = [0] * 16


def _init_avx(s: "st.CpuState") -> None:
    for i in range(st.XMM_COUNT):
        getattr(s, f"ymmh{i}")[:] = [0] * 16


def xinuse(s: "st.CpuState") -> int:
    """The components not in their initial configuration, decided from the
    values as translated ``xsave`` decides (semantics/xsave.py)."""
    x87_init = s.fpu_cw == INIT_FCW and s.fpu_sw & ~_SW_TOP == 0 and s.fpu_top & 7 == 0 \
        and s.fpu_tag == 0xFF and not any(any(bytes(getattr(s, f"fpr{i}"))[:10]) for i in range(8))
    sse_init = not any(any(bytes(getattr(s, f"xmm{i}"))) for i in range(st.XMM_COUNT))
    avx_init = not any(any(bytes(getattr(s, f"ymmh{i}"))) for i in range(st.XMM_COUNT))
    return (0 if x87_init else X87) | (0 if sse_init else SSE) | (0 if avx_init else AVX)


def xsave_image(s: "st.CpuState", xcr0: int) -> bytes:
    """The standard-format XSAVE area ``xsave`` with RFBM = ``xcr0`` writes
    into a buffer whose header was 0 (what Linux's signal delivery does):
    the fxsave image (bytes 416-511 zero), XSTATE_BV = XINUSE, the rest of
    the header zero, and the AVX state when ``xcr0`` has it."""
    header = struct.pack("<Q", xinuse(s) & xcr0).ljust(HEADER_SIZE, b"\0")
    avx = b"".join(bytes(getattr(s, f"ymmh{i}")) for i in range(st.XMM_COUNT)) \
        if xcr0 & AVX else b""
    return fxsave_image(s) + header + avx


def xrstor_image(s: "st.CpuState", read: Callable[[int, int], bytes], rfbm: int, xcr0: int) -> bool:
    """``xrstor`` of a standard-format area with RFBM ``rfbm`` (already
    masked by XCR0): ``read(offset, size)`` gives the area's bytes (and
    raises what a read of unmapped guest memory raises), read only where
    xrstor reads.  False, with nothing changed, where xrstor raises #GP: a
    header with XCOMP_BV or bytes 16-23 not 0 or an XSTATE_BV bit outside
    ``xcr0``, or a reserved MXCSR bit.  Each component of ``rfbm`` is
    loaded when its XSTATE_BV bit is set, initialised when not; MXCSR is
    loaded for SSE or AVX whatever XSTATE_BV says.  The 64-byte alignment
    is the caller's to check."""
    bv, comp, reserved = struct.unpack("<QQQ", read(HEADER, 24))
    if comp or reserved or bv & ~xcr0:
        return False
    legacy = read(0, SIZE) if rfbm & (X87 | SSE | AVX) else b""
    if rfbm & (SSE | AVX):
        mxcsr = struct.unpack_from("<I", legacy, _MXCSR_AT)[0]
        if mxcsr & ~st.MXCSR_MASK:
            return False
    avx = read(AVX_OFFSET, AVX_SIZE) if rfbm & bv & AVX else b""
    if rfbm & (SSE | AVX):
        s.mxcsr = mxcsr
    for bit, load, init in ((X87, _load_x87, _init_x87), (SSE, _load_xmm, _init_xmm)):
        if rfbm & bit:
            (load(s, legacy) if bv & bit else init(s))
    if rfbm & AVX:
        if bv & AVX:
            for i in range(st.XMM_COUNT):
                getattr(s, f"ymmh{i}")[:] = list(avx[16 * i:16 * (i + 1)])
        else:
            _init_avx(s)
    return True


# -- signal frames -------------------------------------------------------------
def sigframe_size(xsave: bool, xcr0: int) -> int:
    """The bytes the FPU state takes in a signal frame (Linux's
    xstate_sigframe_size): the fxsave image, or the XSAVE area and
    FP_XSTATE_MAGIC2."""
    return cpumodel.xsave_size(xcr0) + MAGIC2_SIZE if xsave else SIZE


# What Linux's init_sigframe_size adds to the FPU state for AT_MINSIGSTKSZ
# (the ia32 frame, the fsave header, alignment padding), measured natively
# on Linux 6.18: 1776 with the 832-byte XSAVE area of x87, SSE and AVX.
# (On a host whose XCR0 adds PKRU, 2440 bytes, it gave 3376: the unrounded
# overhead is 928-936 bytes, which gives 944 after rounding for every area
# that is a multiple of 16 bytes, as every virtual CPU model's is.)
_SIGFRAME_RESERVE = 1776 - 832


def min_signal_stack(xsave: bool, xcr0: int) -> int:
    """AT_MINSIGSTKSZ as Linux computes it for this FPU state (the XSAVE
    area of the components in ``xcr0``, else the 512-byte fxsave image),
    rounded up to 16 bytes.  It bounds the frames _setup_frame writes
    (runtime/guestsignals.py), which are smaller."""
    fpu = cpumodel.xsave_size(xcr0) if xsave else SIZE
    return (_SIGFRAME_RESERVE + fpu + 15) & ~15


def sigframe_xstate(s: "st.CpuState", xcr0: int) -> bytes:
    """The FPU state of a signal frame on a CPU with XSAVE (Linux's
    copy_fpstate_to_sigframe): the XSAVE area of every enabled component,
    its software bytes, XSTATE_BV with x87 and SSE always set (so that a
    handler that changed only the legacy region gets those back), and
    FP_XSTATE_MAGIC2 at the end."""
    size = cpumodel.xsave_size(xcr0)
    area = bytearray(xsave_image(s, xcr0))
    struct.pack_into("<IIQI", area, SW_BYTES, FP_XSTATE_MAGIC1, size + MAGIC2_SIZE, xcr0, size)
    struct.pack_into("<Q", area, HEADER, struct.unpack_from("<Q", area, HEADER)[0] | X87 | SSE)
    return bytes(area) + struct.pack("<I", FP_XSTATE_MAGIC2)


def restore_sigframe(s: "st.CpuState", addr: int, read: Callable[[int, int], bytes],
                     xcr0: int) -> bool:
    """rt_sigreturn's load of the FPU state at guest address ``addr`` on a
    CPU with XSAVE (Linux's fpu__restore_sig): ``read(address, size)``.
    The software bytes say whether the frame holds an XSAVE area (magic1,
    a size within [576, the CPU's] and not above the extended size, and
    magic2 after it): then it is xrstor with RFBM = their features & XCR0,
    else the legacy region alone, as fxrstor; components left out are
    initialised.  False (rt_sigreturn's SIGSEGV) where that xrstor or
    fxrstor would fault; unreadable memory raises what ``read`` raises."""
    magic1, extended, features, size = struct.unpack("<IIQI", read(addr + SW_BYTES, 20))
    xsave = magic1 == FP_XSTATE_MAGIC1 and AVX_OFFSET <= size <= cpumodel.xsave_size(xcr0) \
        and size <= extended
    if xsave:
        xsave = struct.unpack("<I", read(addr + size, MAGIC2_SIZE))[0] == FP_XSTATE_MAGIC2
    if xsave:
        if addr & 63:
            return False
        rfbm = features & xcr0
        ok = xrstor_image(s, lambda off, n: read(addr + off, n), rfbm, xcr0)
    else:
        if addr & 15:
            return False
        rfbm = X87 | SSE
        ok = load_fxsave_image(s, read(addr, SIZE))
    if not ok:
        return False
    # the components the frame left out get their init state (Linux loads
    # init_fpstate for them): MXCSR too when SSE is one of them, as a
    # Linux 6.x on an AMD EPYC host does (an fxsave-only frame keeps the
    # MXCSR it has, features without SSE give the default)
    init = xcr0 & ~rfbm
    if init & X87:
        _init_x87(s)
    if init & SSE:
        _init_xmm(s)
        s.mxcsr = INIT_MXCSR
    if init & AVX:
        _init_avx(s)
    return True


def reset_for_handler(s: "st.CpuState") -> None:
    """The FPU state a signal handler starts with: Linux's init state."""
    s.mxcsr = INIT_MXCSR
    _init_x87(s)
    _init_xmm(s)
    _init_avx(s)
