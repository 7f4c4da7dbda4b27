"""What a dynamically linked program will load, found without running it:
its ELF interpreter and every shared library it needs, resolved the way the
guest's ld.so resolves them (``bttool translate --deps``).

The search follows ld.so(8) for a program that is not set-user-ID: the
needing object's DT_RPATH (when it has no DT_RUNPATH), ``LD_LIBRARY_PATH``,
its DT_RUNPATH, the directories of /etc/ld.so.conf (with its ``include``
lines), then the default directories.  ``$ORIGIN`` is the needing object's
directory.  A library that cannot be found is reported, not guessed.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

DEFAULT_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
                "/lib", "/usr/lib"]


@dataclass
class Dependencies:
    interpreter: str | None = None
    libraries: list[str] = field(default_factory=list)     # resolved paths, load order
    missing: list[str] = field(default_factory=list)       # DT_NEEDED names not found


def _dynamic(path: str) -> tuple[list[str], list[str], list[str], str | None, int]:
    """(needed, rpath dirs, runpath dirs, interpreter, e_machine) of an ELF file."""
    import lief
    lief.logging.disable()
    elf = lief.ELF.parse(path)
    if elf is None:
        raise ValueError(f"{path}: not an ELF file")
    needed, rpath, runpath = [], [], []
    for entry in elf.dynamic_entries:
        tag = entry.tag
        if tag == lief.ELF.DynamicEntry.TAG.NEEDED:
            needed.append(entry.name)
        elif tag == lief.ELF.DynamicEntry.TAG.RPATH:
            rpath += entry.rpath.split(":") if entry.rpath else []
        elif tag == lief.ELF.DynamicEntry.TAG.RUNPATH:
            runpath += entry.runpath.split(":") if entry.runpath else []
    interp = elf.interpreter if elf.has_interpreter else None
    return needed, rpath, runpath, interp, int(elf.header.machine_type)


def ld_so_conf_dirs(conf: str = "/etc/ld.so.conf", _seen: set | None = None) -> list[str]:
    """Directories listed in ld.so.conf, following ``include`` globs."""
    seen = _seen if _seen is not None else set()
    if conf in seen:
        return []
    seen.add(conf)
    out: list[str] = []
    try:
        with open(conf) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include"):
            pattern = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.dirname(conf), pattern)
            for inc in sorted(glob.glob(pattern)):
                out += ld_so_conf_dirs(inc, seen)
        else:
            out.append(line)
    return out


def _expand(dirs: list[str], origin: str) -> list[str]:
    return [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in dirs if d]


def resolve(program: str, env: dict[str, str] | None = None) -> Dependencies:
    """The interpreter and libraries ``program`` needs, breadth first as
    ld.so loads them."""
    env = os.environ if env is None else env
    needed, rpath, runpath, interp, machine = _dynamic(program)
    deps = Dependencies(interpreter=interp)
    ld_library_path = [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d]
    system_dirs = ld_so_conf_dirs() + DEFAULT_DIRS
    loaded: dict[str, str] = {}                  # soname -> path
    queue = [(name, program, rpath, runpath) for name in needed]
    while queue:
        name, needer, n_rpath, n_runpath = queue.pop(0)
        if name in loaded or name in deps.missing:
            continue
        origin = os.path.dirname(os.path.abspath(needer))
        if "/" in name:
            candidates = [name]
        else:
            dirs = (_expand(n_rpath, origin) if not n_runpath else []) + ld_library_path \
                + _expand(n_runpath, origin) + system_dirs
            candidates = [os.path.join(d, name) for d in dirs]
        path = None
        for cand in candidates:
            if not os.path.isfile(cand):
                continue
            try:
                sub = _dynamic(cand)
            except (ValueError, OSError):
                continue
            if sub[4] != machine:
                continue                          # a library for another machine: ld.so skips it
            path = cand
            break
        if path is None:
            deps.missing.append(name)
            continue
        loaded[name] = path
        deps.libraries.append(os.path.realpath(path))
        sub_needed, sub_rpath, sub_runpath, _, _ = _dynamic(path)
        queue += [(n, path, sub_rpath, sub_runpath) for n in sub_needed]
    if interp is not None:
        deps.libraries = [p for p in deps.libraries if p != os.path.realpath(interp)]
    return deps
