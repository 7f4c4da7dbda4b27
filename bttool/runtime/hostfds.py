"""bttool's own descriptors, kept out of the guest's way.

A linux-user guest shares bttool's descriptor table: its ``open`` gets the
lowest free number, and its ``dup2`` may name any number.  So bttool's own
descriptors (the cache database with its WAL and shared-memory files, the
compile server's socket) live near the top of the descriptor limit: the
guest's first ``open`` returns 3 as it does natively, and a ``dup2`` onto a
low number (a shell's ``exec 3>file``) cannot make the cache write its
pages into the guest's file (``samples/descriptors.c``).  The numbers up
there are the guest's only if it asks for them by number.

A guest may still name them: a daemon closes every descriptor, a shell's
``exec 1000>file`` dup2s onto one.  So bttool's descriptors are registered
here (``register``, and whatever ``opening_high`` opens), and the system
calls treat them as Linux treats a descriptor the guest never opened: close
and every other use are EBADF, close_range passes over them, and a dup2 or
dup3 onto one first moves bttool's file elsewhere (``vacate``: its owner's
relocation callback reopens it at another number) so the guest gets the
number and the cache keeps working.

With soft = hard RLIMIT_NOFILE (``ulimit -n N``) there is no room above the
guest's limit, so bttool's descriptors take the highest free numbers below
it (``move_high``, ``opening_high``, ``tidy``): every number the guest could
still get is below all of bttool's, so its descriptors are the ones it gets
natively, in order.  When one of its calls finds no free number while bttool
holds some (EMFILE), bttool gives all of them back (``give_back``: the cache
index is closed, the compile server dropped, the spares released once every
module bttool could still import lazily is loaded) and the call is tried
again: the guest gets the top numbers in order, and EMFILE where Linux gives
it.  The run goes on without a cache from then on.
"""
from __future__ import annotations

import errno
import fcntl
import os
import resource
from contextlib import contextmanager
from typing import Callable, Iterator

# fd -> ((st_dev, st_ino) when registered, relocation callback or None)
_own: dict[int, tuple[tuple[int, int], Callable[[int], None] | None]] = {}
# every file (st_dev, st_ino) a registered descriptor ever had
_files: set[tuple[int, int]] = set()


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def register(fd: int, relocate: Callable[[int], None] | None = None) -> None:
    """``fd`` is bttool's; ``relocate(fd)``, when given, reopens or moves
    whatever uses it to another number (the guest wants ``fd``)."""
    ident = _identity(fd)
    if ident is not None:
        _own[fd] = (ident, relocate)
        _files.add(ident)


def is_own(fd: int) -> bool:
    """Whether ``fd`` is one of bttool's open descriptors."""
    entry = _own.get(fd)
    if entry is None:
        return False
    if _identity(fd) != entry[0]:       # closed (or replaced) by bttool itself
        del _own[fd]
        return False
    return True


def own() -> list[int]:
    """bttool's open descriptors, ascending."""
    return sorted(fd for fd in list(_own) if is_own(fd))


def vacate(fd: int) -> bool:
    """Free bttool's descriptor ``fd`` for the guest, which is about to dup
    onto it: its owner's relocation callback moves it elsewhere (calling
    ``hold(fd)`` once it has closed it, so that nothing it reopens lands
    there again), and a placeholder (/dev/null) holds the number until the
    guest's dup replaces it.  False when ``fd`` has no owner able to move.
    When the guest holds every other number (soft = hard RLIMIT_NOFILE),
    there is nowhere to move: bttool gives all its descriptors back
    (give_back), as when the guest finds no free number."""
    entry = _own.get(fd)
    if entry is None or entry[1] is None:
        return False
    if guest_limit is None and not _highest_free() and give_back() and not is_own(fd):
        hold(fd)
        return True
    try:
        entry[1](fd)
    except Exception:           # noqa: BLE001 -- the owner could not move
        pass
    if is_own(fd):
        return False
    hold(fd)
    tidy()          # what the owner closed and did not reopen there
    return True


def hold(fd: int) -> None:
    """Put a placeholder at ``fd`` if it is free (for relocation callbacks:
    between closing their descriptors and reopening them, so the reopened
    files avoid the number the guest wants)."""
    try:
        os.fstat(fd)
        return
    except OSError:
        pass
    _own.pop(fd, None)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    if null != fd:
        os.dup2(null, fd, inheritable=False)
        os.close(null)


def _open_fds() -> set[int]:
    try:
        return {int(n) for n in os.listdir("/proc/self/fd")}
    except OSError:
        return set()


def close_on_exec() -> None:
    """What an execve does to the descriptor table, for an execve served in
    this host process (runtime/execinplace.py): the guest's close-on-exec
    descriptors are closed; bttool's own stay open (they are not the
    guest's, and the run goes on using them)."""
    for fd in sorted(_open_fds()):
        if is_own(fd):
            continue
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            continue            # the listing's own descriptor, closed by now
        if flags & fcntl.FD_CLOEXEC:
            try:
                os.close(fd)
            except OSError:
                pass


# Descriptors bttool adds above the guest's RLIMIT_NOFILE when the hard
# limit leaves room (make_room): its own files, and whatever a lazy import or
# an execve's handoff opens while the guest holds every number it may.
ROOM = 64
# Above this guest limit bttool's descriptors stay below 1024 (opening_high
# would need one placeholder per number below them).
ROOM_MAX_LIMIT = 4096
# The environment variable that carries the guest's soft limit across a
# guest execve (the new bttool starts with the raised one).
GUEST_NOFILE_ENV = "BTTOOL_GUEST_NOFILE"

# The guest's soft RLIMIT_NOFILE when bttool raised its own above it
# (make_room), else None (bttool's descriptors count against the guest's).
guest_limit: int | None = None


def make_room() -> None:
    """Before the guest starts: when the hard RLIMIT_NOFILE allows, raise
    bttool's soft limit ROOM above the guest's, so that bttool's own
    descriptors live at numbers the guest cannot get (the guest keeps every
    number below its limit, and EMFILE where Linux gives it: the system
    calls refuse numbers at or above ``guest_limit``).  A guest execve's
    bttool finds the guest's limit in GUEST_NOFILE_ENV.  With soft = hard
    (``ulimit -n N`` sets both) nothing can be raised; bttool's few
    descriptors then sit at the top of the guest's range and count against
    it."""
    global guest_limit
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inherited = os.environ.get(GUEST_NOFILE_ENV, "")
    if inherited.isdigit() and int(inherited) <= soft:
        guest = int(inherited)          # a guest execve: already raised for this guest
    else:
        guest = soft
    room = guest + ROOM if hard == resource.RLIM_INFINITY else min(hard, guest + ROOM)
    if guest > ROOM_MAX_LIMIT or room <= guest:
        os.environ.pop(GUEST_NOFILE_ENV, None)
        if guest <= ROOM_MAX_LIMIT:     # a table the guest may well fill
            _keep_spares()
        return
    if room > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (room, hard))
        except (OSError, ValueError):
            _keep_spares()
            return
    guest_limit = guest
    os.environ[GUEST_NOFILE_ENV] = str(guest)


# Placeholder descriptors bttool holds when it has no room above the guest's
# limit, given up for a moment when one of bttool's own lazy imports finds no
# free number (guard_imports).
SPARES = 2
# The spares give_back keeps where descriptors cannot be parked across an
# exec (runtime/fdpark.py): the bttool an execve starts needs that many.
EXEC_SPARES = 4
_spares: list[int] = []


def _keep_spares() -> None:
    """Hold SPARES placeholders high up and let bttool's imports use them
    (guard_imports): a module bttool imports lazily (the translator on the
    first new code, the decoder on the way to a fault) must load even when
    the guest holds every other number."""
    while len(_spares) < SPARES:
        try:
            fd = move_high(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), _relocate_spare)
        except OSError:
            break
        _spares.append(fd)
    guard_imports()


def _relocate_spare(fd: int) -> None:
    """The guest dups onto spare ``fd`` (vacate): the spare moves to
    another number, or is given up when there is none."""
    _spares.remove(fd)
    try:
        new = high_copy(fd, anywhere=True)
    except OSError:
        new = None
    os.close(fd)
    _own.pop(fd, None)
    hold(fd)
    if new is not None:
        register(new, _relocate_spare)
        _spares.append(new)


@contextmanager
def spares_released() -> Iterator[None]:
    """bttool's spare descriptors are free inside this block, and taken
    again at the same numbers after it (dup2 needs no free number)."""
    for fd in _spares:
        os.close(fd)
        _own.pop(fd, None)
    try:
        yield
    finally:
        kept = []
        try:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            null = -1           # the block kept what it opened: the spares are gone
        if null >= 0:
            for fd in _spares:
                if fd != null and _identity(fd) is not None:
                    continue        # what the block opened and kept took it
                if fd != null:
                    os.dup2(null, fd, inheritable=False)
                register(fd, _relocate_spare)
                kept.append(fd)
            if null not in _spares:
                os.close(null)
        _spares[:] = kept


def guard_imports() -> None:
    """An import that fails for want of a descriptor (EMFILE, ENFILE) is
    tried once more with the spares released, instead of ending the run."""
    import builtins
    original = builtins.__import__
    if getattr(original, "_bttool_guard", False):
        return

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        try:
            return original(name, globals, locals, fromlist, level)
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE) or not _spares:
                raise
        with spares_released():
            return original(name, globals, locals, fromlist, level)
    guarded._bttool_guard = True
    builtins.__import__ = guarded


# -- giving bttool's descriptors back to the guest ------------------------------

# What gives its descriptors up when the guest needs them (give_back): the
# cache index, the compile server's connection.
_give_back_hooks: list[Callable[[], None]] = []
# Whether give_back closed a descriptor that no hook closed (an SQLite
# connection a forked child inherited, which must never be used again).
swept_foreign = False
# Modules that bttool imports only when it needs them (translating, a fault
# on the way to a signal, an execve): loaded before the spares go.
PRELOAD_PACKAGES = ("bttool.translator", "bttool.translator.semantics", "bttool.ir", "bttool.runtime")
PRELOAD_SKIP = {"bttool.runtime.aot", "bttool.runtime.libdeps", "bttool.runtime.cache_inspect",
                "bttool.runtime.execstart"}
PRELOAD_OTHERS = ("capstone", "capstone.x86_const", "llvmlite.ir", "llvmlite.binding", "mmap",
                  "marshal", "json", "socket", "select", "dataclasses", "traceback")


def on_give_back(hook: Callable[[], None]) -> None:
    """``hook()`` closes descriptors of bttool's when the guest needs their
    numbers (give_back)."""
    _give_back_hooks.append(hook)


def holding() -> bool:
    """Whether bttool holds descriptors that the guest could otherwise get
    (below the soft limit, and no room kept above the guest's)."""
    if guest_limit is not None:
        return False
    soft = _soft()
    return any(fd < soft for fd in own())


def give_back() -> bool:
    """The guest found no free descriptor (EMFILE) while bttool holds some:
    give them all up, so that the guest's call, tried again, gets the
    numbers it gets natively.  The hooks close the cache index and the
    compile server's connection; every module bttool could still import
    lazily is loaded (the spares help while they last); then the spares and
    whatever else is registered are closed.  Whether anything was freed."""
    global swept_foreign
    before = own()
    if not before:
        return False
    for hook in list(_give_back_hooks):
        try:
            hook()
        except Exception:       # noqa: BLE001 -- a hook that fails leaves its descriptors to the sweep
            pass
    preload()
    # without a way to park descriptors across an exec (runtime/fdpark.py),
    # some spares stay: the bttool an execve starts needs room
    try:
        from bttool.runtime import fdpark
        keep = 0 if fdpark.available() else EXEC_SPARES
    except OSError:             # not loaded, and no room to load it
        keep = EXEC_SPARES
    for fd in _spares[keep:]:
        try:
            os.close(fd)
        except OSError:
            pass
        _own.pop(fd, None)
    del _spares[keep:]
    for fd in own():
        if fd in _spares:
            continue
        swept_foreign = True
        try:
            os.close(fd)
        except OSError:
            pass
        _own.pop(fd, None)
    return len(own()) < len(before)


_preloaded = False


def preload() -> None:
    """Import every module bttool might import lazily later (while bttool
    still has descriptors to spare: a lazy import needs one)."""
    global _preloaded
    if _preloaded:
        return
    import sys
    for pkg in PRELOAD_PACKAGES:
        try:
            __import__(pkg)
            names = sorted(os.listdir(sys.modules[pkg].__path__[0]))
        except (ImportError, OSError, AttributeError, IndexError):
            continue
        for name in names:
            mod = f"{pkg}.{name[:-3]}"
            if name.endswith(".py") and name != "__init__.py" and mod not in PRELOAD_SKIP:
                try:
                    __import__(mod)
                except Exception:   # noqa: BLE001 -- not importable here: not needed either
                    pass
    for mod in PRELOAD_OTHERS:
        try:
            __import__(mod)
        except Exception:           # noqa: BLE001
            pass
    try:
        # what is read from files once, on first use
        from bttool.translator import decoder, identity, registry
        registry.table()                    # the semantic families
        identity.translator_identity()      # a digest of the translator's sources
        decoder.reg_table()
        decoder._cs(32)
        from llvmlite.binding import ffi
        ffi.lib._name                       # llvmlite loads its library on first use
    except Exception:                       # noqa: BLE001
        pass
    _preloaded = True


def set_guest_limit(soft: int, hard: int) -> int:
    """The guest's setrlimit of RLIMIT_NOFILE to (soft, hard) (the kernel's
    unsigned values, 2**64-1 for infinity) while bttool keeps room above
    the guest's limit: the host's soft limit becomes soft + ROOM (within
    ``hard``), or soft itself when it is too high to keep room above
    (ROOM_MAX_LIMIT); 0 or the negative errno Linux would give."""
    global guest_limit
    if soft > hard:
        return -errno.EINVAL
    inf = (1 << 64) - 1
    keep_room = soft <= ROOM_MAX_LIMIT
    room = soft if not keep_room else soft + ROOM if hard == inf else min(hard, soft + ROOM)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, tuple(resource.RLIM_INFINITY if v == inf else v
                                                         for v in (room, hard)))
    except ValueError:
        return -errno.EPERM         # a hard limit raised without the privilege
    except OSError as e:
        return -(e.errno or errno.EPERM)
    if keep_room:
        guest_limit = soft
        os.environ[GUEST_NOFILE_ENV] = str(soft)
    else:
        guest_limit = None
        os.environ.pop(GUEST_NOFILE_ENV, None)
    return 0


def floor() -> int:
    """Where bttool's descriptors start: at the guest's limit when make_room
    made room above it; else near the top of the soft limit (a quarter of
    it, at most 64 below it), or below 1024 (the usual soft limit) when it
    is higher, so that opening_high never needs more than about a thousand
    placeholders, and the guest's first descriptors are the ones it gets
    natively even under a tiny limit.  (Under a limit up to ROOM_MAX_LIMIT
    with no room above the guest's, ``at_top``, descriptors go to the
    highest free numbers instead.)"""
    if guest_limit is not None:
        return max(3, guest_limit)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    top = min(soft, 1024)
    return max(3, top - min(64, top // 4))


def _soft() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft


def at_top() -> bool:
    """Whether bttool's descriptors take the highest free numbers below the
    soft limit: no room above the guest's limit (soft = hard), and a limit
    small enough for the guest to fill (up to ROOM_MAX_LIMIT; opening_high
    holds one placeholder per number below)."""
    return guest_limit is None and _soft() <= ROOM_MAX_LIMIT


def is_free(fd: int) -> bool:
    """Whether no descriptor is open at number ``fd`` (asks without opening one)."""
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return True
    return False


def _highest_free(count: int = 1) -> list[int]:
    """The ``count`` highest free numbers below the soft limit, highest
    first (fewer when there are not that many)."""
    out: list[int] = []
    fd = _soft() - 1
    while fd >= 0 and len(out) < count:
        if is_free(fd):
            out.append(fd)
        fd -= 1
    return out


def scarce() -> bool:
    """Whether fewer numbers are free than the cache's index needs
    (RESERVE): opening it failed for want of descriptors."""
    return len(_highest_free(RESERVE)) < RESERVE


def move_high(fd: int, relocate: Callable[[int], None] | None = None) -> int:
    """``fd`` moved to floor() or above (``at_top``: to the highest free
    number), close-on-exec (itself if that fails), and registered as
    bttool's (see ``register``)."""
    new = high_copy(fd)
    if new is None:
        new = fd
    else:
        os.close(fd)
    register(new, relocate)
    return new


def high_copy(fd: int, cloexec: bool = True, anywhere: bool = False) -> int | None:
    """A duplicate of ``fd`` at floor() or above (``at_top``: at the highest
    free number, when that is above ``fd`` or ``anywhere``); None when there
    is none."""
    if at_top():
        top = _highest_free()
        if not top or top[0] <= fd and not anywhere:
            return None
        os.dup2(fd, top[0], inheritable=not cloexec)
        return top[0]
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC if cloexec else fcntl.F_DUPFD, floor())
    except OSError:
        return None


# Free numbers opening_high leaves to the code inside it at the top (at_top):
# SQLite's database, WAL and shared-memory files, the index's lock file, and
# one more; what they leave unused is filled (tidy).
RESERVE = 5


@contextmanager
def opening_high(relocate: Callable[[int], None] | None = None, reserve: int = RESERVE) -> Iterator[None]:
    """Descriptors opened inside this block get numbers from floor() up
    (``at_top``: the ``reserve`` highest free numbers), for code that opens
    files itself (SQLite): every free number below is held by a placeholder
    meanwhile (~1 ms for a limit of 1024).  They are registered as bttool's,
    with ``relocate`` (see ``register``)."""
    if at_top():
        top = _highest_free(reserve)
        lo = top[-1] if top else _soft()
    else:
        lo = floor()
    before = _open_fds()
    held: list[int] = []
    try:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        while fd < lo:
            held.append(fd)
            fd = os.dup(fd)
        os.close(fd)
    except OSError:
        pass            # out of descriptors: the block opens where it can
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        now = _open_fds()
        for fd in now - before:
            if fd >= lo:
                register(fd, relocate)
        # SQLite may keep a closed connection's descriptor and reuse it for
        # the next (its "unused" descriptors): a number that was there
        # before, on one of bttool's files, is bttool's too
        for fd in now & before:
            if fd >= lo and fd not in _own and _identity(fd) in _files:
                register(fd, relocate)
        tidy()


def tidy() -> None:
    """Keep every number the guest may still get below all of bttool's
    (``at_top``): a free number above the lowest of bttool's descriptors (a
    file bttool closed, a slot opening_high reserved and nothing used) gets
    a spare placeholder, which bttool gives back with the rest (give_back).
    Without it the guest's next descriptor would be that number, where it
    natively gets a lower one."""
    if not at_top():
        return
    mine = own()
    if not mine:
        return
    for fd in range(mine[0] + 1, _soft()):
        if is_free(fd):
            _add_spare(fd)


def _add_spare(fd: int) -> None:
    """A placeholder at free number ``fd``, kept as a spare."""
    source = next((s for s in _spares if _identity(s) is not None), None)
    try:
        if source is not None:
            os.dup2(source, fd, inheritable=False)
        else:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if null != fd:
                os.dup2(null, fd, inheritable=False)
                os.close(null)
    except OSError:
        return
    register(fd, _relocate_spare)
    _spares.append(fd)


@contextmanager
def standard_fds_held() -> Iterator[None]:
    """Descriptors 0, 1 and 2 that are free are held by placeholders inside
    this block, for bttool's SQLite calls.  SQLite never keeps a database
    file at 0-2: when an open returns one of them, it closes it and opens
    /dev/null there for good (its unix VFS, ``robust_open``), so a guest
    that had just closed its stdin found /dev/null in its place, and tar's
    ``close(0); dup(fd) == 0`` check aborted (issue 15).  Three fcntl calls
    per use."""
    held: list[int] = []
    for fd in (0, 1, 2):
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))  # lowest free: fd
            except OSError:
                break
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
