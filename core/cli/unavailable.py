"""portablectl verbs this version does not provide yet: they say so, clearly, and exit 2.

Every portablectl verb is provided now; :func:`unavailable` stays for the next one.
"""

from __future__ import annotations

import click

from portable.errors import NotImplementedYet


def unavailable(verb: str, usage: str) -> click.Command:
    """A verb that answers "not available yet" (exit 2), whatever its arguments."""

    @click.command(
        verb,
        help=f"{usage}\n\nNot available yet in this version of portable.",
        context_settings={"ignore_unknown_options": True},
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise NotImplementedYet(f"'portable {verb}' is not available yet in this version")

    return command
