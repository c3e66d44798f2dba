"""The unpack cache of archive images (portable.images.unpacked), with --root.

Keyed by the archive's identity: a replaced archive is unpacked afresh by the next attach
--force or reattach, into a new directory the drop-ins point at, while the old tree stays as it
was until the image is detached; one unpack per attach (the metadata is read from the unpacked
tree); detach removes every directory it made.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from portable import AttachRefused, ImageFormat, hookimpl
from portable.engine.preview import preview_attach
from portable.images.unpacked import STAGING_PREFIX
from portable.plugin.registry import Registry
from portable.plugin.types import AttachOptions
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, service_unit

CLI = Callable[..., tuple[int, str, str]]
UNPACKED = "var/cache/portable-services/unpacked"
DROPIN = "etc/systemd/system.attached/app.service.d/20-portable.conf"


class CountingTar:
    """A tar archive format whose ``open`` and ``unpack`` count their calls."""

    def __init__(self) -> None:
        self.unpacks = 0
        self.opens = 0

    def unpack(self, image: Path, destination: Path) -> None:
        self.unpacks += 1
        with tarfile.open(image) as archive:
            archive.extractall(destination, filter="data")

    @contextlib.contextmanager
    def open(self, image: Path) -> Iterator[Path]:
        self.opens += 1
        with tempfile.TemporaryDirectory(prefix="counting-tar-") as tmp:
            with tarfile.open(image) as archive:
                archive.extractall(tmp, filter="data")
            yield Path(tmp)

    @hookimpl
    def portable_image_formats(self) -> Iterable[ImageFormat]:
        return [
            ImageFormat(
                name="counting-tar",
                description="a tar archive, its unpacks counted",
                image_type="directory",
                detect=lambda p: p.name.endswith(".tar") and tarfile.is_tarfile(p),
                open=self.open,
                unpack=self.unpack,
                suffixes=(".tar",),
            )
        ]


@pytest.fixture
def fmt(register_plugin: Callable[[object, str], None]) -> CountingTar:
    plugin = CountingTar()
    register_plugin(plugin, "counting-tar")
    return plugin


def write_archive(
    root: Path, name: str, version: str, *, in_place: bool = False, unit: str = "app"
) -> str:
    """Build /srv/images/NAME: its service's ExecStart and /srv/version say ``version``.
    Written next to it and renamed over it (a new inode), or ``in_place`` into the same file."""
    tree = root.parent / f"tree-{name}-{version}"
    make_directory_image(
        tree,
        busybox=False,
        units={f"{unit}.service": service_unit(f"/usr/bin/{unit}-{version}")},
        files={"/srv/version": version},
    )
    path = root / "srv/images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(f".new-{name}")
    with tarfile.open(new, "w") as archive:
        archive.add(tree, arcname=".")
    if in_place and path.exists():
        data = new.read_bytes()
        new.unlink()
        with open(path, "r+b") as f:  # same inode: only size and times change
            f.write(data)
            f.truncate()
    else:
        os.replace(new, path)
    return f"/srv/images/{name}"


def root_directory(root: Path) -> str:
    (line,) = [
        x for x in (root / DROPIN).read_text().splitlines() if x.startswith("RootDirectory=")
    ]
    return line.removeprefix("RootDirectory=")


def cache_dirs(root: Path) -> list[str]:
    d = root / UNPACKED
    return sorted(os.listdir(d)) if d.is_dir() else []


def test_attach_force_runs_the_new_tree_and_keeps_the_old_one(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    image = write_archive(portable_root, "app_1.tar", "1")
    code, _, err = portable_cli("attach", image)
    assert code == 0, err
    assert (fmt.unpacks, fmt.opens) == (1, 0)  # read from the tree it unpacked, once
    first = root_directory(portable_root)
    assert first.startswith(f"/{UNPACKED}/app_1.tar-")
    assert (portable_root / first.lstrip("/") / "srv/version").read_text() == "1"
    unit = portable_root / "etc/systemd/system.attached/app.service"
    assert "ExecStart=/usr/bin/app-1" in unit.read_text()

    write_archive(portable_root, "app_1.tar", "2")
    code, _, err = portable_cli("attach", image)
    assert code == 1 and "already attached with other settings" in err
    assert cache_dirs(portable_root) == [first.rsplit("/", 1)[1]]  # nothing left of that try
    fmt.unpacks = 0

    code, _, err = portable_cli("attach", "--force", image)
    assert code == 0, err
    assert fmt.unpacks == 1
    second = root_directory(portable_root)
    assert second != first and second.startswith(f"/{UNPACKED}/app_1.tar-")
    assert (portable_root / second.lstrip("/") / "srv/version").read_text() == "2"
    assert "ExecStart=/usr/bin/app-2" in unit.read_text()
    # The old tree, which a running service may still use, is as it was
    assert (portable_root / first.lstrip("/") / "srv/version").read_text() == "1"

    code, _, err = portable_cli("detach", image)
    assert code == 0, err
    assert cache_dirs(portable_root) == []


def test_reattach_runs_the_new_tree_and_detach_removes_every_version(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    image = write_archive(portable_root, "app_1.tar", "1")
    assert portable_cli("attach", image)[0] == 0
    first = root_directory(portable_root)
    fmt.unpacks = 0
    write_archive(portable_root, "app_1.tar", "2")
    code, _, err = portable_cli("reattach", image)
    assert code == 0, err
    assert (fmt.unpacks, fmt.opens) == (1, 0)
    second = root_directory(portable_root)
    assert second != first
    assert (portable_root / second.lstrip("/") / "srv/version").read_text() == "2"
    assert (portable_root / first.lstrip("/") / "srv/version").read_text() == "1"

    # Rewritten in place (same inode), then reattached again: a third version
    fmt.unpacks = 0
    write_archive(portable_root, "app_1.tar", "3", in_place=True)
    assert portable_cli("reattach", image)[0] == 0
    assert fmt.unpacks == 1
    third = root_directory(portable_root)
    assert third not in (first, second)
    assert (portable_root / third.lstrip("/") / "srv/version").read_text() == "3"
    assert len(cache_dirs(portable_root)) == 3

    code, out, err = portable_cli("detach", image)
    assert code == 0, err
    assert cache_dirs(portable_root) == []
    for d in (first, second, third):
        assert f"Removed {d}.\n" in err


def test_unchanged_archive_is_not_unpacked_again(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    image = write_archive(portable_root, "app_1.tar", "1")
    assert portable_cli("attach", image)[0] == 0
    first = root_directory(portable_root)
    for args in (("attach", image), ("attach", "--force", image), ("reattach", image)):
        code, _, err = portable_cli(*args)
        assert code == 0, (args, err)
        assert root_directory(portable_root) == first
    assert fmt.unpacks == 1
    assert cache_dirs(portable_root) == [first.rsplit("/", 1)[1]]
    assert portable_cli("detach", image)[0] == 0
    assert cache_dirs(portable_root) == []


def test_reattach_to_another_path_removes_the_old_paths_trees(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    old = write_archive(portable_root, "app_1.tar", "1")
    assert portable_cli("attach", old)[0] == 0
    first = root_directory(portable_root)
    new = write_archive(portable_root, "app_2.tar", "2")
    code, _, err = portable_cli("reattach", new)
    assert code == 0, err
    second = root_directory(portable_root)
    assert second.startswith(f"/{UNPACKED}/app_2.tar-")
    assert cache_dirs(portable_root) == [second.rsplit("/", 1)[1]]
    assert not (portable_root / first.lstrip("/")).exists()
    assert portable_cli("detach", new)[0] == 0
    assert cache_dirs(portable_root) == []


def test_a_refused_attach_leaves_nothing(
    fmt: CountingTar,
    register_plugin: Callable[[object, str], None],
    portable_cli: CLI,
    portable_root: Path,
) -> None:
    class Veto:
        @hookimpl
        def portable_pre_attach(self) -> None:
            raise AttachRefused("veto: not today")

    image = write_archive(portable_root, "app_1.tar", "1")
    register_plugin(Veto(), "veto")
    code, _, err = portable_cli("attach", image)
    assert code == 1 and "not today" in err
    assert fmt.unpacks == 1
    assert cache_dirs(portable_root) == []
    assert not (portable_root / "etc/systemd").exists()


def test_inspect_reads_through_open_and_writes_nothing(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    image = write_archive(portable_root, "app_1.tar", "1")
    code, out, err = portable_cli("inspect", image)
    assert code == 0, err
    assert "app.service" in out
    assert (fmt.unpacks, fmt.opens) == (0, 1)
    assert not (portable_root / "var").exists()


def test_preview_writes_nothing(
    fmt: CountingTar, portable_registry: Registry, portable_root: Path
) -> None:
    image = write_archive(portable_root, "app_1.tar", "1")
    got = preview_attach(
        image, AttachOptions(), host=Host(portable_root), registry=portable_registry
    )
    assert got.operation == "attach"
    assert (fmt.unpacks, fmt.opens) == (0, 1)
    assert not (portable_root / "var").exists()
    (marker,) = [f for f in got.files if f.path.endswith("/20-portable.conf")]
    assert f"RootDirectory=/{UNPACKED}/app_1.tar-" in (marker.after or "")


def test_abandoned_staging_directories_are_swept(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    """A staging directory whose process is gone (killed mid-unpack) is removed by the next
    run's sweep; one still locked (its process at work) is not."""
    top = portable_root / UNPACKED
    top.mkdir(parents=True)
    dead = top / f"{STAGING_PREFIX}app_1.tar-0123456789ab.deadbeef"
    (dead / "usr").mkdir(parents=True)
    busy = top / f"{STAGING_PREFIX}app_9.tar-0123456789ab.0badf00d"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        image = write_archive(portable_root, "app_1.tar", "1")
        assert portable_cli("attach", image)[0] == 0
        assert not dead.exists() and busy.is_dir()
        assert portable_cli("detach", image)[0] == 0
    finally:
        os.close(fd)
    assert cache_dirs(portable_root) == [busy.name]
    assert portable_cli("attach", image)[0] == 0
    assert portable_cli("detach", image)[0] == 0
    assert cache_dirs(portable_root) == []


def test_a_tree_in_use_as_a_root_is_kept_until_unused(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    """A tree a process still has as its root (a service not restarted after a reattach to
    another image) is not removed under it; the next detach removes it once unused."""
    old = write_archive(portable_root, "app_1.tar", "1")
    assert portable_cli("attach", old)[0] == 0
    first = portable_root / root_directory(portable_root).lstrip("/")
    pid = os.fork()
    if pid == 0:  # the "service": chrooted into the tree
        try:
            os.chroot(first)
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while os.stat(f"/proc/{pid}/root").st_ino != first.stat().st_ino:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        new = write_archive(portable_root, "app_2.tar", "2")
        assert portable_cli("reattach", new)[0] == 0
        assert (first / "srv/version").read_text() == "1"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert portable_cli("detach", new)[0] == 0
    assert cache_dirs(portable_root) == []


def test_directories_named_by_a_drop_in_or_an_older_scheme_are_kept(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    """A cache directory an attached unit's RootDirectory= points at stays until that unit
    goes, whatever its name; so does one named as before identity keys (``<name>-<path
    hash>``) while its image is attached."""
    app = write_archive(portable_root, "app_1.tar", "1")
    other = write_archive(portable_root, "other_1.tar", "1", unit="other")
    assert portable_cli("attach", app)[0] == 0
    assert portable_cli("attach", other)[0] == 0
    current = root_directory(portable_root)
    renamed = f"/{UNPACKED}/renamed-0123456789ab-0123456789ab"
    os.rename(portable_root / current.lstrip("/"), portable_root / renamed.lstrip("/"))
    dropin = portable_root / DROPIN
    dropin.write_text(dropin.read_text().replace(current, renamed))
    legacy = current.rsplit("-", 1)[0]  # <name>-<path hash>
    (portable_root / legacy.lstrip("/")).mkdir()
    assert portable_cli("detach", other)[0] == 0  # sweeps what nothing uses
    assert cache_dirs(portable_root) == sorted(
        [legacy.rsplit("/", 1)[1], "renamed-0123456789ab-0123456789ab"]
    )
    assert portable_cli("detach", app)[0] == 0
    assert cache_dirs(portable_root) == []


def test_a_removed_tree_is_unpacked_again_by_a_rerun(
    fmt: CountingTar, portable_cli: CLI, portable_root: Path
) -> None:
    """Files all in place but the cache directory gone: attach puts the tree back."""
    image = write_archive(portable_root, "app_1.tar", "1")
    assert portable_cli("attach", image)[0] == 0
    tree = portable_root / root_directory(portable_root).lstrip("/")
    shutil.rmtree(tree)
    code, _, err = portable_cli("attach", image)
    assert code == 0, err
    assert (tree / "srv/version").read_text() == "1"
    assert fmt.unpacks == 2
    assert portable_cli("detach", image)[0] == 0
    assert cache_dirs(portable_root) == []
