"""The descriptors Linux's GDT shows a 64-bit user process: the one table
behind lar, lsl, verr and verw (semantics/segcheck.py) and the checks of
segment-register loads (semantics/dataxfer.py).

Linux x86-64 lays its per-CPU GDT out in arch/x86/include/asm/segment.h
(filled in arch/x86/kernel/cpu/common.c, ``gdt_page``): entry 1
__KERNEL32_CS, 2 __KERNEL_CS, 3 __KERNEL_DS (DPL 0), 4 __USER32_CS (0x23),
5 __USER_DS (0x2b), 6 __USER_CS (0x33), 8-9 the TSS and 10-11 the LDT
(system descriptors, DPL 0), 12-14 the TLS slots (empty unless
set_thread_area fills them; bttool has no set_thread_area), 15
__CPUNODE_SEG (0x7b: a read-only data segment whose limit encodes the CPU
and NUMA node, for the vDSO's getcpu), 16 entries in all.  At CPL 3 lar,
lsl, verr and verw succeed (ZF=1) only for the DPL-3 entries below, at any
RPL; every other selector (null, DPL 0, system, TI=1 with no LDT, past the
limit) gives ZF=0 and leaves the destination alone.  The values are what
the host answers natively (tests/test_isa_corners.py compares them):
``access`` is lar's result (descriptor bytes 5-6 masked by 0x00F0FF00),
``limit`` lsl's (byte granular).  The CPU-number segment's limit is
``cpu | node << 12``; the virtual CPU is CPU 0 of node 0 (as rdtscp's
TSC_AUX in semantics/system.py), so its limit is 0.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UserDescriptor:
    selector: int       # index * 8 (TI and RPL clear)
    name: str
    access: int         # lar
    limit: int          # lsl
    readable: bool      # verr
    writable: bool      # verw


LINUX_USER_GDT: tuple[UserDescriptor, ...] = (
    UserDescriptor(0x20, "__USER32_CS", 0x00CFFB00, 0xFFFFFFFF, True, False),
    UserDescriptor(0x28, "__USER_DS", 0x00CFF300, 0xFFFFFFFF, True, True),
    UserDescriptor(0x30, "__USER_CS", 0x00AFFB00, 0xFFFFFFFF, True, False),
    UserDescriptor(0x78, "__CPUNODE_SEG", 0x0040F500, 0, True, False),
)

# mov/pop into DS, ES, FS, GS accepts the null selector and every readable
# segment (any RPL); SS only a writable data segment at RPL 3 (= CPL).
DATA_LOADABLE: tuple[int, ...] = (0,) + tuple(d.selector for d in LINUX_USER_GDT if d.readable)
STACK_LOADABLE: tuple[int, ...] = tuple(d.selector | 3 for d in LINUX_USER_GDT if d.writable)
