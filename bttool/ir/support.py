"""Runtime support code, generated as LLVM IR: the native dispatcher loop and
the host signal handlers.

``bt_run`` looks the guest rip up in a direct-mapped table of
(pc, function) pairs and calls translated units until one sets an exit
reason or misses, so hot code never returns to Python.  ``bt_signal`` is
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
"""
from __future__ import annotations

from bttool.ir import state

TABLE_BITS = 16
TABLE_ENTRIES = 1 << TABLE_BITS
TABLE_ENTRY_SIZE = 16
COUNTER_BITS = 16
HOT_THRESHOLD = 20000   # entries + back-edges before a region is retranslated at tier 2
TARGET_BITS = 12        # bt_targets: last target of tier-1 indirect calls/jumps, by site
HASH_MULTIPLIER = 0x9E3779B97F4A7C15
SIGINFO_SIZE = 128      # Linux's siginfo_t, the same on host and guest (x86-64)
UCONTEXT_ERR = 40 + 8 * 19   # ucontext_t's uc_mcontext.gregs[REG_ERR]: the page-fault error code


def table_index(pc: int) -> int:
    """Same hash as bt_run uses (Fibonacci hashing)."""
    return ((pc * HASH_MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> (64 - TABLE_BITS)


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
    h = b.mul(rip, ir.Constant(i64, HASH_MULTIPLIER))
    off = b.shl(b.lshr(h, ir.Constant(i64, 64 - TABLE_BITS)), ir.Constant(i64, 4))
    entry = b.gep(table, [off], inbounds=True, source_etype=ir.IntType(8))
    hit = b.icmp_unsigned("==", b.load(entry, typ=i64), rip)
    with b.if_then(hit, likely=True):
        fn = b.load(b.gep(entry, [ir.Constant(i64, 8)], inbounds=True, source_etype=ir.IntType(8)), typ=ptr)
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
    to: the fault's address and signal into the state, EXIT_HOST_SIGNAL."""
    return f"""fault:
  store volatile i32 0, ptr @bt_in_guest
  %fa = load volatile i64, ptr @bt_fault_addr
  %fap = getelementptr inbounds i8, ptr %state, i64 {off('fault_addr')}
  store i64 %fa, ptr %fap
  %fs = load volatile i32, ptr @bt_fault_sig
  %fs64 = zext i32 %fs to i64
  %fip = getelementptr inbounds i8, ptr %state, i64 {off('exit_info')}
  store i64 %fs64, ptr %fip
  %frp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  store i32 {state.EXIT_HOST_SIGNAL}, ptr %frp
  ret i32 {state.EXIT_HOST_SIGNAL}"""


def support_ir() -> str:
    off = state.offset
    fault_exit = _fault_exit(off)
    return f"""
@bt_table = global [{2 * TABLE_ENTRIES} x i64] zeroinitializer, align 64
@bt_counters = global [{1 << COUNTER_BITS} x i32] zeroinitializer, align 64
@bt_targets = global [{1 << TARGET_BITS} x i64] zeroinitializer, align 64
@bt_jmpbuf = internal global [64 x i64] zeroinitializer, align 16
@bt_in_guest = global i32 0
@bt_fault_addr = global i64 0
@bt_fault_sig = global i32 0
@bt_fault_code = global i32 0
@bt_fault_err = global i64 0
@bt_async_pending = global i64 0
@bt_siginfo = global [{64 * SIGINFO_SIZE} x i8] zeroinitializer, align 16
@bt_poll_flag = global ptr null
@bt_table_link = global ptr null
@bt_empty_table = global ptr null

declare i32 @__sigsetjmp(ptr, i32) returns_twice
declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)
declare void @siglongjmp(ptr, i32) noreturn
declare ptr @signal(i32, ptr)

define i32 @bt_run(ptr %state, ptr %mem) {{
entry:
  %j = call i32 @__sigsetjmp(ptr @bt_jmpbuf, i32 1) returns_twice
  %faulted = icmp ne i32 %j, 0
  br i1 %faulted, label %fault, label %start
start:
  store volatile i32 1, ptr @bt_in_guest
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
  %idx = lshr i64 %h, {64 - TABLE_BITS}
  %eoff = shl i64 %idx, 4
  %e = getelementptr inbounds i8, ptr @bt_table, i64 %eoff
  %epc = load i64, ptr %e
  %hit = icmp eq i64 %epc, %pc
  br i1 %hit, label %call, label %miss
call:
  %fp = getelementptr inbounds i8, ptr %e, i64 8
  %fn = load ptr, ptr %fp
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
  store volatile i32 0, ptr @bt_in_guest
  %op = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  %or = load i32, ptr %op
  ret i32 %or
{fault_exit}
}}

define i32 @bt_step(ptr %state, ptr %mem, ptr %fn) {{
entry:
  %j = call i32 @__sigsetjmp(ptr @bt_jmpbuf, i32 1) returns_twice
  %faulted = icmp ne i32 %j, 0
  br i1 %faulted, label %fault, label %go
go:
  store volatile i32 1, ptr @bt_in_guest
  call void %fn(ptr %state, ptr %mem)
  store volatile i32 0, ptr @bt_in_guest
  %rp = getelementptr inbounds i8, ptr %state, i64 {off('exit_reason')}
  %r = load i32, ptr %rp
  ret i32 %r
{fault_exit}
}}

define void @bt_signal(i32 %sig, ptr %info, ptr %uc) {{
entry:
  %ig = load volatile i32, ptr @bt_in_guest
  %inside = icmp ne i32 %ig, 0
  br i1 %inside, label %guest, label %host
host:
  %old = call ptr @signal(i32 %sig, ptr null)
  ret void
guest:
  %ap = getelementptr inbounds i8, ptr %info, i64 16
  %a = load i64, ptr %ap
  store volatile i64 %a, ptr @bt_fault_addr
  %cp = getelementptr inbounds i8, ptr %info, i64 8
  %c = load i32, ptr %cp
  store volatile i32 %c, ptr @bt_fault_code
  %ep = getelementptr inbounds i8, ptr %uc, i64 {UCONTEXT_ERR}
  %e = load i64, ptr %ep
  store volatile i64 %e, ptr @bt_fault_err
  store volatile i32 %sig, ptr @bt_fault_sig
  store volatile i32 0, ptr @bt_in_guest
  call void @siglongjmp(ptr @bt_jmpbuf, i32 1)
  unreachable
}}

define void @bt_async(i32 %sig, ptr %info, ptr %uc) {{
entry:
  %s1 = sub i32 %sig, 1
  %s64 = zext i32 %s1 to i64
  %off = mul i64 %s64, {SIGINFO_SIZE}
  %slot = getelementptr inbounds i8, ptr @bt_siginfo, i64 %off
  call void @llvm.memcpy.p0.p0.i64(ptr %slot, ptr %info, i64 {SIGINFO_SIZE}, i1 false)
  %bit = shl i64 1, %s64
  %old = atomicrmw or ptr @bt_async_pending, i64 %bit seq_cst
  %flag = load ptr, ptr @bt_poll_flag
  %has = icmp ne ptr %flag, null
  br i1 %has, label %set, label %done
set:
  store atomic i32 1, ptr %flag seq_cst, align 4
  %link = load ptr, ptr @bt_table_link
  %empty = load ptr, ptr @bt_empty_table
  store atomic ptr %empty, ptr %link seq_cst, align 8
  br label %done
done:
  ret void
}}

define i64 @bt_take_async() {{
entry:
  %v = atomicrmw xchg ptr @bt_async_pending, i64 0 seq_cst
  ret i64 %v
}}
"""
