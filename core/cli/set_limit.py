"""``portable set-limit``."""

from __future__ import annotations

import click

from portable.cli import App
from portable.errors import PortableError
from portable.images.ops import INFINITY, parse_size, set_limit


def set_limit_args(args: tuple[str, ...]) -> tuple[str, int]:
    """``NAME|PATH SIZE``: the image and the limit in bytes (:data:`INFINITY`: none), with
    portablectl's argument checks and words (its verb table takes exactly two arguments: the
    pool form is unreachable)."""
    if len(args) < 2:
        raise PortableError("Too few arguments.")
    if len(args) > 2:
        raise PortableError("Too many arguments.")
    image, size = args
    if size in ("-", "none", "infinity"):
        return image, INFINITY
    try:
        return image, parse_size(size)
    except ValueError:
        raise PortableError(f"Failed to parse size: {size}") from None


@click.command("set-limit", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, metavar="NAME|PATH SIZE")
@click.pass_obj
def set_limit_command(app: App, args: tuple[str, ...]) -> None:
    """Set an image's size limit (a btrfs quota: subvolume images only). SIZE in bytes, with
    K, M, G, T, P, E suffixes (powers of 1024); "-", "none" or "infinity" for no limit."""
    image, limit = set_limit_args(args)
    app.require_root("set-limit")
    set_limit(image, limit, host=app.host, registry=app.registry)
