"""Finding the unit files an image offers (spec 2.3).

The image's own system unit search path is scanned in order; the first file of a given name wins
(so the image's ``/etc`` beats its ``/usr/lib``). Only portable unit types are taken, only names
matching the prefixes, only regular files or symlinks, never empty files; drop-in directories
shipped in the image are ignored, as systemd ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence

from portable.confined import UnsafePath, list_dir, read_file, resolve_dir
from portable.errors import BadImage
from portable.host import UNIT_SEARCH_PATH
from portable.names import is_portable_unit_type, is_valid_unit_name, unit_matches
from portable.types import UnitFile

__all__ = ["MAX_UNIT_SIZE", "discover_units"]

MAX_UNIT_SIZE = 1024 * 1024  # unit files are small; a larger one is hostile or broken


def discover_units(root_fd: int, prefixes: Sequence[str], *, image: str) -> list[UnitFile]:
    """Unit files in the image whose names match ``prefixes`` (``["-"]``: all), sorted by name.

    :param root_fd: ``O_PATH`` descriptor of the image's root tree.
    :param image: the image path, for error messages.
    :raises BadImage: a matching unit file is a symlink loop, a FIFO or device, or too large.
    """
    found: dict[str, UnitFile] = {}
    for unit_dir in UNIT_SEARCH_PATH:
        try:
            with resolve_dir(root_fd, unit_dir) as opened:
                if opened is None:
                    continue
                dir_fd, resolved_dir = opened
                entries = list_dir(dir_fd)
        except UnsafePath:
            continue  # a unit directory that is a symlink loop: skipped, as systemd does
        for name, kind in sorted(entries):
            if name in found or kind == "other":
                continue
            if not (is_valid_unit_name(name) and is_portable_unit_type(name)):
                continue
            if not unit_matches(name, prefixes):
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
