"""The runtime's tables as translated code uses them, and the IR that uses
them: the lookup table of (guest pc, host function) that chaining jumps
through (``emit_chain``), the execution counters of tier-1 code
(``emit_hot_check``) and the last targets of indirect branches
(``emit_target_record``).  The runtime's side (the native dispatch loop,
which probes the same table, and its installer) is runtime/nativeloop.py
and runtime/dispatcher.py; the layout and the hash are defined here once
for both.

The lookup table is two-way set associative: a set is two 16-byte entries
in one cache line, the most recently installed first
(``runtime/dispatcher.py`` installs), so two hot targets that hash to the
same set no longer evict each other on every install (SQLite's interpreter
loop returned to Python 1.2 million times a run through one such pair when
the table was direct-mapped).  The table is shared by all guest threads:
an entry is written and read as one 16-byte atomic access, so no thread
ever sees a pc with another entry's function.
"""
from __future__ import annotations

from bttool.ir import state, unitabi

TABLE_SET_BITS = 15
TABLE_WAYS = 2          # bt_run's IR (runtime/nativeloop.py) spells out both probes
TABLE_ENTRIES = TABLE_WAYS << TABLE_SET_BITS
TABLE_ENTRY_SIZE = 16
TABLE_SET_SIZE = TABLE_WAYS * TABLE_ENTRY_SIZE
COUNTER_BITS = 16
HOT_THRESHOLD = 20000   # entries + back-edges before a region is retranslated at tier 2
# the same for a region stitched from stencils (translator/stitch.py), whose
# code is several times slower than compiled tier-1 code: warm runs of zlib
# ran 2.23x native where compiled tier 1 gave 1.55x, the code that never
# reached 20,000 running stitched in every run
STITCHED_HOT_THRESHOLD = 2000
TARGET_BITS = 12        # bt_targets: last target of tier-1 indirect calls/jumps, by site
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
# A lookup-table entry that matches no pc (outside the guest window): the
# pc half of an empty entry; its function half is 0.
EMPTY_PC = 0xFFFFFFFFFFFFFFFF
EMPTY_ENTRY = EMPTY_PC       # (pc, function) as one i128


def fibonacci_hash(key: int, bits: int) -> int:
    """``key``'s slot among 2**bits (Fibonacci hashing): the hash of every
    table here, and of the emitter's hashed switches."""
    return ((key * HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> (64 - bits)


def emit_fibonacci_hash(b, key, bits: int):
    """IR: ``fibonacci_hash`` of the i64 value ``key``."""
    from llvmlite import ir
    i64 = ir.IntType(64)
    return b.lshr(b.mul(key, ir.Constant(i64, HASH_MULTIPLIER)), ir.Constant(i64, 64 - bits))


def table_set(pc: int) -> int:
    """The lookup-table set of ``pc``: the same hash as ``bt_run`` and
    ``emit_chain`` use."""
    return fibonacci_hash(pc, TABLE_SET_BITS)


def _emit_set_address(b, table, pc):
    """IR: the address of ``pc``'s set in ``table`` (see ``table_set``)."""
    from llvmlite import ir
    i64 = ir.IntType(64)
    off = b.shl(emit_fibonacci_hash(b, pc, TABLE_SET_BITS),
                ir.Constant(i64, TABLE_SET_SIZE.bit_length() - 1))
    return b.gep(table, [off], inbounds=True, source_etype=ir.IntType(8))


class _IndirectCallee:
    """Lets llvmlite call through a loaded function pointer (it wants a
    callee that knows its function type)."""

    def __init__(self, value, fnty) -> None:
        self.value = value
        self.function_type = fnty
        self.type = value.type

    def get_reference(self) -> str:
        return self.value.get_reference()


def _link(b, state_ptr, name: str):
    """The address of one of the runtime's tables, read from the state
    (see state.RUNTIME_LINKS for why not the global itself)."""
    from llvmlite import ir
    field = b.gep(state_ptr, [ir.Constant(ir.IntType(64), state.offset(name))],
                  inbounds=True, source_etype=ir.IntType(8))
    return b.load(field, typ=ir.PointerType())


def emit_chain(b, state_ptr, mem, rip, late=None) -> None:
    """End a translated function by jumping straight to the translation of
    ``rip`` when the table has one (a tail call: the host stack never grows),
    else return to ``bt_run``, which will report the miss.  ``late(b)``:
    writes back the flags the exit changed, called on the way back to
    ``bt_run`` and before a jump to a unit whose flags mark says it needs
    them (ir/unitabi.py), not before one to a unit that overwrites them
    first; one block does both, so the exit holds one copy of the stores."""
    from llvmlite import ir
    i8, i64 = ir.IntType(8), ir.IntType(64)
    ptr = ir.PointerType()
    fn_block = b.function.append_basic_block
    found, miss = fn_block("chain.found"), fn_block("chain.miss")
    table = _link(b, state_ptr, "table_base")
    entry = _emit_set_address(b, table, rip)
    hits = []
    for way in range(TABLE_WAYS):
        if way:
            entry = b.gep(entry, [ir.Constant(i64, TABLE_ENTRY_SIZE)], inbounds=True, source_etype=i8)
        # (pc, function) in one load: another thread may be replacing the entry
        pair = b.load_atomic(entry, "unordered", 16, typ=ir.IntType(128))
        fn = b.inttoptr(b.trunc(b.lshr(pair, ir.Constant(ir.IntType(128), 64)), i64), ptr)
        hits.append((fn, b.block))
        nxt = miss if way == TABLE_WAYS - 1 else fn_block("chain.way")
        b.cbranch(b.icmp_unsigned("==", b.trunc(pair, i64), rip), found, nxt)
        b.position_at_end(nxt)
    b.position_at_end(found)
    target = b.phi(ptr)
    for fn, blk in hits:
        target.add_incoming(fn, blk)
    callee = lambda f: _IndirectCallee(f, unitabi.unit_type())    # noqa: E731
    if late is None:
        unitabi.tail_call_unit(b, callee(target), state_ptr, mem)
        b.position_at_end(miss)
        b.ret_void()
        return
    go, write = fn_block("chain.go"), fn_block("chain.late")
    mark = b.load(b.gep(target, [ir.Constant(i64, -1)], source_etype=i8), typ=i8)
    b.cbranch(b.icmp_unsigned("==", mark, ir.Constant(i8, unitabi.FLAGS_UNNEEDED)), go, write)
    b.position_at_end(go)
    unitabi.tail_call_unit(b, callee(target), state_ptr, mem)
    b.position_at_end(miss)
    b.branch(write)
    b.position_at_end(write)
    late_target = b.phi(ptr)
    late_target.add_incoming(target, found)
    late_target.add_incoming(ir.Constant(ptr, None), miss)
    late(b)
    call, ret = fn_block("chain.call"), fn_block("ret")
    b.cbranch(b.icmp_unsigned("!=", late_target, ir.Constant(ptr, None)), call, ret)
    b.position_at_end(call)
    unitabi.tail_call_unit(b, callee(late_target), state_ptr, mem)
    b.position_at_end(ret)
    b.ret_void()


def counter_index(pc_key: int) -> int:
    return fibonacci_hash(pc_key, COUNTER_BITS)


def counter_slot(pc_key: int) -> int:
    """The byte offset of pc_key's counter in the counters table."""
    return 4 * counter_index(pc_key)


def emit_hot_check(b, state_ptr, pc_key: int, on_hot, slot_offset=None,
                   threshold: int = HOT_THRESHOLD) -> None:
    """Count one execution of the code at guest pc ``pc_key`` (relative to
    the image base); past the threshold call ``on_hot()`` (which must end
    the path) after resetting the counter.  ``slot_offset``: an i64 value
    that is ``counter_slot(pc_key)`` (a stencil's hole) instead."""
    from llvmlite import ir
    i32 = ir.IntType(32)
    counters = _link(b, state_ptr, "counters_base")
    slot = b.gep(counters, [slot_offset if slot_offset is not None
                            else ir.Constant(ir.IntType(64), counter_slot(pc_key))],
                 inbounds=True, source_etype=ir.IntType(8))
    n = b.add(b.load(slot, typ=i32), ir.Constant(i32, 1))
    b.store(n, slot, 4)
    with b.if_then(b.icmp_unsigned(">", n, ir.Constant(i32, threshold)), likely=False):
        b.store(ir.Constant(i32, 0), slot, 4)
        on_hot()


def target_index(pc_key: int) -> int:
    return fibonacci_hash(pc_key, TARGET_BITS)


def target_slot(pc_key: int) -> int:
    """The byte offset of pc_key's slot in the targets table."""
    return 8 * target_index(pc_key)


def emit_target_record(b, state_ptr, pc_key: int, target, slot_offset=None) -> None:
    """Tier 1: remember ``target`` (i64) as the last target of the indirect
    call or jump at guest pc ``pc_key`` (relative to the image base); tier 2
    uses it as a guess (runtime/dispatcher.py).  ``slot_offset``: an i64
    value that is ``target_slot(pc_key)`` (a stencil's hole) instead."""
    from llvmlite import ir
    i64 = ir.IntType(64)
    targets = _link(b, state_ptr, "targets_base")
    slot = b.gep(targets, [slot_offset if slot_offset is not None else ir.Constant(i64, target_slot(pc_key))],
                 inbounds=True, source_etype=ir.IntType(8))
    b.store(target, slot, 8)
