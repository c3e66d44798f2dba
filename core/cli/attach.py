"""``portable attach`` and ``portable reattach``: what they do, click-free (their parameters
are declared in :mod:`portable.cli.verbs`; click's commands and the fast path both call these).

This module is imported only when one of them runs; the engine's halves (``attach``,
``reattach``: ~25 ms of imports each) only by the verb that uses it.
"""

from __future__ import annotations

from typing import Any

from portable.cli import App, echo_out
from portable.cli.arguments import check_reload_flags, split_images, warn_if_ambiguous
from portable.cli.changes import image_matching_line, print_activation, print_changes, report_reload
from portable.errors import warn
from portable.plugin.types import AttachOptions, PluginOptions
from portable.systemd.names import printable
from portable.systemd.version import detect as detect_systemd

__all__ = ["attach", "reattach"]


def _options(
    profile: str,
    copy_mode: str,
    prefixes: tuple[str, ...],
    extensions: tuple[str, ...],
    plugin_options: PluginOptions,
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
        plugin_options=plugin_options,
    )


def _special_values(app: App, profile: str, copy_mode: str) -> bool:
    """``--profile=help`` and ``--copy=help`` list the choices, as portablectl does."""
    if profile == "help":
        app.info("Available unit profiles:")
        for name in app.registry.profiles():
            echo_out(name)
        return True
    if copy_mode == "help":
        from portable.engine.attach import COPY_MODES  # here: see the module docstring

        for mode in COPY_MODES:
            echo_out(mode)
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


def _finish(app: App, result: Any, quiet: bool) -> int:
    """Reload failure (a warning, as portablectl), enable/start results; the exit status."""
    report_reload(app, result)
    systemd = detect_systemd(app.host).major
    return 0 if print_activation(result.activation, quiet=quiet, systemd=systemd) else 1


def attach(
    app: App,
    *,
    image: str,
    prefixes: tuple[str, ...],
    profile: str,
    copy_mode: str,
    extensions: tuple[str, ...],
    quiet: bool,
    no_pager: bool,
    plugin_options: PluginOptions,
    **flags: Any,
) -> int:
    """``portable attach`` (:data:`portable.cli.verbs.ATTACH`)."""
    from portable.engine.attach import attach_many  # here: see the module docstring

    if _special_values(app, profile, copy_mode):
        return 0
    images, prefixes = split_images(image, prefixes)
    for one in images:
        warn_if_ambiguous(app, one, quiet)
    force_reload = flags.pop("force_reload")
    check_reload_flags(flags["no_reload"], force_reload)
    options = _options(profile, copy_mode, prefixes, extensions, plugin_options, **flags)
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
    return _finish(app, batch, quiet)


def reattach(
    app: App,
    *,
    image: str,
    prefixes: tuple[str, ...],
    profile: str | None,
    copy_mode: str | None,
    extensions: tuple[str, ...],
    quiet: bool,
    no_pager: bool,
    plugin_options: PluginOptions,
    **flags: Any,
) -> int:
    """``portable reattach`` (:data:`portable.cli.verbs.REATTACH`)."""
    from portable.engine.reattach import reattach as reattach_image  # here: see the docstring

    if _special_values(app, profile or "", copy_mode or ""):
        return 0
    warn_if_ambiguous(app, image, quiet)
    force_reload = flags.pop("force_reload")
    check_reload_flags(flags["no_reload"], force_reload)
    given = {
        "profile": profile is not None,
        "copy_mode": copy_mode is not None,
        "runtime": flags["runtime"],
        "extensions": bool(extensions),
    }
    options = _options(
        profile or "default", copy_mode or "auto", prefixes, extensions, plugin_options, **flags
    )
    result = reattach_image(
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
    return _finish(app, result.attached, quiet)
