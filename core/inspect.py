"""Reading an image's metadata: os-release and the unit files it offers (``portable inspect``).

This is the library API behind ``inspect``, and the first step of ``attach``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from portable.confined import UnsafePath, open_root, read_file
from portable.errors import BadImage
from portable.host import Host
from portable.images import resolve_image
from portable.names import extract_prefix
from portable.osrelease import MAX_OS_RELEASE_SIZE, parse_os_release
from portable.registry import Registry, get_registry
from portable.types import Image, ImageMetadata
from portable.units import discover_units

__all__ = ["OS_RELEASE_PATHS", "effective_prefixes", "inspect_image", "read_metadata"]

# Looked up in this order inside the image, symlinks confined (spec 2.1).
OS_RELEASE_PATHS = ("/etc/os-release", "/usr/lib/os-release")


def effective_prefixes(arg: str, prefixes: Sequence[str]) -> tuple[str, ...]:
    """The explicit prefixes, or the one derived from the image argument as typed (spec 2.4)."""
    return tuple(prefixes) if prefixes else (extract_prefix(arg),)


def read_metadata(
    image: Image, prefixes: Sequence[str], *, require_units: bool = True
) -> ImageMetadata:
    """Open the image with its format and read os-release and the matching units.

    :raises BadImage: no os-release, an unsafe file, or (``require_units``) no matching unit.
    """
    with image.format.open(image.host_path) as tree, open_root(tree) as root_fd:
        os_release = None
        for candidate in OS_RELEASE_PATHS:
            try:
                os_release = read_file(root_fd, candidate, max_size=MAX_OS_RELEASE_SIZE)
            except UnsafePath as exc:
                raise BadImage(f"os-release of image '{image.path}': {exc}") from None
            if os_release is not None:
                break
        if os_release is None:
            raise BadImage(f"Image '{image.path}' lacks os-release data, refusing.")
        units = discover_units(root_fd, prefixes, image=image.path)
    if require_units and not units:
        raise BadImage(f"Couldn't find any matching unit files in image '{image.path}', refusing.")
    return ImageMetadata(
        image=image,
        os_release=os_release.data,
        os_release_fields=parse_os_release(os_release.data),
        units=tuple(units),
        prefixes=tuple(prefixes),
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
    host = host or Host()
    registry = registry or get_registry(root=host.root)
    image = resolve_image(arg, host=host, registry=registry, cwd=cwd)
    return read_metadata(image, effective_prefixes(arg, prefixes))
