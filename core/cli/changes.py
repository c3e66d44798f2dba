"""What the verbs that change the host print, as portablectl does: change lists (spec 3.7),
the units matched, enable/disable and job lines, reload reports."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from portable.cli import App, echo_err
from portable.images.arguments import effective_prefixes
from portable.plugin.types import Change
from portable.systemd.version import nearest_known

if TYPE_CHECKING:
    from portable.engine.activation import Activation


def utf8_output(stream: TextIO) -> bool:
    """Whether ``stream`` takes UTF-8 (its encoding, else the locale's): then systemd's
    special glyphs (``→``, ``✓``, ``✗``) are printed, else their ASCII stand-ins."""
    encoding = stream.encoding
    if not encoding:
        import locale  # here: only for a stream that does not say (~0.7 ms)

        encoding = locale.getpreferredencoding(False)
    encoding = (encoding or "").lower()
    return encoding.replace("-", "") == "utf8"


def arrow() -> str:
    """``→`` in UTF-8 locales, ``->`` otherwise, as systemd's special_glyph()."""
    return "→" if utf8_output(sys.stderr) else "->"


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


def matching_line(prefixes: tuple[str, ...], *, explicit: bool) -> str:
    """portablectl's info line: "prefix" for the derived one, "prefixes" for explicit ones."""
    if prefixes == ("-",):
        return "(Matching all unit files.)"
    if not explicit:
        return f"(Matching unit files with prefix '{prefixes[0]}'.)"
    return "(Matching unit files with prefixes " + ", ".join(f"'{p}'" for p in prefixes) + ".)"


def image_matching_line(image: str, prefixes: Sequence[str], *, systemd: int) -> str:
    """:func:`matching_line` for image argument ``image`` and the PREFIX arguments given (none:
    the image's own prefix, as systemd ``systemd`` derives it)."""
    wanted = effective_prefixes(image, tuple(prefixes), systemd=systemd)
    return matching_line(wanted, explicit=bool(prefixes))


def queued_line(job: str, method: str, unit: str) -> str:
    """portablectl's line for a job it queued for a unit."""
    return f"Queued {job} to call {method} on portable service {unit}."


def report_reload(app: App, result: Any) -> None:
    """A reload that failed (a warning, as portablectl's); with --debug whether PID 1 was
    reloaded, and why (never otherwise: the output stays portablectl's). ``result``: what
    attach, reattach or detach returned."""
    if app.debug and result.reload_reason:
        done = "done" if result.reloaded else "skipped"
        app.info(f"portable: daemon-reload {done}: {result.reload_reason}")
    if result.reload_error:
        echo_err(f"Failed to reload daemon: {result.reload_error}")


def print_changes(changes: Iterable[Change], *, quiet: bool) -> None:
    if quiet:
        return
    for change in changes:
        echo_err(format_change(change))


def format_install_changes(changes: Sequence[Change], arrow: str, *, systemd: int) -> list[str]:
    """The lines ``systemctl enable``/``disable`` of systemd ``systemd`` print for PID 1's
    install changes (257 quotes paths with ``'``, 252 quoted only removed ones, with ``"``).

    ``arrow`` is ``"→"`` in a UTF-8 locale, ``"->"`` otherwise (systemd's special glyph).
    Change types this version does not know are skipped, as systemctl does.
    """
    new = nearest_known(systemd) >= 257
    lines = []
    for c in changes:
        if c.type == "symlink":
            if new:
                lines.append(f"Created symlink '{c.path}' {arrow} '{c.source}'.")
            else:
                lines.append(f"Created symlink {c.path} {arrow} {c.source}.")
        elif c.type == "unlink":
            lines.append(f"Removed '{c.path}'." if new else f'Removed "{c.path}".')
        elif c.type == "masked":
            lines.append(f"Unit {c.path} is masked, ignoring.")
        elif c.type == "masked by generator":  # systemd 253+
            lines.append(
                f"Unit {c.path} is masked via a generator and cannot be unmasked"
                + (", skipping." if new else ".")
            )
        elif c.type == "dangling":
            lines.append(
                f"Unit {c.path} is an alias to a non-existent unit, ignoring."
                if new
                else f"Unit {c.path} is an alias to a unit that is not present, ignoring."
            )
        elif c.type == "destination not present":
            lines.append(
                f"Unit {c.source} is added as a dependency to a non-existent unit {c.path}."
            )
        elif c.type == "auxiliary unit failed":
            lines.append(f"Failed to enable auxiliary unit {c.path}, ignoring.")
    return lines


def print_activation(activation: Activation | None, *, quiet: bool, systemd: int) -> bool:
    """Print enable/disable changes and queued jobs in order (as portablectl), then one line
    per failure naming the unit and systemd's result; True if everything succeeded."""
    if activation is None:
        return True
    for event in activation.events:
        if event.kind == "install" and not quiet:
            for line in format_install_changes(event.changes, arrow(), systemd=systemd):
                echo_err(line)
        elif event.kind == "queued" and not quiet:
            echo_err(queued_line(event.job, event.method, event.unit))
        elif event.kind == "error":
            echo_err(f"portable: error: {event.message}")
    for job in activation.jobs:
        error = job.error
        if error is not None:
            echo_err(f"portable: error: {error} (see 'journalctl -u {job.unit}')")
    for unit in activation.failed:
        echo_err(
            f"portable: error: {unit} failed right after it was started (see "
            f"'systemctl status {unit}' and 'journalctl -u {unit}'); it stays attached"
        )
    return activation.ok
