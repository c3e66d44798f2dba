"""The ``20-portable.conf`` drop-in: the ownership marker and the settings pointing at the image.

Byte-compatible with the running systemd's portabled (spec 3.4, 3.5): the first line is the
marker, the only record of an attach; ``.service`` units get a ``[Service]`` section with the
image reference. systemd 254 stopped binding the host's os-release (PID 1 provides
``/run/host/os-release`` itself, and a second bind makes the unit fail with "File exists") and
added the ``PORTABLE_*NAME_AND_VERSION`` log fields. Settings a pre-attach hook adds
(:class:`~portable.plugin.types.ExtraSetting`) are appended at the end, so systemd's portablectl
still
recognises and removes the file.

Every value is checked before the file is made (:func:`value_problem`, :func:`path_problem`):
systemd's unit-file parser ignores a line that is not UTF-8 ("String is not UTF-8 clean"), and a
``RootDirectory=`` it ignores leaves the service on the host's root. So a value systemd would not
read exactly as written raises :class:`UnwritableValue` instead of being written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from portable.errors import PortableError
from portable.systemd.names import format_marker, has_control, printable_path
from portable.systemd.version import OLDEST_SUPPORTED

if TYPE_CHECKING:
    from portable.plugin.types import ExtraSetting, Image, UnitFile

__all__ = [
    "MARKER_FILE",
    "PATH_SETTINGS",
    "PROFILE_FILE",
    "UnwritableValue",
    "extension_setting",
    "name_and_version",
    "path_problem",
    "render_portable_dropin",
    "value_problem",
]

MARKER_FILE = "20-portable.conf"
PROFILE_FILE = "10-profile.conf"

# The settings that carry the confinement: the path must reach PID 1 exactly as meant.
PATH_SETTINGS = ("RootDirectory", "RootImage", "ExtensionDirectories", "ExtensionImages")
_WHITESPACE = " \t\n\r"  # systemd's WHITESPACE: what it strips around values and splits at
_RELAX = ":x-systemd.relax-extension-release-check"
_KEY = r"[A-Za-z][A-Za-z0-9]*"  # compiled by re on first use: a detach writes no marker


class UnwritableValue(PortableError):
    """A value systemd's unit-file parser would not read as written (so it is not written)."""


def value_problem(value: str) -> str | None:
    """Why systemd's unit-file parser would not read ``Key=value`` with this value as one
    line (as a phrase: "is not valid UTF-8"), or ``None`` if it would."""
    try:
        value.encode("utf-8")  # strict: a surrogate-escaped byte is not UTF-8
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if has_control(value):
        return "contains a control character"
    if value.endswith("\\"):
        return "ends with a backslash (systemd would join the next line to it)"
    return None


def extension_setting(image: Image) -> str:
    """The setting an extension image is written with."""
    return (
        "ExtensionDirectories"
        if image.format.root_setting == "RootDirectory"
        else "ExtensionImages"
    )


def path_problem(setting: str, path: str) -> str | None:
    """Why ``setting=path`` (one of :data:`PATH_SETTINGS`) would not give PID 1 exactly
    ``path``, or ``None``.

    Besides :func:`value_problem`: systemd strips whitespace around a value and expands ``%``
    specifiers in these paths (``%n`` points the service at another directory, an unknown one
    makes PID 1 ignore the line: no ``RootDirectory=`` at all); the extension settings are
    lists, split at whitespace with quotes and backslashes interpreted, and ``ExtensionImages=``
    takes what follows a ``:`` for partition mount options.
    """
    problem = value_problem(path)
    if problem is not None:
        return problem
    if path != path.strip(_WHITESPACE):
        return "begins or ends with whitespace (systemd strips it)"
    if "%" in path:
        return "contains '%' (systemd expands it as a specifier)"
    if setting in ("ExtensionDirectories", "ExtensionImages"):
        if any(c in path for c in _WHITESPACE + "\"'\\"):
            return "contains whitespace, a quote or a backslash (systemd splits the list there)"
        if setting == "ExtensionImages" and ":" in path:
            return "contains ':' (systemd takes what follows for mount options)"
    return None


def _check_lines(lines: Sequence[str], own: int, unit: str) -> None:
    """The final guard: every line after the marker is blank, a section header or a
    ``Key=value`` systemd reads as written; the first ``own`` lines are ours, where the
    image paths also obey :func:`path_problem`.

    :raises UnwritableValue: naming the unit, the setting and what is wrong.
    """
    for index, line in enumerate(lines[1:], 1):
        if not line:
            continue
        if line.startswith("["):
            name = line[1:-1]
            problem = value_problem(name)
            # systemd's string_is_safe(), and one pair of brackets
            if problem is None and (not name or any(c in name for c in "[]\"'\\")):
                problem = "is not a section name"
            if problem is not None:
                raise UnwritableValue(
                    f"Can't write {MARKER_FILE} of '{unit}': section "
                    f"'{printable_path(name)}' {problem}, refusing."
                )
            continue
        key, _, value = line.partition("=")
        problem = None if re.fullmatch(_KEY, key) else "is not a setting name"
        if problem is None:
            problem = value_problem(value)
        if problem is None and index < own and key in PATH_SETTINGS:
            problem = path_problem(key, value.removesuffix(_RELAX))
        if problem is not None:
            raise UnwritableValue(
                f"Can't write {MARKER_FILE} of '{unit}': {printable_path(key)}="
                f"{printable_path(value)} {problem}, refusing."
            )


def name_and_version(fields: Mapping[str, str], kind: str, *, no_controls: bool) -> str:
    """systemd's ``<id>_<version>`` label of a release file (``debian_12``, ``app_1``), or "".

    ``kind`` is ``""`` (os-release), ``"SYSEXT_"`` or ``"CONFEXT_"`` (extension-release). From 257
    on (``no_controls``), a value with control characters counts as absent.
    """
    ids = ("IMAGE_ID", "ID") if not kind else (f"{kind}IMAGE_ID", f"{kind}ID")
    versions = (
        ("IMAGE_VERSION", "VERSION_ID", "BUILD_ID")
        if not kind
        else (f"{kind}IMAGE_VERSION", f"{kind}VERSION_ID", f"{kind}BUILD_ID")
    )

    def first(keys: Sequence[str]) -> str:
        for key in keys:
            if key in fields:
                value = fields[key]
                if no_controls and has_control(value):
                    return ""
                return value
        return ""

    ident, version = first(ids), first(versions)
    return "_".join(part for part in (ident, version) if part)


def render_portable_dropin(
    image: Image,
    unit: UnitFile,
    *,
    host_os_release: str,
    systemd: int = OLDEST_SUPPORTED,
    os_release_fields: Mapping[str, str] | None = None,
    extensions: Sequence[str] = (),
    extension_fields: Sequence[Mapping[str, str]] = (),
    extra: Sequence[ExtraSetting] = (),
    root_path: str | None = None,
    extension_images: Sequence[Image] = (),
    origin: Image | None = None,
    relax_extension_check: bool = False,
) -> bytes:
    """The content of ``<unit>.d/20-portable.conf`` for ``unit`` attached from ``image``.

    ``systemd`` is the major version of the host's systemd: its portabled's format is written
    (252/253: a bind of ``host_os_release``; 254 on: the ``PORTABLE_*`` log fields from
    ``os_release_fields`` and, per extension, ``extension_fields``).

    ``root_path`` is what ``RootDirectory=``/``RootImage=`` point at when that is not the image
    itself (an archive format's unpacked tree).

    With extension images (``extension_images``, in command-line order; the marker names them
    all), a service that comes from one of them (``origin``) is labelled with that extension's
    file name (``PORTABLE=``) and gets an ``ExtensionImages=``/``ExtensionDirectories=`` line
    for every extension, as systemd writes them. ``relax_extension_check`` (``--force``) appends
    ``:x-systemd.relax-extension-release-check`` to ``ExtensionImages=`` lines; unlike systemd
    252, which decided that by the *root* image's type and so could write the option after an
    ``ExtensionDirectories=`` path (where PID 1 takes it for part of the path), the extension's
    own type decides, as systemd 257 does.
    """
    marker_extensions = [e.path for e in extension_images] or list(extensions)
    lines = [format_marker(image.path, marker_extensions)]
    label = (origin or image).filename
    if unit.type == "service":
        lines += [
            "",
            "[Service]",
            f"{image.format.root_setting}={root_path or image.path}",
            f"Environment=PORTABLE={label}",
        ]
        if systemd < 254:
            lines.append(f"BindReadOnlyPaths={host_os_release}:/run/host/os-release")
        lines.append(f"LogExtraFields=PORTABLE={label}")
        no_controls = systemd >= 257
        if systemd >= 254:
            nv = name_and_version(os_release_fields or {}, "", no_controls=no_controls)
            if not marker_extensions:
                if nv:
                    lines.append(f"LogExtraFields=PORTABLE_NAME_AND_VERSION={nv}")
            else:
                lines += [
                    f"Environment=PORTABLE_ROOT={image.filename}",
                    f"LogExtraFields=PORTABLE_ROOT={image.filename}",
                ]
                if nv:
                    lines.append(f"LogExtraFields=PORTABLE_ROOT_NAME_AND_VERSION={nv}")
        if origin is not None:
            for index, ext in enumerate(extension_images):
                relax = relax_extension_check and ext.format.root_setting != "RootDirectory"
                kind_setting = extension_setting(ext)
                if systemd >= 254:
                    lines.append("")
                lines.append(
                    f"{kind_setting}={ext.path}"
                    + (":x-systemd.relax-extension-release-check" if relax else "")
                )
                if systemd >= 254:
                    lines.append(f"LogExtraFields=PORTABLE_EXTENSION={ext.filename}")
                    fields = extension_fields[index] if index < len(extension_fields) else {}
                    for kind in ("SYSEXT_", "CONFEXT_"):
                        nv = name_and_version(fields, kind, no_controls=no_controls)
                        if nv:
                            lines.append(f"LogExtraFields=PORTABLE_EXTENSION_NAME_AND_VERSION={nv}")
    own = len(lines)
    sections: dict[str, list[str]] = {}
    for setting in extra:
        if setting.units and unit.name not in setting.units:
            continue
        if not setting.units and setting.section.lower() != unit.type:
            continue  # "every unit that has this section": Service -> .service units, ...
        sections.setdefault(setting.section, []).append(f"{setting.key}={setting.value}")
    # A service's own [Service] settings continue its [Service] section: they come first, before
    # any other section's header (after which PID 1 would take them for that section's).
    in_service = "Service" if unit.type == "service" else None
    ordered = sorted(sections.items(), key=lambda item: item[0] != in_service)
    for section, settings in ordered:
        if not (section == "Service" and unit.type == "service"):
            lines += ["", f"[{section}]"]
        lines += settings
    _check_lines(lines, own, unit.name)
    return ("\n".join(lines) + "\n").encode("utf-8")
