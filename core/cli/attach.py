"""``portable attach`` and ``portable reattach``.

The engine (``portable.engine.attach``, ``.reattach``: ~25 ms of imports) is imported in the
verbs' bodies: this module is also loaded for ``attach --help`` and to parse the options of
``portable -H HOST attach``, which have no use for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from portable.cli import App
from portable.cli.changes import image_matching_line, print_activation, print_changes, report_reload
from portable.cli.options import (
    check_reload_flags,
    no_pager,
    quiet,
    reload_option,
    split_images,
    warn_if_ambiguous,
)
from portable.cli.plugin_cli import plugin_options
from portable.errors import warn
from portable.plugin.types import AttachOptions
from portable.systemd.names import printable
from portable.systemd.version import detect as detect_systemd

COPY_HELP = "How to place unit files and profiles: auto (default), copy, symlink or mixed."


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def attach_options(f: Callable[..., Any], *, reattach: bool = False) -> Callable[..., Any]:
    # reattach: --profile and --copy default to None, "not given", so that what the attached
    # version had is kept (portable.engine.reattach.kept_options).
    decorators: list[Decorator] = [
        click.argument("image"),
        click.argument("prefixes", nargs=-1),
        click.option(
            "-p",
            "--profile",
            default=None if reattach else "default",
            show_default=not reattach,
            help="Security profile to apply ('help' lists them)."
            + (" Default: the attached version's." if reattach else ""),
        ),
        click.option(
            "--copy",
            "copy_mode",
            default=None if reattach else "auto",
            metavar="MODE",
            help=COPY_HELP.replace("auto (default)", "auto (default: the attached version's)")
            if reattach
            else COPY_HELP,
        ),
        click.option(
            "--runtime",
            is_flag=True,
            help="Attach until the next reboot only (/run instead of /etc).",
        ),
        click.option("--now", is_flag=True, help="Start the units after attaching."),
        click.option("--enable", is_flag=True, help="Enable the units after attaching."),
        click.option("--no-block", is_flag=True, help="Do not wait for start jobs to finish."),
        click.option(
            "--no-reload",
            is_flag=True,
            help="Do not reload the service manager (by default it is reloaded when needed: "
            "when a unit written is loaded in it).",
        ),
        reload_option,
        click.option(
            "--force",
            is_flag=True,
            help="Replace existing unit files and skip the running-unit check.",
        ),
        click.option(
            "--allow-setting",
            "allow_settings",
            multiple=True,
            metavar="NAME[,NAME...]",
            help="Attach even though the image's unit files use these settings, which the "
            "profile's sandbox floor forbids (repeatable; see 'portable security').",
        ),
        click.option(
            "--extension",
            "extensions",
            multiple=True,
            metavar="PATH",
            help="Extension image to layer on the image (repeatable, in order).",
        ),
        click.option(
            "--strict-image",
            is_flag=True,
            help="Refuse an image systemd can't run a service from (a mount point, a bind "
            "target of the profile or an ExecStart= executable missing) instead of warning.",
        ),
        quiet,
        no_pager,
        click.pass_obj,
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def reattach_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return attach_options(f, reattach=True)


def _options(
    profile: str,
    copy_mode: str,
    prefixes: tuple[str, ...],
    extensions: tuple[str, ...],
    **flags: Any,
) -> AttachOptions:
    return AttachOptions(
        profile=profile,
        copy_mode=copy_mode,
        prefixes=prefixes,
        extensions=extensions,
        runtime=flags["runtime"],
        now=flags["now"],
        enable=flags["enable"],
        no_block=flags["no_block"],
        no_reload=flags["no_reload"],
        force=flags["force"],
        allow_settings=tuple(
            name.strip() for arg in flags["allow_settings"] for name in arg.split(",") if name
        ),
        strict_image=flags["strict_image"],
        plugin_options=plugin_options(),  # the options plugins added (portable.cli.plugin_cli)
    )


def _special_values(app: App, profile: str, copy_mode: str) -> bool:
    """``--profile=help`` and ``--copy=help`` list the choices, as portablectl does."""
    if profile == "help":
        app.info("Available unit profiles:")
        for name in app.registry.profiles():
            click.echo(name)
        return True
    if copy_mode == "help":
        from portable.engine.attach import COPY_MODES  # here: see the module docstring

        for mode in COPY_MODES:
            click.echo(mode)
        return True
    return False


def plugins_taking_part(app: App, images: list[Any], profile: str) -> list[str]:
    """Third-party plugins in this attach: lifecycle hooks, the profile, the image formats."""
    registry = app.registry
    involved = {
        rec.name
        for rec in registry.plugins
        if rec.status == "active"
        and {"portable_pre_attach", "portable_post_attach"} & set(rec.hooks)
    }
    if profile != "help":
        involved.add(registry.profile(profile).plugin)
    formats = {r.spec.name: r.plugin for r in registry.formats()}
    involved |= {formats.get(image.format.name, "") for image in images}
    return [
        f"{rec.name} ({' '.join(x for x in (rec.distribution, rec.version) if x)})"
        for rec in registry.plugins
        if rec.name in involved and not rec.builtin
    ]


def warn_problems(result: Any) -> None:
    """A warning line for each thing the image lacks to run its services (portable.images.runnable):
    portablectl attaches such an image without a word, and its service fails at start."""
    for problem in getattr(result, "problems", ()):
        warn(f"image '{printable(result.image.path)}' can't run {printable(str(problem))}")


def _finish(app: App, result: Any, quiet: bool) -> None:
    """Reload failure (a warning, as portablectl), enable/start results, the exit status."""
    report_reload(app, result)
    systemd = detect_systemd(app.host).major
    if not print_activation(result.activation, quiet=quiet, systemd=systemd):
        sys.exit(1)


@click.command("attach")
@attach_options
def attach_command(
    app: App,
    image: str,
    prefixes: tuple[str, ...],
    profile: str,
    copy_mode: str,
    extensions: tuple[str, ...],
    quiet: bool,
    no_pager: bool,
    **flags: Any,
) -> None:
    """Attach IMAGE's unit files matching PREFIX... to the host.

    Unit files are copied (or linked) into /etc/systemd/system.attached/ (/run/... with
    --runtime), each with a drop-in pointing it at the image and the security profile's
    drop-in. Without PREFIX, the prefix comes from the image name (foo_1.2 -> foo).

    Several images given as paths (portable attach /srv/a /srv/b ...) are attached all or
    nothing, with a single reload of the service manager. It is reloaded only when a unit
    written is loaded in it (--reload: always); a unit it has not loaded is read from disk
    when it is first started.
    """
    from portable.engine.attach import attach_many  # here: see the module docstring

    if _special_values(app, profile, copy_mode):
        return
    images, prefixes = split_images(image, prefixes)
    for one in images:
        warn_if_ambiguous(app, one, quiet)
    force_reload = flags.pop("force_reload")
    check_reload_flags(flags["no_reload"], force_reload)
    options = _options(profile, copy_mode, prefixes, extensions, **flags)
    batch = attach_many(images, options, **app.for_change("attach"), force_reload=force_reload)
    for result in batch.results:
        warn_problems(result)
    systemd = detect_systemd(app.host).major
    for one, result in zip(images, batch.results, strict=True):
        app.info(image_matching_line(one, prefixes, systemd=systemd), quiet=quiet)
        if result.already_attached:
            app.info(f"Image '{result.image.path}' is already attached.", quiet=quiet)
        elif result.completed_interrupted:
            app.info(f"Completed an interrupted attach of '{result.image.path}'.", quiet=quiet)
        print_changes(result.changes, quiet=quiet)
    # Plugins run as root: say which took part, so an admin can see what touched the host.
    taking_part = plugins_taking_part(app, [r.image for r in batch.results], profile)
    if taking_part:
        app.info(f"(Plugins taking part: {', '.join(taking_part)}.)", quiet=quiet)
    _finish(app, batch, quiet)


@click.command("reattach")
@reattach_options
def reattach_command(
    app: App,
    image: str,
    prefixes: tuple[str, ...],
    profile: str | None,
    copy_mode: str | None,
    extensions: tuple[str, ...],
    quiet: bool,
    no_pager: bool,
    **flags: Any,
) -> None:
    """Replace the attached version of IMAGE by IMAGE, in one step.

    The units of the attached version (found by image name: foo_2 replaces foo_1) are removed
    and IMAGE's attached. With --now, units that went away are stopped and the others
    restarted. If IMAGE does not exist, nothing is detached.

    What the attached version had is kept unless an option says otherwise: its profile, copy
    mode, extensions, and /etc or /run (--runtime: look in /run only); plugins keep what they
    gave it (a network namespace). A line says what an option changes. (portablectl falls
    back to its defaults instead.)
    """
    from portable.engine.reattach import reattach  # here: see the module docstring

    if _special_values(app, profile or "", copy_mode or ""):
        return
    warn_if_ambiguous(app, image, quiet)
    force_reload = flags.pop("force_reload")
    check_reload_flags(flags["no_reload"], force_reload)
    given = {
        "profile": profile is not None,
        "copy_mode": copy_mode is not None,
        "runtime": flags["runtime"],
        "extensions": bool(extensions),
    }
    options = _options(profile or "default", copy_mode or "auto", prefixes, extensions, **flags)
    result = reattach(
        image,
        options,
        **app.for_change("reattach"),
        force_reload=force_reload,
        explicit={name for name, yes in given.items() if yes},
    )
    for note in result.notes:
        app.info(note, quiet=quiet)
    systemd = detect_systemd(app.host).major
    app.info(image_matching_line(image, prefixes, systemd=systemd), quiet=quiet)
    print_changes(result.removed, quiet=quiet)
    print_changes(result.attached.changes, quiet=quiet)
    _finish(app, result.attached, quiet)
