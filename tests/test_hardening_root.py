"""Hardening 2 (issue 16, hole 2): nothing ``--root`` writes or removes lands outside the root.

The kernel follows a symlink below ``--root`` as it is: ``ROOT/etc/systemd/system.attached ->
/etc/systemd/system`` (or ``ROOT/etc``, ``ROOT/run``, ``ROOT/etc/portables``, a unit's ``.d``
directory, an absolute or a relative ``../..`` link) would make attach, detach, reattach and the
recovery of a killed run write or delete the real host's files. Such a path is refused in one
line, before anything is written or removed; a link that stays inside the root works as before.
Every test points the links at a temporary directory *outside* the root that stands in for the
host (never the machine's real /etc) and checks that nothing in it changed.

Hole 3, ``--copy=mixed`` (the end of this file; the box test is tests/test_box_hardening_mixed.py):
the copy in /etc/portables or /run/portables gives no other user more than the image gave.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers.runners import fork_run

from portable.testing.images import make_directory_image, service_unit

UNIT = "foo.service"


def cli(root: Path, *args: str, crash: int | None = None) -> subprocess.CompletedProcess[str]:
    """``portable --root ROOT ARGS`` in a forked child (killed at step ``crash``)."""
    return fork_run(
        ["--root", str(root), *args], {"PORTABLE_SERVICES_NO_PLUGINS": "1"}, crash_at=crash
    )


def tree(d: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry below ``d`` with its mode and content (or link target)."""
    out: dict[str, tuple[int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(d):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                data = os.fsencode(os.readlink(p))
            elif os.path.isfile(p):
                data = Path(p).read_bytes()
            else:
                data = b""
            out[os.path.relpath(p, d)] = (st.st_mode, data)
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc/systemd").mkdir(parents=True)
    (r / "run/systemd").mkdir(parents=True)
    (r / "etc/os-release").write_text("ID=host\n")
    make_directory_image(
        r / "srv/images/foo_1", units={UNIT: service_unit("sleep 1")}, busybox=False
    )
    make_directory_image(
        r / "srv/images/foo_2", units={UNIT: service_unit("sleep 2")}, busybox=False
    )
    return r


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Stands in for the real host: a directory outside the root, with a file of its own and a
    leftover-looking temporary that a sweep must not touch."""
    h = tmp_path / "host"
    h.mkdir()
    (h / "sshd.service").write_text("[Service]\nExecStart=/usr/sbin/sshd\n")
    (h / ".#portable-new-sshd.service.0123abcd").write_text("not ours\n")
    return h


def link_out(root: Path, rel: str, host: Path, *, relative: bool) -> None:
    """Replace ``ROOT/rel`` by a symlink to ``host`` (a directory outside the root)."""
    p = root / rel
    if p.is_dir():
        for entry in p.iterdir():  # keep what the root had there (e.g. etc/os-release)
            if not (host / entry.name).exists():
                os.rename(entry, host / entry.name)
        p.rmdir()
    p.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(host, p.parent) if relative else str(host)
    os.symlink(target, p)


# (component linked outside, options): each is a directory attach writes below
CASES = [
    ("etc/systemd/system.attached", ()),
    ("etc/systemd", ()),
    ("etc", ()),
    ("etc/portables", ()),
    ("run/systemd/system.attached", ("--runtime",)),
    ("run", ("--runtime",)),
    ("run/portables", ("--runtime",)),
]


def _refused(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("portable: error: "), proc.stderr
    assert "outside the root directory" in lines[0]


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize(("rel", "opts"), CASES, ids=[c[0] for c in CASES])
def test_attach_refused(root: Path, host: Path, rel: str, opts: tuple[str, ...], relative: bool):
    link_out(root, rel, host, relative=relative)
    before = tree(host)
    _refused(cli(root, "attach", *opts, "/srv/images/foo_1"))
    assert tree(host) == before


def test_unit_dropin_dir_linked_out(root: Path, host: Path):
    """A unit's own ``.d`` directory linked outside: the drop-ins would land on the host."""
    attached = root / "etc/systemd/system.attached"
    attached.mkdir(parents=True)
    os.symlink(host, attached / f"{UNIT}.d")
    before = tree(host)
    _refused(cli(root, "attach", "/srv/images/foo_1"))
    assert tree(host) == before
    assert not (attached / UNIT).exists()  # nothing half-written


@pytest.mark.parametrize(
    ("rel", "opts"), CASES[:2] + CASES[4:5], ids=["attached", "systemd", "run"]
)
def test_detach_and_reattach_refused(root: Path, host: Path, rel: str, opts: tuple[str, ...]):
    """Attached normally, then the directory is swapped for a link out (its files move to the
    "host"): detach and reattach would delete or replace those files there."""
    assert cli(root, "attach", *opts, "/srv/images/foo_1").returncode == 0
    link_out(root, rel, host, relative=False)
    before = tree(host)
    _refused(cli(root, "detach", *opts, "/srv/images/foo_1"))
    assert tree(host) == before
    _refused(cli(root, "reattach", *opts, "/srv/images/foo_2"))
    assert tree(host) == before


@pytest.mark.parametrize("crash", [2, 4, 6])
def test_killed_run_recovery_refused(root: Path, host: Path, crash: int):
    """A run killed mid-way leaves ``.#portable-*`` temporaries; when the directory holding them
    then leads outside the root, the next run's recovery must not remove or rename anything."""
    proc = cli(root, "attach", "/srv/images/foo_1", crash=crash)
    assert proc.returncode == -9, proc.stderr
    link_out(root, "etc/systemd/system.attached", host, relative=False)
    before = tree(host)
    _refused(cli(root, "attach", "/srv/images/foo_1"))
    _refused(cli(root, "detach", "/srv/images/foo_1"))
    assert tree(host) == before


def test_link_inside_root_still_works(root: Path, tmp_path: Path):
    """A link that stays inside the root (as a root built with symlinked directories has) is
    followed: attach and detach work and nothing appears outside."""
    (root / "data/attached").mkdir(parents=True)
    os.symlink("../../data/attached", root / "etc/systemd/system.attached")
    outside = {p.name for p in tmp_path.iterdir()}
    proc = cli(root, "attach", "/srv/images/foo_1")
    assert proc.returncode == 0, proc.stderr
    assert (root / "data/attached" / UNIT).is_file()
    proc = cli(root, "detach", "/srv/images/foo_1")
    assert proc.returncode == 0, proc.stderr
    assert not (root / "data/attached" / UNIT).exists()
    assert {p.name for p in tmp_path.iterdir()} == outside


def test_normal_attach_detach_unchanged(root: Path):
    for opts in ((), ("--runtime",)):
        assert cli(root, "attach", *opts, "/srv/images/foo_1").returncode == 0
        assert cli(root, "reattach", *opts, "/srv/images/foo_2").returncode == 0
        proc = cli(root, "detach", *opts, "/srv/images/foo_2")
        assert proc.returncode == 0, proc.stderr


# --- issue 16, hole 3: --copy=mixed ------------------------------------------------------------


def _suid_image(root: Path) -> Path:
    img = root / "srv/private/foo_1"
    make_directory_image(img, units={UNIT: service_unit("sleep 1")}, busybox=False)
    os.chmod(img.parent, 0o700)
    suid = img / "usr/bin/suidsh"
    suid.parent.mkdir(parents=True, exist_ok=True)
    suid.write_bytes(b"#!/bin/sh\n")
    os.chmod(suid, 0o4755)
    sgid = img / "usr/bin/sgid"
    sgid.write_bytes(b"x")
    os.chmod(sgid, 0o2755)
    (img / "dev").mkdir(exist_ok=True)
    os.mknod(img / "dev/sda", 0o666 | stat.S_IFBLK, os.makedev(8, 0))
    os.mknod(img / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(img / "dev/pipe", 0o600)
    return img


@pytest.mark.parametrize("runtime", [False, True], ids=["etc", "run"])
def test_mixed_copy_gives_no_one_more(root: Path, runtime: bool):
    """The copy's top is 0700, setuid/setgid bits are gone, device nodes are left out (portablectl
    257's copy_tree() keeps all three, in a world-readable /etc/portables); everything else,
    the units and the drop-in pointing at the ORIGINAL path, as before."""
    img = _suid_image(root)
    opts = ("--runtime",) if runtime else ()
    proc = cli(root, "attach", "--copy=mixed", *opts, "/srv/private/foo_1")
    assert proc.returncode == 0, proc.stderr
    base = root / ("run" if runtime else "etc")
    copy = base / "portables/foo_1"
    assert copy.is_dir() and not copy.is_symlink()
    assert stat.S_IMODE(os.lstat(copy).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(copy / "usr/bin/suidsh").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(copy / "usr/bin/sgid").st_mode) == 0o755
    assert not os.path.lexists(copy / "dev/sda")
    assert not os.path.lexists(copy / "dev/null")
    assert stat.S_ISFIFO(os.lstat(copy / "dev/pipe").st_mode)
    assert (copy / "usr/lib/os-release").read_bytes() == (img / "usr/lib/os-release").read_bytes()
    dropin = base / "systemd/system.attached" / f"{UNIT}.d/20-portable.conf"
    assert "RootDirectory=/srv/private/foo_1\n" in dropin.read_text()
    # the image itself is untouched
    assert stat.S_IMODE(os.lstat(img / "usr/bin/suidsh").st_mode) == 0o4755
    assert stat.S_ISBLK(os.lstat(img / "dev/sda").st_mode)
    assert not [p for p in (base / "portables").iterdir() if p.name.startswith(".#")]
    proc = cli(root, "detach", *opts, "/srv/private/foo_1")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(copy)


def test_mixed_copy_of_raw_file_is_private(root: Path):
    img = root / "srv/private/foo_1.raw"
    img.parent.mkdir(parents=True)
    os.chmod(img.parent, 0o700)
    from portable.testing.images import make_squashfs_image

    tree_dir = root / "srv/tree"
    make_directory_image(tree_dir, units={UNIT: service_unit("sleep 1")}, busybox=False)
    make_squashfs_image(img, tree_dir)
    os.chmod(img, 0o4644)
    proc = cli(root, "attach", "--copy=mixed", "--runtime", "/srv/private/foo_1.raw")
    if proc.returncode != 0 and "loop" in proc.stderr:
        pytest.skip(f"raw images need loop devices here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    copy = root / "run/portables/foo_1.raw"
    assert stat.S_IMODE(os.lstat(copy).st_mode) == 0o600
    assert cli(root, "detach", "--runtime", "/srv/private/foo_1.raw").returncode == 0


def test_mixed_copy_killed_leaves_nothing_reachable(root: Path):
    """A run killed at any step leaves no device node or setuid copy below the root (the copy is
    built in a 0700 holder and made safe before it is renamed into place), and the next run
    finishes with exactly one copy."""
    img = _suid_image(root)
    for crash in range(1, 12):
        proc = cli(root, "attach", "--copy=mixed", "--runtime", "/srv/private/foo_1", crash=crash)
        for dirpath, dirnames, filenames in os.walk(root / "run"):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                assert not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)), name
                if stat.S_ISREG(st.st_mode) and name == "suidsh":
                    assert not st.st_mode & stat.S_ISUID, (crash, dirpath)
        if proc.returncode == 0:
            break
    proc = cli(root, "attach", "--copy=mixed", "--runtime", "/srv/private/foo_1")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (root / "run/portables").iterdir()] == ["foo_1"]
    assert img.is_dir()
    assert cli(root, "detach", "--runtime", "/srv/private/foo_1").returncode == 0
