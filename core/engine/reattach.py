"""Reattach: replace an attached image by another version in one step (spec 5.1).

The old version's units (found by image *name*, so ``foo_2`` replaces ``foo_1``) are removed and
the new version's written in a single transaction: if anything fails, the old files are back.
With ``--now``, units that went away are stopped, the others restarted in place (keeping their
runtime state and fd store), as systemd does. Units that went away in an earlier reattach
killed before it could stop them (still loaded from their removed unit file) are stopped too.

What the attached version had is kept unless an option says otherwise (:func:`kept_options`):
its profile (read from ``10-profile.conf``), copy mode, directory (``/etc`` or ``/run``) and
extensions. portablectl reattaches with its defaults instead (``default`` profile, ``/etc``), so
a service attached with ``--profile strict`` silently lost its sandbox. What a plugin gave the
attached version is the plugin's to keep: the attach half runs with ``options.reattach`` set,
while the attached version's files are still in place (the netns plugin keeps its namespace so).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from portable.engine.activation import Step, orphaned_units, perform
from portable.engine.attach import (
    AttachResult,
    plan_files,
    prepare,
    releasing,
    run_attach_failed,
    run_post_attach,
    run_pre_attach,
    write_plan,
)
from portable.engine.detach import (
    detached_image,
    find_attached,
    not_attached,
    orphan_prefixes,
    remove_units,
    run_post_detach,
    run_pre_detach,
)
from portable.engine.dropins import PROFILE_FILE
from portable.engine.reload import (
    ReloadDecision,
    for_attach,
    for_detach,
    hooked_plugins,
    reload_as_decided,
)
from portable.engine.state import AttachedUnit, attached_units, recorded_profile
from portable.engine.sweep import sweep
from portable.engine.transaction import Transaction, host_lock
from portable.images.resolve import resolve_image
from portable.images.unpacked import remove_unused
from portable.plugin.registry import Registered, Registry
from portable.plugin.types import AttachOptions, Change, DetachOptions, Profile
from portable.systemd.host import ATTACHED_DIR, PORTABLES_DIR, Host
from portable.systemd.names import is_portable_unit_type, marker_matches_image
from portable.systemd.version import detect as detect_systemd

if TYPE_CHECKING:
    from portable.systemd.manager import Manager

__all__ = [
    "KEEPABLE",
    "AttachedVersion",
    "ReattachResult",
    "attached_version",
    "kept_options",
    "reattach",
]


@dataclass(kw_only=True)
class ReattachResult:
    attached: AttachResult
    removed: list[Change]  # detach changes whose file name the attach did not write again
    stopped: list[str] = field(default_factory=list)  # with --now: gone units and orphans
    # "portable: ..." lines: what an option changed from the attached version, or could not keep
    notes: list[str] = field(default_factory=list)


# The options whose value the attached version has, kept when not given (AttachOptions fields).
KEEPABLE = ("profile", "copy_mode", "runtime", "extensions")


@dataclass(frozen=True, kw_only=True)
class AttachedVersion:
    """What the attached version of an image had, read back from its files."""

    units: tuple[AttachedUnit, ...]
    runtime: bool
    extensions: tuple[str, ...]
    profile: str | None  # None: not recognisable (``profile_problem`` says why)
    profile_problem: str
    copy_mode: str


def attached_version(
    image: str,
    *,
    host: Host,
    registry: Registry,
    runtime: bool | None = None,
    extensions: Sequence[str] | None = None,
) -> AttachedVersion | None:
    """The attached version of ``image`` (path or name; matched by image name, so ``foo_2``
    finds ``foo_1``): in /etc, else /run (``runtime``: only that one), with any extensions
    (``extensions``: exactly those, as detach matches). None if nothing is attached."""
    for rt in (False, True) if runtime is None else (runtime,):
        if extensions is None:
            units = [
                u
                for u in attached_units(host, rt)
                if marker_matches_image(u.marker[:1], image, (), match_all=True)
            ]
            # One attach per image name; should two markers differ, the first one's units.
            units = [u for u in units if u.marker == units[0].marker] if units else []
        else:
            units = [
                u
                for u in attached_units(host, rt)
                if marker_matches_image(u.marker, image, extensions, match_all=True)
            ]
        if units:
            profile, problem = _recorded_profile(host, registry, units)
            spec = registry.profile(profile).spec if profile is not None else None
            return AttachedVersion(
                units=tuple(units),
                runtime=rt,
                extensions=tuple(units[0].marker[1:]),
                profile=profile,
                profile_problem=problem,
                copy_mode=_recorded_copy_mode(host, units, spec),
            )
    return None


def _recorded_profile(
    host: Host, registry: Registry, units: Sequence[AttachedUnit]
) -> tuple[str | None, str]:
    """(profile name, "") if every unit's ``10-profile.conf`` names the same known profile, or
    is a copy of its drop-in; else (None, why not)."""
    known = registry.profiles()
    names: set[str] = set()
    for u in units:
        dropin = f"{ATTACHED_DIR[u.runtime]}/{u.name}.d/{PROFILE_FILE}"
        name = recorded_profile(host, dropin)
        if name is None:
            continue  # no drop-in for this unit type
        if name not in known:
            # A copy without systemd's first line (a TOML or Python profile): its text says.
            name = _profile_by_content(host, known, u.name, dropin) or name
        names.add(name)
    if not names:
        return None, "no 10-profile.conf"
    if len(names) > 1:
        return None, "its units have different profiles: " + ", ".join(sorted(names))
    (name,) = names
    if name not in known:
        return None, (
            "its 10-profile.conf is not one of a profile known here"
            if name.startswith("(")
            else f"its profile '{name}' is not known here"
        )
    return name, ""


def _profile_by_content(
    host: Host, known: Mapping[str, Registered[Profile]], unit: str, dropin: str
) -> str | None:
    try:
        local = host.path(dropin)
        if not stat.S_ISREG(os.lstat(local).st_mode) or os.lstat(local).st_size > 1 << 20:
            return None
        text = local.read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return None
    unit_type = unit.rsplit(".", 1)[-1]
    for name, reg in known.items():
        d = reg.spec.dropin_for(unit_type)
        if d is not None and d.text == text:
            return name
    return None


def _recorded_copy_mode(host: Host, units: Sequence[AttachedUnit], profile: Profile | None) -> str:
    """The copy mode that puts the same kinds of files in place as the attached ones."""
    where = host.path(ATTACHED_DIR[units[0].runtime])
    if any(os.path.islink(where / u.name) for u in units):
        return "symlink"
    for u in units:
        dropin = where / f"{u.name}.d" / PROFILE_FILE
        if os.path.lexists(dropin) and not os.path.islink(dropin):
            # A copy: --copy=copy, unless auto could not have linked (no profile file here).
            d = profile.dropin_for(u.name.rsplit(".", 1)[-1]) if profile else None
            if d is None or (d.path is not None and host.path(str(d.path)).is_file()):
                return "copy"
    token = units[0].marker[0]
    copy = host.path(PORTABLES_DIR[units[0].runtime]) / token.rstrip("/").rsplit("/", 1)[-1]
    # --copy=mixed copies the image into the portables directory (an image placed there
    # itself is not a copy).
    if os.path.lexists(copy) and not os.path.islink(copy) and host.path(token) != copy:
        return "mixed"
    return "auto"


def kept_options(
    image: str,
    options: AttachOptions,
    *,
    host: Host,
    registry: Registry,
    explicit: Collection[str] | None = None,
) -> tuple[AttachOptions, list[str]]:
    """``options`` with what the attached version of ``image`` had where no option was given.

    ``explicit``: the :data:`KEEPABLE` options the user gave (the CLI knows); None: those that
    differ from :class:`AttachOptions`' defaults. Runtime: without an explicit ``--runtime`` the
    attached version is looked for in /etc, then /run, and kept where it is. Returns the options
    and the ``portable: ...`` lines saying what an option changed, or what could not be kept.
    """
    if explicit is None:
        default = AttachOptions()
        explicit = {k for k in KEEPABLE if getattr(options, k) != getattr(default, k)}
    old = attached_version(
        image,
        host=host,
        registry=registry,
        runtime=options.runtime if "runtime" in explicit else None,
        extensions=options.extensions if "extensions" in explicit else None,
    )
    if old is None:
        return options, []  # the caller says it is not attached
    notes: list[str] = []
    kept: dict[str, object] = {"runtime": old.runtime}
    if "extensions" not in explicit:  # --extension given: those, not the attached ones
        kept["extensions"] = old.extensions
    if "profile" not in explicit:
        if old.profile is None:
            notes.append(
                f"portable: the attached profile can't be determined ({old.profile_problem}); "
                f"using '{options.profile}' (--profile chooses another)"
            )
        else:
            kept["profile"] = old.profile
    elif old.profile is not None and old.profile != options.profile:
        notes.append(
            f"portable: profile changes from '{old.profile}' to '{options.profile}' "
            "(as --profile says)"
        )
    if "copy_mode" not in explicit:
        kept["copy_mode"] = old.copy_mode
    elif old.copy_mode != options.copy_mode:
        notes.append(
            f"portable: copy mode changes from '{old.copy_mode}' to '{options.copy_mode}' "
            "(as --copy says)"
        )
    return dataclasses.replace(options, **kept), notes  # type: ignore[arg-type]


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def reattach(
    arg: str,
    options: AttachOptions,
    *,
    host: Host,
    registry: Registry,
    manager: Manager | None = None,
    cwd: Path | None = None,
    force_reload: bool = False,
    explicit: Collection[str] | None = None,
) -> ReattachResult:
    """Detach the attached version of ``arg``'s image and attach ``arg`` instead, keeping what
    the attached version had where ``explicit`` does not name the option (:func:`kept_options`).

    PID 1 is reloaded if a unit removed or written is loaded (:mod:`portable.engine.reload`; the
    usual case: the old version runs), or with ``force_reload``; never with ``no_reload``.

    An archive image is unpacked into a new cache directory when it changed; the old version's
    tree is removed only once nothing uses it (:mod:`portable.images.unpacked`).
    """
    with releasing() as plans:
        if manager is not None:
            detect_systemd(host, manager)  # before profiles are loaded: they follow it too
        # The image must exist before anything is read of the attached one (and the name it
        # resolves to is the one find_attached matches below).
        image = resolve_image(arg, host=host, registry=registry, cwd=cwd)
        with host_lock(host):
            # What a killed run left is rolled back first: the attached version is read as it was.
            for runtime in (False, True):
                sweep(host, runtime=runtime)
            options, notes = kept_options(
                image.path, options, host=host, registry=registry, explicit=explicit
            )
        options = dataclasses.replace(options, reattach=True)
        plan = prepare(arg, options, host=host, registry=registry, cwd=cwd)  # new image must exist
        plans.append(plan)
        detach_opts = DetachOptions(
            runtime=options.runtime,
            force=True,
            extensions=options.extensions,
            plugin_options=options.plugin_options,  # reattach's, for both halves
        )
        with host_lock(host):
            sweep(host, runtime=options.runtime)
            ext_paths = [e.path for e in plan.extensions]
            old = find_attached(host, plan.image.path, ext_paths, runtime=options.runtime)
            if not old:
                raise not_attached(plan.image.path, ext_paths)
            old_names = [u.name for u in old]
            orphans: list[str] = []
            if manager is not None and options.now:
                # Looked for before this run removes anything, so that only what an earlier run
                # left behind is found: what this run removes is stopped as systemd does.
                orphans = orphaned_units(
                    manager,
                    host,
                    orphan_prefixes(arg, options.prefixes, systemd=detect_systemd(host).major),
                )
            old_image = detached_image(host, registry, old)
            run_pre_detach(registry, host, old_image, old_names, detach_opts)
            try:
                run_pre_attach(plan, registry, host)
                if plan.extra:
                    plan_files(plan, host)
                tx = Transaction(host)
                try:
                    detach_changes = list(
                        remove_units(tx, host, old, runtime=options.runtime, unpacked=False)
                    )
                    start = len(tx.changes)
                    write_plan(plan, tx, replace_all=True)
                    attach_changes = tx.changes[start:]
                    # Unpacked trees nothing refers to with the new version's files in place
                    detach_changes += remove_unused(tx, host, runtime=options.runtime)
                    run_post_attach(plan, registry, host, attach_changes)
                except BaseException:
                    tx.rollback()
                    raise
            except BaseException as exc:
                run_attach_failed([plan], registry, host, exc)
                raise
            tx.commit()
            attach_changes = _as_if_detached_first(host, detach_changes, attach_changes)
            # Directories the detach meant to remove but that were not empty at commit are gone
            # from tx.changes: drop them here too.
            done = {id(c) for c in tx.changes}
            written = {_basename(c.path) for c in attach_changes}
            removed = [
                c for c in detach_changes if id(c) in done and _basename(c.path) not in written
            ]
            # As detach's: the old version's files are gone, a failing hook is a warning
            for warning in run_post_detach(
                registry, host, old_image, old_names, detach_opts, removed
            ):
                registry.hooks.warn(warning)
        attached = AttachResult(
            image=plan.image, units=plan.units, profile=plan.profile, changes=attach_changes
        )
        result = ReattachResult(attached=attached, removed=removed, notes=notes)
        if manager is not None:
            hooks = ["portable_post_attach", "portable_post_detach"]
            _activate(
                result,
                options,
                manager,
                orphans,
                old_names=old_names,
                plugins=hooked_plugins(registry, hooks),
                force_reload=force_reload,
            )
        return result


def _as_if_detached_first(
    host: Host, detach_changes: list[Change], attach_changes: list[Change]
) -> list[Change]:
    """The attach changes as systemd reports them after its complete detach.

    systemd detaches first, removing emptied directories (a unit's ``.d``, the attached
    directory), and the attach creates them again: "Created directory" lines. Done in one
    transaction here, those directories never went away (the detach's removal of them was
    dropped at commit); report them as systemd does, so that the change list matches.
    """
    written: dict[str, set[str]] = {}
    for c in attach_changes:
        parent, _, name = c.path.rpartition("/")
        written.setdefault(parent, set()).add(name)

    def emptied_by_detach(path: str) -> bool:
        """Would the detach have left it empty (all it holds now is what attach wrote)?"""
        local = host.path(path)
        if local.is_symlink() or not local.is_dir():
            return False
        names = set(os.listdir(local))
        mine = written.get(path, set()) | {
            d.rpartition("/")[2] for d in written if d.rpartition("/")[0] == path
        }
        return names <= mine

    kept = {c.path for c in detach_changes if c.type == "unlink" and emptied_by_detach(c.path)}
    made = {c.path for c in attach_changes if c.type == "mkdir"}
    out: list[Change] = []
    for c in attach_changes:
        d = c.path.rsplit("/", 1)[0]
        if c.path.endswith("/20-portable.conf") and d in kept and d not in made:
            attached_dir = d.rsplit("/", 1)[0]
            if attached_dir in kept and attached_dir not in made:
                out.append(Change(type="mkdir", path=attached_dir))
                made.add(attached_dir)
            out.append(Change(type="mkdir", path=d))
            made.add(d)
        out.append(c)
    return out


def _activate(
    result: ReattachResult,
    options: AttachOptions,
    manager: Manager,
    orphans: list[str],
    *,
    old_names: list[str],
    plugins: list[str],
    force_reload: bool,
) -> None:
    att = result.attached
    if not options.no_reload:
        written = [u.name for u in att.units]
        gone = [n for n in [*old_names, *orphans] if n not in written]

        def decide() -> ReloadDecision:
            decision = for_detach(manager, gone, plugins=plugins)
            if decision.needed:
                return decision
            return for_attach(manager, written, written, plugins=plugins)

        done = reload_as_decided(manager, decide, force=force_reload)
        att.took(done)
    if not (options.now or options.enable):
        return
    gone = [
        _basename(c.path)
        for c in result.removed
        if c.type == "unlink" and is_portable_unit_type(c.path)
    ]
    kept = [
        _basename(c.path)
        for c in att.changes
        if c.type in ("copy", "symlink") and is_portable_unit_type(c.path)
    ]
    gone += [n for n in orphans if n not in gone and n not in kept]
    where = ATTACHED_DIR[options.runtime]
    steps = [Step(unit=n, job="stop") for n in gone if options.now and "@." not in n]
    steps += [
        Step(
            unit=n,
            enable_path=f"{where}/{n}" if options.enable else None,
            job="restart" if options.now and "@." not in n else None,
        )
        for n in kept
    ]
    att.activation = perform(manager, steps, runtime=options.runtime, wait=not options.no_block)
    result.stopped = gone
