"""Runtime side of the system-mode intrinsics: each privileged or sensitive
instruction, performed on the virtual CPU and devices.

Translated code leaves with EXIT_INTRINSIC at the instruction (rip points
at it, the state is written back); ``Instructions.execute`` decodes it
again, checks privilege (CPL 3 gets #GP as on hardware), performs it and
moves rip past it.  Raising GuestException instead makes the machine deliver
that exception with rip still at the instruction (a fault).
"""
from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING

from capstone import x86_const as X

from bttool.ir import intrinsics
from bttool.runtime import cpuid, randomsource
from bttool.runtime.system import controlbits as C, vcpu as V
from bttool.runtime.system.vcpu import GuestException, gp, read_rflags, write_rflags
from bttool.translator.addressing import address_form
from bttool.translator.decoder import Decoder, reg_table

if TYPE_CHECKING:  # pragma: no cover
    from bttool.runtime.system.machine import Machine

_REGS = reg_table()
_SEGS = {X.X86_REG_CS: "cs", X.X86_REG_DS: "ds", X.X86_REG_ES: "es", X.X86_REG_FS: "fs",
         X.X86_REG_GS: "gs", X.X86_REG_SS: "ss"}
MASK64 = (1 << 64) - 1


class Instructions:
    def __init__(self, machine: "Machine") -> None:
        self.m = machine
        self.decoders = {64: Decoder(64), 32: Decoder(32)}

    # -- operand helpers -----------------------------------------------------------
    def reg(self, reg_id: int) -> int:
        info = _REGS[reg_id]
        v = getattr(self.m.state, info.field)
        return (v >> info.shift) & ((1 << info.bits) - 1)

    def set_reg(self, reg_id: int, value: int) -> None:
        info = _REGS[reg_id]
        s = self.m.state
        if info.bits >= 32:
            setattr(s, info.field, value & ((1 << info.bits) - 1))
            return
        mask = ((1 << info.bits) - 1) << info.shift
        old = getattr(s, info.field)
        setattr(s, info.field, (old & ~mask) | ((value << info.shift) & mask))

    def ea(self, insn, op) -> int:
        """The linear address of memory operand ``op`` (the translator's
        reading of it: translator/addressing.py)."""
        return address_form(insn, op.mem, self.m.cpu.mode).linear(self.m.state)

    def read_op(self, insn, i: int) -> int:
        op = insn.operands[i]
        if op.type == X.X86_OP_REG:
            if op.reg in _SEGS:
                return self.m.cpu.selectors[_SEGS[op.reg]]
            return self.reg(op.reg)
        if op.type == X.X86_OP_IMM:
            return op.imm & ((1 << (8 * op.size)) - 1)
        return int.from_bytes(self.m.mmu.read_virtual(self.ea(insn, op), op.size), "little")

    def write_op(self, insn, i: int, value: int, size: int | None = None) -> None:
        op = insn.operands[i]
        if op.type == X.X86_OP_REG:
            self.set_reg(op.reg, value)
        else:
            n = size or op.size
            self.m.mmu.write_virtual(self.ea(insn, op), (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))

    def push(self, value: int, size: int) -> None:
        s = self.m.state
        rsp = (s.rsp - size) & MASK64
        self.m.mmu.write_virtual(rsp, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        s.rsp = rsp

    def pop(self, size: int) -> int:
        s = self.m.state
        v = int.from_bytes(self.m.mmu.read_virtual(s.rsp, size), "little")
        s.rsp = (s.rsp + size) & MASK64
        return v

    # -- dispatch ---------------------------------------------------------------
    def decode(self):
        s, m = self.m.state, self.m
        code = m.mmu.read_code(s.rip, 15)
        insn = self.decoders[m.cpu.mode].decode_one(code, s.rip) if code else None
        if insn is None:
            raise GuestException(V.UD)
        return insn

    def execute(self, entry: intrinsics.Intrinsic) -> None:
        insn = self.decode()
        cpu = self.m.cpu
        if entry.privileged and cpu.cpl != 0 and not (
                entry.name in ("cli", "sti", "in", "out") and cpu.cpl <= cpu.iopl):
            raise gp(0)
        handler = getattr(self, "do_" + entry.name)
        if handler(insn) is not False:
            self.m.state.rip = (insn.address + insn.size) & MASK64

    # -- interrupt flag, halt ------------------------------------------------------
    def do_cli(self, insn) -> None:
        self.m.cpu.rflags_sys &= ~V.IF
        self.m.update_irq()

    def do_sti(self, insn) -> None:
        self.m.cpu.rflags_sys |= V.IF
        self.m.interrupt_shadow = True
        self.m.update_irq()

    def do_hlt(self, insn) -> bool:
        self.m.state.rip = insn.address + insn.size
        self.m.halt()
        return False

    # -- ports ---------------------------------------------------------------------
    def do_in(self, insn) -> None:
        bus = self.m.bus
        if insn.id in (X.X86_INS_INSB, X.X86_INS_INSW, X.X86_INS_INSD):
            size = {X.X86_INS_INSB: 1, X.X86_INS_INSW: 2, X.X86_INS_INSD: 4}[insn.id]
            self._string_io(insn, size, lambda port: bus.read(port, size), None)
            return
        size = insn.operands[0].size
        port = self.read_op(insn, 1) & 0xFFFF
        self.set_reg(insn.operands[0].reg, bus.read(port, size))

    def do_out(self, insn) -> None:
        bus = self.m.bus
        if insn.id in (X.X86_INS_OUTSB, X.X86_INS_OUTSW, X.X86_INS_OUTSD):
            size = {X.X86_INS_OUTSB: 1, X.X86_INS_OUTSW: 2, X.X86_INS_OUTSD: 4}[insn.id]
            self._string_io(insn, size, None, lambda port, v: bus.write(port, size, v))
            return
        size = insn.operands[1].size
        port = self.read_op(insn, 0) & 0xFFFF
        bus.write(port, size, self.read_op(insn, 1))

    def _string_io(self, insn, size: int, read_port, write_port) -> None:
        s = self.m.state
        rep = insn.prefix[0] in (0xF3, 0xF2)
        amask = 0xFFFFFFFF if insn.addr_size == 4 else MASK64
        count = (s.rcx & amask) if rep else 1
        step = -size if s.df else size
        port = s.rdx & 0xFFFF
        while count:
            if read_port is not None:
                self.m.mmu.write_virtual(s.rdi & amask, read_port(port).to_bytes(size, "little"))
                s.rdi = (s.rdi & ~amask) | ((s.rdi + step) & amask)
            else:
                v = int.from_bytes(self.m.mmu.read_virtual(s.rsi & amask, size), "little")
                write_port(port, v)
                s.rsi = (s.rsi & ~amask) | ((s.rsi + step) & amask)
            count -= 1
            if rep:
                s.rcx = (s.rcx & ~amask) | count

    # -- control, debug registers, MSRs -------------------------------------------------
    def do_mov_cr(self, insn) -> None:
        dst, src = insn.operands
        if insn.reg_name(dst.reg).startswith("cr"):
            n = int(insn.reg_name(dst.reg)[2:])
            self.m.write_cr(n, self.reg(src.reg))
        else:
            n = int(insn.reg_name(src.reg)[2:])
            self.set_reg(dst.reg, self.m.read_cr(n))

    def do_mov_dr(self, insn) -> None:
        dst, src = insn.operands
        cpu = self.m.cpu
        if insn.reg_name(dst.reg).startswith("dr"):
            cpu.dr[int(insn.reg_name(dst.reg)[2:])] = self.reg(src.reg)
        else:
            self.set_reg(dst.reg, cpu.dr[int(insn.reg_name(src.reg)[2:])])

    def do_clts(self, insn) -> None:
        self.m.cpu.cr0 &= ~C.CR0_TS

    def do_lmsw(self, insn) -> None:
        v = self.read_op(insn, 0) & 0xF
        cpu = self.m.cpu
        # lmsw can set PE but never clear it
        self.m.write_cr(0, (cpu.cr0 & ~0xE) | v | (cpu.cr0 & 1))

    def do_rdmsr(self, insn) -> None:
        s = self.m.state
        v = self.m.read_msr(s.rcx & 0xFFFFFFFF)
        s.rax, s.rdx = v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF

    def do_wrmsr(self, insn) -> None:
        s = self.m.state
        self.m.write_msr(s.rcx & 0xFFFFFFFF, ((s.rdx & 0xFFFFFFFF) << 32) | (s.rax & 0xFFFFFFFF))

    def do_invlpg(self, insn) -> None:
        self.m.mmu.flush_page(self.ea(insn, insn.operands[0]))

    def do_wbinvd(self, insn) -> None:
        pass

    def do_swapgs(self, insn) -> None:
        if self.m.cpu.mode != 64:
            raise GuestException(V.UD)
        s, msrs = self.m.state, self.m.cpu.msrs
        s.gs_base, msrs[V.MSR_KERNEL_GS_BASE] = msrs.get(V.MSR_KERNEL_GS_BASE, 0), s.gs_base

    # -- descriptor tables -----------------------------------------------------------
    def _table_operand(self, insn) -> tuple[int, int]:
        return self.ea(insn, insn.operands[0]), 8 if self.m.cpu.mode == 64 else 4

    def do_lgdt(self, insn) -> None:
        self._load_table(insn, self.m.cpu.gdtr)

    def do_lidt(self, insn) -> None:
        self._load_table(insn, self.m.cpu.idtr)

    def _load_table(self, insn, table) -> None:
        addr, n = self._table_operand(insn)
        raw = self.m.mmu.read_virtual(addr, 2 + n)
        table.limit = struct.unpack_from("<H", raw)[0]
        table.base = int.from_bytes(raw[2:], "little")
        if n == 4 and insn.prefix[2] == 0x66:
            table.base &= 0xFFFFFF

    def _umip(self) -> None:
        if self.m.cpu.cpl > 0 and self.m.cpu.cr4 & C.CR4_UMIP:
            raise gp(0)

    def do_sgdt(self, insn) -> None:
        self._store_table(insn, self.m.cpu.gdtr)

    def do_sidt(self, insn) -> None:
        self._store_table(insn, self.m.cpu.idtr)

    def _store_table(self, insn, table) -> None:
        self._umip()
        addr, n = self._table_operand(insn)
        self.m.mmu.write_virtual(addr, struct.pack("<H", table.limit) + (
            table.base & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))

    def do_sldt(self, insn) -> None:
        self._umip()
        self._store_selector(insn, self.m.cpu.ldtr)

    def do_str(self, insn) -> None:
        self._umip()
        self._store_selector(insn, self.m.cpu.tr)

    def do_smsw(self, insn) -> None:
        self._umip()
        self._store_selector(insn, self.m.cpu.cr0)

    def _store_selector(self, insn, value: int) -> None:
        op = insn.operands[0]
        if op.type == X.X86_OP_REG:
            self.set_reg(op.reg, value & ((1 << (8 * op.size)) - 1))
        else:
            self.write_op(insn, 0, value, 2)

    def do_lldt(self, insn) -> None:
        self.m.cpu.ldtr = self.read_op(insn, 0) & 0xFFFF

    def do_ltr(self, insn) -> None:
        m = self.m
        sel = self.read_op(insn, 0) & 0xFFFF
        desc = m.desc.descriptor(sel)
        if (desc >> 40) & 0xF != 0x9 or not desc & (1 << 47):
            raise gp(sel & ~3)
        m.cpu.tr_base, m.cpu.tr_limit = m.desc.system_descriptor_base(sel)
        m.cpu.tr = sel
        # mark the TSS busy in the GDT, as the CPU does
        m.mmu.write_virtual(m.cpu.gdtr.base + (sel & ~7) + 5,
                            bytes([((desc >> 40) & 0xFF) | 0x02]), user=False)

    # -- flags ---------------------------------------------------------------------
    def do_pushf(self, insn) -> None:
        size = 2 if insn.prefix[2] == 0x66 else (8 if self.m.cpu.mode == 64 else 4)
        self.push(read_rflags(self.m.state, self.m.cpu) & ~(V.RF | (1 << 17)), size)

    def do_popf(self, insn) -> None:
        cpu = self.m.cpu
        size = 2 if insn.prefix[2] == 0x66 else (8 if cpu.mode == 64 else 4)
        v = self.pop(size)
        mask = V.TF | V.NT | V.AC | V.ID
        if cpu.cpl == 0:
            mask |= V.IF | (3 << V.IOPL_SHIFT)
        elif cpu.cpl <= cpu.iopl:
            mask |= V.IF
        if size == 2:
            mask &= 0xFFFF
            v |= read_rflags(self.m.state, cpu) & ~0xFFFF
        was = cpu.interrupts_enabled
        write_rflags(self.m.state, cpu, v, mask)
        if cpu.interrupts_enabled and not was:
            self.m.interrupt_shadow = True
        self.m.update_irq()

    # -- segments and far transfers ------------------------------------------------------
    def do_mov_seg(self, insn) -> None:
        dst, src = insn.operands
        if dst.type == X.X86_OP_REG and dst.reg in _SEGS:
            self.m.load_segment(_SEGS[dst.reg], self.read_op(insn, 1) & 0xFFFF)
        else:
            v = self.m.cpu.selectors[_SEGS[src.reg]]
            if dst.type == X.X86_OP_REG:
                self.set_reg(dst.reg, v)
            else:
                self.write_op(insn, 0, v, 2)

    def do_far(self, insn) -> bool:
        m, cpu = self.m, self.m.cpu
        ops = insn.operands
        opsize = 2 if insn.prefix[2] == 0x66 else (8 if insn.rex & 8 else 4)
        if insn.id in (X.X86_INS_RETF, X.X86_INS_RETFQ):
            size = 8 if insn.id == X.X86_INS_RETFQ else opsize
            rip = self.pop(size)
            sel = self.pop(size) & 0xFFFF
            if ops:
                m.state.rsp += ops[0].imm
            if sel & 3 != cpu.cpl:
                raise gp(sel & ~3)           # inter-privilege far return: not modelled
            m.far_jump(sel, rip)
            return False
        if len(ops) == 2:                     # ptr16:16/32 immediate
            sel, target = ops[0].imm & 0xFFFF, ops[1].imm
        else:                                 # m16:16/32/64
            addr = self.ea(insn, ops[0])
            n = ops[0].size - 2 if ops[0].size > 2 else opsize
            raw = m.mmu.read_virtual(addr, n + 2)
            target, sel = int.from_bytes(raw[:n], "little"), int.from_bytes(raw[n:], "little")
        if insn.id == X.X86_INS_LCALL:
            size = 8 if cpu.mode == 64 else 4
            self.push(cpu.selectors["cs"], size)
            self.push(insn.address + insn.size, size)
        m.far_jump(sel, target)
        return False

    # -- interrupts and system calls ---------------------------------------------------------
    def do_int(self, insn) -> bool:
        nxt = insn.address + insn.size
        if insn.id == X.X86_INS_INTO:
            if not self.m.state.of:
                return True
            vector = V.OF
        else:
            vector = insn.operands[0].imm & 0xFF
        self.m.software_interrupt(vector, nxt)
        return False

    def do_int3(self, insn) -> bool:
        self.m.software_interrupt(V.BP, insn.address + insn.size)
        return False

    def do_int1(self, insn) -> bool:
        """ICEBP: #DB as a trap (the frame returns after it), delivered as
        an exception, so no gate DPL check."""
        self.m.exception(V.DB, None, insn.address + insn.size)
        return False

    def do_iret(self, insn) -> bool:
        self.m.iret(8 if insn.id == X.X86_INS_IRETQ else 4)
        return False

    def do_sysret(self, insn) -> bool:
        self.m.sysret(insn.id == X.X86_INS_SYSRETQ or bool(insn.rex & 8))
        return False

    # -- identification and time ------------------------------------------------------------
    def do_cpuid(self, insn) -> None:
        s = self.m.state
        a, b, c, d = cpuid.cpuid(s.rax & 0xFFFFFFFF, s.rcx & 0xFFFFFFFF)
        s.rax, s.rbx, s.rcx, s.rdx = a, b, c, d

    def do_xgetbv(self, insn) -> None:
        s = self.m.state
        v = cpuid.xcr0()
        s.rax, s.rdx = v & 0xFFFFFFFF, v >> 32

    def do_rdrand(self, insn) -> None:
        """rdrand/rdseed (runtime/randomsource.py); set_reg zero-extends a
        32-bit destination and keeps the rest of a 16-bit one."""
        self.write_op(insn, 0, randomsource.random_bits(insn.operands[0].size))
        randomsource.set_success_flags(self.m.state)

    def do_rdtsc_vm(self, insn) -> None:
        if self.m.cpu.cpl > 0 and self.m.cpu.cr4 & 4:    # CR4.TSD
            raise gp(0)
        s = self.m.state
        t = self.m.read_msr(V.MSR_TSC)
        s.rax, s.rdx = t & 0xFFFFFFFF, (t >> 32) & 0xFFFFFFFF
        if insn.id == X.X86_INS_RDTSCP:
            s.rcx = self.m.cpu.msr(V.MSR_TSC_AUX) & 0xFFFFFFFF


def host_tsc() -> int:
    """The virtual TSC ticks at a nominal 1 GHz of host monotonic time."""
    return time.monotonic_ns()
