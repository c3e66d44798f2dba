"""portable.systemd.manager against a real systemd (the test box), and its failure modes on the
host.

The Manager always runs *inside* the box (``box.python``), so it talks to the box's PID 1 and
never to the host's. Unit names start with ``ptest-mgr-``; every test removes what it made.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portable.cli.changes import format_install_changes
from portable.plugin.types import Change
from portable.systemd.manager import (
    JobFailed,
    JobResult,
    Manager,
    ManagerError,
)
from portable.testing.box import Box, box_unavailable_reason

SLEEP_UNIT = "[Unit]\nDescription=ptest sleeper\n[Service]\nExecStart=/bin/sleep 300\n"
INSTALLABLE = SLEEP_UNIT + "[Install]\nWantedBy=multi-user.target\n"

# Runs first in every script: the Manager under test, and one JSON line back to the test.
PRELUDE = """\
import json, sys, time
from portable.cli.changes import format_install_changes
from portable.systemd.manager import Manager

def emit(value):
    print(json.dumps(value))
"""


def in_box(box: Box, where: Path, code: str) -> Any:
    """Run ``code`` with the venv python inside the box; return what it ``emit()``-ed."""
    script = where / f"script-{time.monotonic_ns()}.py"
    script.write_text(PRELUDE + textwrap.dedent(code))
    out = box.python([str(script)]).stdout
    return json.loads(out.strip().splitlines()[-1])


class BoxUnits:
    """Unit files written into a box, and their removal (stop, reset-failed, reload)."""

    def __init__(self, box: Box) -> None:
        self.box = box
        self.paths: list[str] = []
        self.dirs: list[str] = []

    def write(self, path: str, text: str) -> str:
        parent = self.box.path(path).parent
        if not parent.exists():
            parent.mkdir(parents=True)
            self.dirs.append(str(Path(path).parent))
        self.box.path(path).write_text(text)
        self.paths.append(path)
        return Path(path).name

    def cleanup(self) -> None:
        names = [Path(p).name for p in self.paths]
        if not names:
            return
        patterns = [n.replace("@.", "@*.") for n in names]
        self.box.systemctl(["stop", *patterns], check=False)
        self.box.systemctl(["disable", "--runtime", *names], check=False)
        self.box.systemctl(["reset-failed", *patterns], check=False)
        for path in self.paths:
            self.box.path(path).unlink(missing_ok=True)
        for d in reversed(self.dirs):  # only directories we created, and only if empty
            self.box.run(["rmdir", d], check=False)
        self.box.systemctl(["daemon-reload"])


@pytest.fixture
def units(box: Box) -> Iterator[BoxUnits]:
    made = BoxUnits(box)
    yield made
    made.cleanup()


# --- against the shared box ------------------------------------------------------------------


@pytest.mark.box
def test_connect_via_bus_and_reload_rereads_unit_files(box, box_tmp, units):
    # A *new* unit file would show up without a reload (PID 1 retries loading not-found units
    # when the unit directories changed); a changed one is only re-read by a reload.
    unit = "ptest-mgr-new.service"
    path = f"/run/systemd/system/{unit}"
    units.write(path, SLEEP_UNIT.replace("ptest sleeper", "first"))
    box.systemctl(["daemon-reload"])
    box.systemctl(["start", unit])  # running, so PID 1 keeps it loaded (an idle unit is dropped)
    box.path(path).write_text(SLEEP_UNIT.replace("ptest sleeper", "second"))
    show = ["show", "-P", "Description", "-P", "NeedDaemonReload", unit]
    assert box.systemctl(show).stdout.split() == ["first", "yes"]
    got = in_box(
        box,
        box_tmp,
        """
        with Manager.connect() as m:
            t = time.monotonic()
            m.reload()
            emit({"via": m.via, "seconds": time.monotonic() - t,
                  "state": m.active_state("ptest-mgr-new.service")})
        """,
    )
    assert got["via"] == "bus"
    assert got["state"] == "active"
    assert got["seconds"] < 10
    assert box.systemctl(show).stdout.split() == ["second", "no"]


@pytest.mark.box
def test_start_restart_stop(box, box_tmp, units):
    units.write("/run/systemd/system/ptest-mgr-sleep.service", SLEEP_UNIT)
    box.systemctl(["daemon-reload"])
    got = in_box(
        box,
        box_tmp,
        """
        u = "ptest-mgr-sleep.service"
        out = {}
        with Manager.connect() as m:
            out["before"] = [m.active_state(u), m.is_active(u)]
            job = m.start_unit(u)
            out["job"] = job
            out["start"] = m.wait_jobs([job])[job]
            out["after_start"] = [m.active_state(u), m.is_active(u)]
            out["restart"] = [r.result for r in m.run_jobs([("restart", u)])]
            out["after_restart"] = m.active_state(u)
            out["stop"] = [(r.unit, r.verb, r.result, r.ok) for r in m.run_jobs([("stop", u)])]
            out["after_stop"] = [m.active_state(u), m.is_active(u)]
        emit(out)
        """,
    )
    assert got["before"] == ["inactive", False]
    assert got["job"].startswith("/org/freedesktop/systemd1/job/")
    assert got["start"] == ["ptest-mgr-sleep.service", "done"]
    assert got["after_start"] == ["active", True]
    assert got["restart"] == ["done"]
    assert got["after_restart"] == "active"
    assert got["stop"] == [["ptest-mgr-sleep.service", "stop", "done", True]]
    assert got["after_stop"] == ["inactive", False]


@pytest.mark.box
def test_failing_job_and_refused_calls_are_results(box, box_tmp, units):
    units.write(
        "/run/systemd/system/ptest-mgr-fail.service",
        "[Service]\nType=oneshot\nExecStart=/bin/false\n",
    )
    box.systemctl(["daemon-reload"])
    got = in_box(
        box,
        box_tmp,
        """
        with Manager.connect() as m:
            results = m.run_jobs([("start", "ptest-mgr-fail.service"),
                                  ("start", "ptest-mgr-absent.service")])
            emit([[r.unit, r.verb, r.job, r.result] for r in results])
        """,
    )
    fail, absent = (JobResult(*r) for r in got)
    assert fail.result == "failed" and fail.job and not fail.ok
    assert isinstance(fail.error, JobFailed)
    assert str(fail.error) == "Job for ptest-mgr-fail.service failed: result 'failed'"
    assert (fail.error.unit, fail.error.result) == ("ptest-mgr-fail.service", "failed")
    assert absent.job == ""
    assert absent.result == "error: Unit ptest-mgr-absent.service not found."
    assert not isinstance(absent.error, JobFailed)
    assert str(absent.error) == (
        "Failed to call StartUnit on ptest-mgr-absent.service: "
        "Unit ptest-mgr-absent.service not found."
    )


@pytest.mark.box
def test_start_unit_raises_for_a_refused_call(box, box_tmp):
    got = in_box(
        box,
        box_tmp,
        """
        from portable.systemd.manager import ManagerError
        with Manager.connect() as m:
            try:
                m.start_unit("ptest-mgr-absent.service")
            except ManagerError as e:
                emit([str(e), e.error_name])
        """,
    )
    assert got == [
        "Failed to start ptest-mgr-absent.service: Unit ptest-mgr-absent.service not found.",
        "org.freedesktop.systemd1.NoSuchUnit",
    ]


@pytest.mark.box
def test_template_units(box, box_tmp, units):
    units.write("/run/systemd/system/ptest-mgr-tpl@.service", SLEEP_UNIT)
    box.systemctl(["daemon-reload"])
    got = in_box(
        box,
        box_tmp,
        """
        t = "ptest-mgr-tpl@.service"
        out = {}
        with Manager.connect() as m:
            out["idle"] = m.is_active(t)
            out["start"] = [r.result for r in m.run_jobs([("start", t),
                                                          ("start", "ptest-mgr-tpl@a.service")])]
            out["running"] = [m.is_active(t), m.is_active("ptest-mgr-tpl@a.service"),
                              m.is_active("ptest-mgr-tpl@b.service")]
            out["template_state"] = m.active_state(t)
            out["stop"] = [r.result for r in m.run_jobs([("stop", "ptest-mgr-tpl@a.service")])]
            out["stopped"] = m.is_active(t)
        emit(out)
        """,
    )
    assert got["idle"] is False
    assert got["start"] == [
        "error: Unit name ptest-mgr-tpl@.service is missing the instance name.",
        "done",
    ]
    assert got["running"] == [True, True, False]
    assert got["template_state"] == ""  # PID 1 refuses to load a bare template
    assert got["stop"] == ["done"]
    assert got["stopped"] is False


@pytest.mark.box
def test_jobs_without_waiting(box, box_tmp, units):
    units.write("/run/systemd/system/ptest-mgr-nowait.service", SLEEP_UNIT)
    box.systemctl(["daemon-reload"])
    got = in_box(
        box,
        box_tmp,
        """
        u = "ptest-mgr-nowait.service"
        with Manager.connect() as m:
            (queued,) = m.run_jobs([("start", u)], wait=False)
            later = m.wait_jobs([queued.job, queued.job])
            emit([queued.result, queued.ok, later, m.active_state(u)])
        """,
    )
    result, ok, later, state = got
    assert (result, ok, state) == ("queued", True, "active")
    assert list(later.values()) == [["ptest-mgr-nowait.service", "done"]]


@pytest.mark.box
def test_enable_disable_portable_runtime(box, box_tmp, units):
    attached = "/run/systemd/system.attached"
    unit = units.write(f"{attached}/ptest-mgr-att.service", INSTALLABLE)
    box.systemctl(["daemon-reload"])
    got = in_box(
        box,
        box_tmp,
        f"""
        out = {{}}
        v = {box.systemd_version}
        with Manager.connect() as m:
            out["before"] = m.unit_file_state("{unit}")
            changes = m.enable_unit_files(["{attached}/{unit}"], runtime=True)
            out["enable"] = [[c.type, c.path, c.source] for c in changes]
            out["enable_lines"] = format_install_changes(changes, "→", systemd=v)
            out["enabled"] = m.unit_file_state("{unit}")
            changes = m.disable_unit_files(["{unit}"], runtime=True)
            out["disable"] = [[c.type, c.path, c.source] for c in changes]
            out["disable_lines"] = format_install_changes(changes, "→", systemd=v)
            out["disabled"] = m.unit_file_state("{unit}")
            out["absent"] = m.unit_file_state("ptest-mgr-absent.service")
        emit(out)
        """,
    )
    # UNIT_FILE_PORTABLE: the [Install] links go into the attached directory itself.
    link = f"{attached}/multi-user.target.wants/{unit}"
    assert got["before"] == "disabled"
    assert got["enable"] == [["symlink", link, f"{attached}/{unit}"]]
    # systemctl's wording: 257 quotes every path with ', 252 only removed ones, with "
    if box.systemd_version >= 257:
        assert got["enable_lines"] == [f"Created symlink '{link}' → '{attached}/{unit}'."]
    else:
        assert got["enable_lines"] == [f"Created symlink {link} → {attached}/{unit}."]
    assert got["enabled"] == "enabled-runtime"
    assert got["disable"] == [["unlink", link, ""]]
    if box.systemd_version >= 257:
        assert got["disable_lines"] == [f"Removed '{link}'."]
    else:
        assert got["disable_lines"] == [f'Removed "{link}".']
    assert got["disabled"] == "disabled"
    assert got["absent"] == ""
    # The emptied .wants directory goes too, so detach can remove the attached directory.
    assert not box.path(f"{attached}/multi-user.target.wants").exists()


@pytest.mark.box
def test_persistent_portable_enable_reports_disabled(box, box_tmp, units):
    # systemd 252 only counts .wants links in /etc/systemd/system (and runtime or vendor
    # directories) as "enabled": links in /etc/systemd/system.attached leave the unit
    # "disabled", although PID 1 follows them at boot.
    attached = "/etc/systemd/system.attached"
    unit = units.write(f"{attached}/ptest-mgr-patt.service", INSTALLABLE)
    box.systemctl(["daemon-reload"])
    got = in_box(
        box,
        box_tmp,
        f"""
        with Manager.connect() as m:
            changes = m.enable_unit_files(["{attached}/{unit}"], runtime=False)
            state = m.unit_file_state("{unit}")
            undone = m.disable_unit_files(["{unit}"], runtime=False)
            emit([[[c.type, c.path] for c in changes], state, [c.type for c in undone]])
        """,
    )
    changes, state, undone = got
    assert changes == [["symlink", f"{attached}/multi-user.target.wants/{unit}"]]
    assert state == "disabled"
    assert box.systemctl(["is-enabled", unit], check=False).stdout.strip() == "disabled"
    assert undone == ["unlink"]


@pytest.mark.box
@pytest.mark.parametrize(("lang", "arrow"), [("C.UTF-8", "→"), ("C", "->")])
def test_install_lines_match_systemctl(box, box_tmp, units, lang, arrow):
    unit = units.write("/run/systemd/system/ptest-mgr-plain.service", INSTALLABLE)
    box.systemctl(["daemon-reload"])
    # systemctl logs these lines to stderr.
    env = {"LANG": lang}
    expected_enable = box.systemctl(["enable", "--runtime", unit], env=env).stderr.splitlines()
    expected_disable = box.systemctl(["disable", "--runtime", unit], env=env).stderr.splitlines()
    got = in_box(
        box,
        box_tmp,
        f"""
        with Manager.connect() as m:
            on = m.enable_unit_files(["{unit}"], runtime=True, portable=False)
            off = m.disable_unit_files(["{unit}"], runtime=True, portable=False)
            v = {box.systemd_version}
            emit([
                format_install_changes(on, {arrow!r}, systemd=v),
                format_install_changes(off, {arrow!r}, systemd=v),
            ])
        """,
    )
    assert expected_enable and expected_disable
    assert got == [expected_enable, expected_disable]


@pytest.mark.box
def test_install_warnings_match_systemctl(box, box_tmp, units):
    # A missing WantedBy= target and a missing Also= unit: two more change types.
    unit = units.write(
        "/run/systemd/system/ptest-mgr-warn.service",
        "[Service]\nExecStart=/bin/true\n[Install]\n"
        "WantedBy=ptest-mgr-nowhere.target\nAlso=ptest-mgr-nothere.service\n",
    )
    units.dirs.append("/run/systemd/system/ptest-mgr-nowhere.target.wants")
    box.systemctl(["daemon-reload"])
    expected = box.systemctl(["enable", "--runtime", unit]).stderr.splitlines()
    box.systemctl(["disable", "--runtime", unit])
    got = in_box(
        box,
        box_tmp,
        f"""
        v = {box.systemd_version}
        with Manager.connect() as m:
            on = m.enable_unit_files(["{unit}"], runtime=True, portable=False)
            m.disable_unit_files(["{unit}"], runtime=True, portable=False)
            emit([[c.type for c in on], format_install_changes(on, "→", systemd=v)])
        """,
    )
    types, lines = got
    assert types == ["symlink", "destination not present", "auxiliary unit failed"]
    assert lines == expected


@pytest.mark.box
def test_enable_failure_is_one_line(box, box_tmp):
    got = in_box(
        box,
        box_tmp,
        """
        from portable.systemd.manager import ManagerError
        with Manager.connect() as m:
            try:
                m.enable_unit_files(["/run/systemd/system.attached/ptest-mgr-absent.service"],
                                    runtime=True)
            except ManagerError as e:
                emit(str(e))
        """,
    )
    assert got.startswith(
        "Failed to enable the portable service "
        "/run/systemd/system.attached/ptest-mgr-absent.service: "
    )
    assert "\n" not in got


# --- a dedicated box: the system bus goes down -----------------------------------------------


@pytest.mark.box
def test_private_socket_fallback():
    reason = box_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Box() as box:
        box.systemctl(["stop", "dbus.socket", "dbus.service"])
        box.path("/run/systemd/system/ptest-mgr-priv.service").write_text(SLEEP_UNIT)
        work = box.mkdtemp()
        got = in_box(
            box,
            work,
            """
            u = "ptest-mgr-priv.service"
            out = {}
            with Manager.connect() as m:
                out["via"] = m.via
                t = time.monotonic()
                m.reload()
                out["reload_seconds"] = time.monotonic() - t
                out["start"] = [r.result for r in m.run_jobs([("start", u)])]
                out["active"] = m.is_active(u)
                out["restart"] = [r.result for r in m.run_jobs([("restart", u)])]
                m.reload()  # the private connection survives a reload
                job = m.stop_unit(u)
                out["stop"] = m.wait_jobs([job])[job]
                out["after"] = m.active_state(u)
                out["file_state"] = m.unit_file_state(u)
            from portable.systemd.manager import ManagerError
            try:
                Manager.connect(private_socket=None)
            except ManagerError as e:
                out["bus_only"] = str(e)
            emit(out)
            """,
        )
    assert got["via"] == "private"
    assert got["reload_seconds"] < 10
    assert got["start"] == ["done"]
    assert got["active"] is True
    assert got["restart"] == ["done"]
    assert got["stop"] == ["ptest-mgr-priv.service", "done"]
    assert got["after"] == "inactive"
    assert got["file_state"] == "static"
    assert got["bus_only"].startswith(
        "cannot reach the service manager: system bus unix:path=/run/dbus/system_bus_socket: "
    )


# --- on the host: nothing to connect to, and peers that never answer -------------------------


def test_connect_with_nothing_reachable(tmp_path):
    bus = f"unix:path={tmp_path}/no-bus"
    private = str(tmp_path / "no-private")
    with pytest.raises(ManagerError) as err:
        Manager.connect(bus_address=bus, private_socket=private)
    message = str(err.value)
    assert message == (
        f"cannot reach the service manager: system bus {bus}: No such file or directory; "
        f"{private}: No such file or directory"
    )


def test_connect_bad_bus_address(tmp_path):
    with pytest.raises(ManagerError) as err:
        Manager.connect(bus_address="tcp:host=localhost,port=1", private_socket=None)
    assert str(err.value).startswith("cannot reach the service manager: system bus tcp:")
    assert "\n" not in str(err.value)


class SilentPeer:
    """A unix socket server that accepts, optionally says OK to the auth, then says nothing."""

    def __init__(self, path: Path, *, authenticate: bool) -> None:
        self.path = path
        self.authenticate = authenticate
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.authenticate:
                conn.recv(4096)
                conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def silent_peer(tmp_path):
    peers = []

    def make(name: str, *, authenticate: bool) -> SilentPeer:
        peer = SilentPeer(tmp_path / name, authenticate=authenticate)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def test_hung_bus_times_out(silent_peer, tmp_path):
    peer = silent_peer("bus", authenticate=False)
    t = time.monotonic()
    with pytest.raises(ManagerError) as err:
        Manager.connect(timeout=0.5, bus_address=f"unix:path={peer.path}", private_socket=None)
    assert time.monotonic() - t < 5
    assert str(err.value) == (
        f"cannot reach the service manager: system bus unix:path={peer.path}: Connection timed out"
    )


def test_hung_manager_times_out(silent_peer, tmp_path):
    peer = silent_peer("private", authenticate=True)
    m = Manager.connect(
        timeout=0.5, bus_address=f"unix:path={tmp_path}/no-bus", private_socket=str(peer.path)
    )
    with m:
        assert m.via == "private"
        t = time.monotonic()
        with pytest.raises(ManagerError) as err:
            m.reload()
        assert str(err.value) == "Failed to reload daemon: Connection timed out"
        with pytest.raises(ManagerError) as err:
            m.run_jobs([("start", "foo.service")])
        assert time.monotonic() - t < 5
        assert str(err.value).endswith(": Connection timed out")


DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def bus_without_systemd(tmp_path):
    """A real dbus-daemon on which nobody owns org.freedesktop.systemd1."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed")
    path = tmp_path / "bus"
    config = tmp_path / "bus.conf"
    config.write_text(DBUS_CONFIG.format(path=path))
    proc = subprocess.Popen(
        [daemon, f"--config-file={config}", "--nofork", "--nopidfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("dbus-daemon did not start")
            time.sleep(0.02)
        yield f"unix:path={path}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_bus_without_systemd_falls_back_to_private(bus_without_systemd, silent_peer, tmp_path):
    with pytest.raises(ManagerError) as err:
        Manager.connect(bus_address=bus_without_systemd, private_socket=None)
    assert str(err.value) == (
        f"cannot reach the service manager: system bus {bus_without_systemd}: "
        "org.freedesktop.systemd1 is not on the bus"
    )
    peer = silent_peer("private", authenticate=True)
    with Manager.connect(bus_address=bus_without_systemd, private_socket=str(peer.path)) as m:
        assert m.via == "private"


# --- pure functions ----------------------------------------------------------------------------


def test_format_install_changes():
    changes = [
        Change(type="symlink", path="/a/x.target.wants/u.service", source="/a/u.service"),
        Change(type="unlink", path="/a/x.target.wants/u.service"),
        Change(type="masked", path="/etc/systemd/system/m.service"),
        Change(type="dangling", path="/etc/systemd/system/d.service"),
        Change(type="destination not present", path="no.target", source="/a/u.service"),
        Change(type="auxiliary unit failed", path="aux.service"),
        Change(type="something new", path="/x"),
    ]
    assert format_install_changes(changes, "->", systemd=252) == [
        "Created symlink /a/x.target.wants/u.service -> /a/u.service.",
        'Removed "/a/x.target.wants/u.service".',
        "Unit /etc/systemd/system/m.service is masked, ignoring.",
        "Unit /etc/systemd/system/d.service is an alias to a unit that is not present, ignoring.",
        "Unit /a/u.service is added as a dependency to a non-existent unit no.target.",
        "Failed to enable auxiliary unit aux.service, ignoring.",
    ]
    assert format_install_changes(changes, "->", systemd=257) == [
        "Created symlink '/a/x.target.wants/u.service' -> '/a/u.service'.",
        "Removed '/a/x.target.wants/u.service'.",
        "Unit /etc/systemd/system/m.service is masked, ignoring.",
        "Unit /etc/systemd/system/d.service is an alias to a non-existent unit, ignoring.",
        "Unit /a/u.service is added as a dependency to a non-existent unit no.target.",
        "Failed to enable auxiliary unit aux.service, ignoring.",
    ]


def test_job_result_errors():
    assert JobResult("a.service", "start", "/j/1", "done").error is None
    assert JobResult("a.service", "start", "/j/1", "skipped").ok
    assert JobResult("a.service", "stop", "", "queued").error is None
    err = JobResult("a.service", "restart", "/j/1", "dependency").error
    assert isinstance(err, JobFailed)
    assert str(err) == "Job for a.service failed: result 'dependency'"
    err = JobResult("a.service", "stop", "", "error: Access denied").error
    assert str(err) == "Failed to call StopUnit on a.service: Access denied"


def test_cli_start_up_does_not_load_dbus():
    code = (
        "import sys, portable, portable.cli, portable.engine.state; "
        "print(sorted(m for m in sys.modules if m == 'jeepney' or m.startswith('portable.systemd.')"
        " and m.endswith(('.manager', '.bus'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
