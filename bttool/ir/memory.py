"""Guest memory access from generated code: the one place it happens.

In linux-user mode every load and store that translated code makes to guest
memory is built by ``host_pointer`` below, clamped as the translation's
``AddressClamp`` says (the runtime chooses it to fit the host reservation
that holds guest memory: runtime/window.py), and every load is kept even
when its value is dead (``load``), so its fault is never lost.
An address ``x + d`` (d a constant displacement, or one known only to lie
within bounds: ``bounded_displacement``; |d| <= G = the clamp's guard,
L = its limit) maps to ``base + clamp(x) + d``.  ``x`` is the
register part: a base, or base plus index, which are then clamped apart
(``clamp(b + i) = clamp(b) + clamp(i)``), each part p to p itself when it
lies in [-L, 2L] and to 2L otherwise, branch-free as ``umin(p + L, 3L) - L``
(the base relative to the window's ``low``, runtime/window.py; in a window
above 0 base and index are one part, AddressClamp.splits).  So however
``x`` was forged, the access stays in the host reservation, and a wrong
address (a part was out of range) lies at least L - G above ``low``, on
never-mapped pages, and faults as an access outside guest memory does
natively (see runtime/window.py).  Clamping the parts apart lets LLVM hoist
a loop-invariant base's clamp out of the loop and fold away a narrow
index's, where the sum's clamp would be paid on every access
(``crc32``'s table lookups ``[rcx + r8*4]``).  The memory argument
``membase`` of linux-user code is ``base - L + low`` (``AddressClamp.bias``),
so the host access is ``[membase + umin(b + L - low, 3L) + d]``: ``b + L``
folds into one lea, ``d`` into the addressing mode, and one clamp of a
register serves every access off it (``[rsp+8]``, ``[rsp+16]``...).

In system mode guest addresses are virtual and go through the guest's page
tables: ``tlb_offset`` consults the software TLB held in the CPU state
inline (a shift, a mask, a load and a compare on a hit) and calls the
runtime's page walk (``bt_mmu_fill``, runtime/system/mmu.py) on a miss.
The walk only installs entries for guest physical memory, so a TLB hit can
never leave it.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

from llvmlite import ir

from bttool.ir import state as st
from bttool.ir.clamp import AddressClamp

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
_M64 = (1 << 64) - 1


def constant_offsets(addr: ir.Value) -> Iterator[tuple[ir.Value, int]]:
    """The pairs (x, d) with addr == x + d (d a signed constant), from
    (addr, 0) inwards through the adds and subtracts of constants that
    built ``addr``."""
    x, d = addr, 0
    yield x, d
    while isinstance(x, ir.Instruction) and x.opname in ("add", "sub") and len(x.operands) == 2:
        c = x.operands[1]
        if not isinstance(c, ir.Constant) or not isinstance(c.constant, int):
            return
        v = c.constant & 0xFFFFFFFFFFFFFFFF
        v = v - (1 << 64) if v >> 63 else v
        d += v if x.opname == "add" else -v
        x = x.operands[0]
        yield x, d


_BOUND = "bt_displacement_bound"


def bounded_displacement(value: ir.Constant, bound: int) -> ir.Constant:
    """Mark an i64 constant whose value is known only when the code is
    placed (a stencil's displacement hole, ir/stencil.py) as lying in
    [-bound, bound]: added last to an address, ``host_pointer`` then adds
    it after the clamp as it does a known displacement."""
    setattr(value, _BOUND, bound)
    return value


def _peel_bounded(addr: ir.Value, guard: int) -> tuple[ir.Value, ir.Value | None, int]:
    """(x, c, bound) with addr == x + c, c a bounded displacement that the
    guard covers with a page to spare; (addr, None, 0) when there is none."""
    if isinstance(addr, ir.Instruction) and addr.opname == "add" and len(addr.operands) == 2:
        c = addr.operands[1]
        bound = getattr(c, _BOUND, None)
        if bound is not None and bound <= guard // 2:
            return addr.operands[0], c, bound
    return addr, None, 0


def _split_displacement(addr: ir.Value, guard: int) -> tuple[ir.Value, int]:
    """(x, d) with addr == x + d, d a constant no larger than ``guard``
    either way and x no constant (d == 0 when there is none)."""
    best = (addr, 0)
    for x, d in constant_offsets(addr):
        if abs(d) > guard - 4096 or isinstance(x, ir.Constant):
            break
        best = (x, d)
    return best


def host_pointer(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value, clamp: AddressClamp,
                 mapped: Sequence[ir.Value] = ()) -> ir.Value:
    """Map a guest address (i64) to a host pointer inside the reservation
    (see the module docstring).  ``mapped``: values that are guest
    addresses inside the window whatever the guest did: the rip a
    translation was entered with (code runs only from guest memory that is
    mapped, at the address it was translated from) and the bases of the
    foreign units it holds (written by the runtime, never by the guest).
    The clamp leaves such an address as it is, so an address ``m + d``
    (``m`` one of them) skips it: PIC code's rip-relative accesses
    (``[rip + d]``, data of the code's own file or of a foreign unit's:
    libm's tables in a region entered at ``sin@plt``) then cost what
    absolute code's do, one register plus a displacement, instead of a
    clamped value per distinct target held in a register or spilled."""
    if clamp.limit is None:
        if clamp.bias:
            addr = b.add(addr, ir.Constant(I64, clamp.bias))
        return b.gep(membase, [addr], source_etype=I8)
    addr, late, bound = _peel_bounded(addr, clamp.guard)
    x, d = _split_displacement(addr, clamp.guard - bound)
    if any(x is m for m in mapped):
        off = b.add(x, ir.Constant(I64, clamp.bias))
    elif isinstance(x, ir.Constant) and isinstance(x.constant, int):
        # an absolute address (absolute code's [rip + d], [disp32]):
        # clamped here, not by three instructions per access at run time
        off = ir.Constant(I64, min((x.constant + clamp.bias) & _M64, clamp.ceiling))
    else:
        base, index = _register_parts(x) if clamp.splits else (x, None)
        off = _clamp_part(b, b.add(base, ir.Constant(I64, clamp.bias)), clamp)
        if index is not None:
            lim = ir.Constant(I64, clamp.limit)
            off = b.add(off, b.sub(_clamp_part(b, b.add(index, lim), clamp), lim))
    ptr = b.gep(membase, [off], source_etype=I8)
    if d:
        ptr = b.gep(ptr, [ir.Constant(I64, d)], source_etype=I8)
    return b.gep(ptr, [late], source_etype=I8) if late is not None else ptr


def _register_parts(x: ir.Value) -> tuple[ir.Value, ir.Value | None]:
    """(base, index) when ``x`` is the sum of two values, else (x, None)."""
    if isinstance(x, ir.Instruction) and x.opname == "add" and len(x.operands) == 2 \
            and not any(isinstance(o, ir.Constant) for o in x.operands):
        return x.operands[0], x.operands[1]
    return x, None


def _clamp_part(b: ir.IRBuilder, biased: ir.Value, clamp: AddressClamp) -> ir.Value:
    """umin(biased, ceiling), written as compare and select: LLVM's fast
    instruction selector (tier 1) has no rule for the umin intrinsic and
    would hand every block with a memory access to the slow one;
    instcombine (tier 2) turns this back into umin."""
    limit = ir.Constant(I64, clamp.ceiling)
    return b.select(b.icmp_unsigned("<", biased, limit), biased, limit)


def load(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value, ty: ir.Type, clamp: AddressClamp,
         mapped: Sequence[ir.Value] = ()) -> ir.Value:
    """A guest load, volatile: a load from unmapped guest memory faults
    natively whatever becomes of its value, but LLVM deletes a load whose
    value is dead (``fcom [m]`` whose status bits are overwritten, ``fldcw``
    before ``fninit``, ``test [rsp - 4096], eax`` as a stack probe), and
    then the guest would get no SIGSEGV.  ``llvm.fake.use`` would keep it
    too, but the fast instruction selector of tier 1 drops it.  Volatile
    loads still fold into the instructions that use them; what they give
    up is LLVM merging, forwarding and hoisting guest loads."""
    ptr = host_pointer(b, membase, addr, clamp, mapped)
    return b.load_volatile(ptr, ty, align=1)


def store(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value, value: ir.Value,
          clamp: AddressClamp, mapped: Sequence[ir.Value] = ()) -> None:
    """A guest store.  Not volatile: that cost 10-20% on the sort and
    strings benchmarks (no merged or eliminated stores), so LLVM may still
    move a guest store across other guest accesses to provably different
    addresses; another thread or process could see such a pair out of x86
    order (locked instructions and fences are exact: Emitter.atomic_rmw,
    semantics/dataxfer.py)."""
    ptr = host_pointer(b, membase, addr, clamp, mapped)
    s = b.store(value, ptr)
    s.align = 1


def masked_store_at(b: ir.IRBuilder, ptr: ir.Value, value: ir.Value, mask: ir.Value) -> None:
    """Store the lanes of vector ``value`` whose bit in ``mask`` (``<n x
    i1>``) is set, at host pointer ``ptr``; the other lanes' bytes are not
    accessed (maskmovq, maskmovdqu).  LLVM's masked store is generic IR
    (scalarised into conditional byte stores where the target has no such
    instruction)."""
    ty = value.type
    name = f"llvm.masked.store.v{ty.count}i{ty.element.width}.p0"
    fn = b.module.globals.get(name)
    if fn is None:
        fnty = ir.FunctionType(ir.VoidType(), [ty, ptr.type, I32, mask.type])
        fn = ir.Function(b.module, fnty, name=name)
    b.call(fn, [value, ptr, ir.Constant(I32, 1), mask])


def masked_load_at(b: ir.IRBuilder, ptr: ir.Value, ty: ir.VectorType, mask: ir.Value) -> ir.Value:
    """Load the lanes of vector type ``ty`` whose bit in ``mask`` is set
    from host pointer ``ptr``, the others zero; their bytes are not accessed
    (vmaskmov, vpmaskmov: a masked-off lane on an unmapped page does not
    fault)."""
    name = f"llvm.masked.load.v{ty.count}i{ty.element.width}.p0"
    fn = b.module.globals.get(name)
    if fn is None:
        fnty = ir.FunctionType(ty, [ptr.type, I32, mask.type, ty])
        fn = ir.Function(b.module, fnty, name=name)
    return b.call(fn, [ptr, ir.Constant(I32, 1), mask, ir.Constant(ty, None)])


def masked_gather_at(b: ir.IRBuilder, ptrs: list[ir.Value], ty: ir.VectorType, mask: ir.Value,
                     passthru: ir.Value) -> ir.Value:
    """Lane k of ``ty`` loaded from host pointer ``ptrs[k]`` where ``mask``
    has bit k set, else ``passthru``'s lane (vpgather*: masked-off lanes are
    not accessed)."""
    pty = ir.VectorType(ptrs[0].type, len(ptrs))
    vec = ir.Constant(pty, ir.Undefined)
    for k, p in enumerate(ptrs):
        vec = b.insert_element(vec, p, ir.Constant(I32, k))
    name = f"llvm.masked.gather.v{ty.count}i{ty.element.width}.v{ty.count}p0"
    fn = b.module.globals.get(name)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ty, [pty, I32, mask.type, ty]), name=name)
    return b.call(fn, [vec, ir.Constant(I32, 1), mask, passthru])


def masked_store(b: ir.IRBuilder, membase: ir.Value, addr: ir.Value, value: ir.Value,
                 mask: ir.Value, clamp: AddressClamp) -> None:
    """``masked_store_at`` at guest address ``addr`` (linux-user mode)."""
    masked_store_at(b, host_pointer(b, membase, addr, clamp), value, mask)


# -- system mode: the software TLB -------------------------------------------
PAGE_BITS = 12
MMU_FILL = "bt_mmu_fill"        # i64 bt_mmu_fill(ptr state, i64 vaddr, i32 access)
MMU_FAULT = 0xFFFFFFFFFFFFFFFF  # bt_mmu_fill's answer when the access faults
ACCESS_WRITE = 1                # access word: bit 0 write, bits 8.. size in bytes


def type_bytes(ty: ir.Type) -> int:
    """Size in bytes of a value loaded or stored as ``ty``."""
    if isinstance(ty, ir.IntType):
        return ty.width // 8
    if isinstance(ty, ir.VectorType):
        return ty.count * type_bytes(ty.element)
    return {"float": 4, "double": 8, "x86_fp80": 10}[str(ty)]


def _tlb_entry(b: ir.IRBuilder, state_ptr: ir.Value, page: ir.Value) -> ir.Value:
    """Pointer to the TLB entry that virtual page number ``page`` indexes."""
    idx = b.and_(page, ir.Constant(I64, st.TLB_ENTRIES - 1))
    off = b.add(b.mul(idx, ir.Constant(I64, st.TLB_ENTRY_SIZE)), ir.Constant(I64, st.offset("tlb")))
    return b.gep(state_ptr, [off], inbounds=True, source_etype=I8)


def _entry_word(b: ir.IRBuilder, entry: ir.Value, field: int) -> ir.Value:
    """One i64 of a TLB entry (TLB_READ, TLB_WRITE or TLB_ADDEND)."""
    return b.load(b.gep(entry, [ir.Constant(I64, field)], inbounds=True, source_etype=I8), typ=I64)


def tlb_offset(b: ir.IRBuilder, new_block: Callable[[str], ir.Block], state_ptr: ir.Value,
               addr: ir.Value, size: int, write: bool,
               on_fault: Callable[[ir.IRBuilder], None]) -> tuple[ir.Value, ir.Block]:
    """Translate virtual ``addr`` for an access of ``size`` bytes.

    Returns (offset of the physical byte in guest memory, the block where
    the caller continues).  Hit test: the entry indexed by ``addr``'s page
    must carry the page of the access's *last* byte as its tag, so an access
    that crosses a page boundary misses; the miss path then still stays
    native when both pages hit and are physically contiguous, and otherwise
    calls the runtime.  ``on_fault(builder)`` fills the block taken when the
    walk faults and must terminate it."""
    tag_field = st.TLB_WRITE if write else st.TLB_READ
    shift = ir.Constant(I64, PAGE_BITS)
    page = b.lshr(addr, shift)
    entry = _tlb_entry(b, state_ptr, page)
    last = addr if size == 1 else b.add(addr, ir.Constant(I64, size - 1))
    last_page = page if size == 1 else b.lshr(last, shift)
    hit = b.icmp_unsigned("==", _entry_word(b, entry, tag_field), last_page)
    fast, slow, fault, join = (new_block("tlb.hit"), new_block("tlb.miss"),
                               new_block("tlb.fault"), new_block("tlb.join"))
    ir.IRBuilder.cbranch(b, hit, fast, slow)
    b.position_at_end(fast)
    incoming = [(b.add(addr, _entry_word(b, entry, st.TLB_ADDEND)), fast)]
    ir.IRBuilder.branch(b, join)
    b.position_at_end(slow)
    if size > 1:
        # An access crossing into the next page: still native when both
        # pages hit and are physically contiguous (equal addends).
        cross, call = new_block("tlb.cross"), new_block("tlb.call")
        entry2 = _tlb_entry(b, state_ptr, last_page)
        add1 = _entry_word(b, entry, st.TLB_ADDEND)
        ok = b.and_(b.and_(b.icmp_unsigned("==", _entry_word(b, entry, tag_field), page),
                           b.icmp_unsigned("==", _entry_word(b, entry2, tag_field), last_page)),
                    b.icmp_unsigned("==", add1, _entry_word(b, entry2, st.TLB_ADDEND)))
        ir.IRBuilder.cbranch(b, ok, cross, call)
        b.position_at_end(cross)
        incoming.append((b.add(addr, add1), cross))
        ir.IRBuilder.branch(b, join)
        b.position_at_end(call)
    fill = b.module.globals.get(MMU_FILL)
    if fill is None:
        fill = ir.Function(b.module, ir.FunctionType(I64, [state_ptr.type, I64, I32]), name=MMU_FILL)
    access = (size << 8) | (ACCESS_WRITE if write else 0)
    slow_off = b.call(fill, [state_ptr, addr, ir.Constant(I32, access)])
    incoming.append((slow_off, b.block))
    ir.IRBuilder.cbranch(b, b.icmp_unsigned("==", slow_off, ir.Constant(I64, MMU_FAULT)), fault, join)
    b.position_at_end(fault)
    on_fault(b)
    b.position_at_end(join)
    off = b.phi(I64)
    for value, block in incoming:
        off.add_incoming(value, block)
    return off, join


def physical_pointer(b: ir.IRBuilder, membase: ir.Value, offset: ir.Value) -> ir.Value:
    """Host pointer of a guest-physical offset that tlb_offset produced."""
    return b.gep(membase, [offset], inbounds=True, source_etype=I8)
