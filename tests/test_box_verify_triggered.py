"""portable verify on services that are not running but need not be: a oneshot started by a
timer (examples/hello's hello-tick), a socket-activated service with no connection yet, a
oneshot that finished. Everything but the process is checked (load state, the trigger, the
floor, kill mode); the kernel's rows say "not checked" and are no failure. A failed oneshot,
or a trigger of the attach that is stopped, is.

In the session's box (no boot of its own).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KERNEL_ROWS = {"network namespace", "capability bounding set", "user", "root directory"}


@pytest.fixture
def tmp(box: Box) -> Iterator[Path]:
    path = box.mkdtemp(prefix="vt-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def verify(box: Box, target: str) -> tuple[int, dict[str, dict]]:
    r = box.portable(["verify", "--json", target], check=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, {report["unit"]: report for report in json.loads(r.stdout)}


def checks(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


def detach(box: Box, img: Path, units: str) -> None:
    box.portable(["detach", "--runtime", "--now", "-q", str(img)], check=False)
    box.run(  # if the detach failed
        f"for u in {units}; do systemctl stop $u; rm -rf /run/systemd/system.attached/$u "
        f"/run/systemd/system.attached/$u.d; done; systemctl reset-failed; "
        f"rm -f /run/portables/{img.name}; systemctl daemon-reload",
        check=False,
    )


def assert_checked_but_not_running(report: dict, status: str) -> None:
    assert report["status"] == status and report["pid"] is None, json.dumps(report, indent=1)
    assert report["ok"] is True and report["error"] is None, json.dumps(report, indent=1)
    rows = checks(report)
    assert rows["unit"]["ok"] is True and rows["unit"]["seen"] == "loaded"
    assert rows["sandbox floor"]["ok"] is True and rows["kill mode"]["ok"] is True
    # the kernel's rows: what is promised, not checked
    assert set(rows) >= KERNEL_ROWS
    for name in KERNEL_ROWS:
        assert rows[name]["ok"] is None and rows[name]["promised"]
        assert rows[name]["seen"] == f"not checked: {status}"


def test_example_hello(box: Box, tmp: Path) -> None:
    """`portable attach --now` of examples/hello, then `portable verify hello`: exit 0."""
    img = make_directory_image(tmp / "hello_1.0", template=EXAMPLES / "hello", os_release=None)
    try:
        box.portable(["attach", "--runtime", "--now", "-q", str(img)])
        for _ in range(3):  # the minutely timer may fire while verify looks
            code, reports = verify(box, str(img))
            if reports["hello-tick.service"]["status"] != "running":
                break
        assert code == 0, json.dumps(reports, indent=1)
        assert set(reports) == {"hello.service", "hello-tick.service"}
        assert reports["hello.service"]["status"] == "running"
        assert reports["hello.service"]["pid"] > 1
        assert checks(reports["hello.service"])["user"]["ok"] is True
        tick = reports["hello-tick.service"]
        assert_checked_but_not_running(tick, "not running (triggered by hello-tick.timer)")
        trigger = checks(tick)["triggered by"]
        assert trigger["ok"] is True and trigger["promised"] == "hello-tick.timer active"
        assert trigger["seen"] == "hello-tick.timer active (waiting)"
        # the text form
        r = box.portable(["verify", "hello-tick.service"])
        lines = r.stdout.splitlines()
        head = "hello-tick.service (profile default): not running (triggered by hello-tick.timer)"
        assert lines[0] == head, r.stdout
        assert lines[1].split() == ["CHECK", "PROMISED", "SEEN"]
        user = next(line for line in lines if line.startswith("· user "))
        assert user.split()[-2:] == ["not", "checked"]
        assert lines[-1] == (
            "✓ hello-tick.service: sandbox as promised where checked (not running)"
        )
    finally:
        detach(box, img, "hello.service hello-tick.service hello-tick.timer")


def unit(service: str, install: str = "") -> str:
    return f"[Unit]\nDescription=verify trigger test\n\n[Service]\n{service}\n{install}"


def test_socket_timer_and_failed_oneshot(box: Box, tmp: Path) -> None:
    img = make_directory_image(
        tmp / "vtrig_1",
        units={
            "vtrig-sock.socket": "[Socket]\nListenStream=/run/vtrig-sock.sock\n",
            "vtrig-sock.service": unit("ExecStart=/usr/bin/sleep infinity"),
            "vtrig-fail.timer": "[Timer]\nOnActiveSec=1h\n",
            "vtrig-fail.service": unit("Type=oneshot\nExecStart=/usr/bin/false"),
            "vtrig-once.service": unit(
                "Type=oneshot\nExecStart=/usr/bin/true", "[Install]\nWantedBy=multi-user.target\n"
            ),
        },
    )
    units = " ".join(f"vtrig-{u}" for u in (["sock.socket", "sock.service", "fail.timer"]))
    units += " vtrig-fail.service vtrig-once.service"
    try:
        # vtrig-fail.service's start fails: the attach says so (and the socket's, as the
        # service started before it: "Socket service vtrig-sock.service already active")
        box.portable(["attach", "--runtime", "--now", "-q", str(img)], check=False)
        # listening, no connection yet
        box.run("systemctl stop vtrig-sock.service && systemctl start vtrig-sock.socket")
        code, reports = verify(box, str(img))
        assert code == 1, json.dumps(reports, indent=1)
        assert set(reports) == {"vtrig-sock.service", "vtrig-fail.service", "vtrig-once.service"}
        assert_checked_but_not_running(
            reports["vtrig-sock.service"], "not running (triggered by vtrig-sock.socket)"
        )
        assert checks(reports["vtrig-sock.service"])["triggered by"]["seen"] == (
            "vtrig-sock.socket active (listening)"
        )
        assert_checked_but_not_running(reports["vtrig-once.service"], "not running (oneshot)")
        assert "triggered by" not in checks(reports["vtrig-once.service"])
        failed = reports["vtrig-fail.service"]
        assert failed["ok"] is False and failed["error"] == "failed (Result=exit-code)"
        assert failed["status"] == "failed (Result=exit-code)"
        r = box.portable(["verify", "vtrig-fail.service"], check=False)
        assert r.returncode == 1
        assert r.stdout == "✗ vtrig-fail.service (profile default): failed (Result=exit-code)\n"

        # once reset, it waits for its timer again
        box.run("systemctl reset-failed vtrig-fail.service")
        code, reports = verify(box, str(img))
        assert code == 0, json.dumps(reports, indent=1)
        assert_checked_but_not_running(
            reports["vtrig-fail.service"], "not running (triggered by vtrig-fail.timer)"
        )

        # a trigger of the attach that is stopped: nothing will start the service
        box.run("systemctl stop vtrig-fail.timer")
        code, reports = verify(box, "vtrig-fail.service")
        assert code == 1
        report = reports["vtrig-fail.service"]
        bad = {c["check"]: c["seen"] for c in report["checks"] if c["ok"] is False}
        assert bad == {"triggered by": "vtrig-fail.timer inactive (dead)"}, json.dumps(report)
    finally:
        detach(box, img, units)
