"""Shipping images by content hash (portable.remote.ship), against a "remote" that is this
machine: LocalTransport runs the same shell scripts ssh would run there, in a real ``sh``.
Failures are real too: a file size limit (``ulimit -f``) for a full disk, a truncated stdin for
a lost connection."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from portable.errors import PortableError
from portable.remote.ship import (
    _TREE_HASH_SH,
    local_image,
    remote_digest,
    ship,
    tree_digest,
    tree_manifest,
)
from portable.remote.transport import LocalTransport, RemoteError


class Wrapped(LocalTransport):
    """The script runs behind a shell prefix: ``ulimit -f 1;`` or a pipe that cuts stdin."""

    def __init__(self, prefix: str) -> None:
        super().__init__("fakehost")
        self.prefix = prefix

    def argv(self, script: str) -> list[str]:
        return ["sh", "-c", f"{self.prefix} sh -c {shlex.quote(script)}"]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote" / "var-lib-portables"
    path.mkdir(parents=True)
    return path


def _file(tmp_path: Path, name: str = "app_1.raw", size: int = 300_000) -> Path:
    path = tmp_path / "local" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "local" / "app_tree"
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text("ID=test\n")
    (root / "usr/lib/systemd/system/app.service").write_text("[Service]\nExecStart=/bin/true\n")
    (root / "etc").mkdir()
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    (root / "a name with spaces").write_text("x")
    os.chmod(root / "usr/lib/os-release", 0o4755)
    return root


def test_a_file_is_copied_once(tmp_path: Path, remote: Path) -> None:
    image = local_image(str(_file(tmp_path)))
    first = ship(LocalTransport(), image, str(remote))
    assert first.copied and first.remote_path == f"{remote}/app_1.raw"
    shipped = remote / "app_1.raw"
    assert shipped.read_bytes() == image.path.read_bytes()
    before = os.stat(shipped)
    second = ship(LocalTransport(), image, str(remote))
    assert not second.copied
    after = os.stat(shipped)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in remote.iterdir()) == ["app_1.raw"]  # no temporary left


def test_other_bytes_under_the_same_name_replace_the_file_atomically(
    tmp_path: Path, remote: Path
) -> None:
    path = _file(tmp_path)
    ship(LocalTransport(), local_image(str(path)), str(remote))
    old_inode = os.stat(remote / "app_1.raw").st_ino
    path.write_bytes(b"new version")
    assert ship(LocalTransport(), local_image(str(path)), str(remote)).copied
    assert (remote / "app_1.raw").read_bytes() == b"new version"
    assert os.stat(remote / "app_1.raw").st_ino != old_inode  # renamed into place, not rewritten


def test_the_tree_digest_is_the_same_here_and_there(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    there = subprocess.run(
        ["sh", "-c", f"cd {shlex.quote(str(root))} && {_TREE_HASH_SH}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert there == tree_digest(root)
    assert b"l 777 0 0 etc/os-release -> ../usr/lib/os-release\n" in tree_manifest(root)
    assert b"f 4755 0 0 usr/lib/os-release\n" in tree_manifest(root)


def test_a_tree_is_copied_once_and_never_replaced(tmp_path: Path, remote: Path) -> None:
    root = _tree(tmp_path)
    image = local_image(str(root))
    assert image.kind == "tree"
    assert ship(LocalTransport(), image, str(remote)).copied
    assert remote_digest(LocalTransport(), f"{remote}/app_tree") == ("tree", image.digest)
    assert os.readlink(remote / "app_tree/etc/os-release") == "../usr/lib/os-release"
    assert not ship(LocalTransport(), image, str(remote)).copied
    (root / "new-file").write_text("changed")
    with pytest.raises(RemoteError, match=r"^localhost: .*app_tree exists with other contents"):
        ship(LocalTransport(), local_image(str(root)), str(remote))
    assert not (remote / "app_tree/new-file").exists()


def test_a_full_disk_leaves_nothing(tmp_path: Path, remote: Path) -> None:
    image = local_image(str(_file(tmp_path, size=2_000_000)))
    # A 1-block file size limit: writing the copy fails (EFBIG/SIGXFSZ) as a full disk would.
    with pytest.raises(RemoteError) as info:
        ship(Wrapped("ulimit -f 1;"), image, str(remote))
    message = str(info.value)
    assert message.startswith("fakehost: shipping ") and "\n" not in message
    assert list(remote.iterdir()) == []


def test_a_lost_connection_leaves_nothing(tmp_path: Path, remote: Path) -> None:
    image = local_image(str(_file(tmp_path)))
    # The stream ends half-way: what arrived is not the image, so it never gets the name.
    with pytest.raises(RemoteError, match="incomplete"):
        ship(Wrapped("head -c 100000 |"), image, str(remote))
    assert list(remote.iterdir()) == []


def test_temporaries_of_dead_shipments_are_swept(tmp_path: Path, remote: Path) -> None:
    dead = remote / ".app_0.raw.portable-ship.999999999"
    dead.write_bytes(b"half")
    alive = remote / f".app_0.raw.portable-ship.{os.getpid()}"
    alive.write_bytes(b"in progress")
    ship(LocalTransport(), local_image(str(_file(tmp_path))), str(remote))
    assert not dead.exists()
    assert alive.exists()


def test_what_cannot_be_shipped_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(PortableError, match=r"^/nonexistent/app\.raw: cannot ship this image: "):
        local_image("/nonexistent/app.raw")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PortableError, match="only image files and directory trees"):
        local_image(str(fifo))
