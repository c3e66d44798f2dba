"""portablectl verbs this version does not provide yet: they say so, clearly, and exit 2."""

from __future__ import annotations

import click

from portable.errors import NotImplementedYet


def _unavailable(verb: str, usage: str) -> click.Command:
    @click.command(
        verb,
        help=f"{usage}\n\nNot available yet in this version of portable.",
        context_settings={"ignore_unknown_options": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise NotImplementedYet(f"'portable {verb}' is not available yet in this version")

    return command


read_only_command = _unavailable("read-only", "Mark an image read-only (or writable).")
remove_command = _unavailable("remove", "Remove images.")
set_limit_command = _unavailable("set-limit", "Set an image size limit.")
