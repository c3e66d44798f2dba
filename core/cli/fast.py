"""The command line without click, for the verbs run most: importing click and building its
commands costs ~30 ms, more than portablectl's whole run of ``list`` or ``is-attached``, and
a third of an ``attach``.

:func:`run_fast` handles only the plain spellings (no ``--help``, nothing unusual; no root
group option but ``--root``) of ``list`` and ``is-attached`` (the options listed below) and of
the verbs declared in :mod:`portable.cli.verbs` (attach, reattach, detach, inspect: read by
:mod:`portable.cli.parse`, with the options plugins add), and returns ``None`` for anything
else, which :func:`portable.cli.main` then hands to click: so help, usage errors and every
other verb keep click's behaviour, and the output here is the same as through click
(``tests/test_cli_fast.py`` and ``tests/test_cli_fast_change.py`` compare both paths).

The bodies of ``list`` and ``is-attached`` live here, click-free, and the click commands call
them too (as the declared verbs' bodies, in their own modules). Part of the boundary: what
only one of the verbs (or only ``--json``, or a terminal) needs is imported where it is used.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from portable.cli import App, env_debug, normalize_args

if TYPE_CHECKING:
    from portable.images.listing import ImageInfo

__all__ = [
    "format_bytes",
    "format_timestamp",
    "is_attached_state",
    "list_output",
    "render_json",
    "render_table",
    "run_fast",
]

COLUMNS = ("NAME", "TYPE", "RO", "CRTIME", "MTIME", "USAGE", "STATE")
# portablectl takes all its options with every verb: those that don't change these two verbs
# are accepted and ignored (click's path drops them the same way, see group.py); list pages
# on a terminal, so --no-pager does change it (see run_fast).
_IGNORED = {"--no-pager", "--no-ask-password"}
_LIST_FLAGS = {"--no-legend", "--json", "-q", "--quiet", *_IGNORED}
_IS_ATTACHED_FLAGS = {"-q", "--quiet"}
_IS_ATTACHED_IGNORED = {"--no-legend", *_IGNORED}


def run_fast(args: Sequence[str]) -> int | None:
    """Run ``args`` if it is a plain ``list``, ``is-attached`` or declared verb (see the module
    docstring); ``None`` to leave it to click."""
    args, _ = normalize_args(args)  # options anywhere, as portablectl takes them
    root: Path | None = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "--root" and i + 1 < len(args):
            root, i = Path(args[i + 1]), i + 2
        elif arg.startswith("--root="):
            root, i = Path(arg[len("--root=") :]), i + 1
        else:
            return None  # another global option: click's
    if root is not None and not root.is_dir():
        return None  # click reports it
    app = App(root=root.resolve() if root is not None else Path("/"), debug=env_debug())
    verb, rest = (args[i], args[i + 1 :]) if i < len(args) else ("list", [])
    if verb == "list":
        if not all(a in _LIST_FLAGS for a in rest):
            return None
        out = list_output(app, legend="--no-legend" not in rest, as_json="--json" in rest)
        if "--no-pager" not in rest and os.isatty(1):
            from portable.cli.pager import Pager  # here: only on a terminal

            with Pager():
                sys.stdout.write(out)
        else:
            sys.stdout.write(out)
        return 0
    if verb == "is-attached":
        images: list[str] = []
        extensions: list[str] = []
        quiet = False
        j = 0
        while j < len(rest):
            arg = rest[j]
            if arg in _IS_ATTACHED_FLAGS:
                quiet = True
            elif arg in _IS_ATTACHED_IGNORED:
                pass
            elif arg == "--extension" and j + 1 < len(rest) and rest[j + 1][:1] != "-":
                extensions.append(rest[j + 1])
                j += 1
            elif arg.startswith("--extension=") and len(arg) > len("--extension="):
                extensions.append(arg[len("--extension=") :])
            elif arg[:1] != "-" and arg:
                images.append(arg)
            else:
                return None
            j += 1
        if len(images) != 1:
            return None
        state = is_attached_state(app, images[0], extensions)
        if not quiet:
            sys.stdout.write(state + "\n")
        return 0
    from portable.cli.fast_verbs import run_declared  # here: list and is-attached need none of it

    return run_declared(app, verb, rest)


# --- is-attached ---------------------------------------------------------------------------


def is_attached_state(app: App, image: str, extensions: Sequence[str]) -> str:
    """The state ``portable is-attached`` prints (one of :data:`portable.engine.state.STATES`)."""
    # here, as list_images in list_output: --help (which comes through run_fast) needs neither
    from portable.engine.state import image_state
    from portable.images.arguments import normalize_image_arg

    return image_state(
        normalize_image_arg(image, host=app.host),
        host=app.host,
        extensions=[normalize_image_arg(e, host=app.host) for e in extensions],
        manager=app.manager_view(),
    )


# --- list ----------------------------------------------------------------------------------


def list_output(app: App, *, legend: bool = True, as_json: bool = False) -> str:
    """What ``portable list`` prints: portablectl's table, or a JSON array."""
    # here: is-attached and --help (which comes through run_fast) have no use for them
    from portable.images.listing import list_images
    from portable.systemd.version import detect

    rows = list_images(host=app.host, registry=app.registry, manager=app.manager_view())
    if not as_json:
        systemd = detect(app.host).major if rows else 0  # "No images.": no need to look
        return render_table(rows, legend=legend, systemd=systemd)
    return render_json(rows)


def render_json(rows: Sequence[ImageInfo]) -> str:
    """``list --json``: an array of the images, with their format and state."""
    import json  # here: only for --json

    return (
        json.dumps(
            [
                {
                    "name": r.name,
                    "type": r.type,
                    "format": r.format,
                    "path": r.path,
                    "read_only": r.read_only,
                    "crtime_us": r.crtime or None,
                    "mtime_us": r.mtime or None,
                    "usage": r.usage,
                    "state": r.state,
                }
                for r in rows
            ],
            indent=2,
        )
        + "\n"
    )


def format_timestamp(us: int) -> str:
    """systemd's timestamp style: ``Wed 2026-11-25 17:06:06 UTC``; unset is ``-``."""
    if not us:
        return "-"
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(us // 1_000_000))


def format_bytes(n: int | None, *, systemd: int) -> str:
    """systemd's format_bytes(): 1024-based, one decimal (``4.0K``), ``512B`` below 1 KiB;
    from 257 on a zero decimal is left out (``1M``, not ``1.0M``).

    Unknown (``None``) is an empty cell, as in portablectl's table.
    """
    if n is None:
        return ""
    for exp, suffix in ((6, "E"), (5, "P"), (4, "T"), (3, "G"), (2, "M"), (1, "K")):
        factor = 1024**exp
        if n >= factor:
            # As systemd: the decimal from the value in the next smaller unit, truncated
            # (1153434 bytes is 1126K, so 1.0M, not 1.1M).
            decimal = (n // (factor // 1024) * 10 // 1024) % 10
            if decimal == 0 and systemd >= 257:
                return f"{n // factor}{suffix}"
            return f"{n // factor}.{decimal}{suffix}"
    return f"{n}B"


def render_table(rows: Sequence[ImageInfo], *, legend: bool, systemd: int) -> str:
    """portablectl's ``list`` table (``legend``: the header and the ``N images listed.`` line),
    as systemd ``systemd``'s prints it."""
    if not rows:
        return "No images.\n" if legend else ""
    stamps: dict[int, str] = {}  # by the second: rows made together share a few seconds

    def stamp(us: int) -> str:
        if not us:
            return "-"
        text = stamps.get(us // 1_000_000)
        if text is None:
            text = stamps[us // 1_000_000] = format_timestamp(us)
        return text

    sizes: dict[int | None, str] = {}  # images of one size (copies) are common

    def size(n: int | None) -> str:
        text = sizes.get(n)
        if text is None:
            text = sizes[n] = format_bytes(n, systemd=systemd)
        return text

    cells = [
        (
            r.name,
            r.type,
            "yes" if r.read_only else "no",
            stamp(r.crtime),
            stamp(r.mtime),
            size(r.usage),
            r.state,
        )
        for r in rows
    ]
    table = [COLUMNS, *cells] if legend else cells
    # As systemd's table: every column at least one wide, all but the last padded.
    widths = [max(1, *map(len, column)) for column in zip(*table, strict=True)]
    template = " ".join(f"{{:<{w}}}" for w in widths[:-1]) + " {}"
    lines = [template.format(*row) for row in table]
    out = "\n".join(lines) + "\n"
    if legend:
        out += f"\n{len(rows)} images listed.\n"
    return out
