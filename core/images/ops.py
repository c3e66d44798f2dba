"""``read-only``, ``remove`` and ``set-limit``: what portabled's ``MarkImageReadOnly``,
``RemoveImage`` and ``SetImageLimit`` do (systemd's ``discover-image.c``), on the files directly.

An image is found as portabled finds it for these calls: a name in the search path (a
directory or block device called NAME, else a regular file NAME.raw), or a path to a directory
(or btrfs subvolume), a block device or a ``.raw`` file. What each call does depends on that
type, as in systemd:

* read-only: a directory gets the immutable flag (``chattr +i``) on its top directory, a
  subvolume btrfs's read-only property, a raw file loses its write bits (``chmod a-w``; ``no``
  gives back the owner's), a block device ``BLKROSET``;
* remove: the tree, the file or the link, then its ``NAME.nspawn`` settings (in
  ``/etc/systemd/nspawn``, ``/run/systemd/nspawn`` and next to the image) and ``NAME.roothash``;
* set-limit: a btrfs quota on a subvolume; anything else is "not supported".

Images under ``/usr`` (vendor images) and the host's root are refused with "Read-only file
system"; an image that is attached (its name in a marker of an attached unit) is not removed. As
nspawn and portabled, every call holds the image's locks (``.#NAME.lck`` next to it and
``/run/systemd/nspawn/locks/inode-DEV:INO``), so an image in use by ``systemd-nspawn`` is busy.

Errors are one line in portablectl's words (``Could not remove image: ...``). Deliberate
differences: several images given to ``remove`` are all checked and locked, then moved out of
the search path together, before any is deleted (portablectl removes them one by one and stops
at the first failure, leaving the earlier ones removed); a directory reached through a symlink
is marked read-only at its target (systemd opens it with ``O_NOFOLLOW`` and fails); relative
paths are taken from the current directory, as by the other verbs (portablectl refuses them).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import secrets
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from portable.engine.state import all_attached_units, image_state
from portable.errors import PortableError
from portable.images.confined import UnsafePath
from portable.systemd.host import IMAGE_SEARCH_PATH, Host
from portable.systemd.names import is_valid_image_name, printable

if TYPE_CHECKING:
    from portable.plugin.registry import Registry

__all__ = [
    "INFINITY",
    "ImageOpError",
    "TargetImage",
    "find_target",
    "parse_boolean",
    "parse_size",
    "remove_images",
    "set_limit",
    "set_read_only",
]

INFINITY = 2**64 - 1  # systemd's UINT64_MAX: no limit
_INT64_MAX = 2**63 - 1

READ_ONLY_FAILED = "Could not mark image read-only"
REMOVE_FAILED = "Could not remove image"
LIMIT_FAILED = "Could not set limit"

_TYPE_UNKNOWN = (
    "Type of image '{}' not recognized; supported image types are directories/btrfs "
    "subvolumes, block devices, and raw disk image files with suffix '.raw'."
)


class ImageOpError(PortableError):
    """One of these calls failed; the message is portablectl's line (``Could not ...: why``)."""


def _why(code: int) -> str:
    # portablectl prints the D-Bus error's message: strerror, except that sd-bus turns EPERM and
    # EACCES into AccessDenied, which portablectl prints as "Access denied".
    if code in (errno.EPERM, errno.EACCES):
        return "Access denied"
    return os.strerror(code)


def _fail(what: str, code: int) -> ImageOpError:
    return ImageOpError(f"{what}: {_why(code)}")


# --- parsing, as systemd's parse_boolean() and parse_size() ---------------------------------


def parse_boolean(text: str) -> bool:
    """systemd's ``parse_boolean``: 1/yes/y/true/t/on, 0/no/n/false/f/off, any case.

    :raises ValueError: anything else.
    """
    low = text.lower()
    if low in ("1", "yes", "y", "true", "t", "on"):
        return True
    if low in ("0", "no", "n", "false", "f", "off"):
        return False
    raise ValueError(text)


def _parse_boolean_or(text: str, default: bool) -> bool:
    try:
        return parse_boolean(text)
    except ValueError:
        return default


# systemd's table, largest first; each part of a sum must use a later (smaller) suffix
_IEC_ALL = (
    ("E", 1024**6),
    ("P", 1024**5),
    ("T", 1024**4),
    ("G", 1024**3),
    ("M", 1024**2),
    ("K", 1024),
    ("B", 1),
    ("", 1),
)
_WHITESPACE = " \t\n\r"
_ULLONG_MAX = 2**64 - 1


def _strtoull(text: str, pos: int) -> tuple[int, int]:
    """C's ``strtoull(text + pos, &end, 10)``: (value, end); end == pos if no digits. Leading
    whitespace and a sign are accepted; a negative number wraps, as in C; overflow saturates
    (the caller sees it as ERANGE: returned as -1)."""
    i = pos
    while i < len(text) and text[i] in " \t\n\r\v\f":
        i += 1
    negative = False
    if i < len(text) and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    start = i
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    if i == start:
        return 0, pos
    value = int(text[start:i])
    if value > _ULLONG_MAX:
        return -1, i
    return ((-value) & _ULLONG_MAX if negative else value), i


def parse_size(text: str) -> int:
    """systemd's ``parse_size(text, 1024)``: bytes, with K, M, G, T, P, E (powers of 1024) and
    B suffixes, fractions (``1.5G``) and sums in decreasing order (``1G 512M``).

    :raises ValueError: not a size, negative, or above 2^64 - 1.
    """
    total = 0
    start_pos = 0
    p = 0
    while True:
        while p < len(text) and text[p] in _WHITESPACE:
            p += 1
        value, e = _strtoull(text, p)
        if value < 0:
            raise ValueError(f"{text}: out of range")
        if e == p:
            raise ValueError(f"{text}: not a number")
        if text[p] == "-":
            raise ValueError(f"{text}: negative")
        frac = 0.0
        if e < len(text) and text[e] == ".":
            e += 1
            d = e
            while d < len(text) and "0" <= text[d] <= "9":
                d += 1
            if d > e:
                if int(text[e:d]) > _ULLONG_MAX:
                    raise ValueError(f"{text}: out of range")
                frac = float(int(text[e:d]))
                for _ in range(d - e):  # as systemd divides, for the same rounding
                    frac /= 10
                e = d
        while e < len(text) and text[e] in _WHITESPACE:
            e += 1
        for i in range(start_pos, len(_IEC_ALL)):
            if text.startswith(_IEC_ALL[i][0], e):
                break
        else:
            raise ValueError(f"{text}: unknown suffix")
        suffix, factor = _IEC_ALL[i]
        if value + (frac > 0) > _ULLONG_MAX // factor:
            raise ValueError(f"{text}: out of range")
        part = value * factor + int(frac * factor)
        if part > _ULLONG_MAX - total:
            raise ValueError(f"{text}: out of range")
        total += part
        p = e + len(suffix)
        start_pos = i + 1
        if p >= len(text):
            return total


# --- finding the image ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetImage:
    """An image as these calls see it.

    ``path``: the host path systemd names it by (a link in the search path stays the link);
    ``local``: where this process finds that path itself (its last component not followed);
    ``target``: where ``local`` leads, every link followed (inside ``--root``).
    ``type``: ``directory``, ``subvolume``, ``raw`` or ``block``.
    """

    name: str
    path: str
    local: Path
    target: Path
    type: str

    @property
    def is_vendor(self) -> bool:
        """Under /usr: shipped with the OS, never changed (systemd's IMAGE_IS_VENDOR)."""
        return self.path == "/usr" or self.path.startswith("/usr/")

    @property
    def is_link(self) -> bool:
        return self.local.is_symlink()


def _file_suffixes(registry: Registry | None) -> tuple[str, ...]:
    """Suffixes of regular-file images: ``.raw``, and those of plugins' formats (``.tar``)."""
    found = [".raw"]
    if registry is not None:
        for reg in registry.formats():
            if reg.spec.name_lookup:
                found.extend(s for s in reg.spec.suffixes if s not in found)
    return tuple(found)


def _btrfs_subvolume(path: Path, st: os.stat_result) -> bool:
    # systemd's btrfs_might_be_subvol() and a file system check: a subvolume's top directory is
    # inode 256 on btrfs.
    return stat.S_ISDIR(st.st_mode) and st.st_ino == 256 and _fs_type(path) == _BTRFS_MAGIC


def _classify(name: str, path: str, local: Path, target: Path, st: os.stat_result) -> TargetImage:
    if stat.S_ISDIR(st.st_mode):
        kind = "subvolume" if _btrfs_subvolume(target, st) else "directory"
    elif stat.S_ISBLK(st.st_mode):
        kind = "block"
    else:
        kind = "raw"
    return TargetImage(name=name, path=path, local=local, target=target, type=kind)


def _lookup_name(name: str, *, host: Host, suffixes: Sequence[str]) -> TargetImage | None:
    for d in IMAGE_SEARCH_PATH:
        try:
            target = host.resolve(f"{d}/{name}")
        except UnsafePath:
            continue
        if target is not None:
            st = os.stat(target)
            if stat.S_ISDIR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                return _classify(name, f"{d}/{name}", host.path(f"{d}/{name}"), target, st)
            continue  # NAME itself is a file: not an image by name, NAME.raw not looked for
        for suffix in suffixes:
            try:
                target = host.resolve(f"{d}/{name}{suffix}")
            except UnsafePath:
                continue
            if target is None:
                continue
            st = os.stat(target)
            if stat.S_ISREG(st.st_mode):
                path = f"{d}/{name}{suffix}"
                return _classify(name, path, host.path(path), target, st)
    return None


def _is_normalized(path: str) -> bool:
    # systemd's path_is_normalized(): no ".", ".." nor "//"
    parts = path.split("/")
    return ".." not in parts and "." not in parts and "//" not in path


def find_target(
    arg: str,
    *,
    host: Host,
    what: str,
    registry: Registry | None = None,
    cwd: Path | None = None,
) -> TargetImage:
    """The image ``arg`` names, as portabled finds it; ``what`` starts the error line."""
    if is_valid_image_name(arg):
        found = _lookup_name(arg, host=host, suffixes=_file_suffixes(registry))
        if found is None:
            raise ImageOpError(f"{what}: No image '{printable(arg)}' found.")
        return found
    if not arg:
        raise ImageOpError(f"{what}: Image name '' is not valid or not a valid path.")
    if arg.startswith("/"):
        if not _is_normalized(arg):
            raise ImageOpError(f"{what}: Image path '{printable(arg)}' is not normalized.")
        path = arg
    else:
        local = os.path.normpath(os.path.join(cwd or Path.cwd(), arg))
        try:
            path = host.unpath(Path(local)) if not host.is_real else local
        except ValueError:
            raise ImageOpError(
                f"{what}: Image path '{printable(arg)}' is outside the --root directory."
            ) from None
    if path != "/":
        path = path.rstrip("/")
    if path == "/":
        raise _fail(what, errno.EROFS)  # the host itself (systemd's IMAGE_IS_HOST)
    try:
        target = host.resolve(path)
    except UnsafePath:
        raise _fail(what, errno.ELOOP) from None
    if target is None:
        raise _fail(what, errno.ENOENT)
    st = os.stat(target)
    filename = path.rsplit("/", 1)[-1]
    name = filename
    if stat.S_ISREG(st.st_mode):
        suffix = next((s for s in _file_suffixes(registry) if filename.endswith(s)), None)
        if suffix is None:
            raise ImageOpError(f"{what}: {_TYPE_UNKNOWN.format(printable(path))}")
        name = filename[: -len(suffix)]
    elif not (stat.S_ISDIR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise ImageOpError(f"{what}: {_TYPE_UNKNOWN.format(printable(path))}")
    if not is_valid_image_name(name):
        raise _fail(what, errno.EINVAL)
    return _classify(name, path, host.path(path), target, st)


# --- locks, as systemd's image_path_lock() -----------------------------------------------------

_F_WRLCK = 1
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on 64-bit Linux: type, whence, start, len, pid


class _LockFile:
    """An exclusive OFD lock on a lock file, removed when released (systemd's make_lock_file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        while True:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _FLOCK.pack(_F_WRLCK, os.SEEK_SET, 0, 0, 0))
            except OSError as exc:
                os.close(fd)
                code = exc.errno or errno.EIO
                raise OSError(errno.EBUSY if code == errno.EAGAIN else code, str(path)) from None
            if os.fstat(fd).st_nlink > 0:
                break
            os.close(fd)  # the previous owner removed it on release: lock the new one
        self.fd = fd

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)


@contextlib.contextmanager
def _image_lock(image: TargetImage, host: Host) -> Iterator[None]:
    """systemd's image_path_lock(LOCK_EX|LOCK_NB): ``.#FILE.lck`` next to the image, and on the
    real host ``/run/systemd/nspawn/locks/inode-DEV:INO`` (block-MAJ:MIN for a device); held
    by nspawn while it runs the image. ``SYSTEMD_NSPAWN_LOCK=0`` turns both off."""
    switch = os.environ.get("SYSTEMD_NSPAWN_LOCK", "")
    if switch.strip() and not _parse_boolean_or(switch.strip(), True):
        yield
        return
    locks: list[_LockFile] = []
    try:
        if not image.path.startswith("/dev/"):  # a device's own lock is the global one
            locks.append(_LockFile(image.local.parent / f".#{image.local.name}.lck"))
        if host.is_real:
            st = os.stat(image.target)
            if stat.S_ISBLK(st.st_mode):
                key = f"block-{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                key = f"inode-{st.st_dev}:{st.st_ino}"
            locks_dir = Path("/run/systemd/nspawn/locks")
            with contextlib.suppress(OSError):
                os.makedirs("/run/systemd/nspawn", 0o755, exist_ok=True)
                os.mkdir(locks_dir, 0o700)
            locks.append(_LockFile(locks_dir / key))
        yield
    finally:
        for lock in reversed(locks):
            lock.release()


@contextlib.contextmanager
def _locked(images: Sequence[TargetImage], host: Host, what: str) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for image in images:
            try:
                stack.enter_context(_image_lock(image, host))
            except OSError as exc:
                raise _fail(what, exc.errno or errno.EIO) from None
        yield


# --- file attributes: immutable flag, btrfs ----------------------------------------------------

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x10
_BTRFS_MAGIC = 0x9123683E
_BTRFS_IOC_SUBVOL_GETFLAGS = 0x80089419
_BTRFS_IOC_SUBVOL_SETFLAGS = 0x4008941A
_BTRFS_SUBVOL_RDONLY = 1 << 1
_BTRFS_IOC_SNAP_DESTROY = 0x5000940F
_BTRFS_IOC_INO_LOOKUP = 0xD0009412
_BTRFS_IOC_QGROUP_LIMIT = 0x8030942B
_BTRFS_QGROUP_LIMIT_MAX_RFER = 1
_BLKROSET = 0x125D


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _fs_type(path: Path) -> int:
    """statfs(2)'s f_type (os.statvfs has no such field); 0 if unknown."""
    buf = ctypes.create_string_buffer(128)
    if _libc().statfs(os.fsencode(path), buf) != 0:
        return 0
    return int.from_bytes(buf.raw[0:8], "little", signed=True) & 0xFFFFFFFF


def _get_flags(fd: int) -> int:
    buf = bytearray(8)
    fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
    return int.from_bytes(buf[:4], "little")


def _chattr(path: Path, value: int, mask: int, *, follow: bool) -> int:
    """systemd's chattr_path(): set ``value`` under ``mask``; the previous flags. Only on a
    directory or a regular file (the same ioctl number means other things to drivers)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    fd = os.open(path, flags if follow else flags | os.O_NOFOLLOW)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        old = _get_flags(fd)
        new = (old & ~mask) | (value & mask)
        if new != old:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, new.to_bytes(8, "little"))
            if _get_flags(fd) != new:  # some file systems ignore a flag they can't set
                raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        return old
    finally:
        os.close(fd)


def _btrfs_set_read_only(path: Path, value: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _BTRFS_IOC_SUBVOL_GETFLAGS, buf)
        old = int.from_bytes(buf, "little")
        new = old | _BTRFS_SUBVOL_RDONLY if value else old & ~_BTRFS_SUBVOL_RDONLY
        if new != old:
            fcntl.ioctl(fd, _BTRFS_IOC_SUBVOL_SETFLAGS, new.to_bytes(8, "little"))
    finally:
        os.close(fd)


def _btrfs_destroy(parent_fd: int, name: str) -> None:
    """Delete subvolume ``name`` of the directory ``parent_fd`` (BTRFS_IOC_SNAP_DESTROY)."""
    raw = os.fsencode(name)
    args = struct.pack("q4088s", 0, raw)
    fcntl.ioctl(parent_fd, _BTRFS_IOC_SNAP_DESTROY, args)


def _btrfs_subvol_id(fd: int) -> int:
    args = bytearray(struct.pack("QQ4080s", 0, 256, b""))
    fcntl.ioctl(fd, _BTRFS_IOC_INO_LOOKUP, args)
    return int(struct.unpack_from("Q", args)[0])


def _btrfs_limit(path: Path, limit: int) -> None:
    """The referenced-bytes quota of the subvolume at ``path`` (its level-0 qgroup);
    :data:`INFINITY` removes it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_DIRECTORY)
    try:
        qgroup = _btrfs_subvol_id(fd)
        args = bytearray(
            struct.pack("QQQQQQ", qgroup, _BTRFS_QGROUP_LIMIT_MAX_RFER, limit, 0, 0, 0)
        )
        fcntl.ioctl(fd, _BTRFS_IOC_QGROUP_LIMIT, args)
    finally:
        os.close(fd)


# --- read-only ------------------------------------------------------------------------------


def set_read_only(
    image: str,
    value: bool = True,
    *,
    host: Host | None = None,
    registry: Registry | None = None,
    cwd: Path | None = None,
) -> TargetImage:
    """Mark ``image`` (name or path) read-only, or writable with ``value=False``.

    :raises ImageOpError: no such image, a vendor image, in use, or the change failed.
    """
    host = host or Host()
    what = READ_ONLY_FAILED
    found = find_target(image, host=host, what=what, registry=registry, cwd=cwd)
    if found.is_vendor:
        raise _fail(what, errno.EROFS)
    with _locked([found], host, what):
        try:
            _apply_read_only(found, value)
        except OSError as exc:
            raise _fail(what, exc.errno or errno.EIO) from None
    return found


def _apply_read_only(image: TargetImage, value: bool) -> None:
    if image.type == "subvolume":
        _btrfs_set_read_only(image.target, value)  # the top subvolume only, as systemd
    elif image.type == "directory":
        # The top directory's mode would change the service's view of its root: the immutable
        # flag at least makes the top directory read-only, and can be read back (list).
        _chattr(image.target, _FS_IMMUTABLE_FL if value else 0, _FS_IMMUTABLE_FL, follow=True)
    elif image.type == "raw":
        mode = os.stat(image.target).st_mode
        os.chmod(image.target, (mode & 0o444) | (0 if value else 0o200))
    else:
        fd = os.open(image.target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            if not stat.S_ISBLK(os.fstat(fd).st_mode):
                raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
            fcntl.ioctl(fd, _BLKROSET, struct.pack("i", int(value)))
        finally:
            os.close(fd)


# --- set-limit ------------------------------------------------------------------------------


def set_limit(
    image: str | None,
    limit: int,
    *,
    host: Host | None = None,
    registry: Registry | None = None,
    cwd: Path | None = None,
) -> None:
    """Set the size limit (bytes; :data:`INFINITY` for none) of ``image``, or with ``None`` of
    the pool, ``/var/lib/portables``: a btrfs quota, so only a btrfs subvolume has one.

    portablectl's command line only reaches the image form (its ``set-limit`` verb takes
    exactly two arguments); the pool form is portabled's ``SetPoolLimit``.

    :raises ImageOpError: the limit is out of range, no such image, not a subvolume...
    """
    host = host or Host()
    what = LIMIT_FAILED
    if not (0 <= limit <= _INT64_MAX or limit == INFINITY):
        raise ImageOpError(f"{what}: New limit out of range")
    if image is None:
        pool = host.path("/var/lib/portables")
        if not pool.is_dir():
            raise ImageOpError(f"{what}: Failed to adjust quota limit: {_why(errno.ENOENT)}")
        if _fs_type(pool) != _BTRFS_MAGIC:
            raise ImageOpError(f"{what}: Quota is only supported on btrfs.")
        try:
            _btrfs_limit(pool, limit)
        except OSError as exc:
            raise ImageOpError(
                f"{what}: Failed to adjust quota limit: {_why(exc.errno or errno.EIO)}"
            ) from None
        return
    found = find_target(image, host=host, what=what, registry=registry, cwd=cwd)
    if found.is_vendor:
        raise _fail(what, errno.EROFS)
    if found.type != "subvolume":
        raise _fail(what, errno.EOPNOTSUPP)
    try:
        _btrfs_limit(found.target, limit)
    except OSError as exc:
        raise _fail(what, exc.errno or errno.EIO) from None


# --- remove ---------------------------------------------------------------------------------


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                points.append(_unescape_mountinfo(fields[4]))
    return points


def _unescape_mountinfo(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit() and i + 4 <= len(text):
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _has_mounts(tree: Path, points: Sequence[str]) -> bool:
    top = os.path.realpath(tree)
    return any(p == top or p.startswith(top.rstrip("/") + "/") for p in points)


def _aux_files(image: TargetImage, host: Host) -> list[Path]:
    """What systemd removes with an image: its nspawn settings and its root hash file."""
    nspawn = f"{image.name}.nspawn"
    directory = image.path.rsplit("/", 1)[0] or "/"
    paths = [
        f"/etc/systemd/nspawn/{nspawn}",
        f"/run/systemd/nspawn/{nspawn}",
        f"{directory}/{nspawn}",
        f"{directory}/{image.name}.roothash",
    ]
    return [host.path(p) for p in dict.fromkeys(paths)]


@dataclass(slots=True)
class _Staged:
    image: TargetImage
    moved_to: Path | None  # the hidden name the image was renamed to (None: nothing moved)
    immutable_cleared: bool


def remove_images(
    images: Sequence[str],
    *,
    host: Host | None = None,
    registry: Registry | None = None,
    cwd: Path | None = None,
) -> list[TargetImage]:
    """Remove the images (names or paths) and their nspawn settings and root hash files.

    All or nothing: every image is found, checked (not attached, not a vendor image, no mount
    below it) and locked, then each is renamed to a hidden ``.#`` name next to it (out of the
    search path; undone if one of them can't be), and only then deleted.

    :raises ImageOpError: one line, naming the first image that can't be removed; nothing has
        been removed then. A deletion that fails after the images left the search path names
        what is left.
    """
    host = host or Host()
    what = REMOVE_FAILED
    if not images:
        raise PortableError("Too few arguments.")
    found: list[TargetImage] = []
    attached = all_attached_units(host)
    points: list[str] | None = None
    for arg in images:
        image = find_target(arg, host=host, what=what, registry=registry, cwd=cwd)
        if image_state(image.path, host=host, attached=attached) != "detached":
            raise ImageOpError(
                f"{what}: Image '{printable(image.path)}' is not detached, refusing."
            )
        if image.is_vendor:
            raise _fail(what, errno.EROFS)
        if any(f.local == image.local for f in found):
            continue  # the same image twice
        if image.type in ("directory", "subvolume") and not image.is_link:
            points = _mount_points() if points is None else points
            if _has_mounts(image.target, points):
                raise _fail(what, errno.EBUSY)
        found.append(image)
    with _locked(found, host, what):
        staged = _stage(found, what)
        _delete(staged, host, what)
    return found


def _stage(images: Sequence[TargetImage], what: str) -> list[_Staged]:
    """Move every image out of the search path, or none."""
    staged: list[_Staged] = []
    try:
        for image in images:
            entry = _Staged(image, None, False)
            staged.append(entry)
            if image.type == "block" and image.path.startswith("/dev/"):
                continue  # a real device node stays; only its settings go
            if image.type == "directory" and not image.is_link:
                # A read-only (immutable) directory can be removed: clear the flag first.
                with contextlib.suppress(OSError):
                    old = _chattr(image.local, 0, _FS_IMMUTABLE_FL, follow=False)
                    entry.immutable_cleared = bool(old & _FS_IMMUTABLE_FL)
            hidden = image.local.parent / f".#portable-remove-{secrets.token_hex(6)}"
            os.rename(image.local, hidden)
            entry.moved_to = hidden
    except OSError as exc:
        for entry in reversed(staged):
            with contextlib.suppress(OSError):
                if entry.moved_to is not None:
                    os.rename(entry.moved_to, entry.image.local)
                if entry.immutable_cleared:
                    _chattr(entry.image.local, _FS_IMMUTABLE_FL, _FS_IMMUTABLE_FL, follow=False)
        raise _fail(what, exc.errno or errno.EIO) from None
    return staged


def _delete(staged: Sequence[_Staged], host: Host, what: str) -> None:
    left: list[str] = []
    first_error = 0
    for entry in staged:
        moved = entry.moved_to
        if moved is not None:
            try:
                _remove_entry(moved, entry.image.type)
            except OSError as exc:
                first_error = first_error or exc.errno or errno.EIO
                left.append(host.unpath(moved))
        for aux in _aux_files(entry.image, host):
            with contextlib.suppress(FileNotFoundError, OSError):
                os.unlink(aux)
    if first_error:
        raise ImageOpError(
            f"{what}: {_why(first_error)} (left behind: {', '.join(map(printable, left))})"
        )


def _remove_entry(path: Path, kind: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)  # a raw file, a link to the image, a device node outside /dev
        return
    parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _remove_child(parent_fd, path.name, st.st_dev, subvolumes=_fs_type(path) == _BTRFS_MAGIC)
    finally:
        os.close(parent_fd)


def _remove_child(parent_fd: int, name: str, dev: int, *, subvolumes: bool) -> None:
    """rm -rf of ``name`` below ``parent_fd``: never follows a link, never crosses into another
    file system; a btrfs subvolume is deleted as one (systemd's rm_rf with REMOVE_SUBVOLUME)."""
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    if st.st_dev != dev:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))  # a mount point: not ours
    if subvolumes and st.st_ino == 256:
        with contextlib.suppress(OSError):
            _btrfs_destroy(parent_fd, name)
            return
        # a read-only subvolume's files can't be unlinked one by one
        with contextlib.suppress(OSError):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                fcntl.ioctl(fd, _BTRFS_IOC_SUBVOL_SETFLAGS, (0).to_bytes(8, "little"))
            finally:
                os.close(fd)
    fd = os.open(
        name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd
    )
    try:
        if os.fstat(fd).st_ino != st.st_ino:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))  # changed under us
        first: OSError | None = None
        for child in os.listdir(fd):
            try:
                _remove_child(fd, child, dev, subvolumes=subvolumes)
            except OSError as exc:
                first = first or exc
        if first is not None:
            raise first
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)
