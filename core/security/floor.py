"""The sandbox floor: unit settings an image may not use to undo the profile it is attached with.

A profile's drop-in comes after the image's unit file, so it wins for single-valued settings;
but many settings reach past it: an ``ExecStart=+...`` runs with full privileges,
``BindReadOnlyPaths=/etc:/mnt`` shows the host's ``/etc`` inside, ``StandardOutput=truncate:/etc/x``
and a socket unit's ``ListenStream=/etc/x`` write host files, ``Wants=``/``Alias=`` reach host
units, list settings such as ``CapabilityBoundingSet=`` are merged with the profile's. Neither
portablectl nor systemd checks any of this. Attach refuses it under every profile except
``trusted``, naming ``unit:line: Setting=value`` and why; ``inspect`` and ``security`` show the same
findings, ``verify`` checks the running service.

What each profile forbids is data (:mod:`portable.security.floor_tables`, re-exported here:
:data:`STANDARD`, :data:`NO_NETWORK`, :data:`NONE`, :data:`BUILTIN`, :func:`floor_of`); this
module evaluates a floor against unit files (:func:`check_units`), with the exposure score for
what a unit undoes of the profile's own settings (:func:`undone`). The score
(:mod:`portable.security.score`, ~8 ms to import) is loaded only for a unit that sets
something it reads (:data:`~portable.security.floor_tables.GRADED_SETTINGS`): most units set
none, and then nothing can be undone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from portable.errors import AttachRefused
from portable.plugin.types import FloorRule, Profile, UnitFile
from portable.security.floor_tables import (
    BUILTIN,
    GRADED_SETTINGS,
    NO_NETWORK,
    NONE,
    STANDARD,
    floor_of,
)
from portable.systemd.names import printable_path, unit_matches, unit_matches_prefix, unit_template
from portable.systemd.unitfile import Assignment, parse_unit_text

if TYPE_CHECKING:
    from portable.security.settings import ServiceSettings

__all__ = [
    "BUILTIN",
    "NONE",
    "NO_NETWORK",
    "STANDARD",
    "FloorFinding",
    "FloorViolation",
    "check_unit",
    "check_units",
    "floor_of",
    "refusal",
    "undone",
]


# A NamedTuple: made at import in a fifth of the time of a frozen dataclass (~0.08 ms, not 0.45).
class FloorFinding(NamedTuple):
    """A unit setting the floor forbids: ``unit:line: Setting=value: reason``."""

    unit: str
    line: int
    setting: str
    value: str
    reason: str

    def __str__(self) -> str:
        value = self.value if len(self.value) <= 80 else self.value[:77] + "..."
        where = f"{self.unit}:{self.line}" if self.line else self.unit
        return f"{printable_path(where)}: {self.setting}={printable_path(value)}: {self.reason}"

    def to_json(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "line": self.line,
            "setting": self.setting,
            "value": self.value,
            "reason": self.reason,
        }


class FloorViolation(AttachRefused):
    """An image's unit files would undo the profile's sandbox (exit status 1)."""

    def __init__(self, message: str, findings: Sequence[FloorFinding]) -> None:
        super().__init__(message)
        self.findings = tuple(findings)


# --- matching one value ------------------------------------------------------------------------

_EXEC_PREFIXES = "@-:+!|"
_SPECIFIER = r"%(.)"  # compiled by re on first use (a name with a specifier)


def _privileged(command_line: str) -> bool:
    """Does any command of an ``Exec*=`` line run with full privileges (``+``, ``!``, ``!!``)?

    Every command counts: systemd still splits a line at a lone ``;``.
    """
    starts = True
    for word in command_line.split():
        if starts:
            lead = word[: len(word) - len(word.lstrip(_EXEC_PREFIXES))]
            if "+" in lead or "!" in lead:
                return True
        starts = word == ";"
    return False


def _expand(name: str, unit: str) -> str | None:
    """``name`` with the unit-name specifiers systemd expands in dependencies (``%n``, ``%N``,
    ``%p``, ``%i``, ``%j``, ``%%``); None if it uses another one (what it names is unknown)."""
    if "%" not in name:
        return name  # (most names: no pattern compiled, no table built)
    base = unit.rpartition(".")[0]
    prefix, _, instance = base.partition("@")
    values = {"n": unit, "N": base, "p": prefix, "i": instance, "j": prefix.rpartition("-")[2]}
    values["%"] = "%"
    unknown = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unknown
        if m.group(1) not in values:
            unknown = True
            return ""
        return values[m.group(1)]

    out = re.sub(_SPECIFIER, sub, name)
    return None if unknown else out


class _Context(NamedTuple):  # a NamedTuple: see FloorFinding
    unit: str
    own_units: frozenset[str]
    image_prefixes: tuple[str, ...] = ()

    def is_own_unit(self, name: str) -> bool:
        """Is ``name`` one of the attach's units (or an instance of one of its templates)?

        Only what the image attaches: a prefix the user typed (``attach IMG IMG dbus``) names
        the units to take from the image, not host units the image may reach.
        """
        if name in self.own_units:
            return True
        template = unit_template(name)
        return template is not None and template in self.own_units

    def owns(self, name: str) -> bool:
        """Is ``name`` (an alias, a directory, a file below /run) named after the image or
        one of the attach's units: ``redis.service`` for ``redis_7.0``, ``foo``, ``foo.sock``,
        ``foo-web.service`` for ``foo.service``?"""
        if name in self.own_units:
            return True
        if self.image_prefixes and unit_matches(name, self.image_prefixes):
            return True
        stems = {u.rpartition(".")[0].partition("@")[0] for u in self.own_units}
        return any(unit_matches_prefix(name, stem) for stem in stems if stem)


def _own_run_path(path: str, ctx: _Context) -> bool:
    """Is ``path`` below ``/run`` and named after the image (``/run/foo.sock``, ``/run/foo/x``)?
    systemd replaces what is at a socket's path: anywhere else it may be a host file."""
    parts = path.split("/")
    if len(parts) < 3 or parts[1] != "run" or any(p in (".", "..") for p in parts):
        return False
    return ctx.owns(parts[2])


def _forbidden(rule: FloorRule, value: str, ctx: _Context) -> list[str]:
    """The parts of ``value`` ``rule`` forbids (``[value]`` for a whole-value match)."""
    value = value.strip()
    if not value:
        return []  # an empty assignment resets a list: it can't reach anything
    match = rule.match
    if match == "any":
        return [value]
    if match == "values":
        return [value] if value.lower() in (v.lower() for v in rule.values) else []
    if match == "prefix":
        return [value] if value.startswith(rule.values) else []
    if match == "exec-privileged":
        return [value] if _privileged(value) else []
    if match == "host-file":
        path = value.removeprefix("-")
        parts = path.split("/")
        ok = (
            len(parts) == 4
            and parts[:3] in (["", "etc", "default"], ["", "etc", "sysconfig"])
            and ctx.owns(parts[3])
        )
        return [] if ok else [value]
    if match == "host-path":
        return [value] if value.startswith("/") and not _own_run_path(value, ctx) else []
    if match == "network-address":
        return [] if value.startswith(("/", "@")) else [value]
    words = value.split()
    if match == "host-unit":
        bad = []
        for word in words:
            name = _expand(word, ctx.unit)
            if name is not None and (
                name.endswith((".target", ".slice")) or ctx.is_own_unit(name) or name == ctx.unit
            ):
                continue
            bad.append(word)
        return bad
    if match == "foreign-name":
        bad = []
        for word in words:
            # StateDirectory=foo/bar:alias: the first path component of the source counts.
            name = _expand(word.split(":", 1)[0].split("/", 1)[0], ctx.unit)
            if name is not None and (ctx.owns(name) or name == ctx.unit):
                continue
            bad.append(word)
        return bad
    raise AssertionError(match)  # FloorRule validates match


# --- holding the profile's own settings ---------------------------------------------------------

# A check graded by one setting that another setting loosens: where to look for the line.
_LOOSENED_BY = {
    "IPAddressDeny": ("IPAddressAllow",),
    "DynamicUser": ("User",),
}
_MAX_SEARCH = 256  # assignments tried one by one to find the line that loosens a check


def _check_keys(name: str) -> set[str]:
    """``"User=/DynamicUser="`` -> ``{"User", "DynamicUser"}``."""
    return {part.split("=", 1)[0] for part in name.split("/") if "=" in part}


def _settings(name: str, applied: Iterable[Assignment], systemd: int | None) -> ServiceSettings:
    # here: the score's settings only for a unit that sets something graded (see the docstring)
    from portable.security.settings import settings_from

    return settings_from(name, applied, systemd=systemd)


@functools.lru_cache(maxsize=16)
def _profile_lines(text: str) -> tuple[Assignment, ...]:
    """A profile drop-in's assignments."""
    return tuple(parse_unit_text(text, "10-profile.conf"))


@functools.lru_cache(maxsize=16)
def _promise(text: str, systemd: int | None) -> tuple[tuple[Assignment, ...], frozenset[str]]:
    """A profile drop-in's assignments and the settings it sets or implies."""
    lines = _profile_lines(text)
    return lines, frozenset({a.key for a in lines} | set(_settings("x", lines, systemd).implied))


@functools.lru_cache(maxsize=16)
def _profile_grades(text: str, systemd: int | None) -> dict[str, int | None]:
    """How the bare service grades with a profile (check name -> badness): the baseline of
    every unit file of an attach."""
    from portable.security.score import assess  # here: see _settings

    return {
        f.check.name: f.badness
        for f in assess(_settings("x", _promise(text, systemd)[0], systemd)).findings
    }


def _graded(a: Assignment) -> bool:
    if a.section == "Unit":
        return a.key == "DefaultDependencies"
    return a.section == "Service" and a.key in GRADED_SETTINGS


def undone(
    unit: str,
    applied: Sequence[Assignment],
    suspects: Collection[str],
    profile: Profile,
    *,
    systemd: int | None = None,
    profile_text: str | None = None,
) -> list[FloorFinding]:
    """What the assignments from the files ``suspects`` undo of what ``profile`` sets: the
    service as systemd applies ``applied`` (every assignment of the unit file and its drop-ins,
    in systemd's order, each with its ``source``) graded worse than without the suspects'
    assignments, on a check the profile's service drop-in sets (or implies). A finding names
    the suspect line that does it (``source:line``), or the check alone if no single line does.

    Attach passes the image's unit file then the profile (the unit is the suspect); ``verify``
    the files the service manager loaded, an administrator's drop-ins among the suspects.
    ``profile_text``: the profile drop-in as loaded, if not the profile's own text.
    """
    dropin = profile.dropin_for("service")
    text = profile_text if profile_text is not None else (dropin.text if dropin else None)
    if text is None:
        return []
    theirs = [a for a in applied if a.source in suspects]
    if not any(_graded(a) for a in theirs):
        # Nothing the score reads: it grades as without them (most units; the score is not
        # even imported). tests/test_floor_cheap.py compares this with the score's answer.
        return []
    return _undone_graded(unit, applied, suspects, theirs, profile, text, systemd)


def _undone_graded(
    unit: str,
    applied: Sequence[Assignment],
    suspects: Collection[str],
    theirs: Sequence[Assignment],
    profile: Profile,
    text: str,
    systemd: int | None,
) -> list[FloorFinding]:
    """:func:`undone` by the score, for suspects that set something it reads."""
    from portable.security.score import assess  # here: see _settings

    profile_lines, promised = _promise(text, systemd)
    rest = [a for a in applied if a.source not in suspects]
    if [(a.key, a.value) for a in rest] == [(a.key, a.value) for a in profile_lines]:
        baseline = _profile_grades(text, systemd)  # the common case, once per attach
    else:
        baseline = {
            f.check.name: f.badness for f in assess(_settings(unit, rest, systemd)).findings
        }

    def badness_without(leave: Collection[Assignment], check: str) -> int | None:
        graded = assess(_settings(unit, (a for a in applied if a not in leave), systemd))
        return next(f.badness for f in graded.findings if f.check.name == check)

    by_line: dict[tuple[str, int], tuple[Assignment | None, list[str]]] = {}
    for finding in assess(_settings(unit, applied, systemd)).findings:
        check = finding.check.name
        was = baseline.get(check)
        keys = _check_keys(check)
        if finding.badness is None or was is None or finding.badness <= was:
            continue
        if not keys & promised:
            continue
        related = keys | {k for key in keys for k in _LOOSENED_BY.get(key, ())}
        lines: list[Assignment | None] = [a for a in theirs if a.key in related]
        if len({a.key for a in lines if a is not None}) > 1:
            # IPAddressDeny=any next to IPAddressAllow=localhost: only the setting that loosens
            # (all its lines left out, the check grades no worse)
            by_key: dict[str, list[Assignment]] = {}
            for a in lines:
                if a is not None:
                    by_key.setdefault(a.key, []).append(a)
            helps = [
                a
                for group in by_key.values()
                if (badness_without(group, check) or 0) <= was
                for a in group
            ]
            lines = [*helps] or lines
        candidates = [a for a in theirs if _graded(a)]
        if not lines and len(candidates) <= _MAX_SEARCH:
            # loosened through another setting (DynamicUser=no: RestrictSUIDSGID=): the lines
            # without which the check grades no worse
            lines = [a for a in candidates if (badness_without((a,), check) or 0) <= was]
        what = f"{finding.description} ({check})"
        for a in lines or [None]:
            where = (a.source, a.line) if a is not None else (", ".join(sorted(suspects)), 0)
            by_line.setdefault(where, (a, []))[1].append(what)
    out = []
    for (source, line), (a, whats) in sorted(by_line.items()):
        shown = "; ".join(whats[:3]) + (f"; and {len(whats) - 3} more" if len(whats) > 3 else "")
        out.append(
            FloorFinding(
                unit=source,
                line=line,
                setting=a.key if a is not None else "",
                value=a.value if a is not None else "",
                reason=f"undoes what profile '{profile.name}' sets: {shown}",
            )
        )
    return out


# --- the entry points --------------------------------------------------------------------------


def check_unit(
    unit: UnitFile,
    profile: Profile,
    *,
    own_units: Collection[str] = (),
    image_prefixes: Sequence[str] = (),
    systemd: int | None = None,
    allow: Collection[str] = (),
) -> list[FloorFinding]:
    """What in ``unit`` (an image's unit file) the floor of ``profile`` forbids, in line order.

    :param own_units: the names of the image's units (and its extensions'): dependencies on
        them, aliases and directories named after them are the image's own business.
    :param image_prefixes: the unit name prefix derived from the image's name (``redis`` for
        ``redis_7.0``, as portablectl derives it): an alias, a directory or a file below /run
        named so is the image's (``Alias=redis.service`` of Debian's ``redis-server.service``).
        Not the prefixes a user types: those choose the image's units, not names on the host.
    :param systemd: the version whose rules grade the profile's settings (``None``: this
        machine's).
    :param allow: setting names the user allows (``--allow-setting``): never reported.
    """
    floor = floor_of(profile)
    if not floor.rules and not floor.hold_profile:
        return []
    text = unit.data.decode("utf-8", "surrogateescape")
    assignments = parse_unit_text(text, unit.name)
    ctx = _Context(
        unit=unit.name,
        own_units=frozenset(own_units) | {unit.name},
        image_prefixes=tuple(p for p in image_prefixes if p),
    )
    rules: dict[str, list[FloorRule]] = {}
    for rule in floor.rules:
        if not rule.unit_types or unit.type in rule.unit_types:
            rules.setdefault(rule.setting, []).append(rule)
    findings = []
    for a in assignments:
        if a.key in allow:
            continue
        for rule in rules.get(a.key, ()):
            bad = _forbidden(rule, a.value, ctx)
            if bad:
                shown = a.value if bad == [a.value.strip()] else " ".join(bad)
                findings.append(FloorFinding(unit.name, a.line, a.key, shown, rule.reason))
                break
    if floor.hold_profile and unit.type == "service":
        dropin = profile.dropin_for("service")
        profile_lines = _profile_lines(dropin.text) if dropin else ()
        held = undone(
            unit.name, [*assignments, *profile_lines], {unit.name}, profile, systemd=systemd
        )
        seen = {(f.line, f.setting) for f in findings}
        findings += [f for f in held if f.setting not in allow and (f.line, f.setting) not in seen]
    findings.sort(key=lambda f: f.line)
    return findings


def check_units(
    units: Sequence[UnitFile],
    profile: Profile,
    *,
    image_prefixes: Sequence[str] = (),
    systemd: int | None = None,
    allow: Collection[str] = (),
) -> list[FloorFinding]:
    """:func:`check_unit` for every unit of an attach (its units are each other's own)."""
    own = frozenset(u.name for u in units)
    out: list[FloorFinding] = []
    for unit in units:
        out += check_unit(
            unit,
            profile,
            own_units=own,
            image_prefixes=image_prefixes,
            systemd=systemd,
            allow=allow,
        )
    return out


def refusal(image: str, profile: Profile, findings: Sequence[FloorFinding]) -> FloorViolation:
    """The error attach raises: a line saying what and how to override, a line per finding."""
    settings = sorted({f.setting for f in findings if f.setting})
    head = (
        f"Image '{printable_path(image)}' has unit settings that undo the sandbox of profile "
        f"'{profile.name}' ({len(findings)}), refusing; "
        + (
            f"--allow-setting={','.join(settings)} attaches it anyway"
            if settings
            else "see 'portable security'"
        )
        + ":"
    )
    return FloorViolation("\n".join([head, *(f"  {f}" for f in findings)]), findings)
