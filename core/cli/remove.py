"""``portable remove``."""

from __future__ import annotations

import click

from portable.cli import App
from portable.errors import PortableError
from portable.images.ops import remove_images


@click.command("remove")
@click.argument("images", nargs=-1, metavar="NAME|PATH...")
@click.pass_obj
def remove_command(app: App, images: tuple[str, ...]) -> None:
    """Remove images: directory trees, raw files, links in the search path, with their
    .nspawn settings and .roothash files. An attached image, or one under /usr, is refused;
    with several images, nothing is removed unless all can be."""
    if not images:
        raise PortableError("Too few arguments.")
    app.require_root("remove")
    remove_images(images, host=app.host, registry=app.registry)
