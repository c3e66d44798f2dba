"""What ``portable security TARGET`` scores, and the sandbox floor findings that go with it.

A target is a unit (a name on the host, or a unit file by path), an attached image (its services
as attached, unless a profile is given) or any other image (its services as attaching it with the
profile would write them): :func:`assess_target` resolves it, scores each service
(:mod:`portable.security.score`) and checks the units against the floor of the profile they are
(or would be) attached with (:mod:`portable.security.floor`), into a :class:`FloorReport`::

    results, floor = assess_target("foo", host=Host(), registry=get_registry())
    for r in results:
        print(r.unit, r.score.text, r.score.verdict)
    print(floor.findings, floor.notes)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portable.engine.detach import find_attached
from portable.engine.dropins import PROFILE_FILE
from portable.engine.state import attached_units, recorded_profile
from portable.errors import PortableError
from portable.images.arguments import derived_prefixes, effective_prefixes, normalize_image_arg
from portable.images.inspect import read_metadata
from portable.images.resolve import resolve_image
from portable.plugin.types import Profile, UnitFile
from portable.security.floor import FloorFinding, check_unit
from portable.security.score import UnitExposure, host_unit_exposure, would_attach_exposure
from portable.systemd.host import ATTACHED_DIR, Host
from portable.systemd.manager import detect_running
from portable.systemd.names import is_portable_unit_type, printable
from portable.systemd.version import detect

if TYPE_CHECKING:
    from portable.plugin.registry import Registry

__all__ = ["FloorReport", "assess_target"]


@dataclass(slots=True)
class FloorReport:
    """The floor findings of the units scored (and of the image's other units).

    :param profiles: unit -> the profile whose floor it was checked against; a unit not in it
        was not checked (a unit that is not an image's, or whose profile is unknown here).
    :param findings: in unit order, then line order.
    :param notes: why something was not checked (info lines).
    :param scored: the units that have a result of their own.
    """

    profiles: dict[str, str] = field(default_factory=dict)
    findings: list[FloorFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scored: set[str] = field(default_factory=set)

    def to_json(self, unit: str) -> dict[str, Any] | None:
        """A result's ``"floor"``: its unit's findings, and those of the units that are not
        scored (sockets, timers, paths: no result of their own carries them)."""
        if unit not in self.profiles:
            return None
        return {
            "profile": self.profiles[unit],
            "findings": [f.to_json() for f in self.findings if f.unit == unit],
            "other_units": [f.to_json() for f in self.findings if f.unit not in self.scored],
        }


def assess_target(
    target: str,
    *,
    host: Host,
    registry: Registry,
    prefixes: Sequence[str] = (),
    profile: str | None = None,
    runtime: bool = False,
    systemd: int | None = None,
) -> tuple[list[UnitExposure], FloorReport]:
    """Score ``target``: a unit (name or unit file path), an attached image (as attached,
    unless ``profile`` is given) or an image (as attaching it with ``profile``, default
    ``default``, would), as systemd ``systemd`` grades it (``None``: the one the host runs,
    :func:`portable.systemd.manager.detect_running`); and the floor findings of the units
    scored: an image's units (all of them, not only services) against the profile scored with;
    an attached unit (or image) against the profile recorded for it, or ``profile``; a unit
    not attached from an image: none (the floor is what an image may not do to a profile).

    :param prefixes: the unit name prefixes of an image's units (as ``inspect`` takes them).
    :param runtime: look at (or score for) the runtime attach directory first.
    :raises PortableError: no such unit, image or profile; not a service; nothing to score.
    """
    version = systemd if systemd is not None else detect_running(host).major
    report = FloorReport()
    prof = registry.profile(profile).spec if profile is not None else None
    if is_portable_unit_type(target):
        result = _unit_exposure(target, host=host, profile=prof, systemd=version)
        report.scored.add(result.unit)
        if result.how == "attached":
            _floor_of_attached_unit(host, registry, report, result, prof, version)
        return [result], report
    if prof is None:
        found = _attached_exposures(target, host, registry, report, runtime, version)
        if found:
            return found, report
        prof = registry.profile("default").spec
    img = resolve_image(target, host=host, registry=registry)
    meta = read_metadata(
        img, effective_prefixes(target, tuple(prefixes), systemd=detect(host).major)
    )
    results = would_attach_exposure(
        img, meta.units, prof, host=host, runtime=runtime, systemd=version
    )
    if not results:
        raise PortableError(f"Image '{img.path}' has no matching service units to score.")
    report.scored.update(r.unit for r in results)
    own = [u.name for u in meta.units]
    _check(report, list(meta.units), prof, own_units=own, image=img.path, systemd=version)
    return results, report


def _unit_exposure(unit: str, *, host: Host, profile: Profile | None, systemd: int) -> UnitExposure:
    """A service on the host by name, or a unit file by path (its drop-ins next to it)."""
    if not unit.endswith(".service"):
        raise PortableError(f"{unit}: only services are scored (as systemd-analyze security)")
    if "/" not in unit:
        return host_unit_exposure(unit, host=host, profile=profile, systemd=systemd)
    local = os.path.abspath(unit) if host.is_real else unit
    inside = local if host.is_real else "/" + unit.lstrip("/")
    if not os.path.isfile(host.path(inside)):
        raise PortableError(f"Unit file {unit} not found.")
    return host_unit_exposure(
        os.path.basename(unit), host=host, profile=profile, fragment=inside, systemd=systemd
    )


def _attached_exposures(
    target: str, host: Host, registry: Registry, report: FloorReport, runtime: bool, systemd: int
) -> list[UnitExposure]:
    """The services of image ``target`` as attached (the ``runtime`` directory first), with
    the floor of its units against the profile recorded for them; [] if it is not attached."""
    image = normalize_image_arg(target, host=host)
    for rt in (runtime, not runtime):
        attached = [u for u in find_attached(host, image, (), runtime=rt) if u.has_unit_file]
        services = [u for u in attached if u.name.endswith(".service")]
        if not services:
            continue
        results = [
            host_unit_exposure(
                u.name, host=host, fragment=f"{ATTACHED_DIR[rt]}/{u.name}", systemd=systemd
            )
            for u in services
        ]
        report.scored.update(r.unit for r in results)
        names = [u.name for u in attached]
        _check_attached(host, registry, report, ATTACHED_DIR[rt], names, None, target, systemd)
        return results
    return []


def _check(
    report: FloorReport,
    units: list[UnitFile],
    profile: Profile,
    *,
    own_units: list[str],
    image: str,
    systemd: int,
) -> None:
    prefixes = derived_prefixes(image, systemd)
    for unit in units:
        report.findings += check_unit(
            unit, profile, own_units=own_units, image_prefixes=prefixes, systemd=systemd
        )
        report.profiles[unit.name] = profile.name


def _read_unit(host: Host, path: str) -> UnitFile | None:
    """An attached unit file, as the score reads it (``None``: unreadable)."""
    try:
        with open(host.path(path), "rb") as f:
            data = f.read(4 << 20)
    except OSError:
        return None
    return UnitFile(name=os.path.basename(path), source=path, resolved=path, data=data)


def _recorded_profile(
    host: Host, registry: Registry, directory: str, names: list[str]
) -> Profile | str:
    """The profile the units in ``directory`` were attached with (their ``10-profile.conf``),
    as the registry has it; else why it can't be known."""
    recorded = None
    for name in names:
        recorded = recorded_profile(host, f"{directory}/{name}.d/{PROFILE_FILE}")
        if recorded is not None:
            break
    if recorded is None or recorded.startswith("("):
        return "no profile drop-in names its profile"
    try:
        return registry.profile(recorded).spec
    except PortableError:
        return f"its profile '{recorded}' is not known here"


def _check_attached(
    host: Host,
    registry: Registry,
    report: FloorReport,
    directory: str,
    names: list[str],
    profile: Profile | None,
    image: str,
    systemd: int,
    *,
    only: str | None = None,
) -> None:
    """Check the unit files of one attach (``only``: one of them), in its attached directory,
    against ``profile`` (``None``: the one recorded); its units are each other's own."""
    wanted = [n for n in names if only is None or n == only]
    units = [u for u in (_read_unit(host, f"{directory}/{n}") for n in wanted) if u]
    if not units:
        return
    found = profile if profile is not None else _recorded_profile(host, registry, directory, names)
    if isinstance(found, str):
        shown = ", ".join(printable(u.name) for u in units)
        report.notes.append(f"({shown}: {found}: the sandbox floor is not checked.)")
        return
    _check(report, units, found, own_units=names, image=image, systemd=systemd)


def _floor_of_attached_unit(
    host: Host,
    registry: Registry,
    report: FloorReport,
    result: UnitExposure,
    prof: Profile | None,
    systemd: int,
) -> None:
    """An attached unit, against ``prof`` or the profile recorded for it; the other units of
    its attach (same marker, same attached directory) are its own."""
    directory, _, name = result.files[0].rpartition("/")
    runtime = directory == ATTACHED_DIR[True]
    mine = next((u for u in attached_units(host, runtime) if u.name == name), None)
    if mine is None:
        return  # no marker: not attached from an image
    names = [u.name for u in attached_units(host, runtime) if u.marker == mine.marker]
    image = mine.marker[0] if mine.marker else ""
    _check_attached(host, registry, report, directory, names, prof, image, systemd, only=name)
