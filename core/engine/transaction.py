"""File changes that are atomic one by one and undoable as a whole.

Every file is written under a hidden temporary name in its target directory and renamed into
place, so systemd never reads a half-written unit or drop-in. Each step records how to undo it;
:meth:`Transaction.rollback` restores the previous state after a failure, :meth:`commit` drops
the backups. Temporary and backup names start with ``.#portable-`` and end in a random suffix,
which no unit or drop-in name can (systemd ignores them); the next run under the lock rolls back
whatever a killed process left (:func:`recover`) before doing its own work. A name too long to
carry that decoration (a valid unit name has up to 255 bytes) keeps its own name inside a hidden
holder directory ``.#portable-hold-<kind>.<hex>/`` instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from portable.errors import PortableError
from portable.plugin.types import Change
from portable.systemd.host import ATTACHED_DIR, PORTABLES_DIR, UNPACK_DIR, Host

__all__ = ["TEMP_PREFIX", "Transaction", "host_lock", "recover"]

TEMP_PREFIX = ".#portable-"


@contextmanager
def host_lock(host: Host) -> Iterator[None]:
    """Serialize every command that changes the host (attach, detach, reattach).

    The lock is taken on the root directory itself, so nothing is created for it: a refused
    command leaves the host exactly as it was, and there is no lock file to clean up.
    """
    fd = os.open(host.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        check_root_dirs(host)  # before anything (the sweep included) writes or removes
        yield
    finally:
        os.close(fd)  # releases the lock


def _confined_real(host: Host) -> str:
    return os.path.realpath(host.root)


def confine(host: Host, local: Path, *, root: str | None = None) -> None:
    """Refuse ``local`` (a path below ``--root``) if the kernel would take it outside the root.

    The kernel follows a symlink below the root as it is, so ``ROOT/etc/systemd/system.attached
    -> /etc/systemd/system`` (or a relative ``../../..`` link, or any parent such as ``ROOT/etc``)
    would write or delete files on the real host. Such a path is refused in one line, nothing
    changed; a link that stays inside the root is followed as usual. The real host has nothing
    outside its root.
    """
    if host.is_real:
        return
    base = root if root is not None else _confined_real(host)
    real = os.path.realpath(local)
    if real != base and not real.startswith(base.rstrip("/") + "/"):
        raise PortableError(
            f"'{host.unpath(local)}' leads outside the root directory '{host.root}' "
            f"(to '{real}', through a symlink), refusing."
        )


def check_root_dirs(host: Host) -> None:
    """Refuse a ``--root`` whose attached, portables or unpack directories (or any of their
    parents) lead outside it: checked before the sweep of a killed run, which removes files."""
    if host.is_real:
        return
    base = _confined_real(host)
    for runtime in (False, True):
        for d in (ATTACHED_DIR[runtime], PORTABLES_DIR[runtime], UNPACK_DIR[runtime]):
            confine(host, host.path(d), root=base)


NAME_MAX = 255  # bytes in one file name
_HOLD = "hold"


def _temp_name(target: Path, what: str) -> Path:
    """A fresh hidden name next to ``target`` for a file of kind ``what`` (``new``, ``backup``,
    ``removed``); for a name too long for that, a name inside a holder directory (created by
    :func:`_make_holder`)."""
    token = os.urandom(4).hex()  # not secrets (~3 ms to import): unlikely is enough
    name = f"{TEMP_PREFIX}{what}-{target.name}.{token}"
    if len(os.fsencode(name)) <= NAME_MAX:
        return target.parent / name
    return target.parent / f"{TEMP_PREFIX}{_HOLD}-{what}.{token}" / target.name


def _in_holder(temp: Path) -> bool:
    return temp.parent.name.startswith(f"{TEMP_PREFIX}{_HOLD}-")


def _make_holder(temp: Path) -> None:
    if _in_holder(temp):
        os.mkdir(temp.parent, 0o700)


def _drop_holder(temp: Path) -> None:
    if _in_holder(temp):
        _rmdir_quiet(temp.parent)


def _original_name(entry: str) -> tuple[str, str] | None:
    """``(kind, name)`` of a temporary ``.#portable-<kind>-<name>.<hex>``, else ``None``."""
    if not entry.startswith(TEMP_PREFIX):
        return None
    kind, sep, rest = entry[len(TEMP_PREFIX) :].partition("-")
    name, dot, suffix = rest.rpartition(".")
    if not (sep and dot and name and len(suffix) == 8):
        return None
    return kind, name


def recover(directory: Path) -> None:
    """Roll back what a killed transaction left in ``directory`` (call under the lock).

    New files not yet renamed into place are deleted; backups of replaced or removed files
    are put back. The state is then the one before the killed command, and re-running that
    command does all of its work again.
    """
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        parsed = _original_name(entry)
        if parsed is None:
            if entry.startswith(TEMP_PREFIX):
                _remove_tree_quiet(directory / entry)
            continue
        kind, name = parsed
        if kind == _HOLD:  # a holder directory: name is the kind of what it holds
            if name in ("backup", "removed") and _is_real_dir(directory / entry):
                with suppress(OSError):
                    for held in os.listdir(directory / entry):
                        _put_back(directory / entry / held, directory / held)
            _remove_tree_quiet(directory / entry)
            continue
        if kind in ("backup", "removed") and _put_back(directory / entry, directory / name):
            continue
        _remove_tree_quiet(directory / entry)


def _is_real_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def _put_back(backup: Path, original: Path) -> bool:
    """Move a backup over whatever replaced it; False if that failed."""
    try:
        if _is_real_dir(original):
            import shutil  # here: as in _remove_tree_quiet

            shutil.rmtree(original)
        os.rename(backup, original)
        return True
    except OSError:
        return False


class Transaction:
    """An ordered set of file changes with undo. Paths are local (already under the root)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.changes: list[Change] = []
        self._undo: list[Callable[[], None]] = []
        self._on_commit: list[Callable[[], None]] = []
        self._rmdirs: list[tuple[Path, Change]] = []
        # In a batch (batched()): files written, not yet synced nor in place: (temp, local, replace)
        # (the temporary's name as a str: 30,000 more Path objects were 20 MB)
        # and whether it is a regular file (to sync; a symlink is only put in place)
        self._pending: list[tuple[str, Path, bool, bool]] | None = None
        # Directories checked by confine() already: a run writes many files into one directory.
        self._confined: set[Path] = set()
        self._root_real = "" if host.is_real else _confined_real(host)

    def confine(self, local: Path) -> None:
        """Refuse ``local`` if its directory leads outside ``--root`` (see :func:`confine`)."""
        parent = local.parent
        if self.host.is_real or parent in self._confined:
            return
        confine(self.host, parent, root=self._root_real)
        self._confined.add(parent)

    def _record(self, type_: str, local: Path, source: str = "") -> None:
        self.changes.append(Change(type=type_, path=self.host.unpath(local), source=source))

    # -- creating ----------------------------------------------------------------------------

    def mkdir(self, local: Path, *, record: bool = True) -> bool:
        """Create a directory (0755, parents as needed); True if it was created."""
        self.confine(local)
        if local.is_dir():
            self.confine(local / "x")  # a link to a directory elsewhere is no directory of ours
            return False
        if not local.parent.is_dir():
            self.mkdir(local.parent, record=False)
        try:
            os.mkdir(local, 0o755)
        except FileExistsError:
            return False
        os.chmod(local, 0o755)  # regardless of umask
        self._undo.append(lambda: _rmdir_quiet(local))
        if record:
            self._record("mkdir", local)
        return True

    def _place(self, temp: Path, local: Path, *, replace: bool) -> None:
        """Move a finished temporary into place; keep a backup of what it replaces."""
        if os.path.lexists(local):
            if not replace:
                _discard(temp)
                raise FileExistsError(errno.EEXIST, "File exists", str(local))
            backup = _temp_name(local, "backup")
            _make_holder(backup)
            os.link(local, backup, follow_symlinks=False)  # the old file stays in place...
            os.rename(temp, local)  # ...until this atomic swap
            _drop_holder(temp)
            self._undo.append(lambda: _restore(backup, local))
            self._on_commit.append(lambda: _discard(backup))
        else:
            try:
                os.link(temp, local, follow_symlinks=False)  # fails if something appeared
            finally:
                _discard(temp)
            self._undo.append(lambda: _unlink_quiet(local))

    def write(
        self,
        local: Path,
        data: bytes,
        *,
        replace: bool,
        change: str = "write",
        source: str = "",
        mode: int = 0o644,
    ) -> None:
        """Write a regular file (``mode``, 0644 by default) atomically and record the change."""
        self.confine(local)
        temp = _temp_name(local, "new")
        _make_holder(temp)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)  # fixed mode regardless of umask
            if self._pending is None:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _discard(temp)
            raise
        os.close(fd)
        if self._pending is not None:
            self._pending.append((str(temp), local, replace, True))  # synced, placed at the end
        else:
            self._place(temp, local, replace=replace)
        self._record(change, local, source)

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Files and symlinks written in this block are synced all at once and put in place
        (in the order they were written: a unit's marker before its unit, which a re-run after
        a crash relies on) when it ends; an exception discards the ones not in place yet.

        Crash safety, as with an fsync per file: a file gets its name only by the link() or
        rename() in :meth:`_place`, and that happens after every file of the batch is on disk
        (:func:`_sync_files`), so a power cut never leaves a named file with missing content;
        before that, only hidden temporaries exist, which :func:`recover` deletes. (Neither
        way makes the renames themselves durable: the directories are not synced.) An fsync
        per file commits the file system's journal once per file: 30,000 of them took 13 s
        for an image with 10,000 units (issue 16, item 7).
        """
        if self._pending is not None:
            yield  # nested: the outer batch does it
            return
        pending: list[tuple[str, Path, bool, bool]] = []
        self._pending = pending
        done = 0
        try:
            yield
            self._pending = None
            _sync_files([temp for temp, _, _, is_file in pending if is_file])
            for temp, local, replace, _ in pending:
                try:
                    self._place(Path(temp), local, replace=replace)
                except OSError as exc:
                    exc.filename, exc.filename2 = str(local), None  # the name, not the temp's
                    raise
                done += 1
        finally:
            self._pending = None
            for temp, *_ in pending[done:]:
                _discard(Path(temp))  # quiet if already gone

    def symlink(self, local: Path, target: str, *, replace: bool) -> None:
        """Create a symlink atomically and record the change."""
        self.confine(local)
        temp = _temp_name(local, "new")
        _make_holder(temp)
        try:
            os.symlink(target, temp)
        except BaseException:
            _drop_holder(temp)
            raise
        if self._pending is not None:
            self._pending.append((str(temp), local, replace, False))  # placed at the batch's end
        else:
            self._place(temp, local, replace=replace)
        self._record("symlink", local, target)

    # -- removing ----------------------------------------------------------------------------

    def remove(self, local: Path) -> bool:
        """Remove a file, symlink or tree (a hidden backup until commit); False if absent."""
        self.confine(local)
        if not os.path.lexists(local):
            return False
        backup = _temp_name(local, "removed")
        _make_holder(backup)
        os.rename(local, backup)
        self._undo.append(lambda: _restore(backup, local))
        self._on_commit.append(lambda: _discard(backup))
        self._record("unlink", local)
        return True

    def rmdir(self, local: Path) -> None:
        """Remove a directory at commit, if it is empty then (backups of its files are gone by
        then); the change is reported only if it was removed."""
        change = Change(type="unlink", path=self.host.unpath(local))
        self.changes.append(change)
        self._rmdirs.append((local, change))

    # -- ending ------------------------------------------------------------------------------

    def adopt(self, local: Path, *, source: str) -> None:
        """Record a file or tree the caller just renamed into place (a copied or unpacked
        image): reported as a ``copy`` from ``source``, removed again on rollback."""
        self.confine(local)
        self._undo.append(lambda: _remove_tree_quiet(local))
        self._record("copy", local, source)

    def commit(self) -> None:
        for action in self._on_commit:
            action()
        for local, change in self._rmdirs:
            try:
                os.rmdir(local)
            except OSError:  # not empty (e.g. an admin's own drop-in) or gone: keep quiet
                self.changes.remove(change)
        self._undo.clear()
        self._on_commit.clear()
        self._rmdirs.clear()

    def rollback(self) -> None:
        """Undo every step, newest first; best effort (a failing undo doesn't stop the rest)."""
        for action in reversed(self._undo):
            with suppress(OSError):
                action()
        self._undo.clear()
        self._on_commit.clear()
        self._rmdirs.clear()
        self.changes.clear()


_FSYNC_EACH = 32  # up to this many files, an fsync each (no ctypes to import)


def _sync_files(temps: list[str]) -> None:
    """Get the content of the files ``temps`` to disk: an fsync each for a few, else one
    syncfs() per file system they are on (it also reports a write-back error, Linux >= 5.8)."""
    if not temps:
        return
    if len(temps) <= _FSYNC_EACH:
        for temp in temps:
            fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    import ctypes  # here: only a batch of many files needs syncfs() (ctypes: ~1.5 ms to import)

    libc = ctypes.CDLL(None, use_errno=True)
    seen: set[int] = set()
    for temp in temps:
        parent = os.path.dirname(temp)
        dev = os.lstat(parent).st_dev
        if dev in seen:
            continue
        seen.add(dev)
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if libc.syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), parent)
        finally:
            os.close(fd)


def _restore(backup: Path, local: Path) -> None:
    os.rename(backup, local)
    _drop_holder(backup)


def _discard(temp: Path) -> None:
    """Remove a temporary or backup (a file or a tree) and its holder directory, if any."""
    _remove_tree_quiet(temp)
    _drop_holder(temp)


def _unlink_quiet(p: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(p)


def _remove_tree_quiet(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        # here: only a tree needs it (shutil imports bz2 and lzma: ~1.4 ms, most runs remove
        # files only)
        import shutil

        shutil.rmtree(p, ignore_errors=True)
    else:
        _unlink_quiet(p)


def _rmdir_quiet(p: Path) -> None:
    with suppress(OSError):
        os.rmdir(p)
