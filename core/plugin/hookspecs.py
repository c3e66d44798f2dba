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
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from portable.plugin.types import (
        AttachOptions,
        Change,
        DetachOptions,
        ExtraSetting,
        Image,
        ImageFormat,
        ImageMetadata,
        Profile,
        UnitFile,
    )

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "portable_image_formats",
    "portable_post_attach",
    "portable_post_detach",
    "portable_pre_attach",
    "portable_pre_detach",
    "portable_profiles",
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
    answer True (none: "unknown image format", several: "ambiguous").

    :returns: an iterable of :class:`portable.ImageFormat`.

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


@hookspec
def portable_pre_attach(
    image: Image,
    units: Sequence[UnitFile],
    profile: Profile,
    options: AttachOptions,
    metadata: ImageMetadata,
) -> Iterable[ExtraSetting] | None:
    """Called before ``attach`` (and the attach half of ``reattach``) writes anything.

    Called once per image, after the image was read and every check passed, before the first
    file is written.

    :param image: the image being attached.
    :param units: the unit files that will be attached (sorted by name).
    :param profile: the security profile that will be applied.
    :param options: the attach options the user gave.
    :param metadata: what was read from the image: ``metadata.os_release_fields`` (a dict of
        its os-release), ``metadata.os_release`` (the bytes), the matched prefixes.
    :returns: ``None``, or settings to add to the units' ``20-portable.conf``
        (:class:`portable.ExtraSetting`). The results of all plugins are collected, in hook call
        order.
    :raises portable.AttachRefused: to refuse the attach; the message is shown to the user and
        nothing is written. Any other exception also aborts the attach, reported as a plugin
        error.
    """
    return None


@hookspec
def portable_post_attach(
    image: Image,
    units: Sequence[UnitFile],
    profile: Profile,
    options: AttachOptions,
    changes: Sequence[Change],
    metadata: ImageMetadata,
) -> None:
    """Called after ``attach`` wrote every file (and before the service manager is reloaded).

    :param image: the image attached.
    :param units: the unit files attached.
    :param profile: the security profile applied.
    :param options: the attach options the user gave.
    :param changes: the changes made on disk, in order.
    :param metadata: what was read from the image (os-release, prefixes).
    :returns: nothing; return values are ignored. An exception rolls the attach back (the
        files written are removed) and is reported as a plugin error.
    """


@hookspec
def portable_attach_failed(
    image: Image, units: Sequence[UnitFile], options: AttachOptions, error: BaseException
) -> None:
    """Called when an attach whose pre-attach hooks were called did not go through.

    For plugins whose ``portable_pre_attach`` did something outside the attached files (a
    network namespace, a user, a firewall rule) to undo it. Called once per image, in-process,
    still under the host lock, after every file of the attach was rolled back; also when this
    plugin's own ``portable_pre_attach`` never ran for the image (another plugin's refused
    first), so an implementation must only undo what it finds it did. Not called for a process
    that is killed: clean up what such a run leaves at the next attach or detach.

    :param image: the image that was being attached.
    :param units: the unit files that would have been attached.
    :param options: the attach options the user gave.
    :param error: what stopped the attach (re-raised afterwards, whatever the hooks do).
    :returns: nothing; return values are ignored. Exceptions are reported as warnings: the
        user sees the error that stopped the attach.
    """


@hookspec
def portable_pre_detach(image: str, units: Sequence[str], options: DetachOptions) -> None:
    """Called before ``detach`` (and the detach half of ``reattach``) removes anything.

    :param image: the image path or name as given (the image may no longer exist).
    :param units: names of the attached units that will be removed.
    :param options: the detach options the user gave.
    :raises portable.DetachRefused: to refuse; nothing is removed.
    """


@hookspec
def portable_post_detach(
    image: str, units: Sequence[str], options: DetachOptions, changes: Sequence[Change]
) -> None:
    """Called after ``detach`` removed the files (and before the service manager is reloaded).

    :param image: the image path or name as given.
    :param units: names of the units removed.
    :param options: the detach options the user gave.
    :param changes: the changes made on disk, in order.
    :returns: nothing; return values are ignored. Exceptions are reported as warnings: the
        files are already gone and detach completes.
    """
