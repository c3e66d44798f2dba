"""``portable is-attached``."""

from __future__ import annotations

import click

from portable.cli import App
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
@quiet
@click.pass_obj
def is_attached_command(app: App, image: str, extensions: tuple[str, ...], quiet: bool) -> None:
    """Print IMAGE's state: detached, attached, enabled or running (-runtime when attached
    with --runtime). Exits 0 for every state, as portablectl does."""
    from portable.images import normalize_image_arg
    from portable.state import image_state

    manager = app.manager(required=False)
    state = image_state(
        normalize_image_arg(image, host=app.host),
        host=app.host,
        extensions=[normalize_image_arg(e, host=app.host) for e in extensions],
        manager=manager,
    )
    if not quiet:
        click.echo(state)
