"""Which images are attached, read from the host's files (spec 3.11, 5.2).

The only record of an attach is the first line of ``<unit>.d/20-portable.conf`` in the attached
directory: the marker naming the image (and extensions). This module reads those markers, so
units attached by systemd's portablectl and by us are seen alike. Whether a unit is enabled or
running comes from the service manager, through a :class:`ManagerView` when one is available.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple, Protocol

from portable.systemd.host import ATTACHED_DIR, Host
from portable.systemd.names import is_valid_unit_name, marker_matches_image, parse_marker

__all__ = [
    "STATES",
    "AttachedUnit",
    "ManagerView",
    "all_attached_units",
    "attached_units",
    "image_state",
    "read_marker_line",
    "recorded_profile",
]

STATES = (
    "detached",
    "attached",
    "attached-runtime",
    "enabled",
    "enabled-runtime",
    "running",
    "running-runtime",
)
MARKER_FILE = "20-portable.conf"
_MAX_MARKER_LINE = 64 * 1024


class ManagerView(Protocol):
    """What the state logic needs from the service manager (PID 1)."""

    def unit_file_state(self, unit: str) -> str:
        """``enabled``, ``disabled``, ``static``, ``linked``, ... as ``systemctl`` reports."""
        ...

    def is_active(self, unit: str) -> bool:
        """True if the unit (for a template: any instance) is activating/active/reloading/
        deactivating."""
        ...


# A NamedTuple, not a dataclass (~0.4 ms to build): every attach and detach imports this module.
class AttachedUnit(NamedTuple):
    """A unit in an attached directory whose drop-in carries a marker."""

    name: str
    runtime: bool
    marker: tuple[str, ...]  # image path, then extension paths
    has_unit_file: bool  # False for drop-in-only leftovers (e.g. after ``disable``)


def read_marker_line(path: os.PathLike[str] | str) -> str | None:
    """The first line of a ``20-portable.conf`` (bounded read, never follows a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, _MAX_MARKER_LINE)
    finally:
        os.close(fd)
    return head.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")


def recorded_profile(host: Host, dropin: str) -> str | None:
    """The profile a ``10-profile.conf`` (path on the host, ``dropin``) came from: its
    symlink's directory name (``.../strict/service.conf``), or the name in the first line of a
    copy (``# The "strict" ...``, as systemd's and our profiles begin); ``"(copied)"`` for a
    copy with another first line, ``None`` when there is no such file."""
    local = host.path(dropin)
    try:
        target = os.readlink(local)
    except OSError:
        target = ""
    if target:
        return os.path.basename(os.path.dirname(target)) or None
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO named like a drop-in would block
            return None
        head = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    first = head.decode("utf-8", "surrogateescape").splitlines()[:1]
    if first and first[0].startswith('# The "'):
        return first[0].split('"')[1]
    return "(copied)" if first else None


def _read_marker(path: os.PathLike[str] | str) -> tuple[str, ...] | None:
    line = read_marker_line(path)
    parsed = parse_marker(line) if line is not None else None
    return tuple(parsed) if parsed else None


def attached_units(host: Host, runtime: bool) -> Iterator[AttachedUnit]:
    """Every marked unit in the persistent (or runtime) attached directory (spec 4.2 step 1)."""
    where = host.path(ATTACHED_DIR[runtime])
    try:
        entries = sorted(os.listdir(where))
    except (FileNotFoundError, NotADirectoryError):
        return
    names = set(entries)
    seen: set[str] = set()
    for entry in entries:
        unit = entry[:-2] if entry.endswith(".d") else entry
        if unit in seen or not is_valid_unit_name(unit):
            continue
        seen.add(unit)
        marker = _read_marker(str(where / f"{unit}.d" / MARKER_FILE))
        if marker is None:
            continue
        has_file = False
        if unit in names:
            try:
                mode = os.lstat(where / unit).st_mode
                has_file = stat.S_ISREG(mode) or stat.S_ISLNK(mode)
            except OSError:
                pass
        yield AttachedUnit(name=unit, runtime=runtime, marker=marker, has_unit_file=has_file)


def all_attached_units(host: Host) -> dict[bool, list[AttachedUnit]]:
    """The marked units of the persistent (``False``) and runtime (``True``) directories."""
    return {runtime: list(attached_units(host, runtime)) for runtime in (False, True)}


def image_state(
    image: str,
    *,
    host: Host,
    extensions: Sequence[str] = (),
    manager: ManagerView | None = None,
    attached: Mapping[bool, Sequence[AttachedUnit]] | None = None,
) -> str:
    """The attach state of an image (name or path), one of :data:`STATES` (spec 5.2).

    The persistent directory is looked at first, the runtime one only if nothing was found
    there. Without a ``manager`` (``--root``), ``enabled`` and ``running`` can't be known and
    the answer is at most ``attached``. ``attached``: both directories' units as
    :func:`all_attached_units` read them, for callers asking about many images (``list``).
    """
    for runtime in (False, True):
        found = enabled = running = False
        units = attached[runtime] if attached is not None else attached_units(host, runtime)
        for unit in units:
            if not unit.has_unit_file:
                continue
            if not marker_matches_image(unit.marker, image, extensions, match_all=False):
                continue
            found = True
            if manager is not None:
                if manager.unit_file_state(unit.name) not in (
                    "static",
                    "disabled",
                    "linked",
                    "linked-runtime",
                    "",
                ):
                    enabled = True
                if manager.is_active(unit.name):
                    running = True
        if found:
            state = "running" if running else "enabled" if enabled else "attached"
            return f"{state}-runtime" if runtime else state
    return "detached"
