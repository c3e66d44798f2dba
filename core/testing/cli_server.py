"""``python -m portable`` without the interpreter's start-up, for the test box.

Run inside a box (``python -m portable.testing.cli_server SOCKET``), it imports what the CLI
imports, once, then listens on the Unix socket ``SOCKET``. Each connection is one run: a JSON
line ``{"args", "env", "cwd", "input", "timeout"}``; a handler process forks the run, which takes
that environment (exactly), working directory, argument list and standard input, and then does
what ``python -m portable ARGS`` does (:func:`runpy.run_module`, ``sys.exit`` and the
interpreter's usual exit: ``atexit`` handlers, flushed streams). The handler answers with a JSON
line ``{"rc", "out", "err", "timeout"}`` (exit status as :mod:`subprocess` reports it, negative
for a signal; the output's lengths) and the output's bytes. Runs are independent processes, as
many at once as there are connections. The server ends when its standard input closes (the
test process that started it is gone).

:meth:`portable.testing.box.Box.portable` uses it: most box tests run ``portable`` hundreds of
times, and importing it took most of each short run.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import runpy
import select
import signal
import socket
import sys
import time
from typing import Any

__all__ = ["MODULE", "preimport", "serve"]

MODULE = "portable.testing.cli_server"
_CHUNK = 65536


def preimport() -> None:
    """Import the CLI, its verbs, the library and the built-in plugins (not the test tools)."""
    for name in ("click", "pluggy", "jeepney", "jeepney.io.blocking"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    portable = importlib.import_module("portable")
    for info in pkgutil.walk_packages(portable.__path__, "portable."):
        if info.name.startswith(("portable.testing", "portable.__main__")):
            continue
        with contextlib.suppress(Exception):  # an optional dependency missing: imported later
            importlib.import_module(info.name)


def _read_request(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(_CHUNK)
        if not chunk:
            break
        data += chunk
    request: dict[str, Any] = json.loads(data)
    return request


def _collect(
    pid: int, out_fd: int, err_fd: int, timeout: float | None
) -> tuple[int | None, bytes, bytes]:
    """The run's exit status (None: killed after ``timeout``), stdout and stderr."""
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    open_fds = [out_fd, err_fd]
    deadline = None if timeout is None else time.monotonic() + timeout
    while open_fds:
        wait = None if deadline is None else max(deadline - time.monotonic(), 0)
        ready, _, _ = select.select(open_fds, [], [], wait)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, b"".join(chunks[out_fd]), b"".join(chunks[err_fd])
        for fd in ready:
            chunk = os.read(fd, _CHUNK)
            if chunk:
                chunks[fd].append(chunk)
            else:
                open_fds.remove(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks[out_fd]), b"".join(chunks[err_fd])


def _handle(conn: socket.socket) -> dict[str, Any] | None:
    """In the handler process: fork the run. Returns the request in the run, None in the
    handler once it has answered."""
    request = _read_request(conn)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        conn.close()
        for fd in (out_r, err_r, in_w):
            os.close(fd)
        for fd, target in ((in_r, 0), (out_w, 1), (err_w, 2)):
            os.dup2(fd, target)
            os.close(fd)
        return request
    for fd in (out_w, err_w, in_r):
        os.close(fd)
    text = request.get("input")
    if text:
        with contextlib.suppress(BrokenPipeError):
            _write_all(in_w, os.fsencode(text))
    os.close(in_w)
    rc, out, err = _collect(pid, out_r, err_r, request.get("timeout"))
    header = {"rc": rc, "out": len(out), "err": len(err), "timeout": rc is None}
    conn.sendall(json.dumps(header).encode() + b"\n" + out + err)
    conn.close()
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(path: str) -> dict[str, Any] | None:
    """Answer connections on ``path`` until standard input closes. Returns (in a forked run
    only) the request to run; returns None in the server when it is done."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), _CHUNK):
            listener.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        if os.fork() != 0:
            conn.close()
            continue
        # The handler (and, returning from _handle, the run): as a process started afresh.
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        request = _handle(conn)
        if request is None:
            os._exit(0)
        return request


def _run(request: dict[str, Any]) -> None:
    """Become ``python -m portable ARGS`` as the request describes it."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # sys.stdin/stdout/stderr are the server's, on fds 0-2, which are the run's pipes now.
    sys.path[0] = os.getcwd()  # what -m puts first
    sys.argv = ["", *request["args"]]  # [0]: run_module sets the path of portable/__main__.py
    runpy.run_module("portable", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    preimport()
    work = serve(sys.argv[1])
    if work is not None:
        _run(work)
