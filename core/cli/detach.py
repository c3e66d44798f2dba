"""``portable detach``."""

from __future__ import annotations

import sys

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
from portable.engine.detach import detach_many
from portable.errors import PortableError, warn
from portable.plugin.types import DetachOptions
from portable.systemd.version import detect as detect_systemd


@click.command("detach")
@click.argument("image")
@click.argument("prefixes", nargs=-1)
@click.option("--runtime", is_flag=True, help="Detach what was attached with --runtime.")
@click.option("--now", is_flag=True, help="Stop the units first.")
@click.option("--enable", is_flag=True, help="Disable the units first.")
@click.option(
    "--no-reload",
    is_flag=True,
    help="Do not reload the service manager (by default it is reloaded when needed: when a "
    "unit removed is still loaded in it).",
)
@reload_option
@click.option("--force", is_flag=True, help="Detach even units that are running.")
@click.option(
    "--clean",
    is_flag=True,
    help="Also remove the configuration, state, cache, logs and runtime data of the units "
    "(their ConfigurationDirectory=, StateDirectory=... contents).",
)
@click.option("--no-block", is_flag=True, hidden=True)  # accepted as portablectl does
@click.option(
    "--extension",
    "extensions",
    multiple=True,
    metavar="PATH",
    help="Extension image the image was attached with (repeatable, in attach order).",
)
@quiet
@no_pager
@click.pass_obj
def detach_command(
    app: App,
    image: str,
    prefixes: tuple[str, ...],
    runtime: bool,
    now: bool,
    enable: bool,
    no_reload: bool,
    force_reload: bool,
    force: bool,
    clean: bool,
    no_block: bool,
    extensions: tuple[str, ...],
    quiet: bool,
    no_pager: bool,
) -> None:
    """Detach IMAGE: remove its units, drop-ins and image link from the host.

    Units are found by the marker in their drop-in, so whatever attached them (this tool or
    systemd's portablectl) they are detached; the image itself need not exist any more.
    PREFIX... limits which units --now stops, --enable disables and --clean cleans. Several
    images given as paths are detached all or nothing, with a single reload, done only when a
    unit removed is still loaded in the service manager (--reload: always).

    --clean has the service manager remove the units' data once they are stopped (a running
    unit can't be cleaned: add --now); never the image, even one placed in /etc/portables.
    """
    check_reload_flags(no_reload, force_reload)

    if clean and not app.host.is_real:
        raise PortableError(
            "--clean needs the service manager to remove the units' data; "
            "it can't be used with --root"
        )
    images, prefixes = split_images(image, prefixes)
    for one in images:
        warn_if_ambiguous(app, one, quiet)
    options = DetachOptions(
        runtime=runtime,
        now=now,
        enable=enable,
        no_reload=no_reload,
        force=force,
        extensions=extensions,
        plugin_options=plugin_options(),  # the options plugins added (portable.cli.plugin_cli)
    )
    result = detach_many(
        images,
        options,
        **app.for_change("detach"),
        prefixes=prefixes,
        clean=clean,
        force_reload=force_reload,
    )
    systemd = detect_systemd(app.host).major
    if now or enable or clean:  # only then does portablectl compute (and announce) the matches
        for one in images:
            app.info(image_matching_line(one, prefixes, systemd=systemd), quiet=quiet)
    ok = print_activation(result.activation, quiet=quiet, systemd=systemd)
    for error in result.clean_errors:  # after the stop jobs, as portablectl
        click.echo(f"portable: error: {error}", err=True)
    report_reload(app, result)
    print_changes(result.changes, quiet=quiet)
    for warning in result.warnings:
        warn(warning)
    if not ok or result.clean_errors:
        sys.exit(1)
