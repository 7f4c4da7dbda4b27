"""Loading a guest kernel and the machine state it is entered with.

Two boot protocols (README.md, "System mode"):

* the bttool protocol: an ELF64 kernel entered in 64-bit long mode with
  paging on (the first 4 GiB identity-mapped with 2 MiB pages), a flat GDT,
  and RDI pointing at a boot information block (memory size, command line,
  memory map);
* Multiboot v1: a kernel image with a Multiboot header in its first 8 KiB
  (ELF32, ELF64, or any format with the address fields), entered in 32-bit
  protected mode with paging off, EAX = 0x2BADB002 and EBX = the Multiboot
  information structure, as the specification says.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from bttool.errors import CannotRun as BadProgram
from bttool.runtime.imagefile import read_image
from bttool.runtime.programkind import find_multiboot_header

MULTIBOOT_BOOTLOADER_MAGIC = 0x2BADB002
MB_AOUT_KLUDGE = 1 << 16
MB_VIDEO_MODE = 1 << 2
# bits 0-15 are requirements: 0 (page-aligned modules), 1 (memory information) and
# 2 (video mode: there is no display, the kernel is told nothing) are met
MB_REQUIRED_UNKNOWN = 0xFFF8
BOOTINFO_MAGIC = 0x4254424F
BOOTINFO_VERSION = 1

# physical layout of what the loader builds (all in the first MiB, reserved)
GDT_ADDR = 0x800
PML4_ADDR, PDPT_ADDR, PD_ADDR = 0x1000, 0x2000, 0x3000
BOOTINFO_ADDR = 0x7000
CMDLINE_ADDR = 0x7100
MMAP_ADDR = 0x7800
MB_INFO_ADDR = 0x9000
MB_CMDLINE_ADDR = 0x9100
MB_MMAP_ADDR = 0x9800
MB_NAME_ADDR = 0x9F00
BOOT_STACK = 0x80000
LOW_RESERVED = 0x100000
LOADER_END = 0xA000             # everything the loader writes lies below this

GDT64 = [0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF]
CR0_BOOT64 = 0x80010033
CR4_BOOT64 = 0x620
EFER_BOOT64 = 0x500


@dataclass
class Segment:
    paddr: int
    data: bytes
    memsz: int
    vaddr: int | None = None      # ELF p_vaddr (Multiboot: the entry may be given as one)


@dataclass
class KernelImage:
    path: str
    raw: bytes
    protocol: str                 # "bttool64" or "multiboot"
    entry: int
    segments: list[Segment]
    sha256: str


_PHDR_SIZE = {64: 56, 32: 32}


def _elf_segments(raw: bytes, path: str) -> tuple[int, list[Segment], int]:
    """(entry, PT_LOAD segments at their physical addresses, ELF class bits).
    Every field is checked against the file before it is used: a bad image
    is a BadProgram, never a loop over garbage."""
    if raw[:4] != b"\x7fELF":
        raise BadProgram(f"{path}: not an ELF kernel and no Multiboot address fields")
    cls = raw[4] if len(raw) > 4 else 0
    if len(raw) < (64 if cls == 2 else 52):
        raise BadProgram(f"{path}: truncated ELF header")
    if cls == 2:
        entry, phoff = struct.unpack_from("<QQ", raw, 24)
        phentsize, phnum = struct.unpack_from("<HH", raw, 54)
        fmt, bits = "<IIQQQQQQ", 64
    elif cls == 1:
        entry, phoff = struct.unpack_from("<II", raw, 24)
        phentsize, phnum = struct.unpack_from("<HH", raw, 42)
        fmt, bits = "<IIIIIIII", 32
    else:
        raise BadProgram(f"{path}: bad ELF class")
    if raw[5] != 1:
        raise BadProgram(f"{path}: not a little-endian ELF file")
    machine = struct.unpack_from("<H", raw, 18)[0]
    if machine not in (3, 62):
        raise BadProgram(f"{path}: not an x86 kernel (ELF machine {machine})")
    if phentsize != _PHDR_SIZE[bits]:
        # as Linux's ELF loader: any other size is a broken file (0 would
        # read the first header phnum times)
        raise BadProgram(f"{path}: program header size {phentsize} "
                         f"(an ELF{bits} program header is {_PHDR_SIZE[bits]} bytes)")
    if phoff + phnum * phentsize > len(raw):
        raise BadProgram(f"{path}: truncated program headers")
    segs = []
    for i in range(phnum):
        off = phoff + i * phentsize
        if bits == 64:
            p_type, _flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _align = \
                struct.unpack_from(fmt, raw, off)
        else:
            p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _flags, _align = \
                struct.unpack_from(fmt, raw, off)
        if p_type != 1:
            continue
        if p_offset + p_filesz > len(raw):
            raise BadProgram(f"{path}: truncated segment")
        if p_filesz > p_memsz:
            raise BadProgram(f"{path}: segment at {p_paddr:#x}: file size {p_filesz:#x} larger "
                             f"than its memory size {p_memsz:#x}")
        if p_memsz == 0:
            continue
        segs.append(Segment(p_paddr, raw[p_offset:p_offset + p_filesz], p_memsz, p_vaddr))
    if not segs:
        raise BadProgram(f"{path}: no loadable segments")
    return entry, segs, bits


def _physical_entry(entry: int, segs: list[Segment]) -> int:
    """A Multiboot ELF kernel's entry as GRUB takes it: an e_entry inside a
    segment's virtual range means the same byte at its physical address
    (paging is off at entry).  Unchanged when p_vaddr == p_paddr."""
    for seg in segs:
        if seg.vaddr is not None and seg.vaddr <= entry < seg.vaddr + seg.memsz:
            return entry - seg.vaddr + seg.paddr
    return entry


def _address_kludge(raw: bytes, path: str, off: int) -> tuple[int, Segment]:
    """(entry, the one segment) of a Multiboot header with the address
    fields (flag 16): header_addr, load_addr, load_end_addr, bss_end_addr,
    entry_addr, checked against each other and the file."""
    if off + 32 > len(raw):
        raise BadProgram(f"{path}: truncated Multiboot header (the address fields are missing)")
    header_addr, load_addr, load_end, bss_end, entry = struct.unpack_from("<IIIII", raw, off + 12)
    if load_end and load_end < load_addr:
        raise BadProgram(f"{path}: Multiboot load_end_addr {load_end:#x} is below "
                         f"load_addr {load_addr:#x}")
    if header_addr < load_addr:
        raise BadProgram(f"{path}: Multiboot header_addr {header_addr:#x} is below "
                         f"load_addr {load_addr:#x}")
    if load_end and header_addr + 32 > load_end:
        raise BadProgram(f"{path}: the Multiboot header (header_addr {header_addr:#x}) is not "
                         f"inside the loaded range {load_addr:#x}-{load_end:#x}")
    file_off = off - (header_addr - load_addr)
    if file_off < 0:
        raise BadProgram(f"{path}: Multiboot address fields point outside the file")
    size = (load_end - load_addr) if load_end else len(raw) - file_off
    if file_off + size > len(raw):
        raise BadProgram(f"{path}: Multiboot address fields point outside the file")
    if header_addr + 32 > load_addr + size:
        raise BadProgram(f"{path}: the Multiboot header (header_addr {header_addr:#x}) is not "
                         f"inside the loaded range {load_addr:#x}-{load_addr + size:#x}")
    if bss_end and bss_end < load_addr + size:
        raise BadProgram(f"{path}: Multiboot bss_end_addr {bss_end:#x} is below the end of "
                         f"the loaded range {load_addr + size:#x}")
    memsz = (bss_end - load_addr) if bss_end else size
    return entry, Segment(load_addr, raw[file_off:file_off + size], memsz)


def load_kernel(path: str) -> KernelImage:
    """Parse a kernel image (see the module docstring); BadProgram if it is
    neither protocol's or is malformed.  Where it is placed is checked
    against the machine by layout.check_layout."""
    import hashlib
    raw = read_image(path)
    sha = hashlib.sha256(raw).hexdigest()
    mb = find_multiboot_header(raw[:8192])
    if mb is not None:
        off, flags = mb
        if flags & MB_REQUIRED_UNKNOWN:
            raise BadProgram(f"{path}: the Multiboot header requires features bttool does not "
                             f"offer (flags {flags & MB_REQUIRED_UNKNOWN:#x})")
        if flags & MB_AOUT_KLUDGE:
            entry, seg = _address_kludge(raw, path, off)
            return KernelImage(path, raw, "multiboot", entry, [seg], sha)
        entry, segs, _bits = _elf_segments(raw, path)
        return KernelImage(path, raw, "multiboot", _physical_entry(entry, segs), segs, sha)
    entry, segs, bits = _elf_segments(raw, path)
    if bits != 64:
        raise BadProgram(f"{path}: a 32-bit kernel needs a Multiboot header")
    return KernelImage(path, raw, "bttool64", entry, segs, sha)


def place_segments(ram, image: KernelImage) -> None:
    """Copy the segments into freshly cleared RAM (the layout was checked by
    layout.check_layout when the image was loaded).  The rest of each
    p_memsz is already zero: nothing is written there, so a large bss costs
    nothing at each boot."""
    for seg in image.segments:
        if seg.paddr + max(seg.memsz, len(seg.data)) > ram.size:
            raise BadProgram(f"{image.path}: segment at {seg.paddr:#x} does not fit in "
                             f"{ram.size >> 20} MiB of guest memory")
        ram.write(seg.paddr, seg.data)


def build_bttool64(ram, mem_size: int, cmdline: bytes) -> dict:
    """Page tables, GDT and boot information block of the bttool protocol;
    returns the register values to enter with."""
    ram.write(GDT_ADDR, struct.pack("<3Q", *GDT64))
    ram.write(PML4_ADDR, struct.pack("<Q", PDPT_ADDR | 0x7))
    ram.write(PDPT_ADDR, struct.pack("<4Q", *[(PD_ADDR + 0x1000 * i) | 0x7 for i in range(4)]))
    ram.write(PD_ADDR, struct.pack("<2048Q", *[(i << 21) | 0x87 for i in range(2048)]))
    cmd = cmdline[:0x6FF] + b"\0"
    ram.write(CMDLINE_ADDR, cmd)
    mmap = [(0, LOW_RESERVED, 2), (LOW_RESERVED, mem_size - LOW_RESERVED, 1)]
    ram.write(MMAP_ADDR, b"".join(struct.pack("<QQII", b, n, t, 0) for b, n, t in mmap))
    ram.write(BOOTINFO_ADDR, struct.pack("<IIQQIIQ", BOOTINFO_MAGIC, BOOTINFO_VERSION, mem_size,
                                         CMDLINE_ADDR, len(mmap), 0, MMAP_ADDR))
    return {"rdi": BOOTINFO_ADDR, "rsp": BOOT_STACK}


def build_multiboot(ram, mem_size: int, cmdline: bytes) -> dict:
    """The Multiboot information structure (mem, cmdline, mmap, loader name)."""
    ram.write(MB_CMDLINE_ADDR, cmdline[:0x6FF] + b"\0")
    ram.write(MB_NAME_ADDR, b"bttool\0")
    mmap = [(0, 0x9FC00, 1), (0x9FC00, 0x400, 2), (0xF0000, 0x10000, 2),
            (LOW_RESERVED, mem_size - LOW_RESERVED, 1)]
    raw = b"".join(struct.pack("<IQQI", 20, b, n, t) for b, n, t in mmap)
    ram.write(MB_MMAP_ADDR, raw)
    flags = 1 | 4 | 64 | 512
    info = struct.pack("<IIIIIIIIIIIIIIII", flags, 639, (mem_size - LOW_RESERVED) >> 10, 0,
                       MB_CMDLINE_ADDR, 0, 0, 0, 0, 0, 0, len(raw), MB_MMAP_ADDR, 0, 0, MB_NAME_ADDR)
    ram.write(MB_INFO_ADDR, info)
    return {"rax": MULTIBOOT_BOOTLOADER_MAGIC, "rbx": MB_INFO_ADDR}
