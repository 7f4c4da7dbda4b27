"""How translated units are called: the one signature and calling
convention shared by every unit function (ir/emitter.py), every stencil and
its continuations (ir/stencil.py), the chain at a unit's exit
(ir/tables.emit_chain) and the runtime's callers (runtime/nativeloop.py
``bt_run`` and ``bt_step``).

A unit is ``void f(ptr mem, ptr noalias state)`` in LLVM's
``preserve_none`` convention: the callee saves no register but rsp and
rbp.  With the C convention every unit that used rbx or r12-r15 pushed
them at entry and popped them before its chaining tail call, although only
``bt_run`` (where the chain of tail calls finally returns) needs them
kept: an interpreter whose bytecode handlers are regions of their own paid
that per bytecode (Lua 4.72x native warm with it, 4.49x without:
``bench/ab real/lua``).  ``preserve_none`` passes its arguments in r12, r13
and on: ``mem`` comes first so that ``state``, the base of every access to
the CPU state, is r13 (r12 as a base register costs an extra SIB byte in
every such access; ``mem`` is always used with an index, where it costs
nothing).

Plain text at import (no llvmlite): nativeloop's IR text names the call.
"""
from __future__ import annotations

import functools

# LLVM's name of the convention, as it appears in IR text
UNIT_CCONV = "preserve_nonecc"

# The flags mark: the byte just before every unit that the lookup table
# may hold (LLVM prefix data; stitched regions lay it out themselves,
# translator/stitch.py), in a prefix of MARK_BYTES that keeps the entry
# aligned.  FLAGS_UNNEEDED: the unit overwrites all six arithmetic flags
# before it reads any of them or leaves (translator/flaglive.liveness),
# so a tier-2 exit that chains to it need not compute or store the flags it
# changed (ir/tables.emit_chain): an interpreter's dispatch (`add rbx, r10;
# jmp rax`) set all six at every bytecode.  Anything else: FLAGS_NEEDED.
MARK_BYTES = 16
FLAGS_NEEDED = 1
FLAGS_UNNEEDED = 0


def unit_type():
    """The llvmlite function type of a unit."""
    from llvmlite import ir
    return ir.FunctionType(ir.VoidType(), [ir.PointerType(), ir.PointerType()])


def unit_function(module, name: str, mark: int | None = None):
    """Declare (or begin defining) unit ``name`` in ``module``: the type,
    the convention, ``state`` noalias (guest memory never aliases the CPU
    state, so LLVM keeps guest registers in host registers) and nounwind
    (nothing unwinds through translated code: faults leave it by
    siglongjmp, runtime/nativeloop.py; without it every object carried an
    .eh_frame that the JIT registers at load).  ``mark``: the flags mark
    (a unit the lookup table may hold must have one; its ``mark``
    attribute may be changed until the module is printed)."""
    fn = _unit_class()(module, unit_type(), name=name)
    fn.mark = mark
    fn.calling_convention = UNIT_CCONV
    mem, state = fn.args
    mem.name, state.name = "mem", "state"
    state.add_attribute("noalias")
    fn.attributes.add("nounwind")
    return fn


def unit_params(fn) -> tuple:
    """(state, mem): the arguments of unit function ``fn``."""
    mem, state = fn.args
    return state, mem


def tail_call_unit(b, callee, state, mem) -> None:
    """End the current block by jumping to unit ``callee`` (a function, or
    a pointer wrapped to know its type) with ``state`` and ``mem``: a tail
    call, so the host stack never grows along a chain."""
    b.call(callee, [mem, state], cconv=UNIT_CCONV, tail="musttail")
    b.ret_void()


def ir_text_call(fn: str, state: str, mem: str) -> str:
    """The IR text of a call to the unit at ``fn`` (names of IR values)."""
    return f"call {UNIT_CCONV} void {fn}(ptr {mem}, ptr {state})"


@functools.cache
def _unit_class():
    """ir.Function with the flags mark as prefix data (llvmlite prints no
    prefix of its own).  Made at first use: llvmlite is not imported by
    warm runs."""
    from llvmlite import ir

    class UnitFunction(ir.Function):
        mark: int | None = None

        def descr_prototype(self, buf) -> None:
            head: list[str] = []
            super().descr_prototype(head)
            line = "".join(head)
            if self.mark is not None and self.blocks:
                if self.metadata:
                    raise AssertionError("prefix data goes before a function's metadata")
                line = (line.rstrip("\n") + f" prefix <{{ [{MARK_BYTES - 1} x i8], i8 }}> "
                        f"<{{ [{MARK_BYTES - 1} x i8] zeroinitializer, i8 {self.mark} }}>\n")
            buf.append(line)
    return UnitFunction
