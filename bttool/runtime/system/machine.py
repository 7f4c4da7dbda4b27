"""The system-mode virtual machine: boots a kernel, runs its translated
code, and serves every exit (intrinsics, faults, interrupts, system calls)
on the virtual CPU and devices.  A guest reset rebuilds RAM and CPU and
reloads the kernel; nothing the guest does reaches the host's CPU state.
"""
from __future__ import annotations

import ctypes
import sys
import threading

from bttool.ir import intrinsics, state as st
from bttool.ir.memory import MMU_FAULT
from bttool.runtime import objloader
from bttool.runtime.dispatcher import Executor
from bttool.runtime.system import boot
from bttool.runtime.system import controlbits as C, vcpu as V
from bttool.runtime.system.devices import (
    Cmos,
    InterruptController,
    MachineOff,
    MachineReset,
    Pit8254,
    PortBus,
    Uart16550,
)
from bttool.runtime.system.instructions import Instructions, host_tsc
from bttool.runtime.system.mmu import MMU, PageFault, PhysicalMemory
from bttool.runtime.system.vcpu import (
    Descriptors,
    GuestException,
    TripleFault,
    VirtualCpu,
    read_rflags,
    write_rflags,
)
from bttool.translator.guestcode import UnmappedCode
from bttool.translator.options import LiftOptions

MASK64 = (1 << 64) - 1
_FAULT_VECTOR = {st.FAULT_DE: V.DE, st.FAULT_UD: V.UD, st.FAULT_GP: V.GP, st.FAULT_BP: V.BP}
_MMU_FILL_TYPE = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32)


class ResetLimit(Exception):
    """The guest reset more often than --max-resets allows."""


class Machine:
    def __init__(self, kernel: boot.KernelImage, memory_size: int, cmdline: bytes = b"",
                 max_resets: int = 8, verbose: bool = False, out=None, cache_factory=None) -> None:
        self.kernel = kernel
        self.memory_size = memory_size
        self.cmdline = cmdline
        self.max_resets = max_resets
        self.verbose = verbose
        self.resets = 0
        self.ram = PhysicalMemory(memory_size)
        self.state = st.new_state()
        self.cpu = VirtualCpu()
        self.mmu = MMU(self.ram, self.cpu, self.state, self.invalidate_code_page)
        self.desc = Descriptors(self.cpu, self.mmu, self.state)
        self.wake = threading.Event()
        self.pic = InterruptController(self.update_irq)
        self.pit = Pit8254(self.pic.raise_irq)
        self.cmos = Cmos(memory_size)
        self.uart = Uart16550(out)
        self.bus = PortBus(self.uart, self.pic, self.pit, self.cmos, self.log)
        self.instructions = Instructions(self)
        self.interrupt_shadow = False
        self.mmu_error: BaseException | None = None
        self.cache_factory = cache_factory
        self.executors: dict[int, Executor] = {}
        self.on_new_executor = None
        self.code_phys: dict[int, int] = {}    # virtual pc of a translation -> physical page
        self._fill_cb = _MMU_FILL_TYPE(self._mmu_fill)
        objloader.add_symbol("bt_mmu_fill", ctypes.cast(self._fill_cb, ctypes.c_void_p).value)

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"bttool: {msg}", file=sys.stderr, flush=True)

    # -- translation --------------------------------------------------------------
    def executor(self) -> Executor:
        """The executor for the current CPU mode (one per mode: their code
        differs and so do their lookup tables)."""
        mode = self.cpu.mode
        ex = self.executors.get(mode)
        if ex is None:
            ex = Executor(self.state, _CodeView(self), LiftOptions(mode, False, None, hot_counters=True),
                          None, self.log)
            ex.region_bound = _page_bound
            ex.on_install = self._note_code
            ex.still_valid = self._code_still_mapped
            if self.cache_factory is not None:
                ex.cache = self.cache_factory(ex)
            self.executors[mode] = ex
            if self.on_new_executor is not None:
                self.on_new_executor(ex)
        return ex

    def _note_code(self, pc: int) -> None:
        ppage = self.mmu.physical_page(pc)
        if ppage is None:
            return
        self.code_phys[pc] = ppage
        pcs = self.mmu.code_pages.get(ppage)
        if pcs is None:
            self.mmu.code_pages[ppage] = {pc}
            self.mmu.drop_write_tags(ppage)
        else:
            pcs.add(pc)

    def invalidate_code_page(self, ppage: int) -> None:
        """A store is about to change physical page ``ppage``, which holds
        code that was translated: forget those translations (they are
        looked up, and retranslated if the bytes changed, on next use)."""
        pcs = self.mmu.code_pages.pop(ppage, set())
        for pc in pcs:
            self.code_phys.pop(pc, None)
        self.log(f"code page {ppage << 12:#x} written: dropping {len(pcs)} translation(s)")
        for ex in self.executors.values():
            ex.forget(pcs)
        # the running region may be one of them: make it leave at its next
        # back edge or exit (the flag is recomputed there)
        self.state.irq_pending = 1

    def _code_still_mapped(self, pc: int) -> bool:
        """A translation of virtual ``pc`` applies again after a mapping
        change if pc still maps to the physical page it was made from (and
        no store has changed that page since: invalidation forgets it)."""
        ppage = self.code_phys.get(pc)
        return ppage is not None and self.mmu.physical_page(pc) == ppage and \
            pc in self.mmu.code_pages.get(ppage, ())

    def mappings_changed(self) -> None:
        """CR3 (or paging) changed: virtual pcs may now name other code.
        Empty the native lookup tables; each translation is revalidated by
        a page walk when it is next needed (_code_still_mapped)."""
        for ex in self.executors.values():
            ex.clear_table()

    def forget_all_code(self) -> None:
        """Power-on: no translation is known."""
        self.mmu.code_pages.clear()
        self.code_phys.clear()
        for ex in self.executors.values():
            ex.forget(None)

    def _mmu_fill(self, _state, vaddr: int, access: int) -> int:
        try:
            return self.mmu.fill(vaddr, access)
        except BaseException as e:  # noqa: BLE001 - must not unwind through native code
            self.mmu_error = e
            self.mmu.last_fault = PageFault(vaddr, 0)
            return MMU_FAULT

    # -- power-on and reset --------------------------------------------------------------
    def power_on(self) -> None:
        self.ram.clear()
        s = self._fresh_state()
        self.cpu.__init__()
        self.mmu.flush()
        self.forget_all_code()
        self.pic.__init__(self.update_irq)
        self.pit.stop()
        self.pit = Pit8254(self.pic.raise_irq)
        self.bus.pit = self.pit
        boot.place_segments(self.ram, self.kernel)
        cpu = self.cpu
        if self.kernel.protocol == "bttool64":
            regs = boot.build_bttool64(self.ram, self.memory_size, self.cmdline)
            cpu.cr0, cpu.cr4, cpu.efer = boot.CR0_BOOT64, boot.CR4_BOOT64, boot.EFER_BOOT64
            cpu.cr3 = boot.PML4_ADDR
            cpu.gdtr = V.DescriptorTable(boot.GDT_ADDR, 8 * len(boot.GDT64) - 1)
            cpu.idtr = V.DescriptorTable(0, 0)
            cpu.selectors.update(cs=0x08, ds=0x10, es=0x10, ss=0x10, fs=0x10, gs=0x10)
            cpu.mode = 64
        else:
            regs = boot.build_multiboot(self.ram, self.memory_size, self.cmdline)
            cpu.cr0 = C.CR0_PE | C.CR0_ET
            cpu.gdtr = V.DescriptorTable(0, 0)      # the spec: the OS must load its own
            cpu.idtr = V.DescriptorTable(0, 0x3FF)
            cpu.selectors.update(cs=0x08, ds=0x10, es=0x10, ss=0x10, fs=0x10, gs=0x10)
            cpu.mode = 32
        cpu.msrs[V.MSR_APIC_BASE] = 0xFEE00900
        cpu.msrs[V.MSR_PAT] = 0x0007040600070406
        for name, value in regs.items():
            setattr(s, name, value)
        s.rip = self.kernel.entry
        self.update_irq()

    def _fresh_state(self):
        """Reset the CPU state in place (translated code and the MMU hold
        its address)."""
        s = self.state
        st.reset(s)
        return s

    # -- the run loop --------------------------------------------------------------------
    def run(self) -> tuple[int, str]:
        """Boot and run until the guest powers off; (exit status, why)."""
        self.power_on()
        try:
            while True:
                try:
                    self._run()
                except MachineReset as r:
                    self.resets += 1
                    self.log(f"guest reset ({r.why}), reset {self.resets}")
                    if self.resets > self.max_resets:
                        raise ResetLimit(f"the guest reset more than --max-resets={self.max_resets} "
                                         f"times (last: {r.why})") from None
                    self.power_on()
        except MachineOff as off:
            return off.status, off.why
        finally:
            self.pit.stop()
            self.uart.out.flush()

    def _run(self) -> None:
        s = self.state
        while True:
            try:
                ex = self.executor()
                try:
                    reason = ex.run()
                except UnmappedCode:
                    self._fetch_fault(s.rip)
                    continue
                if self.mmu_error is not None:
                    err, self.mmu_error = self.mmu_error, None
                    raise err
                if reason == st.EXIT_INTRINSIC:
                    self.instructions.execute(intrinsics.split_exit_info(int(s.exit_info))[0])
                elif reason == st.EXIT_SYSCALL:
                    self.syscall()
                elif reason == st.EXIT_FAULT:
                    self._guest_fault(int(s.exit_info))
                elif reason == st.EXIT_IRQ:
                    self.update_irq()
                elif reason == st.EXIT_HOST_SIGNAL:
                    raise RuntimeError(f"host fault at {s.fault_addr:#x} while running guest code "
                                       f"(region at {s.rip:#x})")
                else:
                    raise RuntimeError(f"unexpected exit reason {reason}")
            except GuestException as e:
                self.exception(e.vector, e.error, s.rip, cr2=e.cr2)
            except PageFault as f:
                self.exception(V.PF, f.code, s.rip, cr2=f.addr)
            self._take_interrupt()

    def _fetch_fault(self, pc: int) -> None:
        try:
            self.mmu.translate(pc, fetch=True, set_bits=False)
        except PageFault as f:
            self.exception(V.PF, f.code, pc, cr2=f.addr)
            return
        raise RuntimeError(f"instruction fetch at {pc:#x} from beyond the guest's memory")

    def _guest_fault(self, kind: int) -> None:
        s = self.state
        if kind == st.FAULT_PF:
            f = self.mmu.last_fault
            self.exception(V.PF, f.code, s.rip, cr2=f.addr)
        else:
            self.exception(_FAULT_VECTOR[kind], 0 if kind == st.FAULT_GP else None, s.rip)

    # -- interrupts and exceptions ----------------------------------------------------------
    def update_irq(self) -> None:
        """Recompute the flag translated code polls (any thread may call it)."""
        pending = self.pic.has_pending()
        self.state.irq_pending = 1 if pending and self.cpu.interrupts_enabled else 0
        if pending:
            self.wake.set()

    def _take_interrupt(self) -> None:
        if self.interrupt_shadow:
            self.interrupt_shadow = False
            return
        if not self.cpu.interrupts_enabled:
            return
        vector = self.pic.acknowledge()
        self.update_irq()
        if vector is not None:
            self.exception(vector, None, self.state.rip, external=True)

    def halt(self) -> None:
        """hlt: wait for an interrupt (rip is already past the hlt)."""
        cpu = self.cpu
        if not cpu.interrupts_enabled:
            raise MachineOff(0, f"guest halted with interrupts disabled at {self.state.rip - 1:#x}")
        self.interrupt_shadow = False
        while not self.pic.has_pending():
            self.wake.wait(0.05)
            self.wake.clear()

    def software_interrupt(self, vector: int, return_rip: int) -> None:
        """int n / int3 / into: a trap whose frame returns after the
        instruction.  A fault while entering it (e.g. #GP for a gate with
        DPL < CPL) propagates with rip still at the instruction."""
        self.log(f"software interrupt {vector} before {return_rip:#x}")
        self._deliver(vector, None, return_rip, True)

    def exception(self, vector: int, error: int | None, rip: int, cr2: int | None = None,
                  external: bool = False) -> None:
        """Deliver exception (or, with ``external``, hardware interrupt)
        ``vector`` through the IDT; a fault while doing so becomes #DF, and a
        fault while delivering #DF resets the machine."""
        if error is None and V.Descriptors.has_error_code(vector) and not external:
            error = 0
        self.log(f"exception/interrupt {vector} (error {error}) at {rip:#x}")
        try:
            if vector == V.PF and cr2 is not None:
                self.cpu.cr2 = cr2
            self._deliver(vector, error, rip, False)
        except (GuestException, PageFault) as e2:
            second = e2.vector if isinstance(e2, GuestException) else V.PF
            if vector == V.DF:
                raise MachineReset("triple fault") from None
            if V.Descriptors.combine(vector, second):
                self.exception(V.DF, 0, rip)
            else:
                if isinstance(e2, PageFault):
                    self.exception(V.PF, e2.code, rip, cr2=e2.addr)
                else:
                    self.exception(e2.vector, e2.error, rip, cr2=e2.cr2)
        except TripleFault as t:
            raise MachineReset(f"triple fault: {t}") from None

    def _deliver(self, vector, error, rip, software) -> None:
        was_cpl = self.cpu.cpl
        self.desc.deliver(vector, error, rip, software)
        if self.cpu.cpl != was_cpl:
            self.mmu.flush()
        self.update_irq()

    def iret(self, size: int) -> None:
        cpu, s = self.cpu, self.state
        if cpu.mode != 64 or size != 8:
            raise TripleFault("iret outside 64-bit mode is not modelled")
        ins = self.instructions
        rip, cs, rflags, rsp, ss = (ins.pop(8) for _ in range(5))
        new_cpl = cs & 3
        if new_cpl < cpu.cpl:
            raise V.gp(cs & ~3)
        desc = self.desc.descriptor(cs & 0xFFFF)
        mask = V.SYS_WRITABLE
        if cpu.cpl > 0:
            mask &= ~(3 << V.IOPL_SHIFT)
            if cpu.cpl > cpu.iopl:
                mask &= ~V.IF
        write_rflags(s, cpu, rflags, mask)
        cpu.selectors["cs"] = cs & 0xFFFF
        cpu.selectors["ss"] = ss & 0xFFFF
        s.rsp = rsp
        s.rip = rip
        if new_cpl != cpu.cpl:
            cpu.cpl = new_cpl
            self.mmu.flush()
        self._set_mode(self.desc.code_bits(desc))
        self.update_irq()

    def syscall(self) -> None:
        """The syscall instruction (translated code already moved rip past it)."""
        cpu, s = self.cpu, self.state
        if not cpu.efer & C.EFER_SCE or cpu.mode != 64:
            s.rip -= 2
            raise GuestException(V.UD)
        s.rcx = s.rip
        s.r11 = read_rflags(s, cpu) & ~V.RF
        star = cpu.msr(V.MSR_STAR)
        cpu.selectors["cs"] = (star >> 32) & 0xFFFC
        cpu.selectors["ss"] = ((star >> 32) + 8) & 0xFFFC
        fmask = cpu.msr(V.MSR_FMASK)
        write_rflags(s, cpu, read_rflags(s, cpu) & ~fmask & ~V.RF, V.SYS_WRITABLE)
        s.rip = cpu.msr(V.MSR_LSTAR)
        if cpu.cpl != 0:
            cpu.cpl = 0
            self.mmu.flush()
        self.update_irq()

    def sysret(self, to64: bool) -> None:
        cpu, s = self.cpu, self.state
        if not cpu.efer & C.EFER_SCE:
            raise GuestException(V.UD)
        if not to64:
            raise TripleFault("sysretl to compatibility mode is not modelled")
        star = cpu.msr(V.MSR_STAR)
        base = (star >> 48) & 0xFFFF
        cpu.selectors["cs"] = ((base + 16) & 0xFFFC) | 3
        cpu.selectors["ss"] = ((base + 8) & 0xFFFC) | 3
        write_rflags(s, cpu, (s.r11 & ~V.RF) | 2, V.SYS_WRITABLE)
        s.rip = s.rcx
        cpu.cpl = 3
        self.mmu.flush()
        self.update_irq()

    # -- system registers -------------------------------------------------------------------
    def read_cr(self, n: int) -> int:
        cpu = self.cpu
        if n not in (0, 2, 3, 4, 8):
            raise GuestException(V.UD)
        return {0: cpu.cr0, 2: cpu.cr2, 3: cpu.cr3, 4: cpu.cr4, 8: cpu.cr8}[n]

    def write_cr(self, n: int, value: int) -> None:
        cpu = self.cpu
        if n == 0:
            if value & C.CR0_PG and not value & C.CR0_PE:
                raise V.gp(0)
            if value & C.CR0_PG and cpu.efer & C.EFER_LME and not cpu.cr4 & C.CR4_PAE:
                raise V.gp(0)
            cpu.cr0 = (value & 0xFFFFFFFF) | C.CR0_ET
            if cpu.cr0 & C.CR0_PG and cpu.efer & C.EFER_LME:
                cpu.efer |= C.EFER_LMA
            elif not cpu.cr0 & C.CR0_PG:
                cpu.efer &= ~C.EFER_LMA
            self.mmu.flush()
            self.mappings_changed()
        elif n == 2:
            cpu.cr2 = value
        elif n == 3:
            cpu.cr3 = value
            self.mmu.flush()
            self.mappings_changed()
        elif n == 4:
            cpu.cr4 = value
            self.mmu.flush()
        elif n == 8:
            cpu.cr8 = value & 0xF
        else:
            raise GuestException(V.UD)

    def read_msr(self, index: int) -> int:
        cpu, s = self.cpu, self.state
        if index == V.MSR_FS_BASE:
            return s.fs_base
        if index == V.MSR_GS_BASE:
            return s.gs_base
        if index == V.MSR_EFER:
            return cpu.efer
        if index == V.MSR_TSC:
            return (host_tsc() + cpu.tsc_offset) & MASK64
        if index not in V.KNOWN_MSRS:
            raise V.gp(0)
        return cpu.msr(index)

    def write_msr(self, index: int, value: int) -> None:
        cpu, s = self.cpu, self.state
        if index not in V.KNOWN_MSRS:
            raise V.gp(0)
        if index == V.MSR_FS_BASE:
            s.fs_base = value
        elif index == V.MSR_GS_BASE:
            s.gs_base = value
        elif index == V.MSR_EFER:
            lma = cpu.efer & C.EFER_LMA
            cpu.efer = (value & (C.EFER_SCE | C.EFER_LME | C.EFER_NXE)) | lma
            self.mmu.flush()
        elif index == V.MSR_TSC:
            cpu.tsc_offset = value - host_tsc()
        else:
            cpu.msrs[index] = value

    # -- segments -----------------------------------------------------------------------------
    def load_segment(self, name: str, selector: int) -> None:
        cpu = self.cpu
        if name == "cs":
            raise GuestException(V.UD)
        if selector & ~3:
            desc = self.desc.descriptor(selector)
            if not desc & (1 << 47):
                raise GuestException(V.NP if name != "ss" else V.SS, selector & ~3)
            base = ((desc >> 16) & 0xFFFFFF) | (((desc >> 56) & 0xFF) << 24)
        elif name == "ss" and cpu.mode != 64:
            raise V.gp(0)
        else:
            base = 0
        cpu.selectors[name] = selector
        if name in ("fs", "gs"):
            setattr(self.state, f"{name}_base", base)
        elif base and cpu.mode == 32:
            raise RuntimeError(f"{name} with a non-zero base ({base:#x}) is not modelled")
        if name == "ss":
            self.interrupt_shadow = True

    def far_jump(self, selector: int, target: int) -> None:
        desc = self.desc.descriptor(selector)
        if not desc & (1 << 43) or not desc & (1 << 47):
            raise V.gp(selector & ~3)
        bits = self.desc.code_bits(desc)
        if bits == 64 and not self.cpu.efer & C.EFER_LMA:
            bits = 32
        self.cpu.selectors["cs"] = (selector & ~3) | self.cpu.cpl
        self.state.rip = target & (MASK64 if bits == 64 else 0xFFFFFFFF)
        self._set_mode(bits)

    def _set_mode(self, bits: int) -> None:
        if bits == 16:
            raise TripleFault("16-bit code segments are not modelled")
        if bits != self.cpu.mode:
            self.log(f"CPU mode: {self.cpu.mode}-bit -> {bits}-bit code")
            self.cpu.mode = bits


class _CodeView:
    """What the executor needs of guest memory, by virtual address."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine

    @property
    def arg_base(self) -> int:
        """The memory argument of translated code: guest physical memory
        (the TLB maps virtual addresses to offsets in it)."""
        return self.m.ram.base

    def read_code(self, addr: int, length: int) -> bytes:
        return self.m.mmu.read_code(addr, length)

    def read(self, addr: int, length: int) -> bytes:
        try:
            return self.m.mmu.read_virtual(addr, length, user=False)
        except PageFault as e:
            raise OSError(str(e)) from None


def _page_bound(pc: int) -> tuple[int, int]:
    """System-mode regions stay within one guest page (so a store into a
    page invalidates exactly the translations made from it)."""
    start = pc & ~0xFFF
    return start, start + 0x1000
