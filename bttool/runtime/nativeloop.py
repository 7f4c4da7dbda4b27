"""The native side of the runtime, generated as LLVM IR and compiled once
per target (the "support object", cached: CacheStore.support_object): the
dispatch loop and the host signal handlers.

``bt_run`` looks the guest rip up in the lookup table of (pc, function)
pairs (its layout and hash: ir/tables.py) and calls translated units until
one sets an exit reason or misses, so hot code never returns to Python.
``bt_signal`` is installed for SIGSEGV/SIGBUS: a fault raised while
translated code runs jumps back into ``bt_run`` (sigsetjmp/siglongjmp),
which reports EXIT_HOST_SIGNAL with the faulting address; a fault anywhere
else restores the default action so bttool's own bugs still crash loudly.
``bt_async`` catches the signals a linux-user guest handles
(runtime/guestsignals.py): it records the signal and its siginfo, leaves
the signal blocked on this host thread (in the mask the kernel restores
when the handler returns), so that further instances wait in the host
kernel's queue instead of overwriting the record until the runtime has
delivered this one, raises the state's poll flag and points the state's
table link at an empty table,
so translated code leaves at its next loop back edge (which polls the flag)
or region exit (whose chain then misses; ``bt_run`` polls the flag too) and
the runtime delivers the signal at that instruction boundary.  Chaining
itself pays nothing.  ``bt_safe_syscall`` makes the runtime's blocking host
calls, which a signal caught before they start must not miss (it moves
a thread it catches between its flag test and its ``syscall`` away).  ``bt_step`` runs one translated function with the
same fault catching and no chaining (runtime/precisefault.py).

Guest threads run on host threads of their own, each with its own state
(runtime/guestthreads.py).  So nothing a handler needs is global: the jump
buffer, the in-guest flag, the fault's details and the caught signals live
in the state, and a handler finds the state of the thread it interrupted
through a pthread key (``bt_tls_key``; ``bt_run`` binds the state it is
given).  Lookup-table entries are written and read as one 16-byte atomic
access (``bt_table_put``; a vector move on x86 hosts with AVX).
"""
from __future__ import annotations

from bttool.ir import state
from bttool.ir.unitabi import ir_text_call
from bttool.ir.tables import (COUNTER_BITS, EMPTY_ENTRY, HASH_MULTIPLIER, TABLE_ENTRIES, TABLE_ENTRY_SIZE,
                              TABLE_SET_BITS, TABLE_SET_SIZE, TARGET_BITS)

SIGINFO_SIZE = state.SIGINFO_SIZE
# Linux's siginfo_t (x86-64): si_code, and si_addr of a fault
SIGINFO_CODE = 8
SIGINFO_ADDR = 16
UCONTEXT_ERR = 40 + 8 * 19   # ucontext_t's uc_mcontext.gregs[REG_ERR]: the page-fault error code
UCONTEXT_SIGMASK = 40 + 256  # ucontext_t's uc_sigmask: the mask the kernel restores after the handler
UCONTEXT_RIP = 40 + 8 * 16   # ucontext_t's uc_mcontext.gregs[REG_RIP]: where the thread goes on
# What bt_safe_syscall returns, negated, for a call it did not make because
# a signal was caught first: Linux's ERESTARTNOINTR, which the kernel never
# gives user space, so no real result is mistaken for it.
NOT_STARTED = 513


def _safe_syscall_asm() -> str:
    """``bt_safe_syscall_asm(flag, nr, a1..a6)``: the host system call
    ``nr``, unless ``*flag`` (the state's irq_pending) says a signal for
    the guest was caught.  The check and the ``syscall`` instruction are
    the window ``bt_async`` knows (start, end): a signal caught there moves
    the thread to ``cancel``, so a signal caught after the guest's call
    left translated code either stops the host call from starting or
    interrupts it (EINTR; bttool's host handlers have no SA_RESTART).
    Without it, a signal caught before a host pause() began was recorded
    and the pause never woke (QEMU's safe_syscall solves the same race)."""
    lines = [
        ".text", ".globl bt_safe_syscall_asm", ".type bt_safe_syscall_asm,@function",
        ".globl bt_safe_syscall_start", ".globl bt_safe_syscall_end", ".globl bt_safe_syscall_cancel",
        "bt_safe_syscall_asm:",
        "movq %rsi, %rax", "movq %rdi, %r11",
        "movq %rdx, %rdi", "movq %rcx, %rsi", "movq %r8, %rdx", "movq %r9, %r10",
        "movq 8(%rsp), %r8", "movq 16(%rsp), %r9",
        "bt_safe_syscall_start:",
        "cmpl $0, (%r11)", "jne bt_safe_syscall_cancel",
        "syscall",
        "bt_safe_syscall_end:",
        "ret",
        "bt_safe_syscall_cancel:",
        f"movq ${-NOT_STARTED}, %rax", "ret",
        ".size bt_safe_syscall_asm, .-bt_safe_syscall_asm",
    ]
    return "\n".join(f'module asm "{line}"' for line in lines)


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
@bt_no_signal = global i32 0
{_safe_syscall_asm()}
@bt_safe_syscall_start = external global i8
@bt_safe_syscall_end = external global i8
@bt_safe_syscall_cancel = external global i8
declare i64 @bt_safe_syscall_asm(ptr, i64, i64, i64, i64, i64, i64, i64)

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
  {ir_text_call('%fn', '%state', '%mem')}
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
  {ir_text_call('%fn', '%state', '%mem')}
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
  %ap = getelementptr inbounds i8, ptr %info, i64 {SIGINFO_ADDR}
  %a = load i64, ptr %ap
  %fap = getelementptr inbounds i8, ptr %st, i64 {off('fault_addr')}
  store volatile i64 %a, ptr %fap
  %cp = getelementptr inbounds i8, ptr %info, i64 {SIGINFO_CODE}
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
  %smp = getelementptr inbounds i8, ptr %uc, i64 {UCONTEXT_SIGMASK}
  %sm = load i64, ptr %smp
  %sm1 = or i64 %sm, %bit
  store i64 %sm1, ptr %smp
  %flag = getelementptr inbounds i8, ptr %st, i64 {off('irq_pending')}
  store atomic i32 1, ptr %flag seq_cst, align 4
  %link = getelementptr inbounds i8, ptr %st, i64 {off('table_base')}
  store atomic ptr @bt_no_table, ptr %link seq_cst, align 8
  %ripp = getelementptr inbounds i8, ptr %uc, i64 {UCONTEXT_RIP}
  %rip = load i64, ptr %ripp
  %after = icmp uge i64 %rip, ptrtoint (ptr @bt_safe_syscall_start to i64)
  %before = icmp ult i64 %rip, ptrtoint (ptr @bt_safe_syscall_end to i64)
  %between = and i1 %after, %before
  br i1 %between, label %cancel, label %done
cancel:
  store i64 ptrtoint (ptr @bt_safe_syscall_cancel to i64), ptr %ripp
  br label %done
done:
  ret void
}}

define i64 @bt_safe_syscall(i64 %nr, i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5, i64 %a6) {{
entry:
{this_state}
  %own = getelementptr i8, ptr %st, i64 {off('irq_pending')}
  %flag = select i1 %has, ptr %own, ptr @bt_no_signal
  %r = call i64 @bt_safe_syscall_asm(ptr %flag, i64 %nr, i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5, i64 %a6)
  ret i64 %r
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
  %off = shl i64 %i, {TABLE_ENTRY_SIZE.bit_length() - 1}
  %e = getelementptr inbounds i8, ptr %table, i64 %off
  store atomic i128 {EMPTY_ENTRY}, ptr %e release, align 16
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}}
"""
