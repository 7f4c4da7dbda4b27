"""Guest physical memory and the virtual MMU of the system-mode machine.

Physical RAM lives at the start of the guest window that user mode also
uses (runtime/memory.py reserves it), so a TLB entry's addend turns a virtual
address straight into an offset from the window base.  The page walk is
here, in Python: it runs only on a TLB miss (``fill``, called from
translated code through ``bt_mmu_fill``), for instruction fetch by the
translator, and for the runtime's own accesses (descriptor tables, stacks of
interrupt frames).  It follows the SDM's 4-level paging (long mode) and
sets accessed and dirty bits as the CPU does.

Physical addresses beyond RAM behave as on a PC with nothing there: reads
give all ones, writes are discarded, a page-table entry read from there
(all ones: present, reserved bits set) is a #PF with the RSVD bit.  An
access that crosses into a page whose frame is not the next one reads and
writes each part in its own frame.  Both go through an access window
(accesswindows.py), which is why RAM is a memfd: a frame can be mapped a
second time next to another.
"""
from __future__ import annotations

import ctypes
import os
import struct
from typing import Callable

from bttool.ir import state as st
from bttool.ir.memory import MMU_FAULT
from bttool.runtime.memory import (
    MAP_FIXED,
    MAP_NORESERVE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    GuestMemory,
    _libc,
)
from bttool.runtime.system.accesswindows import AccessWindows
from bttool.runtime.system.controlbits import CR0_PG, CR0_WP, EFER_LMA, EFER_NXE

PAGE = 4096
# access windows live this far above the reservation's base: past the largest
# RAM --memory allows (64 GiB) and inside the reservation (runtime/window.py)
WINDOWS_OFFSET = 1 << 37
MASK64 = (1 << 64) - 1

# page-table entry bits
P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 16, 32, 64, 128, 256
NX = 1 << 63
ADDR_MASK = 0x000F_FFFF_FFFF_F000

# #PF error code bits
PF_P, PF_W, PF_U, PF_RSVD, PF_I = 1, 2, 4, 8, 16



class PageFault(Exception):
    def __init__(self, addr: int, code: int) -> None:
        super().__init__(f"page fault at {addr:#x} (error {code:#x})")
        self.addr = addr
        self.code = code


class PhysicalMemory:
    """Guest RAM of ``size`` bytes at physical 0, inside a GuestMemory
    reservation, backed by a memfd; nothing else is mapped below the
    access windows, so a host access beyond RAM is loud, never silent."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.space = GuestMemory()
        self.base = self.space.base
        self.fd = os.memfd_create("bttool-guest-ram", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self._map()
        self.windows = AccessWindows(self.base, WINDOWS_OFFSET, self.fd, size)

    def _map(self) -> None:
        addr = _libc.mmap(self.base, self.size, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_FIXED | MAP_NORESERVE, self.fd, 0)
        if addr != self.base:
            raise OSError(ctypes.get_errno(), "cannot map guest physical memory")

    def clear(self) -> None:
        """Power-on contents (all zero) again: a machine reset.  Emptying
        the memfd frees its pages; every mapping of it then reads zeros."""
        os.ftruncate(self.fd, 0)
        os.ftruncate(self.fd, self.size)

    def read(self, paddr: int, n: int) -> bytes:
        """``n`` bytes from physical ``paddr``; all ones beyond RAM."""
        if paddr < 0:
            raise PageFault(paddr, 0)
        inside = max(0, min(n, self.size - paddr))
        data = ctypes.string_at(self.base + paddr, inside) if inside else b""
        return data + b"\xff" * (n - inside)

    def write(self, paddr: int, data: bytes) -> None:
        """Store at physical ``paddr``; what lies beyond RAM is discarded."""
        if paddr < 0:
            raise PageFault(paddr, 0)
        inside = max(0, min(len(data), self.size - paddr))
        if inside:
            ctypes.memmove(self.base + paddr, data, inside)

    def u64(self, paddr: int) -> int:
        return ctypes.c_uint64.from_address(self.base + paddr).value

    def set_u64(self, paddr: int, value: int) -> None:
        ctypes.c_uint64.from_address(self.base + paddr).value = value


class MMU:
    """Virtual-to-physical translation for one virtual CPU.

    ``cpu`` supplies cr0, cr3, cr4, efer and cpl.  ``code_pages`` maps a
    physical page number to the virtual pcs of translations made from it;
    ``invalidate_code(ppage)`` is called before the first store into such a
    page, which therefore never gets a write tag in the TLB."""

    def __init__(self, ram: PhysicalMemory, cpu, cpu_state,
                 invalidate_code: Callable[[int], None]) -> None:
        self.ram = ram
        self.cpu = cpu
        self.state = cpu_state
        self.invalidate_code = invalidate_code
        self.code_pages: dict[int, set[int]] = {}
        self.tlb_addr = ctypes.addressof(cpu_state) + st.offset("tlb")
        self.entries = (ctypes.c_uint64 * (3 * st.TLB_ENTRIES)).from_address(self.tlb_addr)
        self.last_fault: PageFault | None = None
        self.flush()

    # -- TLB ------------------------------------------------------------------
    def flush(self) -> None:
        ctypes.memset(self.tlb_addr, 0xFF, st.TLB_ENTRIES * st.TLB_ENTRY_SIZE)

    def flush_page(self, vaddr: int) -> None:
        vpage = vaddr >> 12
        i = vpage & (st.TLB_ENTRIES - 1)
        if self.entries[3 * i] == vpage or self.entries[3 * i + 1] == vpage:
            self.entries[3 * i] = self.entries[3 * i + 1] = st.TLB_INVALID

    def drop_write_tags(self, ppage: int) -> None:
        """No TLB entry may let a store reach physical page ``ppage``."""
        for i in range(st.TLB_ENTRIES):
            tag = self.entries[3 * i + 1]
            if tag != st.TLB_INVALID and ((tag << 12) + self.entries[3 * i + 2]) & ((1 << 64) - 1) \
                    == ppage << 12:
                self.entries[3 * i + 1] = st.TLB_INVALID

    # -- page walk ------------------------------------------------------------
    def translate(self, vaddr: int, write: bool = False, user: bool | None = None,
                  fetch: bool = False, set_bits: bool = True) -> tuple[int, bool]:
        """(physical address, writable for this access's privilege).
        Raises PageFault with the architectural error code."""
        cpu = self.cpu
        if user is None:
            user = cpu.cpl == 3
        if not cpu.cr0 & CR0_PG:
            return vaddr & 0xFFFFFFFF, True
        if not cpu.efer & EFER_LMA:
            raise PageFault(vaddr, PF_RSVD)    # 32-bit paging without long mode: not modelled
        code = (PF_W if write else 0) | (PF_U if user else 0) | (PF_I if fetch else 0)
        top = vaddr >> 47
        if top not in (0, 0x1FFFF):
            raise PageFault(vaddr, code)       # non-canonical (#GP on hardware)
        table = cpu.cr3 & ADDR_MASK
        entries: list[int] = []                # physical addresses of entries walked
        allow_w = allow_u = True
        nx = False
        size_shift = 12
        for level, shift in enumerate((39, 30, 21, 12)):
            ea = table + ((vaddr >> shift) & 0x1FF) * 8
            if ea + 8 > self.ram.size:
                # nothing there: the entry reads as all ones, present with
                # reserved bits set
                raise PageFault(vaddr, code | PF_P | PF_RSVD)
            e = self.ram.u64(ea)
            if not e & P:
                raise PageFault(vaddr, code)
            entries.append(ea)
            allow_w &= bool(e & RW)
            allow_u &= bool(e & US)
            nx |= bool(e & NX)
            if shift in (30, 21) and e & PS:
                size_shift = shift
                break
            table = e & ADDR_MASK
        frame_mask = (1 << size_shift) - 1
        paddr = (e & ADDR_MASK & ~frame_mask) | (vaddr & frame_mask)
        writable = allow_w or (not user and not cpu.cr0 & CR0_WP)
        if user and not allow_u or write and not writable or \
                fetch and nx and cpu.efer & EFER_NXE:
            raise PageFault(vaddr, code | PF_P)
        if set_bits:
            for ea in entries:
                v = self.ram.u64(ea)
                if not v & A:
                    self.ram.set_u64(ea, v | A)
            if write:
                last = entries[-1]
                v = self.ram.u64(last)
                if not v & D:
                    self.ram.set_u64(last, v | D)
        dirty = bool(self.ram.u64(entries[-1]) & D)
        return paddr, writable and dirty

    def fill(self, vaddr: int, access: int) -> int:
        """bt_mmu_fill: the physical offset for an access from translated
        code, after installing TLB entries for the RAM page(s) it touches;
        an access window's offset when it spans frames that are not
        adjacent or reaches beyond RAM; MMU_FAULT (with ``last_fault``
        set) when the access faults."""
        size = access >> 8
        write = bool(access & 1)
        last = (vaddr + size - 1) & MASK64
        try:
            paddr, write_ok = self.translate(vaddr, write)
            p2, write_ok2 = self.translate(last, write) if (last >> 12) != (vaddr >> 12) else (None, False)
        except PageFault as f:
            self.last_fault = f
            return MMU_FAULT
        self._install(vaddr, paddr, write, write_ok)
        if p2 is None:
            return paddr if paddr < self.ram.size else self.ram.windows.place(paddr, None)
        self._install(last, p2, write, write_ok2)
        if p2 >> 12 == (paddr >> 12) + 1 and p2 < self.ram.size:
            return paddr
        return self.ram.windows.place(paddr, p2 & ~(PAGE - 1))

    def _install(self, vaddr: int, paddr: int, write: bool, write_ok: bool) -> None:
        """TLB entry for the page of ``vaddr`` (RAM only: beyond it every
        access comes back here for a window); drops the translations made
        from the frame first when this is a store."""
        if paddr >= self.ram.size:
            return
        ppage = paddr >> 12
        if write and ppage in self.code_pages:
            self.invalidate_code(ppage)
        vpage = vaddr >> 12
        i = vpage & (st.TLB_ENTRIES - 1)
        e = self.entries
        if e[3 * i] != vpage:
            e[3 * i + 1] = st.TLB_INVALID
        e[3 * i] = vpage
        e[3 * i + 2] = ((ppage - vpage) << 12) & ((1 << 64) - 1)
        if (write or write_ok) and ppage not in self.code_pages:
            e[3 * i + 1] = vpage

    # -- runtime access by virtual address ---------------------------------------
    @staticmethod
    def _pages(vaddr: int, n: int):
        """(virtual address, length) of each page-sized piece of a range."""
        while n > 0:
            chunk = min(n, PAGE - (vaddr & 0xFFF))
            yield vaddr, chunk
            vaddr += chunk
            n -= chunk

    def read_virtual(self, vaddr: int, n: int, user: bool | None = None) -> bytes:
        return b"".join(self.ram.read(self.translate(va, False, user)[0], chunk)
                        for va, chunk in self._pages(vaddr, n))

    def write_virtual(self, vaddr: int, data: bytes, user: bool | None = None) -> None:
        pos = 0
        for va, chunk in self._pages(vaddr, len(data)):
            paddr, _ = self.translate(va, True, user)
            if paddr >> 12 in self.code_pages:
                self.invalidate_code(paddr >> 12)
            self.ram.write(paddr, data[pos:pos + chunk])
            pos += chunk

    def read_u64(self, vaddr: int, user: bool | None = None) -> int:
        return struct.unpack("<Q", self.read_virtual(vaddr, 8, user))[0]

    def read_code(self, vaddr: int, n: int) -> bytes:
        """Instruction bytes for the translator (up to the first page that
        is not executable; all ones beyond RAM, which decode as an invalid
        opcode as on a PC); no accessed bits are set and no fault is
        raised."""
        out = b""
        for va, chunk in self._pages(vaddr, n):
            try:
                paddr, _ = self.translate(va, fetch=True, set_bits=False)
            except PageFault:
                break
            out += self.ram.read(paddr, chunk)
        return out

    def physical_page(self, vaddr: int) -> int | None:
        try:
            return self.translate(vaddr, fetch=True, set_bits=False)[0] >> 12
        except PageFault:
            return None
