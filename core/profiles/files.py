"""Profiles kept in files: TOML profiles, and systemd drop-ins given by path.

A TOML profile (``/etc/portable/profiles/NAME.toml``, or any path given to ``--profile``)::

    description = "strict, but it may use the network"
    extends = "strict"                  # optional: start from another profile

    [service]                           # one table per unit type (service, socket, ...)
    remove = ["PrivateNetwork", "IPAddressDeny"]

    [service.set]                       # replaces every value of the key, or adds it
    RestrictAddressFamilies = "AF_UNIX AF_INET AF_INET6"
    BindReadOnlyPaths = ["/etc/machine-id", "-/etc/resolv.conf"]   # a list repeats the key

    [floor]                             # the sandbox floor: what the image's units may not set
    forbid = [{setting = "User", match = "values", values = ["root", "0"], reason = "runs as root"}]
    allow = ["BindReadOnlyPaths"]       # the base floor's rules for these settings dropped
    hold_profile = true                 # default: the base's

The schema is documented in ``docs/profiles.md``. A systemd drop-in (``service.conf`` or any
``*.conf``) given by path is a profile for services, linked to rather than copied.

A file must be a profile, or it is refused with one line naming it and why: a TOML profile
that sets something (or ``extends`` a profile), or a drop-in with at least one setting in a
section systemd reads for a service (``--profile /etc/passwd`` would otherwise attach with no
sandbox at all). A copy of a profile read from a file (``--copy=copy``, and every TOML profile)
is never more readable than that file: it keeps the file's permission bits, at most 0644
(systemd's own profile files are copied with 0644, as portablectl does).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from portable.errors import PortableError
from portable.plugin.types import (
    FLOOR_MATCHES,
    Floor,
    FloorEdit,
    FloorRule,
    Profile,
    ProfileDropin,
    ProfileEdit,
)
from portable.security.floor_tables import STANDARD, floor_of
from portable.systemd.names import PORTABLE_UNIT_TYPES
from portable.systemd.unitfile import parse, parse_unit_text, render

__all__ = [
    "COPY_MODE",
    "MAX_PROFILE_FILE",
    "SERVICE_SECTIONS",
    "apply_edit",
    "apply_floor_edit",
    "check_dropin_text",
    "floor_to_edit",
    "load_dropin_profile",
    "load_toml_profile",
    "profile_to_toml",
    "read_profile_file",
]

MAX_PROFILE_FILE = 1024 * 1024
# The most a copy of a profile may be readable: what portablectl gives its copies.
COPY_MODE = 0o644
# The sections systemd reads in a service's drop-in (a drop-in given by path is for services).
SERVICE_SECTIONS = ("Service", "Unit", "Install")
_SECTION = {
    "service": "Service",
    "socket": "Socket",
    "timer": "Timer",
    "path": "Path",
    "target": "Unit",
}


def read_profile_file(path: Path, *, shown: str) -> bytes:
    """A regular file of at most 1 MiB; never blocks on a FIFO."""
    return _read(path, shown=shown)[0]


def _read(path: Path, *, shown: str) -> tuple[bytes, int]:
    """The file's content and the mode a copy of it may have (its bits, at most 0644)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PortableError(f"profile file {shown}: {os.strerror(exc.errno or 0)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PortableError(f"profile file {shown}: not a regular file")
        data = b""  # read() may return less than asked: loop up to one byte over the limit
        while len(data) <= MAX_PROFILE_FILE:
            chunk = os.read(fd, MAX_PROFILE_FILE + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_PROFILE_FILE:
            raise PortableError(f"profile file {shown}: larger than {MAX_PROFILE_FILE} bytes")
        return data, stat.S_IMODE(st.st_mode) & COPY_MODE
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
    import tomllib  # ~3 ms to import: only where a TOML profile exists (the registry loads us)

    data, mode = _read(path, shown=shown)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PortableError(f"profile file {shown}: {exc}") from None
    name = path.name.removesuffix(".toml")
    allowed = {"description", "extends", "floor", *PORTABLE_UNIT_TYPES}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise PortableError(
            f"profile file {shown}: unknown key {unknown[0]!r} (expected "
            f"description, extends, floor, or a unit type table: {', '.join(PORTABLE_UNIT_TYPES)})"
        )
    description = doc.get("description", f"profile from {shown}")
    extends = doc.get("extends")
    if not isinstance(description, str) or (extends is not None and not isinstance(extends, str)):
        raise PortableError(f"profile file {shown}: description and extends must be strings")
    edits: dict[str, ProfileEdit] = {}
    for unit_type in PORTABLE_UNIT_TYPES:
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
        edits[unit_type] = ProfileEdit(remove=tuple(remove), set=tuple(pairs), mode=mode)
    floor_edit = None
    if "floor" in doc:
        floor_edit = _floor_edit(doc["floor"], f"profile file {shown}: [floor]", name)
    try:
        profile = Profile(
            name=name,
            description=description,
            dropins={},
            priority=priority,
            origin=origin or shown,
            extends=extends,
            edits=edits,
            # without a base, the edit applies to the standard floor right away
            floor=_standard_edited(floor_edit) if extends is None else None,
            floor_edit=floor_edit if extends is not None else None,
        )
    except PortableError as exc:
        raise PortableError(f"profile file {shown}: {exc}") from None
    if extends is None:  # nothing to resolve: the edits are the whole profile
        profile = resolve(profile, None)
        if not any(parse(d.text).get(_SECTION[t]) for t, d in profile.dropins.items()):
            # a profile that sets nothing would attach with no sandbox at all
            raise PortableError(
                f"profile file {shown}: sets nothing (no 'extends' and no setting in a "
                f"unit type table)"
            )
    return profile


_SETTING_NAME = r"^[A-Za-z][A-Za-z0-9]*$"  # compiled by re on first use: TOML floors only
_RULE_KEYS = ("setting", "match", "values", "reason", "unit_types")


def _setting_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.match(_SETTING_NAME, value):
        raise PortableError(f"{where}: invalid setting name {value!r}")
    return value


def _floor_edit(table: Any, where: str, profile: str) -> FloorEdit:
    """A ``[floor]`` table: ``forbid`` (a list of rules), ``allow`` (setting names),
    ``hold_profile`` (a boolean)."""
    if not isinstance(table, dict):
        raise PortableError(f"{where}: expected a table")
    unknown = sorted(set(table) - {"forbid", "allow", "hold_profile"})
    if unknown:
        raise PortableError(
            f"{where}: unknown key {unknown[0]!r} (expected forbid, allow, hold_profile)"
        )
    forbid = table.get("forbid", [])
    if not isinstance(forbid, list):
        raise PortableError(f"{where}: 'forbid' must be a list of tables")
    rules = tuple(
        _floor_rule(item, f"{where} forbid[{i}]", profile) for i, item in enumerate(forbid)
    )
    allow = table.get("allow", [])
    if not isinstance(allow, list):
        raise PortableError(f"{where}: 'allow' must be a list of setting names")
    names = tuple(_setting_name(a, f"{where} allow") for a in allow)
    hold = table.get("hold_profile")
    if hold is not None and not isinstance(hold, bool):
        raise PortableError(f"{where}: 'hold_profile' must be true or false")
    return FloorEdit(forbid=rules, allow=names, hold_profile=hold)


def _floor_rule(item: Any, where: str, profile: str) -> FloorRule:
    if not isinstance(item, dict):
        raise PortableError(f"{where}: expected a table ({{setting = ..., reason = ...}})")
    unknown = sorted(set(item) - set(_RULE_KEYS))
    if unknown:
        raise PortableError(
            f"{where}: unknown key {unknown[0]!r} (expected {', '.join(_RULE_KEYS)})"
        )
    if "setting" not in item:
        raise PortableError(f"{where}: 'setting' is missing")
    setting = _setting_name(item["setting"], where)
    where = f"{where} {setting}="
    match = item.get("match", "any")
    if match not in FLOOR_MATCHES:
        raise PortableError(
            f"{where}: unknown match {match!r} (expected one of {', '.join(FLOOR_MATCHES)})"
        )
    values = tuple(_strings(item.get("values", []), f"{where} values"))
    if match in ("values", "prefix") and not values:
        raise PortableError(f"{where}: match {match!r} needs 'values'")
    if match not in ("values", "prefix") and values:
        raise PortableError(f"{where}: 'values' only go with match 'values' or 'prefix'")
    reason = item.get("reason", f"forbidden by profile '{profile}'")
    if not isinstance(reason, str) or "\n" in reason:
        raise PortableError(f"{where}: 'reason' must be a one-line string")
    unit_types = tuple(_strings(item.get("unit_types", []), f"{where} unit_types"))
    try:
        return FloorRule(
            setting=setting, match=match, values=values, reason=reason, unit_types=unit_types
        )
    except PortableError as exc:
        raise PortableError(f"{where}: {exc}") from None


def apply_floor_edit(base: Floor, edit: FloorEdit) -> Floor:
    """``base`` without the rules of ``edit.allow``'s settings, with ``edit.forbid``'s added
    (once: a rule the base has already is not repeated)."""
    allowed = set(edit.allow)
    rules = [r for r in base.rules if r.setting not in allowed]
    rules += [r for i, r in enumerate(edit.forbid) if r not in rules and r not in edit.forbid[:i]]
    hold = base.hold_profile if edit.hold_profile is None else edit.hold_profile
    return Floor(rules=tuple(rules), hold_profile=hold)


def _standard_edited(edit: FloorEdit | None) -> Floor | None:
    return apply_floor_edit(STANDARD, edit) if edit is not None else None


def floor_to_edit(floor: Floor, base: Floor) -> FloorEdit | None:
    """The edit that turns ``base`` into ``floor`` exactly (``None``: they are the same)."""
    if floor == base:
        return None
    kept = set(floor.rules)
    allow = tuple(dict.fromkeys(r.setting for r in base.rules if r not in kept))
    forbid = tuple(r for r in floor.rules if r not in base.rules or r.setting in allow)
    hold = None if floor.hold_profile == base.hold_profile else floor.hold_profile
    edit = FloorEdit(forbid=forbid, allow=allow, hold_profile=hold)
    if apply_floor_edit(base, edit) != floor:  # an order the short form can't give: spell out
        every = tuple(dict.fromkeys(r.setting for r in base.rules))
        edit = FloorEdit(forbid=floor.rules, allow=every, hold_profile=hold)
    return edit


def apply_edit(base_text: str, edit: ProfileEdit, section: str, *, header: str) -> str:
    """The drop-in text of ``base_text`` changed by ``edit``."""
    sections = parse(base_text) if base_text else {}
    pairs = sections.setdefault(section, [])
    dropped = set(edit.remove) | {k for k, _ in edit.set}
    sections[section] = [(k, v) for k, v in pairs if k not in dropped] + list(edit.set)
    return render(sections, header=header)


def resolve(profile: Profile, base: Profile | None) -> Profile:
    """``profile`` with ``extends`` applied to ``base`` (or to nothing): concrete drop-ins."""
    dropins: dict[str, ProfileDropin] = dict(base.dropins) if base is not None else {}
    header = f"Profile '{profile.name}' ({profile.origin})"
    if base is not None:
        header += f", based on '{base.name}'"
    for unit_type, edit in profile.edits.items():
        base_text = dropins[unit_type].text if unit_type in dropins else ""
        text = apply_edit(base_text, edit, _SECTION[unit_type], header=header)
        # never more readable than the file the edit comes from, nor than the base
        mode = edit.mode & (dropins[unit_type].mode if unit_type in dropins else COPY_MODE)
        dropins[unit_type] = ProfileDropin(text=text, mode=mode)
    floor = profile.floor if profile.floor is not None else (base.floor if base else None)
    if profile.floor_edit is not None:
        floor = apply_floor_edit(floor if floor is not None else STANDARD, profile.floor_edit)
    return replace(profile, dropins=dropins, extends=None, edits={}, floor=floor, floor_edit=None)


def load_dropin_profile(path: Path, *, shown: str, host_path: str) -> Profile:
    """A systemd drop-in given by path: a profile for services, linked to where it is.

    Refused unless it is one: UTF-8 (systemd ignores lines that are not) with at least one
    setting in a section systemd reads for a service.
    """
    data, mode = _read(path, shown=shown)
    name = path.name.removesuffix(".conf") or "profile"
    if name == "service":  # .../NAME/service.conf: name it after its directory
        name = path.parent.name or name
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PortableError(
            f"profile file {shown}: not a systemd drop-in: not UTF-8 text (byte {exc.start})"
        ) from None
    check_dropin_text(text, shown=shown)
    try:
        return Profile(
            name=name,
            description=f"drop-in {shown}",
            origin=shown,
            dropins={"service": ProfileDropin(text=text, path=Path(host_path), mode=mode)},
        )
    except PortableError as exc:
        raise PortableError(f"profile file {shown}: {exc}") from None


def check_dropin_text(text: str, *, shown: str) -> None:
    """Refuse ``text`` unless it is a drop-in for services: a setting in [Service], [Unit] or
    [Install]. The refusal names the file, never its content (it may be anyone's file)."""
    assignments = parse_unit_text(text, f"profile file {shown}")
    if not any(a.section in SERVICE_SECTIONS for a in assignments):
        what = (
            "its settings are all outside [Service], [Unit] and [Install]"
            if assignments
            else "no setting in [Service], [Unit] or [Install]"
        )
        raise PortableError(
            f"profile file {shown}: not a systemd drop-in for services: {what}"
            " (a TOML profile's file name ends in .toml)"
        )


def profile_to_toml(profile: Profile) -> str:
    """The profile as a stand-alone TOML profile (no ``extends``: every setting spelled out)."""
    import tomli_w  # ~1 ms to import: only for 'portable profile export'

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
    edit = floor_to_edit(floor_of(profile), STANDARD)
    if edit is not None:
        table: dict[str, Any] = {}
        if edit.hold_profile is not None:
            table["hold_profile"] = edit.hold_profile
        if edit.allow:
            table["allow"] = list(edit.allow)
        if edit.forbid:
            table["forbid"] = [_rule_to_toml(r) for r in edit.forbid]
        doc["floor"] = table
    return tomli_w.dumps(doc)


def _rule_to_toml(rule: FloorRule) -> dict[str, Any]:
    """A rule as a ``[floor] forbid`` entry, without the keys at their defaults."""
    out: dict[str, Any] = {"setting": rule.setting}
    if rule.match != "any":
        out["match"] = rule.match
    if rule.values:
        out["values"] = list(rule.values)
    out["reason"] = rule.reason
    if rule.unit_types:
        out["unit_types"] = list(rule.unit_types)
    return out


def as_mapping(profile: Profile) -> Mapping[str, str]:
    return {t: d.text for t, d in profile.dropins.items()}
