"""The test box (portable.testing.box) boots a usable systemd and leaves nothing behind."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

import portable.testing.box as box_module
from portable.testing import rootfs
from portable.testing.box import Box, BoxCommandError, BoxError, box_unavailable_reason
from portable.testing.images import make_directory_image, service_unit
from portable.testing.rootfs import RECIPES, Recipe, RootfsError, ensure_root


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
    with Box(distro=box.distro) as other:
        assert other.systemd_version == box.systemd_version
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
        mounts = f.read()
    assert other.name not in mounts
    if other.tree != Path("/"):  # nspawn mounts a cached root only in its own namespace
        assert f" {other.tree}/" not in mounts and f" {other.tree} " not in mounts
    cgroups = Path("/sys/fs/cgroup")
    assert not [*cgroups.glob(f"*box-{other.name}"), *cgroups.glob(f"*/*box-{other.name}")]
    assert not list(Path("/dev").glob(f".*{other.name}"))  # its private loop nodes
    other.stop()  # idempotent


def test_unavailable_reason_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert box_unavailable_reason() == "the test box needs root"


# --- which systemd boots: Box(distro=...), $PORTABLE_TEST_BOX -------------------------------


@pytest.mark.box
def test_distro_and_systemd_version(box: Box, box_distro: str) -> None:
    assert box.distro == box_distro
    recipe = RECIPES[box_distro]
    # The manager's version, the binaries' and the tree's all agree with the recipe.
    assert box.systemd_version == recipe.systemd
    assert box.systemctl(["--version"]).stdout.startswith(f"systemd {recipe.systemd} (")
    assert box.portablectl(["--version"]).stdout.startswith(f"systemd {recipe.systemd} (")
    os_release = box.run(["cat", "/etc/os-release"]).stdout
    assert f'VERSION_ID="{recipe.release}"' in os_release
    assert box.tree == (Path("/") if rootfs.host_distro() == box_distro else box.tree)
    if box.tree != Path("/"):
        assert box.tree.name == f"{box_distro}-{recipe.digest()}"


@pytest.mark.box
def test_volatile_etc(box: Box) -> None:
    # /etc starts empty: systemd fills in what it needs, the box adds the os-release link.
    assert re.fullmatch(r"[0-9a-f]{32}\n", box.path("/etc/machine-id").read_text())
    assert box.run(["readlink", "/etc/os-release"]).stdout.strip() == "../usr/lib/os-release"
    assert box.run(["getent", "passwd", "root"]).stdout.startswith("root:x:0:0:")
    failed = box.systemctl(["list-units", "--failed", "--plain", "--no-legend"]).stdout
    assert failed.strip() == ""


@pytest.mark.box
def test_our_cli_inside(box: Box) -> None:
    assert box.portable(["--help"]).stdout.startswith("Usage: portable ")
    assert box.portable(["list"]).stdout.strip() == "No images."
    listed = json.loads(box.portable(["list", "--json"]).stdout)
    assert listed == []


@pytest.mark.box
def test_services_get_a_real_host_sandbox(box: Box, box_tmp: Path) -> None:
    # PrivateNetwork= needs CAP_NET_ADMIN in 257 (else the service silently shares the network).
    links = box.run("systemd-run --wait --pipe -q -p PrivateNetwork=yes ip -o link").stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    # The "trusted" profile binds the box's /run into the image, /run/host included.
    img = make_directory_image(box_tmp / "trust_1", units={"trust.service": service_unit()})
    box.portablectl(["attach", "--profile=trusted", "--runtime", "--now", "-q", str(img)])
    try:
        state = box.run("sleep 0.2; systemctl is-active trust.service", check=False).stdout
        journal = box.run(["journalctl", "-b", "-q", "-u", "trust.service", "--no-pager"]).stdout
        assert state.strip() == "active", journal
        if box.systemd_version >= 254:  # the service sees its host's (the box's) os-release
            pid = box.systemctl(["show", "-P", "MainPID", "trust.service"]).stdout.strip()
            seen = box.run(["cat", f"/proc/{pid}/root/run/host/os-release"]).stdout
            assert seen == box.run(["cat", "/etc/os-release"]).stdout != ""
    finally:
        box.portablectl(["detach", "--runtime", "--now", "-q", str(img)])


@pytest.mark.box
def test_python_runs_as_another_user(box: Box) -> None:
    # The Python installation is bound below /root (0750 in the box); its parents are opened.
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    out = box.run([*drop, str(box.python_executable), "-c", "import os, sys; print(os.geteuid())"])
    assert out.stdout.strip() == "65534"
    assert box.run(["stat", "-c", "%a", "/root"]).stdout.strip() == "751"


@pytest.mark.box
@pytest.mark.systemd(min=256)
def test_unified_cgroups_for_new_systemd(box: Box) -> None:
    # systemd >= 256 refuses cgroup v1: the box gets the unified hierarchy even on a hybrid host.
    assert box.run(["stat", "-fc", "%T", "/sys/fs/cgroup"]).stdout.strip() == "cgroup2fs"
    # (The kernel still lists the host's v1 hierarchies here; systemd only uses the v2 line.)
    assert "0::/init.scope" in box.run(["cat", "/proc/1/cgroup"]).stdout.splitlines()


@pytest.mark.box
@pytest.mark.systemd(max=255)
def test_marker_skips_by_version(box: Box) -> None:
    assert box.systemd_version <= 255


def test_unknown_distro_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BoxError, match=r"unknown test box distro 'debian-99' \(known: debian-12"):
        Box(distro="debian-99")
    monkeypatch.setenv("PORTABLE_TEST_BOX", "sid")
    with pytest.raises(BoxError, match=r"'sid'.*\(from \$PORTABLE_TEST_BOX\)"):
        Box()
    assert box_unavailable_reason() is not None
    monkeypatch.setenv("PORTABLE_TEST_BOX", "debian-13")
    assert Box().distro == "debian-13"
    assert Box(distro="debian-12").distro == "debian-12"  # the argument wins


def test_host_tree_for_the_host_release() -> None:
    host = rootfs.host_distro()
    if host is None:
        pytest.skip("this machine does not run a Debian release the box knows")
    assert rootfs.tree_for(host) == Path("/")
    assert Box(distro=host).nspawn_command().count("--directory=/") == 1


def test_older_glibc_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Debian 13 machine's Python cannot run in a Debian 12 root: say so, before booting.
    host = rootfs.host_distro()
    if host is None or os.geteuid() != 0:
        pytest.skip("needs root on a Debian release the box knows")
    monkeypatch.setattr(box_module, "tree_glibc_version", lambda tree: (2, 1))
    reason = box_unavailable_reason(host)
    assert reason is not None
    assert re.fullmatch(
        rf"the {host} test box cannot run this Python \(.+\): it needs glibc 2\.\d+, "
        rf"the {host} root has 2\.1; run the tests with a Python built on {host} or older",
        reason,
    )
    with pytest.raises(BoxError, match="cannot run this Python"):
        Box(distro=host).start()


# --- the cached roots (portable.testing.rootfs), with a fake builder ---------------------------

TINY = Recipe(distro="tiny-1", suite="tiny", release=1, systemd=1, packages=("a", "b"))


class FakeBuilder:
    """Stands in for mmdebstrap: makes a tree with one file, counting its builds."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.builds: list[Recipe] = []
        self.delay = delay
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, recipe: Recipe, target: Path, log: Path) -> None:
        with self.lock:
            self.builds.append(recipe)
        assert target.is_dir() and not any(target.iterdir())
        (target / "usr/lib").mkdir(parents=True)
        (target / "usr/lib/os-release").write_text(f"ID={recipe.suite}\n")
        time.sleep(self.delay)
        if self.fail:
            raise RootfsError("fake build failed")


def test_root_is_built_once_and_reused(tmp_path: Path) -> None:
    build = FakeBuilder()
    root = ensure_root(TINY, tmp_path, build=build)
    assert root == tmp_path / f"tiny-1-{TINY.digest()}"
    assert (root / "usr/lib/os-release").read_text() == "ID=tiny\n"
    stamp = json.loads((root / ".portable-rootfs.json").read_text())
    assert stamp["digest"] == TINY.digest() and stamp["packages"] == ["a", "b"]
    assert ensure_root(TINY, tmp_path, build=build) == root
    assert rootfs.cached_root(TINY, tmp_path) == root
    assert build.builds == [TINY]
    # Only the root, the lock and nothing half-built.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", root.name]


def test_changed_recipe_rebuilds_and_removes_the_old_root(tmp_path: Path) -> None:
    build = FakeBuilder()
    other = dataclasses.replace(TINY, distro="tiny-2")
    other_root = ensure_root(other, tmp_path, build=build)
    old = ensure_root(TINY, tmp_path, build=build)
    for change in (
        {"packages": ("a", "b", "c")},
        {"suite": "tiny2"},
        {"variant": "essential"},
        {"mirror": "http://127.0.0.1/debian"},
        {"dpkg_options": ()},
        {"customize": ("touch $1/x",)},
    ):
        recipe = dataclasses.replace(TINY, **change)
        assert recipe.digest() != TINY.digest(), change
        new = ensure_root(recipe, tmp_path, build=build)
        assert new != old and new.is_dir() and not old.exists(), change
        old = new
    assert build.builds[-1].customize == ("touch $1/x",)
    assert len(build.builds) == 8
    assert other_root.is_dir()  # another distro's root stays
    # Not part of the recipe: the systemd version the suite is known to ship.
    assert dataclasses.replace(TINY, systemd=2).digest() == TINY.digest()


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RootfsError, match="fake build failed"):
        ensure_root(TINY, tmp_path, build=FakeBuilder(fail=True))
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]
    # A build killed half-way (its temporary tree is left) is cleaned up by the next one.
    (tmp_path / f".build-tiny-1-{TINY.digest()}/usr").mkdir(parents=True)
    build = FakeBuilder()
    root = ensure_root(TINY, tmp_path, build=build)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", root.name]
    assert len(build.builds) == 1


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    build = FakeBuilder(delay=0.3)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_root(TINY, tmp_path, build=build)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert build.builds == [TINY]


def test_mmdebstrap_missing_or_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("building a root needs root")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(RootfsError) as err:
        ensure_root(TINY, tmp_path / "cache")
    assert str(err.value) == (
        "mmdebstrap is not installed (apt-get install mmdebstrap); "
        "it builds the tiny-1 root of the test box"
    )
    fake = bin_dir / "mmdebstrap"
    fake.write_text("#!/bin/sh\necho I: one; echo I: two; echo E: it broke >&2; exit 2\n")
    fake.chmod(0o755)
    with pytest.raises(RootfsError) as err:
        ensure_root(TINY, tmp_path / "cache")
    log = tmp_path / "cache/tiny-1-build.log"
    assert str(err.value) == (
        f"mmdebstrap failed to build the tiny-1 root (exit 2, log {log}): "
        "I: one | I: two | E: it broke"
    )
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".lock", log.name]


def test_mmdebstrap_command() -> None:
    cmd = RECIPES["debian-13"].mmdebstrap_command(Path("/x"))
    assert cmd[:3] == ["mmdebstrap", "--mode=root", "--variant=minbase"]
    assert cmd[-3:] == ["trixie", "/x", "http://deb.debian.org/debian"]
    included = next(c for c in cmd if c.startswith("--include=")).split("=", 1)[1].split(",")
    assert {"systemd", "systemd-container", "dbus", "python3", "libssl3t64"} <= set(included)


@pytest.mark.parametrize(
    ("version", "distro"),
    [
        ("12.11\n", "debian-12"),
        ("13.2", "debian-13"),
        ("trixie/sid\n", "debian-13"),
        ("bookworm/sid", "debian-12"),
        ("11.9", None),
        ("forky/sid", None),
        (None, None),
    ],
)
def test_host_distro(tmp_path: Path, version: str | None, distro: str | None) -> None:
    if version is not None:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc/debian_version").write_text(version)
    assert rootfs.host_distro(tmp_path) == distro


def test_tree_versions(tmp_path: Path) -> None:
    assert rootfs.tree_systemd_version(tmp_path) is None
    assert rootfs.tree_glibc_version(tmp_path) is None
    (tmp_path / "usr/lib/x86_64-linux-gnu/systemd").mkdir(parents=True)
    (tmp_path / "usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so").touch()
    libc = tmp_path / "usr/lib/x86_64-linux-gnu/libc.so.6"
    libc.write_bytes(b"\x7fELF...GNU C Library (Debian GLIBC 2.41-12) stable release version 2.41.")
    assert rootfs.tree_systemd_version(tmp_path) == 257
    assert rootfs.tree_glibc_version(tmp_path) == (2, 41)
    assert rootfs.tree_systemd_version(Path("/")) is not None


def test_parse_distros_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert rootfs.parse_distros(" debian-13,debian-12,debian-13 ") == ["debian-13", "debian-12"]
    with pytest.raises(RootfsError, match="no test box distro selected"):
        rootfs.parse_distros(",")
    assert rootfs.main(["debian-99"]) == 1
    assert capsys.readouterr().err == (
        "rootfs: error: unknown test box distro 'debian-99' (known: debian-12, debian-13, host)\n"
    )
    host = rootfs.host_distro()
    if host is not None:
        assert rootfs.main([host]) == 0
        assert capsys.readouterr().out == f"{host} /\n"


@pytest.mark.box
def test_no_maintenance_timer_runs_in_the_box(box):
    """apt's timers once started a job in the middle of a test that waited for PID 1 to be idle."""
    from portable.testing.box import MAINTENANCE_TIMERS

    states = box.systemctl(["show", "-P", "LoadState", *MAINTENANCE_TIMERS]).stdout.split()
    assert set(states) <= {"masked", "not-found"}, states
