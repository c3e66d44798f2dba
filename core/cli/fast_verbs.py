"""The fast path's run of a verb declared in :mod:`portable.cli.verbs` (attach, reattach,
detach, inspect): its command line read by :mod:`portable.cli.parse`, with the options plugins
add read and converted as click's path reads them (:mod:`portable.cli.plugin_options`), then
the verb's click-free function called, as click's command calls it.

Imported by :mod:`portable.cli.fast` for those verbs only; click-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from portable.cli import App, aborted, drop_ignored, echo_err
from portable.cli.parse import parse
from portable.cli.plugin_options import Refused, convert, verb_options
from portable.cli.verbs import VERBS, Verb, body
from portable.plugin.types import PluginOptions

if TYPE_CHECKING:
    from portable.plugin.hooks import Registered
    from portable.plugin.types import CliOption

__all__ = ["run_declared"]


def run_declared(app: App, name: str, args: Sequence[str]) -> int | None:
    """Run verb ``name`` with ``args`` (what follows it) if it is one of
    :data:`~portable.cli.verbs.VERBS` and they are plain; ``None`` to leave them to click."""
    verb = VERBS.get(name)
    if verb is None:
        return None
    # portablectl's options this verb ignores, dropped as click's path drops them
    args = drop_ignored(verb.option_names, args)
    if any(a in ("-h", "--help", "--") for a in args):
        return None  # click's, and before the plugins are asked for their options
    try:
        return _run_declared(app, verb, args)
    except (KeyboardInterrupt, EOFError):
        echo_err("")  # click's blank line after the terminal's ^C
        return aborted()


def _run_declared(app: App, verb: Verb, args: list[str]) -> int | None:
    found: list[Registered[CliOption[Any]]] = []
    if verb.plugin_options:
        taken = verb.option_names | {"--help"}
        found = verb_options(app.registry.hooks.cli_options(), verb.name, taken)
    parsed = parse(verb, args, {reg.spec.name: reg.spec.flag for reg in found})
    if parsed is None:
        return None
    values, plugins = parsed
    if verb.plugin_options:
        given = _plugin_values(found, plugins)
        if given is None:
            return None
        values["plugin_options"] = given
    return body(verb)(app, **values)


def _plugin_values(
    found: list[Registered[CliOption[Any]]], given: dict[str, str | bool]
) -> PluginOptions | None:
    """The plugins' options given, converted in click's order (as they first appear), keyed in
    the verb's order (as click's path gives them); ``None`` when a value is refused: click
    converts it again and says why, in its words."""
    by_name = {reg.spec.name: reg for reg in found}
    values: dict[str, Any] = {}
    for name, raw in given.items():
        reg = by_name[name]
        if isinstance(raw, bool):
            values[name] = raw
            continue
        try:
            values[name] = convert(reg, raw)
        except Refused:
            return None
    return PluginOptions({r.spec.dest: values[r.spec.name] for r in found if r.spec.name in values})
