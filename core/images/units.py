"""Finding the unit files an image offers (spec 2.3).

The image's own system unit search path is scanned in order; the first file of a given name wins
(so the image's ``/etc`` beats its ``/usr/lib``). Only portable unit types are taken, only names
matching the prefixes, only regular files or symlinks, never empty files; drop-in directories
shipped in the image are ignored, as systemd ignores them.

An *alias* is left out: a symlink to a unit file of another name in one of the image's unit
directories (``/etc/systemd/system/redis.service -> /lib/systemd/system/redis-server.service``,
as enabling a unit with ``Alias=`` makes it; systemd's rule in unit_file_resolve_symlink()).
Attached, it would be a second, separate copy of the same service; ``attach --enable`` makes the
alias from the unit's ``Alias=``, pointing at the attached unit. A symlink to a file outside the
unit directories is a linked unit file, read under the link's name, as systemd loads it.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

from portable.errors import BadImage
from portable.images.confined import UnsafePath, list_dir, read_file, resolve_dir, resolve_path
from portable.plugin.types import UnitFile
from portable.systemd.host import UNIT_SEARCH_PATH
from portable.systemd.names import (
    is_portable_unit_type,
    is_valid_unit_name,
    unit_matches,
    unit_type,
)

__all__ = ["MAX_UNIT_SIZE", "discover_units"]

MAX_UNIT_SIZE = 1024 * 1024  # unit files are small; a larger one is hostile or broken


def discover_units(root_fd: int, prefixes: Sequence[str], *, image: str) -> list[UnitFile]:
    """Unit files in the image whose names match ``prefixes`` (``["-"]``: all), sorted by name.

    :param root_fd: ``O_PATH`` descriptor of the image's root tree.
    :param image: the image path, for error messages.
    :raises BadImage: a matching unit file is a symlink loop, a FIFO or device, or too large.
    """
    found: dict[str, UnitFile] = {}
    aliases: set[str] = set()  # an alias hides a file of its name further down, as in systemd
    unit_dirs = _unit_dirs(root_fd)
    for unit_dir in UNIT_SEARCH_PATH:
        try:
            with resolve_dir(root_fd, unit_dir) as opened:
                if opened is None:
                    continue
                dir_fd, resolved_dir = opened
                entries = [
                    (name, _readlink(dir_fd, name) if kind == "symlink" else None)
                    for name, kind in sorted(list_dir(dir_fd))
                    if kind != "other"
                    and is_valid_unit_name(name)
                    and is_portable_unit_type(name)
                    and unit_matches(name, prefixes)
                ]
        except UnsafePath:
            continue  # a unit directory that is a symlink loop: skipped, as systemd does
        for name, target in entries:
            if name in found or name in aliases:
                continue
            if target and _is_alias(root_fd, resolved_dir, name, target, unit_dirs):
                aliases.add(name)
                continue
            source = f"{resolved_dir.rstrip('/')}/{name}"
            try:
                read = read_file(root_fd, source, max_size=MAX_UNIT_SIZE)
            except UnsafePath as exc:
                raise BadImage(f"unit file '{name}' in image '{image}' {exc.reason}") from None
            if read is None or not read.data:
                continue  # dangling inside the image, or empty: skipped, as systemd does
            found[name] = UnitFile(name=name, source=source, resolved=read.path, data=read.data)
    return [found[n] for n in sorted(found)]


def _readlink(dir_fd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None  # gone or replaced meanwhile: read_file decides


def _unit_dirs(root_fd: int) -> set[str]:
    """The image's unit directories, resolved inside it."""
    out = set()
    for unit_dir in UNIT_SEARCH_PATH:
        try:
            resolved = resolve_path(root_fd, unit_dir)
        except UnsafePath:
            continue
        if resolved is not None:
            out.add(resolved)
    return out


def _is_alias(root_fd: int, unit_dir: str, name: str, target: str, unit_dirs: set[str]) -> bool:
    """Is the symlink ``unit_dir/name`` (to ``target``) an alias: does it point at a unit of
    the same type and another name in (or below) one of the image's unit directories? Its
    directory is resolved inside the image, as systemd's chase() resolves all but the last
    component. A target that is no such unit name is no alias (systemd ignores the link):
    read_file follows it, and says so if it loops."""
    absolute = target if target.startswith("/") else f"{unit_dir.rstrip('/')}/{target}"
    head, tail = posixpath.split(absolute)
    if tail == name or not is_valid_unit_name(tail) or unit_type(tail) != unit_type(name):
        return False
    try:
        directory = resolve_path(root_fd, head or "/")
    except UnsafePath:
        return False  # a loop: read_file says so
    if directory is None:
        return False
    return any(directory == d or directory.startswith(d.rstrip("/") + "/") for d in unit_dirs)
