"""``portable profiles`` and ``portable profile show|export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from portable.cli import App
from portable.cli.options import json_output
from portable.errors import warn
from portable.plugin.types import Floor, FloorRule, Profile
from portable.profiles.files import profile_to_toml
from portable.security.floor_tables import NO_NETWORK, NONE, STANDARD, floor_of
from portable.security.score import profile_exposure
from portable.systemd.version import detect


def source_of(app: App, plugin: str, origin: str) -> str:
    """Where a profile comes from, in words: built-in, a directory or file, a plugin."""
    record = next((p for p in app.registry.plugins if p.name == plugin), None)
    if plugin == "(file)":
        return origin
    if record is not None and record.builtin:
        return "built-in" if origin in ("", "built-in") else origin
    dist = record.distribution if record is not None else ""
    return f"plugin {plugin}" + (f" ({dist})" if dist else "")


def _exposure(app: App, profile: Profile) -> tuple[float, str] | None:
    """systemd-analyze security's exposure of a bare service with this profile, as the systemd
    of the host (or of the --root tree) scores it: (value, verdict)."""
    if "service" not in profile.dropins:
        return None
    score = profile_exposure(profile, root_image=False, systemd=detect(app.host).major)
    return round(score.value, 1), score.verdict


def _floor_name(floor: Floor) -> str:
    """Which of the built-in tables ``floor`` is, if one (docs/security.md lists them)."""
    known = {"standard": STANDARD, "no-network": NO_NETWORK, "none": NONE}
    return next((name for name, table in known.items() if table == floor), "own")


def _floor_json(profile: Profile) -> dict[str, Any]:
    floor = floor_of(profile)
    return {
        "table": _floor_name(floor),
        "hold_profile": floor.hold_profile,
        "rules": [
            {
                "setting": r.setting,
                "match": r.match,
                "values": list(r.values),
                "unit_types": list(r.unit_types),
                "reason": r.reason,
            }
            for r in floor.rules
        ],
    }


def rule_line(rule: FloorRule) -> str:
    """``Setting= (match values) unit types: reason``, as ``profile show`` prints a rule."""
    how = " ".join((rule.match, *rule.values))
    types = f" in {' '.join('.' + t for t in rule.unit_types)} units" if rule.unit_types else ""
    return f"{rule.setting}= ({how}){types}: {rule.reason}"


@click.command("profiles")
@json_output
@click.pass_obj
def profiles_command(app: App, as_json: bool) -> None:
    """List the security profiles attach can apply, and where each comes from.

    Profiles come from the built-in plugins (default, nonetwork, strict, trusted), systemd's
    profile directories (/etc/systemd/portable/profile/NAME/...), TOML files
    (/etc/portable/profiles/NAME.toml) and third-party plugins.
    """
    rows: list[dict[str, Any]] = []
    for name, reg in app.registry.profiles().items():
        exposure = _exposure(app, reg.spec)
        rows.append(
            {
                "name": name,
                "source": source_of(app, reg.plugin, reg.spec.origin),
                "plugin": reg.plugin,
                "description": reg.spec.description,
                "unit_types": sorted(reg.spec.dropins),
                # as `portable security --json`: a number and systemd's verdict word
                "exposure": exposure[0] if exposure else None,
                "verdict": exposure[1] if exposure else None,
                "floor": _floor_json(reg.spec),
            }
        )
    broken = [{"name": n, "error": e} for n, e in sorted(app.registry.profile_errors.items())]
    if as_json:
        click.echo(json.dumps({"profiles": rows, "unusable": broken}, indent=2))
        return
    width = max([len(r["name"]) for r in rows] + [7])
    has_score = any(r["exposure"] is not None for r in rows)
    head = f"{'PROFILE':<{width}} " + ("EXPOSURE   " if has_score else "") + "SOURCE"
    click.echo(head)
    for r in rows:
        shown = f"{r['exposure']:.1f} {r['verdict']}" if r["exposure"] is not None else "-"
        score = f"{shown:<10} " if has_score else ""
        click.echo(f"{r['name']:<{width}} {score}{r['source']}")
        click.echo(f"{'':<{width}}   {r['description']}")
    for b in broken:
        warn(f"profile {b['name']!r} can't be used: {b['error']}")


@click.group("profile")
def profile_group() -> None:
    """Show or export one security profile (a name, or a path to a TOML or drop-in file)."""


@profile_group.command("show")
@click.argument("name")
@click.pass_obj
def show_command(app: App, name: str) -> None:
    """Print the settings profile NAME applies, per unit type, and its sandbox floor: the
    settings an image's unit files may not use under it (docs/security.md)."""
    reg = app.registry.profile(name)
    spec = reg.spec
    click.echo(f"Profile: {spec.name}")
    click.echo(f"Source: {source_of(app, reg.plugin, spec.origin)}")
    click.echo(f"Description: {spec.description}")
    score = _exposure(app, spec)
    if score:
        click.echo(f"Exposure: {score}")
    for unit_type, dropin in sorted(spec.dropins.items()):
        where = f" ({dropin.path})" if dropin.path else ""
        click.echo(f"\n-- Drop-in for .{unit_type} units{where} --")
        click.echo(dropin.text, nl=not dropin.text.endswith("\n"))
    floor = floor_of(spec)
    hold = "on" if floor.hold_profile else "off"
    click.echo(
        f"\n-- Sandbox floor ({_floor_name(floor)}): {len(floor.rules)} rules, "
        f"hold_profile {hold} --"
    )
    for rule in floor.rules:
        click.echo(rule_line(rule))
    if floor.hold_profile:
        click.echo("hold_profile: also any unit setting that undoes what the service drop-in sets")
    elif not floor.rules:
        click.echo("(nothing is refused: the profile promises no sandbox)")


@profile_group.command("export")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.pass_obj
def export_command(app: App, name: str, output: Path | None) -> None:
    """Write profile NAME as a TOML profile (every setting spelled out).

    Put it in /etc/portable/profiles/NEW.toml and edit it to make your own profile.
    """
    text = profile_to_toml(app.registry.profile(name).spec)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
