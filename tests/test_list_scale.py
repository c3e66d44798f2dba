"""list opens no image it does not have to (issue 15): ``NAME.raw`` is a raw image by its name.

systemd's image discovery takes a regular file named ``*.raw`` as a raw image without reading
it (portabled opens it ``O_PATH`` only) and opens a directory once (its immutable flag). list
does the same; which raw format a file holds is read from its header only for ``list --json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from helpers.roots import registry_for as registry

from portable.cli import App
from portable.cli.fast import list_output, run_fast
from portable.images.listing import list_images
from portable.plugin.hookspecs import hookimpl
from portable.plugin.types import ImageFormat
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

needs_mksquashfs = pytest.mark.skipif(not shutil.which("mksquashfs"), reason="needs mksquashfs")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "var/lib/portables").mkdir(parents=True)
    return r


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path this process opens for reading with os.open (the image probes and the
    directory flag check use it) or open() during the test. ``O_PATH`` opens (the walk below
    ``--root``; portabled's own look at a .raw) reach no content and are left out."""
    paths: list[str] = []
    real_open = os.open
    real_builtin_open = open

    def spy(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not flags & os.O_PATH:
            paths.append(os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    def spy_builtin(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(file, str | bytes | os.PathLike):
            paths.append(os.fsdecode(file))
        return real_builtin_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    monkeypatch.setattr("builtins.open", spy_builtin)
    return paths


def rows(root: Path):  # type: ignore[no-untyped-def]
    return list_images(host=Host(root), registry=registry(root))


@needs_mksquashfs
def test_200_images_no_raw_file_opened(root: Path, tmp_path: Path, opened: list[str]) -> None:
    """100 squashfs files named .raw and 100 directories: the raw files are never opened, each
    directory once, as systemd-portabled does (it opens a .raw O_PATH only)."""
    tree = make_directory_image(tmp_path / "tree", units={"sq.service": service_unit()})
    raw = make_squashfs_image(tmp_path / "sq.raw", tree)
    lib = root / "var/lib/portables"
    for i in range(100):
        shutil.copy(raw, lib / f"r{i:03d}.raw")
        (lib / f"d{i:03d}").mkdir()
    opened.clear()
    got = rows(root)
    assert [r.name for r in got] == [f"d{i:03d}" for i in range(100)] + [
        f"r{i:03d}" for i in range(100)
    ]
    assert {r.type for r in got[:100]} == {"directory"}
    assert {r.type for r in got[100:]} == {"raw"}
    assert not [p for p in opened if p.endswith(".raw")]
    assert sum(1 for p in opened if p.rsplit("/", 1)[-1].startswith("d")) == 100
    # The table (what `portable list` prints) needs nothing more.
    opened.clear()
    app = App(root=root, no_plugins=True)
    text = list_output(app)
    assert "r099 raw" in text and "200 images listed." in text
    assert not [p for p in opened if p.endswith(".raw")]
    # --json names the format: that, and only that, reads each raw file's header, once.
    opened.clear()
    doc = json.loads(list_output(App(root=root, no_plugins=True), as_json=True))
    assert {d["format"] for d in doc if d["type"] == "raw"} == {"squashfs"}
    assert sorted(p for p in opened if p.endswith(".raw")) == sorted(
        str(lib / f"r{i:03d}.raw") for i in range(100)
    )


def test_a_raw_name_is_a_raw_image_whatever_it_holds(root: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """As systemd: a regular file named NAME.raw is listed as a raw image, even if no format can
    read it (attach or inspect then say what it is); its format is unknown (null in --json)."""
    lib = root / "var/lib/portables"
    (lib / "junk.raw").write_text("not an image\n")
    (lib / "empty.raw").touch()
    (lib / "notes.txt").write_text("not an image\n")  # no suffix of ours: not an image
    (lib / "plain").write_text("not an image\n")  # a regular file needs the suffix
    (lib / "dir.raw").mkdir()  # a directory named .raw is a directory image
    got = {r.name: (r.type, r.format) for r in rows(root)}
    assert got == {
        "dir.raw": ("directory", "directory"),
        "empty": ("raw", None),
        "junk": ("raw", None),
    }
    assert run_fast(["--root", str(root), "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {d["name"]: d["format"] for d in doc} == {
        "dir.raw": "directory",
        "empty": None,
        "junk": None,
    }


def test_a_raw_file_found_first_wins_its_name(root: Path) -> None:
    """The first of a name in the search path wins, without looking inside either file."""
    (root / "etc/portables").mkdir(parents=True)
    (root / "etc/portables/foo.raw").write_text("x")
    (root / "var/lib/portables/foo.raw").write_text("y")
    (got,) = rows(root)
    assert got.path == "/etc/portables/foo.raw"


class TarLike:
    """A plugin format whose images are files unpacked into a directory: its detect()
    decides, since such an image's type is not told by its name (systemd does not list these)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def detect(self, path: Path) -> bool:
        self.asked.append(path.name)
        return path.read_bytes().startswith(b"TAR")

    @hookimpl
    def portable_image_formats(self) -> Iterable[ImageFormat]:
        return [
            ImageFormat(
                name="tarlike",
                description="test",
                image_type="directory",
                detect=self.detect,
                open=lambda p: None,  # type: ignore[arg-type,return-value]
                suffixes=(".tar", ".tar.gz"),
            )
        ]


def test_a_plugin_suffix_of_non_raw_images_is_decided_by_content(root: Path) -> None:
    lib = root / "var/lib/portables"
    (lib / "good.tar.gz").write_bytes(b"TAR...")
    (lib / "bad.tar").write_bytes(b"nope")
    (lib / "x.raw").write_bytes(b"nope")
    plugin = TarLike()
    reg = registry(root)
    reg.register(plugin, "tarlike")
    got = {r.name: (r.type, r.format) for r in list_images(host=Host(root), registry=reg)}
    assert got == {"good": ("directory", "tarlike"), "x": ("raw", None)}
    assert sorted(plugin.asked) == ["bad.tar", "good.tar.gz"]  # never asked about x.raw


@pytest.fixture
def lib_mount(root: Path) -> Iterator[Path]:
    """/var/lib/portables of ``root`` on a tmpfs of its own, unmounted (with anything below)
    afterwards."""
    lib = root / "var/lib/portables"
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(lib)], check=True
    )
    try:
        yield lib
    finally:
        subprocess.run(["umount", "-R", "-l", str(lib)], check=False)


def test_read_only_is_the_mounts_flag(root: Path, lib_mount: Path) -> None:
    """Two images on one file system, one of them bind-mounted read-only: RO is told per
    mount (what systemd's faccessat(W_OK) EROFS test sees), not per file system."""
    (lib_mount / "rw_dir").mkdir()
    (lib_mount / "ro_dir").mkdir()
    (lib_mount / "rw.raw").write_text("x")
    ro = str(lib_mount / "ro_dir")
    subprocess.run(["mount", "--bind", ro, ro], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", ro], check=True)
    assert os.stat(ro).st_dev == os.stat(lib_mount).st_dev
    got = {r.name: r.read_only for r in rows(root)}
    assert got == {"ro_dir": True, "rw": False, "rw_dir": False}
    subprocess.run(["mount", "-o", "remount,ro", str(lib_mount)], check=True)
    assert {r.name: r.read_only for r in rows(root)} == {"ro_dir": True, "rw": True, "rw_dir": True}
