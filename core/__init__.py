"""portable-services: systemd Portable Services, in Python, extensible with plugins.

The public API for plugins and scripts::

    from portable import hookimpl, Profile, ProfileDropin, ImageFormat, AttachRefused

Names are imported lazily so that ``import portable`` (and ``portable --help``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "hookimpl": "portable.hookspecs",
    "hookspec": "portable.hookspecs",
    "AttachOptions": "portable.types",
    "Change": "portable.types",
    "DetachOptions": "portable.types",
    "ExtraSetting": "portable.types",
    "Floor": "portable.types",
    "FloorEdit": "portable.types",
    "FloorRule": "portable.types",
    "Image": "portable.types",
    "ImageFormat": "portable.types",
    "ImageMetadata": "portable.types",
    "Profile": "portable.types",
    "ProfileDropin": "portable.types",
    "ProfileEdit": "portable.types",
    "UnitFile": "portable.types",
    "PortableError": "portable.errors",
    "PluginError": "portable.errors",
    "PluginConflict": "portable.errors",
    "ImageNotFound": "portable.errors",
    "BadImage": "portable.errors",
    "UnknownImageFormat": "portable.errors",
    "AmbiguousImageFormat": "portable.errors",
    "UnknownProfile": "portable.errors",
    "AttachRefused": "portable.errors",
    "DetachRefused": "portable.errors",
    "get_registry": "portable.registry",
    "inspect_image": "portable.inspect",
    "list_images": "portable.listing",
}

__all__ = [
    "AmbiguousImageFormat",
    "AttachOptions",
    "AttachRefused",
    "BadImage",
    "Change",
    "DetachOptions",
    "DetachRefused",
    "ExtraSetting",
    "Floor",
    "FloorEdit",
    "FloorRule",
    "Image",
    "ImageFormat",
    "ImageMetadata",
    "ImageNotFound",
    "PluginConflict",
    "PluginError",
    "PortableError",
    "Profile",
    "ProfileDropin",
    "ProfileEdit",
    "UnitFile",
    "UnknownImageFormat",
    "UnknownProfile",
    "__version__",
    "get_registry",
    "hookimpl",
    "hookspec",
    "inspect_image",
    "list_images",
]

if TYPE_CHECKING:
    from portable.errors import (
        AmbiguousImageFormat,
        AttachRefused,
        BadImage,
        DetachRefused,
        ImageNotFound,
        PluginConflict,
        PluginError,
        PortableError,
        UnknownImageFormat,
        UnknownProfile,
    )
    from portable.hookspecs import hookimpl, hookspec
    from portable.inspect import inspect_image
    from portable.listing import list_images
    from portable.registry import get_registry
    from portable.types import (
        AttachOptions,
        Change,
        DetachOptions,
        ExtraSetting,
        Floor,
        FloorEdit,
        FloorRule,
        Image,
        ImageFormat,
        ImageMetadata,
        Profile,
        ProfileDropin,
        ProfileEdit,
        UnitFile,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'portable' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
