"""What the built-in raw image formats share: opening a file system image read-only.

Not a plugin itself; :mod:`.squashfs`, :mod:`.filesystem` and :mod:`.gpt` build on it (and so
can third-party formats). An image is opened by attaching a read-only loop device and mounting
its file system read-only, nosuid, nodev, noexec, detached from every mount namespace
(:func:`portable.plugin.mount_image`); both are released when the ``with`` block ends, whatever
happens. The mounting code is looked up when an image is opened (``plugin.mount_image``), so
commands that open none (list, detach, is-attached) don't load it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from portable import plugin
from portable.plugin import BadImage

from .probe import filesystem_at, filesystem_size, open_image_file

__all__ = ["check_size", "describe_filesystem", "open_checked", "open_filesystem"]


def check_size(fd: int, fstype: str, *, image: str, offset: int = 0, available: int) -> None:
    """Refuse a file system that claims more bytes than there are (a truncated image)."""
    needed = filesystem_size(fd, fstype, offset)
    if needed is not None and needed > available:
        raise BadImage(
            f"Image '{image}' is truncated: its {fstype} file system needs {needed} bytes, "
            f"only {available} are there"
        )


def open_checked(path: Path) -> tuple[int, int]:
    """The image file opened for reading (:func:`.probe.open_image_file`) and its size; a
    :class:`BadImage` if it is not a regular file."""
    fd = open_image_file(path)
    if fd is None:
        raise BadImage(f"Image '{path}' is not a regular file")
    return fd, os.fstat(fd).st_size


@contextmanager
def open_filesystem(path: Path, fstype: str) -> Iterator[Path]:
    """Mount the bare ``fstype`` file system image ``path``; yield its root."""
    fd, size = open_checked(path)
    try:
        if filesystem_at(fd) != fstype:
            raise BadImage(f"Image '{path}' no longer holds a {fstype} file system")
        check_size(fd, fstype, image=str(path), available=size)
    finally:
        os.close(fd)
    with plugin.mount_image(path, [("", fstype, 0, 0)]) as root:
        yield root


def describe_filesystem(path: Path) -> dict[str, Any]:
    """Facts for ``inspect --json``: the file system and its size."""
    fd = open_image_file(path)
    if fd is None:
        return {}
    try:
        fstype = filesystem_at(fd)
        info: dict[str, Any] = {"filesystem": fstype}
        if fstype is not None:
            info["filesystem_size"] = filesystem_size(fd, fstype)
        return info
    finally:
        os.close(fd)
