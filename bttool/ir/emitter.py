"""Building one translated function: CPU state promotion, exits, memory.

A translated unit is an LLVM function ``void f(ptr noalias state, ptr mem)``.
Guest registers and flags it touches live in allocas (loaded once in the
entry block, written back once in the exit block), so SROA/mem2reg turn them
into SSA values and LLVM deletes flag computations nobody reads.  ``state``
is ``noalias``: guest memory (reached through ``mem``) can never alias the CPU
state, which lets LLVM keep guest registers in host registers.
"""
from __future__ import annotations

from typing import Callable, Sequence

from llvmlite import ir

from bttool.ir import memory, state, tables, unitabi, writeback
from bttool.ir.commits import REGISTER_FILE, CommitPoints, split_address
from bttool.ir.fastbuilder import FastBuilder
from bttool.ir.state import FIELDS, GPR_NAMES
from bttool.ir.stencil import StencilPorts, is_virtual

# What a foreign unit's base cell holds until the runtime writes it
# (FunctionEmitter's ``foreign``) when there is no clamp: no canonical
# address minus a file offset equals it, so a guard that compares an
# indirect target with ``base + offset`` never passes.
UNBOUND_BASE = 1 << 63

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I128 = ir.IntType(128)
PTR = ir.PointerType()
VOID = ir.VoidType()

_FLAGS = set(state.FLAG_NAMES)
_GPRS = frozenset(GPR_NAMES)
# xmm registers and the upper halves of ymm registers (ymmh) are i128 to the
# lifter but live in <2 x i64> slots, so LLVM keeps them in vector registers
# (an i128 SSA value is split into two GPRs).
V2I64 = ir.VectorType(I64, 2)
V4I64 = ir.VectorType(I64, 4)


def _mask(*lanes: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I32, len(lanes)), list(lanes))


# shufflevector masks of the whole-ymm slots: a half out of the whole (by
# 0/1), two halves into a whole (None); a half widened (its upper lanes are
# replaced next); a new low or high half beside the old other half
_LANES = {0: _mask(0, 1), 1: _mask(2, 3), None: _mask(0, 1, 2, 3)}
_WIDEN = _mask(0, 1, 0, 1)
_KEEP_HIGH, _KEEP_LOW = _mask(0, 1, 6, 7), _mask(4, 5, 0, 1)


def int_type(bits: int) -> ir.IntType:
    return ir.IntType(bits)


def const(bits: int, value: int) -> ir.Constant:
    return ir.Constant(ir.IntType(bits), value & ((1 << bits) - 1))


def _value_type(name: str) -> ir.Type:
    """The type the lifter sees."""
    if name in _FLAGS:
        return I1
    if is_virtual(name):        # a stencil's abstracted general register
        return I64
    return ir.IntType(FIELDS[name].size * 8)


def _slot_type(name: str) -> ir.Type:
    """The type of the field's alloca (and of its loads and stores)."""
    if name.startswith(("xmm", "ymmh")):
        return V2I64
    return _value_type(name)


class _HookedBuilder(FastBuilder):
    """An IRBuilder that lets the emitter flush pending values into their
    allocas before every terminator, so no cached SSA value ever has to
    cross an IR block boundary."""

    def __init__(self, block: ir.Block, before_terminator) -> None:
        super().__init__(block)
        self._before_terminator = before_terminator

    def branch(self, target):
        self._before_terminator()
        return super().branch(target)

    def cbranch(self, cond, truebr, falsebr):
        self._before_terminator()
        return super().cbranch(cond, truebr, falsebr)

    def switch(self, value, default):
        self._before_terminator()
        return super().switch(value, default)

    def branch_indirect(self, addr):
        self._before_terminator()
        return super().branch_indirect(addr)

    def ret_void(self):
        self._before_terminator()
        return super().ret_void()

    def unreachable(self):
        self._before_terminator()
        return super().unreachable()


Thunk = Callable[[], ir.Value]

# switch_leave: at least this many targets become one indirect jump through
# a table of block addresses: indexed by the target's offset from the first
# when they lie close together (within _DENSE_SPAN bytes, or at most
# _DENSE_SPAN_PER_KEY bytes per target), else by a multiplicative hash of
# the target into at least two slots per target, each slot comparing the
# target with its own few (a multiply and a compare more per dispatch: the
# interp benchmark's 27 handlers over 688 bytes ran 1.32x native with the
# offset table, 1.44x hashed).
_DIRECT_SWITCH_MIN = 8
_DENSE_SPAN = 1024
_DENSE_SPAN_PER_KEY = 4


class FunctionEmitter:
    """Emits one unit function into ``module``; see the module docstring.

    Within one IR block, field values are cached in Python: a read after a
    write uses the written SSA value, and a value may be a *thunk* that is
    computed only if something reads it or when the block ends (flags are
    set this way, so a flag overwritten before the end of the block is never
    computed at all).  Pending values are stored to their allocas just before
    the block's terminator.
    """

    def __init__(self, module: ir.Module, name: str, pic_base: int | None = None,
                 hot_counters: bool = False, system: bool = False, entry_pc: int | None = None,
                 precise_faults: bool = False, host_features: frozenset[str] = frozenset(),
                 clamp: memory.AddressClamp | None = None,
                 foreign: Sequence[tuple[int, int, int, str]] = (),
                 whole_ymm: bool = False, stencil: StencilPorts | None = None):
        """``pic_base``: for position-independent code, the base of its code
        unit (runtime/codeunits.py) that the guest addresses seen at
        translation time are relative to.  The code then computes every
        guest address from the base the unit has in this run, which it
        derives from the pc it was entered at (``entry_pc`` when it was
        translated: the dispatcher and every chain enter a translation with
        ``rip`` = its entry), so one translation serves any load address of
        its program or library.

        ``system``: system-mode code; memory goes through the software TLB,
        faults are precise (see begin_insn) and loops poll for interrupts.

        ``precise_faults``: linux-user code that commits the state where a
        replay after a host fault would be inexact (ir/commits.py).

        ``host_features``: the target's features whose instructions the
        code may use directly (translator/lifter.lift_region).

        ``clamp``: how linux-user code keeps guest addresses in the host
        reservation (ir/memory.py); required unless ``system``.

        ``foreign``: (start, end, base, cell) of other code units whose
        code this function also holds (tier 2, translator/guestcode.Span):
        addresses in [start, end) are computed from that unit's base in
        this run, which the runtime writes into the i64 global ``cell``
        of this object before it installs the function (loaded once, at
        entry).  Until then the cell holds an address no guest target
        matches.

        ``stencil``: the function is a stencil of one guest instruction
        (ir/stencil.py): entered with rip at that instruction, it computes
        every guest address from rip and a hole, and goes on at each static
        target through a continuation of its own instead of returning."""
        self.module = module
        self.stencil = stencil
        if stencil is not None and (pic_base is None or pic_base != entry_pc or foreign):
            raise ValueError("a stencil is its own unit: pic_base = entry_pc, nothing foreign")
        self.pic_base = pic_base
        if pic_base is not None and entry_pc is None:
            raise ValueError("position-independent code needs its entry pc")
        self.entry_pc = entry_pc
        self._unit_base: ir.Value | None = None
        # values that are guest addresses inside the window whatever the
        # guest did (memory.host_pointer ``mapped``): the rip this function
        # was entered with (read by unit_base) and its foreign units' bases
        self._mapped: list[ir.Value] = []
        self.foreign = list(foreign)
        self._foreign_bases: dict[str, ir.Value] = {}
        self.hot_counters = hot_counters
        self.system = system
        self.host_features = host_features
        if clamp is None and not system:
            raise ValueError("linux-user code needs an address clamp (ir/clamp.AddressClamp)")
        self.clamp = clamp
        self.current_pc = 0   # guest pc of the instruction being lifted
        # linux-user: whether a back edge of the current instruction polls
        # for signals (the lifter clears it for calls and returns)
        self.poll_back_edges = True
        self.fn = unitabi.unit_function(module, name,
                                        None if stencil is not None else unitabi.FLAGS_NEEDED)
        self.state_ptr, self.mem = unitabi.unit_params(self.fn)
        self._entry = self.fn.append_basic_block("entry")
        self._exit = self.fn.append_basic_block("exit")
        body = self.fn.append_basic_block("body")
        self.body = body
        self._entry_builder = FastBuilder(self._entry)
        self._entry_br = self._entry_builder.branch(body)
        self._entry_builder.position_before(self._entry_br)
        self.b = _HookedBuilder(body, self.flush)
        self._slots: dict[str, ir.AllocaInstr] = {}
        # whole_ymm (a region with 256-bit instructions): xmm{n} and
        # ymmh{n} share one <4 x i64> slot, so a ymm register is one SSA
        # value; apart, every 256-bit result crossing a loop's back edge is
        # split into halves (vextracti128) and joined again.  Not for SSE
        # code, where each xmm write would become a blend into the whole.
        self.whole_ymm = whole_ymm
        self._geps: dict[str, ir.Value] = {}
        self._dirty: set[str] = set()
        # per exit block (by id): the dirty fields it writes back (finish)
        self._changed_at: dict[int, set[str]] = {}
        # exit blocks (by id) of paths that leave for a target known only
        # at run time (an indirect jump or call, a return)
        self._indirect_exits: set[int] = set()
        self._cache: dict[str, ir.Value | Thunk] = {}   # values valid in _cache_block
        self._pending: set[str] = set()                  # cached but not yet stored
        # Fields whose pending values no later code reads (set by the
        # lifter for the last instruction of a guest block, see
        # translator/flaglive.py): flush neither computes nor stores them.
        self.unneeded_at_end: frozenset[str] = frozenset()
        self._cache_block: ir.Block | None = None
        # Guest pcs translated inside this function: a jump there is an IR
        # branch, so loops stay inside one function with registers in SSA.
        self.local_targets: dict[int, ir.Block] = {}
        # Known targets of indirect jumps (resolved jump tables), by the
        # address of the jump: lifted as a switch over constant targets.
        self.indirect_targets: dict[int, list[int]] = {}
        # Tier 2 gives every exit its own write-back and chain (filled in by
        # finish): LLVM then drops the stores of fields that path did not
        # change, and every exit gets its own (better predicted) jump.
        self.split_exits = not hot_counters
        self._exits: list[ir.Block] = [self._exit]
        # stencil: the exit block of each continuation, in the order made
        self._conts: list[ir.Block] = []
        # linux-user: where the state is written back mid-region so that a
        # host fault can be made precise (ir/commits.py); system mode makes
        # its faults precise by exits of its own (begin_insn)
        self.commits = CommitPoints() if precise_faults and not system else None
        self._block_start: ir.Block | None = None     # the IR block a guest block began in
        # set by the lifter before each begin_insn: the flags a commit there
        # may leave uncomputed (translator/flaglive.py dead_for_commit)
        self.dead_at_commit: Callable[[], frozenset[str]] = frozenset

    # -- CPU state -------------------------------------------------------
    def _state_gep(self, b: ir.IRBuilder, name: str) -> ir.Value:
        """Pointer to a state field, computed once in the entry block (which
        dominates every use)."""
        ptr = self._geps.get(name)
        if ptr is None:
            if is_virtual(name):       # its offset is the stencil's hole
                offset = self.stencil.register_hole(name)
            else:
                offset = const(64, FIELDS[name].offset)
            ptr = self._entry_builder.gep(self.state_ptr, [offset], inbounds=True, source_etype=I8)
            self._geps[name] = ptr
        return ptr

    def _ymm_half(self, name: str) -> tuple[int, int] | None:
        """(register, 0 low / 1 high) when ``name`` lives in a whole-ymm slot."""
        if self.whole_ymm and name.startswith(("xmm", "ymmh")):
            return int(name[4:] if name[3] == "h" else name[3:]), int(name[3] == "h")
        return None

    def _slot(self, name: str) -> ir.AllocaInstr:
        half = self._ymm_half(name)
        key = f"ymm{half[0]}" if half else name
        slot = self._slots.get(key)
        if slot is None:
            eb = self._entry_builder
            if self.stencil is not None and name in _GPRS:
                self.stencil.fixed.add(name)
            if half:
                slot = eb.alloca(V4I64, name=key)
                lo = eb.load(self._state_gep(eb, f"xmm{half[0]}"), typ=V2I64)
                hi = eb.load(self._state_gep(eb, f"ymmh{half[0]}"), typ=V2I64)
                eb.store(eb.shuffle_vector(lo, hi, _LANES[None]), slot)
            else:
                ty = _slot_type(name)
                slot = eb.alloca(ty, name=name)
                raw_ty = ty if ty in (V2I64, I64) else ir.IntType(FIELDS[name].size * 8)
                raw = eb.load(self._state_gep(eb, name), typ=raw_ty)
                eb.store(eb.trunc(raw, I1) if ty == I1 else raw, slot)
            self._slots[key] = slot
        return slot

    def _load_field(self, b: ir.IRBuilder, name: str) -> ir.Value:
        """The field's current value from its slot, in the slot's element
        type (<2 x i64> for a vector register half)."""
        half = self._ymm_half(name)
        if half is None:
            return b.load(self._slot(name), typ=_slot_type(name))
        full = b.load(self._slot(name), typ=V4I64)
        return b.shuffle_vector(full, full, _LANES[half[1]])

    def _store_ymm(self, n: int, lo: ir.Value | None, hi: ir.Value | None) -> None:
        """Store the new halves of ymm ``n`` (None: keep that half)."""
        b, slot = self.b, self._slot(f"xmm{n}")
        if lo is None or hi is None:
            old = b.load(slot, typ=V4I64)
            new = lo if lo is not None else hi
            wide = b.shuffle_vector(new, new, _WIDEN)
            full = b.shuffle_vector(wide, old, _KEEP_HIGH if lo is not None else _KEEP_LOW)
        else:
            full = b.shuffle_vector(lo, hi, _LANES[None])
        b.store(full, slot)

    def _check_block(self) -> None:
        if self._cache_block is not self.b.block:
            if self._pending:
                raise AssertionError(f"pending values {sorted(self._pending)} left an IR block")
            self._cache.clear()
            self._cache_block = self.b.block

    def get(self, name: str) -> ir.Value:
        self._check_block()
        v = self._cache.get(name)
        if v is None:
            v = self._load_field(self.b, name)
            if v.type == V2I64:
                v = self.b.bitcast(v, I128)
            self._cache[name] = v
            if self.b.block is self._block_start and self.commits is not None:
                self.commits.block_value(v, name)   # no set before it: see _check_block
        elif callable(v):
            v = v()
            self._cache[name] = v
        return v

    def set(self, name: str, value: ir.Value | Thunk) -> None:
        """Set a field; ``value`` may be a thunk computed only when needed.
        The field becomes dirty (written back at the exits) only when a
        flush stores it: a value no later code reads (``unneeded_at_end``,
        typically flags) leaves the slot, and so the state, as it was, and
        then the field needs neither its load at entry nor a store at the
        exits."""
        self._check_block()
        if self.commits is not None:
            self.commits.note_set(name)
        self._pending.add(name)
        self._cache[name] = value

    def flush(self) -> None:
        """Store pending values to their allocas (before a terminator)."""
        if not self._pending or self._cache_block is not self.b.block:
            return
        pending, self._pending = self._pending, set()
        halves: dict[int, list] = {}
        for name in sorted(pending - self.unneeded_at_end):
            v = self._cache[name]
            if callable(v):
                v = v()
                self._cache[name] = v
            if _slot_type(name) == V2I64:
                v = self.b.bitcast(v, V2I64)
            self._dirty.add(name)
            half = self._ymm_half(name)
            if half is not None:
                halves.setdefault(half[0], [None, None])[half[1]] = v
            else:
                self.b.store(v, self._slot(name))
        for n, (lo, hi) in sorted(halves.items()):
            self._store_ymm(n, lo, hi)

    def _exit_builder(self, bb: ir.Block, late: frozenset[str] = frozenset()) -> FastBuilder:
        """A builder at exit block ``bb`` after it has written back every
        field changed on some path to it (all the function changed until
        ``finish`` has computed ``_changed_at``), but those in ``late``."""
        b = FastBuilder(bb)
        for name in sorted(self._changed_at.get(id(bb), self._dirty) - late):
            self._writeback(b, name)
        return b

    @property
    def _flags_may_wait(self) -> bool:
        """Whether this unit takes part in leaving flags to the unit that
        needs them (ir/unitabi.py, the flags mark): tier 2 in user mode
        without precise faults (with them, a fault in the next unit before
        it sets the flags would show the handler older ones)."""
        return not (self.system or self.commits is not None or self.hot_counters
                    or self.stencil is not None)

    def _late_flags(self, bb: ir.Block) -> frozenset[str]:
        """The arithmetic flags exit ``bb`` writes back only if the unit it
        chains to needs them: at an exit of its own, in a unit that
        ``_flags_may_wait``, to a target known only at run time (an
        interpreter's dispatch; at every exit, the flags' values kept live
        to the chain cost interp's dispatch loop 10% in spills)."""
        if bb is self._exit or not self._flags_may_wait or id(bb) not in self._indirect_exits:
            return frozenset()
        return frozenset(self._changed_at.get(id(bb), self._dirty)) & state.ARITHMETIC_FLAGS

    def _fields_changed_at_exits(self) -> None:
        """Find the fields each exit must write back (ir/writeback.py)."""
        names = sorted(self._dirty)
        bit = {name: 1 << n for n, name in enumerate(names)}
        slots: dict[int, int] = {}
        for key, slot in self._slots.items():
            if key in bit:
                slots[id(slot)] = bit[key]
            elif key.startswith("ymm"):          # a whole-ymm slot: both halves
                n = key[3:]
                slots[id(slot)] = bit.get(f"xmm{n}", 0) | bit.get(f"ymmh{n}", 0)
        exits = self._exits + self._conts
        for k, mask in writeback.stored_before(self.fn, self._entry, slots, exits).items():
            self._changed_at[k] = {name for name in names if mask & bit[name]}

    def _writeback(self, b: ir.IRBuilder, name: str) -> None:
        v = self._load_field(b, name)
        if v.type == I1:
            v = b.zext(v, I8)
        b.store(v, self._state_gep(b, name))

    def unit_base(self) -> ir.Value:
        """The run's base of this code's unit: rip at entry minus the
        entry's offset (computed once, in the entry block)."""
        if self._unit_base is None:
            eb = self._entry_builder
            rip = eb.load(self._state_gep(eb, "rip"), typ=I64)
            self._mapped.append(rip)
            self._unit_base = eb.sub(rip, const(64, self.entry_pc - self.pic_base))
        return self._unit_base

    def _foreign_base(self, cell: str) -> ir.Value:
        """The run's base of a foreign unit: its cell, read at entry."""
        v = self._foreign_bases.get(cell)
        if v is None:
            g = ir.GlobalVariable(self.module, I64, cell)
            g.initializer = const(64, self._unbound_base())
            g.align = 8
            v = self._foreign_bases[cell] = self._entry_builder.load(g, typ=I64)
            self._mapped.append(v)
        return v

    def _unbound_base(self) -> int:
        """A foreign base cell's value until the runtime writes it.  Under
        a clamp: the window's ``low + limit``, in the never-mapped guard
        above guest memory (runtime/window.py), so that the base is a
        trusted one (memory.host_pointer ``mapped``) even then: an access
        off it stays in the reservation and faults, and no guest code lies
        at ``base + offset``."""
        if self.clamp is None or self.clamp.limit is None:
            return UNBOUND_BASE
        return self.clamp.low + self.clamp.limit

    def guest_addr(self, addr: int, b: ir.IRBuilder | None = None) -> ir.Value:
        """A guest code/data address known at translation time, as i64
        (built with ``b``, the current builder by default)."""
        b = b or self.b
        for start, end, base, cell in self.foreign:
            if start <= addr < end:
                return b.add(self._foreign_base(cell), const(64, addr - base))
        # Not code of a foreign unit: data, addressed rip-relative by the
        # instruction being lifted, lies at a fixed offset from that
        # instruction's own file, wherever the files are placed relative
        # to each other in a run (libc's malloc reads libc's .data, not
        # the program's, and an LD_PRELOAD moves libc).
        for start, end, base, cell in self.foreign:
            if start <= self.current_pc < end:
                return b.add(self._foreign_base(cell), const(64, addr - base))
        if self.pic_base is None:
            return const(64, addr)
        if self.stencil is not None:
            return b.add(self.unit_base(), self.stencil.hole("pc", addr - self.pic_base))
        return b.add(self.unit_base(), const(64, addr - self.pic_base))

    def foreign_of(self, addr: int) -> tuple[int, str] | None:
        """(translation-time base, base cell) of the foreign unit ``addr``
        lies in, or None when it is in the function's own unit."""
        return next(((base, cell) for start, end, base, cell in self.foreign if start <= addr < end), None)

    def begin_insn(self, pc: int) -> None:
        """Start lifting the instruction at ``pc``.  In system mode the state
        as of this instruction boundary is stored to the allocas first, so a
        page fault inside the instruction can exit with exactly that state
        (the guest's handler then re-executes the instruction).  This relies
        on semantic functions doing their memory accesses before their
        register writes (rep string instructions update their registers per
        iteration, which is what the architecture specifies).  In user mode
        the previous instruction may have left a commit due
        (ir/commits.py): it is made here, with rip at ``pc``."""
        self.current_pc = pc
        if self.system:
            self._check_block()
            self.flush()
        elif self.commits is not None and self.commits.due:
            self._commit(pc, self.dead_at_commit())

    def begin_block(self, pc: int) -> None:
        """A guest block of the region starts at ``pc`` (before its first
        begin_insn)."""
        if self.commits is not None:
            self.commits.begin_block(pc)
            self._block_start = self.b.block

    def _commit(self, rip: int, skip: frozenset[str] = frozenset()) -> None:
        """Branch through a commit block (filled by finish: the registers
        that may differ from the state in memory, and rip = ``rip``);
        ``skip``: flags no one can see there (not computed, not stored)."""
        self._check_block()
        block, cont = self.new_block("commit"), self.new_block("committed")
        kept, self.unneeded_at_end = self.unneeded_at_end, self.unneeded_at_end | skip
        self.b.branch(block)
        self.unneeded_at_end = kept
        self.b.position_at_end(cont)
        self.commits.committed(block, cont, rip, skip | kept)

    def _fill_commit(self, commit) -> None:
        b = FastBuilder(commit.block)
        b.fence("seq_cst", "singlethread")
        for name in sorted(self.commits.fields(commit) - {"rip"}):
            self._writeback(b, name)
        rip = commit.rip
        b.store(self.guest_addr(rip, b), self._state_gep(b, "rip"))
        b.fence("seq_cst", "singlethread")
        b.branch(commit.cont)

    def _holder(self, value: ir.Value) -> str | None:
        """The register whose current value is ``value``, if known here."""
        if self._cache_block is self.b.block:
            for name, v in self._cache.items():
                if v is value:
                    return name
        return None

    def note_register_file(self, write: bool) -> None:
        """An access to the x87/MMX register file, which lives in the state
        (semantics/x87.py, mmx_regs.py): a write after a read needs a commit
        like memory does."""
        if self.commits is not None:
            if write:
                self.commits.note_write(REGISTER_FILE, 0, 128)
            else:
                self.commits.note_read(REGISTER_FILE, 0, 128)

    def _note_access(self, addr: ir.Value, size: int, write: bool) -> None:
        if self.commits is not None:
            root, d = split_address(addr)
            if write:
                self.commits.note_write(root, d, size,
                                        d + size <= 0 and
                                        self.commits.block_values.get(id(root)) == "rsp")
            else:
                self.commits.note_read(root, d, size)

    # -- guest memory ----------------------------------------------------
    def load(self, addr: ir.Value, ty: ir.Type) -> ir.Value:
        """A guest load, never deleted (ir/memory.py load; in system mode the
        TLB check, which faults, stays whatever becomes of the value)."""
        if not self.system:
            self._note_access(addr, memory.type_bytes(ty), False)
            return memory.load(self.b, self.mem, addr, ty, self.clamp, self._mapped)
        v = self.b.load(self._system_pointer(addr, memory.type_bytes(ty), False), typ=ty)
        v.align = 1
        return v

    def store(self, addr: ir.Value, value: ir.Value) -> None:
        if not self.system:
            self._note_access(addr, memory.type_bytes(value.type), True)
            memory.store(self.b, self.mem, addr, value, self.clamp, self._mapped)
            return
        ptr = self._system_pointer(addr, memory.type_bytes(value.type), True)
        st_ = self.b.store(value, ptr)
        st_.align = 1

    # -- locked (atomic) guest memory access ------------------------------
    def _atomic_pointer(self, addr: ir.Value, size: int) -> ir.Value:
        if not self.system:
            if self.commits is not None:
                self.commits.note_read_write()
            return memory.host_pointer(self.b, self.mem, addr, self.clamp, self._mapped)
        return self._system_pointer(addr, size, True)

    def atomic_rmw(self, op: str, addr: ir.Value, value: ir.Value) -> ir.Value:
        """A LOCK-prefixed read-modify-write of guest memory as one LLVM
        ``atomicrmw`` (sequentially consistent, as x86's locked
        instructions are); returns the old value.  On an x86 host it is the
        same locked instruction, so another process or thread sharing the
        memory never loses an update."""
        ptr = self._atomic_pointer(addr, memory.type_bytes(value.type))
        return self.b.atomic_rmw(op, ptr, value, "seq_cst")

    def atomic_cmpxchg(self, addr: ir.Value, expected: ir.Value,
                       new: ir.Value) -> tuple[ir.Value, ir.Value]:
        """LOCK cmpxchg: (the old value, i1 whether it was ``expected`` and
        ``new`` was stored)."""
        ptr = self._atomic_pointer(addr, memory.type_bytes(new.type))
        pair = self.b.cmpxchg(ptr, expected, new, "seq_cst", "seq_cst")
        return self.b.extract_value(pair, 0), self.b.extract_value(pair, 1)

    def masked_store(self, addr: ir.Value, value: ir.Value, mask: ir.Value) -> None:
        """Store the lanes of vector ``value`` selected by ``mask`` (see
        memory.masked_store_at).  In system mode the whole extent is
        translated (and may fault) as one write, whatever the mask."""
        if not self.system:
            self._note_access(addr, memory.type_bytes(value.type), True)
            memory.masked_store(self.b, self.mem, addr, value, mask, self.clamp)
            return
        ptr = self._system_pointer(addr, memory.type_bytes(value.type), True)
        memory.masked_store_at(self.b, ptr, value, mask)

    def masked_load(self, addr: ir.Value, ty: ir.VectorType, mask: ir.Value) -> ir.Value:
        """Load the lanes of ``ty`` selected by ``mask``, the others zero (see
        memory.masked_load_at).  In system mode the whole extent is
        translated (and may fault) as one read, whatever the mask."""
        if not self.system:
            self._note_access(addr, memory.type_bytes(ty), False)
            ptr = memory.host_pointer(self.b, self.mem, addr, self.clamp)
        else:
            ptr = self._system_pointer(addr, memory.type_bytes(ty), False)
        return memory.masked_load_at(self.b, ptr, ty, mask)

    def masked_gather(self, addrs: list[ir.Value], ty: ir.VectorType, mask: ir.Value,
                      passthru: ir.Value) -> ir.Value:
        """Lane k of ``ty`` from guest address ``addrs[k]`` where ``mask``
        selects it, else ``passthru``'s (see memory.masked_gather_at;
        linux-user mode only)."""
        if self.system:
            raise NotImplementedError("gathers in system mode")
        size = memory.type_bytes(ty.element)
        for a in addrs:
            self._note_access(a, size, False)
        ptrs = [memory.host_pointer(self.b, self.mem, a, self.clamp) for a in addrs]
        return memory.masked_gather_at(self.b, ptrs, ty, mask, passthru)

    def _system_pointer(self, addr: ir.Value, size: int, write: bool) -> ir.Value:
        """Host pointer for a virtual address through the software TLB.  The
        TLB's hit/miss/join blocks are all dominated by the current block,
        so the cached values (and pending ones) stay valid in the join."""
        self._check_block()
        pc = self.current_pc

        def on_fault(b: ir.IRBuilder) -> None:
            self._raw_exit(b, pc, state.EXIT_FAULT, state.FAULT_PF)
        off, join = memory.tlb_offset(self.b, self.new_block, self.state_ptr, addr, size, write,
                                      on_fault)
        self._cache_block = join
        return memory.physical_pointer(self.b, self.mem, off)

    def _raw_exit(self, b: ir.IRBuilder, rip: int, reason: int, info: int) -> None:
        """Exit with the allocas as they are (the state at the start of the
        current instruction, see begin_insn), bypassing the value cache."""
        slot = self._slot("rip")
        self._dirty.add("rip")
        if self.pic_base is not None:
            raise AssertionError("system-mode code is never position independent")
        b.store(const(64, rip), slot)
        b.store(const(32, reason), self._state_gep(b, "exit_reason"))
        b.store(const(64, info), self._state_gep(b, "exit_info"))
        ir.IRBuilder.branch(b, self._exit_block(chains=False))

    def _irq_pending(self, b: ir.IRBuilder) -> ir.Value:
        """i1: the runtime flagged something to take at the next instruction
        boundary: a deliverable interrupt (system mode) or a host signal
        caught for the guest (linux-user, runtime/nativeloop.py bt_async).  An
        atomic load: the flag is set by another thread or a signal handler
        and must be re-read in loops."""
        pending = b.load_atomic(self._state_gep(b, "irq_pending"), "monotonic", 4, typ=I32)
        return b.icmp_unsigned("!=", pending, const(32, 0))

    def poll_interrupts(self, resume: int) -> None:
        """Leave at guest pc ``resume`` when an interrupt or a guest signal
        is pending (a loop back-edge must not spin past a timer tick or a
        SIGALRM)."""
        with self.b.if_then(self._irq_pending(self.b), likely=False):
            self.leave(resume, state.EXIT_IRQ)

    # -- control ---------------------------------------------------------
    def leave(self, rip: ir.Value | int, reason: int = state.EXIT_NONE,
              info: int | ir.Value | None = None) -> None:
        """End the current path: set rip (and an exit reason) and return."""
        b = self.b
        if reason == state.EXIT_NONE and isinstance(rip, int) and rip in self.local_targets:
            if self.commits is not None:
                if self.commits.due:
                    self._commit(rip)
                self.commits.edge(rip, self._holder)
            if rip <= self.current_pc:   # a loop back-edge
                if self.hot_counters:
                    self.count_execution(rip)
                if self.system or self.poll_back_edges:
                    self.poll_interrupts(rip)
            b.branch(self.local_targets[rip])
            return
        self.set("rip", self.guest_addr(rip) if isinstance(rip, int) else rip)
        if self.stencil is not None and reason == state.EXIT_NONE and isinstance(rip, int):
            self._conts.append(self.new_block("cont"))
            self.stencil.conts.append(rip)
            b.branch(self._conts[-1])
            return
        if reason != state.EXIT_NONE:
            b.store(const(32, reason), self._state_gep(b, "exit_reason"))
            if info is not None:
                iv = const(64, info) if isinstance(info, int) else info
                b.store(iv, self._state_gep(b, "exit_info"))
        exit_block = self._exit_block(chains=reason == state.EXIT_NONE)
        if not isinstance(rip, int):
            self._indirect_exits.add(id(exit_block))
        b.branch(exit_block)

    def _exit_block(self, chains: bool = True) -> ir.Block:
        """The exit block a leaving path branches to: its own one in tier 2
        (split_exits) where the path may chain to the next translation,
        else the shared one.  A path with an exit reason (a pending signal
        at a back edge, a fault, a system call) returns to the runtime:
        its own copy of the write-back would buy no better prediction, and
        one per back edge made an interpreter's dispatch loop a third
        larger when LLVM did not merge them (interp-dyn: 44 copies)."""
        if self.split_exits and chains:
            self._exits.append(self.new_block("exit"))
            return self._exits[-1]
        return self._exit

    def switch_leave(self, target: ir.Value, candidates: list[int]) -> None:
        """An indirect jump whose likely targets are known: a switch on the
        target, so known targets become direct (often in-region) branches;
        anything else leaves through the lookup table as usual.  Each unit
        gets one switch on the target's offset from that unit's base in
        this run: foreign units first (a PLT region that took in libc's
        malloc returns to a dozen sites in libc: compared one by one they
        cost a dozen compares per return), then the function's own."""
        b = self.b
        groups: dict[str | None, tuple[int, list[int]]] = {}
        for c in sorted(set(candidates)):
            base, cell = self.foreign_of(c) or (self.pic_base or 0, None)
            groups.setdefault(cell, (base, []))[1].append(c)
        local = groups.pop(None, None)
        for cell, (base, targets) in sorted(groups.items()):
            other = self.new_block("fg.other")
            self._switch_to(b.sub(target, self._foreign_base(cell)), base, targets, other)
            b.position_at_end(other)
        if local is None:
            self.leave(target)
            return
        base, targets = local
        default = self.new_block("sw.other")
        if self.pic_base is not None and len(targets) == 1:
            # one likely target (a return to the one call site in the
            # region): compare with its address in this run, rip plus a
            # constant that is often live already (the return address the
            # call pushed), not ``target - base`` with a constant
            case = self.new_block("pic.case")
            b.cbranch(b.icmp_unsigned("==", target, self.guest_addr(targets[0])), case, default)
            b.position_at_end(case)
            self.leave(targets[0])
        else:
            key = target if self.pic_base is None else b.sub(target, self.unit_base())
            self._switch_to(key, base, targets, default)
        b.position_at_end(default)
        self.leave(target)

    def _switch_to(self, key: ir.Value, base: int, targets: list[int], default: ir.Block) -> None:
        """Branch on ``key`` (a target's offset from its unit's base in
        this run) to the exit to each of ``targets`` (translation-time
        addresses in a unit placed at ``base``), or to ``default``."""
        b = self.b
        keys = [t - base for t in targets]
        if len(keys) >= _DIRECT_SWITCH_MIN:
            if keys[-1] - keys[0] < max(_DENSE_SPAN, _DENSE_SPAN_PER_KEY * len(keys)):
                self._direct_switch(key, keys, base, default)
                return
            self._hashed_switch(key, keys, base, default)
            return
        sw = b.switch(key, default)
        for k in keys:
            case = self.new_block("sw.case")
            sw.add_case(const(64, k), case)
            b.position_at_end(case)
            self.leave(k + base)

    def _direct_switch(self, key: ir.Value, keys: list[int], base: int, default: ir.Block) -> None:
        """Many targets close together (an interpreter's handlers): index a
        table of block addresses by ``key - keys[0]`` and jump indirectly,
        as the guest did (LLVM would test the sparse keys one by one)."""
        b = self.b
        lo, span = keys[0], keys[-1] - keys[0] + 1
        cases = {}
        for k in keys:
            cases[k] = self.new_block("sw.case")
        table = self._block_table([cases.get(lo + i, default) for i in range(span)])
        off = b.sub(key, const(64, lo))
        inside, jump = self.new_block("sw.in"), self.new_block("sw.jump")
        b.cbranch(b.icmp_unsigned("<", off, const(64, span)), inside, default)
        b.position_at_end(inside)
        slot = b.gep(table, [const(64, 0), off], inbounds=True)
        dest = b.load(slot, typ=PTR)
        b.branch(jump)
        b.position_at_end(jump)
        self._jump_to(dest, list(cases.values()) + [default])
        for k, blk in cases.items():
            b.position_at_end(blk)
            self.leave(k + base)

    def _block_table(self, blocks: list[ir.Block]) -> ir.GlobalVariable:
        """A constant table of the addresses of ``blocks`` (switch_leave's)."""
        ty = ir.ArrayType(PTR, len(blocks))
        table = ir.GlobalVariable(self.module, ty,
                                  self.module.get_unique_name(f"{self.fn.name}.sw"))
        table.linkage = "private"
        table.global_constant = True
        table.initializer = ir.Constant(ty, [ir.BlockAddress(self.fn, blk) for blk in blocks])
        return table

    def _jump_to(self, dest: ir.Value, blocks: list[ir.Block]) -> None:
        """An indirect branch to ``dest``, a block address out of ``blocks``."""
        br = self.b.branch_indirect(dest)
        for blk in blocks:
            br.add_destination(blk)

    def _hashed_switch(self, key: ir.Value, keys: list[int], base: int,
                       default: ir.Block) -> None:
        """Many targets spread out (the return sites of a region's calls, an
        interpreter's handlers): a table of block addresses indexed by a
        multiplicative hash of ``key`` (Fibonacci hashing into at least two
        slots per key), one indirect jump, then compares with the keys of
        that slot (one, sometimes two or three).  Indexed by offset instead,
        each return of a region held a table as long as the span of its
        return sites (13 tables of 2,967 entries, 1.2 MB of object and
        38,000 relocations to apply at every load, in one of SQLite's)."""
        b = self.b
        bits = (2 * len(keys) - 1).bit_length()
        groups: dict[int, list[int]] = {}
        for k in keys:
            groups.setdefault(tables.fibonacci_hash(k, bits), []).append(k)
        heads = {slot: self.new_block("sw.slot") for slot in groups}
        table = self._block_table([heads.get(i, default) for i in range(1 << bits)])
        slot = tables.emit_fibonacci_hash(b, key, bits)
        dest = b.load(b.gep(table, [const(64, 0), slot], inbounds=True), typ=PTR)
        self._jump_to(dest, list(heads.values()) + [default])
        for slot, ks in groups.items():
            b.position_at_end(heads[slot])
            for n, k in enumerate(ks):
                case = self.new_block("sw.case")
                other = default if n == len(ks) - 1 else self.new_block("sw.slot")
                b.cbranch(b.icmp_unsigned("==", key, const(64, k)), case, other)
                b.position_at_end(case)
                self.leave(k + base)
                b.position_at_end(other)

    def count_execution(self, pc: int) -> None:
        """Tier 1: count executions of ``pc``; when hot, exit so the runtime
        retranslates from ``pc`` at tier 2."""
        if self.stencil is not None:
            raise AssertionError("a stencil counts nothing: the stitched region does")
        tables.emit_hot_check(self.b, self.state_ptr, pc - (self.pic_base or 0),
                               lambda: self.leave(pc, state.EXIT_HOT))

    def profile_target(self, target: ir.Value) -> None:
        """Tier 1: record the target of the indirect call/jump being lifted
        (tier 2 takes it as a guess)."""
        if self.stencil is not None:
            tables.emit_target_record(self.b, self.state_ptr, 0, target,
                                      self.stencil.hole("target_slot", 0))
        elif self.hot_counters:
            tables.emit_target_record(self.b, self.state_ptr, self.current_pc - (self.pic_base or 0),
                                       target)

    def cond_leave(self, cond: ir.Value, taken: int, fallthrough: int) -> None:
        """Conditional direct branch between two constant guest targets."""
        yes, no = self.new_block("taken"), self.new_block("fallthrough")
        self.b.cbranch(cond, yes, no)
        self.b.position_at_end(yes)
        self.leave(taken)
        self.b.position_at_end(no)
        self.leave(fallthrough)

    def new_block(self, name: str = "") -> ir.Block:
        return self.fn.append_basic_block(name)

    def seal_open_blocks(self) -> None:
        """Mark blocks left open by an abandoned instruction unreachable."""
        exits = set(map(id, self._exits + self._conts))
        exits.update(id(c.block) for c in (self.commits.commits if self.commits is not None else ()))
        for bb in self.fn.blocks:
            if not bb.is_terminated and id(bb) not in exits:
                ir.IRBuilder(bb).unreachable()

    def finish(self) -> ir.Function:
        """Fill the exit block(s): write back every field the unit changed,
        then return to the runtime if an exit reason is set, else chain
        straight to the translation of the next guest pc (in system mode
        unless an interrupt is pending)."""
        for commit in self.commits.commits if self.commits is not None else ():
            self._fill_commit(commit)
        self._fields_changed_at_exits()
        for k, bb in enumerate(self._conts):
            b = self._exit_builder(bb)
            unitabi.tail_call_unit(b, self.stencil.continuation(k), self.state_ptr, self.mem)
        for bb in self._exits:
            late = self._late_flags(bb)
            b = self._exit_builder(bb, late)

            def write_late(lb: ir.IRBuilder, late=late) -> None:
                for name in sorted(late):
                    self._writeback(lb, name)
            if self.hot_counters:
                # Tier 1 returns to bt_run, whose loop probes the table
                # (runtime/nativeloop.py): a chain here is some 25 IR
                # instructions per function, a tenth of a small region's
                # translation time, for a few nanoseconds per exit of code
                # that runs at most HOT_THRESHOLD times before tier 2.
                b.ret_void()
                continue
            if not late:
                reason = b.load(self._state_gep(b, "exit_reason"), typ=I32)
                chain = self.fn.append_basic_block("chain")
                ret = self.fn.append_basic_block("ret")
                b.cbranch(b.icmp_unsigned("==", reason, const(32, 0)), chain, ret)
                ir.IRBuilder(ret).ret_void()
                b = FastBuilder(chain)
            # (an exit with late flags is one of its own in user mode, which
            # only a path without an exit reason reaches: it always chains,
            # and the reason, 0 when bt_run or a chain entered the unit,
            # needs no test)
            if self.system:
                # interrupts are taken between regions too, not only in loops
                # (in user mode a caught signal empties the table the chain
                # looks in instead: runtime/nativeloop.py bt_async)
                irq = self.fn.append_basic_block("irq")
                go = self.fn.append_basic_block("chain.go")
                b.cbranch(self._irq_pending(b), irq, go)
                ib = ir.IRBuilder(irq)
                ib.store(const(32, state.EXIT_IRQ), self._state_gep(ib, "exit_reason"))
                ib.ret_void()
                b = FastBuilder(go)
            tables.emit_chain(b, self.state_ptr, self.mem, b.load(self._slot("rip"), typ=I64),
                              write_late if late else None)
        for bb in self.fn.blocks:
            if not bb.is_terminated:
                raise AssertionError(f"block {bb.name} left unterminated")
        self._read_clean_fields_in_place()
        # The builder's hook is this emitter's method: a reference cycle that
        # would keep the function's IR for the garbage collector to find
        # (see ir/lifetime.py).  Nothing is emitted after finish.
        self.b = None
        return self.fn

    def note_flags_at_entry(self, live: frozenset[str]) -> None:
        """``live``: the arithmetic flags the unit may read, or leave with,
        before it overwrites them (translator/flaglive.py).  None, in a
        unit that ``_flags_may_wait``: its flags mark says so, and exits
        that chain to it leave the flags they changed unwritten."""
        if not live and self._flags_may_wait:
            self.fn.mark = unitabi.FLAGS_UNNEEDED

    def _read_clean_fields_in_place(self) -> None:
        """Tier 2: a field the function reads but never writes is read
        from the state where it is used, not from its slot.  The state
        holds its entry value throughout (only dirty fields are written
        back, at exits and commits), and a slot's value is loaded in the
        entry block: live through the whole function, it was spilled to
        the stack at entry and reloaded at each use when registers ran
        short, a store and a load where one load from the state will do
        (and LLVM may still hoist that load out of a loop).  Flags (an i1
        slot over an i8 field) and whole-ymm slots keep theirs."""
        if self.stencil is not None or self.hot_counters:
            return
        swap = {id(slot): self._geps[name] for name, slot in self._slots.items()
                if name not in self._dirty and name in FIELDS
                and _slot_type(name) != I1 and self._ymm_half(name) is None}
        if not swap:
            return
        for bb in self.fn.blocks:
            if bb is self._entry:
                continue
            for instr in bb.instructions:
                if instr.opname == "load" and id(instr.operands[0]) in swap:
                    instr.operands = type(instr.operands)([swap[id(instr.operands[0])]])

    # -- LLVM intrinsics -------------------------------------------------
    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, [a.type for a in args]), name=name)
        return self.b.call(fn, args)
