"""Detach: remove every trace of an attached image (spec 4).

Units are found by their marker alone (the first line of ``<unit>.d/20-portable.conf``), so
what systemd's portablectl attached is detached too. Only files of units whose marker names
this image are touched; a host unit or another image's unit never is. Removal order: the image
link first, then per unit the unit file, the profile, the marker, the drop-in directory (the
marker last: a killed detach leaves units a re-run still recognises), then the attached
directory if empty. The change list is printed in systemd's order.

With ``clean`` (``detach --clean``, portablectl 256+), the selected units' configuration, state,
cache, logs and runtime directories are removed by PID 1 (``CleanUnit``) once they are stopped
and the detach is sure to go ahead (:func:`clean_units`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from portable.engine.dropins import MARKER_FILE, PROFILE_FILE
from portable.engine.reload import Outcome, for_detach, hooked_plugins, reload_as_decided
from portable.engine.state import AttachedUnit, attached_units
from portable.engine.sweep import sweep
from portable.engine.transaction import Transaction, host_lock
from portable.errors import BadImage, DetachRefused, PortableError
from portable.images.arguments import effective_prefixes, normalize_image_arg
from portable.images.unpacked import remove_unused
from portable.plugin.registry import Registry
from portable.plugin.types import Change, DetachOptions, Image, ImageFormat
from portable.systemd.host import ATTACHED_DIR, PORTABLES_DIR, Host
from portable.systemd.names import extract_prefix, marker_matches_image, printable, unit_matches
from portable.systemd.version import detect as detect_systemd

if TYPE_CHECKING:
    from portable.systemd.manager import Manager

__all__ = [
    "UNKNOWN_FORMAT",
    "DetachResult",
    "NotAttached",
    "clean_units",
    "detach",
    "detach_many",
    "detached_image",
    "find_attached",
    "image_links",
    "not_attached",
    "orphan_prefixes",
    "remove_units",
    "run_post_detach",
    "run_pre_detach",
    "unit_files",
]


class NotAttached(PortableError):
    """Nothing of that image is attached (systemd's NoSuchUnit)."""


class DetachResult(Outcome):
    _FIELDS: ClassVar[tuple[str, ...]] = (
        *Outcome._FIELDS,
        "images",
        "units",
        "changes",
        "warnings",
        "orphans",
        "cleaned",
        "clean_errors",
    )

    def __init__(
        self,
        *,
        images: list[str],
        units: list[str],
        changes: list[Change],
        warnings: list[str] | None = None,
        # Units no longer attached but still loaded from a removed attached unit file (left by
        # a killed reattach), stopped/disabled with the image's units (--now/--enable).
        orphans: list[str] | None = None,
        # With clean: the units whose data PID 1 removed, and one line per unit it could not
        # clean.
        cleaned: list[str] | None = None,
        clean_errors: list[str] | None = None,
    ) -> None:
        super().__init__()  # what PID 1 was told: filled in by activate()
        self.images = images
        self.units = units
        self.changes = changes
        self.warnings: list[str] = [] if warnings is None else warnings
        self.orphans: list[str] = [] if orphans is None else orphans
        self.cleaned: list[str] = [] if cleaned is None else cleaned
        self.clean_errors: list[str] = [] if clean_errors is None else clean_errors


def active_refusal(unit: str, *, now: bool) -> str:
    """Why a detach of running ``unit`` is refused: portablectl's sentence, then on the same
    line what to do. ``--now`` stops it; after a ``--now`` whose stop did not take, and for a
    template (whose instances ``--now`` does not stop), only ``--force`` detaches it running."""
    if "@." in unit:
        hint = "stop its instances first, or --force detaches it running"
    elif now:
        hint = "it is still active after the stop: --force detaches it running"
    else:
        hint = "use --now to stop it first"
    return f"Unit file '{unit}' is active, can't detach. ({hint})"


def find_attached(
    host: Host,
    image: str,
    extensions: Sequence[str],
    *,
    runtime: bool,
    among: Sequence[AttachedUnit] | None = None,
) -> list[AttachedUnit]:
    """Units in the (runtime) attached directory whose marker matches the image (spec 4.3);
    ``among``: those already read (:func:`attached_units`), for several images at once."""
    units = attached_units(host, runtime) if among is None else among
    return [u for u in units if marker_matches_image(u.marker, image, extensions, match_all=True)]


def not_attached(image: str, extensions: Sequence[str]) -> NotAttached:
    """portablectl's error for an image (with extensions) that has nothing attached."""
    ext = f"' or any of its extensions '{', '.join(extensions)}" if extensions else ""
    return NotAttached(
        f"No unit files associated with '{printable(image + ext)}' found attached to the system. "
        "Image not attached?"
    )


def unit_files(where: Path, unit: str) -> list[Path]:
    """A unit's files in the attached directory ``where``, in the order detach removes them
    (then its drop-in directory, if empty)."""
    dropins = where / f"{unit}.d"
    return [where / unit, dropins / PROFILE_FILE, dropins / MARKER_FILE]


def image_links(host: Host, units: Sequence[AttachedUnit], *, runtime: bool) -> list[Path]:
    """What a detach of ``units`` removes from the portables directory: the link to each image
    their markers name, or a --copy=mixed copy of it; never an image placed there itself
    (systemd issue #40020)."""
    portables = host.path(PORTABLES_DIR[runtime])
    links = []
    for token in dict.fromkeys(t for u in units for t in u.marker):
        name = token.rstrip("/").rsplit("/", 1)[-1]
        if not name or "/" not in token:
            continue
        link = portables / name
        if link.is_symlink() or (os.path.lexists(link) and host.path(token) != link):
            links.append(link)
    return links


def remove_units(
    tx: Transaction,
    host: Host,
    units: Sequence[AttachedUnit],
    *,
    runtime: bool,
    unpacked: bool = True,
) -> list[Change]:
    """Remove the units' files and image links in ``tx``; returns the changes in systemd's
    order (units, then image links and unpacked archives, then the attached directory).

    ``unpacked``: also remove the archives' unpacked trees nothing uses any more
    (:func:`portable.images.unpacked.remove_unused`); reattach does that itself once the new
    version's files are written."""
    where = host.path(ATTACHED_DIR[runtime])
    start = len(tx.changes)
    for link in image_links(host, units, runtime=runtime):
        tx.remove(link)
    link_changes = tx.changes[start:]
    del tx.changes[start:]
    for unit in units:
        for path in unit_files(where, unit.name):
            tx.remove(path)
        tx.rmdir(where / f"{unit.name}.d")
    unit_changes = tx.changes[start:]
    del tx.changes[start:]
    if unpacked:
        remove_unused(tx, host, runtime=runtime)
    link_changes += tx.changes[start:]
    del tx.changes[start:]
    tx.rmdir(where)
    tail = tx.changes[start:]
    del tx.changes[start:]
    ordered = [*unit_changes, *link_changes, *tail]
    tx.changes.extend(ordered)
    return ordered


def orphan_prefixes(arg: str, prefixes: Sequence[str], *, systemd: int) -> tuple[str, ...]:
    """The prefixes that select orphaned units (:func:`portable.engine.activation.orphaned_units`)
    for image argument ``arg``: the explicit ones, else the image's own. Never all units: with
    ``-`` alone (all of the image's units), the image's own prefix; none if it has none."""
    wanted = effective_prefixes(arg, prefixes, systemd=systemd)
    if wanted != ("-",):
        return wanted
    try:
        return (extract_prefix(arg, systemd=systemd),)
    except PortableError:
        return ()


def _image_is_gone(path: Path) -> AbstractContextManager[Path]:
    raise BadImage(f"image '{path}' is no longer there, or no image format claims it")


#: The format of a detached image that is gone, or that no format claims any more
#: (:func:`detached_image`).
UNKNOWN_FORMAT = ImageFormat(
    name="unknown",
    description="an image that is no longer there, or that no format claims",
    image_type="unknown",
    detect=lambda path: False,
    open=_image_is_gone,
)


def detached_image(host: Host, registry: Registry, units: Sequence[AttachedUnit]) -> Image:
    """The image ``units`` were attached from, as the detach hooks get it: built from what the
    attach recorded (the first path of the units' marker), as attach's :class:`Image` is.

    ``path`` is the image as it was attached (as the service manager sees it; with ``--root``,
    inside the root), ``host_path`` where this process would read it. The image may be gone
    by now (or be another file): its format is the one that claims what is there now, else
    :data:`UNKNOWN_FORMAT` (``host_path`` then need not exist); ``name`` is the file name minus
    a registered format's suffix.
    """
    path = units[0].marker[0]
    filename = path.rstrip("/").rsplit("/", 1)[-1]
    local = host.resolve(path)
    fmt = UNKNOWN_FORMAT
    formats = registry.formats()
    if local is not None:
        claims = [r.spec for r in formats if r.spec.detect(local)]
        if len(claims) == 1:
            fmt = claims[0]
    if fmt is UNKNOWN_FORMAT:
        suffixes = [s for r in formats for s in r.spec.suffixes if filename.endswith(s)]
        name = filename[: -len(suffixes[0])] if suffixes and filename != suffixes[0] else filename
    else:
        name = fmt.image_name(filename)
    return Image(path=path, host_path=local or host.path(path), name=name, format=fmt)


def run_pre_detach(
    registry: Registry, host: Host, image: Image, units: list[str], options: DetachOptions
) -> None:
    """Call the ``portable_pre_detach`` hooks: a veto or a failure stops the detach before
    anything is removed."""
    registry.hooks.pre_detach(host=host, image=image, units=units, options=options)


def run_post_detach(
    registry: Registry,
    host: Host,
    image: Image,
    units: list[str],
    options: DetachOptions,
    changes: Sequence[Change],
) -> list[str]:
    """Call the ``portable_post_detach`` hooks (the files are gone); a failing hook is a
    warning line, returned."""
    return registry.hooks.post_detach(
        host=host, image=image, units=units, options=options, changes=changes
    )


# CleanUnit's answers (D-Bus error names) that mean "there is nothing of this unit to remove".
_NOTHING_TO_CLEAN = (
    "org.freedesktop.systemd1.NothingToClean",
    "org.freedesktop.DBus.Error.NotSupported",  # a unit type without resources (.path, .target)
)
_UNIT_BUSY = "org.freedesktop.systemd1.UnitBusy"
_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"


def clean_units(manager: Manager, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Have PID 1 remove the units' resources as portablectl 257's ``detach --clean`` does
    (``CleanUnit`` with ``all`` and ``fdstore``), waiting until each removal is over; returns
    the units cleaned and one error line per unit that could not be.

    Unlike portablectl, a failure does not keep the units after it from being cleaned; a
    unit with nothing to remove is no failure; a failed unit is reset first (PID 1 cleans
    only inactive units, and stopping does not reset it); a timer is cleaned of its
    persistent stamp (``state``, the only kind a timer takes: ``all`` finds nothing); a
    template is skipped (it has no resources of its own; portablectl fails on it).
    """
    # Here, not at the top: the manager's module (jeepney) is loaded only where a manager is
    # connected, never by a detach with --root (so in _start_clean and _reset_failed).
    from portable.systemd.manager import ACTIVE_STATES, ManagerError

    kinds = ["all", "fdstore"]
    started: list[str] = []
    errors: list[str] = []
    for name in names:
        if "@." in name:
            continue
        try:
            _start_clean(manager, name, kinds)
        except ManagerError as exc:
            if exc.error_name in _NOTHING_TO_CLEAN:
                continue
            state = manager.active_state(name) if exc.error_name == _UNIT_BUSY else ""
            hint = ""
            if state in ACTIVE_STATES:
                hint = f" ({name} is still {state}, its data is kept: --now stops it first)"
            errors.append(f"{exc}{hint}")
            continue
        started.append(name)
    cleaned = []
    for name in started:
        try:
            result = manager.wait_cleaned(name)
        except ManagerError as exc:
            errors.append(str(exc))
            continue
        if result in ("", "success"):
            cleaned.append(name)
        elif result == "timeout":
            errors.append(f"{name} is still being cleaned, not waiting for it any longer")
        else:
            errors.append(f"Cleaning {name} failed: result '{result}' (see 'journalctl -u {name}')")
    return cleaned, errors


def _start_clean(manager: Manager, name: str, kinds: list[str]) -> None:
    """``CleanUnit`` on one unit. Drops ``fdstore`` from ``kinds`` (for the next units too)
    when this systemd does not know it, and resets a failed unit once; ManagerError else."""
    from portable.systemd.manager import ManagerError  # here: see clean_units

    reset = False
    while True:
        what = ["state"] if name.endswith(".timer") else kinds
        try:
            manager.clean_unit(name, what)
            return
        except ManagerError as exc:
            if exc.error_name == _INVALID_ARGS and "fdstore" in what and "fdstore" in str(exc):
                kinds.remove("fdstore")  # systemd < 254 has no fd store to clean
            elif (
                exc.error_name == _UNIT_BUSY
                and not reset
                and manager.active_state(name) == "failed"
            ):
                manager.reset_failed_unit(name)
                reset = True
            else:
                raise


def detach(
    arg: str,
    options: DetachOptions,
    *,
    host: Host,
    registry: Registry,
    manager: Manager | None = None,
    prefixes: Sequence[str] = (),
    cwd: Path | None = None,
    clean: bool = False,
    force_reload: bool = False,
) -> DetachResult:
    """Detach image ``arg`` (name or path; the image itself need not exist any more)."""
    return detach_many(
        [arg],
        options,
        host=host,
        registry=registry,
        manager=manager,
        prefixes=prefixes,
        cwd=cwd,
        clean=clean,
        force_reload=force_reload,
    )


def detach_many(
    args: Sequence[str],
    options: DetachOptions,
    *,
    host: Host,
    registry: Registry,
    manager: Manager | None = None,
    prefixes: Sequence[str] = (),
    cwd: Path | None = None,
    clean: bool = False,
    force_reload: bool = False,
) -> DetachResult:
    """Detach several images at once: all or nothing, then a single reload if needed.

    ``prefixes`` limit which units ``--now`` stops, ``--enable`` disables and ``clean``
    cleans (all units of each image are removed, as systemd does); without them, each
    image's own prefix is used. ``clean`` needs the ``manager``; it runs after the units
    are stopped and the refusals (a running unit, a pre-detach hook) have passed, so a
    refused detach removes no data; a unit it can't clean is reported in
    :attr:`DetachResult.clean_errors` and the detach goes on, as portablectl's does.

    PID 1 is reloaded only when a unit removed is still loaded (:func:`portable.engine.reload.
    for_detach`), or with ``force_reload``; never with ``options.no_reload``.
    """
    if options.extensions and len(args) > 1:
        raise PortableError("--extension can be used with one image at a time")
    if clean and manager is None:
        raise PortableError("--clean needs the service manager; it can't be used with --root")
    images = [normalize_image_arg(arg, host=host, cwd=cwd) for arg in args]
    # Like the image: canonical if it exists, else as given (a deleted extension can still be
    # detached, spec 1.7).
    extensions = [normalize_image_arg(e, host=host, cwd=cwd) for e in options.extensions]
    result = DetachResult(images=images, units=[], changes=[])
    with host_lock(host):
        sweep(host, runtime=options.runtime)
        found: dict[str, AttachedUnit] = {}
        selected: dict[str, None] = {}  # ordered; a list's `in` was quadratic in the units
        # Every marker read once for all the images (100 images: 100 times fewer reads).
        attached = list(attached_units(host, options.runtime))
        for arg, image in zip(args, images, strict=True):
            units = find_attached(host, image, extensions, runtime=options.runtime, among=attached)
            if not units:
                raise not_attached(image, extensions)
            wanted = effective_prefixes(arg, prefixes, systemd=detect_systemd(host).major)
            for unit in units:
                found.setdefault(unit.name, unit)
                if unit_matches(unit.name, wanted):
                    selected.setdefault(unit.name)
        names = list(found)
        result.units = names
        if manager is not None and (options.now or options.enable):
            # here: only --now and --enable tell PID 1 more than the reload (see
            # portable.engine.attach.activate)
            from portable.engine.activation import Step, orphaned_units, perform

            # Units an earlier run (a killed reattach) removed without stopping them are
            # stopped and disabled too, as that run would have.
            systemd = detect_systemd(host).major
            wanted_orphans = [
                p for a in args for p in orphan_prefixes(a, prefixes, systemd=systemd)
            ]
            orphan_names = orphaned_units(manager, host, wanted_orphans)
            orphans = [n for n in orphan_names if n not in found]
            result.orphans = orphans
            # As portablectl: per unit (in name order) stop, then disable; the stop jobs are
            # always awaited, so the running-unit check below sees the result.
            steps = [
                Step(
                    unit=n,
                    disable=options.enable,
                    job="stop" if options.now and "@." not in n else None,
                )
                for n in sorted({*selected, *orphans})
            ]
            result.activation = perform(manager, steps, runtime=options.runtime, wait=True)
        if manager is not None and not options.force:
            active = manager.active_units(names)  # in one go, not once per unit
            for name in names:
                if name in active:
                    raise DetachRefused(active_refusal(name, now=options.now))
        per_image: list[tuple[Image, list[str]]] = []
        for image in dict.fromkeys(images):
            theirs = [
                u
                for u in found.values()
                if marker_matches_image(u.marker, image, extensions, match_all=True)
            ]
            per_image.append((detached_image(host, registry, theirs), [u.name for u in theirs]))
        for hooked, mine in per_image:
            run_pre_detach(registry, host, hooked, mine, options)
        if clean and manager is not None:
            result.cleaned, result.clean_errors = clean_units(manager, sorted(selected))
        tx = Transaction(host)
        try:
            remove_units(tx, host, list(found.values()), runtime=options.runtime)
        except BaseException:
            tx.rollback()
            raise
        tx.commit()
        result.changes = tx.changes
        for hooked, mine in per_image:
            # The files are gone: a failing hook is a warning
            result.warnings += run_post_detach(
                registry, host, hooked, mine, options, list(tx.changes)
            )
    if manager is not None and result.activation is not None:
        # Before the reload decision: a failed unit is never collected (see _reset_failed)
        _reset_failed(manager, [j.unit for j in result.activation.jobs if j.verb == "stop"])
    if manager is not None and not options.no_reload:
        plugins = hooked_plugins(registry, ["portable_post_detach"])
        gone = [*names, *result.orphans]
        done = reload_as_decided(
            manager, lambda: for_detach(manager, gone, plugins=plugins), force=force_reload
        )
        result.took(done)
    return result


def _reset_failed(manager: Manager, units: Sequence[str]) -> None:
    """Units detach stopped that ended up failed: reset them (``systemctl reset-failed``), so
    PID 1 forgets them once their files are gone, instead of keeping a ``not-found failed``
    entry around (portablectl leaves it; it also blocks a unit of that name from starting
    cleanly later). Done before the reload (or its skipping): reset, such a unit is collected
    at once, and no reload is needed for it."""
    from portable.systemd.manager import ManagerError  # here: see clean_units

    for name in units:
        try:
            if manager.active_state(name) == "failed":
                manager.reset_failed_unit(name)
        except ManagerError:  # gone meanwhile, or the manager refuses: nothing to forget
            continue
