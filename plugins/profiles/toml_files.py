"""Profiles written in TOML, no Python needed: ``/etc/portable/profiles/NAME.toml``.

Looked up in ``/etc/portable/profiles``, ``/run/portable/profiles``,
``/usr/local/lib/portable/profiles`` and ``/usr/lib/portable/profiles`` (the first file of a name
wins), with the same priorities as systemd's profile directories (30, 20, 10, -10): an admin's
``/etc`` file may override a built-in profile, and may ``extends`` the very profile it overrides.
The schema is in ``docs/profiles.md`` (:func:`portable.plugin.load_toml_profile` reads them). A
file that can't be read or parsed is skipped with a one-line warning naming it and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from portable import plugin
from portable.plugin import Host, PortableError, hookimpl, warn

if TYPE_CHECKING:
    from portable.plugin import Profile

__all__ = ["TOML_PROFILE_DIRS", "portable_profiles"]

TOML_PROFILE_DIRS = {
    "/etc/portable/profiles": 30,
    "/run/portable/profiles": 20,
    "/usr/local/lib/portable/profiles": 10,
    "/usr/lib/portable/profiles": -10,
}


@hookimpl
def portable_profiles(root: Path) -> Iterable[Profile]:
    host = Host(root)
    seen: set[str] = set()
    out: list[Profile] = []
    for directory, priority in TOML_PROFILE_DIRS.items():
        try:
            entries = sorted(host.path(directory).iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith(".toml") or entry.name.startswith("."):
                continue
            name = entry.name.removesuffix(".toml")
            if name in seen:
                continue
            seen.add(name)
            shown = f"{directory}/{entry.name}"
            try:
                # (at call time: the TOML reader loads only when there is a file to read)
                out.append(plugin.load_toml_profile(entry, shown=shown, priority=priority))
            except PortableError as exc:
                warn(f"skipping {exc}")
    return out
