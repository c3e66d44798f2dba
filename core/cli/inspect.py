"""``portable inspect [--cat] IMAGE [PREFIX...]``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from portable.cli import App
from portable.cli.options import json_output, no_pager, quiet
from portable.systemd_version import detect
from portable.types import ImageMetadata

if TYPE_CHECKING:
    from portable.inspect import Inspection


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


def _as_inspection(found: Inspection | ImageMetadata) -> Inspection:
    from portable.inspect import Inspection

    return found if isinstance(found, Inspection) else Inspection(metadata=found)


def render_text(
    found: Inspection | ImageMetadata, *, cat: bool, systemd: int, shown: str | None = None
) -> bytes:
    """portablectl's ``inspect`` output (spec 2.7) as systemd ``systemd`` prints it.

    ``shown``: the image path for the ``Image:`` line when it is not the image's own (a
    versioned ``.v/`` directory, which portablectl shows as given).
    """
    found = _as_inspection(found)
    meta = found.metadata
    fields = meta.os_release_fields
    if cat:
        parts = [b"-- OS Release: --\n", meta.os_release]
        for ext in found.extensions:
            parts += [b"\n-- Extension Release: ", _b(ext.image.path), b" --\n", ext.release]
        for unit in meta.units:
            parts += [b"\n-- Unit file: ", unit.name.encode(), b" --\n", unit.data]
        return b"".join(parts)
    lines = [
        "Image:",
        f"\t{shown or meta.image.path}",
        "Portable Service:",
        f"\t{fields.get('PORTABLE_PRETTY_NAME') or 'n/a'}",
        "Operating System:",
        f"\t{fields.get('PRETTY_NAME') or 'n/a'}",
    ]
    for ext in found.extensions:
        lines += _extension_block(ext.image.path, ext.release_fields, systemd=systemd)
    lines += ["Unit files:", *(f"\t{u.name}" for u in meta.units)]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _first(fields: Mapping[str, str], *keys: str) -> str | None:
    """The first key that is set (systemd's ``a ?: b`` over parse_env_file's values)."""
    return next((fields[k] for k in keys if fields.get(k)), None)


def _extension_block(path: str, rel: Mapping[str, str], *, systemd: int) -> list[str]:
    """An extension's part of ``inspect``: 257 added confext fields and the compatibility OS."""
    kinds = ("SYSEXT_", "CONFEXT_") if systemd >= 257 else ("SYSEXT_",)
    head = [
        "Extension:",
        f"\t{path}",
        "\tExtension Scope:",
        f"\t\t{_first(rel, *(k + 'SCOPE' for k in kinds)) or 'n/a'}",
        "\tExtension Compatibility Level:",
        f"\t\t{_first(rel, *(k + 'LEVEL' for k in kinds)) or 'n/a'}",
    ]
    portable = [
        "\tPortable Service:",
        f"\t\t{rel.get('PORTABLE_PRETTY_NAME') or 'n/a'}",
        "\tPortable Prefixes:",
        f"\t\t{rel.get('PORTABLE_PREFIXES') or 'n/a'}",
    ]
    if systemd < 257:
        return [
            *head,
            *portable,
            "\tOperating System:",
            f"\t\t{rel.get('PRETTY_NAME') or 'n/a'} "
            f"({rel.get('ID') or 'n/a'} {rel.get('VERSION_ID') or 'n/a'})",
        ]
    pretty = _first(rel, "SYSEXT_PRETTY_NAME", "CONFEXT_PRETTY_NAME")
    ident = _first(rel, "SYSEXT_ID", "SYSEXT_IMAGE_ID", "CONFEXT_ID", "CONFEXT_IMAGE_ID") or "n/a"
    version = (
        _first(
            rel,
            "SYSEXT_VERSION_ID",
            "SYSEXT_IMAGE_VERSION",
            "SYSEXT_BUILD_ID",
            "CONFEXT_VERSION_ID",
            "CONFEXT_IMAGE_VERSION",
            "CONFEXT_BUILD_ID",
        )
        or "n/a"
    )
    return [
        *head,
        "\tExtension Compatibility OS:",
        f"\t\t{rel.get('ID') or 'n/a'}",
        "\tExtension Compatibility OS Version:",
        f"\t\t{rel.get('VERSION_ID') or 'n/a'}",
        *portable,
        "\tExtension Image:",
        f"\t\t{pretty} ({ident} {version})" if pretty else f"\t\tID: {ident} Version: {version}",
    ]


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _exposure(app: App, found: Inspection, profile: str) -> list[dict[str, Any]]:
    """Each service's exposure score if attached with ``profile`` (systemd-analyze security)."""
    from portable.security import would_attach_exposure

    spec = app.registry.profile(profile).spec
    meta = found.metadata
    return [
        {"unit": e.unit, "profile": e.profile, "value": e.score.value, "verdict": e.score.verdict}
        for e in would_attach_exposure(meta.image, meta.units, spec, host=app.host)
    ]


def render_json(
    found: Inspection | ImageMetadata, *, cat: bool, exposure: list[dict[str, Any]] | None = None
) -> str:
    from portable.osrelease import split_prefixes

    found = _as_inspection(found)
    meta = found.metadata
    fields = meta.os_release_fields
    doc: dict[str, Any] = {
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
                **({"image": found.origin[u.name].path} if found.extensions else {}),
                **({"content": u.data.decode("utf-8", "replace")} if cat else {}),
            }
            for u in meta.units
        ],
    }
    if exposure is not None:
        doc["exposure"] = exposure
    if found.details:
        doc["details"] = dict(found.details)
    if found.extensions:
        doc["extensions"] = [
            {
                "image": ext.image.path,
                "name": ext.image.name,
                "format": ext.image.format.name,
                "type": ext.image.format.image_type,
                "extension_release_file": ext.release_path,
                "extension_release": dict(ext.release_fields),
                "portable_prefixes": split_prefixes(
                    ext.release_fields.get("PORTABLE_PREFIXES", "")
                ),
                "units": [u.name for u in ext.units],
                **(
                    {"extension_release_content": ext.release.decode("utf-8", "replace")}
                    if cat
                    else {}
                ),
            }
            for ext in found.extensions
        ]
    if cat:
        doc["os_release_content"] = meta.os_release.decode("utf-8", "replace")
    import json  # only for --json (attach imports this module too)

    return json.dumps(doc, indent=2)


def verity_note(found: Inspection) -> str | None:
    """An info line when the image has verity partitions, which inspection does not use."""
    verity = found.details.get("verity") if found.details else None
    if not verity:
        return None
    return (
        f"(Image has {', '.join(verity)} partition(s): not used to read it here; the service "
        "manager sets up verity when it starts the service, if a root hash is available.)"
    )


@click.command("inspect")
@click.argument("image")
@click.argument("prefixes", nargs=-1)
@click.option("--cat", is_flag=True, help="Show os-release and unit files verbatim.")
@click.option(
    "-p",
    "--profile",
    default="default",
    show_default=True,
    help="Profile the exposure score in --json output is computed with.",
)
@click.option(
    "--extension",
    "extensions",
    multiple=True,
    metavar="PATH",
    help="Extension image to inspect with the image (repeatable, in order).",
)
@click.option(
    "--force", is_flag=True, help="Accept any single extension-release file in an extension."
)
@quiet
@no_pager
@json_output
@click.pass_obj
def inspect_command(
    app: App,
    image: str,
    prefixes: tuple[str, ...],
    cat: bool,
    profile: str,
    extensions: tuple[str, ...],
    force: bool,
    quiet: bool,
    no_pager: bool,
    as_json: bool,
) -> None:
    """Show IMAGE's os-release and the unit files matching PREFIX...

    Without PREFIX, the prefix is derived from the image name (foo_1.2.raw -> foo); a single
    '-' matches every unit file. With --extension, each extension's extension-release and
    units are shown too (--cat: its extension-release file).
    """
    from portable.images import normalize_image_arg, pick_version
    from portable.inspect import effective_prefixes, inspect_image_with_extensions

    warn_if_ambiguous(app, image, quiet)
    effective = effective_prefixes(image, prefixes, systemd=detect(app.host).major)
    found = inspect_image_with_extensions(
        image,
        effective,
        extensions=extensions,
        force=force,
        host=app.host,
        registry=app.registry,
    )
    # After the work, so that a failure stays a single line on stderr.
    app.info(matching_line(effective, explicit=bool(prefixes)), quiet=quiet or as_json)
    note = verity_note(found)
    if note is not None:
        app.info(note, quiet=quiet or as_json)
    if as_json:
        click.echo(render_json(found, cat=cat, exposure=_exposure(app, found, profile)))
    else:
        systemd = detect(app.host).major
        versioned = pick_version(image, host=app.host) != image
        shown = normalize_image_arg(image, host=app.host, pick=False) if versioned else None
        sys.stdout.buffer.write(render_text(found, cat=cat, systemd=systemd, shown=shown))
        sys.stdout.flush()
