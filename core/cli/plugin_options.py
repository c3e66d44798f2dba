"""The options plugins add to a verb (``portable_cli_options``), checked, and their values
converted: the part both halves of the command line share.

:mod:`portable.cli.plugin_cli` makes click options of them; the fast path
(:mod:`portable.cli.fast`) reads them with :mod:`portable.cli.parse`. Click-free.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from portable.cli import GROUP_FLAGS, GROUP_VALUE, OUR_VERB_FLAGS, VERB_FLAGS, VERB_VALUE
from portable.errors import PluginConflict, PluginError, PortableError

if TYPE_CHECKING:
    from portable.plugin.hooks import Registered
    from portable.plugin.types import CliOption

__all__ = ["Refused", "checked_options", "convert", "verb_options", "who"]

# Reserved: portablectl's options and the root group's, which the command line moves before or
# after the verb or drops for a verb that ignores them (portable.cli.normalize_args).
_RESERVED = GROUP_VALUE | GROUP_FLAGS | VERB_VALUE | VERB_FLAGS | OUR_VERB_FLAGS


def who(reg: Registered[Any]) -> str:
    """``plugin 'name' (distribution version)``, as every message names a plugin."""
    where = " ".join(p for p in (reg.distribution, reg.version) if p)
    return f"plugin {reg.plugin!r}" + (f" ({where})" if where else "")


def checked_options(
    found: Sequence[Registered[CliOption[Any]]],
) -> list[Registered[CliOption[Any]]]:
    """The plugins' options, each name once: a name two plugins add (or one plugin twice), or
    one of portablectl's, is an error naming the plugins."""
    by_name: dict[str, Registered[CliOption[Any]]] = {}
    for reg in found:
        name = reg.spec.name
        if name in _RESERVED:
            raise PluginConflict(
                f"option {name} of {who(reg)} is reserved: it is one of portablectl's or "
                "portable's own options"
            )
        if name in by_name:
            other = by_name[name]
            raise PluginConflict(
                f"option {name} is added by two plugins: {who(other)} and {who(reg)}"
            )
        by_name[name] = reg
    return list(by_name.values())


def verb_options(
    found: Sequence[Registered[CliOption[Any]]], verb: str, taken: Collection[str]
) -> list[Registered[CliOption[Any]]]:
    """The plugins' options of ``verb`` (of all those ``found``, checked), in their order; one
    named as an option the verb has (``taken``) is an error naming the plugin."""
    mine = [reg for reg in checked_options(found) if verb in reg.spec.verbs]
    for reg in mine:
        if reg.spec.name in taken:
            raise PluginConflict(
                f"option {reg.spec.name} of {who(reg)} is one of portable {verb}'s own options"
            )
    return mine


class Refused(Exception):
    """A value the option's ``convert`` refused (``ValueError`` or
    :class:`~portable.errors.PortableError`): a usage error naming the option, in click's
    words (the message is what to say about the value)."""


def convert(reg: Registered[CliOption[Any]], value: str) -> Any:
    """The option's value for the text given, through its ``convert``: :class:`Refused` if it
    refuses the value; anything else it raises is the plugin's error."""
    spec = reg.spec
    if spec.convert is None:
        return value
    try:
        return spec.convert(value)
    except (ValueError, PortableError) as exc:
        raise Refused(str(exc) or f"{value!r}") from exc
    except Exception as exc:
        raise PluginError(
            f"{who(reg)} failed reading {spec.name} {value!r}: {type(exc).__name__}: {exc}"
        ) from exc
