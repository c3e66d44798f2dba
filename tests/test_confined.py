"""Symlinks inside an image never lead out of it; odd files never hang or exhaust memory."""

from __future__ import annotations

import os
import threading

import pytest

from portable.images.confined import (
    UnsafePath,
    list_dir,
    open_root,
    read_file,
    resolve_dir,
    resolve_path,
)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "img"
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "usr/lib/os-release").write_text("ID=inside\n")
    # A host file the image must never reach.
    (tmp_path / "secret").write_text("host secret\n")
    return root


def read(root, path, max_size=1 << 20):
    with open_root(root) as fd:
        return read_file(fd, path, max_size=max_size)


def test_relative_symlink_inside(tree):
    os.symlink("../usr/lib/os-release", tree / "etc/os-release")
    got = read(tree, "/etc/os-release")
    assert got.data == b"ID=inside\n"
    assert got.path == "/usr/lib/os-release"


def test_absolute_symlink_resolves_in_image_root(tree):
    os.symlink("/usr/lib/os-release", tree / "etc/os-release")
    assert read(tree, "/etc/os-release").data == b"ID=inside\n"


def test_absolute_symlink_to_host_file_is_not_followed(tree, tmp_path):
    os.symlink(str(tmp_path / "secret"), tree / "etc/leak")
    assert read(tree, "/etc/leak") is None  # the path does not exist inside the image


def test_relative_escape_is_clamped_at_root(tree, tmp_path):
    os.symlink("../../../../secret", tree / "etc/leak")
    assert read(tree, "/etc/leak") is None
    os.symlink("../../../../../usr/lib/os-release", tree / "etc/up")
    assert read(tree, "/etc/up").data == b"ID=inside\n"


def test_dotdot_in_requested_path_is_clamped(tree):
    assert read(tree, "/../../../usr/lib/os-release").data == b"ID=inside\n"


def test_symlinked_directory_is_confined(tree, tmp_path):
    (tmp_path / "hostdir").mkdir()
    (tmp_path / "hostdir/x").write_text("host")
    os.symlink(str(tmp_path / "hostdir"), tree / "etc/dir")
    assert read(tree, "/etc/dir/x") is None


def test_symlink_loop_is_an_error(tree):
    os.symlink("b", tree / "etc/a")
    os.symlink("a", tree / "etc/b")
    with pytest.raises(UnsafePath, match="symbolic links"):
        read(tree, "/etc/a")


def test_self_loop_is_an_error(tree):
    os.symlink("self", tree / "etc/self")
    with pytest.raises(UnsafePath, match="symbolic links"):
        read(tree, "/etc/self")


def test_fifo_is_refused_without_hanging(tree):
    os.mkfifo(tree / "etc/fifo")
    result: list[BaseException | None] = []

    def attempt():
        try:
            read(tree, "/etc/fifo")
            result.append(None)
        except UnsafePath as exc:
            result.append(exc)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "reading a FIFO hung"
    assert isinstance(result[0], UnsafePath)
    assert "FIFO" in str(result[0])


def test_device_is_refused(tree):
    os.symlink("/dev/zero", tree / "etc/zero")  # confined: /dev/zero does not exist inside
    assert read(tree, "/etc/zero") is None
    if os.geteuid() == 0:
        os.mknod(tree / "etc/null", 0o600 | 0o020000, os.makedev(1, 3))
        with pytest.raises(UnsafePath, match="character device"):
            read(tree, "/etc/null")


def test_directory_is_refused(tree):
    with pytest.raises(UnsafePath, match="directory"):
        read(tree, "/usr/lib")


def test_oversized_file_is_refused(tree):
    (tree / "etc/big").write_bytes(b"x" * 5000)
    with pytest.raises(UnsafePath, match="too large"):
        read(tree, "/etc/big", max_size=4096)
    assert len(read(tree, "/etc/big", max_size=5000).data) == 5000


def test_missing_and_non_directory_components(tree):
    assert read(tree, "/nope") is None
    assert read(tree, "/usr/lib/os-release/x") is None


def test_resolve_dir_and_list(tree):
    os.symlink("usr/lib", tree / "lib")
    with open_root(tree) as fd, resolve_dir(fd, "/lib") as opened:
        assert opened is not None
        dfd, resolved = opened
        assert resolved == "/usr/lib"
        assert list_dir(dfd) == [("os-release", "file")]
    with open_root(tree) as fd, resolve_dir(fd, "/missing") as opened:
        assert opened is None


def test_resolve_path(tree):
    os.symlink("/usr/lib", tree / "lib")
    with open_root(tree) as fd:
        assert resolve_path(fd, "/lib/os-release") == "/usr/lib/os-release"
        assert resolve_path(fd, "/lib/none") is None
        assert resolve_path(fd, "/") == "/"


def test_no_descriptor_leaks(tree):
    os.symlink("b", tree / "etc/a")
    os.symlink("a", tree / "etc/b")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        read(tree, "/etc/os-release")
        read(tree, "/usr/lib/os-release")
        with pytest.raises(UnsafePath):
            read(tree, "/etc/a")
    assert len(os.listdir("/proc/self/fd")) == before
