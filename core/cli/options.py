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
    # Accepted for portablectl compatibility: we never page.
    return click.option("--no-pager", is_flag=True, hidden=True)(f)


def json_output(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)
