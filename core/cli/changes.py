"""Printing change lists as portablectl does (spec 3.7)."""

from __future__ import annotations

import locale
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import click

from portable.types import Change

if TYPE_CHECKING:
    from portable.manager import JobResult


def arrow() -> str:
    """``→`` in UTF-8 locales, ``->`` otherwise, as systemd's special_glyph()."""
    encoding = (sys.stderr.encoding or locale.getpreferredencoding(False) or "").lower()
    return "→" if encoding.replace("-", "") == "utf8" else "->"


def format_change(change: Change) -> str:
    a = arrow()
    if change.type == "copy":
        if change.source:
            return f"Copied {change.source} {a} {change.path}."
        return f"Copied {change.path}."
    if change.type == "symlink":
        return f"Created symlink {change.path} {a} {change.source}."
    if change.type == "write":
        return f"Written {change.path}."
    if change.type == "mkdir":
        return f"Created directory {change.path}."
    if change.type == "unlink":
        return f"Removed {change.path}."
    return f"Unexpected change: {change.type}/{change.path}/{change.source}"


def print_changes(changes: Iterable[Change], *, quiet: bool) -> None:
    if quiet:
        return
    for change in changes:
        click.echo(format_change(change), err=True)


def print_install_changes(changes: Sequence[Change], *, quiet: bool) -> None:
    """Enable/disable results, as systemctl prints them."""
    if quiet or not changes:
        return
    from portable.manager import format_install_changes

    for line in format_install_changes(changes, arrow()):
        click.echo(line, err=True)


def report_jobs(jobs: Sequence[JobResult], *, quiet: bool) -> bool:
    """Print job outcomes, a failure as one line naming the unit and systemd's result;
    True if every job succeeded (or was only queued)."""
    ok = True
    for job in jobs:
        if job.result == "queued" and not quiet:
            click.echo(f"Queued {job.verb} job for {job.unit}.", err=True)
        error = job.error
        if error is not None:
            ok = False
            click.echo(f"portable: error: {error} (see 'journalctl -u {job.unit}')", err=True)
    return ok
