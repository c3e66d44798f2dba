"""Read-only loop devices and private, read-only mounts: how raw images are read.

Reading a raw image (``inspect``, the first step of ``attach``) needs its file system mounted.
This module does that with as little trace on the host as possible, and always undoes it:

* **Loop device**: the kernel's loop ioctls, no ``losetup``: ``LOOP_CTL_GET_FREE`` on
  ``/dev/loop-control``, then one ``LOOP_CONFIGURE`` (read-only, *autoclear*, optionally an
  offset and size limit, which is how one GPT partition is reached without partition device
  nodes). With autoclear the kernel detaches the device as soon as the last user (our file
  descriptor, the mount) is gone, so even a killed process leaves no loop device behind.
  Kernels without ``LOOP_CONFIGURE`` (< 5.8) get ``LOOP_SET_FD`` + ``LOOP_SET_STATUS64``.
* **Mount**: the new mount API (``fsopen``/``fsconfig``/``fsmount``) creates a *detached*
  mount, read-only, ``nosuid,nodev,noexec``, attached nowhere in any mount namespace: it never
  appears in ``/proc/self/mountinfo``, nobody else can see it, nothing propagates anywhere, and
  it disappears when its file descriptor is closed (also when the process dies). The tree is
  read through ``/proc/self/fd/N``, with the usual confined path resolution. A ``/usr``
  partition is placed below a root the same way (``move_mount`` between detached trees, Linux
  6.15+).
* **Fallback** where the new mount API is unavailable (kernels before 5.2, seccomp filters
  that refuse it) or a partition must be placed below another on an older kernel: classic
  ``mount(2)`` on a fresh ``0700`` directory below ``/run/portable-services/mnt/``, always
  unmounted (``MNT_DETACH``) and removed on the way out, also on errors and ``KeyboardInterrupt``.
  Only a ``SIGKILL`` in between can leave such a mount point; the autoclear loop device still
  goes when it is unmounted.

systemd does the same job differently: portabled forks a child into a private mount namespace,
dissects the loop device with partition scanning on, mounts it on ``/tmp/inspect-XXXXXX`` there
and streams the files back over a socket. A detached mount gives the same isolation without the
fork, and an offset loop device needs no partition device nodes (which do not exist inside
containers without udev).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import struct
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from portable.errors import BadImage, PortableError

__all__ = [
    "MOUNT_BASE",
    "LoopDevice",
    "LoopError",
    "MountError",
    "loop_device",
    "mount_image",
    "mount_read_only",
]

MOUNT_BASE = Path("/run/portable-services/mnt")

# <linux/loop.h>
_LOOP_SET_FD = 0x4C00
_LOOP_CLR_FD = 0x4C01
_LOOP_SET_STATUS64 = 0x4C04
_LOOP_CONFIGURE = 0x4C0A
_LOOP_CTL_GET_FREE = 0x4C82
_LO_FLAGS_READ_ONLY = 1
_LO_FLAGS_AUTOCLEAR = 4
_LO_NAME_SIZE = 64
_LOOP_MAJOR = 7
# struct loop_info64: 5 x u64, 4 x u32, file name, crypt name, key, 2 x u64 (232 bytes)
_LOOP_INFO64 = struct.Struct("=5Q4I64s64s32s2Q")
_LOOP_CONFIG_RESERVED = 8 * 8

# <linux/fs.h>
_BLKGETSIZE64 = 0x80081272

# <linux/mount.h>; the new mount syscalls have the same numbers on every architecture.
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 1
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MNT_DETACH = 2

_GET_FREE_ATTEMPTS = 64


class LoopError(PortableError):
    """No loop device could be set up (no loop support, not root, all busy...)."""


class MountError(BadImage):
    """The kernel refused to mount the image's file system."""


# A NamedTuple: made at import in a fifth of the time of a frozen dataclass (~0.08 ms, not 0.45).
class LoopDevice(NamedTuple):
    """An attached loop device: its node, its number and our (read-only) descriptor."""

    node: str
    number: int
    fd: int
    size: int


_libc: Any = None


def _c() -> Any:
    """libc through ctypes, loaded on first use."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        _libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return _libc


def _syscall(number: int, *args: object) -> int:
    r = int(_c().syscall(ctypes.c_long(number), *args))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _strerror(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


# --- loop devices --------------------------------------------------------------------------


def _open_loop_node(number: int) -> tuple[int, str]:
    """Open /dev/loopN read-only; create the node if udev did not (containers, minimal hosts)."""
    node = f"/dev/loop{number}"
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY
    try:
        return os.open(node, flags), node
    except FileNotFoundError:
        pass
    try:
        dev = Path(f"/sys/devices/virtual/block/loop{number}/dev").read_text().strip()
        major, minor = (int(x) for x in dev.split(":"))
    except (OSError, ValueError):
        major, minor = _LOOP_MAJOR, number
    with contextlib.suppress(FileExistsError):
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
    fd = os.open(node, flags)
    if os.major(os.fstat(fd).st_rdev) != major:
        os.close(fd)
        raise LoopError(f"{node} is not the loop device it should be")
    return fd, node


def _configure(loop_fd: int, backing_fd: int, name: bytes, offset: int, size: int) -> None:
    info = _LOOP_INFO64.pack(
        0,
        0,
        0,
        offset,
        size,
        0,
        0,
        0,
        _LO_FLAGS_READ_ONLY | _LO_FLAGS_AUTOCLEAR,
        name[: _LO_NAME_SIZE - 1],
        b"",
        b"",
        0,
        0,
    )
    config = struct.pack("=II", backing_fd, 0) + info + bytes(_LOOP_CONFIG_RESERVED)
    try:
        fcntl.ioctl(loop_fd, _LOOP_CONFIGURE, config)
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTTY):
            raise
    # Before Linux 5.8: two steps (a window in which the device is unconfigured; harmless).
    fcntl.ioctl(loop_fd, _LOOP_SET_FD, backing_fd)
    try:
        fcntl.ioctl(loop_fd, _LOOP_SET_STATUS64, info)
    except BaseException:
        with contextlib.suppress(OSError):
            fcntl.ioctl(loop_fd, _LOOP_CLR_FD, 0)
        raise


@contextmanager
def loop_device(path: Path, *, offset: int = 0, size: int = 0) -> Iterator[LoopDevice]:
    """A read-only, autoclear loop device over ``path`` (``offset``/``size`` in bytes, 0: all).

    Released on exit (the kernel detaches it once the last user is gone).

    :raises LoopError: the host has no usable loop devices (or we are not root).
    :raises BadImage: the image can't be opened.
    """
    try:
        backing = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise BadImage(f"Cannot open image '{path}': {_strerror(exc)}") from None
    loop_fd = -1
    try:
        if not stat.S_ISREG(os.fstat(backing).st_mode) and not stat.S_ISBLK(
            os.fstat(backing).st_mode
        ):
            raise BadImage(f"Image '{path}' is neither a regular file nor a block device")
        name = os.fsencode(os.path.realpath(path))
        loop_fd, node, number = _attach(backing, name, offset, size)
    finally:
        os.close(backing)
    try:
        buf = bytearray(8)
        fcntl.ioctl(loop_fd, _BLKGETSIZE64, buf)
        yield LoopDevice(node=node, number=number, fd=loop_fd, size=int.from_bytes(buf, "little"))
    finally:
        os.close(loop_fd)


def _attach(backing: int, name: bytes, offset: int, size: int) -> tuple[int, str, int]:
    try:
        control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise LoopError(
            f"Cannot set up a loop device to read the image: /dev/loop-control: "
            f"{_strerror(exc)}" + (" (are you root?)" if exc.errno == errno.EACCES else "")
        ) from None
    try:
        last: OSError | None = None
        for _ in range(_GET_FREE_ATTEMPTS):
            try:
                number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
                fd, node = _open_loop_node(number)
            except OSError as exc:
                raise LoopError(
                    f"Cannot set up a loop device to read the image: {_strerror(exc)}"
                ) from None
            try:
                _configure(fd, backing, name, offset, size)
                return fd, node, number
            except OSError as exc:
                os.close(fd)
                if exc.errno != errno.EBUSY:  # EBUSY: someone else took it meanwhile
                    raise LoopError(
                        f"Cannot set up a loop device to read the image: {_strerror(exc)}"
                    ) from None
                last = exc
            except BaseException:
                os.close(fd)
                raise
        raise LoopError(f"Cannot set up a loop device to read the image: {last}")
    finally:
        os.close(control)


# --- mounts --------------------------------------------------------------------------------

_ATTRS = _MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | _MOUNT_ATTR_NOEXEC
_MS_FLAGS = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC


def _fs_log(fs_fd: int) -> str:
    """What the file system driver said about a failed mount (the fs context's log)."""
    lines: list[str] = []
    for _ in range(16):
        try:
            msg = os.read(fs_fd, 4096).decode("utf-8", "replace").strip()
        except OSError:
            break
        if msg:
            lines.append(msg[2:] if msg[:2] in ("e ", "w ", "i ") else msg)
    return "; ".join(lines)


class _NewApiUnavailable(Exception):
    pass


def _detached_mount(
    source: str, fstype: str, options: Mapping[str, str | None], *, read_only: bool = True
) -> int:
    """A detached mount of ``source`` (read-only unless told otherwise); its descriptor."""
    try:
        fs_fd = _syscall(_SYS_FSOPEN, fstype.encode(), _FSOPEN_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise MountError(f"the kernel does not support the {fstype} file system") from None
        raise _NewApiUnavailable(str(exc)) from None
    try:
        try:
            _syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_STRING, b"source", source.encode(), 0)
            if read_only:
                _syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_FLAG, b"ro", None, 0)
            for key, value in options.items():
                if value is None:
                    _syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_FLAG, key.encode(), None, 0)
                else:
                    _syscall(
                        _SYS_FSCONFIG,
                        fs_fd,
                        _FSCONFIG_SET_STRING,
                        key.encode(),
                        value.encode(),
                        0,
                    )
            _syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_CMD_CREATE, None, None, 0)
        except OSError as exc:
            detail = _fs_log(fs_fd)
            raise MountError(
                f"cannot mount its {fstype} file system: {_strerror(exc)}"
                + (f" ({detail})" if detail else "")
            ) from None
        attrs = _ATTRS if read_only else _ATTRS & ~_MOUNT_ATTR_RDONLY
        try:
            return _syscall(_SYS_FSMOUNT, fs_fd, _FSMOUNT_CLOEXEC, attrs)
        except OSError as exc:
            raise MountError(f"cannot mount its {fstype} file system: {_strerror(exc)}") from None
    finally:
        os.close(fs_fd)


def _move_below(mount_fd: int, parent_fd: int, name: str) -> None:
    """Put detached mount ``mount_fd`` on directory ``name`` of detached tree ``parent_fd``."""
    _syscall(
        _SYS_MOVE_MOUNT,
        mount_fd,
        b"",
        parent_fd,
        name.encode(),
        _MOVE_MOUNT_F_EMPTY_PATH,
    )


class MountSpec(NamedTuple):  # a NamedTuple: see LoopDevice
    """One file system to mount: ``where`` is ``""`` for the root, else e.g. ``"usr"``."""

    source: str
    fstype: str
    where: str = ""
    options: Mapping[str, str | None] | None = None


@contextmanager
def mount_read_only(specs: list[MountSpec]) -> Iterator[Path]:
    """Mount ``specs`` read-only, nosuid, nodev, noexec; yield the root of the tree.

    ``specs[0]`` is the root, unless its ``where`` is set, in which case the root is an empty
    directory (a ``/usr``-only image). Everything is unmounted on exit.

    :raises MountError: the kernel refused a file system (message without the image path).
    """
    try:
        with _mount_detached(specs) as root:
            yield root
            return
    except _NewApiUnavailable:
        pass
    with _mount_classic(specs) as root:
        yield root


@contextmanager
def _mount_detached(specs: list[MountSpec]) -> Iterator[Path]:
    fds: list[int] = []
    try:
        if specs[0].where:
            # No root file system (a /usr-only image): a small private tmpfs holds the mount
            # points. It stays writable (mount points are made in it), but it is detached: no
            # one but this process can reach it.
            root_fd = _detached_mount("tmpfs", "tmpfs", {"size": "64k"}, read_only=False)
            fds.append(root_fd)
            for spec in specs:
                os.mkdir(spec.where, 0o755, dir_fd=root_fd)
        for spec in specs:
            fds.append(_detached_mount(spec.source, spec.fstype, spec.options or {}))
        root_fd = fds[0]
        for spec, fd in zip(specs, fds[-len(specs) :], strict=True):
            if not spec.where:
                continue
            try:
                _move_below(fd, root_fd, spec.where)
            except OSError as exc:
                # Linux before 6.15 can't put a mount into a detached tree: fall back.
                raise _NewApiUnavailable(str(exc)) from None
        yield Path(f"/proc/self/fd/{root_fd}")
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _mount_point() -> Path:
    """A new, empty ``0700`` directory below :data:`MOUNT_BASE` (``tempfile.mkdtemp()``'s way,
    whose module takes longer to import than this takes to run)."""
    while True:
        top = MOUNT_BASE / f"image-{os.urandom(6).hex()}"
        try:
            os.mkdir(top, 0o700)
            return top
        except FileExistsError:
            continue


@contextmanager
def _mount_classic(specs: list[MountSpec]) -> Iterator[Path]:
    try:
        MOUNT_BASE.mkdir(mode=0o700, parents=True, exist_ok=True)
        top = _mount_point()
    except OSError as exc:
        raise LoopError(f"Cannot create a mount point in {MOUNT_BASE}: {_strerror(exc)}") from None
    mounted: list[Path] = []
    try:
        for spec in specs:
            target = top / spec.where if spec.where else top
            if spec.where:
                target.mkdir(exist_ok=True)
            data = ",".join(k if v is None else f"{k}={v}" for k, v in (spec.options or {}).items())
            r = _c().mount(
                spec.source.encode(),
                str(target).encode(),
                spec.fstype.encode(),
                _MS_FLAGS,
                data.encode() or None,
            )
            if r != 0:
                e = ctypes.get_errno()
                raise MountError(f"cannot mount its {spec.fstype} file system: {os.strerror(e)}")
            mounted.append(target)
        yield top
    finally:
        for target in reversed(mounted):
            for _ in range(50):
                if _c().umount2(str(target).encode(), _MNT_DETACH) == 0:
                    break
                time.sleep(0.01)
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
        for d in (MOUNT_BASE, MOUNT_BASE.parent):  # leave nothing behind when unused
            with contextlib.suppress(OSError):
                d.rmdir()


@contextmanager
def mount_image(path: Path, parts: list[tuple[str, str, int, int]]) -> Iterator[Path]:
    """Loop-attach and mount an image read-only; yield the root of its tree.

    ``parts`` are ``(where, fstype, offset, size)``: ``where`` is ``""`` for the root and e.g.
    ``"usr"`` for a ``/usr`` partition (a ``/usr``-only image has no ``""`` entry); ``offset``
    and ``size`` in bytes (0: the whole file). Everything is released on exit, whatever happens.

    :raises BadImage: the image can't be opened, or the kernel refused its file system (a
        :class:`MountError`, naming the image).
    :raises LoopError: no loop device could be set up.
    """
    try:
        with contextlib.ExitStack() as stack:
            specs = []
            for where, fstype, offset, size in parts:
                loop = stack.enter_context(loop_device(path, offset=offset, size=size))
                specs.append(MountSpec(source=loop.node, fstype=fstype, where=where))
            specs.sort(key=lambda s: s.where)
            yield stack.enter_context(mount_read_only(specs))
    except MountError as exc:
        raise MountError(f"Image '{path}': {exc}") from None
