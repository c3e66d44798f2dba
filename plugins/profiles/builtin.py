"""The four profiles systemd ships: ``default``, ``nonetwork``, ``strict``, ``trusted``.

Each has one drop-in, for services. As portablectl does, a host whose systemd ships the profile
(``/usr/lib/systemd/portable/profile/<name>/service.conf``) gets *that* file: ``10-profile.conf``
links to (or is a copy of) it, so its settings are always the running systemd's, and nothing an
attach leaves on the host points into this Python package.

Only where the host (or the ``--root`` tree) has no such file, the copy bundled here is used,
the one of the systemd version the host runs (:func:`portable.plugin.systemd_version`; another
version gets the nearest bundled one below it, as portable behaves as the nearest known systemd
below it): systemd 257
replaced the three log-socket binds by ``BindLogSockets=yes`` and dropped ``PrivateTmp=yes``.
Those are always *copied* into ``10-profile.conf`` (``ProfileDropin.path`` is None), never linked.

These are plugin profiles (priority 0): a profile of the same name in ``/etc``, ``/run`` or
``/usr/local/lib`` below ``systemd/portable/profile`` overrides them (see
:mod:`portable.plugins.profiles.systemd_dirs`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from portable import plugin
from portable.plugin import Host, hookimpl, systemd_version

from .systemd_dirs import describe, read_dropin

if TYPE_CHECKING:
    from portable.plugin import Profile

__all__ = ["NAMES", "SYSTEMD_PROFILE_DIR", "bundled_versions", "data_path", "portable_profiles"]

NAMES = ("default", "nonetwork", "strict", "trusted")


SYSTEMD_PROFILE_DIR = "/usr/lib/systemd/portable/profile"
_DATA = Path(__file__).parent
_DIGITS = frozenset("0123456789")


@functools.cache
def bundled_versions() -> tuple[int, ...]:
    """The systemd versions whose profile files are bundled (``systemdNNN/``), oldest first."""
    # The names Path.glob("systemd[0-9]*") finds, listed with os.scandir: the glob compiles
    # its pattern through fnmatch (~0.1 ms) and walks pathlib's selectors, on every attach.
    with os.scandir(_DATA) as entries:
        names = [e.name for e in entries]
    return tuple(
        sorted(
            int(name.removeprefix("systemd"))
            for name in names
            if name.startswith("systemd") and name[7:8] in _DIGITS
        )
    )


def data_path(name: str, systemd: int, unit_type: str = "service") -> Path:
    """The bundled drop-in of built-in profile ``name`` for systemd version ``systemd``.

    Bundled for each version the tests compare with; another version gets the nearest bundled
    one below it (the oldest for older ones).
    """
    bundled = bundled_versions()
    nearest = max((v for v in bundled if v <= systemd), default=bundled[0])
    return _DATA / f"systemd{nearest}" / name / f"{unit_type}.conf"


@hookimpl
def portable_profiles(root: Path) -> list[Profile]:
    """The built-in profiles: the host's systemd's own files, else the bundled copies."""
    host = Host(root)
    systemd = systemd_version(host).major
    profiles = []
    for name in NAMES:
        host_path = f"{SYSTEMD_PROFILE_DIR}/{name}/service.conf"
        local = host.path(host_path)
        text = read_dropin(local, host_path) if local.exists() else None
        dropin_path: Path | None = Path(host_path)
        origin = host_path
        if text is None:
            # Bytes, then decode: read_text() would translate newlines and break byte-identity.
            text = data_path(name, systemd).read_bytes().decode("utf-8")
            dropin_path = None
            origin = "built-in"
        # plugin.X at call time: the profile types and floors are built only by commands that
        # collect profiles (not detach)
        profiles.append(
            plugin.Profile(
                name=name,
                description=describe(text) or f"built-in {name!r} profile",
                dropins={"service": plugin.ProfileDropin(text=text, path=dropin_path)},
                priority=0,
                origin=origin,
                floor=plugin.builtin_floor(name),
            )
        )
    return profiles
