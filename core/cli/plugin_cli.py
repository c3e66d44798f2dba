"""What plugins add to the command line: options of verbs, and commands (verbs of their own).

The hooks are ``portable_cli_options`` and ``portable_register_commands``
(:mod:`portable.plugin.hookspecs`). :class:`portable.cli.group.PortableGroup` builds ``attach``,
``reattach`` and ``detach`` with the plugins' options when one of them runs (or shows its
``--help``), and looks a plugin's command up when its name is not one of portable's verbs.
The values given reach the plugins' hooks through ``options.plugin_options``
(:class:`~portable.plugin.types.PluginOptions`).

Imported by the command line only for those verbs (and plugins' commands): ``portable --help``
and the other verbs never load it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from portable.cli.plugin_options import Refused, convert, verb_options
from portable.errors import PluginConflict
from portable.plugin.types import CliOption, PluginOptions

if TYPE_CHECKING:
    from portable.plugin.hooks import Registered
    from portable.plugin.registry import Registry

__all__ = [
    "PluginOption",
    "collect_commands",
    "for_verb",
    "given_plugin_options",
    "plugin_options",
    "with_plugin_options",
]


# ctx.meta key of the plugins' option values for the running verb (set by the verb's wrapper).
_PLUGIN_VALUES = "portable.plugin_options"


def plugin_options() -> PluginOptions:
    """The values of the plugins' options given to the running verb (``AttachOptions`` and
    ``DetachOptions`` carry them to the plugins' hooks)."""
    ctx = click.get_current_context(silent=True)
    values = ctx.meta.get(_PLUGIN_VALUES) if ctx is not None else None
    return values if isinstance(values, PluginOptions) else PluginOptions()


class _Converted(click.ParamType[Any]):
    """A plugin option's value, through its ``convert``: ValueError and PortableError are
    usage errors naming the option (exit 2); anything else is the plugin's error."""

    name = "value"

    def __init__(self, reg: Registered[CliOption[Any]]) -> None:
        self.reg = reg

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return convert(self.reg, value)
        except Refused as exc:
            self.fail(str(exc), param, ctx)


class PluginOption(click.Option):
    """A plugin's option of a verb, as :func:`with_plugin_options` adds it: ``spec`` is what
    the plugin declared."""

    def __init__(self, decls: Sequence[str], spec: CliOption[Any], **kwargs: Any) -> None:
        super().__init__(decls, **kwargs)
        self.spec = spec


def given_plugin_options(
    ctx: click.Context, params: dict[str, Any]
) -> list[tuple[CliOption[Any], Any]]:
    """The plugins' options given on the command line of ``ctx`` (a verb built by
    :func:`with_plugin_options`), with their values, in the order the verb lists them; their
    entries are taken out of ``params`` (the verb's parameters, as parsed), leaving the
    verb's own."""
    given: list[tuple[CliOption[Any], Any]] = []
    for option in ctx.command.params:
        if not isinstance(option, PluginOption) or option.name is None:
            continue
        value = params.pop(option.name, None)
        if option.spec.flag:
            if value:
                given.append((option.spec, True))
        elif ctx.get_parameter_source(option.name) not in (None, ParameterSource.DEFAULT):
            given.append((option.spec, value))
    return given


def with_plugin_options(
    command: click.Command,
    verb: str,
    found: Sequence[Registered[CliOption[Any]]],
    builtin: Collection[str] = (),
) -> click.Command:
    """A copy of the verb's ``command`` that also takes the plugins' options for ``verb``.

    Their values are taken out of the arguments the verb's function gets and put where
    :func:`plugin_options` finds them, so the verbs' own signatures don't change.
    ``builtin``: the names of built-in plugins (the others' options say which plugin adds
    them in ``--help``).
    """
    taken = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    taken |= set(command.get_help_option_names(click.Context(command)))
    mine = verb_options(found, verb, taken)
    if not mine:
        return command
    params: list[PluginOption] = []
    for reg in mine:
        spec = reg.spec
        text = spec.help if reg.plugin in builtin else f"{spec.help} [plugin {reg.plugin}]"
        if spec.default is not None:
            text += f"  [default: {spec.default}]"
        # The parameter's own name is not the dest: a dest may be a core parameter's name.
        name = f"plugin_{len(params)}"
        if spec.flag:
            option = PluginOption([spec.name, name], spec, is_flag=True, help=text)
        else:
            option = PluginOption(
                [spec.name, name],
                spec,
                type=_Converted(reg),
                metavar=spec.metavar,
                default=None,  # the spec's, unconverted: PluginOptions.value() gives it
                help=text,
            )
        params.append(option)
    new = copy.copy(command)
    # Before -q and --no-pager (options every verb shares), after the verb's own.
    at = next((i for i, p in enumerate(command.params) if p.name == "quiet"), len(command.params))
    new.params = [*command.params[:at], *params, *command.params[at:]]
    callback = command.callback
    assert callback is not None

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        given = given_plugin_options(ctx, kwargs)
        ctx.meta[_PLUGIN_VALUES] = PluginOptions({spec.dest: value for spec, value in given})
        return callback(*args, **kwargs)

    new.callback = run
    return new


def collect_commands(registry: Registry, taken: Collection[str]) -> dict[str, click.Command]:
    """The plugins' commands (``portable_register_commands``) by name; a name in ``taken``
    (portable's verbs) or added by two plugins is an error naming them."""
    commands: dict[str, click.Command] = {}
    owners: dict[str, str] = {}
    for rec, group in registry.hooks.register_commands(lambda: click.Group("portable")):
        who = rec.describe()
        for name, command in group.commands.items():
            if name in taken:
                raise PluginConflict(f"command {name!r} of {who} is one of portable's own verbs")
            if name in owners:
                raise PluginConflict(
                    f"command {name!r} is added by two plugins: {owners[name]} and {who}"
                )
            owners[name] = who
            commands[name] = command
    return commands


def for_verb(command: click.Command, verb: str, registry: Registry) -> click.Command:
    """``command`` (the verb's own) with the options the plugins add to ``verb``."""
    builtin = {p.name for p in registry.plugins if p.builtin}
    return with_plugin_options(command, verb, registry.hooks.cli_options(), builtin)
