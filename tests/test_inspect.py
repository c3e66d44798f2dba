"""inspect on directory images, against an alternate root: unit selection, os-release, errors."""

from __future__ import annotations

import os

import pytest
from helpers import roots

from portable.errors import BadImage, ImageNotFound, PortableError
from portable.images.inspect import inspect_image
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, service_unit

root = roots.empty_root  # (a fixture)


registry = roots.registry  # (a fixture)


def inspect(root, registry, arg, *prefixes):
    return inspect_image(arg, prefixes, host=Host(root), registry=registry)


@pytest.fixture
def worked_example(root):
    """The image of the spec's worked example (Appendix C)."""
    img = root / "srv/images/foo_1.2"
    os_release = 'ID=debian\nVERSION_ID=12\nPRETTY_NAME="Test OS 12"\n'
    os_release += 'PORTABLE_PRETTY_NAME="Foo Portable"\n'
    unit = service_unit()
    make_directory_image(
        img,
        os_release=os_release,
        busybox=False,
        units={
            "foo.service": unit,
            "foo-bar.service": unit,
            "foo@.service": unit,
            "foo.socket": "[Socket]\nListenStream=/run/foo.sock\n",
            "foo.timer": "[Timer]\nOnCalendar=daily\n",
            "foo.x.path": "[Path]\nPathExists=/tmp/x\n",
            "foobar.service": unit,
            "bar.service": unit,
            "foo.mount": "[Mount]\nWhat=/x\nWhere=/y\n",
            "foo-empty.service": "",
        },
        files={"etc/systemd/system/foo.service": "# from /etc\n" + unit},
        symlinks={
            "usr/lib/systemd/system/foo-link.service": "/usr/lib/systemd/system/foo-bar.service"
        },
    )
    return img


def names(meta):
    return [u.name for u in meta.units]


def test_worked_example_selection(root, registry, worked_example):
    meta = inspect(root, registry, "/srv/images/foo_1.2")
    # As portablectl: foo-link.service, an absolute link to foo-bar.service, is an alias of it
    # and left out (a second copy of the same service otherwise; systemd follows it on the
    # host, where it does not exist, and skips it).
    assert names(meta) == [
        "foo-bar.service",
        "foo.service",
        "foo.socket",
        "foo.timer",
        "foo.x.path",
        "foo@.service",
    ]
    assert meta.image.path == "/srv/images/foo_1.2"
    assert meta.image.name == "foo_1.2"
    assert meta.os_release_fields["PORTABLE_PRETTY_NAME"] == "Foo Portable"
    foo = next(u for u in meta.units if u.name == "foo.service")
    assert foo.data.startswith(b"# from /etc\n")  # the image's /etc beats its /usr/lib
    assert foo.source == "/etc/systemd/system/foo.service"


def test_all_units_and_explicit_prefixes(root, registry, worked_example):
    all_units = names(inspect(root, registry, "/srv/images/foo_1.2", "-"))
    assert "bar.service" in all_units and "foobar.service" in all_units
    assert "foo.mount" not in all_units and "foo-empty.service" not in all_units
    assert names(inspect(root, registry, "/srv/images/foo_1.2", "bar", "foobar")) == [
        "bar.service",
        "foobar.service",
    ]
    assert names(inspect(root, registry, "/srv/images/foo_1.2", "foo.socket")) == ["foo.socket"]


def test_no_matching_units(root, registry, worked_example):
    with pytest.raises(
        BadImage,
        match=r"Couldn't find any matching unit files in image "
        r"'/srv/images/foo_1.2', refusing\.",
    ):
        inspect(root, registry, "/srv/images/foo_1.2", "nothing")


def test_os_release_precedence_etc_over_usr(root, registry):
    img = make_directory_image(
        root / "srv/a", os_release="ID=usr\n", units={"a.service": service_unit()}, busybox=False
    )
    os.unlink(img / "etc/os-release")
    (img / "etc/os-release").write_text("ID=etc\n")
    assert inspect(root, registry, "/srv/a").os_release_fields["ID"] == "etc"


def test_os_release_fallback_to_usr_lib(root, registry):
    img = make_directory_image(
        root / "srv/a", os_release="ID=usr\n", units={"a.service": service_unit()}, busybox=False
    )
    os.unlink(img / "etc/os-release")
    assert inspect(root, registry, "/srv/a").os_release == b"ID=usr\n"


def test_missing_os_release(root, registry):
    make_directory_image(
        root / "srv/a", os_release=None, units={"a.service": service_unit()}, busybox=False
    )
    with pytest.raises(BadImage, match=r"Image '/srv/a' lacks os-release data, refusing\."):
        inspect(root, registry, "/srv/a")


def test_os_release_escaping_to_host_is_not_read(root, registry, tmp_path):
    (tmp_path / "hostrel").write_text("ID=host\n")
    img = make_directory_image(
        root / "srv/a", os_release=None, units={"a.service": service_unit()}, busybox=False
    )
    os.symlink(str(tmp_path / "hostrel"), img / "etc/os-release")
    with pytest.raises(BadImage, match="lacks os-release"):
        inspect(root, registry, "/srv/a")


@pytest.mark.parametrize("kind", ["loop", "fifo", "huge"])
def test_bad_os_release_is_one_line_error(root, registry, kind):
    img = make_directory_image(
        root / "srv/a", os_release=None, units={"a.service": service_unit()}, busybox=False
    )
    if kind == "loop":
        os.symlink("os-release", img / "etc/os-release")
    elif kind == "fifo":
        os.mkfifo(img / "etc/os-release")
    else:
        with open(img / "etc/os-release", "wb") as f:
            f.truncate(64 * 1024 * 1024)
    with pytest.raises(BadImage) as info:
        inspect(root, registry, "/srv/a")
    assert "\n" not in str(info.value)
    assert "os-release" in str(info.value)


def test_unit_symlink_escaping_to_host_is_skipped(root, registry, tmp_path):
    (tmp_path / "host.service").write_text(service_unit("/host/secret"))
    img = make_directory_image(root / "srv/a", units={"a.service": service_unit()}, busybox=False)
    os.symlink(str(tmp_path / "host.service"), img / "usr/lib/systemd/system/a-leak.service")
    os.symlink(
        "../../../../../../../" + str(tmp_path / "host.service"),
        img / "usr/lib/systemd/system/a-leak2.service",
    )
    meta = inspect(root, registry, "/srv/a")
    assert names(meta) == ["a.service"]
    assert all(b"/host/secret" not in u.data for u in meta.units)


@pytest.mark.parametrize("kind", ["loop", "fifo", "huge"])
def test_bad_unit_file_is_one_line_error(root, registry, kind):
    img = make_directory_image(root / "srv/a", units={"a.service": service_unit()}, busybox=False)
    bad = img / "usr/lib/systemd/system/a-bad.service"
    if kind == "loop":
        os.symlink("a-bad.service", bad)
    elif kind == "fifo":
        os.mkfifo(img / "fifo")
        os.symlink("/fifo", bad)
    else:
        with open(bad, "wb") as f:
            f.truncate(8 * 1024 * 1024)
    with pytest.raises(BadImage, match=r"a-bad\.service") as info:
        inspect(root, registry, "/srv/a")
    assert "\n" not in str(info.value)


def test_image_drop_in_directories_are_ignored(root, registry):
    img = make_directory_image(root / "srv/a", units={"a.service": service_unit()}, busybox=False)
    d = img / "usr/lib/systemd/system/a.service.d"
    d.mkdir()
    (d / "weaken.conf").write_text("[Service]\nPrivateNetwork=no\n")
    assert names(inspect(root, registry, "/srv/a")) == ["a.service"]


def test_symlinked_unit_directory_is_confined(root, registry, tmp_path):
    hostunits = tmp_path / "hostunits"
    hostunits.mkdir()
    (hostunits / "a-host.service").write_text(service_unit())
    img = make_directory_image(root / "srv/a", units={"a.service": service_unit()}, busybox=False)
    (img / "etc/systemd").mkdir()
    os.symlink(str(hostunits), img / "etc/systemd/system")
    assert names(inspect(root, registry, "/srv/a")) == ["a.service"]


def test_image_by_name_in_search_path(root, registry):
    make_directory_image(
        root / "var/lib/portables/foo_1", units={"foo.service": service_unit()}, busybox=False
    )
    meta = inspect(root, registry, "foo_1")
    assert meta.image.path == "/var/lib/portables/foo_1"
    assert names(meta) == ["foo.service"]


def test_search_path_order_first_hit_wins(root, registry):
    make_directory_image(
        root / "usr/lib/portables/foo",
        os_release="ID=usr\n",
        units={"foo.service": service_unit()},
        busybox=False,
    )
    make_directory_image(
        root / "run/portables/foo",
        os_release="ID=run\n",
        units={"foo.service": service_unit()},
        busybox=False,
    )
    meta = inspect(root, registry, "foo")
    assert meta.image.path == "/run/portables/foo"
    assert meta.os_release_fields["ID"] == "run"


def test_symlink_in_search_path_keeps_link_path(root, registry):
    make_directory_image(root / "srv/foo_2", units={"foo.service": service_unit()}, busybox=False)
    (root / "etc/portables").mkdir(parents=True)
    os.symlink("/srv/foo_2", root / "etc/portables/foo_2")  # absolute: inside the root
    meta = inspect(root, registry, "foo_2")
    assert meta.image.path == "/etc/portables/foo_2"


def test_regular_file_named_exactly_name_is_not_an_image(root, registry):
    (root / "var/lib/portables").mkdir(parents=True)
    (root / "var/lib/portables/foo").write_text("not an image")
    with pytest.raises(ImageNotFound, match=r"No image 'foo' found\."):
        inspect(root, registry, "foo")


def test_path_to_missing_image(root, registry):
    with pytest.raises(ImageNotFound, match="Cannot normalize specified image path"):
        inspect(root, registry, "/srv/missing")


def test_path_to_unknown_file(root, registry):
    (root / "srv").mkdir()
    (root / "srv/thing.tar").write_bytes(b"\0" * 10)
    with pytest.raises(PortableError, match="not a recognised image"):
        inspect(root, registry, "/srv/thing.tar")


def test_path_is_canonicalized(root, registry):
    make_directory_image(
        root / "srv/real/foo_1", units={"foo.service": service_unit()}, busybox=False
    )
    os.symlink("real", root / "srv/alias")
    meta = inspect(root, registry, "/srv/alias/foo_1")
    assert meta.image.path == "/srv/real/foo_1"


def test_portable_prefixes_are_not_used_by_inspect(root, registry):
    # systemd issue #37296: inspect neither checks nor derives from PORTABLE_PREFIXES.
    make_directory_image(
        root / "srv/app_1",
        os_release="ID=x\nPORTABLE_PREFIXES=other\n",
        units={"app.service": service_unit(), "other.service": service_unit()},
        busybox=False,
    )
    assert names(inspect(root, registry, "/srv/app_1")) == ["app.service"]


def test_template_and_instance_units(root, registry):
    make_directory_image(
        root / "srv/foo",
        units={
            "foo@.service": service_unit(),
            "foo@bar.service": service_unit(),
            "foo_x.service": service_unit(),
        },
        busybox=False,
    )
    assert names(inspect(root, registry, "/srv/foo")) == ["foo@.service", "foo@bar.service"]
