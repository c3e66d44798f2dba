"""``portable is-attached``."""

from __future__ import annotations

import click

from portable.cli import App
from portable.cli.fast import is_attached_state
from portable.cli.options import quiet


@click.command("is-attached")
@click.argument("image")
@click.option(
    "--extension",
    "extensions",
    multiple=True,
    metavar="PATH",
    help="Extension image the state is asked for (repeatable, in attach order).",
)
# portablectl takes its options with every verb; TEST-29 runs 'is-attached --force'.
@click.option("--force", is_flag=True, hidden=True)
@quiet
@click.pass_obj
def is_attached_command(
    app: App, image: str, extensions: tuple[str, ...], force: bool, quiet: bool
) -> None:
    """Print IMAGE's state: detached, attached, enabled or running (-runtime when attached
    with --runtime). Exits 0 for every state, as portablectl does."""
    state = is_attached_state(app, image, extensions)
    if not quiet:
        click.echo(state)
