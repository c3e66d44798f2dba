"""Reattach: replace an attached image by another version in one step (spec 5.1).

The old version's units (found by image *name*, so ``foo_2`` replaces ``foo_1``) are removed and
the new version's written in a single transaction: if anything fails, the old files are back.
With ``--now``, units that went away are stopped, the others restarted in place (keeping their
runtime state and fd store), as systemd does. Units that went away in an earlier reattach
killed before it could stop them (still loaded from their removed unit file) are stopped too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from portable.attach import (
    AttachResult,
    plan_files,
    prepare,
    run_attach_failed,
    run_post_attach,
    run_pre_attach,
    write_plan,
)
from portable.detach import (
    find_attached,
    not_attached,
    orphan_prefixes,
    remove_units,
    run_pre_detach,
    sweep,
)
from portable.errors import PortableError
from portable.host import ATTACHED_DIR, Host
from portable.registry import Registry
from portable.systemd_version import detect as detect_systemd
from portable.transaction import Transaction, host_lock
from portable.types import AttachOptions, Change, DetachOptions

if TYPE_CHECKING:
    from portable.manager import Manager

__all__ = ["ReattachResult", "reattach"]

UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".path")


@dataclass(kw_only=True)
class ReattachResult:
    attached: AttachResult
    removed: list[Change]  # detach changes whose file name the attach did not write again
    stopped: list[str] = field(default_factory=list)  # with --now: gone units and orphans


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
) -> ReattachResult:
    """Detach the attached version of ``arg``'s image and attach ``arg`` instead.

    PID 1 is reloaded if a unit removed or written is loaded (:mod:`portable.reload`; the
    usual case: the old version runs), or with ``force_reload``; never with ``no_reload``.
    """
    if manager is not None:
        detect_systemd(host, manager)  # before profiles are loaded: they follow it too
    plan = prepare(arg, options, host=host, registry=registry, cwd=cwd)  # new image must exist
    detach_opts = DetachOptions(runtime=options.runtime, force=True, extensions=options.extensions)
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
            from portable.activation import orphaned_units

            orphans = orphaned_units(
                manager,
                host,
                orphan_prefixes(arg, options.prefixes, systemd=detect_systemd(host).major),
            )
        run_pre_detach(registry, plan.image.path, old_names, detach_opts)
        try:
            run_pre_attach(plan, registry)
            if plan.extra:
                plan_files(plan, host)
            tx = Transaction(host)
            try:
                detach_changes = list(remove_units(tx, host, old, runtime=options.runtime))
                start = len(tx.changes)
                write_plan(plan, tx, replace_all=True)
                attach_changes = tx.changes[start:]
                run_post_attach(plan, registry, attach_changes)
            except BaseException:
                tx.rollback()
                raise
        except BaseException as exc:
            run_attach_failed([plan], registry, exc)
            raise
        tx.commit()
    attach_changes = _as_if_detached_first(host, detach_changes, attach_changes)
    # Directories the detach meant to remove but that were not empty at commit are gone from
    # tx.changes: drop them here too.
    done = {id(c) for c in tx.changes}
    written = {_basename(c.path) for c in attach_changes}
    removed = [c for c in detach_changes if id(c) in done and _basename(c.path) not in written]
    attached = AttachResult(
        image=plan.image, units=plan.units, profile=plan.profile, changes=attach_changes
    )
    result = ReattachResult(attached=attached, removed=removed)
    if manager is not None:
        from portable.reload import hooked_plugins

        hooks = ["portable_post_attach"]
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
    from portable.activation import Step, perform
    from portable.reload import ReloadDecision, for_attach, for_detach

    att = result.attached
    if not options.no_reload:
        if force_reload:
            decision = ReloadDecision(True, "asked for (--reload)")
        else:
            written = [u.name for u in att.units]
            gone = [n for n in [*old_names, *orphans] if n not in written]
            decision = for_detach(manager, gone, plugins=plugins)
            if not decision.needed:
                decision = for_attach(manager, written, written, plugins=plugins)
        att.reload_reason = decision.reason
        if decision.needed:
            try:
                manager.reload()
                att.reloaded = True
            except PortableError as exc:
                att.reload_error = str(exc)
    if not (options.now or options.enable):
        return
    gone = [
        _basename(c.path)
        for c in result.removed
        if c.type == "unlink" and c.path.endswith(UNIT_SUFFIXES)
    ]
    kept = [
        _basename(c.path)
        for c in att.changes
        if c.type in ("copy", "symlink") and c.path.endswith(UNIT_SUFFIXES)
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
