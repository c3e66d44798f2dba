"""Small things box tests do again and again: ask an image's state, a unit's, who a service runs
as, run either tool, and clean up what a test attached."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from portable.testing.box import Box

__all__ = ["active", "clean", "main_process_user", "run_tool", "state"]


def state(box: Box, image: str) -> str:
    """``portable is-attached IMAGE`` in the box."""
    return box.portable(["is-attached", image]).stdout.strip()


def active(box: Box, name: str) -> str:
    """``systemctl is-active NAME`` in the box."""
    return box.systemctl(["is-active", name], check=False).stdout.strip()


def main_process_user(box: Box, pid: int, timeout: float = 10.0) -> str:
    """Who process ``pid`` of the box runs as: "root", "dynamic" (a DynamicUser= uid), "uid N",
    or "gone". A Type=simple service is "active" right after fork, while the child (called
    "(sh)") still runs as root and sets itself up: this waits for the exec."""
    status = box.path(f"/proc/{pid}/status")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except FileNotFoundError:
            return "gone"
        if not fields["Name"].strip().startswith("(") or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    uid = int(fields["Uid"].split()[1])
    if uid == 0:
        return "root"
    if 61184 <= uid <= 65519:
        return "dynamic"
    return f"uid {uid}"


def run_tool(box: Box, tool: str, *args: str) -> CompletedProcess[str]:
    """``portablectl ARGS`` or ``python -m portable ARGS`` (``tool``: "portablectl" or other)
    in the box, not checked."""
    argv = (
        ["portablectl"] if tool == "portablectl" else [str(box.python_executable), "-m", "portable"]
    )
    return box.run([*argv, *args], check=False)


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    """Detach whatever a test left, so one failure doesn't cascade. (A fixture: a test module
    takes it in by assignment, ``clean = in_box.clean``.)"""
    yield
    box.run(
        "for d in /run/systemd/system.attached /etc/systemd/system.attached; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf /run/portables /etc/portables; systemctl daemon-reload",
        check=False,
    )


def venv_with_example_plugin(box: Box) -> Path:
    """A fresh virtualenv (visible in the box) with portable-services and the example plugin
    installed from this checkout, as a user installs them (pip, not editable)."""
    repo = Path(__file__).resolve().parents[2]
    d = box.mkdtemp(prefix="venv-") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(d)], check=True)
    subprocess.run(
        [
            str(d / "bin/pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            str(repo),
            str(repo / "examples" / "portable-example-plugin"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return d
