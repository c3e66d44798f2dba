"""Finding images: the search path, NAME vs PATH, and which format reads an image.

An argument without ``/`` is an image *name*, looked up in the search path (spec 1.3, 1.4);
anything else is a *path*, made absolute and canonical (spec 1.5, 1.7). Which plugin reads an
image is decided by asking every format's ``detect()``: exactly one must claim it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from portable.errors import AmbiguousImageFormat, BadImage, ImageNotFound, UnknownImageFormat
from portable.images.confined import file_kind, open_root, resolve_path
from portable.systemd.host import IMAGE_SEARCH_PATH, Host
from portable.systemd.names import is_valid_image_name, printable_path

if TYPE_CHECKING:
    from portable.plugin.registry import Registered, Registry
    from portable.plugin.types import Image, ImageFormat

__all__ = [
    "check_image_arg",
    "describe_file",
    "detect_format",
    "find_image",
    "is_name",
    "printable",
    "resolve_image",
    "sniff",
]


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``...), so that a message
    quoting a hostile file name stays one line and can't forge output."""
    if not any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return text
    return "".join(c if not (ord(c) < 0x20 or ord(c) == 0x7F) else repr(c)[1:-1] for c in text)


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def is_name(arg: str) -> bool:
    """portablectl's rule: an argument that is a valid image name is a name, else a path."""
    return is_valid_image_name(arg)


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
    from portable.plugin.types import Image  # here, not at the top: is-attached needs no types

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


def canonical_path(arg: str, *, host: Host, cwd: Path | None = None) -> str | None:
    """The canonical host path of a PATH argument, or ``None`` if it does not exist.

    Relative paths are taken from the current directory. With ``--root`` an absolute path means
    a path inside the root, and a relative one must lead below the root.
    """
    cwd = cwd or Path.cwd()
    if host.is_real:
        absolute = os.path.normpath(os.path.join(cwd, arg))
        real = os.path.realpath(absolute)
        return real if os.path.lexists(real) else None
    if arg.startswith("/"):
        inside = arg
    else:
        local = Path(os.path.normpath(os.path.join(cwd, arg)))
        try:
            inside = host.unpath(local)
        except ValueError:
            raise ImageNotFound(
                f"image path '{printable(arg)}' is outside the --root directory"
            ) from None
    with open_root(host.root) as rfd:
        return resolve_path(rfd, inside)


def _check_utf8(path: str) -> None:
    """Refuse a path that is not UTF-8, in portablectl's words (sd-bus refuses to send it).

    systemd ignores a unit-file line that is not UTF-8: the image's ``RootDirectory=`` would
    be dropped and the service would run on the host's root.
    """
    try:
        path.encode("utf-8")  # strict: bytes os.fsdecode() surrogate-escaped are not UTF-8
    except UnicodeEncodeError:
        raise BadImage(
            "Failed to create bus message: Invalid argument (image path "
            f"'{printable_path(path)}' is not valid UTF-8, which systemd can't use in a unit file)"
        ) from None


def check_image_arg(arg: str) -> None:
    """Refuse an empty IMAGE argument, in systemd's words (it would mean the current directory
    or the root)."""
    if not arg:
        raise ImageNotFound("Cannot normalize specified image path '': Invalid argument")


def pick_version(arg: str, *, host: Host, cwd: Path | None = None) -> str:
    """A PATH argument with a versioned directory (``foo.v/``) replaced by the image it stands
    for, on systemd 256 and later (:mod:`portable.images.vpick`); any other argument as it is."""
    if ".v" not in arg or is_name(arg):  # cheap test first: the CLI's fast path stays lean
        return arg
    from portable.images.vpick import MIN_SYSTEMD, is_versioned, pick
    from portable.systemd.version import detect

    cwd = cwd or Path.cwd()
    if arg.startswith("/"):
        absolute = arg
    elif host.is_real:
        absolute = os.path.join(cwd, arg)
    else:
        try:
            absolute = host.unpath(Path(os.path.normpath(os.path.join(cwd, arg))))
        except ValueError:
            return arg  # outside the root: canonical_path says so
    slash = "/" if absolute.endswith("/") else ""
    absolute = os.path.normpath(absolute) + slash
    if not is_versioned(absolute) or detect(host).major < MIN_SYSTEMD:
        return arg
    return pick(absolute, host=host)


def normalize_image_arg(arg: str, *, host: Host, cwd: Path | None = None, pick: bool = True) -> str:
    """An IMAGE argument as detach and is-attached use it: a name as is, a path made canonical
    if it exists and absolute otherwise (a deleted image can still be detached, spec 1.7); a
    versioned directory (``foo.v/``) replaced by its pick on systemd 256+ unless not ``pick``."""
    check_image_arg(arg)
    if is_name(arg):
        return arg
    if pick:
        arg = pick_version(arg, host=host, cwd=cwd)
    path = canonical_path(arg, host=host, cwd=cwd)
    if path is not None:
        return path
    if arg.startswith("/") or not host.is_real:
        return os.path.normpath(arg if arg.startswith("/") else "/" + arg)
    return os.path.normpath(os.path.join(cwd or Path.cwd(), arg))


def resolve_image(arg: str, *, host: Host, registry: Registry, cwd: Path | None = None) -> Image:
    """Resolve an IMAGE argument (name or path) to an :class:`Image`, or fail with one line."""
    from portable.plugin.types import Image

    check_image_arg(arg)
    if is_name(arg):
        image = find_image(arg, host=host, registry=registry)
        if image is None:
            raise ImageNotFound(f"No image '{arg}' found.")
        return image
    _check_utf8(arg)
    arg = pick_version(arg, host=host, cwd=cwd)
    path = canonical_path(arg, host=host, cwd=cwd)
    if path is None:
        message = (
            f"Cannot normalize specified image path '{printable(arg)}': No such file or directory"
        )
        if not host.is_real and arg.startswith("/"):
            # With --root an absolute path is inside the root: say so (the file may well
            # exist at the same path outside it).
            root, inside = printable(str(host.root)), printable(str(host.path(arg)))
            message += f" (looked up below --root {root}: {printable(arg)} is {inside})"
        raise ImageNotFound(message)
    _check_utf8(path)
    if _has_control(path):
        # The path goes into 20-portable.conf (RootDirectory=, PORTABLE=...) as it is: a
        # newline in it would add settings. systemd refuses such image names too.
        raise BadImage(f"Image path '{printable(path)}' contains control characters, refusing.")
    local = host.path(path)
    fmt = detect_format(registry, local, path)
    filename = path.rstrip("/").rsplit("/", 1)[-1] or "/"
    return Image(path=path, host_path=local, name=fmt.image_name(filename), format=fmt)
