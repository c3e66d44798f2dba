"""The ``portable`` entry-point group, scanned once and cached on disk for the CLI.

``importlib.metadata.entry_points()`` imports ~12 ms of modules and reads the metadata of every
installed distribution on each call; for a command line tool that runs for 50 ms that is a
quarter of its time. :func:`find` can keep the result in a small file instead (a Python
literal, read with ``ast.literal_eval``: ``ast`` is imported at start-up anyway, ``json`` is
not), valid as long as nothing was installed or removed:

* the key is every ``sys.path`` entry with its modification time (installing or removing a
  distribution adds or removes a ``*.dist-info`` directory there, which changes the time), plus
  the modification time of each ``entry_points.txt`` that contributed (an edit in place);
* a scan whose inputs changed less than :data:`RACY_NS` before it began is not cached, so an
  installation still running while we scan (or one within the file system's timestamp
  granularity) can't leave a stale entry behind (git's "racy clean" rule);
* the file lives in ``/var/cache/portable-services`` for root, else in
  ``$XDG_CACHE_HOME/portable-services`` (``~/.cache``), or ``$PORTABLE_SERVICES_CACHE_DIR``;
  an empty ``PORTABLE_SERVICES_CACHE_DIR`` disables the cache. A file or directory that is not
  the user's own or is writable by others is ignored (for root it decides what is imported);
* anything wrong with it (missing, corrupt, unwritable) means a scan, never an error.

Only the CLI uses the cache (``get_registry(cache=True)``); library callers and tests scan.
"""

from __future__ import annotations

import ast
import binascii
import contextlib
import importlib
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["RACY_NS", "EntryPoint", "cache_dir", "cache_file", "find", "scan"]

ENV_CACHE_DIR = "PORTABLE_SERVICES_CACHE_DIR"
FORMAT = 1
# Inputs modified this recently (before the scan began) make the scan uncacheable.
RACY_NS = 2_000_000_000
_MAX_SIZE = 1 << 20


# A NamedTuple, not a dataclass (~0.4 ms to build): every command imports this module.
class EntryPoint(NamedTuple):
    """One entry point: ``value`` is ``module[:attr[.attr...]]`` (extras ignored)."""

    name: str
    value: str
    dist: str = ""
    version: str = ""

    def load(self) -> Any:
        """Import the module and look the attribute up, as ``importlib.metadata`` does."""
        ref = self.value.split("[", 1)[0].strip()
        module, _, attrs = ref.partition(":")
        obj = importlib.import_module(module.strip())
        for attr in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, attr)
        return obj


def scan(group: str) -> tuple[list[EntryPoint], list[str]]:
    """The entry points of ``group`` (``importlib.metadata``), and their ``entry_points.txt``."""
    from importlib.metadata import entry_points  # ~12 ms: what the cache is there to save

    found: list[EntryPoint] = []
    files: list[str] = []
    for ep in entry_points(group=group):
        dist = ep.dist
        found.append(
            EntryPoint(
                name=ep.name,
                value=ep.value,
                dist=dist.name if dist is not None else "",
                version=dist.version if dist is not None else "",
            )
        )
        where = getattr(dist, "_path", None)  # PathDistribution: its *.dist-info directory
        if where is not None:
            files.append(os.fspath(Path(where) / "entry_points.txt"))
    return found, sorted(set(files))


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _path_key() -> list[Any]:
    """``sys.path`` with each entry's modification time (and the directory '' stands for)."""
    key: list[Any] = [[entry, _mtime(entry or ".")] for entry in sys.path]
    if "" in sys.path:
        key.append(["cwd", os.getcwd()])
    return key


def cache_dir() -> Path | None:
    """Where the cache lives; None when disabled."""
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured is not None:
        return Path(configured) if configured else None
    if os.geteuid() == 0:
        return Path("/var/cache/portable-services")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "portable-services"


def cache_file(group: str) -> Path | None:
    """The cache file for this interpreter, ``sys.path`` and group: virtualenvs, or the same
    one with another ``PYTHONPATH``, don't take turns overwriting one file. (``''``, the current
    directory of ``python -m``, is left out of the name, so running from many directories
    doesn't leave a file for each.)"""
    where = cache_dir()
    if where is None:
        return None
    path = "\0".join(p for p in sys.path if p)
    # binascii's CRC-32 is zlib's: one shared library less to load (jeepney loads binascii)
    tag = binascii.crc32(f"{sys.prefix}\0{group}\0{path}".encode())
    return where / f"entry-points-{tag:08x}.txt"


def _safe(st: os.stat_result) -> bool:
    """Ours and not writable by anyone else."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        if not _safe(os.stat(path.parent)):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _safe(st) or st.st_size > _MAX_SIZE:
            return None
        data = ast.literal_eval(os.read(fd, _MAX_SIZE).decode())
    except (OSError, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else None


def _valid(data: dict[str, Any], group: str, path_key: list[Any]) -> list[EntryPoint] | None:
    try:
        if data["format"] != FORMAT or data["group"] != group or data["path"] != path_key:
            return None
        for file, mtime in data["files"]:
            if _mtime(file) != mtime:
                return None
        return [
            EntryPoint(name=e["name"], value=e["value"], dist=e["dist"], version=e["version"])
            for e in data["entry_points"]
        ]
    except (KeyError, TypeError, ValueError):
        return None


def _write(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not _safe(os.stat(path.parent)):
            return
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            with os.fdopen(fd, "w") as f:
                f.write(repr(data) + "\n")
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError:
        pass  # a cache we can't write is a slower start, nothing more


def find(group: str, *, cache: bool = False) -> list[EntryPoint]:
    """The entry points of ``group``, sorted by name; from the cache when it is still valid."""
    path = cache_file(group) if cache else None
    if path is None:
        return sorted(scan(group)[0], key=lambda e: e.name)
    path_key = _path_key()
    data = _read(path)
    if data is not None:
        cached = _valid(data, group, path_key)
        if cached is not None:
            return cached
    began = time.time_ns()
    found, files = scan(group)
    found.sort(key=lambda e: e.name)
    file_key = [[f, _mtime(f)] for f in files]
    times = [m for _, m in path_key[: len(sys.path)] if m is not None]
    times += [m for _, m in file_key if m is not None]
    if all(m < began - RACY_NS for m in times):
        _write(
            path,
            {
                "format": FORMAT,
                "group": group,
                "path": path_key,
                "files": file_key,
                "entry_points": [
                    {"name": e.name, "value": e.value, "dist": e.dist, "version": e.version}
                    for e in found
                ],
            },
        )
    return found
