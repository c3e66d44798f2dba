"""squashfs image files, referenced with ``RootImage=``: the usual portable service image.

Recognised by the squashfs magic, whatever the file is called (systemd requires ``*.raw`` and
rejects anything else with "Wrong medium type"); found by name as ``NAME.raw`` in the search
path. Read through a read-only loop device and a private read-only mount (see
:mod:`portable.images.loopdev`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from portable.plugin.hookspecs import hookimpl
from portable.plugin.types import ImageFormat

from .probe import identify


def _detect(path: Path) -> bool:
    return identify(path) == "squashfs"


# Mounting code (ctypes...) is imported only when an image is opened: commands that open none
# (list, detach, is-attached) don't pay for it.
@contextmanager
def _open(path: Path) -> Iterator[Path]:
    from .raw import open_filesystem

    with open_filesystem(path, "squashfs") as root:
        yield root


def _details(path: Path) -> dict[str, Any]:
    from .raw import describe_filesystem

    return describe_filesystem(path)


SQUASHFS = ImageFormat(
    name="squashfs",
    description="a squashfs file system image (RootImage=)",
    image_type="raw",
    detect=_detect,
    open=_open,
    root_setting="RootImage",
    suffixes=(".raw",),
    extra={"details": _details},
)


@hookimpl
def portable_image_formats() -> Iterable[ImageFormat]:
    return [SQUASHFS]
