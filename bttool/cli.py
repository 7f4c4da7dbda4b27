"""bttool's command line: `bttool run`, and the tools around translation."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

import click

from bttool import __version__
from bttool.errors import EXIT_INTERNAL, BttoolError, run_guarded
from bttool.runtime.runend import finish_run


def _fail(msg: str, status: int) -> None:
    click.echo(f"bttool: error: {msg}", err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bttool")
def main() -> None:
    """Run x86-64 programs by binary translation through LLVM."""


def _cpu_model(ctx, param, value: str | None) -> str | None:
    """--cpu: a model name, checked (cpumodel.get), in its canonical spelling."""
    if value is None:
        return None
    from bttool.translator import cpumodel
    try:
        return cpumodel.get(value).name
    except cpumodel.UnknownCpuModel as e:
        raise click.BadParameter(str(e)) from None


_CPU_OPTION = click.option(
    "--cpu", envvar="BTTOOL_CPU", callback=_cpu_model, default=None, metavar="MODEL",
    help="The virtual CPU the guest sees: x86-64-v3 (the default) or x86-64-v2, optionally "
         "with +adx (also BTTOOL_CPU): its CPUID, and SIGILL for instructions it lacks.")


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-v", "--verbose", is_flag=True, help="Describe what the runtime does, on stderr.")
@click.option("--cache-dir", envvar="BTTOOL_CACHE_DIR", type=click.Path(file_okay=False),
              help="Translation cache directory (also BTTOOL_CACHE_DIR).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the translation cache.")
@click.option("--stats", is_flag=True, help="Print a short summary on stderr at exit.")
@click.option("--stats-json", type=click.Path(dir_okay=False), help="Write run statistics as JSON.")
@click.option("--argv0", default=None, help="argv[0] for the guest (default: PROGRAM).")
@click.option("--sysroot", envvar="BTTOOL_SYSROOT", type=click.Path(exists=True, file_okay=False),
              help="Look up the guest's absolute paths (its ELF interpreter, the libraries "
                   "ld.so opens, any file) under this directory first, as qemu-user's -L "
                   "(also BTTOOL_SYSROOT).")
@click.option("--system", is_flag=True,
              help="PROGRAM is a bare-metal kernel to boot on a virtual machine (implied by a "
                   "Multiboot header); ARGS become its command line.")
@click.option("--memory", default="128M", show_default=True, help="System mode: guest RAM size.")
@click.option("--max-resets", type=click.IntRange(0, 10000), default=8, show_default=True,
              help="System mode: guest resets allowed before the run is stopped.")
@_CPU_OPTION
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(verbose: bool, cache_dir: str | None, no_cache: bool, stats: bool,
        stats_json: str | None, argv0: str | None, sysroot: str | None, system: bool, memory: str,
        max_resets: int, cpu: str, program: str, args: tuple[str, ...]) -> None:
    """Run PROGRAM (an x86-64 Linux executable, static or dynamically
    linked) with ARGS, or boot a kernel (--system, or any image with a
    Multiboot header)."""
    t0 = time.perf_counter()
    sig = 0
    from bttool.runtime import selfprofile
    selfprofile.start()
    try:
        from bttool.runtime.programkind import is_multiboot
        if system or is_multiboot(program):
            from bttool.runtime.system.session import parse_memory, run_kernel
            try:
                mem = parse_memory(memory)
            except ValueError as e:     # a usage error (status 2), one line naming the forms
                why = ("is out of range: give 2 MiB to 64 GiB" if "between" in str(e) else
                       "is not a size: give bytes or a number with K, M or G, from 2 MiB to 64 GiB")
                raise click.BadParameter(f"{memory!r} {why} (e.g. 64M, 1G)",
                                         ctx=click.get_current_context(), param_hint="'--memory'") from None
            if not os.path.exists(program):
                _fail(f"{program}: No such file or directory", 127)
            status, st = run_kernel(program, list(args), mem, max_resets,
                                    cache_dir=None if no_cache else cache_dir,
                                    use_cache=not no_cache, verbose=verbose)
        else:
            from bttool.runtime.session import run_program
            status, sig, st = run_program(program, list(args), cache_dir=None if no_cache else cache_dir,
                                          use_cache=not no_cache, verbose=verbose, argv0=argv0,
                                          sysroot_dir=sysroot, cpu=cpu,
                                          end=lambda s, g, r: finish_run(s, g, r, t0, stats, stats_json))
    except BttoolError as e:
        _fail(str(e), e.status)
        return
    finish_run(status, sig, st, t0, stats, stats_json)


def entry(command: Callable[[], None] | None = None) -> None:  # pragma: no cover - console script wrapper
    """The console script: the click group, with bttool's own bugs ended
    as one line and status 125 (errors.run_guarded)."""
    run_guarded(command or main)


@main.command()
@click.option("-v", "--verbose", is_flag=True, help="List instructions that could not be translated.")
@click.option("--cache-dir", envvar="BTTOOL_CACHE_DIR", type=click.Path(file_okay=False),
              help="Translation cache directory (also BTTOOL_CACHE_DIR).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None,
              help="Parallel translation processes (default: number of cores).")
@click.option("--target", "triple", default=None, help="Translate for another host (LLVM triple).")
@click.option("--host-cpu", default=None,
              help="Host CPU name for code generation (with --target: default generic).")
@_CPU_OPTION
@click.option("--opt", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1: quick tier (hot code is re-optimised at run time), 2: full optimisation now.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--deps", is_flag=True,
              help="Also translate the program's ELF interpreter and every shared library it "
                   "needs (resolved as its ld.so would).")
@click.argument("program")
def translate(verbose: bool, cache_dir: str | None, jobs: int | None, triple: str | None,
              host_cpu: str | None, cpu: str | None, opt: int, as_json: bool, deps: bool,
              program: str) -> None:
    """Translate PROGRAM (an executable or a shared library) ahead of time
    into the cache."""
    from bttool.runtime.aot import default_jobs, progress_printer, translate_program
    from bttool.runtime.cache import open_store
    from bttool.translator.loader import load_image
    paths = [program]
    missing: list[str] = []
    try:
        target = _target_for(triple, host_cpu, opt)
        from bttool.runtime import cpuid
        cpuid.select(cpu)
        first = load_image(program)
        if deps and first.interpreter is not None:
            from bttool.runtime.libdeps import resolve
            found = resolve(program)
            paths += ([found.interpreter] if found.interpreter else []) + found.libraries
            missing = found.missing
    except BttoolError as e:
        _fail(str(e), e.status)
        return
    store = open_store(cache_dir, warn=False)
    if store is None:
        _fail(f"cannot open the cache directory {cache_dir or '(default)'}", EXIT_INTERNAL)
    summaries = []
    for path in paths:
        try:
            image = first if path == program else load_image(path)
            s = translate_program(image, store, target, jobs or default_jobs(), progress_printer())
        except BttoolError as e:
            _fail(str(e), e.status)
            return
        summary = {
            "program": path, "target": target.triple, "functions": s.functions,
            "regions_translated": s.regions, "regions_already_cached": s.regions_cached_before,
            "guest_instructions": s.guest_instructions, "jump_tables": s.jump_tables,
            "codemap_entries": s.codemap_entries, "untranslatable_instructions": len(s.untranslatable),
            "failed_regions": len(s.failed_regions), "seconds": round(s.seconds, 3),
            "cache_bytes_added": s.bytes_added,
        }
        summaries.append(summary)
        if not as_json:
            click.echo(f"{path}: {s.functions} functions, {s.regions} regions translated "
                       f"({s.regions_cached_before} already cached), {s.guest_instructions} guest "
                       f"instructions, {len(s.untranslatable)} untranslatable, {s.seconds:.1f} s, "
                       f"{_human(s.bytes_added)} added to the cache [{target.triple}]")
        if verbose:
            for pc, text in sorted(set(s.untranslatable)):
                click.echo(f"  untranslatable {pc:#x}: {text}", err=True)
            for pc, why in s.failed_regions:
                click.echo(f"  region {pc:#x} failed: {why}", err=True)
    for name in missing:
        click.echo(f"bttool: warning: {program} needs {name}, which was not found", err=True)
    if as_json:
        click.echo(json.dumps(summaries[0] if not deps else {"images": summaries, "missing": missing},
                              indent=2, sort_keys=True))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_CPU_OPTION
@click.argument("programs", nargs=-1, required=True)
def coverage(as_json: bool, cpu: str | None, programs: tuple[str, ...]) -> None:
    """List the instructions in the executable sections of PROGRAMS
    (executables or shared libraries) that bttool cannot translate, with
    counts and an example address, and those of features the CPU model
    lacks (SIGILL, as on such a CPU).  Exit status 0 when bttool can
    translate every instruction of the model, 1 when it cannot."""
    from bttool.translator.coverage import lifter_check, scan
    from bttool.translator.loader import load_image
    from bttool.translator.cpumodel import get as cpu_model
    model = cpu_model(cpu)
    lifts = lifter_check(_target_for(None, None, 2), model)
    reports = []
    for path in programs:
        try:
            report = scan(load_image(path), lifts, model)
        except BttoolError as e:
            _fail(str(e), e.status)
            return
        reports.append(report)
        if as_json:
            continue
        share = 100.0 * report.untranslatable / max(report.instructions, 1)
        click.echo(f"{path}: {report.instructions} instructions, {report.untranslatable} untranslatable "
                   f"({share:.2f}%), {report.outside_model} of features {model.name} lacks, "
                   f"{report.undecodable} bytes undecodable")
        if report.gaps:
            click.echo(_table([[str(g.count), g.mnemonic, g.reason, f"{g.example:#x}", g.text]
                               for g in report.gaps], ["count", "instruction", "why", "example", ""]))
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in reports], indent=2))
    if any(r.untranslatable for r in reports):
        sys.exit(1)


def _target_for(triple: str | None, cpu: str | None, opt: int):
    from bttool.ir import codegen
    host = codegen.host_target(opt)
    if triple is None or triple == host.triple:
        if cpu is None:
            return host
        return codegen.Target(host.triple, cpu, "", opt)
    target = codegen.Target(triple, cpu or "generic", "", opt)
    try:
        codegen.target_machine(target)
    except RuntimeError as e:
        raise BttoolError(f"unknown target {triple}: {e}") from None
    return target


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@main.group()
@click.option("--cache-dir", envvar="BTTOOL_CACHE_DIR", type=click.Path(file_okay=False),
              help="Translation cache directory (also BTTOOL_CACHE_DIR).")
@click.pass_context
def cache(ctx: click.Context, cache_dir: str | None) -> None:
    """Inspect and maintain the translation cache."""
    ctx.obj = cache_dir


def _store(ctx: click.Context, create: bool = False):
    """The cache (None when there is none).  A damaged index is rebuilt
    here as in a run, with its one warning; `cache verify` opens it itself."""
    from bttool.runtime.cache import CacheError, CacheStore, resolve_cache_dir
    root = resolve_cache_dir(ctx.obj)
    try:
        return CacheStore(root, create=create)
    except CacheError as e:
        if not create and not os.path.lexists(os.path.join(root, "index.sqlite")):
            return None
        _fail(str(e), EXIT_INTERNAL)
    except Exception as e:  # sqlite3 errors, OSError
        _fail(f"cache {root}: {e}", EXIT_INTERNAL)


def _writable_store(ctx: click.Context):
    """The cache for a command that changes it: a read-only one is an error."""
    store = _store(ctx)
    if store is not None and store.readonly:
        _fail(f"cache {store.root} is read-only", EXIT_INTERNAL)
    return store


def _image_sha(program: str) -> str:
    import hashlib
    try:
        with open(program, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        _fail(f"{program}: {e.strerror}", 127 if isinstance(e, FileNotFoundError) else 126)
        return ""


@cache.command("ls")
@click.option("--image", "program", help="Only regions of this program.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cache_ls(ctx: click.Context, program: str | None, as_json: bool) -> None:
    """One row per cached region."""
    from bttool.runtime.cache_inspect import list_regions
    store = _store(ctx)
    rows = list_regions(store, _image_sha(program) if program else None) if store else []
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    click.echo(_table([[r["key"][:12], os.path.basename(r["image_path"]),
                        f"{r['guest_start']:#x}-{r['guest_end']:#x}", r["insn_count"], r["host_bytes"],
                        r["triple"], _when(r["created"]), _when(r["last_used"]), r["hits"]] for r in rows],
                      ["KEY", "IMAGE", "GUEST RANGE", "INSNS", "HOST BYTES", "TARGET", "CREATED",
                       "LAST USED", "HITS"]))


@cache.command("show")
@click.argument("ident")
@click.option("--image", "program", help="Interpret IDENT as a guest address in this program.")
@click.option("--section", type=click.Choice(["guest", "ir", "host"]), multiple=True,
              help="Only these sections (repeatable).")
@click.option("--optimised", is_flag=True,
              help="Show the IR after the target's optimisation passes (run again as the "
                   "compilation ran them) instead of the IR the passes started from.")
@click.pass_context
def cache_show(ctx: click.Context, ident: str, program: str | None, section: tuple[str, ...],
               optimised: bool) -> None:
    """Guest code, LLVM IR and host code of one cached region (KEY or ADDRESS --image)."""
    from bttool.ir.stencil import is_stitched_listing
    from bttool.runtime.cache_inspect import find_region, guest_disassembly, host_disassembly, source_ir
    from bttool.runtime.memory import PIE_BASE
    store = _store(ctx)
    try:
        region = find_region(store, ident, _image_sha(program) if program else None, PIE_BASE) \
            if store else None
    except ValueError:
        _fail(f"{ident}: not a key or an address", EXIT_INTERNAL)
        return
    if region is None:
        _fail(f"no cached region for {ident}", 1)
        return
    sections = section or ("guest", "ir", "host")
    click.echo(f"region {region['key'][:16]}  {os.path.basename(region['image_path'])}  entry "
               f"{region['entry']:#x}  {region['insn_count']} insns  {region['host_bytes']} host bytes  "
               f"[{region['triple']}]")
    if "guest" in sections:
        click.echo("\n== guest code ==")
        click.echo(guest_disassembly(region))
    if "ir" in sections:
        text = source_ir(store, region, optimised)
        if text is not None and is_stitched_listing(text):
            click.echo("\n== stencils (its host code was stitched from them, not compiled) ==")
        else:
            click.echo(f"\n== LLVM IR ({'optimised, ' if optimised else ''}the module its host code "
                       "was compiled from) ==")
        click.echo(text if text is not None else "(IR missing or corrupt)")
    if "host" in sections:
        click.echo(f"\n== host code ({region['symbol']}) ==")
        click.echo(host_disassembly(store, region))


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cache_stats(ctx: click.Context, as_json: bool) -> None:
    """Entries, bytes, images, hits and misses by target."""
    from bttool.runtime.cache_inspect import stats
    store = _store(ctx)
    st = stats(store) if store else {"directory": None, "entries": 0, "objects": 0, "bytes": 0,
                                     "ir_bytes": 0, "images": 0, "hits": 0, "misses": 0, "dropped": 0,
                                     "read_only": False, "by_target": {}}
    if as_json:
        click.echo(json.dumps(st, indent=2, sort_keys=True))
        return
    click.echo(f"cache {st['directory']}: {st['entries']} regions in {st['objects']} objects, "
               f"{_human(st['bytes'])} (and {_human(st['ir_bytes'])} of their IR), {st['images']} images, "
               f"{st['hits']} hits, {st['misses']} misses, "
               f"{st['dropped']} corrupt entries dropped" + (" (read-only)" if st["read_only"] else ""))
    rows = [[t["triple"], t["regions"], t["guest_instructions"], t["host_code_bytes"],
             t.get("hits", 0), t.get("misses", 0)] for t in st["by_target"].values()]
    if rows:
        click.echo(_table(rows, ["TARGET", "REGIONS", "GUEST INSNS", "HOST BYTES", "HITS", "MISSES"]))


@cache.command("verify")
@click.option("--repair", is_flag=True, help="Remove what is wrong (rebuild a damaged index).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cache_verify(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Run SQLite's integrity check and every checksum; exit 0 only when
    all is sound (with --repair: when what is left is sound)."""
    from bttool.runtime.cache_inspect import verify
    store, problems = _store_to_verify(ctx, repair)
    if store is not None:
        problems += verify(store, repair)
    remaining = problems
    if repair and problems:
        remaining = verify(store) if store is not None and not store.disabled else problems
    if as_json:
        click.echo(json.dumps([{"what": p.what, "detail": p.detail} for p in problems], indent=2))
    else:
        for p in problems:
            click.echo(f"{p.what}: {p.detail}" + (" (repaired)" if repair and p not in remaining else ""))
        if not problems:
            click.echo("cache is sound")
        elif repair and not remaining:
            click.echo(f"{len(problems)} problem(s) repaired; cache is sound")
        else:
            click.echo(f"{len(remaining)} problem(s)")
    sys.exit(1 if remaining else 0)


def _store_to_verify(ctx: click.Context, repair: bool):
    """(store or None, problems found opening it): a damaged index is a
    problem to report, rebuilt only with --repair."""
    from bttool.runtime.cache import CacheDamaged, CacheError, CacheStore, resolve_cache_dir
    from bttool.runtime.cache_inspect import Problem
    root = resolve_cache_dir(ctx.obj)
    if not os.path.lexists(os.path.join(root, "index.sqlite")):
        return None, []
    try:
        return CacheStore(root, create=False, repair=False, warn=None), []
    except CacheDamaged as e:
        problem = Problem("index", str(e))
    except (CacheError, OSError) as e:
        return None, [Problem("index", str(e))]
    if not repair:
        return None, [problem]
    try:
        store = CacheStore(root, create=False, repair=True, warn=None)
    except (CacheError, OSError):
        return None, [problem]
    return store, [problem]


@cache.command("clear")
@click.pass_context
def cache_clear(ctx: click.Context) -> None:
    """Remove every cached translation."""
    store = _writable_store(ctx)
    if store:
        store.clear()
        store.compact()
    click.echo("cache cleared")


@cache.command("gc")
@click.option("--max-size", required=True, help="Keep at most this much (e.g. 500M, 2G).")
@click.pass_context
def cache_gc(ctx: click.Context, max_size: str) -> None:
    """Evict least-recently-used translations down to --max-size."""
    from bttool.runtime.cache import parse_size
    try:
        limit = parse_size(max_size)
    except ValueError:
        _fail(f"bad size {max_size!r}", EXIT_INTERNAL)
        return
    store = _writable_store(ctx)
    n, freed = store.gc(limit) if store else (0, 0)
    if store and n:
        store.compact()
    click.echo(f"evicted {n} objects, {_human(freed)} freed; {_human(store.total_size() if store else 0)} kept")
