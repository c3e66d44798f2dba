"""``attach``, ``reattach``, ``detach`` and ``inspect`` declared once: their parameters, help and
the click-free function that runs each.

Both halves of the command line read this table: :mod:`portable.cli.commands` builds the click
commands from it, and :mod:`portable.cli.parse` reads the plain spellings without click (the
fast path, :mod:`portable.cli.fast`), so the two can't drift apart. Each verb's function (its
``run``) takes the :class:`~portable.cli.App` and one keyword argument per parameter
(``dest``), plus ``plugin_options`` when plugins can add options to it, and returns the exit
status.

Click-free, and so is everything it imports: the fast path must not load click.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["VERBS", "Param", "Verb", "body"]


class Param:
    """A verb's argument (no ``names``) or option, as click declares it.

    (Plain classes, not NamedTuples or dataclasses: building those classes costs more than
    the fast path's whole parse.)
    """

    __slots__ = (
        "default",
        "dest",
        "flag",
        "help",
        "hidden",
        "metavar",
        "multiple",
        "names",
        "show_default",
    )

    def __init__(
        self,
        dest: str,
        names: tuple[str, ...] = (),
        *,
        flag: bool = False,
        multiple: bool = False,
        default: str | None = None,
        metavar: str | None = None,
        help: str | None = None,
        show_default: bool | None = None,
        hidden: bool = False,
    ) -> None:
        self.dest = dest
        self.names = names
        self.flag = flag
        # an option given several times, or an argument that takes all the rest (nargs=-1)
        self.multiple = multiple
        self.default = default
        self.metavar = metavar
        self.help = help
        self.show_default = show_default
        self.hidden = hidden


class Verb:
    __slots__ = ("help", "name", "option_names", "params", "plugin_options", "run")

    def __init__(
        self,
        name: str,
        help: str,
        params: tuple[Param, ...],
        run: str,
        *,
        plugin_options: bool = False,
    ) -> None:
        self.name = name
        self.help = help
        self.params = params
        self.run = run  # "module:function", imported only when the verb runs
        self.plugin_options = plugin_options  # plugins can add options (portable_cli_options)
        # every spelling of its own options (-p, --profile, ...)
        self.option_names = frozenset(n for p in params for n in p.names)


def body(verb: Verb) -> Callable[..., int]:
    """The function that runs ``verb`` (its module imported now)."""
    module, name = verb.run.split(":")
    run: Callable[..., int] = getattr(importlib.import_module(module), name)
    return run


def _flag(dest: str, *names: str, help: str | None = None, hidden: bool = False) -> Param:
    return Param(dest, names, flag=True, help=help, hidden=hidden)


IMAGE = Param("image")
PREFIXES = Param("prefixes", multiple=True)
QUIET = _flag("quiet", "-q", "--quiet", help="Suppress informational messages.")
# Accepted with every verb, as portablectl; inspect pages (portable.cli.pager).
NO_PAGER = _flag("no_pager", "--no-pager", hidden=True)
# portablectl reloads always, we when needed (engine.reload).
RELOAD = _flag(
    "force_reload",
    "--reload",
    help="Reload the service manager even when no unit needs it (as portablectl does).",
)
JSON = _flag("as_json", "--json", help="Print JSON instead of text.")
COPY_HELP = "How to place unit files and profiles: auto (default), copy, symlink or mixed."


def _attach_params(*, reattach: bool) -> tuple[Param, ...]:
    # reattach: --profile and --copy default to None, "not given", so that what the attached
    # version had is kept (portable.engine.reattach.kept_options).
    return (
        IMAGE,
        PREFIXES,
        Param(
            "profile",
            ("-p", "--profile"),
            default=None if reattach else "default",
            show_default=None if reattach else True,
            help="Security profile to apply ('help' lists them)."
            + (" Default: the attached version's." if reattach else ""),
        ),
        Param(
            "copy_mode",
            ("--copy",),
            default=None if reattach else "auto",
            metavar="MODE",
            help=COPY_HELP.replace("auto (default)", "auto (default: the attached version's)")
            if reattach
            else COPY_HELP,
        ),
        _flag(
            "runtime", "--runtime", help="Attach until the next reboot only (/run instead of /etc)."
        ),
        _flag("now", "--now", help="Start the units after attaching."),
        _flag("enable", "--enable", help="Enable the units after attaching."),
        _flag("no_block", "--no-block", help="Do not wait for start jobs to finish."),
        _flag(
            "no_reload",
            "--no-reload",
            help="Do not reload the service manager (by default it is reloaded when needed: "
            "when a unit written is loaded in it).",
        ),
        RELOAD,
        _flag(
            "force",
            "--force",
            help="Replace existing unit files and skip the running-unit check.",
        ),
        Param(
            "allow_settings",
            ("--allow-setting",),
            multiple=True,
            metavar="NAME[,NAME...]",
            help="Attach even though the image's unit files use these settings, which the "
            "profile's sandbox floor forbids (repeatable; see 'portable security').",
        ),
        Param(
            "extensions",
            ("--extension",),
            multiple=True,
            metavar="PATH",
            help="Extension image to layer on the image (repeatable, in order).",
        ),
        _flag(
            "strict_image",
            "--strict-image",
            help="Refuse an image systemd can't run a service from (a mount point, a bind "
            "target of the profile or an ExecStart= executable missing) instead of warning.",
        ),
        QUIET,
        NO_PAGER,
    )


ATTACH = Verb(
    "attach",
    """Attach IMAGE's unit files matching PREFIX... to the host.

    Unit files are copied (or linked) into /etc/systemd/system.attached/ (/run/... with
    --runtime), each with a drop-in pointing it at the image and the security profile's
    drop-in. Without PREFIX, the prefix comes from the image name (foo_1.2 -> foo).

    Several images given as paths (portable attach /srv/a /srv/b ...) are attached all or
    nothing, with a single reload of the service manager. It is reloaded only when a unit
    written is loaded in it (--reload: always); a unit it has not loaded is read from disk
    when it is first started.
    """,
    _attach_params(reattach=False),
    "portable.cli.attach:attach",
    plugin_options=True,
)

REATTACH = Verb(
    "reattach",
    """Replace the attached version of IMAGE by IMAGE, in one step.

    The units of the attached version (found by image name: foo_2 replaces foo_1) are removed
    and IMAGE's attached. With --now, units that went away are stopped and the others
    restarted. If IMAGE does not exist, nothing is detached.

    What the attached version had is kept unless an option says otherwise: its profile, copy
    mode, extensions, and /etc or /run (--runtime: look in /run only); plugins keep what they
    gave it (a network namespace). A line says what an option changes. (portablectl falls
    back to its defaults instead.)
    """,
    _attach_params(reattach=True),
    "portable.cli.attach:reattach",
    plugin_options=True,
)

DETACH = Verb(
    "detach",
    """Detach IMAGE: remove its units, drop-ins and image link from the host.

    Units are found by the marker in their drop-in, so whatever attached them (this tool or
    systemd's portablectl) they are detached; the image itself need not exist any more.
    PREFIX... limits which units --now stops, --enable disables and --clean cleans. Several
    images given as paths are detached all or nothing, with a single reload, done only when a
    unit removed is still loaded in the service manager (--reload: always).

    --clean has the service manager remove the units' data once they are stopped (a running
    unit can't be cleaned: add --now); never the image, even one placed in /etc/portables.
    """,
    (
        IMAGE,
        PREFIXES,
        _flag("runtime", "--runtime", help="Detach what was attached with --runtime."),
        _flag("now", "--now", help="Stop the units first."),
        _flag("enable", "--enable", help="Disable the units first."),
        _flag(
            "no_reload",
            "--no-reload",
            help="Do not reload the service manager (by default it is reloaded when needed: "
            "when a unit removed is still loaded in it).",
        ),
        RELOAD,
        _flag("force", "--force", help="Detach even units that are running."),
        _flag(
            "clean",
            "--clean",
            help="Also remove the configuration, state, cache, logs and runtime data of the "
            "units (their ConfigurationDirectory=, StateDirectory=... contents).",
        ),
        _flag("no_block", "--no-block", hidden=True),  # accepted as portablectl does
        Param(
            "extensions",
            ("--extension",),
            multiple=True,
            metavar="PATH",
            help="Extension image the image was attached with (repeatable, in attach order).",
        ),
        QUIET,
        NO_PAGER,
    ),
    "portable.cli.detach:detach",
    plugin_options=True,
)

INSPECT = Verb(
    "inspect",
    """Show IMAGE's os-release and the unit files matching PREFIX...

    Without PREFIX, the prefix is derived from the image name (foo_1.2.raw -> foo); a single
    '-' matches every unit file. With --extension, each extension's extension-release and
    units are shown too (--cat: its extension-release file).

    Last, the unit settings that undo the sandbox of --profile (default: 'default'), which
    attach refuses, one line each; with --profile given, a line saying there are none too.
    Then what the image lacks for systemd to run its services (mount points, the profile's
    bind-mount targets, ExecStart= executables), if anything.
    Control characters in what the image says (but newlines and tabs) are shown escaped.
    """,
    (
        IMAGE,
        PREFIXES,
        _flag("cat", "--cat", help="Show os-release and unit files verbatim."),
        Param(
            "profile",
            ("-p", "--profile"),
            help="Profile whose sandbox floor the unit files are checked against (as attach "
            "checks them), and the exposure score in --json output is computed with "
            "[default: default].",
        ),
        Param(
            "extensions",
            ("--extension",),
            multiple=True,
            metavar="PATH",
            help="Extension image to inspect with the image (repeatable, in order).",
        ),
        _flag("force", "--force", help="Accept any single extension-release file in an extension."),
        QUIET,
        NO_PAGER,
        JSON,
    ),
    "portable.cli.inspect:inspect",
)

VERBS = {verb.name: verb for verb in (ATTACH, REATTACH, DETACH, INSPECT)}
