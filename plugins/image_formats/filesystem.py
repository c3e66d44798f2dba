"""Bare file system images (erofs, ext4, btrfs, xfs), referenced with ``RootImage=``.

A file that holds just a file system, no partition table, is the whole root tree (spec 1.2,
layout 1). Recognised by the file system's magic; whether it can be read depends on the kernel
having that file system (a one-line error says so otherwise). ext2 and ext3 images are mounted
with the ext4 driver, as the kernel does for them anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path

from portable.plugin import ImageFormat, hookimpl

from .probe import identify
from .raw import describe_filesystem, open_filesystem

_KINDS = {
    "erofs": "an erofs file system image (RootImage=)",
    "ext4": "an ext2/ext3/ext4 file system image (RootImage=)",
    "btrfs": "a btrfs file system image (RootImage=)",
    "xfs": "an xfs file system image (RootImage=)",
}


def _detect(fstype: str, path: Path) -> bool:
    return identify(path) == fstype


FORMATS = tuple(
    ImageFormat(
        name=fstype,
        description=description,
        image_type="raw",
        detect=partial(_detect, fstype),
        open=partial(open_filesystem, fstype=fstype),
        root_setting="RootImage",
        suffixes=(".raw",),
        extra={"details": describe_filesystem},
    )
    for fstype, description in _KINDS.items()
)


@hookimpl
def portable_image_formats() -> Iterable[ImageFormat]:
    return list(FORMATS)
