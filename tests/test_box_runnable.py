"""An image systemd can't run a service from, and --now's start order (issue 14, item 2), in the
box against systemd's own portablectl.

A squashfs without /dev: portablectl attaches it with --now and exits 0 while the service fails
(226/NAMESPACE); ``portable`` warns, exits 1 naming the unit and the journal command, and leaves
the files attached (as portablectl does); ``--strict-image`` refuses before writing anything.
A socket with its service: ``portable attach --now`` starts the socket first, so it listens.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

pytestmark = pytest.mark.box

LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"


def show(box: Box, unit: str, *props: str) -> dict[str, str]:
    out = box.run(["systemctl", "show", unit, *(f"-p{p}" for p in props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def attached(box: Box, prefix: str) -> list[str]:
    d = box.path("/run/systemd/system.attached")
    return sorted(n for n in os.listdir(d) if n.startswith(prefix)) if d.is_dir() else []


def detach(box: Box, image: Path, unit: str) -> None:
    box.portable(["detach", "--now", "--runtime", str(image)], check=False)
    box.run(["systemctl", "reset-failed", unit], check=False)


def test_an_image_without_dev(box: Box, box_tmp: Path) -> None:
    tree = make_directory_image(box_tmp / "tree", units={"rnodev.service": service_unit(LOOP)})
    os.rmdir(tree / "dev")
    image = make_squashfs_image(box_tmp / "rnodev_1.raw", tree)
    unit = "rnodev.service"
    try:
        # portablectl: attached, started, exit 0; the service failed setting up its namespace
        ref = box.portablectl(["attach", "--now", "--runtime", str(image)], check=False)
        assert ref.returncode == 0, ref.stderr
        box.run(f"for i in $(seq 50); do systemctl -q is-failed {unit} && break; sleep 0.1; done")
        state = show(box, unit, "ActiveState", "ExecMainStatus")
        assert state == {"ActiveState": "failed", "ExecMainStatus": "226"}
        box.portablectl(["detach", "--now", "--runtime", str(image)])
        box.run(["systemctl", "reset-failed", unit], check=False)

        # --strict-image: refused, nothing written
        ours = box.portable(
            ["attach", "--now", "--runtime", "--strict-image", str(image)], check=False
        )
        assert ours.returncode == 1
        assert re.fullmatch(
            rf"portable: error: Image '{re.escape(str(image))}' can't run a portable service as "
            rf"is \({unit}: /dev is missing .*\), refusing \(--strict-image\)\.\n",
            ours.stderr,
        ), ours.stderr
        assert attached(box, "rnodev") == []
        assert not os.path.lexists(box.path(f"/run/portables/{image.name}"))

        # a warning, the start, exit 1 with the unit and the journal command; still attached
        ours = box.portable(["attach", "--now", "--runtime", str(image)], check=False)
        assert ours.returncode == 1, ours.stderr
        lines = ours.stderr.splitlines()
        assert lines[0] == (
            f"portable: warning: image '{image}' can't run {unit}: /dev is missing (systemd "
            "mounts the service's /dev there)"
        )
        assert lines[-1].startswith(f"portable: error: {unit} failed right after it was started")
        assert f"'journalctl -u {unit}'" in lines[-1]
        assert show(box, unit, "ActiveState", "ExecMainStatus") == {
            "ActiveState": "failed",
            "ExecMainStatus": "226",
        }
        assert attached(box, "rnodev") == ["rnodev.service", "rnodev.service.d"]
    finally:
        detach(box, image, unit)


def test_socket_is_started_before_its_service(box: Box, box_tmp: Path) -> None:
    port = 40000 + os.getpid() % 20000
    image = make_directory_image(
        box_tmp / "rnsock_1",
        units={
            "rnsock.socket": f"[Socket]\nListenStream=127.0.0.1:{port}\n",
            "rnsock.service": service_unit(LOOP),
        },
    )
    try:
        ours = box.portable(["attach", "--now", "--runtime", str(image)], check=False)
        assert ours.returncode == 0, ours.stderr
        queued = [line for line in ours.stderr.splitlines() if line.startswith("Queued")]
        assert [q.rsplit(" ", 1)[-1] for q in queued] == ["rnsock.socket.", "rnsock.service."]
        assert show(box, "rnsock.socket", "ActiveState")["ActiveState"] == "active"
        assert show(box, "rnsock.service", "ActiveState")["ActiveState"] == "active"
        box.python(
            ["-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 5).close()"]
        )
    finally:
        box.portable(["detach", "--now", "--runtime", str(image)], check=False)
