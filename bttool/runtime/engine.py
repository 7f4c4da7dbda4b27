"""Loading translated code: an MCJIT engine fed with object files.

Objects come from ir/codegen.py directly or from the persistent cache; this
module only loads them and resolves their symbols.
"""
from __future__ import annotations

import ctypes
import os
from typing import Callable

import llvmlite.binding as llvm

from bttool.ir import codegen, tables
from bttool.runtime import nativeloop

# 128-bit division helpers LLVM may call for 64-bit div/idiv.
_LIBGCC_SYMBOLS = ("__udivti3", "__umodti3", "__divti3", "__modti3")


def _register_runtime_symbols() -> None:
    """The helpers come from libgcc_s by its soname (stable since GCC 3.0).
    ``ctypes.util.find_library`` is not used: it runs ``ldconfig -p`` in a
    subprocess, which every bttool process (each guest fork and exec) paid."""
    try:
        lib = ctypes.CDLL("libgcc_s.so.1")
    except OSError:
        return
    for sym in _LIBGCC_SYMBOLS:
        try:
            addr = ctypes.cast(getattr(lib, sym), ctypes.c_void_p).value
        except AttributeError:
            continue
        llvm.add_symbol(sym, addr)


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


# (support IR text, target) -> its object code; the cache provides one
# (runtime/cache.py CacheStore.support_object) so warm runs skip compiling.
SupportCompiler = Callable[[str, codegen.Target], bytes]


def _compile_support(ir_text: str, target: codegen.Target) -> bytes:
    return codegen.compile_module(ir_text, target)[0]


class Engine:
    """One MCJIT instance holding all translated code of a run."""

    def __init__(self, compile_support: SupportCompiler | None = None) -> None:
        codegen.init_llvm()
        _register_runtime_symbols()
        tm = codegen.target_machine(codegen.host_target())
        self._ee = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        self._objects: list[llvm.ObjectFileRef] = []
        self._perf_map = open(f"/tmp/perf-{os.getpid()}.map", "a") \
            if os.environ.get("BTTOOL_PERF_MAP") else None
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
        """Load object files and make their code runnable (one finalisation
        for all of them)."""
        if not datas:
            return
        for data in datas:
            obj = llvm.ObjectFileRef.from_data(data)
            self._objects.append(obj)
            self._ee.add_object_file(obj)
        self._ee.finalize_object()
        if self._perf_map is not None:
            for data in datas:
                self._write_perf_map(data)

    def _write_perf_map(self, data: bytes) -> None:
        """BTTOOL_PERF_MAP=1: name translated code for `perf report`
        (/tmp/perf-PID.map, the perf JIT map convention)."""
        from bttool.ir import objfile
        for name, sym in objfile.symbols(data).items():
            if sym.size and name.startswith("bt_"):
                addr = self._ee.get_function_address(name)
                if addr:
                    self._perf_map.write(f"{addr:x} {sym.size:x} {name}\n")
        self._perf_map.flush()

    def global_address(self, symbol: str) -> int:
        addr = self._ee.get_global_value_address(symbol)
        if not addr:
            raise KeyError(symbol)
        return addr

    def address(self, symbol: str) -> int:
        addr = self._ee.get_function_address(symbol)
        if not addr:
            raise KeyError(symbol)
        return addr
