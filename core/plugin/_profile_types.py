"""The profile spec types of :mod:`portable.plugin.types` (:class:`Profile`,
:class:`ProfileDropin`, :class:`ProfileEdit`, :class:`Floor`, :class:`FloorRule`,
:class:`FloorEdit`), built when that module is first asked for one of them: a command that
collects no profile (detach) builds none.

Building a dataclass costs ~0.4 ms (its methods are generated and compiled), and every command
imports ``portable.plugin.types``; this module and its siblings (``_attach_types``,
``_detach_types``) hold the spec types only some commands use. They are
``portable.plugin.types``' all the same (their ``__module__`` says so, as ``repr``, pickle and
``typing.get_type_hints`` show): import them from there, or from ``portable`` /
``portable.plugin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from portable.errors import PluginError
from portable.plugin.types import FLOOR_MATCHES, _check_unit_types, validate_profile_name

__all__ = ["Floor", "FloorEdit", "FloorRule", "Profile", "ProfileDropin", "ProfileEdit"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileDropin:
    """What a profile adds for one unit type: the drop-in text, and where it lives if on disk.

    ``path`` is set when the drop-in exists as a file that attach may symlink to (systemd's
    ``10-profile.conf`` is a symlink to the profile file in the default copy mode). Profiles
    built in memory (TOML, Python) have ``path=None`` and are always copied.

    ``mode``: the permission bits of a copy (``10-profile.conf``). 0644 as portablectl copies
    its profiles; a profile read from a file that is not readable by everyone keeps that file's
    bits, so its copy is never more readable than the file.
    """

    __module__ = "portable.plugin.types"

    text: str
    path: Path | None = None
    mode: int = 0o644


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
class FloorRule:
    """A setting a profile forbids in an image's own unit files (one row of a floor table).

    :param setting: the setting name (``ExecStart``); in ``unit_types`` only (all if empty).
    :param match: how a value is forbidden, one of :data:`FLOOR_MATCHES`.
    :param values: for ``values`` and ``prefix``.
    :param reason: why, as the refusal prints it ("overwrites a file on the host").
    """

    __module__ = "portable.plugin.types"

    setting: str
    match: str = "any"
    values: tuple[str, ...] = ()
    reason: str
    unit_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.match not in FLOOR_MATCHES:
            raise PluginError(
                f"floor rule {self.setting}=: unknown match {self.match!r}"
                f" (expected one of {', '.join(FLOOR_MATCHES)})"
            )
        _check_unit_types(self.unit_types, f"floor rule {self.setting}=")


@dataclass(frozen=True, kw_only=True, slots=True)
class Floor:
    """What a profile promises that an image's unit files can't take back: its sandbox floor.

    :param rules: settings forbidden outright (:class:`FloorRule`).
    :param hold_profile: also refuse a unit setting that makes the service score worse, on a
        check the profile's own service drop-in sets, than the bare service with the profile
        (``CapabilityBoundingSet=CAP_SYS_ADMIN`` adds to a profile's list: systemd merges them;
        ``User=root`` with the profile's ``DynamicUser=yes`` runs as root).

    ``portable.security.floor`` holds the tables the built-in profiles use (``STANDARD``,
    ``NO_NETWORK``, ``NONE``); a profile with no floor of its own gets its base's (``extends``),
    else ``STANDARD``.
    """

    __module__ = "portable.plugin.types"

    rules: tuple[FloorRule, ...] = ()
    hold_profile: bool = True


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
class Profile:
    """A security profile: drop-in settings applied to each attached unit of a given type.

    :param name: what users pass to ``--profile``.
    :param description: one line for listings.
    :param dropins: unit type (``"service"``, ``"socket"``, ...) -> :class:`ProfileDropin`.
        Only unit types listed here get a ``10-profile.conf``.
    :param priority: resolves profiles of the same name: the highest wins, equal priorities
        are a conflict. Plugins use 0 (the default). Profiles found in systemd's own directories
        use 30 (``/etc``), 20 (``/run``), 10 (``/usr/local/lib``) so an admin can override a
        plugin's profile as systemd users expect, and -10 (``/usr/lib``, where systemd ships its
        copies of the built-in four).
    :param origin: where it comes from, for listings (a file, a directory, "built-in").
    :param extends: the name of a profile this one is based on; the registry resolves it into
        ``dropins`` by applying ``edits`` (unit type -> :class:`ProfileEdit`). Extending one's
        own name means the profile of that name it overrides (lower priority).
    :param floor: the settings an image's unit files may not use under this profile
        (:class:`Floor`); ``None``: the base profile's when it ``extends`` one,
        else ``portable.security.floor.STANDARD``. Only a profile that promises nothing
        (``trusted``) should give an empty one.
    :param floor_edit: with ``extends``: how this profile changes the floor it gets (its own
        ``floor``, else the base's); the registry resolves it into ``floor``
        (:class:`FloorEdit`).
    """

    __module__ = "portable.plugin.types"

    name: str
    description: str
    dropins: Mapping[str, ProfileDropin]
    priority: int = 0
    origin: str = ""
    extends: str | None = None
    edits: Mapping[str, ProfileEdit] = field(default_factory=dict)
    floor: Floor | None = None
    floor_edit: FloorEdit | None = None

    def __post_init__(self) -> None:
        validate_profile_name(self.name)
        if self.floor_edit is not None and self.extends is None:
            # nothing would resolve it: the profile would silently keep the standard floor
            raise PluginError(f"profile {self.name!r}: floor_edit needs extends (or give floor)")
        _check_unit_types([*self.dropins, *self.edits], f"profile {self.name!r}")
        # Freeze the mappings too, so a registered profile can't change under the registry.
        object.__setattr__(self, "dropins", MappingProxyType(dict(self.dropins)))
        object.__setattr__(self, "edits", MappingProxyType(dict(self.edits)))

    def dropin_for(self, unit_type: str) -> ProfileDropin | None:
        return self.dropins.get(unit_type)
