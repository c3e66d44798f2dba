"""``portable read-only``."""

from __future__ import annotations

import click

from portable.cli import App
from portable.errors import PortableError
from portable.images.ops import parse_boolean, set_read_only


def read_only_args(args: tuple[str, ...]) -> tuple[str, bool]:
    """``NAME|PATH [BOOL]``: the image and the flag, with portablectl's argument checks and
    words (its verb table: 1 or 2 arguments)."""
    if not args:
        raise PortableError("Too few arguments.")
    if len(args) > 2:
        raise PortableError("Too many arguments.")
    value = True
    if len(args) == 2:
        try:
            value = parse_boolean(args[1])
        except ValueError:
            raise PortableError(f"Failed to parse boolean argument: {args[1]}") from None
    return args[0], value


@click.command("read-only", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, metavar="NAME|PATH [BOOL]")
@click.pass_obj
def read_only_command(app: App, args: tuple[str, ...]) -> None:
    """Mark an image read-only, or writable with BOOL=no: a directory gets the immutable flag,
    a raw image file loses its write bits, a btrfs subvolume its read-only property."""
    image, value = read_only_args(args)
    app.require_root("read-only")
    set_read_only(image, value, host=app.host, registry=app.registry)
