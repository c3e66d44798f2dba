"""The four profiles systemd 252 ships: ``default``, ``nonetwork``, ``strict``, ``trusted``.

Each has one drop-in, for services. Its text is a byte-for-byte copy of systemd 252's
``/usr/lib/systemd/portable/profile/<name>/service.conf``, packaged next to this module as
``<name>/service.conf``, so a profile attached in copy mode is the same bytes portablectl writes,
and in symlink mode ``10-profile.conf`` links to the packaged file (``ProfileDropin.path``).

These are plugin profiles (priority 0): a profile of the same name in ``/etc``, ``/run`` or
``/usr/local/lib`` below ``systemd/portable/profile`` overrides them, systemd's own ``/usr/lib``
copies do not (see :mod:`portable.plugins.profiles.systemd_dirs`).
"""

from __future__ import annotations

from pathlib import Path

from portable.hookspecs import hookimpl
from portable.types import Profile, ProfileDropin

__all__ = ["NAMES", "data_path", "describe", "portable_profiles"]

NAMES = ("default", "nonetwork", "strict", "trusted")


def data_path(name: str, unit_type: str = "service") -> Path:
    """Where the packaged drop-in of built-in profile ``name`` lives."""
    return Path(__file__).parent / name / f"{unit_type}.conf"


def describe(text: str) -> str | None:
    """A one-line description from the leading comment block of a profile drop-in, if any.

    systemd's files open with a comment saying what the profile is for; newer versions put an
    ``SPDX-License-Identifier`` line first, which is no description, so it is passed over. Only
    comments before the first setting or section count: later ones describe a single setting.
    """
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] not in "#;":
            break
        comment = stripped.lstrip("#;").strip()
        if comment and not comment.startswith("SPDX-License-Identifier:"):
            return comment
    return None


@hookimpl
def portable_profiles() -> list[Profile]:
    """The built-in profiles, read from the package when first asked for (not at import)."""
    profiles = []
    for name in NAMES:
        path = data_path(name)
        # Bytes, then decode: read_text() would translate newlines and break byte-identity.
        text = path.read_bytes().decode("utf-8")
        profiles.append(
            Profile(
                name=name,
                description=describe(text) or f"built-in {name!r} profile",
                dropins={"service": ProfileDropin(text=text, path=path)},
                priority=0,
                origin="built-in",
            )
        )
    return profiles
