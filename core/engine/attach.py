"""Attach: put an image's units on the host, sandboxed by a profile (spec 3).

The engine works in three phases:

1. *read and check* (nothing written): image, units, os-release ``ID=``, ``PORTABLE_PREFIXES``,
   the profile, units that exist on the host already or are running, lifecycle pre-hooks;
2. *write* (one :class:`~portable.engine.transaction.Transaction`, under the host lock): per unit
the
   drop-in directory, ``20-portable.conf``, ``10-profile.conf``, the unit file (in systemd's
   order: drop-ins before the unit, so a reload in between never sees an unsandboxed unit), then
   the image link; post-hooks; any failure rolls every file back;
3. *activate* (when a service manager is connected): reload (only if a unit written is loaded
   in PID 1: :mod:`portable.engine.reload`), enable, start.

Each phase is a public function (:func:`prepare`, :func:`run_pre_attach`, :func:`plan_files`,
:func:`write_plan`, :func:`run_post_attach`, :func:`activate`), so that reattach (and scripts)
can compose them; :func:`attach_many` runs them in order.

A re-run after an interrupted attach completes it: files already in place for this image are
kept, missing ones written. Attaching an image that is completely attached already reports so
and changes nothing (but still enables or starts as asked, and reloads if PID 1 needs it).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from portable.engine.dropins import (
    MARKER_FILE,
    PROFILE_FILE,
    extension_setting,
    path_problem,
    render_portable_dropin,
)
from portable.engine.record import Record
from portable.engine.reload import (
    Outcome,
    for_attach,
    hooked_plugins,
    reload_as_decided,
)
from portable.engine.state import _MAX_MARKER_LINE, read_marker_line
from portable.engine.sweep import sweep
from portable.engine.transaction import Transaction, host_lock
from portable.errors import BadImage, PortableError
from portable.images.arguments import derived_prefixes, effective_prefixes
from portable.images.inspect import (
    Inspection,
    check_extension_compatible,
    opened_tree,
    read_image_and_extensions,
    resolve_extensions,
)
from portable.images.resolve import resolve_image
from portable.images.runnable import Problem, check_image
from portable.images.unpacked import Unpacked, place, unpack_for_attach
from portable.plugin.registry import Registry
from portable.plugin.types import (
    AttachOptions,
    Change,
    ExtraSetting,
    Image,
    ImageMetadata,
    Profile,
    UnitFile,
)
from portable.security.floor import check_units as check_floor
from portable.security.floor import refusal as floor_refusal
from portable.systemd.host import ATTACHED_DIR, PORTABLES_DIR, UNIT_SEARCH_PATH, Host
from portable.systemd.names import (
    TRIGGER_UNIT_TYPES,
    format_marker,
    printable_path,
    unit_template,
)
from portable.systemd.version import detect as detect_systemd

if TYPE_CHECKING:
    from portable.systemd.manager import Manager

__all__ = [
    "COPY_MODES",
    "AttachBatch",
    "AttachResult",
    "UnitExists",
    "activate",
    "attach",
    "attach_many",
    "plan_files",
    "prepare",
    "run_attach_failed",
    "run_post_attach",
    "run_pre_attach",
    "write_plan",
]

COPY_MODES = ("auto", "copy", "symlink", "mixed")


class UnitExists(PortableError):
    """A unit of that name exists on the host already, or is running (systemd's UnitExists)."""


# A NamedTuple, not a dataclass (~0.3 ms to build): every attach imports this module.
class Planned(NamedTuple):
    """One file attach wants in place: its content (or link target) and how to report it."""

    local: Path
    kind: str  # "write", "copy" (regular file) or "symlink"
    data: bytes = b""
    target: str = ""
    source: str = ""
    mode: int = 0o644  # of a regular file: a profile's copy keeps its file's (ProfileDropin)

    def matches_disk(self) -> bool:
        """Is exactly this already there?"""
        try:
            if self.kind == "symlink":
                return os.readlink(self.local) == self.target
            st = os.lstat(self.local)
            if not stat.S_ISREG(st.st_mode) or st.st_size != len(self.data):
                return False  # (a huge file in the way is never read)
            if stat.S_IMODE(st.st_mode) != self.mode:
                return False
            return self.local.read_bytes() == self.data
        except OSError:
            return False


class AttachPlan(Record):
    """What an attach of one image will do; built by :func:`prepare` without writing."""

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "image",
        "metadata",
        "profile",
        "options",
        "where",
        "files",
        "image_links",
        "extra",
        "extensions",
        "inspection",
        "problems",
        "unpacked",
    )

    def __init__(
        self,
        *,
        image: Image,
        metadata: ImageMetadata,
        profile: Profile,
        options: AttachOptions,
        where: Path,  # local path of the attached directory
        files: dict[str, list[Planned]],  # unit name -> its files, in systemd's order
        image_links: list[Planned] | None = None,  # extensions first, then root
        extra: list[ExtraSetting] | None = None,
        extensions: list[Image] | None = None,
        inspection: Inspection | None = None,
        # What the image lacks for systemd to run its services (portable.images.runnable):
        # warnings
        problems: list[Problem] | None = None,
        # An archive image's tree (portable.images.unpacked): staged by prepare(), put in place
        # by write_plan()
        unpacked: Unpacked | None = None,
    ) -> None:
        self.image = image
        self.metadata = metadata
        self.profile = profile
        self.options = options
        self.where = where
        self.files = files
        self.image_links: list[Planned] = [] if image_links is None else image_links
        self.extra: list[ExtraSetting] = [] if extra is None else extra
        self.extensions: list[Image] = [] if extensions is None else extensions
        self.inspection = inspection
        self.problems: list[Problem] = [] if problems is None else problems
        self.unpacked = unpacked

    def release(self) -> None:
        """Drop what :func:`prepare` unpacked and :func:`write_plan` did not put in place (an
        archive image's staged tree). Safe to call more than once."""
        if self.unpacked is not None:
            self.unpacked.discard()

    def origin(self, unit: str) -> Image:
        """The image (root or an extension) a unit comes from."""
        if self.inspection is None:
            return self.image
        return self.inspection.origin.get(unit, self.image)

    def marker(self) -> str:
        return format_marker(self.image.path, [e.path for e in self.extensions])

    @property
    def units(self) -> tuple[UnitFile, ...]:
        return self.metadata.units


class AttachResult(Outcome):
    _FIELDS: ClassVar[tuple[str, ...]] = (
        *Outcome._FIELDS,
        "image",
        "units",
        "profile",
        "changes",
        "already_attached",
        "completed_interrupted",
        "problems",
    )

    def __init__(
        self,
        *,
        image: Image,
        units: tuple[UnitFile, ...],
        profile: Profile,
        changes: list[Change],
        already_attached: bool = False,
        completed_interrupted: bool = False,
        # What the image lacks for systemd to run its services (portable.images.runnable)
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__()  # what PID 1 was told: filled in by activate()
        self.image = image
        self.units = units
        self.profile = profile
        self.changes = changes
        self.already_attached = already_attached
        self.completed_interrupted = completed_interrupted
        self.problems: list[Problem] = [] if problems is None else problems


class AttachBatch(Outcome):
    """The outcome of :func:`attach_many`: per image, then the one reload and activation."""

    _FIELDS: ClassVar[tuple[str, ...]] = (*Outcome._FIELDS, "results", "hooked_plugins")

    def __init__(
        self,
        *,
        results: list[AttachResult],
        # Third-party plugins whose post-attach hooks ran: they may have changed other unit files
        hooked_plugins: list[str] | None = None,
    ) -> None:
        super().__init__()  # what PID 1 was told: filled in by activate()
        self.results = results
        self.hooked_plugins: list[str] = [] if hooked_plugins is None else hooked_plugins


def _check_prefixes(found: Inspection, prefixes: Sequence[str]) -> None:
    """Every match must be one of the root's and extensions' ``PORTABLE_PREFIXES`` (spec 2.5)."""
    valid = found.valid_prefixes()
    if valid and any(p not in valid for p in prefixes):
        exts = ", ".join(e.image.path for e in found.extensions)
        where = f"' or any of its extensions '{exts}" if exts else ""
        raise BadImage(
            "Selected matches '" + "', '".join(prefixes) + "' are not compatible with portable "
            f"service image '{found.image.path}{where}', refusing. (Acceptable prefix matches "
            "are: " + ", ".join(valid) + ")"
        )


def _profile_planned(
    host: Host, profile: Profile, unit: UnitFile, local: Path, copy_mode: str
) -> Planned | None:
    dropin = profile.dropin_for(unit.type)
    if dropin is None:
        return None
    # A link where the profile is a file this host can see and the copy mode allows it.
    if copy_mode != "copy" and dropin.path is not None and host.path(str(dropin.path)).is_file():
        return Planned(local=local, kind="symlink", target=str(dropin.path))
    return Planned(
        local=local,
        kind="copy",
        data=dropin.text.encode("utf-8", "surrogateescape"),
        source=str(dropin.path or ""),
        mode=dropin.mode,
    )


def plan_files(plan: AttachPlan, host: Host) -> None:
    """Fill ``plan.files``: every file the attach will write (drop-ins, units, image link),
    after the pre-attach hooks (their extra settings go into the drop-ins)."""
    image, opts = plan.image, plan.options
    # Units can be linked only into a directory image; raw and archive images get copies.
    is_dir_image = image.format.root_setting == "RootDirectory" and image.format.unpack is None
    os_rel = host.os_release_path()
    systemd = detect_systemd(host).major
    ext_fields = [e.release_fields for e in plan.inspection.extensions] if plan.inspection else []
    root_path = None
    if image.format.unpack is not None:
        if plan.unpacked is None:  # a plan not made by prepare(): the archive as it is now
            plan.unpacked = unpack_for_attach(host, image, runtime=opts.runtime, stage=False)
        root_path = plan.unpacked.path(image.path)
    plan.files = {}
    for unit in plan.units:
        d = plan.where / f"{unit.name}.d"
        origin = plan.origin(unit.name)
        # A unit from an extension is linked into (or copied from) that extension.
        from_dir = (
            is_dir_image
            if origin is image
            else origin.format.root_setting == "RootDirectory" and origin.format.unpack is None
        )
        files = [
            Planned(
                local=d / MARKER_FILE,
                kind="write",
                data=render_portable_dropin(
                    image,
                    unit,
                    host_os_release=os_rel,
                    systemd=systemd,
                    os_release_fields=plan.metadata.os_release_fields,
                    extension_fields=ext_fields,
                    extra=plan.extra,
                    root_path=root_path,
                    extension_images=plan.extensions,
                    origin=None if origin is image else origin,
                    relax_extension_check=opts.force,
                ),
            )
        ]
        profile = _profile_planned(host, plan.profile, unit, d / PROFILE_FILE, opts.copy_mode)
        if profile is not None:
            files.append(profile)
        if opts.copy_mode == "symlink" and from_dir:
            # The confined resolution of the unit inside the image: never a path on the host.
            files.append(
                Planned(
                    local=plan.where / unit.name,
                    kind="symlink",
                    target=origin.path.rstrip("/") + unit.resolved,
                )
            )
        else:
            files.append(
                Planned(
                    local=plan.where / unit.name,
                    kind="copy",
                    data=unit.data,
                    source=origin.path.rstrip("/") + unit.source if from_dir else "",
                )
            )
        plan.files[unit.name] = files
    portables = host.path(PORTABLES_DIR[opts.runtime])
    # As systemd: the extensions' links first, then the root image's (spec 3.9).
    plan.image_links = [
        Planned(local=portables / img.filename, kind="symlink", target=img.path, source=img.path)
        for img in [*plan.extensions, image]
    ]


def _check_paths_writable(image: Image, extensions: Sequence[Image]) -> None:
    """Refuse an image path the drop-in can't give PID 1 exactly (systemd would expand a
    ``%``, strip whitespace, split an extension list...): the service would run on another
    root, or with no ``RootDirectory=`` at all, on the host's (portablectl writes such paths)."""
    settings = [(image, image.format.root_setting)]
    settings += [(ext, extension_setting(ext)) for ext in extensions]
    for img, setting in settings:
        problem = path_problem(setting, img.path)
        if problem is not None:
            raise BadImage(
                f"Image path '{printable_path(img.path)}' {problem}, so it can't be written "
                f"as {setting}= in a unit file, refusing."
            )


def _read_and_check(
    arg: str,
    options: AttachOptions,
    image: Image,
    extensions: list[Image],
    profile: Profile,
    prefixes: Sequence[str],
    systemd: int,
    tree: Path | None,
    *,
    opened: bool,
) -> tuple[Inspection, list[Problem]]:
    """Read the image (from ``tree`` when given: ``opened`` by :func:`_prepare`, or an archive's
    unpacked tree) and its extensions; refuse what systemd refuses, and what the profile's floor
    forbids; what the image lacks to run its services."""
    # Units are required only after the prefix check, as systemd orders its refusals.
    found = read_image_and_extensions(
        image,
        extensions,
        prefixes,
        relax=options.force,
        require_units=False,
        systemd=systemd,
        root_tree=tree,
    )
    meta = found.metadata
    if not meta.os_release_fields.get("ID"):
        raise BadImage(f"Image {image.path} os-release metadata lacks the ID field")
    for ext in found.extensions:
        check_extension_compatible(meta, ext, systemd=systemd)
    _check_prefixes(found, prefixes)
    for unit in meta.units:
        if len(f"{unit.name}.d".encode()) > 255:  # a valid unit name may have 255 bytes
            raise BadImage(
                f"Failed to attach unit '{unit.name}': File name too long (its drop-in "
                "directory name would have more than 255 bytes)"
            )
    if not meta.units:
        raise BadImage(
            f"Couldn't find any matching unit files in image '{image.path}"
            + (
                "' or any of its extensions '" + ", ".join(e.path for e in extensions)
                if extensions
                else ""
            )
            + "', refusing."
        )
    # The image may not undo the profile's sandbox (not even with --force: only by naming the
    # settings allowed). Checked before anything on the host is looked at: it is the image's.
    findings = check_floor(
        meta.units,
        profile,
        image_prefixes=derived_prefixes(arg, systemd),
        systemd=systemd,
        allow=options.allow_settings,
    )
    if findings:
        raise floor_refusal(image.path, profile, findings)
    # An image systemd can't start a service from is attached by portablectl without a word;
    # here a warning each (the CLI prints them), or with --strict-image a refusal.
    problems = check_image(
        image, meta.units, profile, extensions=extensions, tree=tree if opened else None
    )
    if problems and options.strict_image:
        raise BadImage(
            f"Image '{image.path}' can't run a portable service as is ({problems[0]}"
            + (f"; and {len(problems) - 1} more" if len(problems) > 1 else "")
            + "; see 'portable inspect'), refusing (--strict-image)."
        )
    return found, problems


def prepare(
    arg: str,
    options: AttachOptions,
    *,
    host: Host,
    registry: Registry,
    cwd: Path | None = None,
    stage: bool = True,
) -> AttachPlan:
    """Phase 1 up to the host checks: read the image and decide every file. Writes nothing,
    except that an archive image is unpacked to be read (:mod:`portable.images.unpacked`):
    :func:`write_plan` puts that tree in place, :meth:`AttachPlan.release` drops it. With
    ``stage`` False an archive is read through its format's ``open`` instead (a preview)."""
    unpacked: list[Unpacked] = []
    try:
        return _prepare(arg, options, host, registry, cwd, stage=stage, unpacked=unpacked)
    except BaseException:
        for u in unpacked:
            u.discard()
        raise


def _prepare(
    arg: str,
    options: AttachOptions,
    host: Host,
    registry: Registry,
    cwd: Path | None,
    *,
    stage: bool,
    unpacked: list[Unpacked],
) -> AttachPlan:
    if options.prefixes == ("-",):
        raise PortableError("Refusing all unit file match.")
    if options.copy_mode not in COPY_MODES:
        raise PortableError(f"Failed to parse --copy= argument: {options.copy_mode}")
    profile = registry.profile(options.profile).spec
    systemd = detect_systemd(host).major
    prefixes = effective_prefixes(arg, options.prefixes, systemd=systemd)
    image = resolve_image(arg, host=host, registry=registry, cwd=cwd)
    extensions = resolve_extensions(options.extensions, host=host, registry=registry, cwd=cwd)
    _check_paths_writable(image, extensions)
    if image.format.unpack is not None:
        # Unpacked once, read from there, and that very tree is what the service runs
        unpacked.append(unpack_for_attach(host, image, runtime=options.runtime, stage=stage))
    tree = unpacked[0].tree if unpacked else None
    with ExitStack() as stack:
        opened = tree is None and image.format.unpack is None
        if opened:
            # Opened once, read and checked (runnable) through the same tree: each open of a raw
            # image sets up and tears down loop devices (whose uevents PID 1 then handles)
            tree = stack.enter_context(opened_tree(image))
        found, problems = _read_and_check(
            arg, options, image, extensions, profile, prefixes, systemd, tree, opened=opened
        )
    meta = found.metadata
    plan = AttachPlan(
        image=image,
        metadata=meta,
        profile=profile,
        options=options,
        where=host.path(ATTACHED_DIR[options.runtime]),
        files={},
        extensions=extensions,
        inspection=found,
        problems=problems,
        unpacked=unpacked[0] if unpacked else None,
    )
    plan_files(plan, host)
    return plan


def _ours(plan: AttachPlan, unit: str) -> bool:
    marker = read_marker_line(plan.where / f"{unit}.d" / MARKER_FILE)
    return marker == plan.marker()


def _search_path_listing(host: Host) -> list[tuple[Path, frozenset[str]]]:
    """Each directory of the unit search path with the names in it, listed once: checking
    10,000 units against 9 directories by lstat cost 90,000 system calls (issue 16, item 7).
    The same answer as lexists(dir / name): a directory that can't be listed has no entries."""
    listing = []
    for d in UNIT_SEARCH_PATH:
        local = host.path(d)
        try:
            names = frozenset(os.listdir(local))
        except OSError:
            names = frozenset()
        listing.append((local, names))
    return listing


def _on_host(
    plan: AttachPlan,
    host: Host,
    unit: str,
    ours: bool,
    listing: list[tuple[Path, frozenset[str]]] | None = None,
) -> bool:
    """Does the host have unit file ``unit`` (other than ours), or, where no file of that name
    exists, the template of the instance ``unit``? As systemd's unit_file_exists(): an image's
    ``getty@tty9.service`` would take the place of the host's ``getty@.service`` instance."""
    if listing is None:
        listing = _search_path_listing(host)
    found = False
    for name in (unit, unit_template(unit)):
        if name is None or found:
            break  # a file of the instance's own name is what systemd loads, not the template
        is_ours = ours if name == unit else _ours(plan, name)
        for directory, names in listing:
            if name not in names:
                continue
            local = directory / name
            if local.parent == plan.where and is_ours:
                found = True  # our own unit from an earlier (maybe interrupted) attach
                continue
            return True
    return False


def _active(plan: AttachPlan, manager: Manager | None) -> set[str]:
    """Which of the plan's units run (none asked with --force, or without a manager)."""
    if manager is None or plan.options.force:
        return set()
    # Asked in one go, not once per unit (issue 16, item 7: 10,000 units)
    return manager.active_units(list(plan.files))


def _check_host(plan: AttachPlan, host: Host, active: set[str], *, compare: bool = True) -> str:
    """Refuse units that exist elsewhere or run (``active``: :func:`_active`; unless --force).

    With ``compare=False`` an attach of this image with other settings is not refused (yet):
    the check before the pre-attach hooks, whose settings are not in the plan then.

    :returns: ``"fresh"`` (nothing of this image here), ``"complete"`` (attached exactly like
        this already) or ``"partial"`` (an interrupted attach: some files missing, none
        different).
    """
    force = plan.options.force
    missing = differs = ours_any = False
    listing = None if force else _search_path_listing(host)
    for unit, files in plan.files.items():
        ours = _ours(plan, unit)
        ours_any = ours_any or ours
        if not force:
            if _on_host(plan, host, unit, ours, listing):
                raise UnitExists(f"Unit file '{unit}' exists on the host already, refusing.")
            if not ours and unit in active:
                raise UnitExists(f"Unit file '{unit}' is active already, refusing.")
        for f in files:
            if f.matches_disk():
                continue
            if os.path.lexists(f.local) and ours:
                differs = True
            else:
                missing = True
    if any(not os.path.lexists(link.local) for link in plan.image_links):
        missing = True
    if plan.unpacked is not None and plan.unpacked.staged is not None:
        missing = True  # the archive's tree is not in its cache directory (removed since?)
    if not ours_any:
        return "fresh"
    if differs and not force and compare:
        raise UnitExists(
            f"Image '{plan.image.path}' is already attached with other settings; detach it "
            "first, use 'portable reattach' to update it, or --force."
        )
    return "partial" if missing or differs else "complete"


def run_pre_attach(plan: AttachPlan, registry: Registry, host: Host) -> None:
    """Call the ``portable_pre_attach`` hooks; their extra settings join the plan, a veto
    (:class:`~portable.errors.AttachRefused`) stops the attach before anything is written."""
    plan.extra.extend(
        registry.hooks.pre_attach(
            host=host,
            image=plan.image,
            units=plan.units,
            profile=plan.profile,
            options=plan.options,
            metadata=plan.metadata,
        )
    )


def _copy_image(tx: Transaction, link: Planned, image: Image) -> None:
    """--copy=mixed: a copy of the image in the portables directory instead of a link.

    Unlike portablectl (copy_tree() keeps every mode and node), the copy gives no other user
    more than the image gave: an image kept in a 0700 directory would otherwise expose its
    setuid binaries and device nodes in the world-readable /etc/portables. The copy's top is
    0700 (a raw file 0600), setuid/setgid bits and file capabilities are dropped and device
    nodes left out; the service itself runs from the original path, so nothing it uses changes.
    The tree is built inside a 0700 holder, so it is never reachable before that is done.
    """
    if os.path.lexists(link.local):
        return
    tx.mkdir(link.local.parent, record=False)
    tx.confine(link.local)
    # here: only --copy=mixed runs cp (subprocess: ~2 ms to import; shutil, with bz2 and lzma,
    # ~1.4 ms)
    import shutil
    import subprocess

    # os.urandom, not secrets (~3 ms to import): the name only has to be unlikely to exist.
    # A holder directory name, which the next run's recovery removes if this one is killed.
    holder = link.local.parent / f".#portable-hold-new.{os.urandom(4).hex()}"
    os.mkdir(holder, 0o700)
    temp = holder / link.local.name
    # cp -a: FIFOs and device nodes are copied as nodes (never opened), holes of sparse files
    # stay holes, symlinks stay links, owners, modes, times and xattrs are kept.
    cp = ["cp", "-a", "--sparse=always", "--reflink=auto", "--no-target-directory", "--"]
    try:
        proc = subprocess.run(
            [*cp, str(image.host_path), str(temp)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["cp failed"])[-1]
            raise PortableError(f"Cannot copy image '{image.path}' for --copy=mixed: {why}")
        try:
            _defang_copy(temp)
        except OSError as exc:
            raise PortableError(
                f"Cannot copy image '{image.path}' for --copy=mixed: {exc.strerror or exc}"
            ) from exc
        os.rename(temp, link.local)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
    tx.adopt(link.local, source=image.path)


_SETID = stat.S_ISUID | stat.S_ISGID


def _defang_copy(top: Path) -> None:
    """Take from a --copy=mixed copy what it would give other users (see :func:`_copy_image`)."""
    st = os.lstat(top)
    if not stat.S_ISDIR(st.st_mode):
        os.chmod(top, stat.S_IMODE(st.st_mode) & 0o600 & ~_SETID)  # a raw image file
        return
    os.chmod(top, 0o700)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
                os.unlink(p)
            elif stat.S_ISREG(mode):
                if mode & _SETID:
                    os.chmod(p, stat.S_IMODE(mode) & ~_SETID)
                try:  # a file capability (cap_setuid+ep) is as good as setuid root
                    os.removexattr(p, "security.capability", follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                        raise


def write_plan(plan: AttachPlan, tx: Transaction, *, replace_all: bool = False) -> None:
    """Phase 2: write every planned file that is not in place yet, in systemd's order."""
    force = plan.options.force or replace_all
    if plan.unpacked is not None:
        place(tx, plan.image, plan.unpacked)
    tx.mkdir(plan.where)
    try:
        # One sync for all the units' files instead of an fsync each (Transaction.batched)
        with tx.batched():
            for unit, files in plan.files.items():
                try:
                    _write_unit(plan, tx, unit, files, force=force)
                except PermissionError:
                    raise  # the CLI asks "are you root?"
                except OSError as exc:
                    # e.g. a file where the drop-in directory goes: one line, as portablectl
                    raise PortableError(
                        f"Failed to attach unit '{unit}': {exc.strerror or exc}"
                    ) from exc
    except PermissionError:
        raise
    except OSError as exc:  # putting a file in place at the end of the batch
        raise PortableError(
            f"Failed to attach unit '{_unit_of(plan, exc.filename)}': {exc.strerror or exc}"
        ) from exc
    for link, image in zip(plan.image_links, [*plan.extensions, plan.image], strict=True):
        if plan.options.copy_mode == "mixed":
            _copy_image(tx, link, image)
        elif not os.path.lexists(link.local):
            # As systemd: an existing entry is left alone and a failure doesn't fail the attach.
            try:
                tx.mkdir(link.local.parent, record=False)
                tx.symlink(link.local, link.target, replace=False)
            except OSError:
                pass


def _unit_of(plan: AttachPlan, local: object) -> str:
    """The unit a file of ``plan`` belongs to: ``UNIT`` or ``UNIT.d/FILE``."""
    p = Path(str(local))
    return p.name if p.parent == plan.where else p.parent.name.removesuffix(".d")


def _write_unit(
    plan: AttachPlan, tx: Transaction, unit: str, files: Sequence[Planned], *, force: bool
) -> None:
    d = plan.where / f"{unit}.d"
    tx.mkdir(d)
    ours = _ours(plan, unit)
    for f in files:
        if f.local.name == MARKER_FILE:
            # Once this marker is in place the unit is ours: what _ours() would read back (the
            # files of a batch are put in place only at its end, so it can't be read back).
            line = f.data[:_MAX_MARKER_LINE].split(b"\n", 1)[0]
            ours = line.decode("utf-8", "surrogateescape") == plan.marker()
        if f.matches_disk():
            continue
        replace = force or f.local.name == MARKER_FILE or ours
        if f.kind == "symlink":
            tx.symlink(f.local, f.target, replace=replace)
        else:
            tx.write(f.local, f.data, replace=replace, change=f.kind, source=f.source, mode=f.mode)


@contextmanager
def releasing() -> Iterator[list[AttachPlan]]:
    """A list for the plans made in the block; at its end, what :func:`prepare` unpacked for
    them and :func:`write_plan` did not put in place (after a failure) is dropped."""
    plans: list[AttachPlan] = []
    try:
        yield plans
    finally:
        for plan in plans:
            plan.release()


def attach(
    arg: str,
    options: AttachOptions,
    *,
    host: Host,
    registry: Registry,
    manager: Manager | None = None,
    cwd: Path | None = None,
    force_reload: bool = False,
) -> AttachResult:
    """Attach image ``arg`` (name or path): check, write, and activate if ``manager`` is given.

    PID 1 is reloaded only if the attach needs it (:mod:`portable.engine.reload`), or with
    ``force_reload``; never with ``options.no_reload``.

    :raises PortableError: anything that stops the attach; nothing is left on disk then.
    """
    batch = attach_many(
        [arg],
        options,
        host=host,
        registry=registry,
        manager=manager,
        cwd=cwd,
        force_reload=force_reload,
    )
    (result,) = batch.results
    result.activation = batch.activation  # (the reload: see activate)
    return result


def attach_many(
    args: Sequence[str],
    options: AttachOptions,
    *,
    host: Host,
    registry: Registry,
    manager: Manager | None = None,
    cwd: Path | None = None,
    force_reload: bool = False,
) -> AttachBatch:
    """Attach several images at once: all or nothing, then a single reload (if needed).

    Every image is read and checked before anything is written; the files of all of them are
    written in one transaction, so a failure on the last image leaves none attached.
    """
    with releasing() as plans:
        if options.extensions and len(args) > 1:
            raise PortableError("--extension can be used with one image at a time")
        if manager is not None:
            detect_systemd(host, manager)  # before profiles are loaded: they follow it too
        for arg in args:
            plans.append(prepare(arg, options, host=host, registry=registry, cwd=cwd))
        owner: dict[str, str] = {}
        for plan in plans:
            for unit in plan.units:
                if unit.name in owner and owner[unit.name] != plan.image.path:
                    raise UnitExists(
                        f"Unit file '{unit.name}' is in both '{owner[unit.name]}' and "
                        f"'{plan.image.path}', refusing."
                    )
                owner[unit.name] = plan.image.path
        results: list[AttachResult] = []
        hooked: list[AttachPlan] = []  # plans whose pre-attach hooks were called
        with host_lock(host):
            sweep(host, runtime=options.runtime)
            try:
                statuses = []
                for plan in plans:
                    # Before the hooks only what can't depend on them: the files are compared with
                    # the plan once the hooks' settings are in it. What runs is asked once (a
                    # D-Bus round trip): the hooks change the plan's files, not its units.
                    active = _active(plan, manager)
                    _check_host(plan, host, active, compare=False)
                    hooked.append(plan)
                    run_pre_attach(plan, registry, host)
                    if plan.extra:  # hooks changed the drop-ins: re-plan
                        plan_files(plan, host)
                    statuses.append(_check_host(plan, host, active))
                tx = Transaction(host)
                try:
                    for plan, status in zip(plans, statuses, strict=True):
                        result = AttachResult(
                            image=plan.image,
                            units=plan.units,
                            profile=plan.profile,
                            changes=[],
                            already_attached=status == "complete",
                            completed_interrupted=status == "partial",
                            problems=plan.problems,
                        )
                        if status != "complete":
                            start = len(tx.changes)
                            write_plan(plan, tx)
                            result.changes = tx.changes[start:]
                            run_post_attach(plan, registry, host, result.changes)
                        results.append(result)
                except BaseException:
                    tx.rollback()
                    raise
            except BaseException as exc:
                run_attach_failed(hooked, registry, host, exc)
                raise
            tx.commit()
        batch = AttachBatch(
            results=results,
            hooked_plugins=hooked_plugins(registry, ["portable_post_attach"]),
        )
        if manager is not None:
            activate(batch, options, manager, force_reload=force_reload)
        return batch


def run_attach_failed(
    plans: Sequence[AttachPlan], registry: Registry, host: Host, error: BaseException
) -> None:
    """Call the ``portable_attach_failed`` hooks for each plan (its files are rolled back).

    A failing hook is a warning on stderr: what the user must see is ``error``.
    """
    for plan in plans:
        for warning in registry.hooks.attach_failed(
            host=host, image=plan.image, units=plan.units, options=plan.options, error=error
        ):
            registry.hooks.warn(warning)


def run_post_attach(
    plan: AttachPlan, registry: Registry, host: Host, changes: Sequence[Change]
) -> None:
    """Call the ``portable_post_attach`` hooks with what was written (inside the transaction:
    a failing hook rolls the attach back)."""
    registry.hooks.post_attach(
        host=host,
        image=plan.image,
        units=plan.units,
        profile=plan.profile,
        options=plan.options,
        changes=changes,
        metadata=plan.metadata,
    )


def activate(
    batch: AttachBatch, options: AttachOptions, manager: Manager, *, force_reload: bool = False
) -> None:
    """Phase 3: one reload if needed (:func:`portable.engine.reload.for_attach`; always with
    ``force_reload``, never with --no-reload), then per unit enable and/or start it; all jobs
    of the batch are queued before any is awaited.

    The reload comes before the enable, as portablectl's does: what the enable links (a
    target's ``.wants/``) reaches PID 1 at its next reload either way.
    """
    if not options.no_reload and batch.results:
        units = [u.name for r in batch.results for u in r.units]
        changed = {u.name for r in batch.results if not r.already_attached for u in r.units}
        done = reload_as_decided(
            manager,
            lambda: for_attach(manager, units, changed, plugins=batch.hooked_plugins),
            force=force_reload,
        )
        for outcome in (batch, *batch.results):
            outcome.took(done)
    if not (options.enable or options.now):
        return
    # here: only --enable and --now tell PID 1 more than the reload (the module builds 3
    # dataclasses, ~1.3 ms at import)
    from portable.engine.activation import Step, perform

    where = ATTACHED_DIR[options.runtime]
    ordered = [u for result in batch.results for u in result.units]
    # Triggers (sockets, timers, paths) first. portablectl 252 enables and starts each unit as
    # it walks the change list PID 1 returned, which comes out of a hashmap: any order. A
    # service started before its socket makes the socket refuse to listen ("Socket service
    # foo.service already active, refusing"); started after it, the service finds the socket
    # listening and takes it. Each unit's enable-then-start block stays as portablectl's.
    ordered.sort(key=lambda u: u.type not in TRIGGER_UNIT_TYPES)
    steps = [
        Step(
            unit=u.name,
            enable_path=f"{where}/{u.name}" if options.enable else None,
            # A template can't be started without an instance: not tried (portablectl tries
            # and prints the failure).
            job="start" if options.now and "@." not in u.name else None,
        )
        for u in ordered
    ]
    batch.activation = perform(manager, steps, runtime=options.runtime, wait=not options.no_block)
