"""``portable security IMAGE|UNIT [--profile P] [--json]``: the exposure score."""

from __future__ import annotations

import json
import locale
import sys
from typing import TYPE_CHECKING

import click

from portable.cli import App
from portable.cli.options import json_output, no_pager, quiet

if TYPE_CHECKING:
    from portable.security import Finding, UnitExposure

UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".path")


def _utf8() -> bool:
    encoding = (sys.stdout.encoding or locale.getpreferredencoding(False) or "").lower()
    return encoding.replace("-", "") == "utf8"


def _sort_key(finding: Finding) -> tuple[int, int, int]:
    from portable.security import CHECKS

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
    ``--root`` (:func:`portable.systemd_version.detect`)."""
    from portable.systemd_version import detect

    if not app.host.is_real:
        return detect(app.host).major
    from portable.manager import Manager, ManagerError

    try:
        with Manager.connect(timeout=5.0) as manager:
            return detect(app.host, manager).major
    except ManagerError:  # no systemd running here (a build host, a container)
        return detect(app.host).major


def exposures(
    app: App, arg: str, prefixes: tuple[str, ...], profile: str | None, *, runtime: bool
) -> list[UnitExposure]:
    """Score ``arg``: a unit (name or unit file path), an attached image (as attached, unless
    ``profile`` is given) or an image (as attaching it with ``profile`` would), as the systemd
    the host runs grades it (:func:`followed_systemd`)."""
    import os

    from portable.errors import PortableError
    from portable.security import host_unit_exposure, would_attach_exposure

    systemd = followed_systemd(app)
    registry = app.registry
    prof = registry.profile(profile).spec if profile is not None else None
    if arg.endswith(UNIT_SUFFIXES):
        if not arg.endswith(".service"):
            raise PortableError(f"{arg}: only services are scored (as systemd-analyze security)")
        if "/" in arg:
            local = os.path.abspath(arg) if app.host.is_real else arg
            inside = local if app.host.is_real else "/" + arg.lstrip("/")
            if not os.path.isfile(app.host.path(inside)):
                raise PortableError(f"Unit file {arg} not found.")
            return [
                host_unit_exposure(
                    os.path.basename(arg),
                    host=app.host,
                    profile=prof,
                    fragment=inside,
                    systemd=systemd,
                )
            ]
        return [host_unit_exposure(arg, host=app.host, profile=prof, systemd=systemd)]

    from portable.detach import find_attached
    from portable.images import normalize_image_arg, resolve_image
    from portable.inspect import effective_prefixes, read_metadata
    from portable.systemd_version import detect

    if prof is None:
        image = normalize_image_arg(arg, host=app.host)
        for rt in (runtime, not runtime):
            attached = [
                u
                for u in find_attached(app.host, image, (), runtime=rt)
                if u.has_unit_file and u.name.endswith(".service")
            ]
            if attached:
                from portable.host import ATTACHED_DIR

                return [
                    host_unit_exposure(
                        u.name,
                        host=app.host,
                        fragment=f"{ATTACHED_DIR[rt]}/{u.name}",
                        systemd=systemd,
                    )
                    for u in attached
                ]
        prof = registry.profile("default").spec
    img = resolve_image(arg, host=app.host, registry=registry)
    meta = read_metadata(img, effective_prefixes(arg, prefixes, systemd=detect(app.host).major))
    found = would_attach_exposure(
        img, meta.units, prof, host=app.host, runtime=runtime, systemd=systemd
    )
    if not found:
        raise PortableError(f"Image '{img.path}' has no matching service units to score.")
    return found


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
    """
    results = exposures(app, target, prefixes, profile, runtime=runtime)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in results], indent=2))
    else:
        for i, result in enumerate(results):
            app.info(_describe(result), quiet=quiet)
            if i:
                click.echo()
            click.echo(render_text(result), nl=False)
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
