"""``portable plugins``: every plugin, what it provides, its version and status."""

from __future__ import annotations

import json
from typing import Any

import click

from portable.cli import App
from portable.cli.options import json_output


def plugin_rows(app: App) -> list[dict[str, Any]]:
    registry = app.registry
    provided = registry.provided()
    return [
        {
            "name": rec.name,
            "builtin": rec.builtin,
            "distribution": rec.distribution,
            "version": rec.version,
            "status": rec.status,
            "error": rec.error or None,
            "hooks": list(rec.hooks),
            "formats": provided.get(rec.name, {}).get("formats", []),
            "profiles": provided.get(rec.name, {}).get("profiles", []),
        }
        for rec in registry.plugins
    ]


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@json_output
@click.pass_obj
def plugins_command(app: App, show_all: bool, as_json: bool) -> None:
    """List plugins: version, distribution, hooks, what they provide, status.

    Third-party plugins are found through the 'portable' entry-point group (pip install); a
    plugin that failed to load is listed with the reason. Plugins run inside portable, usually
    as root: install only plugins you trust.
    """
    rows = [r for r in plugin_rows(app) if show_all or as_json or not r["builtin"]]
    if as_json:
        # an object, as `profiles --json` and `list --json` give, so fields can be added later
        click.echo(json.dumps({"plugins": rows}, indent=2))
        return
    if not rows:
        click.echo("No third-party plugins installed (--all shows the built-in ones).")
        return
    for r in rows:
        dist = " ".join(x for x in (r["distribution"], r["version"]) if x)
        status = r["status"] + (f": {r['error']}" if r["error"] else "")
        click.echo(
            f"{r['name']}{f' ({dist})' if dist else ''}{' [built-in]' if r['builtin'] else ''}:"
            f" {status}"
        )
        if r["hooks"]:
            click.echo(f"    hooks: {', '.join(r['hooks'])}")
        provides = [f"format {f}" for f in r["formats"]] + [f"profile {p}" for p in r["profiles"]]
        if provides:
            click.echo(f"    provides: {', '.join(provides)}")
