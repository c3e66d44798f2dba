"""Printing change lists as portablectl does (spec 3.7)."""

from __future__ import annotations

import locale
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from portable.plugin.types import Change

if TYPE_CHECKING:
    from portable.engine.activation import Activation


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


def print_activation(activation: Activation | None, *, quiet: bool, systemd: int) -> bool:
    """Print enable/disable changes and queued jobs in order (as portablectl), then one line
    per failure naming the unit and systemd's result; True if everything succeeded."""
    if activation is None:
        return True
    from portable.engine.activation import JOB_METHODS
    from portable.systemd.manager import format_install_changes

    for event in activation.events:
        if event.kind == "install" and not quiet:
            for line in format_install_changes(event.changes, arrow(), systemd=systemd):
                click.echo(line, err=True)
        elif event.kind == "queued" and not quiet:
            click.echo(
                f"Queued {event.job} to call {JOB_METHODS[event.verb]} on portable "
                f"service {event.unit}.",
                err=True,
            )
        elif event.kind == "error":
            click.echo(f"portable: error: {event.message}", err=True)
    for job in activation.jobs:
        error = job.error
        if error is not None:
            click.echo(f"portable: error: {error} (see 'journalctl -u {job.unit}')", err=True)
    for unit in activation.failed:
        click.echo(
            f"portable: error: {unit} failed right after it was started (see "
            f"'systemctl status {unit}' and 'journalctl -u {unit}'); it stays attached",
            err=True,
        )
    return activation.ok
