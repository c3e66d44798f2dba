"""Telling the service manager about attached units: enable/disable and start/stop/restart.

Done per unit, in order, as portablectl does (attach: enable then start each unit; detach: stop
then disable each unit); every job is queued before any is awaited. What happened is kept as an
ordered list of :class:`Event` so the CLI prints it in portablectl's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portable.errors import PortableError
from portable.types import Change

if TYPE_CHECKING:
    from portable.manager import JobResult, Manager

__all__ = ["JOB_METHODS", "Activation", "Event", "Step", "perform"]

JOB_METHODS = {"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit"}


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


@dataclass(kw_only=True)
class Activation:
    events: list[Event] = field(default_factory=list)
    jobs: list[JobResult] = field(default_factory=list)  # final results (or "queued")

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.jobs) and not any(e.kind == "error" for e in self.events)


def perform(manager: Manager, steps: Sequence[Step], *, runtime: bool, wait: bool) -> Activation:
    """Run the steps in order, then wait for the queued jobs (unless ``wait`` is False)."""
    from portable.manager import JobResult

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
    else:
        out.jobs += [JobResult(u, v, j, "queued") for j, (u, v) in queued.items()]
    return out
