"""Options shared by several verbs, spelled as portablectl spells them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from portable.cli import App
from portable.errors import PortableError
from portable.images.arguments import is_name

F = TypeVar("F", bound=Callable[..., Any])


def quiet(f: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="Suppress informational messages.")(f)


def no_legend(f: F) -> F:
    return click.option("--no-legend", is_flag=True, help="Do not show headers and footers.")(f)


def no_pager(f: F) -> F:
    # Accepted with every verb, as portablectl; list and inspect page (portable.cli.pager).
    return click.option("--no-pager", is_flag=True, hidden=True)(f)


def reload_option(f: F) -> F:
    # attach, reattach and detach: portablectl reloads always, we when needed (engine.reload).
    return click.option(
        "--reload",
        "force_reload",
        is_flag=True,
        help="Reload the service manager even when no unit needs it (as portablectl does).",
    )(f)


def json_output(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def split_images(image: str, rest: tuple[str, ...]) -> tuple[list[str], tuple[str, ...]]:
    """``IMAGE [PREFIX...]`` or ``IMAGE IMAGE...``: a prefix never contains ``/``, so extra
    arguments that do are more images (several images in one call share one reload)."""
    more = [a for a in rest if "/" in a]
    if not more:
        return [image], rest
    if len(more) != len(rest):
        raise PortableError(
            "give either one IMAGE with PREFIX arguments, or several images as paths "
            "(a PREFIX never contains '/')"
        )
    images = [image, *rest]
    if len(set(images)) != len(images):
        raise PortableError("an image is given twice")
    return images, ()


def warn_if_ambiguous(app: App, arg: str, quiet: bool) -> None:
    """portablectl's warning when a bare name also exists as a file in the current directory."""
    if is_name(arg) and not quiet and Path(arg).exists():
        app.info(
            "Ambiguous invocation: current working directory contains file matching non-path "
            f"argument '{arg}', ignoring. Prefix argument with './' to force reference to file "
            "in current working directory."
        )


def check_reload_flags(no_reload: bool, force_reload: bool) -> None:
    if no_reload and force_reload:
        raise PortableError("--reload and --no-reload can't be used together")
