"""Signal handlers in real programs, natively and under ``bttool run``:
asynchronous signals reaching a guest spinning in translated code, a
shell's traps, job control's kill and wait, and timeout's SIGTERM.  (The
handler paths one by one, with their frames and contexts, are the
``sighandlers`` sample in test_samples.py.)"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import programs  # noqa: E402
from programs import bttool_cache, samples_dir  # noqa: E402,F401  (fixtures)

BASH = shutil.which("bash-static") or "/bin/bash-static"
BUSYBOX = "/bin/busybox"

TRAPS = r"""
trap 'echo got USR1' USR1
kill -USR1 $$
echo after kill
trap 'echo child done' CHLD
( sleep 0.1; exit 3 ) &
wait $!
echo "wait status $?"
trap - CHLD
f() { echo "in f $1"; return 2; }
f x | cat
echo "pipe status ${PIPESTATUS[0]} ${PIPESTATUS[1]}"
x=$( echo sub; kill -TERM $BASHPID; echo notreached )
echo "subshell said '$x'"
sleep 5 &
pid=$!
kill $pid
wait $pid
echo "killed job status $?"
trap 'echo exiting' EXIT
for i in 1 2 3; do echo $i; done | while read n; do echo "n=$n"; done
"""


def _spin(argv: list[str], cwd) -> tuple[bytes, int]:
    """Start the sample's busy loop, send SIGINT once it is ready."""
    import signal
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                         env=programs.guest_env())
    first = p.stdout.readline()
    assert first == b"ready\n", (first, p.stderr.read())
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=120)
    assert not err, err
    return first + rest, p.returncode


def test_sigint_reaches_a_handler_in_a_busy_loop(samples_dir, bttool_cache, tmp_path):
    """SIGINT sent to the bttool process runs the guest's handler while the
    guest spins in chained translated code (translated code polls at back
    edges and region exits)."""
    prog = str(samples_dir / "sighandlers")
    native = _spin([prog, "spin"], tmp_path)
    translated = _spin(programs.bttool_argv("run", "--cache-dir", bttool_cache, prog, "spin"),
                       tmp_path)
    assert native == (b"ready\ncaught SIGINT in a busy loop\n", 0)
    assert translated == native


@pytest.mark.skipif(not Path(BASH).exists(), reason="bash-static is not installed")
def test_bash_traps_kill_wait_and_pipelines(bttool_cache, tmp_path):
    """Debian's bash-static: a trap on USR1 sent to itself, a CHLD trap,
    wait for a background job, a killed job's status, pipelines and a
    subshell that kills itself, with output identical to native (bash's
    own diagnostics name process ids, which differ between runs).  The
    EXIT trap is set after the killed job: a job killed right after its
    fork runs an inherited EXIT trap only if the SIGTERM comes before it
    execs sleep, a race that native runs win or lose by timing too."""
    script = tmp_path / "traps.sh"
    script.write_text(TRAPS)
    native = programs.run_native([BASH, str(script)], cwd=tmp_path)
    ours = programs.run_bttool([BASH, str(script)], bttool_cache, cwd=tmp_path)

    def norm(r):
        return (r.returncode, re.sub(rb"process \d+", b"process N", r.stdout),
                re.sub(rb"process \d+", b"process N", r.stderr))
    assert b"got USR1\nafter kill\n" in native.stdout
    assert norm(ours) == norm(native)


@pytest.mark.skipif(not Path(BUSYBOX).exists(), reason="busybox-static is not installed")
def test_timeout_ends_a_busy_loop(bttool_cache, tmp_path):
    """busybox timeout's SIGTERM ends a shell spinning in a loop (busybox
    runs the command in its own process and a watcher child sends the
    signal), as natively."""
    argv = [BUSYBOX, "timeout", "1", "sh", "-c", "while :; do :; done"]
    native = programs.run_native(argv, cwd=tmp_path)
    ours = programs.run_bttool(argv, bttool_cache, cwd=tmp_path)
    assert native.returncode == -15
    programs.assert_same(native, ours)


_LATE_HANDLER = r"""
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
static sigjmp_buf env;
long counter;
static void on_segv(int sig) { (void)sig; siglongjmp(env, 1); }
/* a read-modify-write, then a load that may fault: one region */
__attribute__((noinline)) long bump_then_load(long *q)
{
    __asm__ volatile("addq $1, %0" : "+m"(counter));
    return *q;
}
int main(void)
{
    long good = 5, total = 0;
    for (int i = 0; i < 3; i++)            /* translated before any handler */
        total += bump_then_load(&good);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(env, 1) == 0)
        total += bump_then_load((long *)16);
    printf("counter %ld total %ld\n", counter, total);
    return 0;
}
"""


def test_code_translated_before_the_handler_faults_precisely(bttool_cache, tmp_path):
    """A function translated before the program installs its SIGSEGV
    handler, then faulting after a read-modify-write: the fault is made
    precise by replaying from the last commit, which code made before the
    handler lacked, so the add ran twice (counter 5 where natively it is 4).
    Such translations are replaced when next entered
    (Executor.require_precise_faults)."""
    src = tmp_path / "late.c"
    src.write_text(_LATE_HANDLER)
    exe = tmp_path / "late"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(exe), str(src)], check=True)
    native, _ = programs.compare_run([str(exe)], bttool_cache, cwd=tmp_path)
    assert native.stdout == b"counter 4 total 15\n"


# The runtime's blocking host calls (Syscalls.raw) go through the support
# object's bt_safe_syscall.  In a child interpreter (it installs a host
# handler and binds a state): a signal for the guest caught before the call
# begins must end the call, not be held while it waits for good.
_SAFE_CALL = r"""
import ctypes, os, signal, threading
from bttool.ir import state as st
from bttool.runtime import hostsignals
from bttool.runtime.engine import Engine
from bttool.runtime.nativeloop import NOT_STARTED
from bttool.runtime.syscalls import waits_for_signal
PAUSE = 34
engine = Engine()
s = st.new_state()
engine.bind(s)
s.irq_pending = 1
assert engine.safe_syscall(PAUSE, 0, 0, 0, 0, 0, 0) == -NOT_STARTED
s.irq_pending = 0
assert engine.safe_syscall(39, 0, 0, 0, 0, 0, 0) == os.getpid()     # getpid
hostsignals.catch_for_guest(signal.SIGUSR1, engine.address("bt_async"))
main, done = threading.get_ident(), threading.Event()
def sender():
    while not done.is_set():
        signal.pthread_kill(main, signal.SIGUSR1)
threading.Thread(target=sender).start()
seen = set()
for _ in range(3000):
    # each caught signal is taken and unblocked again, as delivery does;
    # one caught anywhere from here to the pause must end the pause
    seen.add(engine.safe_syscall(PAUSE, 0, 0, 0, 0, 0, 0))
    engine.take_async(ctypes.addressof(s))
    s.irq_pending = 0
    hostsignals.set_host_mask(0)
done.set()
assert seen <= {-4, -NOT_STARTED}, seen
# caught inside the window (the flag's test up to the syscall instruction):
# the thread goes on at the cancel label; caught after it: it goes on as is
catch = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(engine.address("bt_async"))
start, end, cancel = (engine.address("bt_safe_syscall_" + n) for n in ("start", "end", "cancel"))
for rip, goes_on in ((start, cancel), (end - 2, cancel), (end, end)):
    info, uc = ctypes.create_string_buffer(128), ctypes.create_string_buffer(1024)
    ctypes.c_uint64.from_buffer(uc, 40 + 8 * 16).value = rip      # uc_mcontext.gregs[REG_RIP]
    catch(signal.SIGUSR1, ctypes.addressof(info), ctypes.addressof(uc))
    assert ctypes.c_uint64.from_buffer(uc, 40 + 8 * 16).value == goes_on, (hex(rip), hex(goes_on))
    engine.take_async(ctypes.addressof(s))
    s.irq_pending = 0
r, w = os.pipe()
import tempfile
with tempfile.TemporaryFile() as f:
    assert waits_for_signal(0, (r, 0, 1)) and not waits_for_signal(0, (f.fileno(), 0, 1))
assert waits_for_signal(PAUSE, ()) and waits_for_signal(202, (0, 128 | 0, 0))     # FUTEX_WAIT_PRIVATE
assert not waits_for_signal(202, (0, 128 | 1, 1))                                  # FUTEX_WAKE_PRIVATE
assert waits_for_signal(61, (-1, 0, 0, 0)) and not waits_for_signal(61, (-1, 0, 1, 0))   # WNOHANG
print("ok", sorted(seen))
"""


def test_a_signal_caught_before_a_blocking_host_call_ends_it():
    """Without the check-and-syscall window that bt_async knows, a signal
    caught between the poll flag's test and the host pause() is recorded
    and blocked, and the pause never returns (the loop then times out)."""
    r = subprocess.run([sys.executable, "-c", _SAFE_CALL], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(programs.REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]
