"""Compiling lifted regions in the background (tier 2, user mode).

A hot region's O2 compilation takes tens to hundreds of milliseconds; the
guest need not wait for it, since its tier-1 code is correct meanwhile.  The
runtime lifts the region (Python, in the main thread: lifting reads guest
state), sends the IR to a compile server (runtime/compileserver.py, a separate
process on the other core) and goes on running the guest; results are
picked up (``poll``) whenever the guest returns to Python, and all of them
before exit and exec (``drain``), so both tiers still reach the cache (a fork
goes on at once: the parent keeps the jobs, runtime/linux.py before_fork).

The server is started at the first submission as a grandchild in its own
session: the guest's wait4(-1) must never see it, and terminal signals
meant for the guest's process group must not reach it.  Its socket sits at
a high descriptor number, close-on-exec, out of the way of the guest's
descriptors (which are host descriptors, one to one; see hostfds.py), and
the server keeps none of the guest's descriptors open.  The server dies
with the process that started it, however that ends (kill -9 included:
runtime/compileserver.py watches its socket and this process's pid), so no run
leaves one behind.  Whatever goes wrong
with the server (it cannot start, dies, or reports an error), the job is
compiled in this process instead: results never depend on the server.
Setting BTTOOL_BACKGROUND_COMPILE=0 compiles every job at once, here.
"""
from __future__ import annotations

import dataclasses
import os
import resource
import select
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from bttool.runtime.compileserver import ERROR, REPLY, encode_request, read_exact
from bttool.runtime import hostpython
from bttool.runtime.hostfds import hold, move_high, tidy

if TYPE_CHECKING:  # pragma: no cover
    from bttool.translator.translate import Lifted, Translation

Done = Callable[["Translation"], None]


@dataclass
class _Job:
    lifted: "Lifted"
    done: Done


class BackgroundCompiler:
    """Jobs go to the compile server; ``done(translation)`` is called, in
    this thread, from ``poll`` or ``drain``, or at once when the job had to
    be compiled here."""

    def __init__(self, log: Callable[[str], None] = lambda m: None) -> None:
        self._log = log     # (its owner's: see ``adopt``)
        # Jobs whose object came from the server, and jobs compiled in this
        # process instead (no server, or it failed, ended or refused one):
        # the run's statistics (--stats-json background_compiles,
        # background_fallbacks).
        self.compiled_by_server = 0
        self.compiled_here = 0
        self._sock: socket.socket | None = None
        self._jobs: dict[int, _Job] = {}
        self._next = 0
        self._usable = os.environ.get("BTTOOL_BACKGROUND_COMPILE", "1") != "0"

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def adopt(self, log: Callable[[str], None]) -> None:
        """Serve a new owner (the guest an exec in place starts), logging
        through its log: the old guest's is cleared when it is retired
        (runtime/execinplace.retire), and a message through it failed with
        an AttributeError that ended the new guest."""
        self._log = log

    def submit(self, lifted: "Lifted", done: Done) -> None:
        job = _Job(lifted, done)
        if self._usable and (self._sock is not None or self._start()):
            self._next += 1
            request = encode_request(self._next, dataclasses.asdict(lifted.target), lifted.ir_text())
            try:
                self._sock.sendall(request, socket.MSG_NOSIGNAL)
            except OSError as e:
                self._give_up(f"cannot reach the compile server ({e})")
            else:
                self._jobs[self._next] = job
                return
        self._compile_here(job)

    def poll(self) -> None:
        """Hand over every result that has arrived; never waits."""
        while self._jobs and self._sock is not None and self._poller.poll(0):
            self._receive()

    def drain(self) -> None:
        """Wait for every outstanding job."""
        while self._jobs:
            if self._sock is None:
                self._give_up("")
            else:
                self._receive()

    def after_fork(self) -> None:
        """In a forked child: the server and the jobs under way belong to
        the parent, which receives them; the child starts its own server
        when it needs one."""
        if self._sock is not None:
            self._sock.close()
            tidy()
        self._sock = None
        self._jobs.clear()

    def release(self) -> None:
        """Give the connection's descriptor to the guest, which needs its
        number (hostfds.give_back): what the server still owes is received
        first, and every later job is compiled here."""
        self.drain()
        self._usable = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- internals -------------------------------------------------------
    def _receive(self) -> None:
        hdr = self._read(REPLY.size)
        if hdr is None:
            self._give_up("the compile server ended")
            return
        job_id, status, seconds, n = REPLY.unpack(hdr)
        data = self._read(n)
        if data is None or job_id not in self._jobs:
            self._give_up("the compile server sent a broken reply")
            return
        job = self._jobs.pop(job_id)
        if status == ERROR:
            # Compiling here raises the same error where it can be reported.
            self._log(f"compile server: {data.decode(errors='replace')}")
            self._compile_here(job)
            return
        from bttool.translator.translate import Translation
        self.compiled_by_server += 1
        job.done(Translation(data, job.lifted.regions, job.lifted.seconds + seconds,
                             source_ir=job.lifted.ir_text()))

    def _read(self, n: int) -> bytes | None:
        try:
            return read_exact(self._sock.recv, n)
        except OSError:
            return None

    def _give_up(self, why: str) -> None:
        """Stop using the server; compile what it still owed here."""
        if why:
            self._log(f"{why}; compiling here from now on")
        self._usable = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            tidy()
        jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            self._compile_here(job)

    def _compile_here(self, job: _Job) -> None:
        self.compiled_here += 1
        job.done(job.lifted.compile())

    def _start(self) -> bool:
        try:
            self._spawn()
        except OSError as e:                # no processes or descriptors left
            self._log(f"cannot start the compile server ({e}); compiling here")
            self._usable = False
            return False
        self._log("compile server started")
        return True

    def _spawn(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = hostpython.command("bttool.runtime.compileserver", str(os.getpid()))   # the pid it watches
        env = hostpython.host_environment()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            mine.close()
            theirs.close()
            raise
        if pid == 0:                       # intermediate child: detach, fork again, leave
            try:
                os.setsid()
                if os.fork() == 0:
                    os.dup2(theirs.fileno(), 0)
                    os.dup2(theirs.fileno(), 1)
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, 2)
                    # none of the guest's descriptors: a pipe's write end
                    # held here would keep its reader from ever seeing EOF
                    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
                    os.execve(argv[0], argv, env)
            finally:
                os._exit(0)
        theirs.close()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:           # the guest ignores SIGCHLD: reaped already
            pass
        self._use(move_high(mine.detach(), self._relocate))

    def _use(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._poller = select.poll()        # (select() cannot take descriptors past 1023)
        self._poller.register(fd, select.POLLIN)

    def _relocate(self, fd: int) -> None:
        """The guest dups onto the socket's number (hostfds.vacate)."""
        if self._sock is None or self._sock.fileno() != fd:
            return
        new = move_high(os.dup(fd), self._relocate)
        self._sock.close()
        hold(fd)
        self._use(new)
