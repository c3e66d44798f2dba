"""The test box (portable.testing.box) boots a usable systemd and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from portable.testing.box import Box, BoxCommandError, box_unavailable_reason


def _nspawn_machines() -> dict[int, str]:
    """Running systemd-nspawn processes: pid -> the --machine= they were given."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "systemd-nspawn":
                args = (entry / "cmdline").read_bytes().decode().split("\0")
                machine = [a for a in args if a.startswith("--machine=")]
                found[int(entry.name)] = machine[0].partition("=")[2] if machine else ""
        except OSError:
            pass
    return found


@pytest.mark.box
def test_boots_with_private_socket(box: Box) -> None:
    assert box.path("/run/systemd/private").exists()
    assert box.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert box.run("echo $0; hostname").stdout.split() == ["sh", box.name]


@pytest.mark.box
def test_system_state(box: Box) -> None:
    state = box.run(["systemctl", "is-system-running"], check=False).stdout.strip()
    assert state in ("running", "degraded"), box.systemctl(["--failed", "--no-pager"]).stdout
    assert box.systemctl(["is-active", "dbus.socket"]).stdout.strip() == "active"


@pytest.mark.box
def test_portablectl_list_is_empty(box: Box) -> None:
    assert box.portablectl(["list"]).stdout.strip() == "No images."


@pytest.mark.box
def test_venv_python_imports_the_checkout(box: Box) -> None:
    out = box.python(["-c", "import portable; print(portable.__file__)"]).stdout.strip()
    assert out == str(box.checkout / "core" / "__init__.py")


@pytest.mark.box
def test_box_tmp_is_shared(box: Box, box_tmp: Path) -> None:
    (box_tmp / "from-host").write_text("host\n")
    box.run(f"cat {box_tmp}/from-host > {box_tmp}/from-box; echo box >> {box_tmp}/from-box")
    assert (box_tmp / "from-box").read_text() == "host\nbox\n"
    assert box.run(["pwd"], cwd=str(box_tmp)).stdout.strip() == str(box_tmp)
    box.run(["sh", "-c", "echo inside > /root/note"])
    assert box.path("/root/note").read_text() == "inside\n"


@pytest.mark.box
def test_run_environment_and_failures(box: Box) -> None:
    env = box.run("echo $PATH $LANG; cat", input="in", env={"X": "1"}).stdout.split()
    assert env[0].startswith("/usr/local/sbin:") and env[1:] == ["C.UTF-8", "in"]
    with pytest.raises(BoxCommandError) as err:
        box.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert err.value.returncode == 3
    assert "exit code 3" in str(err.value) and "out" in str(err.value)
    assert "err" in str(err.value)
    assert box.run("exit 4", check=False).returncode == 4


@pytest.mark.box
def test_usr_is_read_only(box: Box) -> None:
    assert box.run("touch /usr/x", check=False).returncode != 0


@pytest.mark.box
def test_short_lived_box_leaves_nothing_behind(box: Box) -> None:
    # Requests the session box too, so this runs only where a box can boot.
    assert box_unavailable_reason() is None
    with Box() as other:
        nspawn, leader = other.nspawn_pid, other.leader_pid
        scratch = other.scratch_dir
        assert _nspawn_machines()[nspawn] == other.name
        assert other.run(["hostname"]).stdout.strip() == other.name != box.name
        # A loop device attached without autoclear would outlive the container.
        other.run(f"truncate -s 1M {scratch}/img")
        loop = other.run(["losetup", "--find", "--show", f"{scratch}/img"]).stdout.strip()
        assert other.name in Path(f"/sys/block/{Path(loop).name}/loop/backing_file").read_text()
    assert other.name not in _nspawn_machines().values()
    assert not Path(f"/sys/block/{Path(loop).name}/loop/backing_file").exists()
    assert not Path(f"/proc/{leader}").exists()
    assert not scratch.exists()
    with open("/proc/self/mountinfo") as f:
        assert other.name not in f.read()
    cgroups = Path("/sys/fs/cgroup")
    assert not [*cgroups.glob(f"*box-{other.name}"), *cgroups.glob(f"*/*box-{other.name}")]
    other.stop()  # idempotent


def test_unavailable_reason_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert box_unavailable_reason() == "the test box needs root"
