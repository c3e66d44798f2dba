"""``portable security IMAGE|UNIT [--profile P] [--json]``: the exposure score, and the unit
settings that undo the profile's sandbox (its floor, :mod:`portable.security.floor`: what attach
refuses)."""

from __future__ import annotations

import json
import locale
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from portable.cli import App
from portable.cli.options import json_output, no_pager, quiet
from portable.systemd.names import is_portable_unit_type

if TYPE_CHECKING:
    from portable.plugin.types import Profile, UnitFile
    from portable.security.floor import FloorFinding
    from portable.security.score import Finding, UnitExposure
    from portable.systemd.host import Host


def _utf8() -> bool:
    encoding = (sys.stdout.encoding or locale.getpreferredencoding(False) or "").lower()
    return encoding.replace("-", "") == "utf8"


def _sort_key(finding: Finding) -> tuple[int, int, int]:
    from portable.security.checks import CHECKS

    group = 2 if finding.badness is None else 1 if finding.badness == 0 else 0
    return group, -(finding.exposure or 0), CHECKS.index(finding.check)


def render_text(result: UnitExposure) -> str:
    """systemd-analyze security's table: failing checks first (largest share first), then the
    passed ones, then those that do not apply; then the overall line."""
    good, bad, arrow = ("✓", "✗", "→") if _utf8() else ("+", "-", "->")
    rows = []
    for f in sorted(result.score.findings, key=_sort_key):
        mark = " " if f.badness is None else good if f.badness == 0 else bad
        exposure = f.to_json()["exposure"] or ""
        rows.append((mark, f.check.name, f.description, exposure))
    name_w = max(len(r[1]) for r in rows)
    desc_w = max(len(r[2]) for r in rows)
    lines = [f"  {'NAME':<{name_w}} {'DESCRIPTION':<{desc_w}} EXPOSURE"]
    lines += [f"{m} {n:<{name_w}} {d:<{desc_w}} {e:>8}".rstrip() for m, n, d, e in rows]
    score = result.score
    lines += ["", f"{arrow} Overall exposure level for {result.unit}: {score.text} {score.verdict}"]
    return "\n".join(lines) + "\n"


def _describe(result: UnitExposure) -> str:
    profile = f" with profile '{result.profile}'" if result.profile else ""
    if result.how == "attach":
        return f"({result.unit}: as attaching would write it{profile}.)"
    if result.how == "attached":
        return f"({result.unit}: as attached{profile}.)"
    return f"({result.unit}: {result.files[0]}{profile}.)"


def followed_systemd(app: App) -> int:
    """The systemd version whose ``systemd-analyze security`` the score follows: the running
    manager's on the real host (the installed one if it can't be reached), the tree's below
    ``--root`` (:func:`portable.systemd.version.detect`)."""
    from portable.systemd.version import detect

    if not app.host.is_real:
        return detect(app.host).major
    from portable.systemd.manager import Manager, ManagerError

    try:
        with Manager.connect(timeout=5.0) as manager:
            return detect(app.host, manager).major
    except ManagerError:  # no systemd running here (a build host, a container)
        return detect(app.host).major


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

    def render_text(self) -> str:
        """A block per profile as ``inspect`` prints it: a heading, a line per finding."""
        from portable.cli.inspect import FLOOR_HEADING
        from portable.systemd.names import printable

        blocks = []
        for name in dict.fromkeys(self.profiles.values()):
            units = {u for u, p in self.profiles.items() if p == name}
            lines = [str(f) for f in self.findings if f.unit in units]
            lines = lines or ["(none: attach would not refuse any unit setting)"]
            blocks.append(
                FLOOR_HEADING.format(printable(name))
                + "\n"
                + "".join(f"\t{line}\n" for line in lines)
            )
        return "".join(blocks)


def _check(
    report: FloorReport,
    units: list[UnitFile],
    profile: Profile,
    *,
    own_units: list[str],
    image: str,
    systemd: int,
) -> None:
    from portable.images.inspect import derived_prefixes
    from portable.security.floor import check_unit

    prefixes = derived_prefixes(image, systemd)
    for unit in units:
        report.findings += check_unit(
            unit, profile, own_units=own_units, image_prefixes=prefixes, systemd=systemd
        )
        report.profiles[unit.name] = profile.name


def _read_unit(host: Host, path: str) -> UnitFile | None:
    """An attached unit file, as the score reads it (``None``: unreadable)."""
    from portable.plugin.types import UnitFile

    try:
        with open(host.path(path), "rb") as f:
            data = f.read(4 << 20)
    except OSError:
        return None
    return UnitFile(name=os.path.basename(path), source=path, resolved=path, data=data)


def _recorded_profile(app: App, directory: str, names: list[str]) -> Profile | str:
    """The profile the units in ``directory`` were attached with (their ``10-profile.conf``),
    as the registry has it; else why it can't be known."""
    from portable.engine.dropins import PROFILE_FILE
    from portable.engine.state import recorded_profile
    from portable.errors import PortableError

    recorded = None
    for name in names:
        recorded = recorded_profile(app.host, f"{directory}/{name}.d/{PROFILE_FILE}")
        if recorded is not None:
            break
    if recorded is None or recorded.startswith("("):
        return "no profile drop-in names its profile"
    try:
        return app.registry.profile(recorded).spec
    except PortableError:
        return f"its profile '{recorded}' is not known here"


def _check_attached(
    app: App,
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
    from portable.systemd.names import printable

    wanted = [n for n in names if only is None or n == only]
    units = [u for u in (_read_unit(app.host, f"{directory}/{n}") for n in wanted) if u]
    if not units:
        return
    found = profile if profile is not None else _recorded_profile(app, directory, names)
    if isinstance(found, str):
        shown = ", ".join(printable(u.name) for u in units)
        report.notes.append(f"({shown}: {found}: the sandbox floor is not checked.)")
        return
    _check(report, units, found, own_units=names, image=image, systemd=systemd)


def exposures(
    app: App, arg: str, prefixes: tuple[str, ...], profile: str | None, *, runtime: bool
) -> list[UnitExposure]:
    """Score ``arg``: a unit (name or unit file path), an attached image (as attached, unless
    ``profile`` is given) or an image (as attaching it with ``profile`` would), as the systemd
    the host runs grades it (:func:`followed_systemd`)."""
    return assess(app, arg, prefixes, profile, runtime=runtime)[0]


def assess(
    app: App, arg: str, prefixes: tuple[str, ...], profile: str | None, *, runtime: bool
) -> tuple[list[UnitExposure], FloorReport]:
    """:func:`exposures`, and the floor findings of the units scored: an image's units (all of
    them, not only services) against the profile scored with; an attached unit (or image)
    against the profile recorded for it, or ``profile``; a unit not attached from an image:
    none (the floor is what an image may not do to a profile)."""
    from portable.errors import PortableError
    from portable.security.score import host_unit_exposure, would_attach_exposure
    from portable.systemd.host import ATTACHED_DIR

    systemd = followed_systemd(app)
    registry = app.registry
    report = FloorReport()
    prof = registry.profile(profile).spec if profile is not None else None
    if is_portable_unit_type(arg):
        if not arg.endswith(".service"):
            raise PortableError(f"{arg}: only services are scored (as systemd-analyze security)")
        if "/" in arg:
            local = os.path.abspath(arg) if app.host.is_real else arg
            inside = local if app.host.is_real else "/" + arg.lstrip("/")
            if not os.path.isfile(app.host.path(inside)):
                raise PortableError(f"Unit file {arg} not found.")
            result = host_unit_exposure(
                os.path.basename(arg),
                host=app.host,
                profile=prof,
                fragment=inside,
                systemd=systemd,
            )
        else:
            result = host_unit_exposure(arg, host=app.host, profile=prof, systemd=systemd)
        report.scored.add(result.unit)
        if result.how == "attached":
            _floor_of_attached_unit(app, report, result, prof, systemd)
        return [result], report

    from portable.engine.detach import find_attached
    from portable.images.inspect import effective_prefixes, read_metadata
    from portable.images.resolve import normalize_image_arg, resolve_image
    from portable.systemd.version import detect

    if prof is None:
        image = normalize_image_arg(arg, host=app.host)
        for rt in (runtime, not runtime):
            attached = [
                u for u in find_attached(app.host, image, (), runtime=rt) if u.has_unit_file
            ]
            services = [u for u in attached if u.name.endswith(".service")]
            if services:
                results = [
                    host_unit_exposure(
                        u.name,
                        host=app.host,
                        fragment=f"{ATTACHED_DIR[rt]}/{u.name}",
                        systemd=systemd,
                    )
                    for u in services
                ]
                report.scored.update(r.unit for r in results)
                names = [u.name for u in attached]
                _check_attached(app, report, ATTACHED_DIR[rt], names, None, arg, systemd)
                return results, report
        prof = registry.profile("default").spec
    img = resolve_image(arg, host=app.host, registry=registry)
    meta = read_metadata(img, effective_prefixes(arg, prefixes, systemd=detect(app.host).major))
    found = would_attach_exposure(
        img, meta.units, prof, host=app.host, runtime=runtime, systemd=systemd
    )
    if not found:
        raise PortableError(f"Image '{img.path}' has no matching service units to score.")
    report.scored.update(r.unit for r in found)
    own = [u.name for u in meta.units]
    _check(report, list(meta.units), prof, own_units=own, image=img.path, systemd=systemd)
    return found, report


def _floor_of_attached_unit(
    app: App, report: FloorReport, result: UnitExposure, prof: Profile | None, systemd: int
) -> None:
    """An attached unit, against ``prof`` or the profile recorded for it; the other units of
    its attach (same marker, same attached directory) are its own."""
    from portable.engine.state import attached_units
    from portable.systemd.host import ATTACHED_DIR

    directory, _, name = result.files[0].rpartition("/")
    runtime = directory == ATTACHED_DIR[True]
    mine = next((u for u in attached_units(app.host, runtime) if u.name == name), None)
    if mine is None:
        return  # no marker: not attached from an image
    names = [u.name for u in attached_units(app.host, runtime) if u.marker == mine.marker]
    image = mine.marker[0] if mine.marker else ""
    _check_attached(app, report, directory, names, prof, image, systemd, only=name)


@click.command("security")
@click.argument("target", metavar="IMAGE|UNIT")
@click.argument("prefixes", nargs=-1)
@click.option(
    "-p",
    "--profile",
    default=None,
    help="Score with this profile (default: as attached, or 'default' for an image).",
)
@click.option(
    "--runtime", is_flag=True, help="Look at (or score for) the runtime attach directory first."
)
@click.option(
    "--max-exposure",
    type=click.FloatRange(0, 10),
    default=None,
    metavar="N",
    help="Exit with status 1 if a unit scores above N (0.0-10.0).",
)
@quiet
@no_pager
@json_output
@click.pass_obj
def security_command(
    app: App,
    target: str,
    prefixes: tuple[str, ...],
    profile: str | None,
    runtime: bool,
    max_exposure: float | None,
    quiet: bool,
    no_pager: bool,
    as_json: bool,
) -> None:
    """Show the exposure score of IMAGE's services, or of UNIT.

    The score is systemd-analyze security's (0.0 = fully sandboxed, 10.0 = fully exposed),
    computed from the unit file and its drop-ins without a running systemd, the same as
    'systemd-analyze security --offline=yes --profile=P' of the systemd the host runs (with
    --root: the one installed there).

    IMAGE: an attached image's services as attached; any other image's services as attaching
    them with --profile (default 'default') would write them. UNIT: a service on the host by
    name (an attached one, or any other), or a unit file by path (its drop-ins in UNIT.d/
    next to it count). --profile replaces the profile drop-in.

    After the scores, the unit settings that undo the profile's sandbox, which attach refuses
    (the floor): of an image's units for the profile scored with, of an attached unit or
    image for its recorded profile (or --profile). --json: a "floor" object per unit.
    """
    results, floor = assess(app, target, prefixes, profile, runtime=runtime)
    if as_json:
        docs = [{**r.to_json(), "floor": floor.to_json(r.unit)} for r in results]
        click.echo(json.dumps(docs, indent=2))
    else:
        for i, result in enumerate(results):
            app.info(_describe(result), quiet=quiet)
            if i:
                click.echo()
            click.echo(render_text(result), nl=False)
        if floor.profiles:
            click.echo()
            click.echo(floor.render_text(), nl=False)
    for note in floor.notes:
        app.info(note, quiet=quiet or as_json)
    if max_exposure is not None:
        limit = round(max_exposure * 10)
        over = [r for r in results if r.score.exposure > limit]
        for r in over:
            click.echo(
                f"portable: {r.unit}: exposure {r.score.text} is above {max_exposure:.1f}",
                err=True,
            )
        if over:
            sys.exit(1)
