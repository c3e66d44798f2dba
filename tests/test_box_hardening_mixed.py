"""Hardening 2 (issue 16, hole 3) in the box: ``--copy=mixed`` and what other users can reach.

An image kept in a 0700 directory, with ``/usr/bin/suidsh`` 4755 root, a 0666 block device and a
0666 character device. ``attach --copy=mixed`` copies it into /run/portables (/etc/portables
without ``--runtime``), and the service runs from the ORIGINAL path (``RootDirectory=`` names it).

portablectl 257 (src/portable/portable.c, install_image(): copy_tree() with COPY_REFLINK and
the fsync flags, no mode changes) keeps the top directory's 0755, the setuid bit and the device
nodes: user nobody (``setpriv --reuid=65534``) can then reach the setuid binary and open the
devices' nodes, which the 0700 directory had kept from them. portablectl 252 has no
``--copy=mixed``.

We differ on purpose: the copy's top is 0700 (a raw file 0600), setuid/setgid bits and file
capabilities are dropped and device nodes left out (FIFOs, sockets and everything else as the
image has them), so the copy gives no other user anything the image didn't. The service is
unaffected (it never uses the copy). The one thing that changes: attaching the copy itself later
by its name runs services from a 0700 root and without setuid binaries.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.in_box import run_tool as run

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"
COPY = "/run/portables/mx_1"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def nobody_can(box: Box, test: str, path: str) -> bool:
    """Whether user nobody sees ``path`` as ``test -<test>`` says (-u setuid, -b/-c devices)."""
    return box.run([*NOBODY, "test", f"-{test}", path], check=False).returncode == 0


def nobody_opens(box: Box, path: str) -> bool:
    return box.run([*NOBODY, "sh", "-c", f"exec 3<'{path}'"], check=False).returncode == 0


@pytest.fixture
def img(box_tmp: Path) -> str:
    private = box_tmp / "private"
    private.mkdir()
    os.chmod(private, 0o700)
    path = private / "mx_1"
    make_directory_image(path, units={"mx.service": service_unit(LOOP)})
    suid = path / "usr/bin/suidsh"
    suid.write_bytes((path / "usr/bin/busybox").read_bytes())
    os.chmod(suid, 0o4755)
    os.makedirs(path / "dev", exist_ok=True)
    os.mknod(path / "dev/blk", 0o666 | stat.S_IFBLK, os.makedev(7, 200))
    os.mknod(path / "dev/zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    return str(path)


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    yield
    box.run(
        "systemctl stop mx.service; rm -rf /run/systemd/system.attached /run/portables; "
        "systemctl daemon-reload; systemctl reset-failed",
        check=False,
    )


def test_mixed_copy_exposes_nothing(box: Box, img: str, clean: None):
    # the image as it is: nobody reaches nothing in it
    assert not nobody_can(box, "u", f"{img}/usr/bin/suidsh")
    assert not nobody_opens(box, f"{img}/dev/zero")
    if box.systemd_version >= 256:  # portablectl's copy, for the record of what it exposes
        proc = run(box, "portablectl", "attach", "--runtime", "--copy=mixed", img)
        assert proc.returncode == 0, proc
        assert nobody_can(box, "u", f"{COPY}/usr/bin/suidsh")
        assert nobody_can(box, "b", f"{COPY}/dev/blk")
        assert nobody_can(box, "c", f"{COPY}/dev/zero")
        # (opening it fails here only because the box's /run is a nodev tmpfs; /etc/portables
        # on a real host is not)
        proc = run(box, "portablectl", "detach", "--runtime", img)
        assert proc.returncode == 0, proc
        assert not box.path(COPY).exists()
    else:
        proc = run(box, "portablectl", "attach", "--runtime", "--copy=mixed", img)
        assert proc.returncode != 0  # 252: no such mode
    proc = run(box, "portable", "attach", "--runtime", "--now", "--copy=mixed", img)
    assert proc.returncode == 0, proc
    copy = box.path(COPY)
    assert stat.S_IMODE(os.lstat(copy).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(copy / "usr/bin/suidsh").st_mode) == 0o755
    assert not os.path.lexists(copy / "dev/blk") and not os.path.lexists(copy / "dev/zero")
    for test, path in (("u", "usr/bin/suidsh"), ("b", "dev/blk"), ("c", "dev/zero"), ("e", "usr")):
        assert not nobody_can(box, test, f"{COPY}/{path}"), path
    assert not nobody_opens(box, f"{COPY}/usr/lib/os-release")
    # the service runs, from the original path, with its own image's nodes untouched
    show = box.systemctl(["show", "mx.service", "--property=ActiveState,RootDirectory"])
    props = dict(line.split("=", 1) for line in show.stdout.splitlines())
    assert props == {"ActiveState": "active", "RootDirectory": img}, show
    assert stat.S_IMODE(os.lstat(f"{img}/usr/bin/suidsh").st_mode) == 0o4755
    proc = run(box, "portable", "detach", "--runtime", "--now", img)
    assert proc.returncode == 0, proc
    assert not copy.exists()
