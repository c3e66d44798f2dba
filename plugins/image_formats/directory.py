"""The directory image format: a plain OS tree, referenced with ``RootDirectory=``.

systemd calls these images of type ``directory``. Nothing to mount: the tree is read in place
(every path inside it resolved with symlinks confined to it, see :mod:`portable.images.confined`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from portable.plugin import ImageFormat, hookimpl


def _detect(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


@contextmanager
def _open(path: Path) -> Iterator[Path]:
    yield path


DIRECTORY = ImageFormat(
    name="directory",
    description="a directory holding an OS tree (RootDirectory=)",
    image_type="directory",
    detect=_detect,
    open=_open,
    root_setting="RootDirectory",
)


@hookimpl
def portable_image_formats() -> Iterable[ImageFormat]:
    return [DIRECTORY]
