"""The example plugin's own tests, written with portable.testing's fixtures."""

from __future__ import annotations

import tarfile

import portable_example_plugin as plugin

from portable.testing.images import make_directory_image, service_unit

VENDOR = 'ID=ex\nVENDOR_NAME="Example Corp"\n'


def make_tar(portable_root, name, os_release=VENDOR):
    tree = portable_root.parent / f"tree-{name}"
    make_directory_image(
        tree, os_release=os_release, busybox=False, units={"app.service": service_unit()}
    )
    path = portable_root / "srv/images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        archive.add(tree, arcname=".")
    return f"/srv/images/{name}"


def test_attach_tar_with_profile(register_plugin, portable_cli, portable_root):
    register_plugin(plugin, "example")
    image = make_tar(portable_root, "app_1.tar")
    code, out, err = portable_cli("attach", "--profile=example-locked", image)
    assert code == 0, err
    dropins = portable_root / "etc/systemd/system.attached/app.service.d"
    assert "TasksMax=8" in (dropins / "10-profile.conf").read_text()
    assert (
        "RootDirectory=/var/cache/portable-services/unpacked/app_1.tar-"
        in (dropins / "20-portable.conf").read_text()
    )
    assert portable_cli("detach", image)[0] == 0
    assert list((portable_root / "var/cache/portable-services/unpacked").iterdir()) == []


def test_policy_refuses_images_without_vendor(register_plugin, portable_cli, portable_root):
    register_plugin(plugin, "example")
    image = make_tar(portable_root, "app_2.tar", os_release="ID=ex\n")
    code, out, err = portable_cli("attach", image)
    assert code == 1 and "has no VENDOR_NAME=" in err
    assert not (portable_root / "etc/systemd").exists()


def test_require_vendor_option(register_plugin, portable_cli, portable_root):
    register_plugin(plugin, "example")
    code, out, err = portable_cli("attach", "--help")
    assert "--require-vendor NAME" in out
    image = make_tar(portable_root, "app_3.tar")
    code, out, err = portable_cli("attach", "--require-vendor=Other Corp", image)
    assert code == 1 and "is made by 'Example Corp', not 'Other Corp' (--require-vendor)" in err
    assert not (portable_root / "etc/systemd").exists()
    code, out, err = portable_cli("attach", "--require-vendor", "Example Corp", image)
    assert code == 0, err
