"""The spec types of :mod:`portable.plugin.types` that only some commands use, built when
that module is first asked for one of them.

Building a dataclass costs ~0.4 ms (its methods are generated and compiled), and every command
imports ``portable.plugin.types``: a plain attach needs neither :class:`DetachOptions` nor the
profile edits' types (:class:`ProfileEdit`, :class:`FloorEdit`: only a profile that ``extends``
another has them), a detach neither :class:`AttachOptions` nor :class:`ImageMetadata`. They are
``portable.plugin.types``' all the same (their ``__module__`` says so, as ``repr`` and pickle
show): import them from there, or from ``portable`` / ``portable.plugin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portable.plugin.types import PluginOptions, _plugin_options

if TYPE_CHECKING:
    from portable.plugin.types import FloorRule, Image, UnitFile

__all__ = ["AttachOptions", "DetachOptions", "FloorEdit", "ImageMetadata", "ProfileEdit"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileEdit:
    """How a profile changes the drop-in of the profile it ``extends``, for one unit type.

    :param remove: setting names dropped from the base (every occurrence).
    :param set: settings replacing every occurrence of their key in the base (or added), in
        order; a key may repeat (``BindReadOnlyPaths=`` twice).
    :param mode: the permission bits the resulting drop-in may have at most (those of the file
        the edit comes from, see :class:`ProfileDropin`).
    """

    __module__ = "portable.plugin.types"

    remove: tuple[str, ...] = ()
    set: tuple[tuple[str, str], ...] = ()
    mode: int = 0o644


@dataclass(frozen=True, kw_only=True, slots=True)
class FloorEdit:
    """How a profile changes the floor of the profile it ``extends`` (a TOML ``[floor]`` table).

    :param forbid: rules added (after the base's).
    :param allow: setting names whose rules are dropped from the base's floor (``forbid`` may
        then give a rule of its own for one).
    :param hold_profile: replaces the base's; ``None`` keeps it.
    """

    __module__ = "portable.plugin.types"

    forbid: tuple[FloorRule, ...] = ()
    allow: tuple[str, ...] = ()
    hold_profile: bool | None = None


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
class DetachOptions:
    """What the user asked for on ``detach`` (and the values of the options plugins added:
    :attr:`plugin_options`)."""

    __module__ = "portable.plugin.types"

    runtime: bool = False
    now: bool = False
    enable: bool = False
    no_reload: bool = False
    force: bool = False
    extensions: tuple[str, ...] = ()
    # the values of the options plugins added to the verb (CliOption), by dest
    plugin_options: PluginOptions = field(default_factory=PluginOptions)

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
