"""``portable -H`` and ``portable -M`` against real systemd hosts (portable.testing.fleet).

Two boxes reached by the host's own ``ssh``: ``box1`` has ``portable`` (this checkout), which
runs there; ``box2`` has only systemd, where the verbs go through systemd-portabled's D-Bus
API over ``systemd-stdio-bridge``. A squashfs image made here is attached *by its local path*:
it is shipped to the remote's /var/lib/portables once (a second attach copies nothing: same
inode, same mtime), then listed, asked about and detached. ``-M`` does the same with a local
container (box1, entered by its leader process). Bad input ends in one line naming the host and
leaves nothing half-copied or attached: a host nobody answers on, a refused key, a remote without
systemd or without portabled, a full disk on the remote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.testing.fleet import Fleet, fleet_unavailable_reason
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

pytestmark = pytest.mark.box


@pytest.fixture(scope="module")
def fleet(box_distro: str | None) -> Iterator[Fleet]:
    reason = fleet_unavailable_reason(box_distro)
    if reason is not None:
        pytest.skip(reason)
    with Fleet(2, portable=[True, False], distro=box_distro) as f:
        yield f


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("fleet-image")
    tree = make_directory_image(work / "tree", units={"fleetapp.service": service_unit()})
    return make_squashfs_image(work / "fleetapp_1.raw", tree)


def portable(
    fleet: Fleet, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``portable ARGS`` here, as a user runs it (a new process), with the fleet's ssh config."""
    return subprocess.run(
        [sys.executable, "-m", "portable", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **fleet.env, **(env or {})},
        timeout=180,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str], host: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"portable: error: {host}: "), lines[0]
    return lines[0]


def remote_files(fleet: Fleet, alias: str) -> list[str]:
    out = fleet.ssh(alias, "ls -A /var/lib/portables 2>/dev/null || true").stdout
    return sorted(out.split())


def stat_there(fleet: Fleet, alias: str, path: str) -> str:
    return fleet.ssh(alias, f"stat -c '%i %Y.%y' {path}").stdout.strip()


@pytest.fixture
def clean(fleet: Fleet) -> Iterator[None]:
    yield
    for host in fleet:
        fleet.ssh(
            host.alias,
            "portablectl detach --now fleetapp_1 >/dev/null 2>&1; "
            "rm -rf /var/lib/portables/fleetapp_1.raw /var/lib/portables/.fleetapp*",
            check=False,
        )


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("alias", ["box1", "box2"], ids=["with-portable", "only-systemd"])
def test_attach_by_path_ships_once_then_list_and_detach(
    fleet: Fleet, image: Path, alias: str
) -> None:
    host = f"root@{alias}"
    first = ok(portable(fleet, "-H", host, "attach", str(image)))
    assert "Copied /etc/systemd/system.attached/fleetapp.service" in first.stderr
    shipped = "/var/lib/portables/fleetapp_1.raw"
    assert remote_files(fleet, alias) == ["fleetapp_1.raw"]
    assert (
        fleet.ssh(alias, f"sha256sum < {shipped}").stdout.split()[0]
        == (
            subprocess.run(
                ["sha256sum", str(image)], capture_output=True, text=True
            ).stdout.split()[0]
        )
    )
    before = stat_there(fleet, alias, shipped)

    again = ok(portable(fleet, "-H", host, "attach", str(image)))
    assert "is already attached" in again.stderr
    assert stat_there(fleet, alias, shipped) == before  # not copied again

    listed = ok(portable(fleet, "-H", host, "list", "--no-legend")).stdout
    assert listed.split()[0] == "fleetapp_1" and listed.split()[-1] == "attached"
    state = ok(portable(fleet, "-H", host, "is-attached", str(image))).stdout
    assert state == "attached\n"
    assert fleet.ssh(alias, "portablectl is-attached fleetapp_1").stdout == "attached\n"

    gone = ok(portable(fleet, "-H", host, "detach", str(image)))
    assert "Removed /etc/systemd/system.attached/fleetapp.service." in gone.stderr
    assert ok(portable(fleet, "-H", alias, "is-attached", "fleetapp_1")).stdout == "detached\n"


@pytest.mark.usefixtures("clean")
def test_only_systemd_now_enable_and_json(fleet: Fleet, image: Path) -> None:
    ok(portable(fleet, "-H", "box2", "attach", "--now", "--enable", str(image)))
    assert fleet.ssh("box2", "systemctl is-active fleetapp.service").stdout == "active\n"
    rows = json.loads(ok(portable(fleet, "-H", "box2", "list", "--json")).stdout)
    assert [(r["name"], r["state"]) for r in rows] == [("fleetapp_1", "running")]
    inspect = ok(portable(fleet, "-H", "box2", "inspect", "fleetapp_1")).stdout
    assert "\tfleetapp.service" in inspect
    ok(portable(fleet, "-H", "box2", "detach", "--now", "--enable", str(image)))
    assert fleet.ssh("box2", "systemctl is-active fleetapp.service", check=False).stdout != (
        "active\n"
    )
    error = one_line_error(portable(fleet, "-H", "box2", "security", "fleetapp_1"), "box2")
    assert "needs portable installed there" in error


@pytest.mark.usefixtures("clean")
def test_machine_attach_by_path(fleet: Fleet, image: Path) -> None:
    name = fleet["box1"].box.name
    ok(portable(fleet, "-M", name, "attach", str(image)))
    assert remote_files(fleet, "box1") == ["fleetapp_1.raw"]
    assert ok(portable(fleet, "-M", name, "is-attached", "fleetapp_1")).stdout == "attached\n"
    assert "fleetapp_1" in ok(portable(fleet, "-M", name, "list")).stdout
    # Where the container has portable (here not on its PATH: named), it runs there.
    command = str(fleet["box1"].box.python_executable.parent / "portable")
    rows = json.loads(
        ok(
            portable(fleet, "-M", name, "list", "--json", env={"PORTABLE_REMOTE_COMMAND": command})
        ).stdout
    )
    assert [(r["name"], r["format"]) for r in rows] == [("fleetapp_1", "squashfs")]
    ok(portable(fleet, "-M", name, "detach", str(image)))
    assert fleet.ssh("box1", "portablectl is-attached fleetapp_1").stdout == "detached\n"
    one_line_error(portable(fleet, "-M", "no-such-container", "list"), "no-such-container")


def _config(fleet: Fleet, alias: str, *, port: int, key: Path) -> Path:
    """An ssh_config of its own for one alias (IdentityFile adds up: no fleet key in it)."""
    host = fleet["box1"]
    proxy = next(
        line.strip()
        for line in fleet.ssh_config.read_text().splitlines()
        if "ProxyCommand" in line and f"/proc/{host.box.leader_pid}/" in line
    )
    path = fleet.ssh_config.with_name(f"ssh_config.{alias}")
    path.write_text(
        f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f"  HostKeyAlias box1\n  {proxy}\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {fleet.known_hosts}\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  LogLevel ERROR\n"
    )
    return path


def test_unreachable_host_and_wrong_key(fleet: Fleet, image: Path, tmp_path: Path) -> None:
    dead = _config(fleet, "deadbox", port=2299, key=fleet.key)  # nothing listens there
    proc = portable(
        fleet, "-H", "deadbox", "attach", str(image), env={"PORTABLE_SSH_CONFIG": str(dead)}
    )
    assert "cannot connect" in one_line_error(proc, "deadbox")

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = _config(fleet, "box1", port=fleet["box1"].port, key=other)
    proc = portable(
        fleet, "-H", "root@box1", "attach", str(image), env={"PORTABLE_SSH_CONFIG": str(wrong)}
    )
    assert "authentication failed" in one_line_error(proc, "root@box1")
    assert remote_files(fleet, "box1") == []


@pytest.mark.parametrize("alias", ["box1", "box2"], ids=["with-portable", "only-systemd"])
def test_errors_of_the_verb_there_name_the_host(fleet: Fleet, alias: str) -> None:
    error = one_line_error(portable(fleet, "-H", alias, "inspect", "no-such-image"), alias)
    assert "no-such-image" in error


def test_remote_without_systemd(fleet: Fleet, image: Path) -> None:
    # /run/systemd/system is how a system says systemd runs it (sd_booted()): hidden, the
    # remote looks like one without systemd.
    fleet.ssh("box2", "mv /run/systemd/system /run/systemd/system.hidden")
    try:
        proc = portable(fleet, "-H", "box2", "attach", str(image))
        assert "systemd is not running there" in one_line_error(proc, "box2")
    finally:
        fleet.ssh("box2", "mv /run/systemd/system.hidden /run/systemd/system")
    assert remote_files(fleet, "box2") == []


def test_remote_without_portabled(fleet: Fleet, image: Path) -> None:
    # Hide the daemon's binary: the remote then has systemd but no systemd-portabled.
    daemon = "$(ls /usr/lib/systemd/systemd-portabled /lib/systemd/systemd-portabled | head -1)"
    fleet.ssh("box2", f"mount --bind /dev/null {daemon}")
    try:
        proc = portable(fleet, "-H", "box2", "attach", str(image))
        assert "systemd-portabled is not installed there" in one_line_error(proc, "box2")
    finally:
        fleet.ssh("box2", f"umount {daemon}")
    assert remote_files(fleet, "box2") in ([], ["fleetapp_1.raw"])
    assert fleet.ssh("box2", "portablectl is-attached fleetapp_1").stdout == "detached\n"


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("alias", ["box1", "box2"], ids=["with-portable", "only-systemd"])
def test_full_disk_while_shipping(fleet: Fleet, image: Path, alias: str) -> None:
    fleet.ssh(alias, "mount -t tmpfs -o size=64k tmpfs /var/lib/portables")
    try:
        proc = portable(fleet, "-H", alias, "attach", str(image))
        error = one_line_error(proc, alias)
        assert "no space left on device" in error, error
        assert remote_files(fleet, alias) == []  # no half-copied image, no temporary
    finally:
        fleet.ssh(alias, "umount /var/lib/portables")
    assert fleet.ssh(alias, "portablectl is-attached fleetapp_1").stdout == "detached\n"
