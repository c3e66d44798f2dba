"""``portable list``: images in the search path (the default verb)."""

from __future__ import annotations

import json
from datetime import datetime

import click

from portable.cli import App
from portable.cli.options import json_output, no_legend, no_pager
from portable.listing import ImageInfo

COLUMNS = ("NAME", "TYPE", "RO", "CRTIME", "MTIME", "USAGE", "STATE")


def format_timestamp(us: int) -> str:
    """systemd's timestamp style: ``Wed 2026-11-25 17:06:06 UTC``; unset is ``-``."""
    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1_000_000).astimezone().strftime("%a %Y-%m-%d %H:%M:%S %Z")


def format_bytes(n: int | None) -> str:
    """systemd's format_bytes(): 1024-based, one decimal (``4.0K``), ``512B`` below 1 KiB.

    Unknown (``None``) is an empty cell, as in portablectl's table.
    """
    if n is None:
        return ""
    for exp, suffix in ((6, "E"), (5, "P"), (4, "T"), (3, "G"), (2, "M"), (1, "K")):
        factor = 1024**exp
        if n >= factor:
            return f"{n // factor}.{(n * 10 // factor) % 10}{suffix}"
    return f"{n}B"


def render_table(rows: list[ImageInfo], *, legend: bool) -> str:
    if not rows:
        return "No images.\n" if legend else ""
    cells = [
        [
            r.name,
            r.type,
            "yes" if r.read_only else "no",
            format_timestamp(r.crtime),
            format_timestamp(r.mtime),
            format_bytes(r.usage),
            r.state,
        ]
        for r in rows
    ]
    table = [list(COLUMNS), *cells] if legend else cells
    # As systemd's table: every column at least one wide, all but the last padded.
    widths = [max(1, *(len(row[i]) for row in table)) for i in range(len(COLUMNS))]
    lines = [
        " ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)), row[-1]])
        for row in table
    ]
    out = "\n".join(lines) + "\n"
    if legend:
        out += f"\n{len(rows)} images listed.\n"
    return out


@click.command("list")
@no_legend
@no_pager
@json_output
@click.pass_obj
def list_command(
    app: App, no_legend: bool = False, no_pager: bool = False, as_json: bool = False
) -> None:
    """List the images in the search path, with their attach state."""
    from portable.listing import list_images

    rows = list_images(host=app.host, registry=app.registry, manager=app.manager(required=False))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "type": r.type,
                        "format": r.format,
                        "path": r.path,
                        "read_only": r.read_only,
                        "crtime_us": r.crtime or None,
                        "mtime_us": r.mtime or None,
                        "usage": r.usage,
                        "state": r.state,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    else:
        click.echo(render_table(rows, legend=not no_legend), nl=False)
