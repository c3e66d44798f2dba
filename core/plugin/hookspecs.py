"""Hook specifications: every extension point of portable-services.

A plugin is a module (or object) with functions marked ``@portable.hookimpl`` whose names match
the specs below. Built-in plugins live in ``portable.plugins`` and are registered through the same
plugin manager as third-party plugins, which are found through the ``portable`` entry-point group::

    # pyproject.toml of a plugin distribution
    [project.entry-points.portable]
    myplugin = "portable_myplugin"

Implementations may accept fewer arguments than a spec lists (pluggy passes only those named),
so specs can grow arguments without breaking plugins. Hooks are always called with keyword
arguments.

A plugin runs inside ``portable``, usually as root: installing one grants it root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    import click

    from portable.plugin.types import (
        AttachOptions,
        Change,
        CliOption,
        DetachOptions,
        ExtraSetting,
        Image,
        ImageFormat,
        ImageMetadata,
        Profile,
        UnitFile,
    )
    from portable.systemd.host import Host

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "portable_attach_failed",
    "portable_cli_options",
    "portable_image_formats",
    "portable_post_attach",
    "portable_post_detach",
    "portable_pre_attach",
    "portable_pre_detach",
    "portable_profiles",
    "portable_register_commands",
]

PROJECT = "portable"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration: what a plugin provides ------------------------------------------------------


@hookspec
def portable_image_formats() -> Iterable[ImageFormat]:
    """Return the image formats this plugin provides.

    Called once per process, the first time the registry needs the list of formats (to resolve
    an image, or to list plugins). All results of all plugins are collected; two formats with
    the same name are an error naming both plugins.

    When an image path is given, every format's ``detect(path)`` is asked; exactly one must
    answer True (none: "unknown image format", several: "ambiguous"). A ``detect`` that raises
    counts as False (``--debug`` shows the exception).

    ``open`` and ``unpack`` raise :class:`portable.BadImage` for "this image is bad" (shown to
    the user as it is); anything else they raise is reported as this plugin's error (exit 1,
    the traceback with ``--debug``).

    :returns: an iterable of :class:`portable.ImageFormat`.
    :raises: anything raised here is reported as this plugin's error, naming it.

    Example::

        @hookimpl
        def portable_image_formats():
            return [ImageFormat(name="tar", description="tar archive", image_type="directory",
                                detect=lambda p: p.name.endswith(".tar"), open=unpack_tar)]
    """
    return ()


@hookspec
def portable_profiles(root: Path) -> Iterable[Profile]:
    """Return the security profiles this plugin provides.

    Called once per process, the first time a profile is looked up or listed. All results are
    collected; profiles of the same name are resolved by :attr:`Profile.priority` (highest wins)
    and two of equal priority are an error naming both plugins.

    :param root: the host's root directory: ``/``, or the directory given with ``--root``.
        A plugin that reads profiles from the host's file system reads them below it.
    :returns: an iterable of :class:`portable.Profile`.

    Example::

        @hookimpl
        def portable_profiles():
            text = "[Service]\\nDynamicUser=yes\\nPrivateNetwork=yes\\n"
            return [Profile(name="isolated", description="no network, dynamic user",
                            dropins={"service": ProfileDropin(text=text)})]
    """
    return ()


# --- attach / detach lifecycle -----------------------------------------------------------------
#
# Every lifecycle hook gets ``host``: the :class:`portable.systemd.host.Host` the operation runs
# on. ``host.root`` is ``/``, or the directory given with ``--root``; ``host.is_real`` tells the
# two apart; ``host.path(p)`` is where this process reads or writes the host path ``p``. Paths
# the hooks get (``image.path``, ``Change.path``) are host paths, relative to that root.
#
# How a failure is reported (see portable.plugin.hooks): every message names the plugin and its
# distribution. A veto (AttachRefused, DetachRefused) stops the operation before anything is
# written; any other exception in a hook that can stop it is a PluginError (exit 1, traceback
# with --debug); attach_failed and post_detach can't undo anything: a failure is a warning.


@hookspec
def portable_pre_attach(
    host: Host,
    image: Image,
    units: Sequence[UnitFile],
    profile: Profile,
    options: AttachOptions,
    metadata: ImageMetadata,
) -> Iterable[ExtraSetting] | None:
    """Called before ``attach`` (and the attach half of ``reattach``) writes anything.

    Called once per image, after the image was read and every check passed, before the first
    file is written.

    :param host: the host attached to (``host.root``: ``/`` or the ``--root`` directory; the
        image's and the changes' paths are relative to it).
    :param image: the image being attached.
    :param units: the unit files that will be attached (sorted by name).
    :param profile: the security profile that will be applied.
    :param options: the attach options the user gave.
    :param metadata: what was read from the image: ``metadata.os_release_fields`` (a dict of
        its os-release), ``metadata.os_release`` (the bytes), the matched prefixes.
    :returns: ``None``, or settings to add to the units' ``20-portable.conf``
        (:class:`portable.ExtraSetting`). The results of all plugins are collected, in hook call
        order.
    :raises portable.AttachRefused: to refuse the attach; nothing is written, and the user sees
        ``plugin 'NAME' (DISTRIBUTION VERSION) refused the attach: <the message>``. Any other
        exception also stops the attach, reported as that plugin's error (exit 1).
    """
    return None


@hookspec
def portable_post_attach(
    host: Host,
    image: Image,
    units: Sequence[UnitFile],
    profile: Profile,
    options: AttachOptions,
    changes: Sequence[Change],
    metadata: ImageMetadata,
) -> None:
    """Called after ``attach`` wrote every file (and before the service manager is reloaded).

    :param host: the host attached to (``Change.path`` is relative to ``host.root``).
    :param image: the image attached.
    :param units: the unit files attached.
    :param profile: the security profile applied.
    :param options: the attach options the user gave.
    :param changes: the changes made on disk, in order.
    :param metadata: what was read from the image (os-release, prefixes).
    :returns: nothing; return values are ignored. An exception rolls the attach back (the
        files written are removed) and is reported as that plugin's error (exit 1).
    """


@hookspec
def portable_attach_failed(
    host: Host,
    image: Image,
    units: Sequence[UnitFile],
    options: AttachOptions,
    error: BaseException,
) -> None:
    """Called when an attach whose pre-attach hooks were called did not go through.

    For plugins whose ``portable_pre_attach`` did something outside the attached files (a
    network namespace, a user, a firewall rule) to undo it. Called once per image, in-process,
    still under the host lock, after every file of the attach was rolled back; also when this
    plugin's own ``portable_pre_attach`` never ran for the image (another plugin's refused
    first), so an implementation must only undo what it finds it did. Not called for a process
    that is killed: clean up what such a run leaves at the next attach or detach.

    :param host: the host the attach was for.
    :param image: the image that was being attached.
    :param units: the unit files that would have been attached.
    :param options: the attach options the user gave.
    :param error: what stopped the attach (re-raised afterwards, whatever the hooks do).
    :returns: nothing; return values are ignored. An exception is a warning line naming the
        plugin: the user sees the error that stopped the attach.
    """


@hookspec
def portable_pre_detach(
    host: Host, image: Image, units: Sequence[str], options: DetachOptions
) -> None:
    """Called before ``detach`` (and the detach half of ``reattach``) removes anything.

    :param host: the host detached from (``host.root``: ``/`` or the ``--root`` directory).
    :param image: the attached image, the same type attach's hooks get, built from what the
        attach recorded: ``image.path`` is the image as it was attached (for ``reattach``: the
        version being replaced). The image itself may be gone by now: ``image.format`` is the
        format that claims what is at ``image.host_path`` now, else a placeholder named
        ``"unknown"`` (``image.host_path`` then need not exist).
    :param units: names of the attached units that will be removed.
    :param options: the detach options the user gave.
    :raises portable.DetachRefused: to refuse; nothing is removed, and the user sees
        ``plugin 'NAME' (DISTRIBUTION VERSION) refused the detach: <the message>``. Any other
        exception also stops the detach, reported as that plugin's error (exit 1).
    """


@hookspec
def portable_post_detach(
    host: Host,
    image: Image,
    units: Sequence[str],
    options: DetachOptions,
    changes: Sequence[Change],
) -> None:
    """Called after ``detach`` (and the detach half of ``reattach``) removed the files (and
    before the service manager is reloaded).

    :param host: the host detached from (``Change.path`` is relative to ``host.root``).
    :param image: the image detached, as :func:`portable_pre_detach` got it.
    :param units: names of the units removed.
    :param options: the detach options the user gave.
    :param changes: the changes made on disk, in order (for ``reattach``: the removals of the
        old version that the new one did not write again).
    :returns: nothing; return values are ignored. An exception is a warning line naming the
        plugin: the files are already gone and detach completes.
    """


# --- the command line: options and commands plugins add ----------------------------------------


@hookspec
def portable_cli_options() -> Iterable[CliOption[Any]]:
    """Return the options this plugin adds to verbs of the command line.

    Called when the command line of ``attach``, ``reattach`` or ``detach`` is built (for a run
    of that verb, or its ``--help``), so the options show in ``portable VERB --help``. Each
    value given reaches the plugin's own lifecycle hooks through ``options.plugin_options``,
    keyed by :attr:`CliOption.dest`: ``options.plugin_options.value(MY_OPTION)`` is the
    converted value, or the default when the option was not given.

    Two plugins adding the same option name is an error naming both plugins; so is an option
    the verb already has (or one of portablectl's). A ``convert`` that raises ``ValueError`` or
    a ``PortableError`` is a one-line usage error naming the option, exit 2.

    :returns: an iterable of :class:`portable.CliOption`.

    Example::

        VENDOR_KEY = CliOption(name="--vendor-key", verbs=("attach", "reattach"),
                               metavar="KEY", help="Vendor key the image must be signed with.")

        @hookimpl
        def portable_cli_options():
            return [VENDOR_KEY]

        @hookimpl
        def portable_pre_attach(image, options):
            key = options.plugin_options.value(VENDOR_KEY)  # str | None
    """
    return ()


@hookspec
def portable_register_commands(cli: click.Group) -> None:
    """Add commands (verbs) to the command line, as ``@cli.command()`` (llm's and datasette's
    ``register_commands``).

    Called when the command line needs the plugins' commands: to run one, to list the verbs
    (``portable --help``, shell completion). ``cli`` is a click group that collects this
    plugin's commands (not portable's root group itself); each becomes a verb of ``portable``,
    listed in ``portable --help`` with the first line of its help. A name that is one of
    portable's verbs, or another plugin's command, is an error naming both. In a command,
    ``click.get_current_context().obj`` has ``root`` (the ``--root`` directory, else ``/``),
    ``registry`` (the loaded plugins) and ``debug``; a ``PortableError`` it raises is one line
    ``portable: error: ...``, exit 1.

    :param cli: the group to add commands to.

    Example::

        @hookimpl
        def portable_register_commands(cli):
            @cli.command(name="vendor-keys", help="List the vendor keys this host trusts.")
            def vendor_keys():
                click.echo("example-corp")
    """
