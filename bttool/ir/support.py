"""Runtime support code, generated as LLVM IR: the native dispatcher loop and
the host signal handlers.

``bt_run`` looks the guest rip up in a table of (pc, function) pairs and
calls translated units until one sets an exit reason or misses, so hot code
never returns to Python.  The table is two-way set associative: a set is
two 16-byte entries in one cache line, the most recently installed first
(``runtime/dispatcher.py`` installs), so two hot targets that hash to the
same set no longer evict each other on every install (SQLite's interpreter
loop returned to Python 1.2 million times a run through one such pair when
the table was direct-mapped).  ``bt_signal`` is
installed for SIGSEGV/SIGBUS: a fault raised while translated code runs
jumps back into ``bt_run`` (sigsetjmp/siglongjmp), which reports
EXIT_HOST_SIGNAL with the faulting address; a fault anywhere else restores
the default action so bttool's own bugs still crash loudly.  ``bt_async``
catches the signals a linux-user guest handles (runtime/guestsignals.py):
it records the signal and its siginfo, raises the state's poll flag and
points the state's table link at an empty table, so translated code leaves
at its next loop back edge (which polls the flag) or region exit (whose
chain then misses; ``bt_run`` polls the flag too) and the runtime delivers
the signal at that instruction boundary.  Chaining itself pays nothing.  ``bt_step``
runs one translated function with the same fault catching and no chaining
(runtime/precisefault.py).

Guest threads run on host threads of their own, each with its own state
(runtime/guestthreads.py).  So nothing a handler needs is global: the jump
buffer, the in-guest flag, the fault's details and the caught signals live
in the state, and a handler finds the state of the thread it interrupted
through a pthread key (``bt_tls_key``; ``bt_run`` binds the state it is
given).  The lookup table is shared by all threads: an entry is written and
read as one 16-byte atomic access (``bt_table_put``; a vector move on x86
hosts with AVX), so no thread ever sees a pc with another entry's function.
"""
from __future__ import annotations

from bttool.ir import state

TABLE_SET_BITS = 15
TABLE_WAYS = 2          # bt_run's IR below spells out both probes
TABLE_ENTRIES = TABLE_WAYS << TABLE_SET_BITS
TABLE_ENTRY_SIZE = 16
TABLE_SET_SIZE = TABLE_WAYS * TABLE_ENTRY_SIZE
COUNTER_BITS = 16
HOT_THRESHOLD = 20000   # entries + back-edges before a region is retranslated at tier 2
TARGET_BITS = 12        # bt_targets: last target of tier-1 indirect calls/jumps, by site
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
SIGINFO_SIZE = state.SIGINFO_SIZE
# A lookup-table entry that matches no pc (outside the guest window): the
# pc half of an empty entry; its function half is 0.
EMPTY_PC = 0xFFFFFFFFFFFFFFFF
_EMPTY_ENTRY = EMPTY_PC      # (pc, function) as one i128
UCONTEXT_ERR = 40 + 8 * 19   # ucontext_t's uc_mcontext.gregs[REG_ERR]: the page-fault error code


def table_set(pc: int) -> int:
    """The lookup-table set of ``pc``: the same hash as ``bt_run`` and
    ``emit_chain`` use (Fibonacci hashing)."""
    return ((pc * HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> (64 - TABLE_SET_BITS)


def _emit_set_address(b, table, pc):
    """IR: the address of ``pc``'s set in ``table`` (see ``table_set``)."""
    from llvmlite import ir
    i64 = ir.IntType(64)
    h = b.mul(pc, ir.Constant(i64, HASH_MULTIPLIER))
    off = b.shl(b.lshr(h, ir.Constant(i64, 64 - TABLE_SET_BITS)),
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


def emit_chain(b, state_ptr, mem, rip) -> None:
    """End a translated function by jumping straight to the translation of
    ``rip`` when the table has one (a tail call: the host stack never grows),
    else return to ``bt_run``, which will report the miss."""
    from llvmlite import ir
    i64 = ir.IntType(64)
    ptr = ir.PointerType()
    table = _link(b, state_ptr, "table_base")
    entry = _emit_set_address(b, table, rip)
    for way in range(TABLE_WAYS):
        if way:
            entry = b.gep(entry, [ir.Constant(i64, TABLE_ENTRY_SIZE)], inbounds=True,
                          source_etype=ir.IntType(8))
        # (pc, function) in one load: another thread may be replacing the entry
        pair = b.load_atomic(entry, "unordered", 16, typ=ir.IntType(128))
        hit = b.icmp_unsigned("==", b.trunc(pair, i64), rip)
        with b.if_then(hit, likely=True):
            fn = b.inttoptr(b.trunc(b.lshr(pair, ir.Constant(ir.IntType(128), 64)), i64), ptr)
            b.call(_IndirectCallee(fn, ir.FunctionType(ir.VoidType(), [ptr, ptr])),
                   [state_ptr, mem], tail="musttail")
            b.ret_void()
    b.ret_void()


def counter_index(pc_key: int) -> int:
    return ((pc_key * HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> (64 - COUNTER_BITS)


def emit_hot_check(b, state_ptr, pc_key: int, on_hot) -> None:
    """Count one execution of the code at guest pc ``pc_key`` (relative to
    the image base); past the threshold call ``on_hot()`` (which must end
    the path) after resetting the counter."""
    from llvmlite import ir
    i32 = ir.IntType(32)
    counters = _link(b, state_ptr, "counters_base")
    slot = b.gep(counters, [ir.Constant(ir.IntType(64), 4 * counter_index(pc_key))],
                 inbounds=True, source_etype=ir.IntType(8))
    n = b.add(b.load(slot, typ=i32), ir.Constant(i32, 1))
    b.store(n, slot, 4)
    with b.if_then(b.icmp_unsigned(">", n, ir.Constant(i32, HOT_THRESHOLD)), likely=False):
        b.store(ir.Constant(i32, 0), slot, 4)
        on_hot()


def target_index(pc_key: int) -> int:
    return ((pc_key * HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> (64 - TARGET_BITS)


def emit_target_record(b, state_ptr, pc_key: int, target) -> None:
    """Tier 1: remember ``target`` (i64) as the last target of the indirect
    call or jump at guest pc ``pc_key`` (relative to the image base); tier 2
    uses it as a guess (runtime/dispatcher.py)."""
    from llvmlite import ir
    i64 = ir.IntType(64)
    targets = _link(b, state_ptr, "targets_base")
    slot = b.gep(targets, [ir.Constant(i64, 8 * target_index(pc_key))],
                 inbounds=True, source_etype=ir.IntType(8))
    b.store(target, slot, 8)


def _fault_exit(off) -> str:
    """The block of ``bt_run`` and ``bt_step`` that a caught fault jumps
    to (``bt_signal`` left the fault's address, signal, si_code and error
    code in the state): EXIT_HOST_SIGNAL, with the signal in exit_info."""
    return f"""fault:
  %fig = getelementptr inbounds i8, ptr %state, i64 {off('in_guest')}
  store volatile i32 0, ptr %fig
  %fsp = getelementptr inbounds i8, ptr %state, i64 {off('fault_sig')}
  %fs = load volatile i32, ptr %fsp
  %fs64 = zext i32 %fs to i64
  %fip = getelementptr inbounds i8, ptr %state, i64 {off('exit_info')}
  store i64 %fs64, ptr %fip
  %frp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  store i32 {state.EXIT_HOST_SIGNAL}, ptr %frp
  ret i32 {state.EXIT_HOST_SIGNAL}"""


def _enter(off) -> str:
    """The start of ``bt_run`` and ``bt_step``: this host thread's state is
    the one the signal handlers find (the pthread key in ``bt_tls_key``),
    and its jump buffer is where a fault comes back to."""
    return f"""entry:
  %key = load i32, ptr @bt_tls_key
  %bound = call i32 @pthread_setspecific(i32 %key, ptr %state)
  %jb = getelementptr inbounds i8, ptr %state, i64 {off('host_jmpbuf')}
  %ig = getelementptr inbounds i8, ptr %state, i64 {off('in_guest')}
  %j = call i32 @__sigsetjmp(ptr %jb, i32 1) returns_twice
  %faulted = icmp ne i32 %j, 0"""


def _this_thread_state() -> str:
    """The first lines of a host signal handler: %st, the state of the
    guest thread this host thread runs (null on a thread that runs none)."""
    return """  %key = load i32, ptr @bt_tls_key
  %st = call ptr @pthread_getspecific(i32 %key)
  %has = icmp ne ptr %st, null"""


def support_ir() -> str:
    off = state.offset
    fault_exit = _fault_exit(off)
    enter = _enter(off)
    this_state = _this_thread_state()
    return f"""
@bt_table = global [{2 * TABLE_ENTRIES} x i64] zeroinitializer, align 64
@bt_counters = global [{1 << COUNTER_BITS} x i32] zeroinitializer, align 64
@bt_targets = global [{1 << TARGET_BITS} x i64] zeroinitializer, align 64
@bt_no_table = global [{2 * TABLE_ENTRIES} x i64] zeroinitializer, align 64
@bt_tls_key = global i32 -1

declare i32 @__sigsetjmp(ptr, i32) returns_twice
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @siglongjmp(ptr, i32) noreturn
declare ptr @signal(i32, ptr)
declare ptr @pthread_getspecific(i32)
declare i32 @pthread_setspecific(i32, ptr)

define i32 @bt_run(ptr %state, ptr %mem) {{
{enter}
  br i1 %faulted, label %fault, label %start
start:
  store volatile i32 1, ptr %ig
  br label %loop
loop:
  %irqp = getelementptr inbounds i8, ptr %state, i64 {off('irq_pending')}
  %irq = load atomic i32, ptr %irqp monotonic, align 4
  %noirq = icmp eq i32 %irq, 0
  br i1 %noirq, label %look, label %irqexit
irqexit:
  %xp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  store i32 {state.EXIT_IRQ}, ptr %xp
  br label %out
look:
  %pcp = getelementptr inbounds i8, ptr %state, i64 {off('rip')}
  %pc = load i64, ptr %pcp
  %h = mul i64 %pc, {HASH_MULTIPLIER - (1 << 64)}
  %idx = lshr i64 %h, {64 - TABLE_SET_BITS}
  %eoff = shl i64 %idx, {TABLE_SET_SIZE.bit_length() - 1}
  %e = getelementptr inbounds i8, ptr @bt_table, i64 %eoff
  %ev0 = load atomic i128, ptr %e unordered, align 16
  %epc0 = trunc i128 %ev0 to i64
  %hit0 = icmp eq i64 %epc0, %pc
  br i1 %hit0, label %call, label %way1
way1:
  %e1 = getelementptr inbounds i8, ptr %e, i64 {TABLE_ENTRY_SIZE}
  %ev1 = load atomic i128, ptr %e1 unordered, align 16
  %epc1 = trunc i128 %ev1 to i64
  %hit1 = icmp eq i64 %epc1, %pc
  br i1 %hit1, label %call, label %miss
call:
  %ev = phi i128 [%ev0, %look], [%ev1, %way1]
  %ehi = lshr i128 %ev, 64
  %efn = trunc i128 %ehi to i64
  %fn = inttoptr i64 %efn to ptr
  call void %fn(ptr %state, ptr %mem)
  %rp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  %r = load i32, ptr %rp
  %cont = icmp eq i32 %r, 0
  br i1 %cont, label %loop, label %out
miss:
  %mp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  store i32 {state.EXIT_MISS}, ptr %mp
  br label %out
out:
  store volatile i32 0, ptr %ig
  %op = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  %or = load i32, ptr %op
  ret i32 %or
{fault_exit}
}}

define i32 @bt_step(ptr %state, ptr %mem, ptr %fn) {{
{enter}
  br i1 %faulted, label %fault, label %go
go:
  store volatile i32 1, ptr %ig
  call void %fn(ptr %state, ptr %mem)
  store volatile i32 0, ptr %ig
  %rp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  %r = load i32, ptr %rp
  ret i32 %r
{fault_exit}
}}

define void @bt_signal(i32 %sig, ptr %info, ptr %uc) {{
entry:
{this_state}
  br i1 %has, label %check, label %host
check:
  %igp = getelementptr inbounds i8, ptr %st, i64 {off('in_guest')}
  %ig = load volatile i32, ptr %igp
  %inside = icmp ne i32 %ig, 0
  br i1 %inside, label %guest, label %host
host:
  %old = call ptr @signal(i32 %sig, ptr null)
  ret void
guest:
  %ap = getelementptr inbounds i8, ptr %info, i64 16
  %a = load i64, ptr %ap
  %fap = getelementptr inbounds i8, ptr %st, i64 {off('fault_addr')}
  store volatile i64 %a, ptr %fap
  %cp = getelementptr inbounds i8, ptr %info, i64 8
  %c = load i32, ptr %cp
  %fcp = getelementptr inbounds i8, ptr %st, i64 {off('fault_code')}
  store volatile i32 %c, ptr %fcp
  %ep = getelementptr inbounds i8, ptr %uc, i64 {UCONTEXT_ERR}
  %e = load i64, ptr %ep
  %fep = getelementptr inbounds i8, ptr %st, i64 {off('fault_err')}
  store volatile i64 %e, ptr %fep
  %fsp = getelementptr inbounds i8, ptr %st, i64 {off('fault_sig')}
  store volatile i32 %sig, ptr %fsp
  store volatile i32 0, ptr %igp
  %jb = getelementptr inbounds i8, ptr %st, i64 {off('host_jmpbuf')}
  call void @siglongjmp(ptr %jb, i32 1)
  unreachable
}}

define void @bt_async(i32 %sig, ptr %info, ptr %uc) {{
entry:
{this_state}
  br i1 %has, label %record, label %done
record:
  %s1 = sub i32 %sig, 1
  %s64 = zext i32 %s1 to i64
  %off = mul i64 %s64, {SIGINFO_SIZE}
  %infos = getelementptr inbounds i8, ptr %st, i64 {off('siginfo')}
  %slot = getelementptr inbounds i8, ptr %infos, i64 %off
  call void @llvm.memcpy.p0.p0.i64(ptr %slot, ptr %info, i64 {SIGINFO_SIZE}, i1 false)
  %bit = shl i64 1, %s64
  %pend = getelementptr inbounds i8, ptr %st, i64 {off('async_pending')}
  %old = atomicrmw or ptr %pend, i64 %bit seq_cst
  %flag = getelementptr inbounds i8, ptr %st, i64 {off('irq_pending')}
  store atomic i32 1, ptr %flag seq_cst, align 4
  %link = getelementptr inbounds i8, ptr %st, i64 {off('table_base')}
  store atomic ptr @bt_no_table, ptr %link seq_cst, align 8
  br label %done
done:
  ret void
}}

define i64 @bt_take_async(ptr %state) {{
entry:
  %pend = getelementptr inbounds i8, ptr %state, i64 {off('async_pending')}
  %v = atomicrmw xchg ptr %pend, i64 0 seq_cst
  ret i64 %v
}}

define void @bt_table_put(ptr %slot, i64 %pc, i64 %fn) {{
entry:
  %lo = zext i64 %pc to i128
  %hi0 = zext i64 %fn to i128
  %hi = shl i128 %hi0, 64
  %v = or i128 %lo, %hi
  store atomic i128 %v, ptr %slot release, align 16
  ret void
}}

define void @bt_table_fill(ptr %table, i64 %n) {{
entry:
  %none = icmp eq i64 %n, 0
  br i1 %none, label %done, label %loop
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  %off = shl i64 %i, 4
  %e = getelementptr inbounds i8, ptr %table, i64 %off
  store atomic i128 {_EMPTY_ENTRY}, ptr %e release, align 16
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}}
"""
