"""bttool's command line: `bttool run`, and the tools around translation."""
from __future__ import annotations

import json
import os
import sys
import time

import click

from bttool import __version__
from bttool.errors import EXIT_INTERNAL, BttoolError


def _fail(msg: str, status: int) -> None:
    click.echo(f"bttool: error: {msg}", err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bttool")
def main() -> None:
    """Run x86-64 programs by binary translation through LLVM."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-v", "--verbose", is_flag=True, help="Describe what the runtime does, on stderr.")
@click.option("--cache-dir", envvar="BTTOOL_CACHE_DIR", type=click.Path(file_okay=False),
              help="Translation cache directory (also BTTOOL_CACHE_DIR).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the translation cache.")
@click.option("--stats", is_flag=True, help="Print a short summary on stderr at exit.")
@click.option("--stats-json", type=click.Path(dir_okay=False), help="Write run statistics as JSON.")
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(verbose: bool, cache_dir: str | None, no_cache: bool, stats: bool,
        stats_json: str | None, program: str, args: tuple[str, ...]) -> None:
    """Run PROGRAM (a static x86-64 Linux executable) with ARGS."""
    from bttool.runtime.session import run_program
    t0 = time.perf_counter()
    try:
        status, sig, st = run_program(program, list(args), cache_dir=None if no_cache else cache_dir,
                                      use_cache=not no_cache, verbose=verbose)
    except BttoolError as e:
        _fail(str(e), e.status)
        return
    wall = time.perf_counter() - t0
    summary = {
        "regions_translated": st.regions_translated,
        "regions_from_cache": st.regions_from_cache,
        "guest_instructions_translated": st.guest_instructions_translated,
        "translate_seconds": round(st.translate_seconds, 6),
        "cache_load_seconds": round(st.cache_load_seconds, 6),
        "exits_to_python": st.exits_to_python,
        "syscalls": st.syscalls,
        "untranslatable_instructions": len(st.untranslatable),
        "wall_seconds": round(wall, 6),
        "exit_status": status,
        "signal": sig,
    }
    if stats:
        click.echo("bttool: " + ", ".join(f"{k}={v}" for k, v in summary.items()), err=True)
    if stats_json:
        try:
            with open(stats_json, "w") as f:
                json.dump(summary, f, indent=2, sort_keys=True)
        except OSError as e:
            click.echo(f"bttool: warning: cannot write {stats_json}: {e.strerror}", err=True)
    if sig:
        from bttool.runtime.hostsignals import die_with_signal
        die_with_signal(sig)
    sys.exit(status)


def entry() -> None:  # pragma: no cover - console script wrapper
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug in bttool: one line, not a traceback
        if os.environ.get("BTTOOL_DEBUG"):
            raise
        click.echo(f"bttool: internal error: {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_INTERNAL)
