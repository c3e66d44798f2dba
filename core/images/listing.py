"""Images in the search path, as ``portable list`` shows them (spec 5.3).

Nothing is mounted: names, types and sizes come from the directory entries and ``stat``. As
systemd's image discovery, a regular file named ``NAME.raw`` is a raw image by its name: it is
not opened (a directory is, once, for its immutable flag, as systemd opens it). Which raw format
it holds (squashfs, gpt, ext4...) is read from its header only when asked
(:attr:`ImageInfo.format`, shown by ``list --json``). Contents decide only for names that need
it: an entry without a format's suffix that is not a directory, or a suffix of a format whose
images are not raw files (an archive a plugin unpacks).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import stat
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from portable.engine.state import AttachedUnit, ManagerView, all_attached_units, image_state
from portable.images.confined import UnsafePath
from portable.plugin.registry import Registry, get_registry
from portable.plugins.image_formats.directory import DIRECTORY
from portable.systemd.host import IMAGE_SEARCH_PATH, Host
from portable.systemd.names import is_valid_image_name

if TYPE_CHECKING:
    from portable.plugin.types import ImageFormat

__all__ = ["ImageInfo", "list_images"]


# A NamedTuple, not a frozen dataclass: made once per image (2,000 and more), at a third of
# the cost; never changed once made, and only ever built by keyword.
class ImageInfo(NamedTuple):
    """One row of ``list``. Times are µs since the epoch (0: unknown); usage ``None``: unknown.

    ``format_of``: finds the image's format (see :attr:`format`) when first asked.
    """

    name: str
    type: str
    path: str
    read_only: bool
    crtime: int
    mtime: int
    usage: int | None
    state: str
    format_of: Callable[[], str | None]

    @property
    def format(self) -> str | None:
        """The name of the format that reads the image; for a raw file (listed by its name, as
        systemd lists it) read from its header now, ``None`` if no format reads it."""
        return self.format_of()


class _Known:
    """A format known without looking: the one that claimed the image (``None``: one that
    can't be known, the image being unreadable)."""

    __slots__ = ("_name",)

    def __init__(self, name: str | None) -> None:
        self._name = name

    def __call__(self) -> str | None:
        return self._name


class _Probe:
    """The first of ``candidates`` whose ``detect()`` claims ``path``, asked once, when the
    format is first wanted (``list --json``): the table needs no more than the file's name."""

    __slots__ = ("_candidates", "_found", "_path")

    def __init__(self, candidates: Sequence[ImageFormat], path: str) -> None:
        self._candidates = candidates
        self._path = path
        self._found: tuple[str | None] | None = None

    def __call__(self) -> str | None:
        if self._found is None:
            self._found = (
                next((f.name for f in self._candidates if _claims(f, Path(self._path))), None),
            )
        return self._found[0]


def _claims(fmt: ImageFormat, path: Path) -> bool:
    # The registry's formats: a detect() that raises is "not mine" (portable.plugin.hooks)
    return bool(fmt.detect(path))


_AT_FDCWD = -100
_STATX_BTIME = 0x800
_STATX_MNT_ID = 0x1000
_STATX_WANT = 0x7FF | _STATX_BTIME | _STATX_MNT_ID  # and STATX_BASIC_STATS
# struct statx: stx_mask @0, stx_mode @28, stx_blocks @48, stx_btime @80, stx_mtime @112,
# stx_mnt_id @144
_STATX_FIELDS = struct.Struct("<I24xH18xQ24xqI4x16xqI20xQ")


@functools.cache
def _statx() -> Callable[..., int] | None:
    # The process's own C library: no ctypes.util.find_library(), which runs `ldconfig -p`
    # (4 s over 200 images when it was called per image).
    return getattr(ctypes.CDLL(None, use_errno=True), "statx", None)


@functools.cache
def _statx_buffer() -> Any:
    return ctypes.create_string_buffer(256)


def _stat(path: str, dir_fd: int = _AT_FDCWD) -> tuple[int, int, int, int, int] | None:
    """Mode, mtime (ns), 512-byte blocks, birth time (µs, 0: unknown) and mount ID (0:
    unknown) of ``path`` (relative to ``dir_fd`` if given), links followed, in one statx(2)
    (Python's os.stat has neither of the last two on Linux); ``None`` if it can't be looked
    at (gone, a dangling link, a loop)."""
    statx = _statx()
    if statx is None:
        try:
            st = os.stat(path, dir_fd=None if dir_fd == _AT_FDCWD else dir_fd)
        except OSError:
            return None
        return st.st_mode, st.st_mtime_ns, st.st_blocks, 0, 0
    buf = _statx_buffer()
    if statx(dir_fd, os.fsencode(path), 0, _STATX_WANT, buf) != 0:
        return None
    # unpack_from(buf): the buffer itself, not a copy of it (buf.raw)
    mask, mode, blocks, bsec, bnsec, msec, mnsec, mnt = _STATX_FIELDS.unpack_from(buf)
    birth = bsec * 1_000_000 + bnsec // 1000 if mask & _STATX_BTIME else 0
    return mode, msec * 1_000_000_000 + mnsec, blocks, birth, mnt if mask & _STATX_MNT_ID else 0


_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x10


def _is_immutable(path: str, dir_fd: int | None = None) -> bool:
    try:
        # O_DIRECTORY: whatever the path has become since its stat, never open a device
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_DIRECTORY
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
        return bool(int.from_bytes(buf[:4], "little") & _FS_IMMUTABLE_FL)
    except OSError:
        return False
    finally:
        os.close(fd)


def _read_only(
    host_path: str,
    local: str,
    mode: int,
    mount: int,
    mounts: dict[int, bool],
    at: tuple[int | None, str] = (None, ""),
) -> bool:
    """systemd's rules (spec 1.1): vendor images under /usr, read-only file systems (systemd
    asks faccessat(W_OK) for EROFS; statvfs tells the same, and for any user), the immutable
    flag on directories, no write bits on image files. ``mounts``: read-only or not by mount
    ID (``mount``, 0 if unknown), filled here: the flag belongs to the mount. ``at``: the
    search-path directory's descriptor (if open) and the entry's name in it, to open by."""
    if host_path.startswith("/usr/"):
        return True
    ro = mounts.get(mount) if mount else None
    if ro is None:
        try:
            ro = bool(os.statvfs(local).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        if mount:
            mounts[mount] = ro
    if ro:
        return True
    if stat.S_ISDIR(mode):
        return _is_immutable(at[1], at[0]) if at[0] is not None else _is_immutable(local)
    if stat.S_ISREG(mode):
        return not mode & 0o222
    return False


def list_images(
    *,
    host: Host | None = None,
    registry: Registry | None = None,
    manager: ManagerView | None = None,
) -> list[ImageInfo]:
    """Every image in the search path, sorted by name; the first of a name wins (spec 5.3).

    Run by a user who can't read everything (portablectl asks portabled, which runs as root),
    what can be known is shown rather than nothing:

    * an entry that can be listed but not looked at (a link into a 0700 directory) is a row
      with its name and state; its type only when its name says it (``NAME.raw`` is raw, as
      systemd decides by the name too), otherwise it is listed only if it is attached (then it
      is an image), with an empty type. Its times are ``-``, its usage empty, read-only only
      under /usr (systemd's rule by path; the rest can't be known);
    * a search-path directory that can't be listed shows the images attached from it, as the
      (world-readable) markers in the attached directories name them; one that is not attached
      can't be known and is not shown;
    * the state comes from the markers and, without ``--root``, from the service manager,
      which any user may ask.
    """
    host = host or Host()
    registry = registry or get_registry(root=host.root)
    formats = [r.spec for r in registry.formats() if r.spec.name_lookup]
    by_content = [f for f in formats if not f.suffixes]  # asked about entries of no suffix
    by_suffix = _suffix_table(formats)
    rows: dict[str, ImageInfo] = {}
    attached = all_attached_units(host)  # once, not per image
    # Nothing attached (the usual case on a host with many images): every image is detached,
    # image_state's answer, without asking it 2,000 times.
    any_attached = any(unit.has_unit_file for units in attached.values() for unit in units)

    def state(host_path: str) -> str:
        if not any_attached:
            return "detached"
        return image_state(host_path, host=host, manager=manager, attached=attached)

    mounts: dict[int, bool] = {}
    real = host.is_real
    for d in IMAGE_SEARCH_PATH:
        try:
            entries = sorted(os.listdir(host.path(d)))
        except PermissionError:
            # Not ours to read (a 0700 /etc/portables): what is attached from it is named in
            # the markers, which are world-readable.
            entries = _attached_entries(d, attached)
        except OSError:
            continue
        # On the host, entries are looked at relative to their directory (statx and open by
        # name, not by a path the kernel walks again for each of them).
        dir_fd = _open_dir(d) if real else None
        try:
            for entry in entries:
                try:
                    row = _entry(entry, d, dir_fd, host, real, by_content, by_suffix, mounts, state)
                except PermissionError:  # there, but not ours to look at
                    row = _unreadable(entry, f"{d}/{entry}", formats, host, manager, attached)
                if row is not None and row.name not in rows:
                    rows[row.name] = row
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
    return [rows[n] for n in sorted(rows)]


def _open_dir(path: str) -> int | None:
    """A descriptor of search-path directory ``path`` to look its entries up by (O_PATH: it
    is only a starting point), ``None`` if it can't be had (the entries' paths are used)."""
    try:
        return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _entry(
    entry: str,
    d: str,
    dir_fd: int | None,
    host: Host,
    real: bool,
    by_content: Sequence[ImageFormat],
    by_suffix: dict[str, tuple[str, list[ImageFormat]]],
    mounts: dict[int, bool],
    state: Callable[[str], str],
) -> ImageInfo | None:
    """The row of entry ``entry`` of search-path directory ``d`` (``dir_fd``: its descriptor
    on the host), ``None`` if it is no image (or has no valid image name); PermissionError if
    it is there but can't be looked at. ``state``: an image's state by its path."""
    host_path = f"{d}/{entry}"
    local = host_path  # the kernel follows the links (_stat: one syscall)
    if not real:  # (host.is_real, asked once by the caller: a Path comparison)
        try:
            resolved = host.resolve(host_path)
        except UnsafePath as e:
            if e.reason != _EACCES:
                return None  # a symlink loop (below --root): not an image
            raise PermissionError(errno.EACCES, e.reason, host_path) from e
        if resolved is None:
            return None  # dangling link: not an image
        local = str(resolved)
    st = _stat(local) if dir_fd is None else _stat(entry, dir_fd)
    if st is None:
        if _is_denied(local):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), host_path)
        return None  # dangling link, loop, gone since the listing: not an image
    mode, mtime_ns, blocks, birth, mount = st
    found = _classify(entry, local, mode, by_content, by_suffix)
    if found is None:
        return None
    name, image_type, format_of = found
    if not is_valid_image_name(name):
        return None
    is_file = stat.S_ISREG(mode)
    return ImageInfo(
        name=name,
        type=image_type,
        path=host_path,
        read_only=_read_only(host_path, local, mode, mount, mounts, (dir_fd, entry)),
        crtime=birth,
        # systemd reports no mtime for directories ("we don't use the dir mtime")
        mtime=mtime_ns // 1000 if is_file else 0,
        usage=blocks * 512 if is_file else None,
        state=state(host_path),
        format_of=format_of,
    )


_EACCES = os.strerror(errno.EACCES).lower()  # UnsafePath's reason for it


def _is_denied(local: str) -> bool:
    """Whether ``local`` (which _stat could not look at) is there but not ours to look at."""
    try:
        os.stat(local)
    except PermissionError:
        return True
    except OSError:
        return False
    return False


def _attached_entries(d: str, attached: dict[bool, list[AttachedUnit]]) -> list[str]:
    """The entries of search-path directory ``d`` that attached units' markers name."""
    found = {
        path[len(d) + 1 :]
        for units in attached.values()
        for unit in units
        if unit.has_unit_file
        for path in unit.marker[:1]  # the image; extensions are not listed
        if os.path.dirname(path) == d and path[len(d) + 1 :] not in ("", ".", "..")
    }
    return sorted(found)


def _unreadable(
    entry: str,
    host_path: str,
    formats: Sequence[ImageFormat],
    host: Host,
    manager: ManagerView | None,
    attached: dict[bool, list[AttachedUnit]],
) -> ImageInfo | None:
    """The row of a search-path entry that is there but can't be looked at (see
    :func:`list_images`), or ``None`` if it can't be told to be an image."""
    # As _classify: the longest suffix, raw if every format of that suffix is raw
    suffix = max((s for f in formats for s in f.suffixes if entry.endswith(s)), key=len, default="")
    among = [f for f in formats if suffix in f.suffixes]
    raw = among if among and all(f.image_type == "raw" for f in among) else []
    name = raw[0].image_name(entry) if raw else entry
    if not is_valid_image_name(name):
        return None
    state = image_state(host_path, host=host, manager=manager, attached=attached)
    if not raw and state == "detached":
        return None  # a directory image or no image at all: unknown, so not claimed
    return ImageInfo(
        name=name,
        type="raw" if raw else "",
        path=host_path,
        read_only=host_path.startswith("/usr/"),
        crtime=0,
        mtime=0,
        usage=None,
        state=state,
        format_of=_Known(None),
    )


def _suffix_table(formats: Sequence[ImageFormat]) -> dict[str, tuple[str, list[ImageFormat]]]:
    """The formats' suffixes, longest first (.tar.gz before .gz), each with its type (``raw``
    if every format of that suffix is raw, else empty: its formats' detect() decides) and its
    formats, in their order."""
    table: dict[str, tuple[str, list[ImageFormat]]] = {}
    for suffix in sorted({s for f in formats for s in f.suffixes}, key=len, reverse=True):
        among = [f for f in formats if suffix in f.suffixes]
        types = {f.image_type for f in among}
        table[suffix] = (types.pop() if types == {"raw"} else "", among)
    return table


def _is_builtin_directory(fmt: ImageFormat) -> bool:
    """Whether ``fmt`` is our directory format, whose detect() is a stat we have made. (The
    registry wraps a format's detect(); a built-in format's open() is kept as it is.)"""
    return fmt.name == DIRECTORY.name and fmt.open is DIRECTORY.open


_DIRECTORY_FORMAT = _Known(DIRECTORY.name)


def _classify(
    entry: str,
    local: str,
    mode: int,
    by_content: Sequence[ImageFormat],
    by_suffix: dict[str, tuple[str, list[ImageFormat]]],
) -> tuple[str, str, Callable[[], str | None]] | None:
    """(name, type, format finder) of a search-path entry, or ``None`` if it is no image.
    ``by_suffix``: see :func:`_suffix_table`."""
    if stat.S_ISREG(mode):
        for suffix, (raw, among) in by_suffix.items():
            if not entry.endswith(suffix):
                continue
            if raw:
                # systemd's rule: NAME.raw is a raw image, whatever it holds; nothing is opened
                return among[0].image_name(entry), raw, _Probe(among, local)
            for fmt in among:  # e.g. an archive a plugin unpacks: its detect() decides
                if _claims(fmt, Path(local)):
                    return fmt.image_name(entry), fmt.image_type, _Known(fmt.name)
            break  # only the longest suffix counts
    for fmt in by_content:  # a directory, or what a plugin recognises by content
        if _is_builtin_directory(fmt):
            if stat.S_ISDIR(mode):
                return entry, DIRECTORY.image_type, _DIRECTORY_FORMAT
        elif _claims(fmt, Path(local)):
            return fmt.image_name(entry), fmt.image_type, _Known(fmt.name)
    return None
