"""Options shared by several click verbs, spelled as portablectl spells them (attach,
reattach, detach and inspect declare theirs in :mod:`portable.cli.verbs`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from portable.cli.verbs import JSON, NO_PAGER, QUIET

F = TypeVar("F", bound=Callable[..., Any])


def quiet(f: F) -> F:
    return click.option(*QUIET.names, is_flag=True, help=QUIET.help)(f)


def no_legend(f: F) -> F:
    return click.option("--no-legend", is_flag=True, help="Do not show headers and footers.")(f)


def no_pager(f: F) -> F:
    return click.option(*NO_PAGER.names, is_flag=True, hidden=True)(f)


def json_output(f: F) -> F:
    return click.option(*JSON.names, JSON.dest, is_flag=True, help=JSON.help)(f)
