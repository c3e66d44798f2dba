"""The profile edits' spec types of :mod:`portable.plugin.types` (:class:`ProfileEdit`,
:class:`FloorEdit`), built when that module is first asked for one of them.

Building a dataclass costs ~0.4 ms (its methods are generated and compiled), every command
imports ``portable.plugin.types``, and only a profile that ``extends`` another has edits (a
TOML profile, :mod:`portable.profiles.files`). They are ``portable.plugin.types``' all the same
(their ``__module__`` says so, as ``repr`` and pickle show): import them from there, or from
``portable`` / ``portable.plugin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portable.plugin.types import FloorRule

__all__ = ["FloorEdit", "ProfileEdit"]


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
