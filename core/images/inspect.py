"""Reading an image's metadata: os-release and the unit files it offers (``portable inspect``).

This is the library API behind ``inspect``, and the first step of ``attach``. With extension
images (``--extension``), each extension's ``extension-release`` file is read too, and the unit
files of the root image and of every extension are merged: on a name clash the root image's
unit wins, then the earlier extension's (spec 2.2, 2.4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from portable.errors import BadImage, PortableError
from portable.images.architecture import host_architecture
from portable.images.arguments import effective_prefixes
from portable.images.confined import (
    ConfinedFile,
    UnsafePath,
    list_dir,
    open_root,
    read_file,
    resolve_dir,
)
from portable.images.osrelease import MAX_OS_RELEASE_SIZE, parse_os_release, split_prefixes
from portable.images.resolve import resolve_image
from portable.images.units import discover_units
from portable.plugin.registry import Registry, get_registry
from portable.plugin.types import Image, ImageMetadata, UnitFile
from portable.systemd.host import Host
from portable.systemd.names import is_valid_image_name
from portable.systemd.version import NEWEST_KNOWN
from portable.systemd.version import detect as detect_systemd

__all__ = [
    "EXTENSION_RELEASE_DIR",
    "OS_RELEASE_PATHS",
    "ExtensionMetadata",
    "Inspection",
    "check_extension_compatible",
    "extension_release_name",
    "host_architecture",
    "inspect_image",
    "inspect_image_with_extensions",
    "opened_tree",
    "read_image_and_extensions",
    "read_metadata",
    "resolve_extensions",
]

# Looked up in this order inside the image, symlinks confined (spec 2.1).
OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")
EXTENSION_RELEASE_DIR = "/usr/lib/extension-release.d"
CONFEXT_RELEASE_DIR = "/etc/extension-release.d"  # configuration extensions (systemd 255+)
EXTENSION_RELEASE_PREFIX = "extension-release."
STRICT_XATTR = "user.extension-release.strict"
# Stripped (repeatedly) from a raw extension's file name to get the release file's name.
_RAW_SUFFIXES = (".xz", ".gz", ".bz2", ".raw", ".qcow2", ".img", ".bin")


# A NamedTuple: made at import in a fifth of the time of a frozen dataclass (~0.08 ms, not 0.45).
class ExtensionMetadata(NamedTuple):
    """What is read from one extension image.

    :param release: the raw ``extension-release`` file.
    :param release_path: where it was found inside the extension.
    :param units: the extension's matching unit files, before merging with the others.
    """

    image: Image
    release: bytes
    release_path: str
    release_fields: Mapping[str, str]
    units: tuple[UnitFile, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Inspection:
    """A root image with its extensions.

    :param metadata: the root image's metadata; its ``units`` are the merged units of the root
        and every extension.
    :param origin: unit name -> the image (root or an extension) it comes from.
    :param details: what the root image's format says about its layout (file system,
        partitions), for ``inspect``.
    """

    metadata: ImageMetadata
    extensions: tuple[ExtensionMetadata, ...] = ()
    origin: Mapping[str, Image] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> Image:
        return self.metadata.image

    @property
    def units(self) -> tuple[UnitFile, ...]:
        return self.metadata.units

    def valid_prefixes(self) -> list[str]:
        """``PORTABLE_PREFIXES`` of the root and every extension: deduplicated, sorted."""
        words = split_prefixes(self.metadata.os_release_fields.get("PORTABLE_PREFIXES", ""))
        for ext in self.extensions:
            words += split_prefixes(ext.release_fields.get("PORTABLE_PREFIXES", ""))
        return sorted(set(words))


def _in_image(image: Image, what: str, exc: OSError) -> BadImage:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = " (a corrupt or truncated image?)" if exc.errno == 5 else ""
    return BadImage(f"Image '{image.path}': reading {what} failed: {reason}{hint}")


def _read_os_release(root_fd: int, image: Image) -> ConfinedFile:
    for candidate in OS_RELEASE_PATHS:
        try:
            found = read_file(root_fd, candidate, max_size=MAX_OS_RELEASE_SIZE)
        except UnsafePath as exc:
            raise BadImage(f"os-release of image '{image.path}': {exc}") from None
        if found is not None:
            return found
    raise BadImage(f"Image '{image.path}' lacks os-release data, refusing.")


def read_metadata(
    image: Image, prefixes: Sequence[str], *, require_units: bool = True
) -> ImageMetadata:
    """Open the image with its format and read os-release and the matching units.

    :raises BadImage: no os-release, an unsafe file, or (``require_units``) no matching unit.
    """
    # Without extensions the systemd version plays no part.
    return read_image_and_extensions(
        image, (), prefixes, require_units=require_units, systemd=NEWEST_KNOWN
    ).metadata


@contextmanager
def _opened(image: Image) -> Iterator[Path]:
    """The image's tree, through its format. A format sees only the local path (below --root):
    its errors are made to name the image as the host sees it, as every other message does."""
    try:
        with image.format.open(image.host_path) as tree:
            yield tree
    except PortableError as exc:
        local = str(image.host_path)
        if local != image.path and local in exc.message:
            exc.message = exc.message.replace(local, image.path)
            exc.args = (exc.message,)
        raise


def opened_tree(image: Image) -> AbstractContextManager[Path]:
    """The image's tree, read-only, through its format (:mod:`portable.images.runnable` reads
    it)."""
    return _opened(image)


def _open_tree(image: Image) -> AbstractContextManager[Path]:
    if image.format.unpack is not None:
        raise BadImage(
            f"Image '{image.path}' is a {image.format.name} archive, which can't be used as an "
            "extension image"
        )
    return _opened(image)


def extension_release_name(image: Image) -> str:
    """The NAME in ``extension-release.NAME`` systemd looks for (spec 1.6).

    A directory: its file name. A file: the name of the file it resolves to, without the
    suffixes ``.xz .gz .bz2 .raw .qcow2 .img .bin`` (stripped repeatedly).
    """
    if image.format.root_setting == "RootDirectory":
        return image.filename
    name = os.path.basename(os.path.realpath(image.host_path))
    stripped = True
    while stripped:
        stripped = False
        for suffix in _RAW_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                stripped = True
    return name


def _strict_false(dir_fd: int, entry: str) -> bool:
    """Whether the file carries ``user.extension-release.strict`` set to a false value."""
    try:
        fd = os.open(
            entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return False
    try:
        value = os.getxattr(fd, STRICT_XATTR)
    except OSError:
        return False
    finally:
        os.close(fd)
    return value.decode("utf-8", "replace").strip().lower() in ("0", "no", "n", "false", "f", "off")


def _base_image_name(name: str) -> str:
    """systemd 254+'s path_extract_image_name(): the name without ``.raw`` and version suffixes
    (``app0_1.0`` -> ``app0``)."""
    for suffix in (".sysext.raw", ".confext.raw", ".raw"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.split(r"[_+]", name, maxsplit=1)[0]


def _read_extension_release(
    root_fd: int, image: Image, *, relax: bool, systemd: int
) -> tuple[ConfinedFile, str]:
    """Find and read the extension's ``extension-release.NAME`` (spec 2.2); and its directory.

    The exact name first; else the one other ``extension-release.X`` that applies: with
    ``relax`` (``--force``) any, else one that carries the xattr
    ``user.extension-release.strict=false``, and from systemd 254 on also one named after the
    image without its version (``app0_1.0.raw`` may use ``extension-release.app0``; 252's PID 1
    applies the strict rule itself when it mounts ``ExtensionImages=``, so there such a service
    would be attached and then fail to start). Several that apply are an error, naming them.
    From 255 on, an image without one in ``/usr/lib/extension-release.d`` may be a configuration
    extension, with its file in ``/etc/extension-release.d``.
    """
    name = extension_release_name(image)
    base = _base_image_name(name) if systemd >= 254 else None
    dirs = [EXTENSION_RELEASE_DIR] + ([CONFEXT_RELEASE_DIR] if systemd >= 255 else [])
    others: list[str] = []
    for directory in dirs:
        found = _find_release(root_fd, image, directory, name, base, relax=relax, others=others)
        if found is not None:
            return found, directory
    hint = ""
    if others:
        hint = (
            f" (Found {', '.join(others)}; for this image it must be named "
            f"{EXTENSION_RELEASE_PREFIX}{name}, or use --force.)"
        )
    raise BadImage(f"Image '{image.path}' lacks extension-release data, refusing.{hint}")


def _find_release(
    root_fd: int,
    image: Image,
    directory: str,
    name: str,
    base: str | None,
    *,
    relax: bool,
    others: list[str],
) -> ConfinedFile | None:
    """The release file in one ``extension-release.d`` directory, or None; ``others`` collects
    the files that did not apply (for the error's hint)."""
    try:
        found = read_file(
            root_fd, f"{directory}/{EXTENSION_RELEASE_PREFIX}{name}", max_size=MAX_OS_RELEASE_SIZE
        )
    except UnsafePath as exc:
        raise BadImage(f"extension-release of image '{image.path}': {exc}") from None
    if found is not None:
        return found
    candidates: list[str] = []
    with resolve_dir(root_fd, directory) as opened:
        if opened is not None:
            dir_fd, _ = opened
            for entry, kind in sorted(list_dir(dir_fd)):
                x = entry[len(EXTENSION_RELEASE_PREFIX) :]
                if not entry.startswith(EXTENSION_RELEASE_PREFIX) or not is_valid_image_name(x):
                    continue
                if kind != "file":
                    continue
                if relax or x == base or _strict_false(dir_fd, entry):
                    candidates.append(entry)
                else:
                    others.append(entry)
    if len(candidates) > 1:
        raise BadImage(
            f"Image '{image.path}' has several extension-release files that could apply "
            f"({', '.join(candidates)}), refusing."
        )
    if not candidates:
        return None
    try:
        return read_file(root_fd, f"{directory}/{candidates[0]}", max_size=MAX_OS_RELEASE_SIZE)
    except UnsafePath as exc:
        raise BadImage(f"extension-release of image '{image.path}': {exc}") from None


def _details(image: Image) -> Mapping[str, Any]:
    describe = image.format.extra.get("details")
    if describe is None:
        return {}
    try:
        result = describe(image.host_path)
    except Exception:  # details are informational: a plugin's failure must not stop inspect
        return {}
    return dict(result) if isinstance(result, Mapping) else {}


def read_image_and_extensions(
    image: Image,
    extensions: Sequence[Image],
    prefixes: Sequence[str],
    *,
    relax: bool = False,
    require_units: bool = True,
    systemd: int,
    root_tree: Path | None = None,
) -> Inspection:
    """Read the root image and each extension; merge their units (root first).

    :param relax: ``--force``: accept any single ``extension-release.*`` file.
    :param root_tree: the root image's tree, read there instead of through its format's
        ``open`` (attach: an archive's unpacked tree, :mod:`portable.images.unpacked`).
    :param systemd: the host's systemd major version (which extension-release files count).
    :raises BadImage: no os-release, no extension-release, an unsafe or unreadable file, or
        (``require_units``) no matching unit anywhere.
    """
    try:
        opened = nullcontext(root_tree) if root_tree is not None else _opened(image)
        with opened as tree, open_root(tree) as root_fd:
            os_release = _read_os_release(root_fd, image)
            units = discover_units(root_fd, prefixes, image=image.path)
    except OSError as exc:
        raise _in_image(image, "its files", exc) from None
    merged: dict[str, UnitFile] = {u.name: u for u in units}
    origin: dict[str, Image] = {u.name: image for u in units}
    exts: list[ExtensionMetadata] = []
    for ext in extensions:
        try:
            with _open_tree(ext) as tree, open_root(tree) as root_fd:
                release, release_dir = _read_extension_release(
                    root_fd, ext, relax=relax, systemd=systemd
                )
                ext_units = discover_units(root_fd, prefixes, image=ext.path)
        except OSError as exc:
            raise _in_image(ext, "its files", exc) from None
        exts.append(
            ExtensionMetadata(
                image=ext,
                release=release.data,
                release_path=f"{release_dir}/{release.path.rsplit('/', 1)[-1]}",
                release_fields=parse_os_release(release.data),
                units=tuple(ext_units),
            )
        )
        for unit in ext_units:
            if unit.name not in merged:
                merged[unit.name] = unit
                origin[unit.name] = ext
    if require_units and not merged:
        raise BadImage(
            f"Couldn't find any matching unit files in image '{image.path}"
            + _extensions_part(extensions)
            + "', refusing."
        )
    meta = ImageMetadata(
        image=image,
        os_release=os_release.data,
        os_release_fields=parse_os_release(os_release.data),
        units=tuple(merged[n] for n in sorted(merged)),
        prefixes=tuple(prefixes),
    )
    return Inspection(metadata=meta, extensions=tuple(exts), origin=origin, details=_details(image))


def _extensions_part(extensions: Sequence[Image]) -> str:
    """``' or any of its extensions '<a>, <b>`` as systemd words it (opening quote excluded)."""
    if not extensions:
        return ""
    return "' or any of its extensions '" + ", ".join(e.path for e in extensions)


# --- extension compatibility (attach and reattach) ---------------------------------------


def _incompatibility(root: Mapping[str, str], ext: Mapping[str, str], systemd: int) -> str | None:
    """Why an extension does not fit the root image (spec 2.6), or ``None`` if it does.

    From systemd 257 on, the extension's ``ID`` may also be one of the root's ``ID_LIKE``.
    """
    if not ext:
        return "its extension-release is empty"
    scope = ext.get("SYSEXT_SCOPE")
    scopes = split_prefixes(scope) if scope is not None else ["system", "portable"]
    if "portable" not in scopes:
        return f"SYSEXT_SCOPE={scope} does not include 'portable'"
    arch = ext.get("ARCHITECTURE", "")
    if arch and arch != "_any" and arch != host_architecture():
        return f"ARCHITECTURE={arch}, the host is {host_architecture()}"
    ext_id = ext.get("ID", "")
    if not ext_id:
        return "it has no ID="
    if ext_id == "_any":
        return None
    like = split_prefixes(root.get("ID_LIKE", "")) if systemd >= 257 else []
    if ext_id != root.get("ID", "") and ext_id not in like:
        also = f" (like {' '.join(like)})" if like else ""
        return f"ID={ext_id}, the root image has ID={root.get('ID', '')}{also}"
    root_version, root_level = root.get("VERSION_ID", ""), root.get("SYSEXT_LEVEL", "")
    if not root_version and not root_level:
        return None
    ext_level = ext.get("SYSEXT_LEVEL", "")
    if root_level and ext_level:
        if root_level != ext_level:
            return f"SYSEXT_LEVEL={ext_level}, the root image has SYSEXT_LEVEL={root_level}"
    elif root_version:
        ext_version = ext.get("VERSION_ID", "")
        if not ext_version:
            return f"it has no VERSION_ID= (the root image has VERSION_ID={root_version})"
        if ext_version != root_version:
            return f"VERSION_ID={ext_version}, the root image has VERSION_ID={root_version}"
    return None


def check_extension_compatible(
    root: ImageMetadata, ext: ExtensionMetadata, *, systemd: int
) -> None:
    """Refuse an extension whose extension-release does not match the root (spec 2.6).

    :raises BadImage: systemd's message, and why.
    """
    why = _incompatibility(root.os_release_fields, ext.release_fields, systemd)
    if why is not None:
        raise BadImage(
            f"Image {ext.image.path} extension-release metadata does not match the root's: {why}"
        )


# --- resolving and inspecting --------------------------------------------------------------


def resolve_extensions(
    args: Sequence[str], *, host: Host, registry: Registry, cwd: Path | None = None
) -> list[Image]:
    """Resolve ``--extension`` arguments (names or paths), in order; refuse the same image
    twice (systemd: "File exists")."""
    images = [resolve_image(a, host=host, registry=registry, cwd=cwd) for a in args]
    seen: dict[str, str] = {}
    for arg, img in zip(args, images, strict=True):
        if img.name in seen:
            raise BadImage(
                f"Extension images '{seen[img.name]}' and '{arg}' have the same image name "
                f"'{img.name}', refusing."
            )
        seen[img.name] = arg
    return images


def inspect_image_with_extensions(
    arg: str,
    prefixes: Sequence[str] = (),
    *,
    extensions: Sequence[str] = (),
    force: bool = False,
    host: Host | None = None,
    registry: Registry | None = None,
    cwd: Path | None = None,
) -> Inspection:
    """Resolve ``arg`` and ``extensions`` (names or paths) and read them, as ``inspect`` does.

    :param prefixes: unit name prefixes; empty means the one derived from ``arg``; ``["-"]``
        means every unit.
    :param force: relax the extension-release name check (``--force``).
    """
    host = host or Host()
    registry = registry or get_registry(root=host.root)
    image = resolve_image(arg, host=host, registry=registry, cwd=cwd)
    exts = resolve_extensions(extensions, host=host, registry=registry, cwd=cwd)
    return read_image_and_extensions(
        image,
        exts,
        effective_prefixes(arg, prefixes, systemd=detect_systemd(host).major),
        relax=force,
        systemd=detect_systemd(host).major,
    )


def inspect_image(
    arg: str,
    prefixes: Sequence[str] = (),
    *,
    host: Host | None = None,
    registry: Registry | None = None,
    cwd: Path | None = None,
) -> ImageMetadata:
    """Resolve ``arg`` (image name or path) and read its metadata, as ``portable inspect`` does.

    :param prefixes: unit name prefixes; empty means the one derived from ``arg``; ``["-"]``
        means every unit.
    """
    return inspect_image_with_extensions(
        arg, prefixes, host=host, registry=registry, cwd=cwd
    ).metadata
