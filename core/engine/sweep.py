"""The sweep every attach, detach and reattach starts with, under the host lock: roll back what
a killed run left (:func:`portable.engine.transaction.recover`), drop empty drop-in directories.

(Its own module, so that attach does not import :mod:`portable.engine.detach` for it.)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from portable.engine.transaction import recover
from portable.images.unpacked import sweep_staging
from portable.systemd.host import ATTACHED_DIR, PORTABLES_DIR, UNPACK_DIR, Host

__all__ = ["sweep"]


def sweep(host: Host, *, runtime: bool) -> None:
    """Roll back what a killed run left (see :func:`portable.engine.transaction.recover`), then drop
    empty drop-in directories of units that no longer exist and an empty attached directory
    (never a directory with anything in it)."""
    where = host.path(ATTACHED_DIR[runtime])
    recover(host.path(PORTABLES_DIR[runtime]))
    recover(host.path(UNPACK_DIR[runtime]))
    sweep_staging(host, runtime=runtime)
    recover(where)
    try:
        entries = os.listdir(where)
    except OSError:
        return
    for entry in entries:
        d = where / entry
        if not entry.endswith(".d") or d.is_symlink() or not d.is_dir():
            continue
        recover(d)
        if not os.path.lexists(where / entry[:-2]):
            _rmdir_quiet(d)
    _rmdir_quiet(where)


def _rmdir_quiet(d: Path) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(d)
