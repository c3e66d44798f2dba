"""``portable detach``: what it does, click-free (its parameters are declared in
:mod:`portable.cli.verbs`; click's command and the fast path both call :func:`detach`)."""

from __future__ import annotations

from portable.cli import App, echo_err
from portable.cli.arguments import check_reload_flags, split_images, warn_if_ambiguous
from portable.cli.changes import image_matching_line, print_activation, print_changes, report_reload
from portable.engine.detach import detach_many
from portable.errors import PortableError, warn
from portable.plugin.types import DetachOptions, PluginOptions
from portable.systemd.version import detect as detect_systemd

__all__ = ["detach"]


def detach(
    app: App,
    *,
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
    plugin_options: PluginOptions,
) -> int:
    """``portable detach`` (:data:`portable.cli.verbs.DETACH`)."""
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
        plugin_options=plugin_options,
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
        echo_err(f"portable: error: {error}")
    report_reload(app, result)
    print_changes(result.changes, quiet=quiet)
    for warning in result.warnings:
        warn(warning)
    return 1 if not ok or result.clean_errors else 0
