"""The ``portable`` command line: a thin layer over the library API.

The root group parses global options into an :class:`App` (``ctx.obj``); each verb lives in its
own module, imported only when that verb runs, so ``portable --help`` pays for none of them.
Every :class:`~portable.errors.PortableError` becomes one line ``portable: error: ...`` and a
non-zero exit; tracebacks only with ``--debug`` (or ``PORTABLE_SERVICES_DEBUG=1``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import click

from portable import __version__

if TYPE_CHECKING:
    from portable.host import Host
    from portable.manager import Manager
    from portable.registry import Registry

__all__ = ["App", "build_cli", "main"]

# verb -> (module, function): imported on demand (click's LazyGroup recipe).
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("portable.cli.listing", "list_command"),
    "inspect": ("portable.cli.inspect", "inspect_command"),
    "attach": ("portable.cli.attach", "attach_command"),
    "detach": ("portable.cli.detach", "detach_command"),
    "reattach": ("portable.cli.attach", "reattach_command"),
    "is-attached": ("portable.cli.is_attached", "is_attached_command"),
    "read-only": ("portable.cli.unavailable", "read_only_command"),
    "remove": ("portable.cli.unavailable", "remove_command"),
    "set-limit": ("portable.cli.unavailable", "set_limit_command"),
    "plugins": ("portable.cli.plugins", "plugins_command"),
    "profiles": ("portable.cli.profiles", "profiles_command"),
    "profile": ("portable.cli.profiles", "profile_group"),
    "security": ("portable.cli.security", "security_command"),
    "verify": ("portable.cli.verify", "verify_command"),
}

# One line per verb for the group's help, so listing verbs imports nothing.
SUMMARIES = {
    "list": "List images in the search path (the default verb).",
    "inspect": "Show an image's os-release and the unit files it offers.",
    "attach": "Attach an image's units to the host, sandboxed by a profile.",
    "detach": "Remove an attached image's units from the host.",
    "reattach": "Replace an attached image by another version in one step.",
    "is-attached": "Show whether an image is attached, enabled or running.",
    "read-only": "Mark an image read-only or writable (not available yet).",
    "remove": "Remove images (not available yet).",
    "set-limit": "Set an image size limit (not available yet).",
    "plugins": "List plugins: what they provide, their version and status.",
    "profiles": "List security profiles and where each comes from.",
    "profile": "Show a profile's settings, or export it as TOML.",
    "security": "Show the exposure score of an image's services or a unit (0.0-10.0).",
    "verify": "Check running services against the sandbox their profile promises.",
}

ENV_DEBUG = "PORTABLE_SERVICES_DEBUG"


class App:
    """State shared by every verb: where the host is and how to reach the plugins.

    (A plain class, not a dataclass: ``--help`` need not import ``dataclasses``.)
    """

    def __init__(
        self,
        root: Path = Path("/"),
        debug: bool = False,
        no_plugins: bool = False,
        disabled_plugins: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.debug = debug
        self.no_plugins = no_plugins
        self.disabled_plugins = disabled_plugins
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return (
            f"App(root={self.root!r}, debug={self.debug!r}, no_plugins={self.no_plugins!r}, "
            f"disabled_plugins={self.disabled_plugins!r})"
        )

    @cached_property
    def host(self) -> Host:
        from portable.host import Host

        return Host(self.root)

    @cached_property
    def registry(self) -> Registry:
        from portable.registry import get_registry

        return get_registry(
            root=self.root,
            load_entrypoints=not self.no_plugins,
            disabled=self.disabled_plugins,
            cache=True,
        )

    def manager(self, *, required: bool) -> Manager | None:
        """The service manager (PID 1) over D-Bus; ``None`` with ``--root``.

        When it can't be reached, a ``required`` caller fails with one line; others get a
        warning and work from the files alone.
        """
        if not self.host.is_real:
            return None
        from portable.errors import PortableError
        from portable.manager import Manager

        try:
            return Manager.connect()
        except PortableError as exc:
            if required:
                raise PortableError(
                    f"{exc} (use --root DIR to work on the files of a root directory only)"
                ) from None
            self.warn(f"{exc}; showing what the files say")
            return None

    def require_root(self, verb: str) -> None:
        """Changing the real host needs root: say so before anything is touched."""
        if self.host.is_real and os.geteuid() != 0:
            from portable.errors import PortableError

            raise PortableError(
                f"'portable {verb}' changes the host's systemd configuration and must run as "
                "root (or use --root DIR on a directory you own)"
            )

    def warn(self, message: str) -> None:
        click.echo(f"portable: warning: {message}", err=True)

    def info(self, message: str, *, quiet: bool = False) -> None:
        """Informational lines go to stderr, as portablectl's do."""
        if not quiet:
            click.echo(message, err=True)


class PortableGroup(click.Group):
    """Lazy verbs, and ``list`` when no verb is given (as portablectl)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "help":
            return _help_command
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUMMARIES[name]) for name in COMMANDS])


@click.command("help", help="Show this help.")
@click.pass_context
def _help_command(ctx: click.Context) -> None:
    assert ctx.parent is not None
    click.echo(ctx.parent.get_help())


def _print_version(ctx: click.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"portable-services {__version__}")
    from portable.registry import get_registry

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
    help="Operate on an alternate root directory (files only; no service manager).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and plugin details on errors.")
@click.option("--no-plugins", is_flag=True, help="Load built-in plugins only.")
@click.option(
    "--disable-plugin",
    "disabled",
    multiple=True,
    metavar="NAME",
    help="Do not load this third-party plugin (repeatable).",
)
@click.option("-H", "--host", "remote_host", metavar="[USER@]HOST", hidden=True)
@click.option("-M", "--machine", metavar="CONTAINER", hidden=True)
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
    from portable.errors import PortableError

    if remote_host or machine:
        raise PortableError("-H/--host and -M/--machine are not supported; run portable there")
    if root is not None:
        if not root.is_dir():
            raise PortableError(f"--root {root}: not a directory")
        root = root.resolve()
    ctx.obj = App(
        root=root or Path("/"),
        debug=debug or _env_debug(),
        no_plugins=no_plugins,
        disabled_plugins=disabled,
    )
    if ctx.invoked_subcommand is None:
        ctx.invoke(PortableGroup.get_command(cli, ctx, "list"))  # type: ignore[arg-type]


def _env_debug() -> bool:
    return os.environ.get(ENV_DEBUG, "").strip().lower() in ("1", "yes", "true", "on")


def build_cli() -> click.Group:
    """The root command (a function, so tests and plugins can build a fresh one)."""
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to one line and an exit code."""
    try:
        _main(argv)
    finally:
        if argv is None:
            # The program itself (console script, python -m portable) is about to exit: freeze
            # everything allocated, so the interpreter's garbage collections at shutdown have
            # nothing to traverse (~10 ms of a ~90 ms run; nothing is skipped: files are
            # flushed and atexit handlers run as usual). In-process callers (tests) pass argv
            # and keep their collector as it was.
            import gc

            gc.freeze()


def _main(argv: Sequence[str] | None) -> None:
    from portable.errors import PortableError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or _env_debug()
    try:
        rv = cli.main(args=args, prog_name="portable", standalone_mode=False)
    except PortableError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"portable: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("portable: error: aborted", err=True)
        sys.exit(1)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"portable: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"portable: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except PermissionError as exc:
        click.echo(f"portable: error: {exc.strerror}: {exc.filename} (are you root?)", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("portable: error: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"portable: error: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for a traceback; with third-party plugins, try --no-plugins)",
            err=True,
        )
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)
