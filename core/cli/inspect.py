"""``portable inspect [--cat] [--profile P] IMAGE [PREFIX...]``: what it shows, click-free (its
parameters are declared in :mod:`portable.cli.verbs`; click's command and the fast path both
call :func:`inspect`)."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from portable.cli import App, echo_out
from portable.cli.arguments import warn_if_ambiguous
from portable.cli.changes import matching_line
from portable.cli.pager import Pager
from portable.images.arguments import (
    derived_prefixes,
    effective_prefixes,
    normalize_image_arg,
    pick_version,
)
from portable.images.inspect import Inspection, inspect_image_with_extensions
from portable.images.osrelease import split_prefixes
from portable.images.runnable import Problem, check_image
from portable.plugin.types import ImageMetadata, Profile
from portable.security.floor import FloorFinding, check_units
from portable.systemd.names import printable
from portable.systemd.version import detect

FLOOR_HEADING = "Sandbox floor (profile '{}'):"
RUNNABLE_HEADING = "This image can't run a portable service as is:"


def _as_inspection(found: Inspection | ImageMetadata) -> Inspection:
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


def _escape(c: str) -> str:
    if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte that is not UTF-8 (surrogate-escaped)
        byte = ord(c) - 0xDC00
        return f"\\x{byte:02x}" if byte < 0xA0 else c
    return repr(c)[1:-1]


# C0 controls but newline and tab, DEL, C1 controls (U+0080-U+009F, also as stray bytes
# 0x80-0x9F: a terminal in an 8-bit locale reads 0x9B as CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udc9f]")


def terminal_safe(data: bytes) -> bytes:
    """``data`` with the control characters a terminal acts on shown escaped (``\\x1b``), as
    :func:`portable.systemd.names.printable` does, but keeping newlines and tabs: an image's
    os-release or unit file can't clear the screen, set the clipboard (OSC 52), forge links (OSC 8)
    or overwrite lines (``\\r``). Text without them is unchanged, byte for byte (as portablectl
    prints it); other bytes that are not UTF-8 are kept as they are.
    """
    text = data.decode("utf-8", "surrogateescape")
    if not _CONTROL.search(text):
        return data
    return _CONTROL.sub(lambda m: _escape(m.group()), text).encode("utf-8", "surrogateescape")


def floor_findings(found: Inspection, profile: Profile, *, systemd: int) -> list[FloorFinding]:
    """What ``attach --profile`` would refuse in the units shown
    (:mod:`portable.security.floor`)."""
    meta = found.metadata
    return check_units(
        meta.units,
        profile,
        image_prefixes=derived_prefixes(meta.image.path, systemd),
        systemd=systemd,
    )


def render_floor(profile: str, findings: list[FloorFinding], *, cat: bool, always: bool) -> bytes:
    """The floor block after portablectl's output: nothing when there are no findings unless
    ``always`` (the profile was asked for); so that, as long as the image undoes no sandbox,
    the output stays portablectl's byte for byte (tests/test_box_inspect_list.py compares
    both, --cat too). With --cat a ``-- ... --`` header as the files', else a heading with
    tab-indented lines as ``Unit files:``."""
    if not findings and not always:
        return b""
    heading = FLOOR_HEADING.format(printable(profile))
    lines = [str(f) for f in findings] or ["(none: attach would not refuse any unit setting)"]
    if cat:
        return _b(f"\n-- {heading} --\n" + "".join(f"{line}\n" for line in lines))
    return _b(heading + "\n" + "".join(f"\t{line}\n" for line in lines))


def render_runnable(problems: list[Problem], *, cat: bool) -> bytes:
    """What the image lacks to run its services (:mod:`portable.images.runnable`), after
    portablectl's output; nothing when it lacks nothing, so that such an image's output stays
    portablectl's byte for byte. Laid out as :func:`render_floor`."""
    if not problems:
        return b""
    lines = [printable(str(p)) for p in problems]
    if cat:
        return _b(f"\n-- {RUNNABLE_HEADING} --\n" + "".join(f"{line}\n" for line in lines))
    return _b(RUNNABLE_HEADING + "\n" + "".join(f"\t{line}\n" for line in lines))


def runnable_problems(found: Inspection, profile: Profile) -> list[Problem]:
    meta = found.metadata
    return check_image(
        meta.image, meta.units, profile, extensions=[e.image for e in found.extensions]
    )


def _exposure(app: App, found: Inspection, spec: Profile) -> list[dict[str, Any]]:
    """Each service's exposure score if attached with ``spec`` (systemd-analyze security)."""
    # here: only --json shows the score (the exposure tables, ctypes: ~9 ms of an inspect)
    from portable.security.score import would_attach_exposure

    meta = found.metadata
    return [
        {"unit": e.unit, "profile": e.profile, "value": e.score.value, "verdict": e.score.verdict}
        for e in would_attach_exposure(meta.image, meta.units, spec, host=app.host)
    ]


def render_json(
    found: Inspection | ImageMetadata,
    *,
    cat: bool,
    exposure: list[dict[str, Any]] | None = None,
    floor: tuple[str, list[FloorFinding]] | None = None,
    runnable: list[Problem] | None = None,
) -> str:
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
    if floor is not None:
        doc["floor"] = {"profile": floor[0], "findings": [f.to_json() for f in floor[1]]}
    if runnable is not None:
        doc["runnable"] = {"ok": not runnable, "problems": [p.to_json() for p in runnable]}
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
    import json  # here: only for --json

    # ensure_ascii (the default): every control character of the image's text is escaped.
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


def inspect(
    app: App,
    *,
    image: str,
    prefixes: tuple[str, ...],
    cat: bool,
    profile: str | None,
    extensions: tuple[str, ...],
    force: bool,
    quiet: bool,
    no_pager: bool,
    as_json: bool,
) -> int:
    """``portable inspect`` (:data:`portable.cli.verbs.INSPECT`)."""
    warn_if_ambiguous(app, image, quiet)
    systemd = detect(app.host).major
    effective = effective_prefixes(image, prefixes, systemd=systemd)
    found = inspect_image_with_extensions(
        image,
        effective,
        extensions=extensions,
        force=force,
        host=app.host,
        registry=app.registry,
    )
    spec = app.registry.profile(profile or "default").spec
    findings = floor_findings(found, spec, systemd=systemd)
    problems = runnable_problems(found, spec)
    # After the work, so that a failure stays a single line on stderr.
    app.info(matching_line(effective, explicit=bool(prefixes)), quiet=quiet or as_json)
    note = verity_note(found)
    if note is not None:
        app.info(note, quiet=quiet or as_json)
    # As portablectl, the output (not the lines above) through a pager on a terminal.
    with Pager(enabled=not no_pager):
        if as_json:
            doc = render_json(
                found,
                cat=cat,
                exposure=_exposure(app, found, spec),
                floor=(spec.name, findings),
                runnable=problems,
            )
            echo_out(doc)
        else:
            versioned = pick_version(image, host=app.host) != image
            shown = normalize_image_arg(image, host=app.host, pick=False) if versioned else None
            text = render_text(found, cat=cat, systemd=systemd, shown=shown)
            text += render_floor(spec.name, findings, cat=cat, always=profile is not None)
            text += render_runnable(problems, cat=cat)
            sys.stdout.buffer.write(terminal_safe(text))
            sys.stdout.flush()
    return 0
