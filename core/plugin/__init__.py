"""What a plugin needs, in one module: ``from portable.plugin import hookimpl, Profile, Host``.

The plugin layer lives here too (``hookspecs``, ``types``, ``registry``, ``hooks``: the one place
hooks are called, ``entrypoints``), but a plugin imports nothing from those, nor from any other
``portable`` module: only from ``portable`` or ``portable.plugin``. The built-in plugins
(``portable.plugins``) are held to the same rule (a test checks it), so whatever they do a
third-party plugin can do.

The names:

* everything ``portable`` exports (``portable.__all__``): :func:`hookimpl` (:func:`hookspec`),
  the spec objects (:class:`Profile`, :class:`ProfileDropin`, :class:`ProfileEdit`,
  :class:`Floor`, :class:`FloorRule`, :class:`FloorEdit`, :class:`ImageFormat`, :class:`Image`,
  :class:`ImageMetadata`, :class:`UnitFile`, :class:`AttachOptions`, :class:`DetachOptions`,
  :class:`PluginOptions`, :class:`CliOption`, :class:`ExtraSetting`, :class:`Change`), the
  errors (:class:`PortableError` and its kinds: :class:`BadImage` is what an image format
  raises, :class:`AttachRefused`/:class:`DetachRefused` a veto) and :func:`warn`;
* the host: :class:`Host` (a root directory: ``/`` or ``--root``; hooks get one),
  :func:`systemd_version` (which systemd it runs or has installed);
* profiles: :func:`validate_profile_name`, :func:`builtin_floor` (the sandbox floors of
  systemd's four profiles), :func:`load_toml_profile` (a TOML profile file, as
  ``/etc/portable/profiles`` has them), ``PORTABLE_UNIT_TYPES`` (the unit types a profile has
  drop-ins for: ``service``, ``socket``, ``target``, ``timer``, ``path``);
* unit files: :func:`parse_unit_text` (systemd's syntax, into assignments with their section,
  file and line), :func:`parse_boolean`; :func:`unit_settings` (a unit's effective settings with
  a profile, as systemd reads them) and :func:`would_attach_exposure` (the exposure score of
  what an attach would write, ``systemd-analyze security``'s);
* image formats: :func:`mount_image` (a raw image read-only through loop devices, released on
  exit), :func:`host_architecture` (systemd's name for this machine's architecture).

Each name is imported when first used, so ``import portable.plugin`` costs nothing and a plugin
module loads only what it names at its top. Every command loads every plugin module: a plugin
that needs a heavy helper only sometimes (the exposure score, the mounting code) refers to it
at call time, ``from portable import plugin`` then ``plugin.would_attach_exposure(...)``, and
pays for it only then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import portable

if TYPE_CHECKING:
    from portable import *  # noqa: F403  (for mypy: portable.__all__, re-exported below)
    from portable.images.architecture import host_architecture
    from portable.images.loopdev import mount_image
    from portable.plugin.types import validate_profile_name
    from portable.profiles.files import load_toml_profile
    from portable.security.floor_tables import builtin_floor
    from portable.security.score import would_attach_exposure
    from portable.security.sources import unit_settings
    from portable.systemd.host import Host
    from portable.systemd.names import PORTABLE_UNIT_TYPES
    from portable.systemd.unitfile import parse_boolean, parse_unit_text
    from portable.systemd.version import detect as systemd_version

# The helpers: public name -> "module" (same name there) or "module:name".
_HELPERS = {
    "Host": "portable.systemd.host",
    "PORTABLE_UNIT_TYPES": "portable.systemd.names",
    "builtin_floor": "portable.security.floor_tables",
    "host_architecture": "portable.images.architecture",
    "load_toml_profile": "portable.profiles.files",
    "mount_image": "portable.images.loopdev",
    "parse_boolean": "portable.systemd.unitfile",
    "parse_unit_text": "portable.systemd.unitfile",
    "systemd_version": "portable.systemd.version:detect",
    "unit_settings": "portable.security.sources",
    "validate_profile_name": "portable.plugin.types",
    "would_attach_exposure": "portable.security.score",
}

__all__ = [
    "PORTABLE_UNIT_TYPES",
    "Host",
    "builtin_floor",
    "host_architecture",
    "load_toml_profile",
    "mount_image",
    "parse_boolean",
    "parse_unit_text",
    "systemd_version",
    "unit_settings",
    "validate_profile_name",
    "would_attach_exposure",
]
__all__ += portable.__all__  # hookimpl, the spec types, the errors, warn...


def __getattr__(name: str) -> Any:
    if name in _HELPERS:
        module, _, attr = _HELPERS[name].partition(":")
        value = getattr(importlib.import_module(module), attr or name)
    elif name in portable.__all__:  # resolved there: its table says where each is defined
        value = getattr(portable, name)
    else:
        # Also how `from portable.plugin import registry` finds a submodule not imported yet.
        raise AttributeError(f"module 'portable.plugin' has no attribute {name!r}")
    globals()[name] = value
    return value
