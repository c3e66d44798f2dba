"""``portable security IMAGE|UNIT [--profile P] [--json]``: the exposure score, and the unit
settings that undo the profile's sandbox (its floor, :mod:`portable.security.floor`: what attach
refuses), as :func:`portable.security.targets.assess_target` finds them; this module prints
them as systemd-analyze security does."""

from __future__ import annotations

import json
import sys

import click

from portable.cli import App
from portable.cli.changes import utf8_output
from portable.cli.inspect import FLOOR_HEADING
from portable.cli.options import json_output, no_pager, quiet
from portable.security.checks import CHECKS
from portable.security.score import Finding, UnitExposure
from portable.security.targets import FloorReport, assess_target
from portable.systemd.names import printable


def _sort_key(finding: Finding) -> tuple[int, int, int]:
    group = 2 if finding.badness is None else 1 if finding.badness == 0 else 0
    return group, -(finding.exposure or 0), CHECKS.index(finding.check)


def render_text(result: UnitExposure) -> str:
    """systemd-analyze security's table: failing checks first (largest share first), then the
    passed ones, then those that do not apply; then the overall line."""
    good, bad, arrow = ("✓", "✗", "→") if utf8_output(sys.stdout) else ("+", "-", "->")
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


def render_floor(report: FloorReport) -> str:
    """The floor findings, a block per profile as ``inspect`` prints it: a heading, a line per
    finding."""
    blocks = []
    for name in dict.fromkeys(report.profiles.values()):
        units = {u for u, p in report.profiles.items() if p == name}
        lines = [str(f) for f in report.findings if f.unit in units]
        lines = lines or ["(none: attach would not refuse any unit setting)"]
        blocks.append(
            FLOOR_HEADING.format(printable(name)) + "\n" + "".join(f"\t{line}\n" for line in lines)
        )
    return "".join(blocks)


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
    results, floor = assess_target(
        target,
        host=app.host,
        registry=app.registry,
        prefixes=prefixes,
        profile=profile,
        runtime=runtime,
    )
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
            click.echo(render_floor(floor), nl=False)
    for note in floor.notes:
        app.info(note, quiet=quiet or as_json)
    if max_exposure is not None:
        over = [r for r in results if r.score.above(max_exposure)]
        for r in over:
            click.echo(
                f"portable: {r.unit}: exposure {r.score.text} is above {max_exposure:.1f}",
                err=True,
            )
        if over:
            sys.exit(1)
