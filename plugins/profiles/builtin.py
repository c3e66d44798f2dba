"""The four profiles systemd ships: ``default``, ``nonetwork``, ``strict``, ``trusted``.

Each has one drop-in, for services. As portablectl does, a host whose systemd ships the profile
(``/usr/lib/systemd/portable/profile/<name>/service.conf``) gets *that* file: ``10-profile.conf``
links to (or is a copy of) it, so its settings are always the running systemd's, and nothing an
attach leaves on the host points into this Python package.

Only where the host (or the ``--root`` tree) has no such file, the copy bundled here is used,
the one of the systemd version the host runs (:mod:`portable.systemd.version`): systemd 257
replaced the three log-socket binds by ``BindLogSockets=yes`` and dropped ``PrivateTmp=yes``.
Those are always *copied* into ``10-profile.conf`` (``ProfileDropin.path`` is None), never linked.

These are plugin profiles (priority 0): a profile of the same name in ``/etc``, ``/run`` or
``/usr/local/lib`` below ``systemd/portable/profile`` overrides them (see
:mod:`portable.plugins.profiles.systemd_dirs`).
"""

from __future__ import annotations

from pathlib import Path

from portable.plugin.hookspecs import hookimpl
from portable.plugin.types import Profile, ProfileDropin
from portable.plugins.profiles.systemd_dirs import describe, read_dropin
from portable.security.floor import BUILTIN
from portable.systemd.host import Host
from portable.systemd.version import detect, nearest_known

__all__ = ["NAMES", "SYSTEMD_PROFILE_DIR", "data_path", "portable_profiles"]

NAMES = ("default", "nonetwork", "strict", "trusted")


SYSTEMD_PROFILE_DIR = "/usr/lib/systemd/portable/profile"


def data_path(name: str, systemd: int, unit_type: str = "service") -> Path:
    """The bundled drop-in of built-in profile ``name`` for systemd version ``systemd``.

    Bundled for each known version; another version gets the nearest known one below it.
    """
    return Path(__file__).parent / f"systemd{nearest_known(systemd)}" / name / f"{unit_type}.conf"


@hookimpl
def portable_profiles(root: Path) -> list[Profile]:
    """The built-in profiles: the host's systemd's own files, else the bundled copies."""
    host = Host(root)
    systemd = detect(host).major
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
        profiles.append(
            Profile(
                name=name,
                description=describe(text) or f"built-in {name!r} profile",
                dropins={"service": ProfileDropin(text=text, path=dropin_path)},
                priority=0,
                origin=origin,
                floor=BUILTIN[name],
            )
        )
    return profiles
