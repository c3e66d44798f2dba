"""Looking at raw image files without mounting them: file system magic and GPT partition tables.

Shared by the built-in raw formats (:mod:`.squashfs`, :mod:`.filesystem`, :mod:`.gpt`) and usable
by third-party formats. Everything here reads a few header bytes with ``pread`` from a file
opened ``O_NONBLOCK`` after ``stat`` said it is a regular file, so a FIFO or a device is never
waited on; nothing is mounted.

Detection is by content: a squashfs file is a squashfs file whatever it is called (systemd
only takes files named ``*.raw``, and rejects ``foo.squashfs`` with "Wrong medium type").

Reading a GPT partition table (:func:`read_gpt`, :func:`choose_root` and their types) is in
:mod:`.gpt_table`, imported when first used: every command loads this module (each raw format
detects with :func:`identify`), few read a partition table. Its names are found here too.
"""

from __future__ import annotations

import binascii
import importlib
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gpt_table import (
        GptPartition,
        GptTable,
        RootChoice,
        choose_root,
        partition_type_name,
        read_gpt,
    )

__all__ = [
    "FS_TYPES",
    "GptPartition",
    "GptTable",
    "RootChoice",
    "choose_root",
    "filesystem_at",
    "filesystem_size",
    "identify",
    "open_image_file",
    "partition_type_name",
    "read_gpt",
]

# (file system, offset of the magic, magic bytes); mountable as that kernel type.
_MAGICS: tuple[tuple[str, int, bytes], ...] = (
    ("squashfs", 0, b"hsqs"),
    ("xfs", 0, b"XFSB"),
    ("erofs", 1024, b"\xe2\xe1\xf5\xe0"),
    ("ext4", 1024 + 0x38, b"\x53\xef"),  # ext2/3/4: the ext4 driver mounts all three
    ("btrfs", 65536 + 0x40, b"_BHRfS_M"),
)
FS_TYPES = tuple(m[0] for m in _MAGICS)
_GPT_SIGNATURE = b"EFI PART"
_SECTOR_SIZES = (512, 4096)

# --- reading ------------------------------------------------------------------------------


def open_image_file(path: Path) -> int | None:
    """A read-only descriptor of ``path`` if it is a regular file, else ``None``.

    Checked with ``stat`` before opening and ``fstat`` after (``O_NONBLOCK``: a FIFO swapped in
    between can't block the open), so FIFOs, sockets and devices are never waited on.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return fd


def _pread(fd: int, size: int, offset: int) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except (OSError, OverflowError, ValueError):  # offsets from a hostile header can be huge
        return b""


def filesystem_at(fd: int, offset: int = 0) -> str | None:
    """The file system whose superblock starts at ``offset``, by its magic; ``None`` if none."""
    head = _pread(fd, 2048, offset)
    for fstype, where, magic in _MAGICS:
        if where + len(magic) <= len(head):
            data = head[where : where + len(magic)]
        else:
            data = _pread(fd, len(magic), offset + where)
        if data == magic:
            return fstype
    return None


def filesystem_size(fd: int, fstype: str, offset: int = 0) -> int | None:
    """How many bytes the file system says it occupies (to spot truncated images), if known."""
    if fstype == "squashfs":
        sb = _pread(fd, 96, offset)
        if len(sb) >= 48:
            return int(struct.unpack_from("<Q", sb, 40)[0])  # bytes_used
    elif fstype == "erofs":
        sb = _pread(fd, 64, offset + 1024)
        if len(sb) >= 40:
            blkszbits = sb[12]
            blocks = int(struct.unpack_from("<I", sb, 36)[0])
            if 9 <= blkszbits <= 16:
                return blocks << blkszbits
    elif fstype == "ext4":
        sb = _pread(fd, 1024, offset + 1024)
        if len(sb) >= 0x154:
            blocks_lo = int(struct.unpack_from("<I", sb, 4)[0])
            log_bs = int(struct.unpack_from("<I", sb, 24)[0])
            incompat = int(struct.unpack_from("<I", sb, 0x60)[0])
            blocks_hi = int(struct.unpack_from("<I", sb, 0x150)[0]) if incompat & 0x80 else 0
            if log_bs <= 6:
                return ((blocks_hi << 32) | blocks_lo) << (10 + log_bs)
    return None


def _gpt_header(fd: int) -> tuple[int, bytes] | None:
    for sector in _SECTOR_SIZES:
        hdr = _pread(fd, 512, sector)
        if len(hdr) < 92 or hdr[:8] != _GPT_SIGNATURE:
            continue
        size = int(struct.unpack_from("<I", hdr, 12)[0])
        if not 92 <= size <= len(hdr):
            continue
        crc = int(struct.unpack_from("<I", hdr, 16)[0])
        check = hdr[:16] + b"\0\0\0\0" + hdr[20:size]
        # (binascii's CRC-32 is zlib's, without loading one more shared library)
        if binascii.crc32(check) & 0xFFFFFFFF == crc:
            return sector, hdr
    return None


def is_gpt(fd: int) -> bool:
    """Whether a valid GPT header (signature and checksum) is at LBA 1."""
    return _gpt_header(fd) is not None


# --- identification ----------------------------------------------------------------------

_cache: dict[tuple[str, int, int, int, int], str | None] = {}


def identify(path: Path) -> str | None:
    """What a raw image file holds: ``"gpt"``, a file system type, or ``None``.

    Cheap and cached per file version: every format's ``detect()`` asks this.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _cache:
        return _cache[key]
    fd = open_image_file(path)
    if fd is None:
        return None
    try:
        kind = "gpt" if is_gpt(fd) else filesystem_at(fd)
    finally:
        os.close(fd)
    if len(_cache) > 256:
        _cache.clear()
    _cache[key] = kind
    return kind


def __getattr__(name: str) -> Any:
    # .gpt_table's public names, as they were found here before it was split off (a private or
    # dunder name asked for, e.g. by hasattr, doesn't import it)
    table = None if name.startswith("_") else importlib.import_module(f"{__package__}.gpt_table")
    if table is None or name not in table.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(table, name)
    globals()[name] = value
    return value
