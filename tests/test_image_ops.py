"""read-only, remove and set-limit on --root trees (portable.images.ops and its verbs).

The messages are portablectl's (tests/test_box_image_ops.py compares them in a real systemd).
The immutable flag needs a file system that has it (ext4, btrfs, tmpfs since Linux 6.0) and
CAP_LINUX_IMMUTABLE; the tests that set it are skipped, with the reason, where it is missing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.cli import main
from portable.images.ops import (
    INFINITY,
    ImageOpError,
    parse_boolean,
    parse_size,
    remove_images,
    set_limit,
    set_read_only,
)
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, service_unit

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
IMMUTABLE = 0x10


def flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        return int.from_bytes(buf[:4], "little")
    finally:
        os.close(fd)


def set_immutable(path: Path, on: bool) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        old = int.from_bytes(buf[:4], "little")
        new = old | IMMUTABLE if on else old & ~IMMUTABLE
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, new.to_bytes(8, "little"))
    finally:
        os.close(fd)


def immutable_unsupported(where: Path) -> str | None:
    """Why the immutable flag can't be set below ``where``, or None."""
    probe = where / "immutable-probe"
    probe.mkdir()
    try:
        set_immutable(probe, True)
        set_immutable(probe, False)
    except OSError as exc:
        return f"the immutable flag can't be set on {where}: {exc.strerror}"
    finally:
        probe.rmdir()
    return None


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A root with /var/lib/portables holding a directory image foo_1 (with a unit) and a raw
    file bar.raw; whatever a test leaves immutable is made mutable again afterwards."""
    r = tmp_path / "root"
    pool = r / "var/lib/portables"
    make_directory_image(pool / "foo_1", units={"foo.service": service_unit()}, busybox=False)
    (pool / "bar.raw").write_bytes(b"\0" * 4096)
    (pool / "bar.raw").chmod(0o644)
    yield r
    for d, dirs, _files in os.walk(tmp_path):
        for name in [".", *dirs]:
            p = Path(d) / name
            if p.is_symlink():
                continue
            try:
                if flags(p) & IMMUTABLE:
                    set_immutable(p, False)
            except OSError:
                pass


def portable(root: Path, *args: str) -> list[str]:
    return ["--root", str(root), *args]


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("512", 512),
        ("1K", 1024),
        ("1B", 1),
        ("5 K", 5 * 1024),
        (" 2M", 2 * 1024**2),
        ("1.5G", 3 * 1024**3 // 2),
        ("10.M", 10 * 1024**2),
        ("1G 512M", 1024**3 + 512 * 1024**2),
        ("1T", 1024**4),
        ("16E", None),  # 2^64: out of range
        ("18446744073709551615", 2**64 - 1),
        ("18446744073709551616", None),
        ("", None),
        ("-1", None),
        ("12X", None),
        ("1M 1G", None),  # a sum goes from larger to smaller units
        ("1KB", None),  # B after K: "1K" then "B" with no number
        ("K", None),
    ],
)
def test_parse_size_is_systemds(text: str, value: int | None) -> None:
    if value is None:
        with pytest.raises(ValueError):
            parse_size(text)
    else:
        assert parse_size(text) == value


def test_parse_boolean() -> None:
    for word in ("1", "yes", "Y", "true", "T", "ON"):
        assert parse_boolean(word) is True
    for word in ("0", "no", "N", "false", "f", "Off"):
        assert parse_boolean(word) is False
    with pytest.raises(ValueError):
        parse_boolean("maybe")


# --- read-only ------------------------------------------------------------------------------


def test_read_only_directory_sets_the_immutable_flag(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = root / "var/lib/portables/foo_1"
    reason = immutable_unsupported(img.parent)
    if reason:
        pytest.skip(reason)
    assert run(portable(root, "read-only", "foo_1"), capsys) == (0, "", "")
    assert flags(img) & IMMUTABLE
    listed = run(portable(root, "list", "--no-legend"), capsys)[1]
    assert any(line.split()[:3] == ["foo_1", "directory", "yes"] for line in listed.splitlines())
    assert run(portable(root, "read-only", "/var/lib/portables/foo_1", "no"), capsys) == (0, "", "")
    assert not flags(img) & IMMUTABLE
    # already writable: nothing to do, no error
    set_read_only("foo_1", False, host=Host(root))
    assert not flags(img) & IMMUTABLE


def test_read_only_through_a_link_marks_the_target(root: Path) -> None:
    img = root / "var/lib/portables/foo_1"
    reason = immutable_unsupported(img.parent)
    if reason:
        pytest.skip(reason)
    (root / "etc/portables").mkdir(parents=True)
    (root / "etc/portables/linked").symlink_to("/var/lib/portables/foo_1")
    set_read_only("linked", True, host=Host(root))
    assert flags(img) & IMMUTABLE


@pytest.mark.parametrize(
    ("before", "ro", "rw"), [(0o644, 0o444, 0o644), (0o600, 0o400, 0o600), (0o664, 0o444, 0o644)]
)
def test_read_only_raw_file_drops_write_bits(
    root: Path, capsys: pytest.CaptureFixture[str], before: int, ro: int, rw: int
) -> None:
    raw = root / "var/lib/portables/bar.raw"
    raw.chmod(before)
    assert run(portable(root, "read-only", "bar"), capsys) == (0, "", "")
    assert raw.stat().st_mode & 0o7777 == ro
    # systemd gives back the owner's write bit only: (mode & 0444) | 0200
    assert run(portable(root, "read-only", "bar", "false"), capsys) == (0, "", "")
    assert raw.stat().st_mode & 0o7777 == rw


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "Could not mark image read-only: No image 'nope' found."),
        (["/srv/nope"], "Could not mark image read-only: No such file or directory"),
        (
            ["/var/lib/../lib/portables/bar.raw"],
            "Could not mark image read-only: Image path '/var/lib/../lib/portables/bar.raw' "
            "is not normalized.",
        ),
        (
            ["/etc/hostname"],
            "Could not mark image read-only: Type of image '/etc/hostname' not recognized; "
            "supported image types are directories/btrfs subvolumes, block devices, and raw "
            "disk image files with suffix '.raw'.",
        ),
        (["vendor"], "Could not mark image read-only: Read-only file system"),
        (["/"], "Could not mark image read-only: Read-only file system"),
        (["bar", "maybe"], "Failed to parse boolean argument: maybe"),
        (["bar", "yes", "no"], "Too many arguments."),
        ([], "Too few arguments."),
    ],
)
def test_read_only_errors_are_portablectls(
    root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/hostname").write_text("x\n")
    (root / "usr/lib/portables/vendor").mkdir(parents=True)
    raw = root / "var/lib/portables/bar.raw"
    assert run(portable(root, "read-only", *args), capsys) == (
        1,
        "",
        f"portable: error: {message}\n",
    )
    assert raw.stat().st_mode & 0o777 == 0o644


def test_read_only_relative_path_from_the_current_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(root / "var/lib")
    assert run(portable(root, "read-only", "portables/bar.raw"), capsys) == (0, "", "")
    assert (root / "var/lib/portables/bar.raw").stat().st_mode & 0o777 == 0o444


def test_read_only_busy_image_is_refused(root: Path) -> None:
    # nspawn (and portabled) hold .#NAME.lck while they use an image
    with (
        held_lock(root / "var/lib/portables/.#bar.raw.lck"),
        pytest.raises(ImageOpError, match=r"^Could not mark image read-only: Device or "),
    ):
        set_read_only("bar", True, host=Host(root))
    assert (root / "var/lib/portables/bar.raw").stat().st_mode & 0o777 == 0o644
    assert not (root / "var/lib/portables/.#bar.raw.lck").exists()


class held_lock:
    """An OFD write lock on ``path``, as systemd's make_lock_file() takes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", 1, 0, 0, 0, 0))

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


# --- remove ---------------------------------------------------------------------------------


def test_remove_directory_and_raw_with_their_settings(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = root / "var/lib/portables"
    for aux in ("foo_1.nspawn", "foo_1.roothash", "bar.nspawn", "bar.roothash", "bar.verity"):
        (pool / aux).write_text("x\n")
    (root / "etc/systemd/nspawn").mkdir(parents=True)
    (root / "etc/systemd/nspawn/foo_1.nspawn").write_text("[Exec]\n")
    (root / "etc/systemd/nspawn/other.nspawn").write_text("[Exec]\n")
    assert run(portable(root, "remove", "foo_1", "/var/lib/portables/bar.raw"), capsys) == (
        0,
        "",
        "",
    )
    # systemd removes NAME.nspawn and NAME.roothash, nothing else (bar.verity stays)
    assert sorted(os.listdir(pool)) == ["bar.verity"]
    assert os.listdir(root / "etc/systemd/nspawn") == ["other.nspawn"]


def test_remove_read_only_directory(root: Path) -> None:
    img = root / "var/lib/portables/foo_1"
    reason = immutable_unsupported(img.parent)
    if reason:
        pytest.skip(reason)
    set_read_only("foo_1", True, host=Host(root))
    set_read_only("bar", True, host=Host(root))
    remove_images(["foo_1", "bar"], host=Host(root))
    assert os.listdir(img.parent) == []


def test_remove_link_removes_the_link_only(root: Path) -> None:
    (root / "etc/portables").mkdir(parents=True)
    (root / "etc/portables/linked").symlink_to("/var/lib/portables/foo_1")
    (root / "etc/portables/raw.raw").symlink_to("/var/lib/portables/bar.raw")
    remove_images(["linked", "raw"], host=Host(root))
    assert os.listdir(root / "etc/portables") == []
    assert (root / "var/lib/portables/foo_1/usr/lib/os-release").exists()
    assert (root / "var/lib/portables/bar.raw").exists()


def attach(root: Path, image: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(portable(root, "attach", image), capsys)
    assert code == 0, err


def test_remove_attached_image_is_refused(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    attach(root, "/var/lib/portables/foo_1", capsys)
    # by name, the link attach made in /etc/portables is found first (as by portabled)
    for arg, found in (
        ("foo_1", "/etc/portables/foo_1"),
        ("/var/lib/portables/foo_1", "/var/lib/portables/foo_1"),
    ):
        assert run(portable(root, "remove", arg), capsys) == (
            1,
            "",
            f"portable: error: Could not remove image: Image '{found}' is not detached, "
            "refusing.\n",
        )
    assert (root / "var/lib/portables/foo_1/usr/lib/os-release").exists()
    code, _out, err = run(portable(root, "detach", "foo_1"), capsys)
    assert code == 0, err
    assert run(portable(root, "remove", "foo_1"), capsys) == (0, "", "")
    assert not (root / "var/lib/portables/foo_1").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bar", "nope"], "Could not remove image: No image 'nope' found."),
        (["bar", "/srv/nope"], "Could not remove image: No such file or directory"),
        (["bar", "foo_1", "vendor"], "Could not remove image: Read-only file system"),
        ([], "Too few arguments."),
    ],
)
def test_remove_nothing_when_one_is_refused(
    root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (root / "usr/lib/portables/vendor").mkdir(parents=True)
    before = sorted(os.listdir(root / "var/lib/portables"))
    assert run(portable(root, "remove", *args), capsys) == (1, "", f"portable: error: {message}\n")
    assert sorted(os.listdir(root / "var/lib/portables")) == before
    assert (root / "usr/lib/portables/vendor").is_dir()


def test_remove_nothing_when_one_is_attached(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attach(root, "/var/lib/portables/foo_1", capsys)
    with pytest.raises(ImageOpError, match="is not detached, refusing"):
        remove_images(["bar", "foo_1"], host=Host(root))
    assert (root / "var/lib/portables/bar.raw").exists()


def test_remove_nothing_when_one_is_busy(root: Path) -> None:
    with (
        held_lock(root / "var/lib/portables/.#foo_1.lck"),
        pytest.raises(ImageOpError, match=r"^Could not remove image: Device or resource busy$"),
    ):
        remove_images(["bar", "foo_1"], host=Host(root))
    assert sorted(os.listdir(root / "var/lib/portables")) == ["bar.raw", "foo_1"]


def test_remove_rolls_back_when_one_cannot_be_moved(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second image's directory refuses the rename: the first, already moved aside (and
    its read-only flag cleared), is put back as it was."""
    pool = root / "var/lib/portables"
    reason = immutable_unsupported(pool)
    if reason:
        pytest.skip(reason)
    sealed = root / "srv/sealed"
    make_directory_image(sealed / "baz_1", busybox=False)
    set_read_only("foo_1", True, host=Host(root))
    set_immutable(sealed, True)  # nothing in it can be renamed
    monkeypatch.setenv("SYSTEMD_NSPAWN_LOCK", "0")  # else its lock file can't be made there
    with pytest.raises(ImageOpError, match=r"^Could not remove image: Access denied$"):
        remove_images(["foo_1", "bar", "/srv/sealed/baz_1"], host=Host(root))
    assert sorted(os.listdir(pool)) == ["bar.raw", "foo_1"]
    assert flags(pool / "foo_1") & IMMUTABLE
    assert (sealed / "baz_1/usr/lib/os-release").exists()


def test_remove_refuses_an_image_with_a_mount_below(root: Path) -> None:
    # the root file system is a mount point below every image path "/": use a path whose
    # tree holds a mount point of this machine
    points = [p for p in ("/proc", "/sys", "/dev") if os.path.ismount(p)]
    if not points:
        pytest.skip("no mount point to test with")
    from portable.images.ops import _has_mounts, _mount_points

    assert _has_mounts(Path(points[0]).parent, _mount_points())
    assert not _has_mounts(root / "var/lib/portables/foo_1", _mount_points())


# --- set-limit ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["foo_1", "1G"], "Could not set limit: Operation not supported"),
        (["bar", "-"], "Could not set limit: Operation not supported"),
        (["bar", "infinity"], "Could not set limit: Operation not supported"),
        (["nope", "1G"], "Could not set limit: No image 'nope' found."),
        (["vendor", "1G"], "Could not set limit: Read-only file system"),
        (["foo_1", "9223372036854775808"], "Could not set limit: New limit out of range"),
        (["foo_1", "12X"], "Failed to parse size: 12X"),
        (["foo_1", "-5"], "Failed to parse size: -5"),
        (["1G"], "Too few arguments."),
        (["a", "b", "c"], "Too many arguments."),
    ],
)
def test_set_limit_messages_are_portablectls(
    root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (root / "usr/lib/portables/vendor").mkdir(parents=True)
    assert run(portable(root, "set-limit", *args), capsys) == (
        1,
        "",
        f"portable: error: {message}\n",
    )


def test_set_pool_limit_needs_btrfs(root: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ImageOpError, match=r"^Could not set limit: Quota is only supported on btrfs\.$"
    ):
        set_limit(None, 1024**3, host=Host(root))
    with pytest.raises(ImageOpError, match="Failed to adjust quota limit: No such file"):
        set_limit(None, INFINITY, host=Host(tmp_path / "empty"))


def test_errno_words() -> None:
    from portable.images.ops import _why

    assert _why(errno.EPERM) == "Access denied"  # as sd-bus and portablectl say it
    assert _why(errno.EROFS) == "Read-only file system"
