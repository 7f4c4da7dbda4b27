"""Operand reads and writes for one instruction: widths, partial registers,
memory and immediates behind one small API used by every semantic function.
"""
from __future__ import annotations

from llvmlite import ir
from capstone import x86_const as X

from bttool.ir.emitter import FunctionEmitter, I1, I64, I128, const, int_type
from bttool.translator.addressing import UnknownAddressRegister, address_form
from bttool.translator.cpumodel import DEFAULT as DEFAULT_CPU, MODELS as CPU_MODELS, CpuModel
from bttool.translator.decoder import RegInfo, reg_table

_REGS = reg_table()
_PREFIX_REP = 0xF3
_PREFIX_REPNE = 0xF2
_PREFIX_LOCK = 0xF0


class UnsupportedOperand(Exception):
    """An operand the translator cannot express (turns into SIGILL)."""


class Insn:
    """Lifting context of one guest instruction."""

    def __init__(self, em: FunctionEmitter, insn, mode: int = 64, user_mode: bool = True,
                 model: CpuModel | None = None):
        self.em = em
        # the virtual CPU: a semantic whose feature it lacks raises #UD
        self.model: CpuModel = model or CPU_MODELS[DEFAULT_CPU]
        self.insn = insn
        self.mode = mode
        self.user_mode = user_mode
        self.pc: int = insn.address
        self.size: int = insn.size
        self.next_pc: int = insn.address + insn.size
        self.ops = insn.operands
        self.mnemonic: str = insn.mnemonic

    # -- shortcuts -------------------------------------------------------
    @property
    def b(self) -> ir.IRBuilder:
        return self.em.b

    @property
    def addr_bits(self) -> int:
        return self.mode

    @property
    def rep(self) -> bool:
        return self.insn.prefix[0] == _PREFIX_REP

    @property
    def repne(self) -> bool:
        return self.insn.prefix[0] == _PREFIX_REPNE

    @property
    def lock(self) -> bool:
        return self.insn.prefix[0] == _PREFIX_LOCK

    @property
    def locked(self) -> bool:
        """A LOCK prefix on a memory destination: the read-modify-write is
        one atomic access (``atomic_rmw``)."""
        return self.lock and self.is_mem(0)

    def atomic_rmw(self, op: str, value: ir.Value, i: int = 0) -> ir.Value:
        """``op`` (an LLVM atomicrmw operation) of ``value`` into memory
        operand ``i``, atomically; returns the old value."""
        return self.em.atomic_rmw(op, self.ea(i), value)

    def c(self, bits: int, value: int) -> ir.Constant:
        return const(bits, value)

    def bits(self, i: int) -> int:
        return self.ops[i].size * 8

    def is_reg(self, i: int) -> bool:
        return self.ops[i].type == X.X86_OP_REG

    def is_mem(self, i: int) -> bool:
        return self.ops[i].type == X.X86_OP_MEM

    def is_imm(self, i: int) -> bool:
        return self.ops[i].type == X.X86_OP_IMM

    # -- registers -------------------------------------------------------
    def reg_info(self, reg_id: int) -> RegInfo:
        """Where operand register ``reg_id`` lives: its state field, or in a
        stencil with abstracted registers (ir/stencil.py) its virtual one."""
        info = _REGS.get(reg_id)
        if info is None:
            raise UnsupportedOperand(f"register {self.insn.reg_name(reg_id)}")
        return self._renamed(info)

    def _renamed(self, info: RegInfo) -> RegInfo:
        stencil = self.em.stencil
        if stencil is None or info.field not in stencil.renames:
            return info
        return RegInfo(stencil.renames[info.field], info.bits, info.shift)

    def get_reg(self, reg_id: int) -> ir.Value:
        info = self.reg_info(reg_id)
        return self._get_part(info)

    def _get_part(self, info: RegInfo) -> ir.Value:
        full = self.em.get(info.field)
        width = full.type.width
        if info.bits == width:
            return full
        v = self.b.lshr(full, ir.Constant(full.type, info.shift)) if info.shift else full
        return self.b.trunc(v, int_type(info.bits))

    def set_reg(self, reg_id: int, value: ir.Value) -> None:
        self._set_part(self.reg_info(reg_id), value)

    def _set_part(self, info: RegInfo, value: ir.Value) -> None:
        b = self.b
        full_bits = 128 if info.field.startswith("xmm") else 64
        if info.bits == full_bits:
            self.em.set(info.field, value)
        elif info.bits == 32 and full_bits == 64:
            # 32-bit GPR writes zero the upper half.
            self.em.set(info.field, b.zext(value, I64))
        else:
            old = self.em.get(info.field)
            mask = ((1 << info.bits) - 1) << info.shift
            kept = b.and_(old, ir.Constant(old.type, ~mask & ((1 << full_bits) - 1)))
            new = b.zext(value, old.type)
            if info.shift:
                new = b.shl(new, ir.Constant(old.type, info.shift))
            self.em.set(info.field, b.or_(kept, new))

    def set_part(self, field: str, bits: int, value: ir.Value, shift: int = 0) -> None:
        """Write ``bits`` bits of state field ``field`` at bit ``shift``."""
        self._set_part(RegInfo(field, bits, shift), value)

    def gpr(self, name: str, bits: int = 64) -> ir.Value:
        """Read a GPR by its 64-bit name ('rax') at a given width."""
        return self._get_part(RegInfo(name, bits))

    def set_gpr(self, name: str, value: ir.Value) -> None:
        self._set_part(RegInfo(name, value.type.width), value)

    def xmm(self, n: int) -> ir.Value:
        return self.em.get(f"xmm{n}")

    def set_xmm(self, n: int, value: ir.Value) -> None:
        self.em.set(f"xmm{n}", value)

    # -- flags -----------------------------------------------------------
    def flag(self, name: str) -> ir.Value:
        return self.em.get(name)

    def set_flag(self, name: str, value) -> None:
        """``value``: an i1, or a thunk computing it only if it is needed."""
        self.em.set(name, value)

    # -- memory ----------------------------------------------------------
    def ea(self, i: int, segment: bool = True) -> ir.Value:
        """Address of memory operand i as i64: linear (with the FS/GS base)
        unless ``segment`` is False (lea wants the bare offset).  The
        displacement is added last, so ir/memory.py can clamp only the
        register part and fold the displacement into the host access."""
        return self.ea_of(self.ops[i], segment)

    def ea_of(self, op, segment: bool = True) -> ir.Value:
        """``ea`` of a capstone memory operand (one a semantic's view of the
        operands may leave out: translator/vex.py)."""
        try:
            form = address_form(self.insn, op.mem, self.mode)
        except UnknownAddressRegister as e:
            raise UnsupportedOperand(str(e)) from None
        b = self.b
        seg = self.em.get(form.segment_base) if segment and form.segment_base else None
        if form.rip_target is not None:
            addr = self.em.guest_addr(form.rip_target)
            if form.wrap32:
                addr = b.and_(addr, const(64, 0xFFFFFFFF))
        else:
            parts = []
            if form.base is not None:
                parts.append(self._addr_reg(form.base))
            if form.index is not None:
                idx = self._addr_reg(form.index)
                parts.append(idx if form.scale == 1 else b.mul(idx, const(64, form.scale)))
            if seg is not None and not form.wrap32:   # the segment base joins the register part
                parts.append(seg)
                seg = None
            addr = parts[0] if parts else const(64, form.disp)
            for part in parts[1:]:
                addr = b.add(addr, part)
            stencil = self.em.stencil
            if parts and stencil is not None and stencil.displacement is not None:
                addr = b.add(addr, stencil.displacement_hole())
            elif parts and form.disp:
                addr = b.add(addr, const(64, form.disp))
            if form.wrap32:
                addr = b.and_(addr, const(64, 0xFFFFFFFF))
        if seg is not None:
            addr = b.add(addr, seg)
        return addr

    def _addr_reg(self, info: RegInfo) -> ir.Value:
        v = self._get_part(self._renamed(info))
        return v if v.type.width == 64 else self.b.zext(v, I64)

    def load(self, addr: ir.Value, bits: int) -> ir.Value:
        if bits in (128, 256):   # as a vector, so LLVM uses a vector register
            return self.b.bitcast(self.em.load(addr, ir.VectorType(I64, bits // 64)), int_type(bits))
        return self.em.load(addr, int_type(bits))

    def probe(self, addr: ir.Value) -> None:
        """Access one byte at ``addr`` for its fault only (guest loads are
        kept though nothing uses them, ir/memory.py): ENTER's check of its
        new stack pointer, clflush."""
        self.em.load(addr, int_type(8))

    def store(self, addr: ir.Value, value: ir.Value) -> None:
        if isinstance(value.type, ir.IntType) and value.type.width in (128, 256):
            value = self.b.bitcast(value, ir.VectorType(I64, value.type.width // 64))
        self.em.store(addr, value)

    # -- generic operand access -----------------------------------------
    def read(self, i: int, bits: int | None = None) -> ir.Value:
        """Operand i as an integer of its own width (or ``bits``)."""
        op = self.ops[i]
        width = bits or op.size * 8
        if op.type == X.X86_OP_REG:
            v = self.get_reg(op.reg)
            if v.type.width > width:
                v = self.b.trunc(v, int_type(width))
            return v
        if op.type == X.X86_OP_IMM:
            stencil = self.em.stencil
            if stencil is not None and stencil.immediate is not None:
                v = stencil.immediate_hole()
                return self.b.trunc(v, int_type(width)) if width < 64 else v
            return const(width, op.imm)
        if op.type == X.X86_OP_MEM:
            return self.load(self.ea(i), width)
        raise UnsupportedOperand(f"operand type {op.type}")

    def write(self, i: int, value: ir.Value) -> None:
        op = self.ops[i]
        if op.type == X.X86_OP_REG:
            info = self.reg_info(op.reg)
            if value.type.width != info.bits:
                raise UnsupportedOperand(f"width mismatch writing {info.field}")
            self._set_part(info, value)
        elif op.type == X.X86_OP_MEM:
            self.store(self.ea(i), value)
        else:
            raise UnsupportedOperand("write to immediate")

    def read_sx(self, i: int, bits: int) -> ir.Value:
        """Operand i sign-extended to ``bits`` (immediates are already)."""
        v = self.read(i)
        return self.b.sext(v, int_type(bits)) if v.type.width < bits else v

    # -- stack -----------------------------------------------------------
    def push(self, value: ir.Value) -> None:
        rsp = self.b.sub(self.gpr("rsp"), const(64, value.type.width // 8))
        self.store(rsp, value)
        self.set_gpr("rsp", rsp)

    def pop(self, bits: int = 64) -> ir.Value:
        rsp = self.gpr("rsp")
        v = self.load(rsp, bits)
        self.set_gpr("rsp", self.b.add(rsp, const(64, bits // 8)))
        return v

    # -- control ---------------------------------------------------------
    def leave(self, rip, reason: int = 0, info=None) -> None:
        self.em.leave(rip, reason, info)

    def branch(self, cond: ir.Value, then_block: ir.Block, else_block: ir.Block) -> None:
        self.b.cbranch(cond, then_block, else_block)

    def select(self, cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(cond, a, b)

    def is_true(self, v: ir.Value) -> ir.Value:
        return self.b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))


__all__ = ["Insn", "UnsupportedOperand", "I1", "I64", "I128"]
