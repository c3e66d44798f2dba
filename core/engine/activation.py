"""Telling the service manager about attached units: enable/disable and start/stop/restart.

Done per unit, in order, as portablectl does (attach: enable then start each unit; detach: stop
then disable each unit); every job is queued before any is awaited. What happened is kept as an
ordered list of :class:`Event` so the CLI prints it in portablectl's order.

:func:`orphaned_units` finds the units a killed reattach removed before it could stop them, so
that its re-run (or a later ``detach --now``) stops them as the killed run would have.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portable.errors import PortableError
from portable.plugin.types import Change
from portable.systemd.host import ATTACHED_DIR, Host
from portable.systemd.names import JOB_METHODS, unit_matches_prefix

if TYPE_CHECKING:
    from portable.systemd.manager import JobResult, Manager

__all__ = [
    "Activation",
    "Event",
    "Step",
    "failed_after_start",
    "orphaned_units",
    "perform",
]


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with one unit. ``job`` is ``start``, ``stop`` or ``restart``."""

    unit: str
    enable_path: str | None = None  # enable this unit file (the full attached path)
    disable: bool = False
    job: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """``install`` (enable/disable changes), ``queued`` (a job) or ``error`` (a refused call)."""

    kind: str
    unit: str
    changes: tuple[Change, ...] = ()
    verb: str = ""
    job: str = ""
    message: str = ""

    @property
    def method(self) -> str:
        """The manager's method a ``queued`` job calls (``StartUnit`` ...)."""
        return JOB_METHODS[self.verb]


@dataclass(kw_only=True)
class Activation:
    events: list[Event] = field(default_factory=list)
    jobs: list[JobResult] = field(default_factory=list)  # final results (or "queued")
    # Units whose start (or restart) job was done but which are failed right after it
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(j.ok for j in self.jobs)
            and not any(e.kind == "error" for e in self.events)
            and not self.failed
        )


# How long a started service is watched for failing right after its start job: a Type=simple
# service's job is done when PID 1 has forked it, before the child sets up its namespace and
# executes the command; what fails there (226/NAMESPACE, 203/EXEC) fails within milliseconds.
SETTLE_SECONDS = 0.25
_RUNNING = ("active", "activating", "reloading")


def failed_after_start(manager: Manager, units: Sequence[str]) -> list[str]:
    """Those of ``units`` (whose start jobs are done) that are failed, in the given order.

    Sockets, timers and paths are looked at once; services still running are looked at again
    until :data:`SETTLE_SECONDS` have passed (one pipelined call for all each time).
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    failed: set[str] = set()
    pending = list(dict.fromkeys(units))
    pause = 0.01
    while pending:
        states = manager.unit_states(pending)
        failed.update(n for n, st in states.items() if st.active_state == "failed")
        pending = [
            n
            for n in pending
            if n.endswith(".service") and n in states and states[n].active_state in _RUNNING
        ]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return [u for u in units if u in failed]


def perform(manager: Manager, steps: Sequence[Step], *, runtime: bool, wait: bool) -> Activation:
    """Run the steps in order, then wait for the queued jobs (unless ``wait`` is False)."""
    # Here, not at the top: the manager's module (jeepney, ~7 ms) is loaded only where a
    # manager is connected, never by an attach or detach with --root.
    from portable.systemd.manager import JobResult

    out = Activation()
    queued: dict[str, tuple[str, str]] = {}

    def install(step: Step) -> None:
        try:
            if step.enable_path is not None:
                changes = manager.enable_unit_files([step.enable_path], runtime=runtime)
            else:
                changes = manager.disable_unit_files([step.unit], runtime=runtime)
        except PortableError as exc:
            out.events.append(Event(kind="error", unit=step.unit, message=str(exc)))
            return
        out.events.append(Event(kind="install", unit=step.unit, changes=tuple(changes)))

    def queue(step: Step) -> None:
        assert step.job is not None
        try:
            job = getattr(manager, f"{step.job}_unit")(step.unit)
        except PortableError as exc:
            out.jobs.append(JobResult(step.unit, step.job, "", f"error: {exc}"))
            return
        queued[job] = (step.unit, step.job)
        out.events.append(Event(kind="queued", unit=step.unit, verb=step.job, job=job))

    for step in steps:
        if step.job == "stop":
            queue(step)
        if step.enable_path is not None or step.disable:
            install(step)
        if step.job in ("start", "restart"):
            queue(step)
    if queued and wait:
        finished = manager.wait_jobs(list(queued))
        for job, (unit, verb) in queued.items():
            out.jobs.append(JobResult(unit, verb, job, finished.get(job, (unit, "timeout"))[1]))
        # A start job that is done says only that the unit was started: a service whose
        # namespace can't be set up fails right after (portablectl exits 0 then).
        started = [j.unit for j in out.jobs if j.verb in ("start", "restart") and j.ok]
        if started:
            out.failed = failed_after_start(manager, started)
    else:
        out.jobs += [JobResult(u, v, j, "queued") for j, (u, v) in queued.items()]
    return out


_GLOB_CHARS = frozenset("*?[]\\")


def orphaned_units(manager: Manager, host: Host, prefixes: Sequence[str]) -> list[str]:
    """Loaded units whose unit file was attached and is gone, named with one of ``prefixes``.

    A unit PID 1 loaded from an attached directory (its ``FragmentPath``, kept until the next
    daemon-reload) whose file no longer exists there (nor a file of that name in the other
    attached directory): what a reattach killed after removing the old version's files, but
    before stopping its units, leaves behind. (After a daemon-reload PID 1 no longer knows where
    such a unit came from: it is not found then.) Only names matching a prefix (``foo``:
    ``foo.service``, ``foo-bar.socket``), never all units (empty ``prefixes`` find nothing);
    templates and their instances are left alone, as an uninterrupted run leaves them. Sorted
    by name.

    One ``ListUnitsByPatterns`` call; ``FragmentPath`` is read only for the units that have no
    file of their name in an attached directory (none when nothing was left behind).
    """
    if not prefixes:
        return []
    prefixes = tuple(dict.fromkeys(prefixes))
    patterns = (
        ["*"]
        if any(_GLOB_CHARS.intersection(p) for p in prefixes)
        else [f"{p}{sep}*" for p in prefixes for sep in (".", "-", "@")]
    )
    dirs = tuple(ATTACHED_DIR.values())
    found = []
    for unit in manager.list_units(patterns):
        name = unit.name
        if (
            "@" in name
            or "/" in name
            or unit.load_state in ("not-found", "masked")
            or not any(unit_matches_prefix(name, p) for p in prefixes)
            or any(os.path.lexists(host.path(f"{d}/{name}")) for d in dirs)
        ):
            continue
        fragment = manager.fragment_path(unit)
        if posixpath.dirname(fragment) in dirs and not os.path.lexists(host.path(fragment)):
            found.append(name)
    return sorted(found)
