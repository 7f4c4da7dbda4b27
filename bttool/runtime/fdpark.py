"""Keeping the guest's descriptors across an execve that leaves no number free.

A guest ``execve`` becomes a new host process: bttool in a fresh Python
(runtime/execstart.py), which needs free descriptor numbers to start (ld.so
opens Python's libraries, each import opens a file, the cache its index).
Natively an exec needs none, and a guest that opened files until EMFILE
under ``ulimit -n N`` (soft = hard) may exec with every number taken.  So the
exec'ing bttool parks the guest's highest descriptors in the fixed-file
table of an io_uring instance (which holds open files without taking
numbers) whose own descriptor survives the exec; the new bttool starts in
the numbers so freed, gives up its own descriptors just before the guest's
first instruction (hostfds.give_back) and installs the parked files at their
numbers again (``IORING_OP_FIXED_FD_INSTALL``, without close-on-exec, as
they were): the guest finds its descriptor table as exec left it.  When not
even one number is free for that instance, a registered-only one (no
descriptor at all, ``IORING_SETUP_REGISTERED_FD_ONLY``) holds the first
parked file meanwhile.

Needs Linux 6.8 (FIXED_FD_INSTALL) with io_uring allowed; ``available``
says whether it works here.  Everything goes through ``syscall`` and
``mmap`` by ctypes: no call here opens a descriptor of its own.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct

from bttool.runtime.hostfds import is_free

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

SYS_SETUP, SYS_ENTER, SYS_REGISTER = 425, 426, 427
SETUP_NO_MMAP, SETUP_REGISTERED_FD_ONLY = 1 << 14, 1 << 15
REGISTER_FILES, REGISTER_FILES_UPDATE, REGISTER_PROBE = 2, 6, 8
REGISTER_RING_FDS, UNREGISTER_RING_FDS = 20, 21
REGISTER_USE_REGISTERED_RING = 1 << 31
ENTER_GETEVENTS, ENTER_REGISTERED_RING = 1, 16
OP_FIXED_FD_INSTALL = 54
SQE_FIXED_FILE = 1
FIXED_FD_NO_CLOEXEC = 1
OFF_SQES = 0x10000000
PAGE = 4096
_PROT_RW, _MAP_SHARED, _MAP_PRIVATE, _MAP_ANON, _MAP_POPULATE = 3, 1, 2, 0x20, 0x8000
_MAP_FAILED = ctypes.c_void_p(-1).value


class _Params(ctypes.Structure):
    """struct io_uring_params (with the io_sqring/io_cqring offsets flat)."""
    _fields_ = [("sq_entries", ctypes.c_uint32), ("cq_entries", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("sq_thread_cpu", ctypes.c_uint32),
                ("sq_thread_idle", ctypes.c_uint32), ("features", ctypes.c_uint32),
                ("wq_fd", ctypes.c_uint32), ("resv", ctypes.c_uint32 * 3),
                ("sq_off", ctypes.c_uint32 * 8), ("sq_user_addr", ctypes.c_uint64),
                ("cq_off", ctypes.c_uint32 * 8), ("cq_user_addr", ctypes.c_uint64)]


class _Update(ctypes.Structure):
    """struct io_uring_rsrc_update."""
    _fields_ = [("offset", ctypes.c_uint32), ("resv", ctypes.c_uint32), ("data", ctypes.c_uint64)]


# io_sqring_offsets / io_cqring_offsets fields
_SQ_TAIL, _SQ_MASK, _SQ_ARRAY = 1, 2, 6
_CQ_HEAD, _CQ_MASK, _CQ_CQES = 0, 2, 5


def _sys(nr: int, *args) -> int:
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


class _Ring:
    """One io_uring instance, used one request at a time."""

    def __init__(self, params: _Params, handle: int, registered: bool,
                 rings: int, sqes: int, mapped: list[tuple[int, int]]) -> None:
        self.p = params
        self.handle = handle            # its descriptor, or its registered index
        self.registered = registered
        self.rings = rings
        self.sqes = sqes
        self.mapped = mapped

    @classmethod
    def registered_only(cls) -> "_Ring":
        """An instance without a descriptor (its rings in our own pages)."""
        mem = []
        for _ in range(2):
            addr = _libc.mmap(None, PAGE, _PROT_RW, _MAP_PRIVATE | _MAP_ANON | _MAP_POPULATE, -1, 0)
            if addr in (None, _MAP_FAILED):
                for a, n in mem:
                    _libc.munmap(a, n)
                raise OSError(errno.ENOMEM, "no memory for an io_uring")
            mem.append((addr, PAGE))
        p = _Params()
        p.flags = SETUP_NO_MMAP | SETUP_REGISTERED_FD_ONLY
        p.cq_user_addr = mem[0][0]
        p.sq_user_addr = mem[1][0]
        try:
            index = _sys(SYS_SETUP, 1, ctypes.byref(p))
        except OSError:
            for a, n in mem:
                _libc.munmap(a, n)
            raise
        return cls(p, index, True, mem[0][0], mem[1][0], mem)

    @classmethod
    def with_fd(cls) -> "_Ring":
        """An instance with a descriptor (the lowest free number),
        inheritable, not mapped here."""
        p = _Params()
        fd = _sys(SYS_SETUP, 1, ctypes.byref(p))
        os.set_inheritable(fd, True)
        return cls(p, fd, False, 0, 0, [])

    @classmethod
    def inherited(cls, fd: int, params: bytes) -> "_Ring":
        """The instance at descriptor ``fd`` (made by with_fd before an
        exec), mapped here and registered, its descriptor closed."""
        p = _Params.from_buffer_copy(params)
        size = max(p.sq_off[_SQ_ARRAY] + p.sq_entries * 4, p.cq_off[_CQ_CQES] + p.cq_entries * 16)
        mapped = []
        for length, offset in ((size, 0), (p.sq_entries * 64, OFF_SQES)):
            addr = _libc.mmap(None, length, _PROT_RW, _MAP_SHARED | _MAP_POPULATE, fd, offset)
            if addr in (None, _MAP_FAILED):
                for a, n in mapped:
                    _libc.munmap(a, n)
                raise OSError(ctypes.get_errno(), "cannot map the io_uring")
            mapped.append((addr, length))
        ring = cls(p, fd, False, mapped[0][0], mapped[1][0], mapped)
        upd = _Update(0xFFFFFFFF, 0, fd)
        _sys(SYS_REGISTER, fd, REGISTER_RING_FDS, ctypes.byref(upd), 1)
        ring.handle, ring.registered = upd.offset, True
        os.close(fd)
        return ring

    def register(self, opcode: int, arg, n: int) -> int:
        flag = REGISTER_USE_REGISTERED_RING if self.registered else 0
        return _sys(SYS_REGISTER, self.handle, opcode | flag, arg, n)

    def register_files(self, fds: list[int]) -> None:
        """Its fixed-file table: ``fds`` (-1: an empty slot)."""
        arr = (ctypes.c_int * len(fds))(*fds)
        self.register(REGISTER_FILES, arr, len(fds))

    def set_file(self, index: int, fd: int) -> None:
        arr = ctypes.c_int(fd)
        upd = _Update(index, 0, ctypes.addressof(arr))
        self.register(REGISTER_FILES_UPDATE, ctypes.byref(upd), 1)

    def install(self, index: int) -> int:
        """Fixed file ``index`` installed as a descriptor (the lowest free
        number), without close-on-exec."""
        p = self.p
        tail = ctypes.c_uint32.from_address(self.rings + p.sq_off[_SQ_TAIL])
        slot = tail.value & ctypes.c_uint32.from_address(self.rings + p.sq_off[_SQ_MASK]).value
        sqe = struct.pack("<BBHiQQIIQHHiQQ", OP_FIXED_FD_INSTALL, SQE_FIXED_FILE, 0, index, 0, 0, 0,
                          FIXED_FD_NO_CLOEXEC, index, 0, 0, 0, 0, 0)
        ctypes.memmove(self.sqes + 64 * slot, sqe, 64)
        ctypes.c_uint32.from_address(self.rings + p.sq_off[_SQ_ARRAY] + 4 * slot).value = slot
        tail.value = tail.value + 1
        flags = ENTER_GETEVENTS | (ENTER_REGISTERED_RING if self.registered else 0)
        _sys(SYS_ENTER, self.handle, 1, 1, flags, 0, 0)
        head = ctypes.c_uint32.from_address(self.rings + p.cq_off[_CQ_HEAD])
        at = self.rings + p.cq_off[_CQ_CQES] + 16 * (head.value & ctypes.c_uint32.from_address(
            self.rings + p.cq_off[_CQ_MASK]).value)
        _, res, _ = struct.unpack("<QiI", ctypes.string_at(at, 16))
        head.value = head.value + 1
        if res < 0:
            raise OSError(-res, os.strerror(-res))
        return res

    def close(self) -> None:
        """Gone (its fixed files with it, unless installed)."""
        if self.registered:
            upd = _Update(self.handle, 0, 0)
            try:
                self.register(UNREGISTER_RING_FDS, ctypes.byref(upd), 1)
            except OSError:
                pass
        else:
            try:
                os.close(self.handle)
            except OSError:
                pass
        for addr, n in self.mapped:
            _libc.munmap(addr, n)
        self.mapped = []


_available: bool | None = None


def available() -> bool:
    """Whether this kernel parks descriptors (io_uring allowed, with
    registered-only instances and FIXED_FD_INSTALL)."""
    global _available
    if _available is None:
        _available = False
        try:
            ring = _Ring.registered_only()
        except OSError:
            return False
        try:
            n = OP_FIXED_FD_INSTALL + 1
            buf = (ctypes.c_uint8 * (16 + 8 * n))()
            ring.register(REGISTER_PROBE, buf, n)
            last_op = buf[0]
            op_flags = struct.unpack_from("<H", bytes(buf), 16 + 8 * OP_FIXED_FD_INSTALL + 2)[0]
            _available = last_op >= OP_FIXED_FD_INSTALL and bool(op_flags & 1)
        except OSError:
            pass
        finally:
            ring.close()
    return _available


def park(fds: list[int]) -> dict:
    """Park the guest's descriptors ``fds`` (open, not close-on-exec) for an
    exec: they are closed here, held by an io_uring instance whose
    descriptor (inheritable) takes one free number.  Returns what the new
    bttool needs to put them back (``restore``); OSError (and nothing
    changed) if it cannot be done."""
    fds = sorted(fds)
    if not fds:
        return {}
    first = None            # a registered-only instance holding fds[0] meanwhile
    try:
        try:
            ring = _Ring.with_fd()
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            first = _Ring.registered_only()     # not one number free: make one
            first.register_files([fds[0]])
            os.close(fds[0])
            ring = _Ring.with_fd()
    except OSError:
        if first is not None:
            if is_free(fds[0]):
                _back(first, 0, fds[0])
            first.close()
        raise
    try:
        ring.register_files([-1 if first is not None else fds[0]] + fds[1:])
    except OSError:
        ring.close()
        if first is not None:
            _back(first, 0, fds[0])
            first.close()
        raise
    for fd in fds[1 if first is not None else 0:]:
        os.close(fd)
    if first is not None:
        fd = first.install(0)           # numbers are free now
        ring.set_file(0, fd)
        os.close(fd)
        first.close()
    return {"ring": ring.handle, "params": bytes(ring.p), "fds": fds}


def _back(ring: _Ring, index: int, target: int) -> None:
    fd = ring.install(index)
    if fd != target:
        os.dup2(fd, target)
        os.close(fd)


def restore(parked: dict) -> None:
    """Put the descriptors ``park`` parked back at their numbers (in the
    new bttool, which holds no descriptor of its own by now; or in the
    old one when the exec failed).  Each install takes the lowest free
    number: every other free number below is held by a placeholder
    meanwhile, so that each file lands at its own number directly."""
    if not parked:
        return
    targets = parked["fds"]
    ring = _Ring.inherited(parked["ring"], parked["params"])
    try:
        wanted = set(targets)
        others = [n for n in range(max(targets)) if n not in wanted and is_free(n)]
        held = []
        if others:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            held.append(null)
            for n in others:
                if n != null:
                    os.dup2(null, n, inheritable=False)
                    held.append(n)
        if held and held[0] in wanted:          # the source itself took a number parked
            os.close(held.pop(0))
        try:
            for index, target in sorted(enumerate(targets), key=lambda it: it[1]):
                _back(ring, index, target)
        finally:
            for n in held:
                os.close(n)
    finally:
        ring.close()
