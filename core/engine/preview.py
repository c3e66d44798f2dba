"""Preview: which files an attach, reattach or detach of an image would write or remove.

Nothing is written and no hook is called: the plan is :func:`portable.engine.attach.prepare`'s,
with its checks (profile, sandbox floor, prefixes...), compared with what is on disk. For
tools that must say what would change before changing it (the Ansible collection's check
mode with ``--diff``) and for deciding whether anything has to change at all:

* :func:`preview_attach`: what putting an image in place would do. Nothing of its image name
  attached: an ``attach``; attached, as a ``reattach`` (another version, another profile...),
  keeping what the attached version had where ``explicit`` names no option, as reattach does;
  attached exactly so already: ``none``.
* :func:`preview_detach`: what ``detach`` of the image would remove.

Pre-attach hooks are not called (they may act on the host: ``--netns`` creates a namespace), so
the settings they add to ``20-portable.conf`` are not in the preview; a ``20-portable.conf``
that holds the planned lines followed by more settings is taken as in place.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from portable.engine.attach import AttachPlan, Planned, plan_files, prepare
from portable.engine.detach import image_links, unit_files
from portable.engine.dropins import MARKER_FILE
from portable.engine.reattach import AttachedVersion, attached_version, kept_options
from portable.engine.state import AttachedUnit
from portable.images.arguments import normalize_image_arg
from portable.images.resolve import resolve_image
from portable.plugin.registry import Registry
from portable.plugin.types import AttachOptions, UnitFile
from portable.systemd.host import ATTACHED_DIR, Host

__all__ = ["OPERATIONS", "FileChange", "Preview", "preview_attach", "preview_detach"]

OPERATIONS = ("none", "attach", "reattach", "detach")
_MAX_SHOWN = 1 << 20  # a file in the way bigger than this is not read into a diff


@dataclass(frozen=True, kw_only=True)
class FileChange:
    """One file that would change.

    ``action``: ``create``, ``replace`` or ``remove``. ``before``/``after``: the text of the
    file (``None``: absent); a symlink is ``"-> TARGET"``; what can't be shown (not a regular
    file, too big) is one line in parentheses.
    """

    path: str  # as the service manager sees it (not below --root)
    action: str
    before: str | None
    after: str | None


@dataclass(frozen=True, kw_only=True)
class Preview:
    """What an operation would do: ``operation`` is one of :data:`OPERATIONS`."""

    operation: str
    image: str  # the image path the marker names: attach's new one, detach's attached one
    units: tuple[str, ...]  # the units attached after it (detach: the ones removed)
    unit_files: tuple[UnitFile, ...] = ()  # attach: those units as read from the image
    removed_units: tuple[str, ...]  # units of the attached version that go away
    files: tuple[FileChange, ...]
    options: AttachOptions | None = None  # attach: with what the attached version had
    profile: str | None = None  # attach: the profile; detach: the attached one's, if known
    runtime: bool = False
    extensions: tuple[str, ...] = ()  # detach: the attached version's (detach matches them)
    notes: tuple[str, ...] = ()  # kept_options' "portable: ..." lines

    @property
    def changed(self) -> bool:
        return self.operation != "none"


def _shown(local: Path) -> str | None:
    """What is at ``local`` now, as :class:`FileChange` shows it; ``None`` if nothing."""
    try:
        st = os.lstat(local)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "-> " + os.readlink(local)
    if stat.S_ISDIR(st.st_mode):
        return "(a directory)"
    if not stat.S_ISREG(st.st_mode):
        return "(not a regular file)"
    if st.st_size > _MAX_SHOWN:
        return f"({st.st_size} bytes)"
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return f"(unreadable: {exc.strerror or exc})"
    try:
        data = os.read(fd, _MAX_SHOWN)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def _planned_text(f: Planned) -> str:
    if f.kind == "symlink":
        return "-> " + f.target
    return f.data.decode("utf-8", "replace")


def _in_place(f: Planned) -> bool:
    if f.matches_disk():
        return True
    if f.local.name != MARKER_FILE or f.kind == "symlink":
        return False
    # The planned lines plus what pre-attach hooks added (not known here: see the docstring).
    now = _shown(f.local)
    planned = f.data.decode("utf-8", "replace")
    return now is not None and now.startswith(planned) and now[len(planned) :].startswith("\n")


def _relocated(plan: AttachPlan, path: str, host: Host) -> None:
    """Plan as if the image were at ``path`` (it is read where it is now): for an image not
    shipped yet, previewed from a temporary copy."""
    old = plan.image
    shown = dataclasses.replace(old, path=path)
    if plan.inspection is not None:
        origin = {u: shown if img is old else img for u, img in plan.inspection.origin.items()}
        plan.inspection = dataclasses.replace(plan.inspection, origin=origin)
    plan.image = shown
    plan_files(plan, host)


def _attached_files(host: Host, units: Sequence[AttachedUnit]) -> list[Path]:
    """The files a detach of ``units`` removes (directories left out), in detach's order."""
    runtime = units[0].runtime
    where = host.path(ATTACHED_DIR[runtime])
    files = [f for u in units for f in unit_files(where, u.name)]
    files += image_links(host, units, runtime=runtime)
    return [f for f in files if os.path.lexists(f)]


def preview_attach(
    arg: str,
    options: AttachOptions,
    *,
    host: Host,
    registry: Registry,
    cwd: Path | None = None,
    explicit: Collection[str] | None = None,
    located_at: str | None = None,
) -> Preview:
    """What attaching image ``arg`` (name or path) with ``options`` would change: an attach,
    a reattach of the attached version of its image name, or nothing.

    ``explicit``: the :data:`~portable.engine.reattach.KEEPABLE` options given (the others are
    the attached version's, as :func:`~portable.engine.reattach.kept_options` keeps them; None:
    those that differ from the defaults). ``located_at``: the path the image will have when it
    is attached (``arg`` being a copy elsewhere, e.g. not shipped yet).

    :raises PortableError: what attach would refuse at its checks (unknown profile, the
        sandbox floor, no units...).
    """
    image = resolve_image(arg, host=host, registry=registry, cwd=cwd)
    name_path = located_at or image.path
    old: AttachedVersion | None = None
    notes: list[str] = []
    given = set(explicit) if explicit is not None else None
    if given is None:
        default = AttachOptions()
        given = {
            k
            for k in ("profile", "copy_mode", "runtime", "extensions")
            if getattr(options, k) != getattr(default, k)
        }
    old = attached_version(
        name_path,
        host=host,
        registry=registry,
        runtime=options.runtime if "runtime" in given else None,
        extensions=options.extensions if "extensions" in given else None,
    )
    if old is not None:
        options, notes = kept_options(
            name_path, options, host=host, registry=registry, explicit=given
        )
    plan = prepare(arg, options, host=host, registry=registry, cwd=cwd, stage=False)
    if located_at is not None and located_at != plan.image.path:
        _relocated(plan, located_at, host)
    changes: list[FileChange] = []
    planned_paths: set[Path] = set()
    for files in plan.files.values():
        for f in files:
            planned_paths.add(f.local)
            if _in_place(f):
                continue
            before = _shown(f.local)
            action = "create" if before is None else "replace"
            changes.append(
                FileChange(
                    path=host.unpath(f.local), action=action, before=before, after=_planned_text(f)
                )
            )
    for link in plan.image_links:
        planned_paths.add(link.local)
        if os.path.lexists(link.local):
            continue  # as attach: an entry there is left alone
        after = f"(a copy of {link.target})" if options.copy_mode == "mixed" else None
        changes.append(
            FileChange(
                path=host.unpath(link.local),
                action="create",
                before=None,
                after=after or _planned_text(link),
            )
        )
    new_units = tuple(u.name for u in plan.units)
    removed: tuple[str, ...] = ()
    if old is not None:
        gone = [f for f in _attached_files(host, old.units) if f not in planned_paths]
        changes += [
            FileChange(path=host.unpath(f), action="remove", before=_shown(f), after=None)
            for f in gone
        ]
        removed = tuple(u.name for u in old.units if u.name not in new_units)
    operation = "none" if not changes else "attach" if old is None else "reattach"
    return Preview(
        operation=operation,
        image=plan.image.path,
        units=new_units,
        unit_files=plan.units,
        removed_units=removed,
        files=tuple(changes),
        options=options,
        profile=plan.profile.name,
        runtime=options.runtime,
        notes=tuple(notes),
    )


def preview_detach(
    arg: str,
    *,
    host: Host,
    registry: Registry,
    runtime: bool | None = None,
    extensions: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> Preview:
    """What detaching image ``arg`` (name or path, matched by image name as detach does; it
    need not exist any more) would remove: from /etc, else /run (``runtime``: only that one),
    attached with ``extensions`` (None: with whatever extensions it was attached).
    """
    image = normalize_image_arg(arg, host=host, cwd=cwd)
    exts = None
    if extensions is not None:
        exts = [normalize_image_arg(e, host=host, cwd=cwd) for e in extensions]
    old = attached_version(image, host=host, registry=registry, runtime=runtime, extensions=exts)
    if old is None:
        return Preview(
            operation="none",
            image=image,
            units=(),
            removed_units=(),
            files=(),
            runtime=bool(runtime),
        )
    files = tuple(
        FileChange(path=host.unpath(f), action="remove", before=_shown(f), after=None)
        for f in _attached_files(host, old.units)
    )
    units = tuple(u.name for u in old.units)
    return Preview(
        operation="detach",
        image=old.units[0].marker[0],
        units=units,
        removed_units=units,
        files=files,
        profile=old.profile,
        runtime=old.runtime,
        extensions=old.extensions,
    )
