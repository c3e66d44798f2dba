"""Finding images: the search path, and which format reads an image.

An IMAGE argument that is a name is looked up in the search path (spec 1.3, 1.4); a path is
made canonical (:mod:`portable.images.arguments`). Which plugin reads an image is decided by
asking every format's ``detect()``: exactly one must claim it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from portable.errors import AmbiguousImageFormat, ImageNotFound, UnknownImageFormat
from portable.images.arguments import (
    check_image_arg,
    image_path,
    is_name,
    normalize_image_arg,
)
from portable.images.confined import file_kind
from portable.plugin.types import Image, ImageFormat
from portable.systemd.host import IMAGE_SEARCH_PATH, Host
from portable.systemd.names import printable

if TYPE_CHECKING:
    from portable.plugin.registry import Registered, Registry

# normalize_image_arg: re-exported for engine/preview.py, which still imports it from here.
__all__ = [
    "describe_file",
    "detect_format",
    "find_image",
    "normalize_image_arg",
    "resolve_image",
    "sniff",
]


def describe_file(path: Path) -> str:
    """What a path is, in words, for "not a recognised image" errors."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return os.strerror(exc.errno or 0).lower()
    if stat.S_ISREG(st.st_mode):
        return "an empty file" if st.st_size == 0 else f"a regular file of {st.st_size} bytes"
    return file_kind(st.st_mode) or "an unknown kind of file"


# Signatures of files people mistake for images: (offset, magic, what it is).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xfd7zXZ\x00", "xz-compressed data: decompress it first"),
    (0, b"\x1f\x8b", "gzip-compressed data: decompress it first"),
    (0, b"\x28\xb5\x2f\xfd", "zstd-compressed data: decompress it first"),
    (0, b"BZh", "bzip2-compressed data: decompress it first"),
    (0, b"\x04\x22\x4d\x18", "lz4-compressed data: decompress it first"),
    (0, b"QFI\xfb", "a qcow2 disk image: convert it with 'qemu-img convert -O raw'"),
    (0, b"KDMV", "a VMDK disk image: convert it with 'qemu-img convert -O raw'"),
    (0, b"vhdxfile", "a VHDX disk image: convert it with 'qemu-img convert -O raw'"),
    (0, b"LUKS\xba\xbe", "a LUKS encrypted volume"),
    (0, b"PK\x03\x04", "a zip archive"),
    (0, b"\x7fELF", "an ELF executable"),
    (0, b"070701", "a cpio archive"),
    (257, b"ustar", "a tar archive"),
    (32769, b"CD001", "an ISO 9660 image"),
)


def sniff(path: Path) -> str | None:
    """What a regular file that no format claims looks like, if we can tell (for errors)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.pread(fd, 4096, 0)
        for offset, magic, what in _SIGNATURES:
            data = (
                head[offset : offset + len(magic)]
                if offset + len(magic) <= len(head)
                else os.pread(fd, len(magic), offset)
            )
            if data == magic:
                return what
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(head) >= 512 and head[510:512] == b"\x55\xaa" and head[450] not in (0, 0xEE):
        return "an MBR-partitioned disk image: only GPT disk images are supported"
    if head and not head.strip(b"\0"):
        return "only zero bytes at its start: no file system or partition table"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return "no file system or partition table that is known"


def detect_format(
    registry: Registry,
    path: Path,
    shown: str,
    *,
    among: list[Registered[ImageFormat]] | None = None,
) -> ImageFormat:
    """The one format that claims ``path``; ``shown`` is the path as the user should see it.

    ``among``: only these registered formats are asked (default: all).
    """
    # A detect() that raises is "not mine" (the registry's formats are wrapped so, see
    # portable.plugin.hooks): one plugin can't break detection for the others.
    formats = registry.formats() if among is None else among
    claims = [reg.spec for reg in formats if reg.spec.detect(path)]
    if len(claims) == 1:
        return claims[0]
    if claims:
        raise AmbiguousImageFormat(
            f"image '{printable(shown)}' is claimed by several image formats: "
            + ", ".join(f.name for f in claims)
        )
    known = ", ".join(r.spec.name for r in registry.formats())
    what = sniff(path)
    failed = "".join(
        f"; plugin {p.name!r} failed to load: {p.error}" for p in registry.failed_plugins()
    )
    raise UnknownImageFormat(
        f"image '{printable(shown)}' is {describe_file(path)}, not a recognised image"
        + (f" ({what})" if what else "")
        + f"; supported formats: {known or 'none'}{failed}"
    )


def find_image(name: str, *, host: Host, registry: Registry) -> Image | None:
    """Look ``name`` up in the image search path (spec 1.4); first hit wins.

    An entry called exactly ``name`` counts if it is a directory (or another non-regular image
    a format claims); a regular file only counts with a format's suffix (``name.raw``).
    """
    formats = registry.formats()
    for d in IMAGE_SEARCH_PATH:
        local = host.resolve(f"{d}/{name}")
        st = os.stat(local) if local is not None else None
        if local is not None and st is not None and not stat.S_ISREG(st.st_mode):
            for reg in formats:
                if reg.spec.name_lookup and not reg.spec.suffixes and reg.spec.detect(local):
                    return Image(path=f"{d}/{name}", host_path=local, name=name, format=reg.spec)
            continue
        if st is not None:
            continue  # a regular file named exactly NAME is not an image by name (spec 1.4)
        suffixes = dict.fromkeys(s for r in formats if r.spec.name_lookup for s in r.spec.suffixes)
        for suffix in suffixes:
            candidate = host.resolve(f"{d}/{name}{suffix}")
            try:
                if candidate is None or not stat.S_ISREG(os.stat(candidate).st_mode):
                    continue
            except OSError:
                continue
            # The first NAME.raw wins, as with systemd; if no format can read it, say what it
            # is rather than "not found".
            among = [r for r in formats if r.spec.name_lookup and suffix in r.spec.suffixes]
            fmt = detect_format(registry, candidate, f"{d}/{name}{suffix}", among=among)
            return Image(path=f"{d}/{name}{suffix}", host_path=candidate, name=name, format=fmt)
    return None


def resolve_image(arg: str, *, host: Host, registry: Registry, cwd: Path | None = None) -> Image:
    """Resolve an IMAGE argument (name or path) to an :class:`Image`, or fail with one line."""
    check_image_arg(arg)
    if is_name(arg):
        image = find_image(arg, host=host, registry=registry)
        if image is None:
            raise ImageNotFound(f"No image '{arg}' found.")
        return image
    path = image_path(arg, host=host, cwd=cwd)
    local = host.path(path)
    fmt = detect_format(registry, local, path)
    filename = path.rstrip("/").rsplit("/", 1)[-1] or "/"
    return Image(path=path, host_path=local, name=fmt.image_name(filename), format=fmt)
