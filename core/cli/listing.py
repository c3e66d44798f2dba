"""``portable list``: images in the search path (the default verb).

The body is click-free, in :mod:`portable.cli.fast`, which also answers plain ``list`` calls
without importing click.
"""

from __future__ import annotations

import click

from portable.cli import App
from portable.cli.fast import COLUMNS, format_bytes, format_timestamp, list_output, render_table
from portable.cli.options import json_output, no_legend, no_pager
from portable.cli.pager import Pager

__all__ = ["COLUMNS", "format_bytes", "format_timestamp", "list_command", "render_table"]


@click.command("list")
@no_legend
@no_pager
@json_output
@click.pass_obj
def list_command(
    app: App, no_legend: bool = False, no_pager: bool = False, as_json: bool = False
) -> None:
    """List the images in the search path, with their attach state."""
    out = list_output(app, legend=not no_legend, as_json=as_json)
    with Pager(enabled=not no_pager):
        click.echo(out, nl=False)
