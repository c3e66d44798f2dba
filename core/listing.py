"""Images in the search path, as ``portable list`` shows them (spec 5.3).

Nothing is mounted: names, types and sizes come from the directory entries and ``stat``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from portable.confined import UnsafePath
from portable.host import IMAGE_SEARCH_PATH, Host
from portable.names import is_valid_image_name
from portable.registry import Registry, get_registry
from portable.state import ManagerView, all_attached_units, image_state

__all__ = ["ImageInfo", "list_images"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageInfo:
    """One row of ``list``. Times are µs since the epoch (0: unknown); usage ``None``: unknown."""

    name: str
    type: str
    format: str
    path: str
    read_only: bool
    crtime: int
    mtime: int
    usage: int | None
    state: str


_STATX_BTIME = 0x800
_AT_FDCWD = -100


@functools.cache
def _libc() -> ctypes.CDLL:
    # The process's own C library: no ctypes.util.find_library(), which runs `ldconfig -p`
    # (4 s over 200 images when it was called per image).
    return ctypes.CDLL(None, use_errno=True)


def _birth_time_us(path: Path) -> int:
    """Creation time via statx(2): Python's os.stat does not expose it on Linux."""
    libc = _libc()
    if not hasattr(libc, "statx"):
        return 0
    buf = ctypes.create_string_buffer(256)
    if libc.statx(_AT_FDCWD, os.fsencode(path), 0, _STATX_BTIME, buf) != 0:
        return 0
    mask = int.from_bytes(buf.raw[0:4], "little")
    if not mask & _STATX_BTIME:
        return 0
    sec = int.from_bytes(buf.raw[80:88], "little", signed=True)
    nsec = int.from_bytes(buf.raw[88:92], "little")
    return sec * 1_000_000 + nsec // 1000


_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x10


def _is_immutable(path: Path) -> bool:
    import fcntl

    try:
        # O_DIRECTORY: whatever the path has become since its stat, never open a device
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_DIRECTORY)
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


def _read_only(host_path: str, local: Path, st: os.stat_result) -> bool:
    # systemd's rules (spec 1.1): vendor images under /usr, read-only file systems, the
    # immutable flag on directories, no write bits on image files.
    if host_path.startswith("/usr/"):
        return True
    try:
        os.access(local, os.W_OK)  # access() as root says yes; EROFS is what we look for
        if os.statvfs(local).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        pass
    if stat.S_ISDIR(st.st_mode):
        return _is_immutable(local)
    if stat.S_ISREG(st.st_mode):
        return not st.st_mode & 0o222
    return False


def list_images(
    *,
    host: Host | None = None,
    registry: Registry | None = None,
    manager: ManagerView | None = None,
) -> list[ImageInfo]:
    """Every image in the search path, sorted by name; the first of a name wins (spec 5.3)."""
    host = host or Host()
    registry = registry or get_registry(root=host.root)
    formats = [r.spec for r in registry.formats() if r.spec.name_lookup]
    rows: dict[str, ImageInfo] = {}
    attached = all_attached_units(host)  # once, not per image
    for d in IMAGE_SEARCH_PATH:
        local_dir = host.path(d)
        try:
            entries = sorted(os.listdir(local_dir))
        except OSError:
            continue
        for entry in entries:
            try:
                resolved = host.resolve(f"{d}/{entry}")
            except UnsafePath:
                continue  # a symlink loop (below --root): not an image
            if resolved is None:
                continue  # dangling link: not an image
            local = resolved
            try:
                st = os.stat(local)
            except OSError:
                continue
            for fmt in formats:
                if stat.S_ISREG(st.st_mode) and not any(entry.endswith(s) for s in fmt.suffixes):
                    continue
                try:
                    claimed = fmt.detect(local)
                except Exception:
                    claimed = False
                if not claimed:
                    continue
                name = fmt.image_name(entry)
                if name in rows or not is_valid_image_name(name):
                    break
                host_path = f"{d}/{entry}"
                is_file = stat.S_ISREG(st.st_mode)
                rows[name] = ImageInfo(
                    name=name,
                    type=fmt.image_type,
                    format=fmt.name,
                    path=host_path,
                    read_only=_read_only(host_path, local, st),
                    crtime=_birth_time_us(local),
                    # systemd reports no mtime for directories ("we don't use the dir mtime")
                    mtime=st.st_mtime_ns // 1000 if is_file else 0,
                    usage=st.st_blocks * 512 if is_file else None,
                    state=image_state(host_path, host=host, manager=manager, attached=attached),
                )
                break
    return [rows[n] for n in sorted(rows)]
