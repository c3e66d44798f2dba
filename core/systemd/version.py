"""Which systemd the host runs, so what we write follows it (systemd 252 to 258+).

What portabled writes changed between versions (``20-portable.conf``, the shipped profiles, the
verbs and options): we write what the *running* systemd's portabled would, so that our files and
portablectl's are the same bytes on every host. The version is detected once per root:

* the running service manager's ``Version`` (D-Bus), when attach/detach/reattach are connected
  to it (:func:`detect` with a manager);
* else (``--root``, or before a manager is connected) the tree's own systemd: the version in the
  file name of its ``libsystemd-shared-NNN.so``;
* else the newest behaviour we know (:data:`NEWEST_KNOWN`).

A version we have not measured behaves as the nearest known one below it (:attr:`behaviour`):
a 255 host gets 254's drop-in format and 252's profile text, a 260 host 257's, and a host's own
profile files are used wherever it ships them (see :mod:`portable.plugins.profiles.builtin`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from portable.systemd.host import Host

if TYPE_CHECKING:
    from portable.systemd.manager import Manager

__all__ = [
    "KNOWN_VERSIONS",
    "NEWEST_KNOWN",
    "OLDEST_SUPPORTED",
    "SystemdVersion",
    "detect",
    "nearest_known",
    "parse_version",
]

# Versions whose portablectl the tests compare with, in a booted box each.
KNOWN_VERSIONS = (252, 257)
NEWEST_KNOWN = KNOWN_VERSIONS[-1]
OLDEST_SUPPORTED = 252

# Where distributions keep systemd's shared library, its major version in the name:
# Debian/Ubuntu /usr/lib/<triplet>/systemd/libsystemd-shared-257.so, Fedora/Arch
# /usr/lib/systemd/libsystemd-shared-257.5-1.so. (A "*" stands for any directory.)
_SHARED_LIB_DIRS = ("usr/lib/systemd", "usr/lib/*/systemd", "usr/lib64/systemd")
_SHARED_LIB_PREFIX, _SHARED_LIB_SUFFIX = "libsystemd-shared-", ".so"
_LEADING_NUMBER = re.compile(r"\s*(?:systemd\s+)?(\d+)")


# A NamedTuple, not a dataclass (~0.4 ms to build): every attach and detach reads a version.
class SystemdVersion(NamedTuple):
    """A systemd version and where we learnt it.

    :ivar major: e.g. 257.
    :ivar full: as reported (``257.13-1~deb13u1``), or ``"257"`` when only the number is known.
    :ivar source: ``"manager"`` (the running PID 1), ``"tree"`` (the root's files) or
        ``"default"`` (nothing found: the newest known behaviour).
    """

    major: int
    full: str
    source: str

    @property
    def behaviour(self) -> int:
        """The known version whose measured behaviour applies (:func:`nearest_known`)."""
        return nearest_known(self.major)

    def describe(self) -> str:
        where = {
            "manager": "running",
            "tree": "installed",
            "default": "none found: the newest known",
        }[self.source]
        note = "" if self.major in KNOWN_VERSIONS else f", behaves as {self.behaviour}"
        return f"systemd {self.full} ({where}{note})"


def nearest_known(major: int) -> int:
    """The known version nearest at or below ``major`` (the oldest known for older ones)."""
    known = [v for v in KNOWN_VERSIONS if v <= major]
    return known[-1] if known else KNOWN_VERSIONS[0]


def parse_version(text: str) -> int | None:
    """The major version from ``252.39-1~deb12u2``, ``257``, ``systemd 258 (258.1)``."""
    m = _LEADING_NUMBER.match(text)
    return int(m.group(1)) if m else None


def _names(directory: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            return [e.name for e in entries]
    except OSError:
        return []


def _subdirectories(directory: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            found = []
            for e in entries:
                try:
                    if e.is_dir():  # follows symlinks, as a glob does
                        found.append(e.name)
                except OSError:
                    continue
            return found
    except OSError:
        return []


def _shared_libs(root: str) -> list[str]:
    """The names of ``libsystemd-shared-*.so`` in :data:`_SHARED_LIB_DIRS` below ``root``: what
    ``Path.glob`` finds, listing each directory once instead of through pathlib's selectors
    (~0.3 ms of every command that reads the tree's version)."""
    dirs = []
    for pattern in _SHARED_LIB_DIRS:
        head, star, tail = pattern.partition("/*/")
        if star:
            dirs += [f"{root}/{head}/{d}/{tail}" for d in _subdirectories(f"{root}/{head}")]
        else:
            dirs.append(f"{root}/{pattern}")
    return [
        name
        for d in dirs
        for name in _names(d)
        if name.startswith(_SHARED_LIB_PREFIX)
        and name.endswith(_SHARED_LIB_SUFFIX)
        and len(name) >= len(_SHARED_LIB_PREFIX) + len(_SHARED_LIB_SUFFIX)
    ]


def _from_tree(host: Host) -> SystemdVersion | None:
    versions: list[tuple[int, str]] = []
    for name in _shared_libs(os.fspath(host.path("/")).rstrip("/")):
        full = name.removeprefix(_SHARED_LIB_PREFIX).removesuffix(_SHARED_LIB_SUFFIX)
        major = parse_version(full)
        if major is not None:
            versions.append((major, full))
    if not versions:
        return None
    major, full = max(versions)  # two installed (mid-upgrade): the newer one is what runs next
    return SystemdVersion(major=major, full=full, source="tree")


_cache: dict[Path, SystemdVersion] = {}


def detect(host: Host, manager: Manager | None = None) -> SystemdVersion:
    """The systemd of ``host``, detected once per root (see the module docstring).

    With a ``manager`` (the real host's PID 1), its ``Version`` replaces what an earlier call
    without one found in the tree.
    """
    cached = _cache.get(host.root)
    if cached is not None and (cached.source == "manager" or manager is None):
        return cached
    found = None
    if manager is not None and host.is_real:
        full = manager.version()
        major = parse_version(full)
        if major is not None:
            found = SystemdVersion(major=major, full=full, source="manager")
    if found is None:
        found = cached or _from_tree(host)
    if found is None:
        found = SystemdVersion(major=NEWEST_KNOWN, full=str(NEWEST_KNOWN), source="default")
    _cache[host.root] = found
    return found
