"""A separate process that compiles LLVM IR text to object code, so that the
runtime can compile tier-2 regions while the guest keeps running.

Why a process and not a thread: llvmlite serialises every call into LLVM
behind one global lock, and an O2 pass run is a single call of up to a few
hundred milliseconds; a compiling thread would stall every tier-1
translation (and loading of objects) of the main thread for that long.

Protocol (both directions over one socket, little-endian):
  request: job id u64, payload length u32, payload =
           JSON target fields, NUL, LLVM IR text (UTF-8)
  reply:   job id u64, status u8 (0 ok, 1 error), seconds f64, length u32,
           then the object file (ok) or an error message (error)

The process ends at once when its client is gone, whatever killed it
(kill -9 included): at end of input or a broken socket (the reader thread
exits the process, abandoning queued and running compilations: nobody is
left to take them), and when the client's process ends (watched through a
pidfd, in case a copy of the client's socket outlived it).  PR_SET_PDEATHSIG
cannot serve here: the server is a grandchild started through an
intermediate process that exits at once (runtime/background.py), so its
parent is never the client.  The client is runtime/background.py.
"""
from __future__ import annotations

import json
import os
import queue
import select
import struct
import sys
import threading
import time
from typing import BinaryIO, Callable

REQUEST = struct.Struct("<QI")
REPLY = struct.Struct("<QBdI")
OK, ERROR = 0, 1


def encode_request(job: int, target_fields: dict, ir_text: str) -> bytes:
    payload = json.dumps(target_fields).encode() + b"\0" + ir_text.encode()
    return REQUEST.pack(job, len(payload)) + payload


def read_exact(read: Callable[[int], bytes], n: int) -> bytes | None:
    """n bytes from ``read`` (a file's read or a socket's recv), or None at
    end of input (a short read means the peer died)."""
    chunks = []
    while n:
        b = read(n)
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _read_requests(inp: BinaryIO, jobs: "queue.Queue[tuple[int, bytes] | None]") -> None:
    """Reader thread: keeps the request pipe drained while the main thread
    compiles, so the client's writes never wait for a compilation.  At end
    of input, or when reading fails (ECONNRESET: the client died with
    replies unread), the client is gone and the process ends now."""
    try:
        while True:
            hdr = read_exact(inp.read, REQUEST.size)
            if hdr is None:
                break
            job, n = REQUEST.unpack(hdr)
            payload = read_exact(inp.read, n)
            if payload is None:
                break
            jobs.put((job, payload))
    except (OSError, ValueError):
        pass
    os._exit(0)


def _watch_client(pid: int) -> None:
    """Watcher thread: end the process when the client process ``pid``
    ends (a pidfd becomes readable then; without pidfds, a poll every
    second)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os._exit(0)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except OSError:
            pass
        time.sleep(1)


def serve(inp: BinaryIO, out: BinaryIO, client: int | None = None) -> None:
    """Compile requests from ``inp`` until the client is gone; ``client``:
    the client's pid, watched."""
    jobs: queue.Queue = queue.Queue()
    threading.Thread(target=_read_requests, args=(inp, jobs), daemon=True).start()
    if client is not None:
        threading.Thread(target=_watch_client, args=(client,), daemon=True).start()
    from bttool.ir.codegen import Target, compile_module
    while (item := jobs.get()) is not None:
        job, payload = item
        t0 = time.perf_counter()
        try:
            meta, ir_text = payload.split(b"\0", 1)
            obj, _ = compile_module(ir_text.decode(), Target(**json.loads(meta)))
            status, data = OK, obj
        except Exception as e:  # noqa: BLE001 - reported to the client, which recompiles
            status, data = ERROR, f"{type(e).__name__}: {e}".encode()
        try:
            out.write(REPLY.pack(job, status, time.perf_counter() - t0, len(data)) + data)
            out.flush()
        except OSError:         # the client is gone
            os._exit(0)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[1]) if len(sys.argv) > 1 else None)
