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
    "hookimpl": "portable.plugin.hookspecs",
    "hookspec": "portable.plugin.hookspecs",
    "AttachOptions": "portable.plugin.types",
    "Change": "portable.plugin.types",
    "CliOption": "portable.plugin.types",
    "DetachOptions": "portable.plugin.types",
    "ExtraSetting": "portable.plugin.types",
    "Floor": "portable.plugin.types",
    "FloorEdit": "portable.plugin.types",
    "FloorRule": "portable.plugin.types",
    "Image": "portable.plugin.types",
    "ImageFormat": "portable.plugin.types",
    "ImageMetadata": "portable.plugin.types",
    "PluginOptions": "portable.plugin.types",
    "Profile": "portable.plugin.types",
    "ProfileDropin": "portable.plugin.types",
    "ProfileEdit": "portable.plugin.types",
    "UnitFile": "portable.plugin.types",
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
    "warn": "portable.errors",
    "get_registry": "portable.plugin.registry",
    "inspect_image": "portable.images.inspect",
    "list_images": "portable.images.listing",
}

__all__ = [
    "AmbiguousImageFormat",
    "AttachOptions",
    "AttachRefused",
    "BadImage",
    "Change",
    "CliOption",
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
    "PluginOptions",
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
    "warn",
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
        warn,
    )
    from portable.images.inspect import inspect_image
    from portable.images.listing import list_images
    from portable.plugin.hookspecs import hookimpl, hookspec
    from portable.plugin.registry import get_registry
    from portable.plugin.types import (
        AttachOptions,
        Change,
        CliOption,
        DetachOptions,
        ExtraSetting,
        Floor,
        FloorEdit,
        FloorRule,
        Image,
        ImageFormat,
        ImageMetadata,
        PluginOptions,
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
