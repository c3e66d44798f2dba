"""Privileges: a non-root user is refused before anything is touched; written files get fixed
modes whatever the umask; nothing attach writes is world-writable.

Non-root runs use uid/gid 65534 (nobody) through ``setpriv``. On this host the Python the
virtualenv was made from may sit below a directory nobody can enter (``/root``); the run then
happens in a private mount namespace where that directory is replaced by a world-readable
tmpfs holding just a bind mount of the Python installation (nothing changes outside that
namespace). If even that is impossible, the tests say why and skip.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.checks import snapshot

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

NOBODY = 65534
ROOT_ERROR = "must run as root"
REAL_HOST_DIRS = (
    "/etc/systemd/system.attached",
    "/run/systemd/system.attached",
    "/etc/portables",
    "/run/portables",
)


def _blocked_ancestor(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that others can't enter, if any."""
    current = Path("/")
    for part in path.parts[1:]:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return current
        current = current / part
    return None


def nobody_command(argv: list[str], hold: Path) -> list[str]:
    """``argv`` run as nobody, with the Python installation made reachable if necessary."""
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    base = Path(sys.base_prefix).resolve()
    blocked = _blocked_ancestor(base)
    if blocked is None:
        return [*drop, *argv]
    child = blocked / base.relative_to(blocked).parts[0]
    script = (
        f"set -e; mount --bind {shlex.quote(str(child))} {shlex.quote(str(hold))}; "
        f"mount -t tmpfs -o mode=0755 portable-test {shlex.quote(str(blocked))}; "
        f"mkdir {shlex.quote(str(child))}; "
        f"mount --bind {shlex.quote(str(hold))} {shlex.quote(str(child))}; "
        f'exec {" ".join(map(shlex.quote, drop))} "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory nobody can read (pytest's tmp_path is below a 0700 directory)."""
    d = Path(tempfile.mkdtemp(prefix="portable-priv-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def as_nobody(shared_dir: Path):
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    if shutil.which("setpriv") is None or shutil.which("unshare") is None:
        pytest.skip("needs setpriv and unshare (util-linux)")
    hold = shared_dir / ".python"
    hold.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PORTABLE_SERVICES_", "PYTEST"))
    }
    env["HOME"] = "/nonexistent"

    def run(*args: str, cwd: Path = Path("/")) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "portable", *args]
        return subprocess.run(
            nobody_command(argv, hold),
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=60,
            check=False,
        )

    probe = run("--version")
    if probe.returncode != 0 or "portable-services" not in probe.stdout:
        pytest.skip(f"the Python of this virtualenv can't run as nobody here: {probe.stderr}")
    whoami = subprocess.run(
        nobody_command([sys.executable, "-c", "import os; print(os.geteuid())"], hold),
        capture_output=True,
        text=True,
        check=False,
    )
    assert whoami.stdout.strip() == str(NOBODY), whoami
    return run


def one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("portable: error:"), proc.stderr
    assert text in lines[0], lines[0]


def test_non_root_is_refused_on_the_real_host_before_anything_is_touched(
    as_nobody, shared_dir: Path
) -> None:
    img = make_directory_image(
        shared_dir / "priv_1", units={"priv.service": service_unit()}, busybox=False
    )
    before = snapshot(Path("/"), REAL_HOST_DIRS)
    for args in (
        ["attach", str(img)],
        ["attach", "--runtime", "--now", str(img)],
        ["detach", str(img)],
        ["detach", "--runtime", "priv_1"],
        ["reattach", str(img)],
        ["attach", "/nonexistent"],
    ):
        one_line_error(as_nobody(*args), ROOT_ERROR)
    assert snapshot(Path("/"), REAL_HOST_DIRS) == before
    # Reading is fine without root: inspect works, list and is-attached work or fail cleanly.
    inspect = as_nobody("inspect", str(img))
    assert inspect.returncode == 0, inspect.stderr
    assert "priv.service" in inspect.stdout
    for args in (["list"], ["is-attached", str(img)]):
        proc = as_nobody(*args)
        assert "Traceback" not in proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("portable: error:")]
        assert proc.returncode == 0 or len(errors) == 1, proc.stderr
    assert snapshot(Path("/"), REAL_HOST_DIRS) == before


def test_non_root_on_a_root_it_cannot_write(as_nobody, shared_dir: Path) -> None:
    """--root on a directory owned by root: a one-line permission error, nothing written."""
    root = shared_dir / "root"
    make_directory_image(root / "srv/priv_1", units={"priv.service": service_unit()}, busybox=False)
    (root / "etc").mkdir(exist_ok=True)
    before = snapshot(root, ("/etc", "/run", "/var"))
    proc = as_nobody("--root", str(root), "attach", "--runtime", "/srv/priv_1")
    one_line_error(proc, "Permission denied")
    assert snapshot(root, ("/etc", "/run", "/var")) == before


def test_non_root_on_its_own_root(as_nobody, shared_dir: Path) -> None:
    """--root on a directory the user owns is the documented way to work without root."""
    root = shared_dir / "root"
    make_directory_image(root / "srv/priv_1", units={"priv.service": service_unit()}, busybox=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), NOBODY, NOBODY)
    proc = as_nobody("--root", str(root), "attach", "--runtime", "/srv/priv_1")
    assert proc.returncode == 0, proc.stderr
    unit = root / "run/systemd/system.attached/priv.service"
    assert unit.stat().st_uid == NOBODY and stat.S_IMODE(unit.stat().st_mode) == 0o644
    proc = as_nobody("--root", str(root), "detach", "--runtime", "/srv/priv_1")
    assert proc.returncode == 0, proc.stderr
    assert not unit.parent.exists()


# --- fixed modes, whatever the umask ---------------------------------------------------------


@pytest.mark.parametrize(
    ("umask", "copy", "runtime"),
    [
        (0o000, "auto", True),
        (0o077, "auto", False),
        (0o000, "mixed", False),
        (0o077, "mixed", True),
        (0o000, "symlink", True),
        (0o077, "copy", False),
    ],
    ids=lambda v: f"{v:03o}" if isinstance(v, int) and not isinstance(v, bool) else str(v),
)
def test_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int, copy: str, runtime: bool):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=host\n")
    # A profile inside the root, so --copy=auto/symlink link it rather than copy it.
    prof = root / "etc/systemd/portable/profile/mine"
    prof.mkdir(parents=True)
    (prof / "service.conf").write_text("[Service]\nPrivateNetwork=yes\n")
    make_directory_image(
        root / "srv/modes_1",
        units={"modes.service": service_unit(), "modes.socket": "[Socket]\n"},
        busybox=False,
    )
    before = snapshot(root, ("/etc", "/run"))
    flags = ["--runtime"] if runtime else []
    cmd = [sys.executable, "-m", "portable", "--root", str(root)]
    env = {**os.environ, "PORTABLE_SERVICES_NO_PLUGINS": "1"}
    proc = subprocess.run(
        [
            "sh",
            "-c",
            f'umask {umask:03o}; exec "$@"',
            "sh",
            *cmd,
            "attach",
            *flags,
            f"--copy={copy}",
            "--profile=mine",
            "/srv/modes_1",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    after = snapshot(root, ("/etc", "/run"))
    added = {k: v for k, v in after.items() if k not in before}
    assert added, "nothing was written"
    copy_top = f"/{'run' if runtime else 'etc'}/portables/modes_1"
    for key, (kind, mode, _) in added.items():
        if copy == "mixed" and key == copy_top:  # private to root (issue 16, hole 3)
            assert (kind, mode) == ("dir", 0o700), (key, oct(mode))
        elif kind == "file":
            assert mode == 0o644, (key, oct(mode))
        elif kind == "dir":
            assert mode == 0o755, (key, oct(mode))
        else:
            assert kind == "link", key
    for key, (kind, mode, _) in after.items():
        assert kind == "link" or not mode & stat.S_IWOTH, f"{key} is world-writable"
    subprocess.run([*cmd, "detach", *flags, "/srv/modes_1"], env=env, check=True)


# --- in the box: a real host with systemd ----------------------------------------------------


@pytest.mark.box
def test_non_root_in_the_box(box: Box, box_tmp: Path) -> None:
    """As nobody on a real systemd host: attach, detach and reattach are refused with one
    line and change nothing (an image root attached stays attached); reading works."""
    os.chmod(box_tmp, 0o755)
    for parent in box_tmp.parents:  # the box's scratch directory must be enterable
        if parent == box.scratch_dir.parent:
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    img = make_directory_image(box_tmp / "priv_1", units={"priv.service": service_unit()})
    v2 = make_directory_image(box_tmp / "priv_2", units={"priv.service": service_unit()})
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    py = [str(box.python_executable), "-m", "portable"]
    dirs = ("/etc/systemd", "/run/systemd/system.attached", "/etc/portables", "/run/portables")

    def nobody(*args: str) -> subprocess.CompletedProcess[str]:
        return box.run([*drop, *py, *args], check=False)

    probe = box.run([*drop, str(box.python_executable), "-c", "import os; print(os.geteuid())"])
    assert probe.stdout.strip() == str(NOBODY)
    box.portable(["attach", "--runtime", "-q", str(img)])
    try:
        before = snapshot(box.path("/"), dirs)
        for args in (
            ["attach", str(v2)],
            ["attach", "--runtime", "--now", str(v2)],
            ["detach", "--runtime", str(img)],
            ["detach", "--runtime", "--now", "priv_1"],
            ["reattach", "--runtime", str(v2)],
        ):
            one_line_error(nobody(*args), ROOT_ERROR)
        assert snapshot(box.path("/"), dirs) == before
        assert nobody("is-attached", str(img)).stdout == "attached-runtime\n"
        inspect = nobody("inspect", str(v2))
        assert inspect.returncode == 0 and "priv.service" in inspect.stdout, inspect.stderr
        listing = nobody("list")
        assert "Traceback" not in listing.stderr
        assert snapshot(box.path("/"), dirs) == before
    finally:
        box.portable(["detach", "--runtime", "-q", str(img)])
