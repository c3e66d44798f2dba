"""Cache directories for images the service manager can't use as they are (archives).

A format with :attr:`~portable.plugin.types.ImageFormat.unpack` is unpacked at attach into
``/var/cache/portable-services/unpacked/<name>-<path>-<identity>``
(``/run/portable-services/unpacked`` with ``--runtime``), and ``RootDirectory=`` points there.

**Keyed by the image's identity.** ``<path>`` is a hash of the image path (two images of the
same file name don't share a directory), ``<identity>`` a hash of what ``stat()`` says of the
archive file: device, inode, size, modification and change times (``st_dev``, ``st_ino``,
``st_size``, ``st_mtime_ns``, ``st_ctime_ns``). A new version (renamed over the old file: a new
inode; rewritten in place: new times) gets a new directory: the next ``attach``, ``attach
--force`` or ``reattach`` unpacks it afresh and points the drop-ins there, and a service still
running from the old tree keeps that tree, unchanged. Not a content hash: that would read the
whole archive at every attach, and the change time, which no one can set back, changes with
every write anyway (and, harmlessly, with a ``chmod``, ``chown`` or hard link of the archive:
one more unpack). An archive that changes while it is unpacked is refused.

**One unpack per attach.** In attach's first phase (:func:`unpack_for_attach`) the archive is
unpacked into a hidden staging directory ``.unpacking-<name>.<random>`` next to the cache
directories; attach reads os-release and the units from there, as from any image tree
(confined: :mod:`portable.images.confined`), and :func:`place` renames it into place in the
transaction (crash-safe: the tree appears complete or not at all; a rollback removes it). An
unchanged archive whose directory exists is not unpacked at all. The process filling a staging
directory holds an ``flock`` on it; the sweep before each attach, detach and reattach
(:func:`sweep_staging`) removes those of processes that are gone. ``inspect``, and attach's
preview, read an archive through the format's ``open`` and write nothing.

**Removal.** A cache directory stays while an attached unit refers to it: a unit's marker names
the image it was unpacked from (its path hash), or a unit's ``20-portable.conf`` has
``RootDirectory=`` pointing at it; and while a process has it as its root directory (a service
not restarted since its units were pointed elsewhere). detach and reattach remove every other
(:func:`remove_unused`); attach never removes one. So after an ``attach --force`` or a
``reattach`` to a new version at the same path, the old tree is kept until the image is
detached; a reattach to another path removes the old path's trees, except one a service still
runs from (the next detach or reattach removes that).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from portable.engine.dropins import MARKER_FILE
from portable.engine.state import attached_units
from portable.engine.transaction import confine
from portable.errors import BadImage, PortableError
from portable.systemd.host import ATTACHED_DIR, UNPACK_DIR, Host

if TYPE_CHECKING:
    from portable.engine.transaction import Transaction
    from portable.plugin.types import Change, Image

__all__ = [
    "STAGING_PREFIX",
    "UNPACK_DIR",
    "Unpacked",
    "cache_key",
    "place",
    "remove_unused",
    "sweep_staging",
    "unpack_for_attach",
    "unpacked_path",
]

STAGING_PREFIX = ".unpacking-"
_HASH = 12  # hex digits of each hash in a directory name
# <name>-<path hash>-<identity hash>, or <name>-<path hash> as unpacked before identity keys
# Patterns, compiled (and cached) by re on first use: only where cache directories exist.
_CACHE_NAME = rf"-[0-9a-f]{{{_HASH}}}(?:-[0-9a-f]{{{_HASH}}})?\Z"
_MAX_NAME = 128  # bytes of the image's file name kept in a directory name (NAME_MAX is 255)
_MAX_DROPIN = 1 << 20
_ROOT_DIRECTORY = rb"(?m)^[ \t]*RootDirectory[ \t]*=[ \t]*(\S+)[ \t]*$"


def _digest(text: str) -> str:
    # here: only archive images and their cache directories get here; hashlib loads OpenSSL
    # (~2.5 ms), which attach and detach of any other image would pay for nothing
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH]


def cache_key(st: os.stat_result) -> str:
    """The identity hash of an archive file (see the module docstring)."""
    return _digest(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")


def _path_prefix(image_path: str) -> str:
    """``<name>-<path hash>``: what every cache directory of ``image_path`` starts with."""
    name = image_path.rstrip("/").rsplit("/", 1)[-1]
    while len(os.fsencode(name)) > _MAX_NAME:
        name = name[:-1]
    return f"{name}-{_digest(image_path)}"


def unpacked_path(image_path: str, key: str, *, runtime: bool) -> str:
    """Where the version ``key`` (:func:`cache_key`) of an image is unpacked, as the host
    sees it."""
    return f"{UNPACK_DIR[runtime]}/{_path_prefix(image_path)}-{key}"


class Unpacked:
    """An archive image's tree for one attach (:func:`unpack_for_attach`).

    :param key: the archive's identity hash when it was unpacked (or looked at).
    :param tree: where its files are read now: the staging directory, the existing cache
        directory, or ``None`` (not unpacked: read through the format's ``open``).
    :param staged: the staging directory until :func:`place` renames it or :meth:`discard`
        removes it.
    """

    # A plain class, not a dataclass: no code generated at import (~0.4 ms of every attach).
    __slots__ = ("_lock", "key", "runtime", "staged", "tree")

    def __init__(
        self,
        *,
        key: str,
        runtime: bool,
        tree: Path | None = None,
        staged: Path | None = None,
        _lock: int | None = None,
    ) -> None:
        self.key = key
        self.runtime = runtime
        self.tree = tree
        self.staged = staged
        self._lock = _lock

    def path(self, image_path: str) -> str:
        """The cache directory, as the host sees it (what ``RootDirectory=`` says)."""
        return unpacked_path(image_path, self.key, runtime=self.runtime)

    def discard(self) -> None:
        """Remove the staging directory if it was not put in place; release its lock. Safe to
        call more than once."""
        if self.staged is not None:
            import shutil  # here: it loads bz2 and lzma (~1.5 ms), and most runs remove nothing

            shutil.rmtree(self.staged, ignore_errors=True)
            self.staged = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _local_message(exc: PortableError, image: Image) -> None:
    """Make a format's error name the image as the host sees it (it sees the local path)."""
    local = str(image.host_path)
    if local != image.path and local in exc.message:
        exc.message = exc.message.replace(local, image.path)
        exc.args = (exc.message,)


def _stat(image: Image) -> os.stat_result:
    try:
        return os.stat(image.host_path)
    except OSError as exc:
        raise BadImage(f"Image '{image.path}': {exc.strerror or exc}") from None


def _make_dirs(host: Host, local: Path) -> None:
    """Create ``local`` and its missing parents (0755), refusing a path that leads outside
    ``--root`` (what the host lock's check does for the transaction's directories)."""
    confine(host, local)
    missing: list[Path] = []
    p = local
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with suppress(FileExistsError):
            os.mkdir(d, 0o755)
            os.chmod(d, 0o755)  # regardless of umask
    confine(host, local)


@contextmanager
def _top_locked(top: Path, how: int) -> Iterator[None]:
    """``flock`` on the unpack directory itself: shared while a staging directory is made and
    locked, exclusive while the sweep looks for abandoned ones (never both at once)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)


def _unpack(image: Image, destination: Path) -> None:
    assert image.format.unpack is not None
    try:
        image.format.unpack(image.host_path, destination)
    except PortableError as exc:
        _local_message(exc, image)
        raise


def _stage(host: Host, image: Image, key: str, *, runtime: bool) -> Unpacked:
    """Unpack ``image`` into a new, locked staging directory."""
    top = host.path(UNPACK_DIR[runtime])
    _make_dirs(host, top)
    name = _path_prefix(image.path)
    with _top_locked(top, fcntl.LOCK_SH):
        staged = top / f"{STAGING_PREFIX}{name}.{os.urandom(4).hex()}"
        os.mkdir(staged, 0o755)
        os.chmod(staged, 0o755)
        lock = os.open(staged, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(lock, fcntl.LOCK_EX)
    unpacked = Unpacked(key=key, runtime=runtime, tree=staged, staged=staged, _lock=lock)
    try:
        _unpack(image, staged)
        if cache_key(_stat(image)) != key:
            raise BadImage(
                f"Image '{image.path}' changed while it was being unpacked, refusing; try again."
            )
    except BaseException:
        unpacked.discard()
        raise
    return unpacked


def _is_real_dir(local: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(local).st_mode)
    except OSError:
        return False


def unpack_for_attach(host: Host, image: Image, *, runtime: bool, stage: bool = True) -> Unpacked:
    """The tree attach reads ``image`` from: its cache directory if this version is unpacked
    already, else (``stage``) a staging directory it is unpacked into now; with ``stage``
    False nothing is unpacked (``tree`` is None unless the cache directory exists).

    The caller passes the result to :func:`place` (in the transaction) or
    :meth:`Unpacked.discard`.
    """
    key = cache_key(_stat(image))
    final = host.path(unpacked_path(image.path, key, runtime=runtime))
    if _is_real_dir(final):
        return Unpacked(key=key, runtime=runtime, tree=final)
    if not stage:
        return Unpacked(key=key, runtime=runtime)
    return _stage(host, image, key, runtime=runtime)


def place(tx: Transaction, image: Image, unpacked: Unpacked) -> None:
    """Put the unpacked tree in its cache directory in ``tx`` (kept if it is there already:
    the staging directory is dropped then). Call under the host lock.

    Without a staged tree (nothing was unpacked, or the cache directory went away since) the
    image is unpacked now.
    """
    final = tx.host.path(unpacked.path(image.path))
    if _is_real_dir(final):
        unpacked.discard()
        return
    if unpacked.staged is None:
        fresh = _stage(tx.host, image, unpacked.key, runtime=unpacked.runtime)
        unpacked.staged, unpacked._lock = fresh.staged, fresh._lock
    assert unpacked.staged is not None
    tx.mkdir(final.parent, record=False)
    tx.confine(final)
    try:
        os.rename(unpacked.staged, final)  # the finished tree appears at once
    except OSError as exc:
        unpacked.discard()
        raise PortableError(
            f"Cannot unpack image '{image.path}' into '{tx.host.unpath(final)}': "
            f"{exc.strerror or exc}"
        ) from exc
    unpacked.staged = None
    unpacked.tree = final
    unpacked.discard()  # the lock
    tx.adopt(final, source=image.path)


def sweep_staging(host: Host, *, runtime: bool) -> None:
    """Remove staging directories whose process is gone (killed while unpacking, or before
    its attach put the tree in place)."""
    top = host.path(UNPACK_DIR[runtime])
    try:
        entries = [e for e in os.listdir(top) if e.startswith(STAGING_PREFIX)]
    except OSError:
        return
    if not entries:
        return
    with _top_locked(top, fcntl.LOCK_EX):
        for entry in entries:
            try:
                fd = os.open(
                    top / entry, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                )
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue  # its process is still at work
                raise
            else:
                import shutil  # here: see Unpacked.discard

                shutil.rmtree(top / entry, ignore_errors=True)
            finally:
                os.close(fd)


def _roots_in_use() -> set[tuple[int, int]]:
    """(device, inode) of every process's root directory: a service's ``RootDirectory=``."""
    found: set[tuple[int, int]] = set()
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            st = os.stat(f"/proc/{pid}/root")
        except OSError:  # gone, or a kernel thread
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _root_directories(host: Host, unit: str, runtime: bool) -> Iterator[str]:
    """The ``RootDirectory=`` values of an attached unit's ``20-portable.conf``."""
    local = host.path(f"{ATTACHED_DIR[runtime]}/{unit}.d/{MARKER_FILE}")
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return
        data = os.read(fd, _MAX_DROPIN)
    except OSError:
        return
    finally:
        os.close(fd)
    for m in re.finditer(_ROOT_DIRECTORY, data):
        yield m.group(1).decode("utf-8", "surrogateescape")


def remove_unused(tx: Transaction, host: Host, *, runtime: bool) -> list[Change]:
    """Remove, in ``tx``, the cache directories no attached unit refers to and no process uses
    as its root (see the module docstring). Call under the host lock, once the units' files
    are removed (detach) or written (reattach). Returns the changes."""
    top = host.path(UNPACK_DIR[runtime])
    try:
        entries = os.listdir(top)
    except OSError:
        return []  # nothing was ever unpacked (the usual case: no archive images)
    unused = [
        e
        for e in entries
        if re.search(_CACHE_NAME, e) and not e.startswith(".") and _is_real_dir(top / e)
    ]
    if not unused:
        return []
    units = [u for rt in (False, True) for u in attached_units(host, rt)]
    prefixes = {_path_prefix(t) for u in units for t in u.marker}
    # <prefix>-<identity>, or <prefix> itself (a directory unpacked before identity keys)
    unused = [e for e in unused if e not in prefixes and e[: -_HASH - 1] not in prefixes]
    if unused:
        named = {d for u in units for d in _root_directories(host, u.name, u.runtime)}
        unused = [e for e in unused if f"{UNPACK_DIR[runtime]}/{e}" not in named]
    if unused:
        busy = _roots_in_use()
        kept = []
        for e in unused:
            with suppress(OSError):
                st = os.lstat(top / e)
                if (st.st_dev, st.st_ino) in busy:
                    kept.append(e)
        unused = [e for e in unused if e not in kept]
    start = len(tx.changes)
    for e in sorted(unused):
        tx.remove(top / e)
    return tx.changes[start:]
