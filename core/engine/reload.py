"""Whether an attach, detach or reattach needs a daemon-reload (``docs/reload.md``).

portablectl reloads PID 1 after every attach and detach. A reload re-runs the generators and
re-reads every unit (80-230 ms in the test box, seconds on big hosts), yet it only changes what
PID 1 holds *in memory*: a unit it does not hold is read from disk when it is first needed
(``StartUnit``, ``LoadUnit``, a job pulling it in), after the unit directories changed exactly
as after a reload; a unit it holds as ``not-found`` is retried then too. So:

* attach: no reload when every unit written is not held by PID 1, or held as ``not-found``
  (then loaded here by ``LoadUnit``, and it must come out ``loaded`` with
  ``NeedDaemonReload=no``), or held ``loaded``, unchanged by this attach and not in need of a
  reload. Anything else (a loaded unit whose files changed: reattach, ``--force``, a loaded
  instance of a template) needs one;
* detach: no reload when no unit removed is held by PID 1 any more (stopped and collected, or
  never loaded), or only as ``not-found``; a unit still loaded from a removed file (running,
  failed, or pinned by a target's ``Wants=``) needs one.

Always a reload when PID 1 says one is due anyway (:meth:`Manager.reload_pending`: systemd 257
after an enable/disable, as ``detach --enable`` does), when a unit's drop-in directory applies
to other units too (``foo-.service.d``: every ``foo-*.service``), and when a third-party plugin
has post-attach/post-detach hooks (documented to run before the reload: they may change other
units' files). ``--enable`` needs none of its own: portablectl enables after its reload, so
what the enable links never reached PID 1's memory there either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from portable.engine.record import Record
from portable.errors import PortableError
from portable.systemd.names import is_template, unit_template

if TYPE_CHECKING:
    from portable.engine.activation import Activation
    from portable.plugin.registry import Registry
    from portable.systemd.manager import Manager, UnitState

__all__ = [
    "Outcome",
    "ReloadDecision",
    "ReloadOutcome",
    "for_attach",
    "for_detach",
    "hooked_plugins",
    "reload_as_decided",
]


# ReloadDecision and ReloadOutcome are NamedTuples: a dataclass costs ~0.4 ms to build, and every
# attach and detach imports this module.
class ReloadDecision(NamedTuple):
    """Reload or not, and why (one line, for ``--debug`` and the library's results)."""

    needed: bool
    reason: str


def hooked_plugins(registry: Registry, hooks: Collection[str]) -> list[str]:
    """Active third-party plugins implementing one of ``hooks``."""
    return [
        rec.name
        for rec in registry.plugins
        if rec.status == "active" and not rec.builtin and set(hooks) & set(rec.hooks)
    ]


def _prefix_dropin(name: str) -> bool:
    """Is ``NAME.d`` also a drop-in directory of other units? ``foo-.service.d`` applies to
    every ``foo-*.service`` (systemd 246+)."""
    return name.rpartition(".")[0].endswith("-")


def _common(manager: Manager, units: Sequence[str], plugins: Sequence[str]) -> str | None:
    """Reasons for a reload that don't depend on what PID 1 holds of the units."""
    if plugins:
        return f"plugin {', '.join(plugins)} has hooks that may change other unit files"
    shared = [u for u in units if _prefix_dropin(u)]
    if shared:
        return f"the drop-ins of {shared[0]} apply to other units too"
    if manager.reload_pending():
        return "the service manager has unit file changes pending (NeedDaemonReload)"
    return None


def _held(manager: Manager, units: Sequence[str]) -> dict[str, UnitState]:
    """What PID 1 holds of ``units``: the units by name, and every instance of a template."""
    plain = [u for u in units if not is_template(u)]
    templates = [u for u in units if is_template(u)]
    names = list(plain)
    if templates:
        patterns = []
        for t in templates:
            prefix, _, suffix = t.partition("@")
            patterns.append(f"{prefix}@*{suffix}")
        names += [lu.name for lu in manager.list_units(patterns)]
    return manager.unit_states(names)


def for_attach(
    manager: Manager,
    units: Sequence[str],
    changed: Collection[str],
    *,
    plugins: Sequence[str] = (),
) -> ReloadDecision:
    """After the files of ``units`` were written (``changed``: those whose files this run
    wrote), before any enable or start. May load units held as ``not-found`` (``LoadUnit``),
    as the next job would. A question PID 1 can't answer means a reload."""
    try:
        reason = _common(manager, units, plugins)
        if reason is not None:
            return ReloadDecision(True, reason)
        retry = []
        held = _held(manager, units)
        for name, st in held.items():
            if st.load_state == "not-found":
                retry.append(name)
            elif st.load_state != "loaded":
                return ReloadDecision(True, f"{name} is held as {st.load_state}")
            elif (unit_template(name) or name) in changed:  # an instance: its template's files
                what = f"loaded, {st.active_state}"
                return ReloadDecision(True, f"{name} is {what}, and its files were written")
            elif st.need_daemon_reload:
                return ReloadDecision(True, f"{name} is loaded and its files changed on disk")
        for name in retry:
            now = manager.load_unit_state(name)
            if now is None or now.load_state != "loaded" or now.need_daemon_reload:
                state = "refused" if now is None else now.load_state
                return ReloadDecision(True, f"{name} was not found and did not load ({state})")
    except PortableError as exc:
        return ReloadDecision(True, f"could not ask the service manager ({exc})")
    if retry:
        return ReloadDecision(False, "loaded on demand: " + ", ".join(retry))
    if held:
        return ReloadDecision(False, "its loaded units are up to date")
    return ReloadDecision(False, "no unit of it is loaded")


def for_detach(
    manager: Manager, units: Sequence[str], *, plugins: Sequence[str] = ()
) -> ReloadDecision:
    """After the files of ``units`` were removed (and the units stopped, disabled and reset
    as asked)."""
    try:
        reason = _common(manager, units, plugins)
        if reason is not None:
            return ReloadDecision(True, reason)
        for name, st in _held(manager, units).items():
            if st.load_state != "not-found":
                return ReloadDecision(
                    True, f"{name} is still loaded ({st.load_state}, {st.active_state})"
                )
    except PortableError as exc:
        return ReloadDecision(True, f"could not ask the service manager ({exc})")
    return ReloadDecision(False, "no unit of it is loaded any more")


class ReloadOutcome(NamedTuple):
    """What :func:`reload_as_decided` did: ``reloaded``, why (``reason``), and the error of a
    reload that failed ("" if none)."""

    reloaded: bool
    reason: str
    error: str = ""


# Here, not in portable.engine.activation with what fills in its ``activation``: a plain attach
# or detach (no --enable, --now) does not import that module.
class Outcome(Record):
    """What the service manager was told once attach, reattach or detach changed the files:
    the reload, or why there was none, and the enable/disable and start/stop jobs."""

    # Each subclass adds its own after these (the order of a dataclass's inherited fields)
    _FIELDS: ClassVar[tuple[str, ...]] = (
        "reloaded",
        "reload_error",
        "reload_reason",
        "activation",
    )

    def __init__(
        self,
        *,
        reloaded: bool = False,
        reload_error: str = "",
        # Why PID 1 was reloaded or not ("" when no manager was asked, or --no-reload)
        reload_reason: str = "",
        activation: Activation | None = None,
    ) -> None:
        self.reloaded = reloaded
        self.reload_error = reload_error
        self.reload_reason = reload_reason
        self.activation = activation

    def took(self, done: ReloadOutcome) -> None:
        """Record how the reload went (:func:`reload_as_decided`)."""
        self.reloaded, self.reload_reason = done.reloaded, done.reason
        self.reload_error = done.error


def reload_as_decided(
    manager: Manager, decide: Callable[[], ReloadDecision], *, force: bool
) -> ReloadOutcome:
    """Reload PID 1 if ``decide()`` says so, or always with ``force`` (``--reload``); a failed
    reload is reported, not raised (the files are in place: portablectl says so and goes on)."""
    decision = ReloadDecision(True, "asked for (--reload)") if force else decide()
    if not decision.needed:
        return ReloadOutcome(False, decision.reason)
    try:
        manager.reload()
    except PortableError as exc:
        return ReloadOutcome(False, decision.reason, str(exc))
    return ReloadOutcome(True, decision.reason)
