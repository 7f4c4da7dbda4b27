"""An llvmlite IRBuilder whose common instructions cost little to create and
to print.

Translation time is mostly Python, and most of that was llvmlite's
instruction objects: every instruction registered a unique name in the
function's name scope when it was made and was formatted through several
generic layers when the module was printed (about 9 us per IR instruction,
10.5 IR instructions per guest instruction; measured with
bench/translate_cost).  ``FastBuilder`` keeps llvmlite's builder, types,
constants, blocks and module (and its API: callers do not change) but makes
the instructions the lifter emits most often as ``FastInstr``: numbered
``%_N`` from one counter instead of a name scope (llvmlite never makes such
a name: unnamed values are ``%".N"``, named ones are quoted), and printed by
one small format per kind.  Anything unusual (names, flags, untyped loads,
terminators, phis) goes to llvmlite's own implementation, so both kinds of
instruction mix freely in one function.

Set ``ENABLED = False`` to build with plain llvmlite instructions (the test
that both produce the same machine code does this).
"""
from __future__ import annotations

import itertools
from types import MappingProxyType

from llvmlite import ir

ENABLED = True

_numbers = itertools.count()
_NO_METADATA = MappingProxyType({})
_ORDER = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_ICMP_UNSIGNED = {"==": "eq", "!=": "ne", **{k: "u" + v for k, v in _ORDER.items()}}
_ICMP_SIGNED = {"==": "eq", "!=": "ne", **{k: "s" + v for k, v in _ORDER.items()}}
_FCMP_ORDERED = {"==": "oeq", "!=": "one", **{k: "o" + v for k, v in _ORDER.items()}}
_FCMP_UNORDERED = {"==": "ueq", "!=": "une", **{k: "u" + v for k, v in _ORDER.items()}}
_I1 = ir.IntType(1)


class FastInstr(ir.Instruction):
    """An instruction printed by ``_FORMATS[kind]``; see the module docstring.

    It is an ``ir.Instruction`` (``opname``, ``operands``, ``type`` and
    ``parent`` mean what they mean there) but never enters a name scope,
    and ``align`` may be set after creation, as on llvmlite's loads and
    stores."""
    metadata = _NO_METADATA
    flags = ()
    align = None

    def __init__(self, block: ir.Block, typ: ir.Type, opname: str, operands: tuple, kind: str,
                 extra=None) -> None:
        # NamedValue.__init__ would register a name; a number is unique anyway.
        self.parent = block
        self.type = typ
        self.opname = opname
        self.operands = operands
        self.kind = kind
        self.extra = extra
        self._name = f"_{next(_numbers)}"

    def get_reference(self) -> str:
        return "%" + self._name

    def __str__(self) -> str:
        return _FORMATS[self.kind](self)

    def _clear_string_cache(self) -> None:   # llvmlite's replace_usage calls it
        pass


def _ref(v: ir.Value) -> str:
    return f"{v.type} {v.get_reference()}"


def _align(i: FastInstr) -> str:
    return f", align {i.align}" if i.align is not None else ""


_FORMATS = {
    # add, icmp ult, fcmp oeq...: the type is the first operand's
    "binary": lambda i: (f"%{i._name} = {i.opname} {i.operands[0].type} "
                         f"{i.operands[0].get_reference()}, {i.operands[1].get_reference()}"),
    "cast": lambda i: f"%{i._name} = {i.opname} {_ref(i.operands[0])} to {i.type}",
    "select": lambda i: (f"%{i._name} = select {_ref(i.operands[0])}, {_ref(i.operands[1])}, "
                         f"{_ref(i.operands[2])}"),
    "load": lambda i: f"%{i._name} = load {i.type}, {_ref(i.operands[0])}{_align(i)}",
    "load volatile": lambda i: f"%{i._name} = load volatile {i.type}, {_ref(i.operands[0])}{_align(i)}",
    "store": lambda i: f"store {_ref(i.operands[0])}, {_ref(i.operands[1])}{_align(i)}",
    "gep": lambda i: (f"%{i._name} = getelementptr{' inbounds' if i.extra[1] else ''} {i.extra[0]}, "
                      + ", ".join(_ref(o) for o in i.operands)),
    "call": lambda i: ((f"%{i._name} = " if i.extra else "")
                       + f"call {i.type} "
                       f"{i.operands[0].get_reference()}({', '.join(_ref(a) for a in i.operands[1:])})"),
    "extractelement": lambda i: f"%{i._name} = extractelement {_ref(i.operands[0])}, {_ref(i.operands[1])}",
    "insertelement": lambda i: (f"%{i._name} = insertelement {_ref(i.operands[0])}, "
                                f"{_ref(i.operands[1])}, {_ref(i.operands[2])}"),
    "shufflevector": lambda i: (f"%{i._name} = shufflevector {_ref(i.operands[0])}, "
                                f"{_ref(i.operands[1])}, {_ref(i.operands[2])}"),
}


class _VolatileLoad(ir.instructions.LoadInstr):
    """llvmlite's load, printed volatile (FastBuilder.load_volatile with
    ENABLED off)."""
    def descr(self, buf):
        start = len(buf)
        super().descr(buf)
        buf[start] = buf[start].replace("load ", "load volatile ", 1)


def _binary(opname: str):
    def build(self, lhs, rhs, name="", flags=()):
        if name or flags or not ENABLED:
            return getattr(ir.IRBuilder, opname)(self, lhs, rhs, name, flags)
        i = FastInstr(self._block, lhs.type, _LLVM_OP[opname], (lhs, rhs), "binary")
        self._insert(i)
        return i
    build.__name__ = opname
    return build


def _cast(opname: str):
    def build(self, value, typ, name=""):
        if name or not ENABLED:
            return getattr(ir.IRBuilder, opname)(self, value, typ, name)
        if value.type == typ:      # as llvmlite: a cast to the same type is no instruction
            return value
        i = FastInstr(self._block, typ, opname, (value,), "cast")
        self._insert(i)
        return i
    build.__name__ = opname
    return build


_LLVM_OP = {"and_": "and", "or_": "or"}
_BINARY = ("add", "sub", "mul", "and_", "or_", "xor", "shl", "lshr", "ashr", "udiv", "sdiv",
           "urem", "srem", "fadd", "fsub", "fmul", "fdiv")
_CASTS = ("trunc", "zext", "sext", "bitcast", "fpext", "fptrunc", "sitofp", "fptosi", "uitofp",
          "fptoui", "inttoptr", "ptrtoint")
for _op in _BINARY:
    _LLVM_OP.setdefault(_op, _op)


class FastBuilder(ir.IRBuilder):
    """``ir.IRBuilder`` with cheap instructions; see the module docstring."""

    def _compare(self, opname: str, lhs, rhs):
        ty = lhs.type
        rtype = ir.VectorType(_I1, ty.count) if isinstance(ty, ir.VectorType) else _I1
        i = FastInstr(self._block, rtype, opname, (lhs, rhs), "binary")
        self._insert(i)
        return i

    def icmp_unsigned(self, cmpop, lhs, rhs, name=""):
        if name or not ENABLED:
            return super().icmp_unsigned(cmpop, lhs, rhs, name)
        return self._compare("icmp " + _ICMP_UNSIGNED[cmpop], lhs, rhs)

    def icmp_signed(self, cmpop, lhs, rhs, name=""):
        if name or not ENABLED:
            return super().icmp_signed(cmpop, lhs, rhs, name)
        return self._compare("icmp " + _ICMP_SIGNED[cmpop], lhs, rhs)

    def fcmp_ordered(self, cmpop, lhs, rhs, name="", flags=()):
        if name or flags or not ENABLED:
            return super().fcmp_ordered(cmpop, lhs, rhs, name, flags)
        return self._compare("fcmp " + _FCMP_ORDERED.get(cmpop, cmpop), lhs, rhs)

    def fcmp_unordered(self, cmpop, lhs, rhs, name="", flags=()):
        if name or flags or not ENABLED:
            return super().fcmp_unordered(cmpop, lhs, rhs, name, flags)
        return self._compare("fcmp " + _FCMP_UNORDERED.get(cmpop, cmpop), lhs, rhs)

    def select(self, cond, lhs, rhs, name="", flags=()):
        if name or flags or not ENABLED:
            return super().select(cond, lhs, rhs, name, flags)
        i = FastInstr(self._block, lhs.type, "select", (cond, lhs, rhs), "select")
        self._insert(i)
        return i

    def load(self, ptr, name="", align=None, typ=None):
        if name or typ is None or not ENABLED:
            return super().load(ptr, name, align, typ)
        i = FastInstr(self._block, typ, "load", (ptr,), "load")
        i.align = align
        self._insert(i)
        return i

    def load_volatile(self, ptr, typ: ir.Type, align: int | None = None) -> ir.Instruction:
        """``load volatile``: a load LLVM neither deletes nor merges (llvmlite
        has no such flag on its loads)."""
        if not ENABLED:
            i = _VolatileLoad(self._block, ptr, typ=typ)
        else:
            i = FastInstr(self._block, typ, "load", (ptr,), "load volatile")
        i.align = align
        self._insert(i)
        return i

    def store(self, value, ptr, align=None):
        if not ENABLED or not ptr.type.is_opaque and ptr.type.pointee != value.type:
            return super().store(value, ptr, align)   # llvmlite's check and message
        i = FastInstr(self._block, ir.VoidType(), "store", (value, ptr), "store")
        i.align = align
        self._insert(i)
        return i

    def gep(self, ptr, indices, inbounds=False, name="", source_etype=None):
        if name or source_etype is None or not ENABLED:
            return super().gep(ptr, indices, inbounds, name, source_etype)
        i = FastInstr(self._block, ptr.type, "getelementptr", (ptr, *indices), "gep",
                      (source_etype, inbounds))
        self._insert(i)
        return i

    def call(self, fn, args, name="", cconv=None, tail=False, fastmath=(), attrs=(),
             arg_attrs=None):
        if (name or cconv or tail or fastmath or attrs or arg_attrs or not ENABLED
                or not isinstance(fn, ir.Function) or fn.calling_convention or fn.ftype.var_arg
                or any(isinstance(t, ir.MetaDataType) for t in fn.ftype.args)):
            return super().call(fn, args, name, cconv, tail, fastmath, attrs, arg_attrs)
        ret = fn.ftype.return_type
        i = FastInstr(self._block, ret, "call", (fn, *args), "call", not isinstance(ret, ir.VoidType))
        self._insert(i)
        return i

    def extract_element(self, vector, idx, name=""):
        if name or not ENABLED:
            return super().extract_element(vector, idx, name)
        i = FastInstr(self._block, vector.type.element, "extractelement", (vector, idx), "extractelement")
        self._insert(i)
        return i

    def insert_element(self, vector, value, idx, name=""):
        if name or not ENABLED:
            return super().insert_element(vector, value, idx, name)
        i = FastInstr(self._block, vector.type, "insertelement", (vector, value, idx), "insertelement")
        self._insert(i)
        return i

    def shuffle_vector(self, vector1, vector2, mask, name=""):
        if name or not ENABLED:
            return super().shuffle_vector(vector1, vector2, mask, name)
        ty = ir.VectorType(vector1.type.element, mask.type.count)
        i = FastInstr(self._block, ty, "shufflevector", (vector1, vector2, mask), "shufflevector")
        self._insert(i)
        return i


for _op in _BINARY:
    setattr(FastBuilder, _op, _binary(_op))
for _op in _CASTS:
    setattr(FastBuilder, _op, _cast(_op))
