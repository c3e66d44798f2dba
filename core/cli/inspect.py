"""``portable inspect [--cat] IMAGE [PREFIX...]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from portable.cli import App
from portable.cli.options import json_output, no_pager, quiet
from portable.types import ImageMetadata


def matching_line(prefixes: tuple[str, ...], *, explicit: bool) -> str:
    """portablectl's info line: "prefix" for the derived one, "prefixes" for explicit ones."""
    if prefixes == ("-",):
        return "(Matching all unit files.)"
    if not explicit:
        return f"(Matching unit files with prefix '{prefixes[0]}'.)"
    return "(Matching unit files with prefixes " + ", ".join(f"'{p}'" for p in prefixes) + ".)"


def warn_if_ambiguous(app: App, arg: str, quiet: bool) -> None:
    """portablectl's warning when a bare name also exists as a file in the current directory."""
    from portable.images import is_name

    if is_name(arg) and not quiet and Path(arg).exists():
        app.info(
            "Ambiguous invocation: current working directory contains file matching non-path "
            f"argument '{arg}', ignoring. Prefix argument with './' to force reference to file "
            "in current working directory."
        )


def render_text(meta: ImageMetadata, *, cat: bool) -> bytes:
    fields = meta.os_release_fields
    if cat:
        parts = [b"-- OS Release: --\n", meta.os_release]
        for unit in meta.units:
            parts += [b"\n-- Unit file: ", unit.name.encode(), b" --\n", unit.data]
        return b"".join(parts)
    lines = [
        "Image:",
        f"\t{meta.image.path}",
        "Portable Service:",
        f"\t{fields.get('PORTABLE_PRETTY_NAME') or 'n/a'}",
        "Operating System:",
        f"\t{fields.get('PRETTY_NAME') or 'n/a'}",
        "Unit files:",
        *(f"\t{u.name}" for u in meta.units),
    ]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def render_json(meta: ImageMetadata, *, cat: bool) -> str:
    from portable.osrelease import split_prefixes

    fields = meta.os_release_fields
    doc = {
        "image": meta.image.path,
        "name": meta.image.name,
        "format": meta.image.format.name,
        "type": meta.image.format.image_type,
        "portable_service": fields.get("PORTABLE_PRETTY_NAME"),
        "operating_system": fields.get("PRETTY_NAME"),
        "os_release": dict(fields),
        "portable_prefixes": split_prefixes(fields.get("PORTABLE_PREFIXES", "")),
        "matched_prefixes": list(meta.prefixes),
        "units": [
            {
                "name": u.name,
                "type": u.type,
                "source": u.source,
                **({"content": u.data.decode("utf-8", "replace")} if cat else {}),
            }
            for u in meta.units
        ],
    }
    if cat:
        doc["os_release_content"] = meta.os_release.decode("utf-8", "replace")
    return json.dumps(doc, indent=2)


@click.command("inspect")
@click.argument("image")
@click.argument("prefixes", nargs=-1)
@click.option("--cat", is_flag=True, help="Show os-release and unit files verbatim.")
@quiet
@no_pager
@json_output
@click.pass_obj
def inspect_command(
    app: App,
    image: str,
    prefixes: tuple[str, ...],
    cat: bool,
    quiet: bool,
    no_pager: bool,
    as_json: bool,
) -> None:
    """Show IMAGE's os-release and the unit files matching PREFIX...

    Without PREFIX, the prefix is derived from the image name (foo_1.2.raw -> foo); a single
    '-' matches every unit file.
    """
    from portable.inspect import effective_prefixes, inspect_image

    warn_if_ambiguous(app, image, quiet)
    effective = effective_prefixes(image, prefixes)
    meta = inspect_image(image, effective, host=app.host, registry=app.registry)
    # After the work, so that a failure stays a single line on stderr.
    app.info(matching_line(effective, explicit=bool(prefixes)), quiet=quiet or as_json)
    if as_json:
        click.echo(render_json(meta, cat=cat))
    else:
        sys.stdout.buffer.write(render_text(meta, cat=cat))
        sys.stdout.flush()
