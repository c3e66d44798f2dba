"""list over an alternate root: discovery, names, types, columns, state from markers."""

from __future__ import annotations

import os

import pytest
from helpers import roots

from portable.cli.listing import format_bytes, render_table
from portable.images.listing import list_images
from portable.plugin.registry import make_registry
from portable.systemd.host import Host
from portable.systemd.names import format_marker
from portable.testing.images import make_directory_image, service_unit

root = roots.empty_root  # (a fixture)


def rows(root):
    return list_images(host=Host(root), registry=make_registry(root=root, load_entrypoints=False))


def image(path):
    return make_directory_image(path, units={"foo.service": service_unit()}, busybox=False)


def test_empty(root):
    assert rows(root) == []
    assert render_table([], legend=True, systemd=257) == "No images.\n"
    assert render_table([], legend=False, systemd=257) == ""


def test_discovery_first_of_a_name_wins(root):
    image(root / "var/lib/portables/foo_1.2")
    image(root / "usr/lib/portables/foo_1.2")
    image(root / "usr/lib/portables/bar")
    (root / "etc/portables").mkdir(parents=True)
    os.symlink("/srv/elsewhere", root / "etc/portables/dangling")  # not an image
    (root / "var/lib/portables/notes.txt").write_text("not an image")
    (root / "var/lib/portables/.hidden").mkdir()  # hidden entries are listed, as systemd does
    got = rows(root)
    assert [r.name for r in got] == [".hidden", "bar", "foo_1.2"]
    foo = next(r for r in got if r.name == "foo_1.2")
    assert foo.path == "/var/lib/portables/foo_1.2"
    assert foo.type == "directory" and not foo.read_only
    assert foo.mtime == 0 and foo.usage is None  # systemd reports neither for directories
    assert foo.crtime > 0
    assert foo.state == "detached"
    bar = next(r for r in got if r.name == "bar")
    assert bar.read_only  # vendor images under /usr are read-only


def test_symlinked_image_is_listed_under_link_name(root):
    image(root / "srv/foo_1.2")
    (root / "run/portables").mkdir(parents=True)
    os.symlink("/srv/foo_1.2", root / "run/portables/foo_1.2")  # inside the root
    got = rows(root)
    assert [(r.name, r.path) for r in got] == [("foo_1.2", "/run/portables/foo_1.2")]


@pytest.mark.parametrize("runtime", [False, True])
def test_state_from_marker(root, runtime):
    image(root / "srv/foo_1.2")
    portables = "run/portables" if runtime else "etc/portables"
    attached = "run/systemd/system.attached" if runtime else "etc/systemd/system.attached"
    (root / portables).mkdir(parents=True)
    os.symlink("/srv/foo_1.2", root / portables / "foo_1.2")
    (root / attached / "foo.service.d").mkdir(parents=True)
    (root / attached / "foo.service").write_text(service_unit())
    (root / attached / "foo.service.d/20-portable.conf").write_text(
        format_marker("/srv/foo_1.2") + "\n\n[Service]\nRootDirectory=/srv/foo_1.2\n"
    )
    (state,) = [r.state for r in rows(root)]
    assert state == ("attached-runtime" if runtime else "attached")


def test_table_layout(root):
    image(root / "var/lib/portables/foo_1.2")
    text = render_table(rows(root), legend=True, systemd=257)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "RO", "CRTIME", "MTIME", "USAGE", "STATE"]
    assert lines[1].startswith("foo_1.2 directory no ")
    assert lines[1].endswith(" -     detached") or lines[1].split()[-1] == "detached"
    assert lines[-2:] == ["", "1 images listed."]
    assert render_table(rows(root), legend=False, systemd=257).count("\n") == 1


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (512, "512B"),
        (1024, "1.0K"),
        (4096, "4.0K"),
        (1536, "1.5K"),
        (10 * 1024**2, "10.0M"),
        (3 * 1024**3 + 1024**3 // 2, "3.5G"),
        (1153434, "1.0M"),  # 1126K: systemd truncates in K, then takes the decimal
        (1024**2 - 1, "1023.9K"),
        (None, ""),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n, systemd=252) == text
    # 257 leaves out a zero decimal
    assert format_bytes(n, systemd=257) == text.replace(".0", "")


def test_table_asks_no_detect(root, monkeypatch):
    # Directories are known by the stat made anyway, NAME.raw by its name (systemd's rules):
    # no format's detect() runs for the rows (list --json reads a raw file's header later).
    from portable.plugin.hooks import Hooks

    asked = []
    detect = Hooks.detect

    def spy(self, rec, fmt, path):
        asked.append((fmt.name, str(path)))
        return detect(self, rec, fmt, path)

    monkeypatch.setattr(Hooks, "detect", spy)
    image(root / "var/lib/portables/foo")
    (root / "var/lib/portables/bar.raw").write_bytes(b"\0" * 4096)
    got = rows(root)
    assert [(r.name, r.type) for r in got] == [("bar", "raw"), ("foo", "directory")]
    assert asked == []
