"""Loading translated code: the support object and the translations.

Objects come from ir/codegen.py directly or from the persistent cache; this
module only loads them (runtime/objloader.py links them itself, so no LLVM
is needed to run cached code) and finds their entry points.
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable, TextIO

from bttool.ir import codegen, tables
from bttool.runtime import nativeloop
from bttool.runtime.objloader import Linker

_libc = ctypes.CDLL(None)
_key: int | None = None


def _state_key() -> int:
    """The pthread key whose value, on each host thread, is the state of the
    guest thread it runs (runtime/nativeloop.py): one for the process, so the
    handler of any engine finds the state whichever engine's ``bt_run``
    bound it."""
    global _key
    if _key is None:
        k = ctypes.c_uint32()
        if _libc.pthread_key_create(ctypes.byref(k), None) != 0:
            raise OSError("pthread_key_create failed")
        _key = k.value
    return _key


def _open_perf_map() -> TextIO:
    """/tmp/perf-PID.map (the perf JIT map convention), as one of bttool's
    descriptors (runtime/hostfds.py: high up, hidden from the guest, kept
    open by an execve served in this process, runtime/execinplace.py)."""
    from bttool.runtime import hostfds
    fd = os.open(f"/tmp/perf-{os.getpid()}.map", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    return os.fdopen(hostfds.move_high(fd), "a")


# (support IR text, target) -> its object code; the cache provides one
# (runtime/cache.py CacheStore.support_object) so warm runs skip compiling.
SupportCompiler = Callable[[str, codegen.Target], bytes]


def _compile_support(ir_text: str, target: codegen.Target) -> bytes:
    return codegen.compile_module(ir_text, target)[0]


class Engine:
    """All translated code of a run, and the support code's entry points."""

    def __init__(self, compile_support: SupportCompiler | None = None) -> None:
        self._linker = Linker()
        self._perf_map = _open_perf_map() if os.environ.get("BTTOOL_PERF_MAP") else None
        self.load_object((compile_support or _compile_support)(nativeloop.support_ir(),
                                                               codegen.host_target(2)))
        self.run_fn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p,
                                       ctypes.c_void_p)(self.address("bt_run"))
        self.signal_handler = self.address("bt_signal")
        self.step_fn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_void_p)(self.address("bt_step"))
        ctypes.c_int32.from_address(self.global_address("bt_tls_key")).value = _state_key()
        self.table_put = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64)(
            self.address("bt_table_put"))
        self.table_fill = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)(
            self.address("bt_table_fill"))
        self.take_async = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(
            self.address("bt_take_async"))
        # (nr, six arguments) -> the host call's result or -errno, or
        # -nativeloop.NOT_STARTED (see Syscalls.raw)
        self.safe_syscall = ctypes.CFUNCTYPE(ctypes.c_long, *[ctypes.c_long] * 7)(
            self.address("bt_safe_syscall"))
        # a lookup table with no entries (see Executor.empty_table)
        self.empty_table = self.global_address("bt_no_table")
        self.table_fill(self.empty_table, tables.TABLE_ENTRIES)

    @staticmethod
    def bind(state) -> None:
        """This host thread runs the guest thread of ``state``: the signal
        handlers find it (``bt_run`` binds it too, on every entry)."""
        _libc.pthread_setspecific(ctypes.c_uint32(_state_key()), ctypes.c_void_p(ctypes.addressof(state)))

    def load_object(self, data: bytes) -> None:
        self.load_objects([data])

    def load_objects(self, datas: list[bytes]) -> None:
        """Load object files and make their code runnable (linked as one
        batch: they may refer to each other)."""
        if not datas:
            return
        defined = self._linker.load(datas)
        if self._perf_map is not None:
            # BTTOOL_PERF_MAP=1: name translated code for `perf report`
            # (/tmp/perf-PID.map, the perf JIT map convention)
            for sym in defined:
                if sym.function and sym.size and sym.name.startswith("bt_"):
                    self._perf_map.write(f"{sym.address:x} {sym.size:x} {sym.name}\n")
            self._perf_map.flush()

    def global_address(self, symbol: str) -> int:
        """The address of a loaded global (function or data)."""
        addr = self._linker.address(symbol)
        if not addr:
            raise KeyError(symbol)
        return addr

    address = global_address
