"""Resource bounds: no unbounded reads of anything an image (or the attached directory) holds.

Peak memory is measured per process with ``wait4(2)`` (``ru_maxrss`` of exactly that process), the
time with a monotonic clock: a 64 MiB os-release or unit file (sparse) is refused quickly with
one line, and the process never grows anywhere near the file's size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import roots

from portable.testing.images import make_directory_image, service_unit

BIG = 64 * 1024 * 1024
RSS_LIMIT_KIB = 100 * 1024  # absolute bound; the interpreter with click and plugins is ~25 MiB
HEADROOM_KIB = 32 * 1024  # above an ordinary run: far less than the 64 MiB a whole read costs
FAST = 10.0  # seconds; reading 64 MiB would not take long either, but memory would show it
UNIT_DIR = "usr/lib/systemd/system"


def measured(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[bytes], int, float]:
    """Run ``portable --root ROOT ARGS``: the result, its peak RSS in KiB, its duration."""
    return measured_argv([sys.executable, "-m", "portable", "--root", str(root), *args])


# A forked child's peak RSS counts the pages it shared with its parent before exec: measured
# from pytest (100+ MiB by the end of a full run) that would swamp the figure. So a small
# Python spawns the command (posix_spawn: no copy of even its own pages) and reports wait4's
# figure for exactly that process.
_SPAWN = """
import os, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def measured_argv(argv: list[str]) -> tuple[subprocess.CompletedProcess[bytes], int, float]:
    env = {**os.environ, "PORTABLE_SERVICES_NO_PLUGINS": "1"}
    start = time.monotonic()
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as report,
    ):
        proc = subprocess.run(
            [sys.executable, "-c", _SPAWN, report.name, *argv],
            stdout=out,
            stderr=err,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, "the measuring wrapper failed"
        rc, maxrss = map(int, report.read().split())
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(argv, rc, out.read(), err.read())
    return done, maxrss, time.monotonic() - start


root = roots.host_root  # (a fixture)


def sparse(path: Path, size: int, head: bytes) -> None:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


@pytest.fixture(scope="module")
def limit(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Peak RSS allowed (KiB): an ordinary inspect's, plus headroom, and never 100 MiB."""
    root = tmp_path_factory.mktemp("baseline") / "root"
    (root / "etc").mkdir(parents=True)
    make_directory_image(root / "srv/foo_1", units={"foo.service": service_unit()}, busybox=False)
    proc, rss, _ = measured(root, "inspect", "--cat", "/srv/foo_1")
    assert proc.returncode == 0, proc.stderr
    return min(rss + HEADROOM_KIB, RSS_LIMIT_KIB)


def one_line(proc: subprocess.CompletedProcess[bytes], text: str) -> None:
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("portable: error:")]
    assert len(errors) == 1 and text in errors[0], stderr
    assert "Traceback" not in stderr


def test_baseline_memory_and_the_measurement(root: Path, tmp_path: Path) -> None:
    """An ordinary inspect stays well below the limit, and a process that does read 64 MiB
    shows it: the measurement would catch an unbounded read."""
    make_directory_image(root / "srv/foo_1", units={"foo.service": service_unit()}, busybox=False)
    proc, rss, _ = measured(root, "inspect", "--cat", "/srv/foo_1")
    assert proc.returncode == 0, proc.stderr
    assert rss < RSS_LIMIT_KIB // 2, rss
    sparse(tmp_path / "big", BIG, b"x")
    code = f"data = open({str(tmp_path / 'big')!r}, 'rb').read(); assert len(data) == {BIG}"
    proc, greedy, _ = measured_argv([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert greedy > rss + BIG // 1024 // 2, (greedy, rss)


@pytest.mark.parametrize("where", ["/usr/lib/os-release", "/etc/os-release"])
def test_64mib_os_release(root: Path, where: str, limit: int) -> None:
    img = make_directory_image(
        root / "srv/foo_1", units={"foo.service": service_unit()}, os_release=None, busybox=False
    )
    for p in ("etc/os-release", "usr/lib/os-release"):
        if os.path.lexists(img / p):
            os.unlink(img / p)
    sparse(img / where.lstrip("/"), BIG, b"ID=huge\nPRETTY_NAME=")
    for verb in (["inspect", "--cat"], ["attach", "--runtime"]):
        proc, rss, took = measured(root, *verb, "/srv/foo_1")
        one_line(proc, "is too large")
        assert rss < limit, f"{verb[0]} peaked at {rss} KiB"
        assert took < FAST, took
    assert not (root / "run").exists()


@pytest.mark.parametrize("via_symlink", [False, True])
def test_64mib_unit_file(root: Path, via_symlink: bool, limit: int) -> None:
    img = make_directory_image(
        root / "srv/foo_1", units={"foo-ok.service": service_unit()}, busybox=False
    )
    target = img / (f"{UNIT_DIR}/foo.service" if not via_symlink else "var/big")
    sparse(target, BIG, b"[Service]\nExecStart=/x\n# ")
    if via_symlink:
        os.symlink("/var/big", img / UNIT_DIR / "foo.service")
    for verb in (["inspect", "--cat"], ["attach", "--runtime"]):
        proc, rss, took = measured(root, *verb, "/srv/foo_1")
        one_line(proc, "is too large")
        assert rss < limit, f"{verb[0]} peaked at {rss} KiB"
        assert took < FAST, took
    assert not (root / "run").exists()


def test_files_at_the_limit_are_read_and_one_byte_more_is_not(root: Path, limit: int) -> None:
    from portable.images.osrelease import MAX_OS_RELEASE_SIZE
    from portable.images.units import MAX_UNIT_SIZE

    img = make_directory_image(root / "srv/foo_1", os_release=None, busybox=False)
    osrel = b"ID=limit\n"
    (img / "usr/lib/os-release").write_bytes(osrel + b"#" * (MAX_OS_RELEASE_SIZE - len(osrel)))
    unit = service_unit().encode()
    (img / UNIT_DIR / "foo.service").write_bytes(unit + b"#" * (MAX_UNIT_SIZE - len(unit)))
    proc, rss, _ = measured(root, "attach", "--runtime", "/srv/foo_1")
    assert proc.returncode == 0, proc.stderr
    assert rss < limit
    attached = root / "run/systemd/system.attached/foo.service"
    assert attached.stat().st_size == MAX_UNIT_SIZE
    assert measured(root, "detach", "--runtime", "/srv/foo_1")[0].returncode == 0
    with open(img / UNIT_DIR / "foo.service", "ab") as f:
        f.write(b"#")
    one_line(measured(root, "inspect", "/srv/foo_1")[0], "is too large")


def test_huge_marker_in_the_attached_directory(root: Path, limit: int) -> None:
    """State queries read only the first line of a 20-portable.conf, however large it is."""
    d = root / "run/systemd/system.attached"
    (d / "foo.service.d").mkdir(parents=True)
    (d / "foo.service").write_text(service_unit())
    sparse(
        d / "foo.service.d/20-portable.conf",
        BIG,
        b"# Drop-in created for image '/srv/foo_1', do not edit.\n",
    )
    (d / "baz.service.d").mkdir()
    sparse(d / "baz.service.d/20-portable.conf", BIG, b"#" * 4096)  # no newline for 64 MiB
    (d / "baz.service").write_text(service_unit())
    for args in (["is-attached", "/srv/foo_1"], ["list"]):
        proc, rss, took = measured(root, *args)
        assert proc.returncode == 0, proc.stderr
        assert rss < limit, f"{args[0]} peaked at {rss} KiB"
        assert took < FAST
    assert measured(root, "is-attached", "/srv/foo_1")[0].stdout == b"attached-runtime\n"


def test_attach_over_a_huge_attached_unit_file(root: Path, limit: int) -> None:
    """Re-attaching compares what is in place with what would be written: a 64 MiB file in
    the attached directory must not be read whole for that."""
    make_directory_image(root / "srv/foo_1", units={"foo.service": service_unit()}, busybox=False)
    assert measured(root, "attach", "--runtime", "/srv/foo_1")[0].returncode == 0
    unit = root / "run/systemd/system.attached/foo.service"
    unit.unlink()
    sparse(unit, BIG, service_unit().encode())
    proc, rss, took = measured(root, "attach", "--runtime", "/srv/foo_1")
    assert "Traceback" not in proc.stderr.decode()
    assert rss < limit, f"attach peaked at {rss} KiB"
