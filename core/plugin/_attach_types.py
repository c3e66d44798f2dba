"""The spec types of :mod:`portable.plugin.types` an attach uses and a detach does not
(:class:`AttachOptions`, :class:`ImageMetadata`), built when that module is first asked for one
of them: see :mod:`portable.plugin._profile_edits` for why. (``inspect`` builds them too.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portable.plugin.types import PluginOptions, _plugin_options

if TYPE_CHECKING:
    from portable.plugin.types import Image, UnitFile

__all__ = ["AttachOptions", "ImageMetadata"]


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
