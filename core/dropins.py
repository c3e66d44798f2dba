"""The ``20-portable.conf`` drop-in: the ownership marker and the settings pointing at the image.

Byte-compatible with systemd 252 (spec 3.4): the first line is the marker, the only record of
an attach; ``.service`` units get a ``[Service]`` section with the image reference. Settings a
pre-attach hook adds (:class:`~portable.types.ExtraSetting`) are appended at the end, so
systemd's portablectl still recognises and removes the file.
"""

from __future__ import annotations

from collections.abc import Sequence

from portable.names import format_marker
from portable.types import ExtraSetting, Image, UnitFile

__all__ = ["MARKER_FILE", "PROFILE_FILE", "render_portable_dropin"]

MARKER_FILE = "20-portable.conf"
PROFILE_FILE = "10-profile.conf"


def render_portable_dropin(
    image: Image,
    unit: UnitFile,
    *,
    host_os_release: str,
    extensions: Sequence[str] = (),
    extra: Sequence[ExtraSetting] = (),
    root_path: str | None = None,
    extension_images: Sequence[Image] = (),
    origin: Image | None = None,
    relax_extension_check: bool = False,
) -> bytes:
    """The content of ``<unit>.d/20-portable.conf`` for ``unit`` attached from ``image``.

    ``root_path`` is what ``RootDirectory=``/``RootImage=`` point at when that is not the image
    itself (an archive format's unpacked tree).

    With extension images (``extension_images``, in command-line order; the marker names them
    all), a service that comes from one of them (``origin``) is labelled with that extension's
    file name (``PORTABLE=``) and gets an ``ExtensionImages=``/``ExtensionDirectories=`` line
    for every extension, as systemd 252 writes them (spec 3.4). ``relax_extension_check``
    (``--force``) appends ``:x-systemd.relax-extension-release-check`` to ``ExtensionImages=``
    lines; unlike systemd 252, which decided that by the *root* image's type and so could write
    the option after an ``ExtensionDirectories=`` path (where PID 1 takes it for part of the
    path), the extension's own type decides, as systemd 257 does.
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
            f"BindReadOnlyPaths={host_os_release}:/run/host/os-release",
            f"LogExtraFields=PORTABLE={label}",
        ]
        if origin is not None:
            for ext in extension_images:
                if ext.format.root_setting == "RootDirectory":
                    lines.append(f"ExtensionDirectories={ext.path}")
                else:
                    relax = ":x-systemd.relax-extension-release-check"
                    lines.append(
                        f"ExtensionImages={ext.path}{relax if relax_extension_check else ''}"
                    )
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
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
