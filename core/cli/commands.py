"""The click commands of the verbs declared in :mod:`portable.cli.verbs` (attach, reattach,
detach, inspect), built from that table.

Each command's callback hands click's values to the verb's click-free function, the one the
fast path (:mod:`portable.cli.fast`) calls too; that function's module is imported only when
the verb runs, not for its ``--help`` nor to read its options (``portable -H HOST attach``).
"""

from __future__ import annotations

from typing import Any

import click

from portable.cli import App
from portable.cli.verbs import VERBS, Param, Verb, body

__all__ = ["attach_command", "build", "detach_command", "inspect_command", "reattach_command"]


def _param(p: Param) -> click.Parameter:
    if not p.names:
        return click.Argument([p.dest], nargs=-1 if p.multiple else 1)
    if p.flag:
        return click.Option([*p.names, p.dest], is_flag=True, help=p.help, hidden=p.hidden)
    return click.Option(
        [*p.names, p.dest],
        default=p.default,
        multiple=p.multiple,
        metavar=p.metavar,
        show_default=p.show_default,
        help=p.help,
        hidden=p.hidden,
    )


def build(verb: Verb) -> click.Command:
    """``verb``'s click command."""

    @click.pass_obj
    def run(app: App, /, **values: Any) -> int:
        if verb.plugin_options:
            # here: the plugins' values, which the verb's wrapper put in click's context
            from portable.cli.plugin_cli import plugin_options

            values["plugin_options"] = plugin_options()
        return body(verb)(app, **values)

    return click.Command(
        verb.name, callback=run, params=[_param(p) for p in verb.params], help=verb.help
    )


attach_command = build(VERBS["attach"])
reattach_command = build(VERBS["reattach"])
detach_command = build(VERBS["detach"])
inspect_command = build(VERBS["inspect"])
