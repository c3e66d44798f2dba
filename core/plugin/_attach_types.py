"""The spec types of :mod:`portable.plugin.types` an attach uses and a detach does not
(:class:`AttachOptions`, :class:`ImageMetadata`, :class:`UnitFile`, :class:`ExtraSetting`),
built when that module is first asked for one of them: see :mod:`portable.plugin._profile_types`
for why. (``inspect`` builds them too.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portable.errors import PluginError
from portable.plugin.types import PluginOptions, _plugin_options

if TYPE_CHECKING:
    from portable.plugin.types import Image

__all__ = ["AttachOptions", "ExtraSetting", "ImageMetadata", "UnitFile"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AttachOptions:
    """What the user asked for on ``attach``/``reattach`` (portablectl's flags, and the values
    of the options plugins added: :attr:`plugin_options`)."""

    __module__ = "portable.plugin.types"

    profile: str = "default"
    copy_mode: str = "auto"  # auto | copy | symlink | mixed
    runtime: bool = False
    now: bool = False
    enable: bool = False
    no_block: bool = False
    no_reload: bool = False
    force: bool = False
    prefixes: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    # unit settings attached although the profile's sandbox floor forbids them
    # (portable.security.floor)
    allow_settings: tuple[str, ...] = ()
    # refuse an image systemd can't run a service from (portable.images.runnable) instead of warning
    strict_image: bool = False
    # the values of the options plugins added to the verb (CliOption), by dest
    plugin_options: PluginOptions = field(default_factory=PluginOptions)
    # True for the attach half of reattach: when portable_pre_attach runs, the attached
    # version's files are still in place (they are replaced in the same transaction), so a
    # plugin can read what it gave that version and carry it over (the netns plugin keeps the
    # namespace this way)
    reattach: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "plugin_options", _plugin_options(self.plugin_options))


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageMetadata:
    """What ``inspect`` reads from an image: os-release and the matching unit files."""

    __module__ = "portable.plugin.types"

    image: Image
    os_release: bytes
    os_release_fields: Mapping[str, str]
    units: tuple[UnitFile, ...]
    prefixes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtraSetting:
    """A setting a pre-attach hook adds to the attached units' ``20-portable.conf``.

    :param key: the setting name, e.g. ``"NetworkNamespacePath"``.
    :param value: its value.
    :param section: the unit file section, ``"Service"`` by default.
    :param units: unit names it applies to; empty means every attached unit that has
        ``section`` (for ``"Service"``: every ``.service`` unit).
    """

    __module__ = "portable.plugin.types"

    key: str
    value: str
    section: str = "Service"
    units: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z][A-Za-z0-9]*$", self.key):
            raise PluginError(f"invalid setting name {self.key!r}")
        if "\n" in self.value or "\r" in self.value:
            raise PluginError(f"setting {self.key}=: value must be a single line")


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitFile:
    """A unit file found in an image.

    :param name: unit name, e.g. ``foo.service``.
    :param source: the directory entry it was found as, inside the image, e.g.
        ``/usr/lib/systemd/system/foo.service`` (unit directory symlinks resolved).
    :param resolved: the file its bytes came from, inside the image: ``source`` with a symlink
        at the entry itself resolved, confined to the image root.
    :param data: its bytes.
    """

    __module__ = "portable.plugin.types"

    name: str
    source: str
    resolved: str
    data: bytes

    @property
    def type(self) -> str:
        """``service``, ``socket``, ``target``, ``timer`` or ``path``."""
        return self.name.rsplit(".", 1)[-1]
