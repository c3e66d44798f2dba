"""The crash switch of the crash sweeps: SIGKILL the process at the N-th step of its transaction.

A sweep runs a command with ``kill_at_step(N)`` for N = 1, 2, ... until it runs through, and
checks after each kill that a re-run recovers. The library has no switch for this: the counter
is installed only in the process under test (a child forked by :func:`helpers.runners.fork_cli`,
or :mod:`helpers.crash_run` run in a box), by wrapping what
:class:`portable.engine.transaction.Transaction` calls to change the file system.

A step is one change of the file system, and the process dies just before it:

- ``Transaction.mkdir``: creating the directory (``os.mkdir`` called from it);
- ``Transaction.write`` / ``symlink`` / ``remove``: creating the temporary or the backup (the
  ``_make_holder`` that comes first, called from them);
- ``Transaction._place``: moving a finished temporary into place (keeping a backup);
- ``Transaction.commit``: removing each emptied directory (``os.rmdir`` called from it).

Calls from elsewhere (a holder directory for a long name, a rollback, a directory removed
quietly) are not steps. The caller is told apart by its code object, so a rename in the
transaction shows as a sweep with fewer steps than it asserts.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

from portable.engine import transaction

__all__ = ["STEP_KINDS", "count_steps", "kill_at_step"]

STEP_KINDS = ("mkdir", "write", "symlink", "remove", "place", "commit")


def count_steps(on_step: Callable[[str], None]) -> Callable[[], None]:
    """Call ``on_step(kind)`` just before each step of every transaction of this process;
    returns a function that undoes it (the sweeps never need to: the process ends)."""
    tx = transaction.Transaction
    makers: dict[CodeType, str] = {
        tx.write.__code__: "write",
        tx.symlink.__code__: "symlink",
        tx.remove.__code__: "remove",
    }
    mkdir_code, commit_code = tx.mkdir.__code__, tx.commit.__code__
    real_mkdir, real_rmdir = os.mkdir, os.rmdir
    real_make_holder, real_place = transaction._make_holder, tx._place

    def mkdir(path: Any, mode: int = 0o777, *args: Any, **kw: Any) -> None:
        if sys._getframe(1).f_code is mkdir_code:
            on_step("mkdir")
        real_mkdir(path, mode, *args, **kw)

    def rmdir(path: Any, *args: Any, **kw: Any) -> None:
        if sys._getframe(1).f_code is commit_code:
            on_step("commit")
        real_rmdir(path, *args, **kw)

    def make_holder(temp: Any) -> None:
        kind = makers.get(sys._getframe(1).f_code)
        if kind is not None:
            on_step(kind)
        real_make_holder(temp)

    def place(self: Any, *args: Any, **kw: Any) -> None:
        on_step("place")
        real_place(self, *args, **kw)

    os.mkdir, os.rmdir = mkdir, rmdir  # type: ignore[assignment]
    transaction._make_holder = make_holder
    tx._place = place  # type: ignore[method-assign]

    def undo() -> None:
        os.mkdir, os.rmdir = real_mkdir, real_rmdir
        transaction._make_holder = real_make_holder
        tx._place = real_place  # type: ignore[method-assign]

    return undo


def kill_at_step(n: int) -> None:
    """SIGKILL this process just before the ``n``-th step (1-based) of its transactions."""
    seen = 0

    def on_step(kind: str) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            os.kill(os.getpid(), signal.SIGKILL)

    count_steps(on_step)
