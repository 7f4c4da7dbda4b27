"""The guest's own RLIMIT_AS and RLIMIT_DATA (issue 24).

A guest's setrlimit/prlimit64 of these must not limit bttool itself (LLVM,
Python and the guest window live in the same host process, and the window
alone is far larger than any limit a program sets), so, as RLIMIT_NOFILE is
(runtime/hostfds.py), they are kept here: getrlimit returns them, and the
guest's mmap, mremap and brk get ENOMEM where Linux would give it for the
guest's own usage (``GuestMemory.usage``: its mappings, the stack as Linux
shows it), which is what Linux counts (may_expand_vm: total_vm against
RLIMIT_AS; data_vm, private writable non-stack pages, against RLIMIT_DATA;
brk's check_data_rlimit).  bttool's own soft limits are raised to the hard
ones at start (it never lowers them); fork copies these, and a guest execve
passes them on (``exec_options["rlimits"]``).
"""
from __future__ import annotations

import errno
import resource

RLIMIT_DATA, RLIMIT_AS = 2, 9
RESOURCES = (RLIMIT_DATA, RLIMIT_AS)
INF = (1 << 64) - 1
CAP_SYS_RESOURCE = 24

# resource -> (soft, hard), the kernel's unsigned values (INF for infinity);
# empty until start()
_limits: dict[int, tuple[int, int]] = {}


def _kernel(v: int) -> int:
    return INF if v == resource.RLIM_INFINITY else v


def _host(v: int) -> int:
    return resource.RLIM_INFINITY if v >= INF else v


def start(inherited: dict | None = None) -> None:
    """Before the guest starts: its limits are the ones bttool inherited
    (or ``inherited``, what the guest that called execve had); bttool's own
    soft limits go up to the hard ones, so that only the guest is held to
    its soft limit."""
    _limits.clear()
    for res in RESOURCES:
        soft, hard = resource.getrlimit(res)
        mine = inherited.get(res) if inherited else None
        _limits[res] = (int(mine[0]), int(mine[1])) if mine else (_kernel(soft), _kernel(hard))
        if soft != hard:
            try:
                resource.setrlimit(res, (hard, hard))
            except (OSError, ValueError):
                pass


def managed(res: int) -> bool:
    return res & 0xFFFFFFFF in _limits


def get(res: int) -> tuple[int, int]:
    return _limits[res & 0xFFFFFFFF]


def soft(res: int) -> int:
    """The guest's soft limit, INF when not set (or not started)."""
    v = _limits.get(res)
    return INF if v is None else v[0]


def for_exec() -> dict:
    return dict(_limits)


def _has_cap_sys_resource() -> bool:
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def set_limit(res: int, soft_v: int, hard_v: int) -> int:
    """The guest's setrlimit of ``res`` to (soft, hard): as Linux checks it
    (EINVAL for soft above hard, EPERM for a hard limit raised without
    CAP_SYS_RESOURCE); the host's hard limit is raised along when the new
    one is higher (never lowered).  0 or the negative errno."""
    res &= 0xFFFFFFFF
    if soft_v > hard_v:
        return -errno.EINVAL
    if hard_v > _limits[res][1] and not _has_cap_sys_resource():
        return -errno.EPERM
    host_soft, host_hard = resource.getrlimit(res)
    if _kernel(host_hard) < hard_v:
        try:
            resource.setrlimit(res, (_host(hard_v), _host(hard_v)))
        except (OSError, ValueError):
            return -errno.EPERM
    _limits[res] = (soft_v, hard_v)
    return 0
