"""The ``portable`` command line: a thin layer over the library API.

:func:`main` is the console script. The click root group (:mod:`portable.cli.group`) parses
global options into an :class:`App` (``ctx.obj``); each verb lives in its own module, imported
only when that verb runs, so ``portable --help`` pays for none of them. ``list``,
``is-attached``, ``attach``, ``reattach``, ``detach`` and ``inspect`` with plain arguments are
answered by :mod:`portable.cli.fast` without importing click at all: click's import alone
costs more than portablectl's whole run of ``list``, and a third of an ``attach``.
Every :class:`~portable.errors.PortableError` becomes one line ``portable: error: ...`` and a
non-zero exit; tracebacks only with ``--debug`` (or ``PORTABLE_SERVICES_DEBUG=1``).

This module is the boundary: it imports no click (``cli``, ``build_cli`` and ``PortableGroup``
are loaded from :mod:`portable.cli.group` when first used), and what only some runs need
(click, the plugin registry, the service manager's D-Bus client, the remote machinery) is
imported where it is used, each saying why.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from portable.errors import PortableError, warn

if TYPE_CHECKING:
    from portable.engine.state import ManagerView
    from portable.plugin.registry import Registry
    from portable.systemd.host import Host
    from portable.systemd.manager import Manager

    class Changing(TypedDict):
        """What the engine's attach, reattach and detach take to change the host."""

        host: Host
        registry: Registry
        manager: Manager | None


__all__ = ["App", "Changing", "build_cli", "main"]

# verb -> (module, function): imported on demand (click's LazyGroup recipe).
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("portable.cli.listing", "list_command"),
    "inspect": ("portable.cli.commands", "inspect_command"),
    "attach": ("portable.cli.commands", "attach_command"),
    "detach": ("portable.cli.commands", "detach_command"),
    "reattach": ("portable.cli.commands", "reattach_command"),
    "is-attached": ("portable.cli.is_attached", "is_attached_command"),
    "read-only": ("portable.cli.read_only", "read_only_command"),
    "remove": ("portable.cli.remove", "remove_command"),
    "set-limit": ("portable.cli.set_limit", "set_limit_command"),
    "plugins": ("portable.cli.plugins", "plugins_command"),
    "profiles": ("portable.cli.profiles", "profiles_command"),
    "profile": ("portable.cli.profiles", "profile_group"),
    "security": ("portable.cli.security", "security_command"),
    "verify": ("portable.cli.verify", "verify_command"),
    "completion": ("portable.cli.completion", "completion_command"),
}

# One line per verb for the group's help, so listing verbs imports nothing.
SUMMARIES = {
    "list": "List images in the search path (the default verb).",
    "inspect": "Show an image's os-release and the unit files it offers.",
    "attach": "Attach an image's units to the host, sandboxed by a profile.",
    "detach": "Remove an attached image's units from the host.",
    "reattach": "Replace an attached image by another version in one step.",
    "is-attached": "Show whether an image is attached, enabled or running.",
    "read-only": "Mark an image read-only, or writable again with 'no'.",
    "remove": "Remove images that are not attached (trees, raw files, links).",
    "set-limit": "Set an image's size limit (btrfs subvolumes only).",
    "plugins": "List plugins: what they provide, their version and status.",
    "profiles": "List security profiles and where each comes from.",
    "profile": "Show a profile's settings, or export it as TOML.",
    "security": "Show the exposure score of an image's services or a unit (0.0-10.0).",
    "verify": "Check running services against the sandbox their profile promises.",
    "completion": "Print the shell completion script for bash, zsh or fish.",
}

ENV_DEBUG = "PORTABLE_SERVICES_DEBUG"
ENV_COMPLETE = "_PORTABLE_COMPLETE"  # click's shell completion asks through it

# portablectl takes every option anywhere on the line (getopt permutes them); here the root
# group's options go before the verb and the verbs' after it. :func:`normalize_args` moves
# them to their side, so "portable -q list" and "portable list --root DIR" work as portablectl's.
GROUP_VALUE = frozenset({"--root", "--disable-plugin", "-H", "--host", "-M", "--machine"})
GROUP_FLAGS = frozenset({"--debug", "--no-plugins", "--version"})
# portablectl's options (its --help, systemd 252 to 257), which are the verbs' here.
VERB_VALUE = frozenset({"-p", "--profile", "--copy", "--extension"})
VERB_FLAGS = frozenset(
    {
        "--no-pager",
        "--no-legend",
        "--no-ask-password",
        "-q",
        "--quiet",
        "--runtime",
        "--no-reload",
        "--cat",
        "--enable",
        "--now",
        "--no-block",
        "--force",
    }
)
OUR_VERB_FLAGS = frozenset({"--json"})  # ours, movable too, but never dropped (see group.py)


def classify_option(arg: str) -> tuple[str, str, bool] | None:
    """``(side, name, takes_next)`` of a known option spelling (``side``: ``group`` or
    ``verb``; ``takes_next``: its value is the next argument); ``None`` for anything else."""
    if arg.startswith("--") and "=" in arg:
        name = arg.split("=", 1)[0]
        if name in GROUP_VALUE:
            return ("group", name, False)
        return ("verb", name, False) if name in VERB_VALUE else None
    if arg in GROUP_VALUE:
        return ("group", arg, True)
    if arg in GROUP_FLAGS:
        return ("group", arg, False)
    if arg in VERB_VALUE:
        return ("verb", arg, True)
    if arg in VERB_FLAGS or arg in OUR_VERB_FLAGS:
        return ("verb", arg, False)
    if len(arg) > 2 and arg[:2] in ("-H", "-M"):  # -Hhost
        return ("group", arg[:2], False)
    if len(arg) > 2 and arg[:2] == "-p":  # -pstrict
        return ("verb", "-p", False)
    return None


def option_chunks(
    args: Sequence[str],
) -> Iterator[tuple[list[str], tuple[str, str, bool] | None]]:
    """``args`` (after the verb) in pieces: an option with its value, if it takes the next
    argument, and :func:`classify_option`'s answer for it; everything from ``--`` on is one
    last piece (``None``: nothing after it is an option)."""
    j = 0
    while j < len(args):
        if args[j] == "--":
            yield list(args[j:]), None
            return
        known = classify_option(args[j])
        take = 2 if known is not None and known[2] else 1
        yield list(args[j : j + take]), known
        j += take


def drop_ignored(accepted: Collection[str], rest: Sequence[str]) -> list[str]:
    """``rest`` (what follows the verb) without the portablectl options the verb has no use
    for (``accepted``: its options' spellings), as portablectl ignores them (``portable list
    -q``, ``portable is-attached --no-pager IMAGE``); our own options and unknown ones stay,
    for click to judge."""
    kept: list[str] = []
    for chunk, known in option_chunks(rest):
        if (
            known is None
            or known[0] != "verb"
            or known[1] in accepted
            or known[1] in OUR_VERB_FLAGS
        ):
            kept.extend(chunk)
    return kept


def normalize_args(args: Sequence[str]) -> tuple[list[str], int | None]:
    """``args`` with the root group's options before the verb and portablectl's verb options
    after it, and the verb's index (``None``: no verb found, or something unknown before it,
    and then ``args`` unchanged, for click to judge).

    With verb options and no verb, the verb is ``list`` (portablectl's default).
    """
    group: list[str] = []
    moved: list[str] = []
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "--"):
        known = classify_option(args[i])
        if known is None:
            if args[i] not in ("-h", "--help"):
                return list(args), None  # unknown: click says so
            group.append(args[i])
            i += 1
            continue
        side, _, takes_next = known
        take = 2 if takes_next else 1
        if i + take > len(args):
            return list(args), None
        (group if side == "group" else moved).extend(args[i : i + take])
        i += take
    if i < len(args) and args[i] in ("-", "--"):
        return list(args), None
    if i == len(args):
        if not moved:
            return group, None
        verb, rest = "list", []
    else:
        verb, rest = args[i], list(args[i + 1 :])
    kept: list[str] = []
    for chunk, known in option_chunks(rest):
        # a group option, with its value if it takes one: before the verb
        is_group = known is not None and known[0] == "group" and len(chunk) == 1 + known[2]
        (group if is_group else kept).extend(chunk)
    return [*group, verb, *moved, *kept], len(group)


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
        from portable.systemd.host import Host  # here: --help has no host (nor dataclasses)

        return Host(self.root)

    @cached_property
    def registry(self) -> Registry:
        registry = registry_for(
            self.root, no_plugins=self.no_plugins, disabled=self.disabled_plugins
        )
        registry.hooks.debug = self.debug  # a format's detect() that raised: a warning
        return registry

    def manager(self, *, required: bool) -> Manager | None:
        """The service manager (PID 1) over D-Bus; ``None`` with ``--root``.

        When it can't be reached, a ``required`` caller fails with one line; others get a
        warning and work from the files alone.
        """
        if not self.host.is_real:
            return None
        from portable.systemd.manager import Manager  # here: jeepney only for a real host

        try:
            return Manager.connect()
        except PortableError as exc:
            if required:
                raise PortableError(
                    f"{exc} (use --root DIR to work on the files of a root directory only)"
                ) from None
            warn(f"{exc}; showing what the files say")
            return None

    def manager_view(self) -> ManagerView:
        """The manager for answering "enabled? running?", connected on first question.

        ``list`` and ``is-attached`` only ask about attached units: with none attached they
        never load jeepney nor connect (and never warn that the manager can't be reached).
        """
        return _LazyManager(self)

    def require_root(self, verb: str) -> None:
        """Changing the real host needs root: say so before anything is touched."""
        if self.host.is_real and os.geteuid() != 0:
            raise PortableError(
                f"'portable {verb}' changes the host's systemd configuration and must run as "
                "root (or use --root DIR on a directory you own)"
            )

    def for_change(self, verb: str) -> Changing:
        """For a verb that changes the host: root is checked before anything is touched, the
        service manager connected (``None`` with ``--root``)."""
        self.require_root(verb)
        return {
            "host": self.host,
            "registry": self.registry,
            "manager": self.manager(required=True),
        }

    def info(self, message: str, *, quiet: bool = False) -> None:
        """Informational lines go to stderr, as portablectl's do."""
        if not quiet:
            echo_err(message)


def registry_for(root: Path, *, no_plugins: bool, disabled: Sequence[str]) -> Registry:
    """The registry for the root group's options (built once per process: the verb's command
    line, built with the plugins' options, and the verb itself get the same one)."""
    # here: pluggy and the plugins load only for verbs that use them, not for --help
    from portable.plugin.registry import get_registry

    return get_registry(root=root, load_entrypoints=not no_plugins, disabled=disabled, cache=True)


class _LazyManager:
    """A :class:`~portable.engine.state.ManagerView` that connects on its first question; without a
    manager (``--root``, or unreachable: warned once) nothing is enabled or running."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._manager: Manager | None = None
        self._connected = False

    def _get(self) -> Manager | None:
        if not self._connected:
            self._connected = True
            self._manager = self._app.manager(required=False)
        return self._manager

    def unit_file_state(self, unit: str) -> str:
        manager = self._get()
        return manager.unit_file_state(unit) if manager is not None else ""

    def is_active(self, unit: str) -> bool:
        manager = self._get()
        return manager.is_active(unit) if manager is not None else False


def echo_err(line: str) -> None:
    """One line to stderr, flushed (as ``click.echo(..., err=True)``, without click)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def echo_out(line: str) -> None:
    """One line to stdout, flushed (as ``click.echo``, without click): lines to stderr that
    follow come after it, also on one terminal or pipe."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def aborted() -> int:
    """A verb interrupted (Ctrl-C): one line and status 1, as through click (which turns
    KeyboardInterrupt into its Abort, see :func:`portable.cli.group.run_click`)."""
    echo_err("portable: error: aborted")
    return 1


def env_debug() -> bool:
    """``PORTABLE_SERVICES_DEBUG`` set to a true value."""
    return os.environ.get(ENV_DEBUG, "").strip().lower() in ("1", "yes", "true", "on")


def __getattr__(name: str) -> Any:
    # The click half, on first use (tests and plugins import cli/build_cli from here).
    if name in ("cli", "build_cli", "PortableGroup"):
        from portable.cli import group  # here: click only when asked for

        return getattr(group, name)
    if name == "Changing":
        # Built when first named: a TypedDict compiles each of its (string) annotations, ~0.3 ms
        # of every attach and detach, which only annotate with it. The same class as before:
        # its hints are strings naming what this module imports for type checking only.
        class Changing(TypedDict):
            """What the engine's attach, reattach and detach take to change the host."""

            host: Host
            registry: Registry
            manager: Manager | None

        Changing.__module__, Changing.__qualname__ = __name__, "Changing"
        globals()["Changing"] = Changing
        return Changing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_GC_THRESHOLD = 50_000


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map errors to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        _no_missing_streams()
        # The default threshold (700 allocations) is made for long-running programs: a
        # command's imports alone would run ~40 young collections over objects that all live
        # to the end (~2-3 ms of a 60 ms attach). Rarer collections still bound the memory of
        # a long batch.
        gc.set_threshold(_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        status = guarded(lambda: _dispatch(args), debug="--debug" in args or env_debug())
        if argv is None:
            status = _flush_output(status)
    finally:
        if argv is None:
            # The program itself (console script, python -m portable) is about to exit: freeze
            # everything allocated, so the interpreter's garbage collections at shutdown have
            # nothing to traverse (~10 ms of a ~90 ms run; nothing is skipped: files are
            # flushed and atexit handlers run as usual). In-process callers (tests) pass argv
            # and keep their collector as it was.
            gc.freeze()
    sys.exit(status)


def _no_missing_streams() -> None:
    # Started with stdout or stderr closed (``portable list >&-``): what would go there goes
    # nowhere, as with click, instead of failing on None.
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def _flush_output(status: int) -> int:
    """Flush stdout now, so a full or broken output is one line and a status, not Python's
    "Exception ignored" at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = status or 1
    except OSError as exc:
        echo_err(f"portable: error: cannot write the output: {exc.strerror or exc}")
        status = status or 1
    else:
        return status
    # Nothing more can reach that output: drop what is buffered, so exit doesn't retry.
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), sys.stdout.fileno())
    return status


def _dispatch(args: list[str]) -> int:
    # Each half is imported only when it runs: click (~25 ms) not for the fast path, the
    # remote machinery only with -H/-M.
    if os.environ.get(ENV_COMPLETE):
        # The shell asks for completions: click's business (the fast path would list images).
        from portable.cli.group import run_click

        return run_click(args)
    if any(a.startswith(("-H", "-M", "--host", "--machine")) for a in args):
        # Another system's (portable.remote): nothing of this host's is read.
        from portable.remote.cli import remote_target, run_remote

        if remote_target(args) is not None:
            return run_remote(args)
    from portable.cli.fast import run_fast

    status = run_fast(args)
    if status is None:
        from portable.cli.group import run_click

        status = run_click(args)
    return status


def guarded(run: Callable[[], int], *, debug: bool) -> int:
    """``run()``'s exit status, or the status of the one-line error it ended with.

    (Click's own exceptions are mapped in :func:`portable.cli.group.run_click`.)
    """
    try:
        return run()
    except PortableError as exc:
        if debug:
            import traceback  # here: only with --debug

            traceback.print_exc()
        echo_err(f"portable: error: {exc.message}")
        return exc.exit_code
    except PermissionError as exc:
        echo_err(f"portable: error: {exc.strerror}: {exc.filename} (are you root?)")
        return 1
    except KeyboardInterrupt:
        echo_err("portable: error: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:
        # The environment (a full disk, an unwritable output, a file that vanished), not a bug
        # of ours: one line naming it.
        if debug:
            import traceback  # here: only with --debug

            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        echo_err(f"portable: error: {exc.strerror or exc}{where}")
        return 1
    except Exception as exc:
        if debug:
            raise
        echo_err(
            f"portable: error: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for a traceback; with third-party plugins, try --no-plugins)"
        )
        return 70
