"""Ways to run ``portable`` in tests.

- :func:`run_main`: its ``main()`` in this process, output from ``capsys``;
- :func:`fork_cli`: its ``main()`` in a forked child of this process (the real CLI without the
  interpreter's start-up, for sweeps that run it hundreds of times);
- :func:`fork_run`: the same with stdout, as a ``CompletedProcess`` (:func:`cli_root`: with
  ``--root``);
- :class:`BoxCli`: the same inside a box, through a resident Python process there;
- :func:`box_crash_run`: ``portable`` in a box as a process of its own, killed at a step.

``crash_at=N`` kills the command at the N-th step of its transaction (:mod:`helpers.crash`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Unpack

import pytest

from helpers.crash import kill_at_step
from portable.cli import main
from portable.testing.box import BOX_ENV, Box, RunOptions

__all__ = [
    "CRASH_RUN",
    "BoxCli",
    "box_crash_run",
    "cli_root",
    "fork_cli",
    "fork_run",
    "fork_run_bytes",
    "run_main",
    "run_main_int",
]

# tests/: what the box's resident process puts on sys.path to import these helpers
TESTS = Path(__file__).resolve().parent.parent


def _preimport() -> None:
    """Import what ``portable`` runs once, here, not in every forked child."""
    from portable.cli import COMMANDS
    from portable.plugin.registry import make_registry

    for module, _ in COMMANDS.values():
        importlib.import_module(module)
    for module in ("attach", "detach", "reattach", "state"):
        importlib.import_module(f"portable.engine.{module}")
    for module in ("inspect", "listing"):
        importlib.import_module(f"portable.images.{module}")
    make_registry(load_entrypoints=False)  # imports the built-in plugins


def _fork(
    args: list[str],
    env: dict[str, str] | None,
    timeout: float,
    crash_at: int | None,
    cwd: str | os.PathLike[str] | None = None,
    unset: tuple[str, ...] = (),
) -> tuple[int, bytes, bytes]:
    """Exit status (``-N`` for a signal), stdout and stderr of the console script's ``main()``
    with ``sys.argv`` = ``portable ARGS``, in a child with ``env`` added to its environment
    (``unset`` taken out), in ``cwd``, standard input from /dev/null."""
    _preimport()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            os.environ.update(env or {})
            for name in unset:
                os.environ.pop(name, None)
            time.tzset()  # TZ as the run's environment says, as at a process's start
            if cwd is not None:
                os.chdir(cwd)
            if crash_at is not None:
                kill_at_step(crash_at)
            sys.argv = ["portable", *args]
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()  # as the interpreter would, and exit 1
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    open_fds = [out_r, err_r]
    deadline = time.monotonic() + timeout
    try:
        while open_fds:
            ready, _, _ = select.select(open_fds, [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"portable {args!r} hung")
            for fd in ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    chunks[fd].append(chunk)
                else:
                    open_fds.remove(fd)
    finally:
        os.close(out_r)
        os.close(err_r)
    _, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return rc, b"".join(chunks[out_r]), b"".join(chunks[err_r])


def fork_cli(
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    *,
    crash_at: int | None = None,
) -> tuple[int, bytes]:
    """Run ``portable ARGS`` (its ``main()``) in a forked child: the real CLI without the
    interpreter's start-up, for sweeps that run it hundreds of times. ``env`` is added to the
    child's environment; ``crash_at``: SIGKILL it at that step (:func:`helpers.crash.kill_at_step`).
    Returns the exit status (``-N`` for a signal) and stderr; stdout is discarded."""
    rc, _, err = _fork(args, env, timeout, crash_at)
    return rc, err


def fork_run(
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    *,
    crash_at: int | None = None,
    cwd: str | os.PathLike[str] | None = None,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """:func:`fork_cli` with stdout and stderr, decoded as ``subprocess.run(..., text=True)``
    does; ``cwd``: the working directory; ``unset``: variables taken out of the environment.
    A run longer than ``timeout`` is killed and raises :class:`TimeoutError`."""
    rc, out, err = _fork(args, env, timeout, crash_at, cwd, unset)
    return subprocess.CompletedProcess(["portable", *args], rc, _text(out), _text(err))


def cli_root(
    root: str | os.PathLike[str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``portable --root ROOT ARGS`` on the forking runner (:func:`fork_run`)."""
    return fork_run(["--root", str(root), *args], timeout=timeout)


def fork_run_bytes(
    args: list[str],
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    *,
    cwd: str | os.PathLike[str] | None = None,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    """:func:`fork_run` with the output as bytes (``subprocess.run`` without ``text``)."""
    rc, out, err = _fork(args, env, timeout, None, cwd, unset)
    return subprocess.CompletedProcess(["portable", *args], rc, out, err)


def _text(data: bytes) -> str:
    """As ``subprocess.run(..., text=True)`` decodes (UTF-8 here, newlines translated)."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


_SERVER = """
import json, sys
sys.path.insert(0, {tests!r})
from helpers.runners import fork_cli
for line in sys.stdin:
    req = json.loads(line)
    try:
        rc, err = fork_cli(req["args"], req["env"], req["timeout"], crash_at=req["crash_at"])
    except TimeoutError as exc:
        rc, err = -1000, str(exc).encode()
    print(json.dumps({{"rc": rc, "stderr": err.decode("utf-8", "replace")}}), flush=True)
"""


class BoxCli:
    """``portable`` run inside a box by a resident Python process that forks a child per
    command (see :func:`fork_cli`): the same ``main()`` as ``python -m portable``, without
    paying the interpreter's start-up for each of the hundreds of runs of a crash sweep."""

    def __init__(self, box: Box) -> None:
        self._proc = subprocess.Popen(
            [
                shutil.which("nsenter") or "nsenter",
                "--all",
                f"--target={box.leader_pid}",
                "--wdns=/",
                "--",
                str(box.python_executable),
                "-c",
                _SERVER.format(tests=str(TESTS)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(BOX_ENV),
            text=True,
        )

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
        crash_at: int | None = None,
    ) -> tuple[int, str]:
        """Exit status (``-9``: SIGKILLed) and stderr of ``portable ARGS``; ``crash_at``: killed
        at that step (:func:`helpers.crash.kill_at_step`)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        req = {"args": list(args), "env": env or {}, "timeout": timeout, "crash_at": crash_at}
        self._proc.stdin.write(json.dumps(req) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the portable server in the box died (status {self._proc.poll()})")
        reply = json.loads(line)
        if reply["rc"] == -1000:
            raise TimeoutError(reply["stderr"])
        return int(reply["rc"]), str(reply["stderr"])

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> BoxCli:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CRASH_RUN = Path(__file__).resolve().parent / "crash_run.py"


def box_crash_run(
    box: Box, crash_at: int, args: list[str], **kw: Unpack[RunOptions]
) -> subprocess.CompletedProcess[str]:
    """``python -m portable ARGS`` in ``box`` as a process of its own, SIGKILLed at step
    ``crash_at`` (:mod:`helpers.crash_run`); keyword arguments as for ``Box.run``."""
    return box.python([str(CRASH_RUN), str(crash_at), *args], **kw)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """``main(args)`` in this process: its exit code (``SystemExit.code``), stdout, stderr."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def run_main_int(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """:func:`run_main` with the exit code as a number (``None``: 0)."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err
