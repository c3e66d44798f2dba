"""The click half of the command line: the root group, its global options and lazy verbs.

:func:`portable.cli.main` comes here for everything :mod:`portable.cli.fast` does not answer.
Part of the boundary: a verb's module is imported when that verb runs (or shows its help), the
plugin machinery when plugins can add to what is shown, each where it is used.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from portable import __version__
from portable.cli import (
    COMMANDS,
    ENV_COMPLETE,
    SUMMARIES,
    App,
    aborted,
    drop_ignored,
    env_debug,
    normalize_args,
    registry_for,
)
from portable.errors import PortableError
from portable.plugin import entrypoints

if TYPE_CHECKING:
    from portable.plugin.registry import Registry

__all__ = ["PortableGroup", "build_cli", "cli", "fit_options", "run_click", "verb_command"]

# The verbs plugins can add options to (portable.plugin.types.CLI_OPTION_VERBS, not imported
# here: --help and the other verbs don't load the plugin types).
PLUGIN_OPTION_VERBS = frozenset({"attach", "reattach", "detach"})
ENTRY_POINT_GROUP = "portable"  # portable.plugin.registry's (not imported here: pluggy)


def core_command(name: str) -> click.Command | None:
    """One of portable's own verbs, as its module defines it (imported on first use)."""
    target = COMMANDS.get(name)
    if target is None:
        return None
    module, attr = target
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


def verb_command(name: str, registry: Callable[[], Registry]) -> click.Command | None:
    """Portable's verb ``name`` as the command line runs it: for ``attach``, ``reattach`` and
    ``detach``, with the options plugins add (``registry()`` is called only for those)."""
    command = core_command(name)
    if command is not None and name in PLUGIN_OPTION_VERBS:
        from portable.cli.plugin_cli import for_verb  # here: the plugin types, pluggy

        command = for_verb(command, name, registry())
    return command


def _registry(ctx: click.Context) -> Registry:
    """The registry for the root group's options (those parsed so far: --help is eager)."""
    params = ctx.find_root().params
    root = params.get("root")
    return registry_for(
        root.resolve() if root is not None else Path("/"),
        no_plugins=bool(params.get("no_plugins")),
        disabled=params.get("disabled") or (),
    )


def _plugin_commands(ctx: click.Context) -> dict[str, click.Command]:
    """The commands plugins add (portable_register_commands), by name."""
    # Built-in plugins add no commands: without third-party plugins installed there is no
    # registry to build (a third of portable --help's time). In-process (tests, a program),
    # the registry module is loaded and plugins registered there count.
    if "portable.plugin.registry" not in sys.modules and not entrypoints.find(
        ENTRY_POINT_GROUP, cache=True
    ):
        return {}
    from portable.cli.plugin_cli import collect_commands  # here: the plugin types, pluggy

    return collect_commands(_registry(ctx), taken={*COMMANDS, "help"})


class PortableGroup(click.Group):
    """Lazy verbs, and ``list`` when no verb is given (as portablectl). Plugins add options to
    some verbs and commands of their own (:mod:`portable.cli.plugin_cli`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *_plugin_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "help":
            return _help_command
        command = verb_command(cmd_name, lambda: _registry(ctx))
        if command is None:
            command = _plugin_commands(ctx).get(cmd_name)
            if command is None:
                return None
        if os.environ.get(ENV_COMPLETE):
            from portable.cli.completion import install  # here: only when completing

            install(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUMMARIES[name]) for name in COMMANDS])
        plugins = _plugin_commands(ctx)
        if plugins:
            with formatter.section("Commands added by plugins"):
                formatter.write_dl(
                    [(name, command.get_short_help_str()) for name, command in plugins.items()]
                )


@click.command("help", help="Show this help.")
@click.pass_context
def _help_command(ctx: click.Context) -> None:
    assert ctx.parent is not None
    click.echo(ctx.parent.get_help())


def _print_version(ctx: click.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    # here: only --version asks the running manager (jeepney) and lists the plugins (pluggy)
    from portable.plugin.registry import get_registry
    from portable.systemd.host import Host
    from portable.systemd.manager import detect_running

    click.echo(f"portable-services {__version__}")
    followed = detect_running(Host(ctx.params.get("root") or Path("/")))
    click.echo(f"follows {followed.describe()}")

    for rec in get_registry(cache=True).plugins:
        if not rec.builtin:
            where = " ".join(x for x in (rec.distribution, rec.version) if x)
            status = "" if rec.status == "active" else f" [{rec.status}]"
            click.echo(f"  plugin {rec.name}{f' ({where})' if where else ''}{status}")
    ctx.exit()


@click.group(
    cls=PortableGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "Environment: PORTABLE_SERVICES_NO_PLUGINS=1 (like --no-plugins), "
        "PORTABLE_SERVICES_DISABLE_PLUGINS=a,b (like --disable-plugin), "
        "PORTABLE_SERVICES_STRICT_PLUGINS=1 (a plugin that fails to load is fatal), "
        "PORTABLE_SERVICES_DEBUG=1 (like --debug)."
    ),
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    is_eager=True,  # before --version, which says which systemd the root has
    help="Operate on an alternate root directory (files only; no service manager).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and plugin details on errors.")
# eager, as --help: its list of the plugins' commands follows them
@click.option("--no-plugins", is_flag=True, is_eager=True, help="Load built-in plugins only.")
@click.option(
    "--disable-plugin",
    "disabled",
    multiple=True,
    is_eager=True,
    metavar="NAME",
    help="Do not load this third-party plugin (repeatable).",
)
@click.option(
    "-H",
    "--host",
    "remote_host",
    metavar="[USER@]HOST",
    help="Operate on a remote host over ssh; an image given as a local path is shipped there.",
)
@click.option(
    "-M", "--machine", metavar="CONTAINER", help="Operate on a local container (as root)."
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, param, value: _print_version(ctx, value),
    help="Show the version, and the third-party plugins' versions, and exit.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    root: Path | None,
    debug: bool,
    no_plugins: bool,
    disabled: tuple[str, ...],
    remote_host: str | None,
    machine: str | None,
) -> None:
    """Attach, detach and inspect systemd portable service images.

    IMAGE is an image name, looked up in /etc/portables, /run/portables, /var/lib/portables,
    /usr/local/lib/portables and /usr/lib/portables, or a path to an image.
    """
    if remote_host or machine:
        raise PortableError("-H/--host and -M/--machine are not supported; run portable there")
    if root is not None:
        if not root.is_dir():
            raise PortableError(f"--root {root}: not a directory")
        root = root.resolve()
    ctx.obj = App(
        root=root or Path("/"),
        debug=debug or env_debug(),
        no_plugins=no_plugins,
        disabled_plugins=disabled,
    )
    if ctx.invoked_subcommand is None:
        ctx.invoke(PortableGroup.get_command(cli, ctx, "list"))  # type: ignore[arg-type]


def build_cli() -> click.Group:
    """The root command (a function, so tests and plugins can build a fresh one)."""
    return cli


def run_click(args: list[str]) -> int:
    """Parse ``args`` with click and run the verb; click's errors become one line and a status.

    Other exceptions propagate to :func:`portable.cli.guarded`.
    """
    if not os.environ.get(ENV_COMPLETE):
        args = _fit_to_verb(*normalize_args(args))
    try:
        rv = cli.main(args=args, prog_name="portable", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return aborted()
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"portable: error: {exc.format_message()}{hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"portable: error: {exc.format_message()}", err=True)
        return exc.exit_code
    return rv if isinstance(rv, int) else 0


def _fit_to_verb(args: list[str], verb_at: int | None) -> list[str]:
    """Drop the portablectl options the verb has no use for, as portablectl ignores them
    (``portable list -q``, ``portable is-attached --no-pager IMAGE``); our own options and
    unknown ones stay, for click to judge."""
    if verb_at is None or args[verb_at] not in COMMANDS:
        return args
    command = core_command(args[verb_at])  # plugins' options are never portablectl's
    if command is None or isinstance(command, click.Group):
        return args
    return [*args[: verb_at + 1], *fit_options(command, args[verb_at + 1 :])]


def fit_options(command: click.Command, rest: Sequence[str]) -> list[str]:
    """``rest`` (what follows the verb) without the portablectl options ``command`` has no
    use for; our own options and unknown ones stay, for click to judge."""
    accepted = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return drop_ignored(accepted, rest)
