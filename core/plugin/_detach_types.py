"""The spec type of :mod:`portable.plugin.types` a detach uses and an attach does not
(:class:`DetachOptions`), built when that module is first asked for it: see
:mod:`portable.plugin._profile_types` for why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portable.plugin.types import PluginOptions, _plugin_options

__all__ = ["DetachOptions"]


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
