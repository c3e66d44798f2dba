"""An example portable-services plugin: a profile, an image format, a policy hook and an
option of its own on the command line.

Declared in pyproject.toml under ``[project.entry-points.portable]``; portable imports this
module and registers the functions marked ``@hookimpl``.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from portable import (
    AttachOptions,
    AttachRefused,
    CliOption,
    ImageFormat,
    ImageMetadata,
    Profile,
    ProfileEdit,
    hookimpl,
)

# An archive is expanded on disk: refuse "tar bombs" rather than fill the disk.
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_MEMBERS = 200_000


def _head(path: Path, size: int) -> bytes:
    # O_NONBLOCK and a type check first: detect() must never hang on a FIFO.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, size)
    finally:
        os.close(fd)


def is_tar(path: Path) -> bool:
    """A POSIX tar archive ("ustar" at offset 257), or a gzip file named *.tar.gz / *.tgz."""
    try:
        head = _head(path, 512)
    except OSError:
        return False
    if len(head) >= 262 and head[257:262] == b"ustar":
        return True
    return head[:2] == b"\x1f\x8b" and path.name.endswith((".tar.gz", ".tgz"))


def unpack_tar(image: Path, destination: Path) -> None:
    """Extract safely: no absolute paths, no links out of the tree, no devices, bounded size."""
    with tarfile.open(image) as archive:
        members = archive.getmembers()
        if len(members) > MAX_MEMBERS or sum(m.size for m in members) > MAX_UNPACKED_BYTES:
            raise AttachRefused(f"tar image {image} is too large to unpack")
        archive.extractall(destination, members=members, filter="data")


@contextmanager
def open_tar(image: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="portable-tar-"))
    try:
        unpack_tar(image, tmp)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


TAR = ImageFormat(
    name="tar",
    description="a tar archive of an OS tree, unpacked for RootDirectory=",
    image_type="directory",
    detect=is_tar,
    open=open_tar,
    unpack=unpack_tar,
    suffixes=(".tar", ".tar.gz", ".tgz"),
)


@hookimpl
def portable_image_formats() -> Iterable[ImageFormat]:
    return [TAR]


@hookimpl
def portable_profiles() -> Iterable[Profile]:
    return [
        Profile(
            name="example-locked",
            description="strict, with at most 8 tasks and other users' processes hidden",
            dropins={},
            extends="strict",
            edits={"service": ProfileEdit(set=(("TasksMax", "8"), ("ProtectProc", "invisible")))},
        )
    ]


# portable attach --require-vendor "Example Corp" IMAGE: the value reaches our pre-attach hook.
REQUIRE_VENDOR = CliOption[str](
    name="--require-vendor",
    verbs=("attach", "reattach"),
    metavar="NAME",
    help="Attach only an image whose os-release says VENDOR_NAME=NAME.",
)


@hookimpl
def portable_cli_options() -> Iterable[CliOption[str]]:
    return [REQUIRE_VENDOR]


@hookimpl
def portable_pre_attach(metadata: ImageMetadata, options: AttachOptions) -> None:
    """Policy: only images that say who made them (os-release ``VENDOR_NAME=``), and with
    ``--require-vendor NAME`` only that vendor's."""
    vendor = metadata.os_release_fields.get("VENDOR_NAME")
    if not vendor:
        raise AttachRefused(
            f"portable-example-plugin: image '{metadata.image.path}' has no VENDOR_NAME= in "
            "its os-release; this host only attaches images that name their vendor"
        )
    required = options.plugin_options.value(REQUIRE_VENDOR)
    if required is not None and vendor != required:
        raise AttachRefused(
            f"portable-example-plugin: image '{metadata.image.path}' is made by {vendor!r}, "
            f"not {required!r} (--require-vendor)"
        )
