"""Profiles kept in files: TOML profiles, and systemd drop-ins given by path.

A TOML profile (``/etc/portable/profiles/NAME.toml``, or any path given to ``--profile``)::

    description = "strict, but it may use the network"
    extends = "strict"                  # optional: start from another profile

    [service]                           # one table per unit type (service, socket, ...)
    remove = ["PrivateNetwork", "IPAddressDeny"]

    [service.set]                       # replaces every value of the key, or adds it
    RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6"
    BindReadOnlyPaths = ["/etc/machine-id", "-/etc/resolv.conf"]   # a list repeats the key

The schema is documented in ``docs/profiles.md``. A systemd drop-in (``service.conf`` or any
``*.conf``) given by path is a profile for services, linked to rather than copied.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portable.errors import PortableError
from portable.types import UNIT_TYPES, Profile, ProfileDropin, ProfileEdit
from portable.unitfile import parse, render

__all__ = [
    "MAX_PROFILE_FILE",
    "apply_edit",
    "load_dropin_profile",
    "load_toml_profile",
    "profile_to_toml",
    "read_profile_file",
]

MAX_PROFILE_FILE = 1024 * 1024
_SECTION = {
    "service": "Service",
    "socket": "Socket",
    "timer": "Timer",
    "path": "Path",
    "target": "Unit",
}


def read_profile_file(path: Path, *, shown: str) -> bytes:
    """A regular file of at most 1 MiB; never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PortableError(f"profile file {shown}: {os.strerror(exc.errno or 0)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PortableError(f"profile file {shown}: not a regular file")
        data = os.read(fd, MAX_PROFILE_FILE + 1)
        if len(data) > MAX_PROFILE_FILE:
            raise PortableError(f"profile file {shown}: larger than {MAX_PROFILE_FILE} bytes")
        return data
    finally:
        os.close(fd)


def _strings(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise PortableError(f"{where}: expected a string or a list of strings")
        text = str(item)
        if "\n" in text:
            raise PortableError(f"{where}: a value must be a single line")
        out.append(text)
    return out


def load_toml_profile(path: Path, *, shown: str, priority: int = 0, origin: str = "") -> Profile:
    """Parse a TOML profile; every mistake is a one-line :class:`PortableError`."""
    data = read_profile_file(path, shown=shown)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PortableError(f"profile file {shown}: {exc}") from None
    name = path.name.removesuffix(".toml")
    allowed = {"description", "extends", *UNIT_TYPES}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PortableError(
            f"profile file {shown}: unknown key {unknown[0]!r} (expected "
            f"description, extends, or a unit type table: {', '.join(UNIT_TYPES)})"
        )
    description = doc.get("description", f"profile from {shown}")
    extends = doc.get("extends")
    if not isinstance(description, str) or (extends is not None and not isinstance(extends, str)):
        raise PortableError(f"profile file {shown}: description and extends must be strings")
    edits: dict[str, ProfileEdit] = {}
    for unit_type in UNIT_TYPES:
        table = doc.get(unit_type)
        if table is None:
            continue
        where = f"profile file {shown}: [{unit_type}]"
        if not isinstance(table, dict) or set(table) - {"remove", "set"}:
            raise PortableError(f"{where}: expected only 'remove' (a list) and 'set' (a table)")
        remove = _strings(table.get("remove", []), f"{where} remove")
        settings = table.get("set", {})
        if not isinstance(settings, dict):
            raise PortableError(f"{where}: 'set' must be a table of settings")
        pairs = [
            (key, v) for key, value in settings.items() for v in _strings(value, f"{where} {key}")
        ]
        for key, _ in pairs:
            if not key.isidentifier():
                raise PortableError(f"{where}: invalid setting name {key!r}")
        edits[unit_type] = ProfileEdit(remove=tuple(remove), set=tuple(pairs))
    try:
        profile = Profile(
            name=name,
            description=description,
            dropins={},
            priority=priority,
            origin=origin or shown,
            extends=extends,
            edits=edits,
        )
    except PortableError as exc:
        raise PortableError(f"profile file {shown}: {exc}") from None
    if extends is None:  # nothing to resolve: the edits are the whole profile
        return resolve(profile, None)
    return profile


def apply_edit(base_text: str, edit: ProfileEdit, section: str, *, header: str) -> str:
    """The drop-in text of ``base_text`` changed by ``edit``."""
    sections = parse(base_text) if base_text else {}
    pairs = sections.setdefault(section, [])
    dropped = set(edit.remove) | {k for k, _ in edit.set}
    sections[section] = [(k, v) for k, v in pairs if k not in dropped] + list(edit.set)
    return render(sections, header=header)


def resolve(profile: Profile, base: Profile | None) -> Profile:
    """``profile`` with ``extends`` applied to ``base`` (or to nothing): concrete drop-ins."""
    from dataclasses import replace

    dropins: dict[str, ProfileDropin] = dict(base.dropins) if base is not None else {}
    header = f"Profile '{profile.name}' ({profile.origin})"
    if base is not None:
        header += f", based on '{base.name}'"
    for unit_type, edit in profile.edits.items():
        base_text = dropins[unit_type].text if unit_type in dropins else ""
        text = apply_edit(base_text, edit, _SECTION[unit_type], header=header)
        dropins[unit_type] = ProfileDropin(text=text)
    return replace(profile, dropins=dropins, extends=None, edits={})


def load_dropin_profile(path: Path, *, shown: str, host_path: str) -> Profile:
    """A systemd drop-in given by path: a profile for services, linked to where it is."""
    data = read_profile_file(path, shown=shown)
    name = path.name.removesuffix(".conf") or "profile"
    if name == "service":  # .../NAME/service.conf: name it after its directory
        name = path.parent.name or name
    text = data.decode("utf-8", "surrogateescape")
    try:
        return Profile(
            name=name,
            description=f"drop-in {shown}",
            origin=shown,
            dropins={"service": ProfileDropin(text=text, path=Path(host_path))},
        )
    except PortableError as exc:
        raise PortableError(f"profile file {shown}: {exc}") from None


def profile_to_toml(profile: Profile) -> str:
    """The profile as a stand-alone TOML profile (no ``extends``: every setting spelled out)."""
    import tomli_w

    doc: dict[str, Any] = {"description": profile.description}
    for unit_type, dropin in profile.dropins.items():
        settings: dict[str, Any] = {}
        for key, value in parse(dropin.text).get(_SECTION[unit_type], []):
            if key in settings:
                prev = settings[key]
                settings[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
            else:
                settings[key] = value
        doc[unit_type] = {"set": settings}
    return tomli_w.dumps(doc)


def as_mapping(profile: Profile) -> Mapping[str, str]:
    return {t: d.text for t, d in profile.dropins.items()}
