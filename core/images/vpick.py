"""Versioned image directories (``.v/``), as systemd 256+ resolves image paths ("vpick").

An image path that is a directory named ``NAME.v`` (or ``NAME.raw.v``) stands for the newest
``NAME_VERSION[+TRIES][_ARCH][.raw]`` inside it; a last component ``NAME___SUFFIX`` in such a
directory is a pattern (``foo.v/foo___.raw``). Everything else is taken literally. The choice,
in systemd's order: an entry with tries left over one without, the newer version (systemd's
``strverscmp_improved``), the host's own architecture over its secondary one over none, more
tries left, fewer tries done, then the file name.

``attach``, ``reattach``, ``inspect``, ``detach`` and ``is-attached`` pick on systemd 256 and
later; on 252 a ``.v`` directory is an ordinary image path.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from portable.errors import ImageNotFound
from portable.images.architecture import ARCHITECTURES, local_architectures
from portable.systemd.host import Host

__all__ = ["MIN_SYSTEMD", "is_versioned", "pick", "version_compare"]

MIN_SYSTEMD = 256  # the first systemd whose portabled resolves .v/ directories
_SUFFIXES = (".raw", "")  # systemd's pick_filter_image_any: raw files, or directories
_VERSION_CHARS = re.compile(r"[A-Za-z0-9.,_+-]+")
_TRIES = re.compile(r"\+(\d+)(?:-(\d+))?")


def _split(path: str) -> tuple[str, str, bool]:
    """(parent, last component, whether the path ended in '/')."""
    slash = path.endswith("/") and path != "/"
    parent, _, name = path.rstrip("/").rpartition("/")
    return parent or "/", name, slash


def is_versioned(path: str) -> bool:
    """Whether an (absolute) image path is one vpick resolves: ``X.v`` or ``X.v/P___S``."""
    parent, name, _ = _split(path)
    return name.endswith(".v") or ("___" in name and parent.endswith(".v"))


def version_compare(a: str, b: str) -> int:
    """systemd's strverscmp_improved(): <0, 0, >0 as ``a`` is older, equal, newer than ``b``.

    Segments are numeric or alphabetic; ``~`` marks a pre-release (older), ``-`` the release
    part, ``^`` a patched release, ``.`` a point release; other characters separate segments.
    """
    i = j = 0

    def valid(c: str) -> bool:
        return c.isascii() and (c.isalnum() or c in "~-^.")

    while True:
        while i < len(a) and not valid(a[i]):
            i += 1
        while j < len(b) and not valid(b[j]):
            j += 1
        ca, cb = a[i : i + 1], b[j : j + 1]
        if ca == "~" or cb == "~":
            if (ca != "~") != (cb != "~"):
                return 1 if ca != "~" else -1
            i, j = i + 1, j + 1
            ca, cb = a[i : i + 1], b[j : j + 1]
        if not ca or not cb:
            return (ca > cb) - (ca < cb)
        for sep in "-^.":
            if ca == sep or cb == sep:
                if (ca != sep) != (cb != sep):
                    return 1 if ca != sep else -1  # the one at the separator is older
                i, j = i + 1, j + 1
                ca, cb = a[i : i + 1], b[j : j + 1]
        if (ca.isascii() and ca.isdigit()) or (cb.isascii() and cb.isdigit()):
            ea, eb = i, j
            while ea < len(a) and a[ea].isascii() and a[ea].isdigit():
                ea += 1
            while eb < len(b) and b[eb].isascii() and b[eb].isdigit():
                eb += 1
            if (ea != i) != (eb != j):
                return 1 if ea != i else -1
            na, nb = a[i:ea].lstrip("0"), b[j:eb].lstrip("0")
            if len(na) != len(nb):
                return 1 if len(na) > len(nb) else -1
            if na != nb:
                return 1 if na > nb else -1
        else:
            ea, eb = i, j
            while ea < len(a) and a[ea].isascii() and a[ea].isalpha():
                ea += 1
            while eb < len(b) and b[eb].isascii() and b[eb].isalpha():
                eb += 1
            sa, sb = a[i:ea], b[j:eb]
            n = min(len(sa), len(sb))
            if sa[:n] != sb[:n]:
                return 1 if sa[:n] > sb[:n] else -1
            if len(sa) != len(sb):
                return 1 if len(sa) > len(sb) else -1
        i, j = ea, eb


@dataclass(frozen=True, slots=True)
class _Candidate:
    filename: str
    version: str
    arch_rank: int  # index in the host's architectures; len() = no architecture in the name
    tries_left: int | None
    tries_done: int | None

    def better_than(self, other: _Candidate) -> bool:
        """systemd's make_choice() order (see the module docstring)."""
        if self.tries_left != 0 and other.tries_left == 0:
            return True
        if self.tries_left == 0 and other.tries_left != 0:
            return False
        d = version_compare(self.version, other.version)
        if d == 0:
            d = other.arch_rank - self.arch_rank
        if d == 0:
            d = _cmp(_unset_max(self.tries_left), _unset_max(other.tries_left))
        if d == 0:
            d = -_cmp(_unset_max(self.tries_done), _unset_max(other.tries_done))
        if d == 0:
            d = _cmp(self.filename, other.filename)
        return d >= 0


def _cmp(a: int | str, b: int | str) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def _unset_max(n: int | None) -> int:
    return (1 << 32) - 1 if n is None else n  # UINT_MAX, as systemd counts "not given"


def _parse(entry: str, basename: str, suffixes: tuple[str, ...]) -> _Candidate | None:
    """An entry of the directory as a candidate, or None if it does not match the pattern."""
    if basename:
        if not entry.startswith(basename + "_"):
            return None
        rest = entry[len(basename) + 1 :]
    else:
        rest = entry
    if suffixes:
        sfx = next((s for s in suffixes if rest.endswith(s)), None)
        if sfx is None:
            return None
        rest = rest[: len(rest) - len(sfx)]
    tries_left = tries_done = None
    plus = rest.rfind("+")
    if plus >= 0 and (m := _TRIES.fullmatch(rest[plus:])):
        tries_left, tries_done = int(m[1]), int(m[2] or 0)
        rest = rest[:plus]
    local = local_architectures()
    underscore = rest.rfind("_")
    arch = rest[underscore + 1 :] if underscore >= 0 else ""
    if arch in ARCHITECTURES and arch not in local:
        return None  # built for another architecture
    rank = local.index(arch) if arch in local else len(local)  # none: the last resort
    if underscore >= 0:
        rest = rest[:underscore]  # systemd drops what follows the last '_', an architecture or not
    if not rest or not _VERSION_CHARS.fullmatch(rest) or rest in (".", ".."):
        return None
    return _Candidate(entry, rest, rank, tries_left, tries_done)


def pick(path: str, *, host: Host) -> str:
    """The image a versioned path stands for (a host path, symlinks resolved below the root).

    :param path: an absolute host path; one that :func:`is_versioned` rejects is returned as is.
    :raises ImageNotFound: the directory does not exist or holds no matching entry (systemd's
        "No matching entry in .v/ directory ... found.").
    """
    if not is_versioned(path):
        return path
    parent, name, slash = _split(path)
    suffixes: tuple[str, ...]
    if name.endswith(".v"):
        directory = path.rstrip("/")
        basename = name[:-2]
        basename = basename.removesuffix(".raw")  # foo.raw.v holds foo_1.raw ...
        suffixes = _SUFFIXES
        want_dir: bool | None = None
    else:
        directory = parent
        basename, _, suffix = name.partition("___")
        suffixes = (suffix,) if suffix else ()
        want_dir = True if slash else None
    local_dir = host.resolve(directory)
    entries: list[str] = []
    if local_dir is not None and local_dir.is_dir():
        entries = sorted(os.listdir(local_dir))
    best: _Candidate | None = None
    for entry in entries:
        found = _parse(entry, basename, suffixes)
        if found is not None and (best is None or found.better_than(best)):
            best = found
    if best is None or local_dir is None:
        raise ImageNotFound(f"No matching entry in .v/ directory {path} found.")
    chosen = host.resolve(f"{host.unpath(local_dir)}/{best.filename}")
    if chosen is None:
        raise ImageNotFound(f"No matching entry in .v/ directory {path} found.")
    mode = chosen.stat().st_mode
    kind_ok = (
        stat.S_ISDIR(mode)
        if want_dir
        else (stat.S_ISREG(mode) or stat.S_ISBLK(mode) or stat.S_ISDIR(mode))
    )
    if not kind_ok:
        raise ImageNotFound(f"'{host.unpath(chosen)}' in .v/ directory {path} is not an image")
    return host.unpath(Path(chosen))
