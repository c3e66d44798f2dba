"""The service manager (systemd, PID 1), spoken to over D-Bus with jeepney.

Verbs that need PID 1 (``attach --enable --now``, ``detach --now``, the running/enabled part of
``is-attached`` and ``list``...) import this module and :meth:`Manager.connect`. Nothing else
imports it, so the CLI starts without jeepney::

    with Manager.connect() as manager:
        manager.reload()
        changes = manager.enable_unit_files(["/run/systemd/system.attached/foo.service"],
                                            runtime=True)
        print(changes)  # portable.cli.changes.format_install_changes: systemctl's lines
        for job in manager.run_jobs([("start", "foo.service")]):
            if job.error is not None:
                print(job.error)

The connection (:mod:`portable.systemd.bus`) goes to the system bus, or when that is down to
PID 1's private socket (``/run/systemd/private``, peer-to-peer: no bus daemon, no ``Hello``), as
``systemctl`` can. Every call has a deadline, so a hung bus or manager makes a verb fail instead
of hang. Errors are :class:`ManagerError`, one line each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, Self

from portable.errors import PortableError
from portable.plugin.types import Change
from portable.systemd.bus import (
    DEFAULT_BUS_ADDRESS,
    PRIVATE_SOCKET,
    SYSTEMD_NAME,
    CallError,
    Connection,
    Signal,
    open_system_bus,
    strerror,
)
from portable.systemd.host import Host
from portable.systemd.names import JOB_METHODS, is_template
from portable.systemd.version import SystemdVersion, detect

__all__ = [
    "ACTIVE_STATES",
    "MANAGER_IFACE",
    "MANAGER_PATH",
    "UNIT_FILE_FORCE",
    "UNIT_FILE_PORTABLE",
    "UNIT_FILE_RUNTIME",
    "UNIT_IFACE",
    "JobFailed",
    "JobResult",
    "LoadedUnit",
    "Manager",
    "ManagerError",
    "UnitState",
    "detect_running",
]

MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"
UNIT_IFACE = "org.freedesktop.systemd1.Unit"
_PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"

# EnableUnitFilesWithFlags/DisableUnitFilesWithFlags flags (systemd's UnitFileFlags).
UNIT_FILE_RUNTIME = 1 << 0
UNIT_FILE_FORCE = 1 << 1
UNIT_FILE_PORTABLE = 1 << 2

# What portabled calls "active" (spec 3.2 step 7).
ACTIVE_STATES = ("activating", "active", "reloading", "deactivating")

# sd-bus's default method call timeout; plain queries get this, reload and job waits get the
# (longer) timeout given to connect().
CALL_TIMEOUT = 25.0
# Connecting and authenticating; with a socket-activated bus this includes starting dbus.
CONNECT_TIMEOUT = 10.0
# JobRemoved results kept for jobs nobody has waited for yet (other clients' jobs arrive too).
_MAX_REMEMBERED_JOBS = 4096

# Job results systemctl does not report as failures.
_OK_RESULTS = ("done", "skipped", "queued")


class ManagerError(PortableError):
    """Talking to the service manager failed, or it refused a request. One line.

    ``error_name`` is the D-Bus error name when PID 1 answered with an error
    (``org.freedesktop.systemd1.NoSuchUnit``, ...), None for connection problems.
    """

    def __init__(
        self, message: str, *, error_name: str | None = None, exit_code: int | None = None
    ) -> None:
        super().__init__(message, exit_code=exit_code)
        self.error_name = error_name


class JobFailed(ManagerError):
    """A job finished with a result other than ``done`` (or ``skipped``)."""

    def __init__(self, unit: str, result: str) -> None:
        super().__init__(f"Job for {unit} failed: result '{result}'")
        self.unit = unit
        self.result = result


# JobResult, LoadedUnit and UnitState are NamedTuples, not dataclasses (~0.4 ms each to build):
# every attach and detach on the host imports this module.
class JobResult(NamedTuple):
    """What became of one ``(verb, unit)`` of :meth:`Manager.run_jobs`.

    :param unit: the unit name as given.
    :param verb: ``start``, ``stop`` or ``restart``.
    :param job: the job's object path; "" if the call failed.
    :param result: systemd's job result (``done``, ``failed``, ``canceled``, ``timeout``,
        ``dependency``, ``skipped``, ...), ``timeout`` also when we stopped waiting, ``queued``
        when not waited for, or ``error: <message>`` when PID 1 refused to queue the job.
    """

    unit: str
    verb: str
    job: str
    result: str

    @property
    def ok(self) -> bool:
        """Whether this counts as success (``done``, ``skipped``, or queued and not waited for)."""
        return self.result in _OK_RESULTS

    @property
    def error(self) -> ManagerError | None:
        """The failure as an exception (to print or raise), None if :attr:`ok`."""
        if self.ok:
            return None
        if self.result.startswith("error: "):
            method = JOB_METHODS.get(self.verb, self.verb)
            return ManagerError(
                f"Failed to call {method} on {self.unit}: {self.result.removeprefix('error: ')}"
            )
        return JobFailed(self.unit, self.result)


class LoadedUnit(NamedTuple):
    """A unit PID 1 has loaded, as ``ListUnits`` reports it.

    :param name: the unit's name (its id; aliases are not listed separately).
    :param load_state: ``loaded``, ``not-found``, ``masked``, ``bad-setting``, ``error``...
    :param active_state: ``active``, ``inactive``, ``failed``, ``activating``...
    :param path: its D-Bus object path (for property reads).
    """

    name: str
    load_state: str
    active_state: str
    path: str


class UnitState(NamedTuple):
    """What PID 1 holds in memory for a unit name: :meth:`Manager.unit_states`.

    :param name: the name asked for (the unit may have another id: an alias).
    :param load_state: ``loaded``, ``not-found``, ``masked``, ``bad-setting``, ``error``...
    :param active_state: ``active``, ``inactive``, ``failed``...
    :param need_daemon_reload: PID 1's ``NeedDaemonReload``: its files changed on disk since
        they were read (by modification time), or (systemd 257) unit files were enabled or
        disabled since the last reload.
    """

    name: str
    load_state: str
    active_state: str
    need_daemon_reload: bool


_UNIT_STATE_PROPS = ("LoadState", "ActiveState", "NeedDaemonReload")
_NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
# init.scope's object path (bus_label_escape: '.' is _2e)
_INIT_SCOPE_PATH = f"{MANAGER_PATH}/unit/init_2escope"


class Manager:
    """A connection to PID 1; implements :class:`portable.engine.state.ManagerView`.

    Get one with :meth:`connect`; use it as a context manager or :meth:`close` it.

    :ivar via: ``"bus"`` (the system bus) or ``"private"`` (PID 1's private socket).
    :ivar timeout: seconds for :meth:`reload` and job waits; other calls get at most 25 s.
    """

    def __init__(self, conn: Connection, *, via: str, timeout: float) -> None:
        self._conn = conn
        self.via = via
        self.timeout = timeout
        self.call_timeout = min(CALL_TIMEOUT, timeout)
        self._subscribed = False
        self._removed: dict[str, tuple[str, str]] = {}  # job path -> (unit, result)
        self._job_units: dict[str, str] = {}  # jobs we queued -> their unit
        conn.on_signal = self._on_signal

    # --- connection -----------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        *,
        timeout: float = 90.0,
        bus_address: str | None = None,
        private_socket: str | None = PRIVATE_SOCKET,
    ) -> Manager:
        """Connect to the system bus, or if that fails to PID 1's private socket.

        :param timeout: seconds allowed for :meth:`reload` and for waiting for jobs (90 s,
            systemd's default start/stop timeout); other calls get at most 25 s (sd-bus's
            default), connecting at most 10 s per way in.
        :param bus_address: a D-Bus address (``unix:path=...``); default
            ``$DBUS_SYSTEM_BUS_ADDRESS`` or ``unix:path=/run/dbus/system_bus_socket``.
        :param private_socket: PID 1's private socket; None to not fall back to it.
        :raises ManagerError: "cannot reach the service manager: ..." if neither works.
        """
        address = bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_BUS_ADDRESS
        connect_timeout = min(CONNECT_TIMEOUT, timeout)
        reasons = []
        try:
            return cls(open_system_bus(address, connect_timeout), via="bus", timeout=timeout)
        except (OSError, ValueError) as exc:  # ValueError: jeepney's parse/auth errors
            reasons.append(f"system bus {address}: {strerror(exc)}")
        if private_socket is not None:
            try:
                conn = Connection.open(private_socket, peer_to_peer=True, timeout=connect_timeout)
            except OSError as exc:
                reasons.append(f"{private_socket}: {strerror(exc)}")
            else:
                return cls(conn, via="private", timeout=timeout)
        raise ManagerError("cannot reach the service manager: " + "; ".join(reasons))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self,
        what: str,
        member: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
        *,
        path: str = MANAGER_PATH,
        interface: str = MANAGER_IFACE,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        """A method call on PID 1; D-Bus errors raise CallError, the rest ManagerError."""
        try:
            return self._conn.call(
                path,
                interface,
                member,
                signature,
                body,
                timeout=self.call_timeout if timeout is None else timeout,
            )
        except CallError:
            raise
        except (OSError, ValueError) as exc:  # ValueError: a message jeepney can't parse
            raise ManagerError(f"{what}: {strerror(exc)}") from exc

    def _checked_call(
        self,
        what: str,
        member: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
        *,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        """Like _call, but a D-Bus error is a ManagerError too."""
        try:
            return self._call(what, member, signature, body, timeout=timeout)
        except CallError as exc:
            raise ManagerError(f"{what}: {exc.message}", error_name=exc.name) from exc

    # --- jobs and signals -----------------------------------------------------------------

    def _on_signal(self, signal: Signal) -> None:
        if (
            signal.member != "JobRemoved"
            or signal.interface != MANAGER_IFACE
            or signal.path != MANAGER_PATH
            or len(signal.body) != 4
        ):
            return
        _, job, unit, result = signal.body
        self._removed[str(job)] = (str(unit), str(result))
        if len(self._removed) > _MAX_REMEMBERED_JOBS:
            # Oldest first (dicts keep insertion order): other clients' jobs we never wait for.
            del self._removed[next(iter(self._removed))]

    def subscribe(self) -> None:
        """Ask for JobRemoved signals; done by the job methods before they queue anything.

        On the bus this adds a match rule and calls ``Subscribe()``; PID 1 sends signals to
        private-socket clients anyway.
        """
        if self._subscribed:
            return
        if self.via == "bus":
            rule = (
                f"type='signal',sender='{SYSTEMD_NAME}',path='{MANAGER_PATH}',"
                f"interface='{MANAGER_IFACE}',member='JobRemoved'"
            )
            try:
                self._conn.add_match(rule, timeout=self.call_timeout)
            except CallError as exc:
                raise ManagerError(f"Failed to add match rule: {exc.message}") from exc
            except (OSError, ValueError) as exc:
                raise ManagerError(f"Failed to add match rule: {strerror(exc)}") from exc
        try:
            self._call("Failed to subscribe to the service manager", "Subscribe")
        except CallError as exc:
            # Being subscribed already is what we want anyway.
            if exc.name != "org.freedesktop.systemd1.AlreadySubscribed":
                raise ManagerError(
                    f"Failed to subscribe to the service manager: {exc.message}",
                    error_name=exc.name,
                ) from exc
        self._subscribed = True

    def _queue(self, verb: str, name: str, mode: str) -> str:
        """Queue a job; raises CallError if PID 1 refuses."""
        self.subscribe()
        (job,) = self._call(f"Failed to {verb} {name}", JOB_METHODS[verb], "ss", (name, mode))
        self._job_units[str(job)] = name
        return str(job)

    def _queue_checked(self, verb: str, name: str, mode: str) -> str:
        try:
            return self._queue(verb, name, mode)
        except CallError as exc:
            raise ManagerError(
                f"Failed to {verb} {name}: {exc.message}", error_name=exc.name
            ) from exc

    def start_unit(self, name: str, mode: str = "replace") -> str:
        """``StartUnit``: queue a start job; returns its object path (wait with wait_jobs)."""
        return self._queue_checked("start", name, mode)

    def stop_unit(self, name: str, mode: str = "replace") -> str:
        """``StopUnit``: queue a stop job; returns its object path."""
        return self._queue_checked("stop", name, mode)

    def restart_unit(self, name: str, mode: str = "replace") -> str:
        """``RestartUnit``: queue a restart job; returns its object path."""
        return self._queue_checked("restart", name, mode)

    def wait_jobs(
        self, jobs: Sequence[str], *, timeout: float | None = None
    ) -> dict[str, tuple[str, str]]:
        """Wait until the jobs are gone; job path -> (unit, result) from JobRemoved.

        Jobs queued through this object are never missed (it subscribes before queueing).
        A job still there when the timeout (default :attr:`timeout`) passes gets result
        ``timeout``; the job itself stays queued in PID 1.
        """
        self.subscribe()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while any(job not in self._removed for job in jobs):
                self._conn.wait(deadline)
        except TimeoutError:
            pass
        except (OSError, ValueError) as exc:
            raise ManagerError(f"Failed to wait for jobs: {strerror(exc)}") from exc
        done: dict[str, tuple[str, str]] = {}
        for job in dict.fromkeys(jobs):  # PID 1 returns one job for repeated requests
            unit = self._job_units.pop(job, "")
            done[job] = self._removed.pop(job, (unit, "timeout"))
        return done

    def run_jobs(self, calls: Sequence[tuple[str, str]], *, wait: bool = True) -> list[JobResult]:
        """Queue ``[(verb, unit), ...]`` (verb ``start``/``stop``/``restart``), then wait for all.

        A unit PID 1 refuses (no such unit, a template without instance...) gets the result
        ``error: <message>`` instead of raising; only connection problems raise
        :class:`ManagerError`. Without ``wait`` the queued ones report ``queued``.
        """
        queued: list[tuple[str, str, str, str]] = []  # verb, unit, job, error
        for verb, unit in calls:
            if verb not in JOB_METHODS:
                raise ValueError(f"unknown job verb {verb!r}")
            try:
                queued.append((verb, unit, self._queue(verb, unit, "replace"), ""))
            except CallError as exc:
                queued.append((verb, unit, "", f"error: {exc.message}"))
        jobs = [job for _, _, job, _ in queued if job]
        finished = self.wait_jobs(jobs) if wait and jobs else {}
        results = []
        for verb, unit, job, error in queued:
            if error:
                result = error
            elif wait:
                result = finished[job][1]
            else:
                result = "queued"
            results.append(JobResult(unit=unit, verb=verb, job=job, result=result))
        return results

    # --- daemon and unit files ------------------------------------------------------------

    def reload(self) -> None:
        """``Reload()``: re-read all unit files; returns once PID 1 has finished reloading."""
        self._checked_call("Failed to reload daemon", "Reload", timeout=self.timeout)

    def enable_unit_files(
        self,
        files: Sequence[str],
        *,
        runtime: bool,
        portable: bool = True,
        force: bool = False,
    ) -> list[Change]:
        """``EnableUnitFilesWithFlags``: create the [Install] symlinks; returns the changes.

        With ``portable`` PID 1 puts the symlinks next to the unit, in the attached directory
        (portablectl passes the unit's full path there).
        """
        flags = _flags(runtime=runtime, portable=portable, force=force)
        what = _install_what("enable", files, portable)
        reply = self._checked_call(what, "EnableUnitFilesWithFlags", "ast", (list(files), flags))
        return _changes(reply[1])

    def disable_unit_files(
        self, names: Sequence[str], *, runtime: bool, portable: bool = True
    ) -> list[Change]:
        """``DisableUnitFilesWithFlags``: remove the [Install] symlinks; returns the changes."""
        flags = _flags(runtime=runtime, portable=portable, force=False)
        what = _install_what("disable", names, portable)
        reply = self._checked_call(what, "DisableUnitFilesWithFlags", "ast", (list(names), flags))
        return _changes(reply[0])

    # --- cleaning ---------------------------------------------------------------------------

    def clean_unit(self, name: str, what: Sequence[str]) -> None:
        """``CleanUnit``: remove the unit's resources of the kinds in ``what`` (``all``,
        ``configuration``, ``state``, ``cache``, ``logs``, ``runtime``; ``fdstore`` since
        systemd 254).

        PID 1 only starts the removal; a service stays in ActiveState ``maintenance`` until it
        is done (:meth:`wait_cleaned`). Refusals are :class:`ManagerError` with ``error_name``
        ``org.freedesktop.systemd1.UnitBusy`` (not inactive: running, failed, or a job
        pending), ``...NothingToClean``, ``org.freedesktop.DBus.Error.NotSupported`` (a unit
        type without resources) or ``...InvalidArgs`` (a kind this systemd does not know).
        """
        self._checked_call(
            f"Failed to call CleanUnit on {name}", "CleanUnit", "sas", (name, list(what))
        )

    def reset_failed_unit(self, name: str) -> None:
        """``ResetFailedUnit``: a failed unit becomes inactive (and may be cleaned)."""
        self._checked_call(
            f"Failed to reset the failed state of {name}", "ResetFailedUnit", "s", (name,)
        )

    def wait_cleaned(self, name: str, *, timeout: float | None = None) -> str:
        """Wait until ``name`` has left ActiveState ``maintenance`` (a clean started by
        :meth:`clean_unit` is over); returns a service's ``CleanResult`` (``success``,
        ``exit-code``, ``timeout``...), "" for other unit types, or ``timeout`` when it is
        still cleaning after ``timeout`` seconds (default :attr:`timeout`)."""
        what = f"Failed to wait for {name} to be cleaned"
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        pause = 0.005
        try:
            (path,) = self._call(what, "LoadUnit", "s", (name,))
            # Polled: cleaning is usually over in milliseconds, and PID 1 announces the end
            # only as a PropertiesChanged signal nobody else here needs.
            while self._property(what, str(path), UNIT_IFACE, "ActiveState") == "maintenance":
                if time.monotonic() >= deadline:
                    return "timeout"
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
            if not name.endswith(".service"):
                return ""  # only services publish CleanResult
            return str(
                self._property(what, str(path), "org.freedesktop.systemd1.Service", "CleanResult")
            )
        except CallError as exc:
            raise ManagerError(f"{what}: {exc.message}", error_name=exc.name) from exc

    # --- state ------------------------------------------------------------------------------

    def _property(self, what: str, path: str, interface: str, name: str) -> Any:
        """One D-Bus property of the object at ``path`` (D-Bus errors raise CallError)."""
        ((_, value),) = self._call(
            what, "Get", "ss", (interface, name), path=path, interface=_PROPERTIES_IFACE
        )
        return value

    def _unit_property(self, what: str, unit: str, interface: str, name: str) -> Any:
        """One property of ``unit``, loading it first (D-Bus errors raise CallError)."""
        (path,) = self._call(what, "LoadUnit", "s", (unit,))
        return self._property(what, str(path), interface, name)

    def unit_properties(
        self, unit: str, wanted: Sequence[tuple[str, str]], *, what: str = ""
    ) -> dict[str, Any]:
        """Properties ``(interface, name)`` of ``unit`` by name, loading the unit once
        (``LoadUnit``, as ``systemctl show``). ``what`` starts the error line."""
        what = what or f"Failed to get the state of {unit}"
        try:
            (path,) = self._call(what, "LoadUnit", "s", (unit,))
            return {n: self._property(what, str(path), iface, n) for iface, n in wanted}
        except CallError as exc:
            raise ManagerError(f"{what}: {exc.message}", error_name=exc.name) from exc

    def version(self) -> str:
        """The manager's ``Version`` property, e.g. ``252.39-1~deb12u2``."""
        what = "Failed to get the service manager's version"
        try:
            return str(self._property(what, MANAGER_PATH, MANAGER_IFACE, "Version"))
        except CallError as exc:
            raise ManagerError(f"{what}: {exc.message}", error_name=exc.name) from exc

    def active_state(self, unit: str) -> str:
        """``ActiveState`` of a unit (``inactive`` for one not loaded or not found).

        "" if PID 1 refuses the name (invalid, or a template without instance).
        """
        try:
            state = self._unit_property(
                f"Failed to get the state of {unit}", unit, UNIT_IFACE, "ActiveState"
            )
        except CallError:
            return ""
        return str(state)

    def main_pid(self, unit: str) -> int:
        """A service's ``MainPID`` (0 if it is not running)."""
        what = f"Failed to get the main PID of {unit}"
        try:
            pid = self._unit_property(what, unit, "org.freedesktop.systemd1.Service", "MainPID")
        except CallError as exc:
            raise ManagerError(f"{what}: {exc.message}", error_name=exc.name) from exc
        return int(pid)

    def unit_states(self, names: Sequence[str]) -> dict[str, UnitState]:
        """Those of ``names`` PID 1 has in memory, with their states, loading none of them;
        a name it does not hold is left out.

        ``GetUnit`` says which are held (by name or alias) without loading; their load and
        active states come from ``ListUnitsByPatterns`` (which loads nothing either): reading a
        property through the unit's object path would load it, and a unit held as
        ``not-found`` be retried from disk, so that it could no longer be told apart from a
        loaded one. ``NeedDaemonReload`` is read for loaded units only (no retry for them).
        Pipelined (:meth:`Connection.call_many`): a few round trips for any number of names.
        """
        what = "Failed to get the state of units"
        names = list(dict.fromkeys(names))
        try:
            found = self._conn.call_many(
                [(MANAGER_PATH, MANAGER_IFACE, "GetUnit", "s", (n,)) for n in names],
                timeout=self.call_timeout,
            )
        except (OSError, ValueError) as exc:
            raise ManagerError(f"{what}: {strerror(exc)}") from exc
        paths: dict[str, str] = {}
        for name, reply in zip(names, found, strict=True):
            if isinstance(reply, CallError):
                if reply.name == _NO_SUCH_UNIT:
                    continue
                raise ManagerError(f"{what}: {reply.message}", error_name=reply.name)
            paths[name] = str(reply[0])
        if not paths:
            return {}
        listed = {lu.path: lu for lu in self.list_units(list(paths))}
        out: dict[str, UnitState] = {}
        ask: dict[str, str] = {}  # loaded, or held under another name: read through the path
        for name, path in paths.items():
            lu = listed.get(path)
            if lu is not None and lu.load_state != "loaded":
                out[name] = UnitState(name, lu.load_state, lu.active_state, False)
            else:
                ask[name] = path
        return out | self._states(what, ask)

    def load_unit_state(self, name: str) -> UnitState | None:
        """``LoadUnit``, then its state: PID 1 loads a unit it does not hold from disk, and
        retries a unit it holds as ``not-found`` when the unit directories changed since it
        last looked. None if PID 1 refuses the name."""
        what = f"Failed to load {name}"
        try:
            (path,) = self._call(what, "LoadUnit", "s", (name,))
        except CallError:
            return None
        return self._states(what, {name: str(path)}).get(name)

    def _states(self, what: str, paths: dict[str, str]) -> dict[str, UnitState]:
        calls = [
            (path, _PROPERTIES_IFACE, "Get", "ss", (UNIT_IFACE, prop))
            for path in paths.values()
            for prop in _UNIT_STATE_PROPS
        ]
        try:
            replies = self._conn.call_many(calls, timeout=self.call_timeout)
        except (OSError, ValueError) as exc:
            raise ManagerError(f"{what}: {strerror(exc)}") from exc
        out = {}
        n = len(_UNIT_STATE_PROPS)
        for k, name in enumerate(paths):
            values = []
            for reply in replies[k * n : (k + 1) * n]:
                if isinstance(reply, CallError):
                    raise ManagerError(f"{what}: {reply.message}", error_name=reply.name)
                values.append(reply[0][1])
            load, active, need = values
            out[name] = UnitState(name, str(load), str(active), bool(need))
        return out

    def reload_pending(self) -> bool:
        """Does PID 1 itself say that a daemon-reload is due? ``NeedDaemonReload`` of
        ``init.scope``, a unit without files that is always there: true only when PID 1 has
        a global reason, which systemd 257 has after any enable/disable since the last reload
        (and drop-ins for init.scope itself, which nobody writes).

        One call, on the unit's object path: PID 1 always holds init.scope, loaded (reading
        through the path loads nothing), so it needs no :meth:`unit_states` (three round trips).
        """
        what = "Failed to get the state of units"
        try:
            return bool(self._property(what, _INIT_SCOPE_PATH, UNIT_IFACE, "NeedDaemonReload"))
        except CallError as exc:
            if exc.name in (_NO_SUCH_UNIT, _UNKNOWN_OBJECT):
                return False  # not PID 1's systemd (as unit_states: not held)
            raise ManagerError(f"{what}: {exc.message}", error_name=exc.name) from exc

    def list_units(
        self, patterns: Sequence[str] = (), *, states: Sequence[str] = ()
    ) -> list[LoadedUnit]:
        """``ListUnitsByPatterns``: the loaded units whose names match one of the glob
        ``patterns`` and whose load, active or sub state is one of ``states``, in one call.

        Empty ``patterns`` or ``states`` mean no restriction on that side.
        """
        reply = self._checked_call(
            "Failed to list units",
            "ListUnitsByPatterns",
            "asas",
            (list(states), list(patterns)),
        )
        return [
            LoadedUnit(name=str(u[0]), load_state=str(u[2]), active_state=str(u[3]), path=str(u[6]))
            for u in reply[0]
        ]

    def fragment_path(self, unit: LoadedUnit) -> str:
        """The unit file PID 1 loaded ``unit`` from (``FragmentPath``), as it was at the last
        daemon-reload: the file may be gone since. "" if there is none (a unit not found, a
        transient unit...) or the unit was unloaded meanwhile."""
        try:
            path = self._property(
                f"Failed to get the unit file of {unit.name}", unit.path, UNIT_IFACE, "FragmentPath"
            )
        except CallError:
            return ""
        return str(path)

    def unit_file_state(self, unit: str) -> str:
        """``GetUnitFileState``: ``enabled``, ``disabled``, ``static``... ("" if there is none)."""
        try:
            (state,) = self._call(
                f"Failed to get unit file state of {unit}", "GetUnitFileState", "s", (unit,)
            )
        except CallError:
            return ""
        return str(state)

    def is_active(self, unit: str) -> bool:
        """Activating, active, reloading or deactivating; a template ``x@.service``: any
        instance of it is (as portabled decides, spec 3.2 step 7)."""
        prefix, at, rest = unit.partition("@")
        dot = rest.rfind(".")
        if at and dot == 0:  # no instance between '@' and the suffix: a template
            try:
                units = self._call(
                    f"Failed to list units of {unit}",
                    "ListUnitsByPatterns",
                    "asas",
                    (list(ACTIVE_STATES), [f"{prefix}@*{rest}"]),
                )[0]
            except CallError:
                return False
            return len(units) > 0
        return self.active_state(unit) in ACTIVE_STATES

    def active_units(self, units: Sequence[str]) -> set[str]:
        """Those of ``units`` that :meth:`is_active` says are active, in a few round trips
        whatever their number (10,000 units: not 20,000 calls, nor PID 1 loading every one).

        A unit PID 1 does not hold is inactive (LoadUnit would load it inactive): only the
        units it holds are asked about, by name or alias (:meth:`unit_states`: ``GetUnit``,
        pipelined; never a call per unit on the host). Templates are asked one at a time, as
        :meth:`is_active` does; if the question fails, every unit is asked on its own."""
        active: set[str] = set()
        wanted: list[str] = []
        for u in units:
            if not is_template(u):
                wanted.append(u)
            elif self.is_active(u):
                active.add(u)
        if not wanted:
            return active
        try:
            states = self.unit_states(wanted)
        except ManagerError:
            return active | {u for u in wanted if self.is_active(u)}
        return active | {n for n, st in states.items() if st.active_state in ACTIVE_STATES}


def _flags(*, runtime: bool, portable: bool, force: bool) -> int:
    return (
        (UNIT_FILE_RUNTIME if runtime else 0)
        | (UNIT_FILE_FORCE if force else 0)
        | (UNIT_FILE_PORTABLE if portable else 0)
    )


def _install_what(verb: str, units: Sequence[str], portable: bool) -> str:
    # portablectl's and systemctl's wording for a failed enable/disable.
    if portable:
        return f"Failed to {verb} the portable service {', '.join(units)}"
    return f"Failed to {verb} unit"


def _changes(raw: Sequence[tuple[str, str, str]]) -> list[Change]:
    return [Change(type=str(t), path=str(p), source=str(s)) for t, p, s in raw]


def detect_running(host: Host, *, timeout: float = 5.0) -> SystemdVersion:
    """The systemd ``host`` runs: on the real host the running manager's (connected for the
    question, at most ``timeout`` seconds; the installed one if it can't be reached: a build
    host, a container), below ``--root`` the tree's (:func:`portable.systemd.version.detect`)."""
    if not host.is_real:
        return detect(host)
    try:
        with Manager.connect(timeout=timeout) as manager:
            return detect(host, manager)
    except ManagerError:
        return detect(host)
