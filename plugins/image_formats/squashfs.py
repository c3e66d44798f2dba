"""squashfs image files, referenced with ``RootImage=``: the usual portable service image.

Recognised by the squashfs magic, whatever the file is called (systemd requires ``*.raw`` and
rejects anything else with "Wrong medium type"); found by name as ``NAME.raw`` in the search
path. Read through a read-only loop device and a private read-only mount (see
:func:`portable.plugin.mount_image`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from portable.plugin import ImageFormat, hookimpl

from .probe import identify
from .raw import describe_filesystem, open_filesystem


def _detect(path: Path) -> bool:
    return identify(path) == "squashfs"


SQUASHFS = ImageFormat(
    name="squashfs",
    description="a squashfs file system image (RootImage=)",
    image_type="raw",
    detect=_detect,
    open=partial(open_filesystem, fstype="squashfs"),
    root_setting="RootImage",
    suffixes=(".raw",),
    extra={"details": describe_filesystem},
)


@hookimpl
def portable_image_formats() -> Iterable[ImageFormat]:
    return [SQUASHFS]
