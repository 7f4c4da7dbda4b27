"""bttool's own linker for translated code (runtime/objloader.py): objects
that LLVM made the way ir/codegen.py makes them, loaded and called."""
from __future__ import annotations

import ctypes
import os

import pytest

from bttool.ir import codegen
from bttool.runtime import objloader
from bttool.runtime.objloader import Linker, ObjectLoadError

CALLER = """
@cell = global i64 7
declare i64 @labs(i64)
declare i64 @pick(i64)
define i64 @caller(i64 %x) {
  %c = load i64, ptr @cell
  %y = call i64 @labs(i64 %x)
  %z = call i64 @pick(i64 %y)
  %s = add i64 %c, %z
  store i64 %s, ptr @cell
  ret i64 %s
}
"""

# a dense switch: a jump table in read-only data, relocated
PICK = """
define i64 @pick(i64 %x) {
  switch i64 %x, label %other [ i64 0, label %a  i64 1, label %b  i64 2, label %c
                                i64 3, label %d  i64 4, label %e  i64 5, label %f ]
a: ret i64 100
b: ret i64 211
c: ret i64 322
d: ret i64 433
e: ret i64 544
f: ret i64 655
other: ret i64 -1
}
"""

FAR_CALL = """
module asm ".text"
module asm ".globl far_abs"
module asm "far_abs: jmp labs@PLT"
"""

GOT_LOAD = """
module asm ".text"
module asm ".globl got_load"
module asm "got_load: movq labs@GOTPCREL(%rip), %rax"
module asm "ret"
"""


def _obj(text: str, target: codegen.Target | None = None) -> bytes:
    return codegen.compile_module(text, target or codegen.host_target(2))[0]


def _fn(linker: Linker, name: str):
    return ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(linker.address(name))


def test_a_batch_links_across_objects_to_host_functions_data_and_jump_tables():
    linker = Linker()
    defined = {s.name: s for s in linker.load([_obj(CALLER), _obj(PICK)])}
    assert defined["caller"].function and defined["pick"].function and not defined["cell"].function
    caller = _fn(linker, "caller")
    assert caller(-3) == 7 + 433
    assert caller(1) == 7 + 433 + 211           # the cell is writable data
    assert ctypes.c_int64.from_address(linker.address("cell")).value == 7 + 433 + 211
    assert [_fn(linker, "pick")(i) for i in range(-1, 7)] == [-1, 100, 211, 322, 433, 544, 655, -1]


def test_a_later_batch_uses_symbols_of_an_earlier_one():
    linker = Linker()
    linker.load([_obj(PICK)])
    linker.load([_obj(CALLER)])
    assert _fn(linker, "caller")(-5) == 7 + 655


def test_a_pc_relative_call_to_a_host_function_reaches_it_wherever_it_lies():
    """R_X86_64_PLT32 to libc: directly when within 2 GiB, else through a
    stub beside the code."""
    linker = Linker()
    linker.load([_obj(FAR_CALL)])
    assert _fn(linker, "far_abs")(-9) == 9


def test_a_pc_relative_call_beyond_2_gib_goes_through_a_stub():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          ctypes.c_long)
    # a function far below the loader's mappings: neg(x)
    far = libc.mmap(0x20000000, 4096, 7, 0x22, -1, 0)
    assert far and far != ctypes.c_void_p(-1).value
    ctypes.memmove(far, bytes.fromhex("4889f848f7d8c3"), 7)
    objloader.add_symbol("bt_test_far_neg", far)
    linker = Linker()
    linker.load([_obj('module asm ".text"\nmodule asm ".globl near_neg"\n'
                      'module asm "near_neg: jmp bt_test_far_neg@PLT"\n')])
    near = linker.address("near_neg")
    assert abs(near - far) > 2**31
    assert _fn(linker, "near_neg")(5) == -5
    rel = ctypes.c_int32.from_address(near + 1).value
    assert ctypes.c_uint8.from_address(near).value == 0xE9 and near + 5 + rel != far


def test_a_forked_child_has_its_own_copy_of_loaded_data():
    """A guest fork is a host fork: the child's lookup tables and cells
    must not be its parent's."""
    linker = Linker()
    linker.load([_obj(PICK), _obj(CALLER)])
    cell = ctypes.c_int64.from_address(linker.address("cell"))
    pid = os.fork()
    if pid == 0:
        _fn(linker, "caller")(2)            # the child's cell becomes 7 + 322
        os._exit(0 if cell.value == 7 + 322 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cell.value == 7


def test_loaded_code_is_executable_and_never_writable():
    linker = Linker()
    linker.load([_obj(PICK), _obj(CALLER)])
    code, cell = linker.address("pick"), linker.address("cell")
    perms = {}
    with open("/proc/self/maps") as f:
        for line in f:
            span, mode = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            for name, addr in (("code", code), ("cell", cell)):
                if lo <= addr < hi:
                    perms[name] = mode
    assert perms["code"].startswith("r-x") and perms["cell"].startswith("rw-")


@pytest.mark.parametrize("text, message", [
    (GOT_LOAD, "relocation type 42 is not supported"),
    ("declare i64 @no_such_function_here(i64)\n"
     "define i64 @f(i64 %x) {\n  %r = call i64 @no_such_function_here(i64 %x)\n  ret i64 %r\n}\n",
     "undefined symbol no_such_function_here"),
], ids=["got-relocation", "undefined-symbol"])
def test_what_it_cannot_link_is_named(text, message):
    with pytest.raises(ObjectLoadError, match=message):
        Linker().load([_obj(text)])


def test_an_object_for_another_machine_or_a_truncated_one_is_refused():
    aarch64 = codegen.Target("aarch64-unknown-linux-gnu", "generic", "", 2)
    with pytest.raises(ObjectLoadError, match="not an x86-64"):
        Linker().load([_obj(PICK, aarch64)])
    with pytest.raises(ObjectLoadError, match="not a readable object"):
        Linker().load([_obj(PICK)[:200]])
