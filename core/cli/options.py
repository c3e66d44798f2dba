"""Options shared by several verbs, spelled as portablectl spells them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def quiet(f: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="Suppress informational messages.")(f)


def no_legend(f: F) -> F:
    return click.option("--no-legend", is_flag=True, help="Do not show headers and footers.")(f)


def no_pager(f: F) -> F:
    # Accepted with every verb, as portablectl; list and inspect page (portable.cli.pager).
    return click.option("--no-pager", is_flag=True, hidden=True)(f)


def json_output(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def split_images(image: str, rest: tuple[str, ...]) -> tuple[list[str], tuple[str, ...]]:
    """``IMAGE [PREFIX...]`` or ``IMAGE IMAGE...``: a prefix never contains ``/``, so extra
    arguments that do are more images (several images in one call share one reload)."""
    from portable.errors import PortableError

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
