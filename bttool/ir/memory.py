"""Guest memory access from generated code: the one place it happens.

Every load and store that translated code makes to guest memory is built by
``host_pointer`` below.  A guest address is first forced into the guest
window: any address at or above ``GUEST_LIMIT`` (however it was forged) is
replaced by ``GUARD_OFFSET``, an always-unmapped page range just past the
window, so the access faults inside the reserved host region instead of
touching host memory.  The select is branch-free, so it costs a compare and a
cmov.  A system-mode software MMU replaces this function and nothing else.
"""
from __future__ import annotations

import os

from llvmlite import ir

GUEST_BITS = 40
GUEST_LIMIT = 1 << GUEST_BITS          # guest addresses are [0, GUEST_LIMIT)
GUARD_SIZE = 1 << 20                   # never mapped; out-of-range accesses land here
GUARD_OFFSET = GUEST_LIMIT
RESERVE_SIZE = GUEST_LIMIT + GUARD_SIZE

# BTTOOL_UNSAFE_NO_CLAMP=1 (benchmarks only): skip the clamp, so the cost
# of the sandbox can be measured against an unchecked base+address mapping.
# Part of the cache key (LiftOptions.key), so such code never mixes with safe code.
UNSAFE_NO_CLAMP = os.environ.get("BTTOOL_UNSAFE_NO_CLAMP") == "1"

I8 = ir.IntType(8)
I64 = ir.IntType(64)


def host_pointer(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value) -> ir.Value:
    """Map a guest address (i64) to a host pointer inside the guest region.

    ``umin(addr, GUEST_LIMIT)``: the guard starts right at GUEST_LIMIT, so
    this is exactly "addr if inside the window, else the guard"."""
    if UNSAFE_NO_CLAMP:
        return b.gep(membase, [addr], source_etype=I8)
    module = b.module
    umin = module.globals.get("llvm.umin.i64")
    if umin is None:
        umin = ir.Function(module, ir.FunctionType(I64, [I64, I64]), name="llvm.umin.i64")
    off = b.call(umin, [addr, ir.Constant(I64, GUARD_OFFSET)])
    return b.gep(membase, [off], inbounds=True, source_etype=I8)


assert GUARD_OFFSET == GUEST_LIMIT  # host_pointer relies on it


def load(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value, ty: ir.Type) -> ir.Value:
    ptr = host_pointer(b, membase, addr)
    v = b.load(ptr, typ=ty)
    v.align = 1
    return v


def store(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value, value: ir.Value) -> None:
    ptr = host_pointer(b, membase, addr)
    s = b.store(value, ptr)
    s.align = 1
