"""bttool's own error types and the exit statuses they map to.

Convention of env(1) and timeout(1): 125 for bttool's own failures, 126 for a
program that cannot be run, 127 for a program that is not there.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

EXIT_INTERNAL = 125
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127


class BttoolError(Exception):
    """An error reported as one line ``bttool: error: ...``."""
    status = EXIT_INTERNAL


class CannotRun(BttoolError):
    status = EXIT_CANNOT_RUN


class NotFound(BttoolError):
    status = EXIT_NOT_FOUND


class ExecFault(BttoolError):
    """Linux accepts the file but kills the program during the exec itself,
    past its point of no return (fs/exec.c: SIGSEGV): bttool ends killed
    by the same signal."""
    signal = 11
    status = 128 + 11


def run_guarded(command: Callable[[], None]) -> None:
    """Run ``command`` (a console entry point) so that a bug in bttool ends
    it with one line and status 125, not a traceback; ^C is status 130.
    ``BTTOOL_DEBUG=1`` lets the traceback through."""
    try:
        command()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug in bttool: one line, not a traceback
        if os.environ.get("BTTOOL_DEBUG"):
            raise
        print(f"bttool: internal error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERNAL)
