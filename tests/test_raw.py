"""Raw images (squashfs, bare erofs/ext4, GPT) on this host: detection, reading, attach files,
and bad images, which must fail with one line and leave no loop device or mount behind.

Needs root and loop devices (skipped otherwise); nothing outside temporary directories and
the kernel's loop devices is touched, and every test checks that the loop devices and mounts
are as they were.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.runners import fork_run

from portable.errors import BadImage, PortableError, UnknownImageFormat
from portable.images.inspect import inspect_image_with_extensions, read_metadata
from portable.images.resolve import resolve_image
from portable.plugin.registry import make_registry
from portable.systemd.host import Host
from portable.testing.images import (
    GptPart,
    make_directory_image,
    make_erofs_image,
    make_ext4_image,
    make_gpt_image,
    make_gpt_image_with_repart,
    make_squashfs_image,
    mark_systemd_version,
    service_unit,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
    reason="needs root and loop devices",
)

UNIT = service_unit("/usr/bin/sleep infinity")
OS_RELEASE = 'ID=debian\nVERSION_ID=12\nPRETTY_NAME="Raw Test OS"\n'


# --- leftovers -----------------------------------------------------------------------------


def loop_devices() -> set[tuple[str, str]]:
    """Attached loop devices and what backs them."""
    found = set()
    for d in Path("/sys/block").glob("loop*"):
        backing = d / "loop/backing_file"
        if backing.exists():
            found.add((d.name, backing.read_text().strip()))
    return found


def mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path: Path) -> Iterator[None]:
    """Every test: the same loop devices (backed by our files) and mounts after as before."""
    before = mounts()
    yield
    mine = {(n, b) for n, b in loop_devices() if b.startswith(str(tmp_path))}
    assert not mine, f"loop devices left behind: {mine}"
    assert mounts() == before, "mounts changed"
    leftover = Path("/run/portable-services/mnt")
    assert not leftover.exists() or not any(leftover.iterdir())


# --- images --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tree")
    return make_directory_image(
        d / "foo",
        os_release=OS_RELEASE + 'PORTABLE_PRETTY_NAME="Foo"\n',
        units={"foo.service": UNIT, "foo-bar.socket": "[Socket]\nListenStream=/run/foo-bar.sock\n"},
        busybox=False,
    )


def build(kind: str, tree: Path, dest: Path) -> Path:
    """An image of ``tree`` of the given kind at ``dest``."""
    scratch = dest.parent / f".{dest.name}.part"
    if kind == "squashfs":
        return make_squashfs_image(dest, tree)
    if kind == "erofs":
        return make_erofs_image(dest, tree)
    if kind == "ext4":
        return make_ext4_image(dest, tree)
    if kind == "gpt":
        make_squashfs_image(scratch, tree)
        return make_gpt_image(
            dest, [GptPart(type="esp", size=1 << 20), GptPart(type="root-x86-64", content=scratch)]
        )
    if kind == "gpt-usr":
        make_erofs_image(scratch, tree / "usr")
        return make_gpt_image(dest, [GptPart(type="usr-x86-64", content=scratch)])
    if kind == "gpt-root-usr":
        # The root holds /etc only (its os-release links into /usr), /usr its own partition.
        make_erofs_image(scratch, tree / "usr")
        root_only = dest.parent / f".{dest.name}.root"
        make_directory_image(root_only, os_release=None, busybox=False)
        os.symlink("../usr/lib/os-release", root_only / "etc/os-release")
        root_fs = dest.parent / f".{dest.name}.rootfs"
        make_squashfs_image(root_fs, root_only)
        return make_gpt_image(
            dest,
            [
                GptPart(type="root-x86-64", content=root_fs),
                GptPart(type="usr-x86-64", content=scratch),
            ],
        )
    if kind == "gpt-repart":
        return make_gpt_image_with_repart(dest, tree, fs="ext4")
    raise AssertionError(kind)


KINDS = {
    "squashfs": "squashfs",
    "erofs": "erofs",
    "ext4": "ext4",
    "gpt": "gpt",
    "gpt-usr": "gpt",
    "gpt-root-usr": "gpt",
    "gpt-repart": "gpt",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_inspect_each_format(tmp_path, tree, kind):
    img = build(kind, tree, tmp_path / "foo_1.raw")
    reg = make_registry(load_entrypoints=False)
    found = inspect_image_with_extensions(str(img), (), registry=reg)
    assert found.image.format.name == KINDS[kind]
    assert found.image.format.image_type == "raw"
    assert found.image.format.root_setting == "RootImage"
    assert found.image.name == "foo_1"
    assert [u.name for u in found.units] == ["foo-bar.socket", "foo.service"]
    assert found.metadata.os_release_fields["PRETTY_NAME"] == "Raw Test OS"
    assert found.units[1].data == UNIT.encode()


def test_squashfs_found_by_content_whatever_its_name(tmp_path, tree):
    # systemd rejects a squashfs file not named *.raw ("Wrong medium type", #10095).
    img = make_squashfs_image(tmp_path / "foo_1.squashfs", tree)
    found = inspect_image_with_extensions(str(img), (), registry=make_registry())
    assert found.image.format.name == "squashfs"
    assert found.image.name == "foo_1.squashfs"


def test_found_by_name_as_name_raw(tmp_path, tree):
    d = tmp_path / "var/lib/portables"
    d.mkdir(parents=True)
    make_squashfs_image(d / "foo_1.raw", tree)
    host = Host(tmp_path)
    reg = make_registry(root=tmp_path)
    image = resolve_image("foo_1", host=host, registry=reg)
    assert (image.path, image.name, image.format.name) == (
        "/var/lib/portables/foo_1.raw",
        "foo_1",
        "squashfs",
    )
    assert [u.name for u in read_metadata(image, ["foo"]).units] == [
        "foo-bar.socket",
        "foo.service",
    ]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``portable ARGS`` on the forking runner."""
    return fork_run(list(args), timeout=timeout)


def test_list_shows_raw_images_without_mounting(tmp_path, tree):
    d = tmp_path / "var/lib/portables"
    d.mkdir(parents=True)
    make_squashfs_image(d / "foo_1.raw", tree)
    build("gpt", tree, d / "bar_2.raw")
    r = run_cli("--root", str(tmp_path), "list", "--no-legend")
    assert r.returncode == 0, r
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("bar_2", "raw", "no"),
        ("foo_1", "raw", "no"),
    ]


@pytest.mark.parametrize("systemd", [252, 257])
def test_attach_raw_writes_rootimage_and_copies_units(tmp_path, tree, systemd):
    """RootImage=, units always copied (no link into an image file), empty change source."""
    mark_systemd_version(tmp_path, systemd)
    (tmp_path / "srv").mkdir()
    make_squashfs_image(tmp_path / "srv/foo_1.raw", tree)
    r = run_cli("--root", str(tmp_path), "attach", "--copy=symlink", "--runtime", "/srv/foo_1.raw")
    assert r.returncode == 0, r.stderr
    where = tmp_path / "run/systemd/system.attached"
    dropin = (where / "foo.service.d/20-portable.conf").read_text()
    head = (
        "# Drop-in created for image '/srv/foo_1.raw', do not edit.\n\n[Service]\n"
        "RootImage=/srv/foo_1.raw\nEnvironment=PORTABLE=foo_1.raw\n"
    )
    assert dropin == (
        f"{head}BindReadOnlyPaths=/usr/lib/os-release:/run/host/os-release\n"
        "LogExtraFields=PORTABLE=foo_1.raw\n"
        if systemd == 252
        else f"{head}LogExtraFields=PORTABLE=foo_1.raw\n"
        "LogExtraFields=PORTABLE_NAME_AND_VERSION=debian_12\n"
    )
    unit = where / "foo.service"
    assert not unit.is_symlink() and unit.read_text() == UNIT
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert "Copied /run/systemd/system.attached/foo.service.\n" in r.stderr
    assert os.readlink(tmp_path / "run/portables/foo_1.raw") == "/srv/foo_1.raw"
    r = run_cli("--root", str(tmp_path), "detach", "--runtime", "/srv/foo_1.raw")
    assert r.returncode == 0, r.stderr
    assert not where.exists()


# --- bad images ----------------------------------------------------------------------------


def _corrupt_middle(p: Path) -> None:
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = os.urandom(min(4096, len(data) - mid))
    p.write_bytes(bytes(data))


BAD = {
    "garbage": (lambda p, t: p.write_bytes(os.urandom(1 << 20)), "not a recognised image"),
    "empty": (lambda p, t: p.write_bytes(b""), "is an empty file, not a recognised image"),
    "zeros": (
        lambda p, t: p.write_bytes(bytes(1 << 20)),
        "not a recognised image (only zero bytes at its start",
    ),
    "xz": (
        lambda p, t: p.write_bytes(b"\xfd7zXZ\x00" + os.urandom(100)),
        "(xz-compressed data: decompress it first)",
    ),
    "truncated-squashfs": (
        lambda p, t: _truncate(make_squashfs_image(p, t), 0.5),
        "is truncated: its squashfs file system needs",
    ),
    "squashfs-header-only": (
        lambda p, t: _truncate(make_squashfs_image(p, t), 0.0),
        "is truncated: its squashfs file system needs",
    ),
    "truncated-erofs": (
        lambda p, t: _truncate(make_erofs_image(p, t), 0.4),
        "is truncated: its erofs file system needs",
    ),
    "truncated-ext4": (
        lambda p, t: _truncate(make_ext4_image(p, t), 0.5),
        "is truncated: its ext4 file system needs",
    ),
    "gpt-without-root": (
        lambda p, t: make_gpt_image(
            p, [GptPart(type="esp", size=1 << 20), GptPart(type="swap", size=1 << 20)]
        ),
        "No suitable root partition found in image",
    ),
    "gpt-empty-table": (
        lambda p, t: make_gpt_image(p, []),
        "no root or /usr partition for x86-64 (partitions: none)",
    ),
    "gpt-two-generic": (
        lambda p, t: make_gpt_image(
            p,
            [
                GptPart(type="linux-generic", content=make_squashfs_image(p.with_suffix(".a"), t)),
                GptPart(type="linux-generic", content=p.with_suffix(".a")),
            ],
        ),
        "Multiple suitable root partitions found in image",
    ),
    "gpt-root-not-a-filesystem": (
        lambda p, t: make_gpt_image(p, [GptPart(type="root-x86-64", size=1 << 20)]),
        "partition 1 (root-x86-64) holds no file system that can be read",
    ),
    "gpt-truncated": (
        lambda p, t: _truncate(
            make_gpt_image(
                p,
                [GptPart(type="root-x86-64", content=make_squashfs_image(p.with_suffix(".a"), t))],
            ),
            0.5,
        ),
        "is truncated: partition 1 (root-x86-64) ends at byte",
    ),
    "gpt-corrupt-entries": (
        lambda p, t: _flip(make_gpt_image(p, [GptPart(type="root-x86-64", size=1 << 20)]), 1024),
        "corrupt GPT partition table",
    ),
    "squashfs-no-os-release": (
        lambda p, t: make_squashfs_image(
            p, make_directory_image(p.with_suffix(".d"), os_release=None, busybox=False)
        ),
        "lacks os-release data, refusing.",
    ),
    "fifo": (lambda p, t: os.mkfifo(p), "is a FIFO, not a recognised image"),
    "chardev": (
        lambda p, t: os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3)),
        "is a character device, not a recognised image",
    ),
    "socket": (lambda p, t: _socket(p), "is a socket, not a recognised image"),
}


def _truncate(p: Path, keep: float) -> None:
    """Cut ``p`` to ``keep`` of what its file system (or, for a disk image, the file) needs."""
    from portable.plugins.image_formats.probe import filesystem_at, filesystem_size

    size = p.stat().st_size
    with open(p, "r+b") as f:
        fstype = filesystem_at(f.fileno())
        needed = filesystem_size(f.fileno(), fstype) if fstype else None
        size = needed or size
        f.truncate(int(size * keep) if keep else 96)


def _flip(p: Path, offset: int) -> None:
    with open(p, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def _socket(p: Path) -> None:
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()


@pytest.mark.parametrize("verb", ["inspect", "attach"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_image_one_line_nothing_left(tmp_path, tree, case, verb):
    make, message = BAD[case]
    (tmp_path / "srv").mkdir()
    img = tmp_path / "srv/foo_1.raw"
    make(img, tree)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    r = run_cli(
        "--root",
        str(tmp_path),
        verb,
        "--runtime" if verb == "attach" else "-q",
        "/srv/foo_1.raw",
        timeout=30,
    )
    assert r.returncode == 1, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("portable: error: "), r.stderr
    assert message in lines[0], lines[0]
    # the image as the host below --root sees it, never the path of this machine's directory
    assert str(tmp_path) not in lines[0] and "'/srv/foo_1.raw'" in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before, "the root changed"


def test_corrupt_squashfs_data_one_line(tmp_path, tree):
    """Damage inside the file system (not its size) surfaces as a read or mount error."""
    big = make_directory_image(
        tmp_path / "big",
        units={f"foo-{i}.service": UNIT + "#" + os.urandom(2000).hex() for i in range(40)},
        busybox=False,
    )
    img = make_squashfs_image(tmp_path / "foo_1.raw", big)
    _corrupt_middle(img)
    r = run_cli("inspect", str(img), "-")
    # mksquashfs compresses, so random bytes in the middle break a block: EIO or a bad mount.
    if r.returncode == 0:
        pytest.skip("the damage hit nothing that was read")
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("portable: error: Image '"), r.stderr


# --- images on odd file systems ------------------------------------------------------------


def _mount_tmpfs(where: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "fs"
    where.mkdir()
    _mount_tmpfs(where, "size=8m,mode=0755")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_image_on_read_only_file_system(tmp_path, tree, tmpfs):
    make_squashfs_image(tmpfs / "foo_1.raw", tree)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    r = run_cli("inspect", str(tmpfs / "foo_1.raw"))
    assert r.returncode == 0, r.stderr
    assert "\tfoo.service\n" in r.stdout


def test_image_on_full_file_system(tmp_path, tree, tmpfs):
    make_squashfs_image(tmpfs / "foo_1.raw", tree)
    fd = os.open(tmpfs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, bytes(1 << 20))
    finally:
        os.close(fd)
    r = run_cli("inspect", str(tmpfs / "foo_1.raw"))
    assert r.returncode == 0, r.stderr
    assert "\tfoo.service\n" in r.stdout


# --- interruptions -------------------------------------------------------------------------


def test_keyboard_interrupt_while_mounted_releases_everything(tmp_path, tree, monkeypatch):
    import portable.images.inspect as inspect_mod

    img = make_squashfs_image(tmp_path / "foo_1.raw", tree)

    def interrupted(*args, **kwargs):
        assert any(n for n, b in loop_devices() if b == str(img)), "not attached?"
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_mod, "discover_units", interrupted)
    with pytest.raises(KeyboardInterrupt):
        inspect_image_with_extensions(str(img), (), registry=make_registry())


def test_errors_inside_classic_fallback_release_everything(tmp_path, tree, monkeypatch):
    """Without the new mount API: a private mount point, unmounted and removed on errors."""
    import portable.images.inspect as inspect_mod
    import portable.images.loopdev as loopdev

    def unavailable(*args, **kwargs):
        raise loopdev._NewApiUnavailable("test")

    monkeypatch.setattr(loopdev, "_detached_mount", unavailable)
    img = make_squashfs_image(tmp_path / "foo_1.raw", tree)
    found = inspect_image_with_extensions(str(img), (), registry=make_registry())
    assert [u.name for u in found.units] == ["foo-bar.socket", "foo.service"]
    gpt = build("gpt-usr", tree, tmp_path / "bar_1.raw")
    found = inspect_image_with_extensions(str(gpt), ["foo"], registry=make_registry())
    assert [u.name for u in found.units] == ["foo-bar.socket", "foo.service"]

    seen: list[str] = []

    def boom(*args, **kwargs):
        seen.extend(m for m in mounts() if "/run/portable-services/mnt/" in m)
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_mod, "discover_units", boom)
    with pytest.raises(KeyboardInterrupt):
        inspect_image_with_extensions(str(img), (), registry=make_registry())
    assert seen, "the fallback was not used"


def test_killed_process_leaves_no_loop_device(tmp_path, tree):
    """SIGKILL while the image is mounted: autoclear and a detached mount clean up."""
    img = make_squashfs_image(tmp_path / "foo_1.raw", tree)
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from portable.images.loopdev import mount_image\n"
        f"with mount_image(Path({str(img)!r}), [('', 'squashfs', 0, 0)]) as root:\n"
        "    print((root / 'usr/lib/os-release').read_text().splitlines()[0], flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ID=debian")
        assert any(b == str(img) for _, b in loop_devices())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    deadline = time.monotonic() + 10
    while any(b == str(img) for _, b in loop_devices()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(b == str(img) for _, b in loop_devices())


def test_fifo_never_hangs_detection(tmp_path):
    """A FIFO named like an image: detection must not open it for reading (no writer)."""
    from portable.plugins.image_formats.probe import identify

    fifo = tmp_path / "foo.raw"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    assert identify(fifo) is None
    with pytest.raises(UnknownImageFormat):
        resolve_image(str(fifo), host=Host(), registry=make_registry())
    assert time.monotonic() - t0 < 5


def test_unknown_name_raw_file_is_reported_not_missing(tmp_path):
    d = tmp_path / "var/lib/portables"
    d.mkdir(parents=True)
    (d / "foo_1.raw").write_bytes(b"\x1f\x8b" + os.urandom(64))
    with pytest.raises(UnknownImageFormat, match="gzip-compressed data"):
        resolve_image("foo_1", host=Host(tmp_path), registry=make_registry(root=tmp_path))


def test_loop_errors_are_one_line(tmp_path, tree, monkeypatch):
    import portable.images.loopdev as loopdev

    monkeypatch.setattr(
        loopdev.os, "open", _failing_open(os.open, "/dev/loop-control", PermissionError(13, "x"))
    )
    img = make_squashfs_image(tmp_path / "foo_1.raw", tree)
    with pytest.raises(PortableError, match=r"loop device.*are you root"):
        inspect_image_with_extensions(str(img), (), registry=make_registry())


def _failing_open(real, path, exc):
    def fake(p, *args, **kwargs):
        if str(p) == path:
            raise exc
        return real(p, *args, **kwargs)

    return fake


def test_mount_failure_says_what_the_kernel_said(tmp_path):
    img = tmp_path / "foo_1.raw"
    img.write_bytes(b"hsqs" + bytes(200))  # a squashfs magic and nothing else
    with pytest.raises(BadImage, match=r"cannot mount its squashfs file system: .*\(.+\)"):
        inspect_image_with_extensions(str(img), (), registry=make_registry())


# --- GPT partition choice (no mounting) ----------------------------------------------------


def _part(n: int, kind: str, label: str = "", flags: int = 0):
    from portable.plugins.image_formats.probe import GptPartition
    from portable.testing.images import GPT_TYPES

    return GptPartition(
        number=n,
        type_uuid=GPT_TYPES.get(kind, kind),
        uuid="",
        label=label,
        flags=flags,
        offset=n << 20,
        size=1 << 20,
    )


def _choose(*parts, arch: str = "x86-64"):
    from portable.plugins.image_formats.probe import GptTable, choose_root

    return choose_root(GptTable(sector_size=512, partitions=tuple(parts)), image="i", arch=arch)


def test_gpt_newest_root_label_wins():
    c = _choose(_part(1, "root-x86-64", "os_1.9"), _part(2, "root-x86-64", "os_1.10"))
    assert c.root is not None and c.root.number == 2


def test_gpt_no_auto_partitions_are_ignored():
    no_auto = 1 << 63
    c = _choose(_part(1, "root-x86-64", flags=no_auto), _part(2, "linux-generic"))
    assert c.root is not None and c.root.number == 2


def test_gpt_secondary_architecture_only_without_native():
    assert _choose(_part(1, "root-x86")).root.number == 1
    c = _choose(_part(1, "root-x86"), _part(2, "root-x86-64"))
    assert c.root.number == 2
    with pytest.raises(BadImage, match="no root or /usr partition for x86-64"):
        _choose(_part(1, "root-arm64"))


def test_gpt_verity_partitions_are_noted():
    c = _choose(_part(1, "root-x86-64"), _part(2, "root-x86-64-verity"))
    assert [p.type_name for p in c.verity] == ["root-x86-64-verity"]


def test_gpt_generic_partition_only_when_alone():
    assert _choose(_part(1, "linux-generic")).root.number == 1
    with pytest.raises(BadImage, match="Multiple suitable root partitions"):
        _choose(_part(1, "linux-generic"), _part(2, "linux-generic"))


def test_inspect_json_shows_partitions_and_verity_note(tmp_path, tree):
    fs = make_squashfs_image(tmp_path / "fs", tree)
    img = make_gpt_image(
        tmp_path / "foo_1.raw",
        [GptPart(type="root-x86-64", content=fs), GptPart(type="root-x86-64-verity")],
    )
    r = run_cli("inspect", "--json", str(img))
    assert r.returncode == 0, r.stderr
    import json

    doc = json.loads(r.stdout)
    assert doc["format"] == "gpt" and doc["type"] == "raw"
    assert doc["details"]["root"] == 1 and doc["details"]["verity"] == ["root-x86-64-verity"]
    assert [p["type"] for p in doc["details"]["partitions"]] == [
        "root-x86-64",
        "root-x86-64-verity",
    ]
    r = run_cli("inspect", str(img))
    assert r.returncode == 0
    assert "(Image has root-x86-64-verity partition(s): not used" in r.stderr


def test_list_never_mounts(tmp_path, tree, monkeypatch):
    """list reads header bytes only: no loop device, no mount."""
    import portable.images.loopdev as loopdev
    from portable.images.listing import list_images

    def refuse(*args, **kwargs):
        raise AssertionError("list set up a loop device or a mount")

    monkeypatch.setattr(loopdev, "loop_device", refuse)
    monkeypatch.setattr(loopdev, "mount_read_only", refuse)
    d = tmp_path / "var/lib/portables"
    d.mkdir(parents=True)
    make_squashfs_image(d / "foo_1.raw", tree)
    build("gpt", tree, d / "bar_2.raw")
    build("ext4", tree, d / "baz_3.raw")
    rows = list_images(host=Host(tmp_path), registry=make_registry(root=tmp_path))
    assert [(r.name, r.type, r.format) for r in rows] == [
        ("bar_2", "raw", "gpt"),
        ("baz_3", "raw", "ext4"),
        ("foo_1", "raw", "squashfs"),
    ]
