"""``portable set-limit``."""

from __future__ import annotations

import click

from portable.cli import App


@click.command("set-limit", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, metavar="NAME|PATH SIZE")
@click.pass_obj
def set_limit_command(app: App, args: tuple[str, ...]) -> None:
    """Set an image's size limit (a btrfs quota: subvolume images only). SIZE in bytes, with
    K, M, G, T, P, E suffixes (powers of 1024); "-", "none" or "infinity" for no limit."""
    from portable.errors import PortableError
    from portable.images.ops import INFINITY, parse_size, set_limit

    # portablectl's verb table takes exactly two arguments (its pool form is unreachable)
    if len(args) < 2:
        raise PortableError("Too few arguments.")
    if len(args) > 2:
        raise PortableError("Too many arguments.")
    image, size = args
    if size in ("-", "none", "infinity"):
        limit = INFINITY
    else:
        try:
            limit = parse_size(size)
        except ValueError:
            raise PortableError(f"Failed to parse size: {size}") from None
    app.require_root("set-limit")
    set_limit(image, limit, host=app.host, registry=app.registry)
