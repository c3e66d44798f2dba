"""GPT disk images following the Discoverable Partitions Specification (``RootImage=``).

The root partition for the host's architecture is the image's root (or, without one, the
secondary architecture's: x86 on x86-64); a ``/usr`` partition is placed on its ``/usr``, and
an image with only a ``/usr`` partition is read as a root holding just ``/usr``. Without either,
a single generic Linux partition is the root. Partitions marked ``no-auto`` are ignored; of
several root partitions the one with the newest version in its label wins. This is how
systemd dissects images for portable services (spec 1.2).

Verity partitions are noted (``inspect`` says so) but not used for reading: like systemd 252,
inspection passes no root hash, and PID 1 sets up verity itself when it starts the service.

Each partition is reached through a loop device over its byte range, so no partition device
nodes are needed (they do not exist in containers without udev).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portable import plugin
from portable.plugin import BadImage, ImageFormat, hookimpl, host_architecture

from .probe import filesystem_at, identify, open_image_file
from .raw import check_size, open_checked

if TYPE_CHECKING:
    from .gpt_table import GptPartition, RootChoice


def _detect(path: Path) -> bool:
    return identify(path) == "gpt"


def _plan(path: Path) -> tuple[RootChoice, list[tuple[str, str, int, int]]]:
    # here: only a GPT image's open reads its table (.gpt_table builds 3 dataclasses, ~1.2 ms)
    from .gpt_table import choose_root, read_gpt

    fd, size = open_checked(path)
    try:
        table = read_gpt(fd, image=str(path), file_size=size)
        choice = choose_root(table, image=str(path))
        parts = []
        for where, part in (("", choice.root), ("usr", choice.usr)):
            if part is None:
                continue
            fstype = _fstype(fd, part, path)
            check_size(fd, fstype, image=str(path), offset=part.offset, available=part.size)
            parts.append((where, fstype, part.offset, part.size))
        return choice, parts
    finally:
        os.close(fd)


def _fstype(fd: int, part: GptPartition, path: Path) -> str:
    fstype = filesystem_at(fd, part.offset)
    if fstype is None:
        raise BadImage(
            f"Image '{path}': partition {part.number} ({part.type_name}) holds no file system "
            "that can be read (empty, encrypted or of an unknown type)"
        )
    return fstype


@contextmanager
def _open(path: Path) -> Iterator[Path]:
    _, parts = _plan(path)
    with plugin.mount_image(path, parts) as root:
        yield root


def describe(path: Path) -> dict[str, Any]:
    """Facts for ``inspect``: the partitions, which are used, and the verity ones."""
    from .gpt_table import choose_root, read_gpt  # here: as in _plan

    fd = open_image_file(path)
    if fd is None:
        return {}
    try:
        try:
            table = read_gpt(fd, image=str(path), file_size=os.fstat(fd).st_size)
        except BadImage as exc:
            return {"partition_table": "gpt", "error": str(exc)}
        info: dict[str, Any] = {
            "partition_table": "gpt",
            "sector_size": table.sector_size,
            "architecture": host_architecture(),
            "partitions": [
                {
                    "number": p.number,
                    "type": p.type_name,
                    "type_uuid": p.type_uuid,
                    "uuid": p.uuid,
                    "label": p.label,
                    "flags": p.flags,
                    "offset": p.offset,
                    "size": p.size,
                    "filesystem": filesystem_at(fd, p.offset),
                }
                for p in table.partitions
            ],
        }
        try:
            choice = choose_root(table, image=str(path))
        except BadImage as exc:
            info["error"] = str(exc)
            return info
        info["root"] = choice.root.number if choice.root else None
        info["usr"] = choice.usr.number if choice.usr else None
        info["verity"] = [p.type_name for p in choice.verity]
        return info
    finally:
        os.close(fd)


GPT = ImageFormat(
    name="gpt",
    description="a GPT disk image with a root or /usr partition (RootImage=)",
    image_type="raw",
    detect=_detect,
    open=_open,
    root_setting="RootImage",
    suffixes=(".raw",),
    extra={"details": describe},
)


@hookimpl
def portable_image_formats() -> Iterable[ImageFormat]:
    return [GPT]
