"""Extension images (``--extension``) on an alternate root: what inspect shows, what attach
writes (systemd 252's bytes), how detach, reattach and is-attached match, and the checks
(extension-release lookup, compatibility with the root, prefixes).

Raw extensions need root and loop devices; those tests are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.runners import cli_root

from portable.errors import BadImage
from portable.images.inspect import (
    ExtensionMetadata,
    check_extension_compatible,
    extension_release_name,
    inspect_image_with_extensions,
)
from portable.plugin.registry import make_registry
from portable.plugin.types import ImageMetadata
from portable.systemd.host import Host
from portable.testing.images import (
    make_directory_image,
    make_extension_tree,
    make_squashfs_image,
    mark_systemd_version,
    service_unit,
)

ROOT_OS = (
    'PRETTY_NAME="Base OS 12"\nID=debian\nVERSION_ID=12\n'
    "PORTABLE_PREFIXES=app0 minimal minimal-app0\n"
)
REL = "ID=debian\nVERSION_ID=12\n"
APP0 = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/opt/script0.sh\n"
APP1 = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/opt/script1.sh\n"
HOST_OS = "/usr/lib/os-release"  # what --root trees without /etc/os-release bind

# The root's systemd decides what 20-portable.conf holds: 252 binds the host's os-release; 254+
# logs the images' names and versions and puts a blank line before each extension.
ROOT_LOG_257 = (
    "Environment=PORTABLE_ROOT={root}\nLogExtraFields=PORTABLE_ROOT={root}\n"
    "LogExtraFields=PORTABLE_ROOT_NAME_AND_VERSION=debian_12\n"
)


@pytest.fixture(params=[252, 257], ids=["systemd252", "systemd257"])
def systemd(request: pytest.FixtureRequest, root: Path) -> int:
    """Both known systemd versions in the root tree (tests asserting version-specific bytes)."""
    mark_systemd_version(root, request.param)
    return int(request.param)


raw_needed = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
    reason="raw extensions need root and loop devices",
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An alternate root with /srv/rootdir, /srv/app0 and /srv/app1 (TEST-29's layout)."""
    srv = tmp_path / "srv"
    make_directory_image(
        srv / "rootdir",
        os_release=ROOT_OS,
        units={"minimal-app0.service": service_unit()},
        busybox=True,  # runnable: inspect says nothing more than portablectl
    )
    make_extension_tree(srv / "app0", name="app0", release=REL, units={"app0.service": APP0})
    make_script(srv / "app0/opt/script0.sh")
    # app1's release file is called extension-release.app2 and marked strict=false.
    make_extension_tree(
        srv / "app1",
        name="app1",
        release_name="app2",
        strict=False,
        release=REL + "SYSEXT_SCOPE=portable\nPORTABLE_PREFIXES=app1\n",
        units={"app1.service": APP1},
    )
    make_script(srv / "app1/opt/script1.sh")
    return tmp_path


def make_script(path: Path) -> None:
    """The executable an extension's service runs (as TEST-29's images have)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\ntrue\n")
    path.chmod(0o755)


cli = cli_root  # portable --root ROOT ARGS, on the forking runner


def ok(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = cli(root, *args)
    assert r.returncode == 0, r.stderr
    return r


def fails(root: Path, *args: str) -> str:
    r = cli(root, *args)
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("portable: error: "), r.stderr
    return lines[0].removeprefix("portable: error: ")


EXT2 = ["--extension", "/srv/app0", "--extension", "/srv/app1"]


# --- inspect --------------------------------------------------------------------------------


def test_inspect_shows_each_extension(root, systemd):
    r = ok(root, "inspect", *EXT2, "/srv/rootdir", "app0", "app1")
    head = "Image:\n\t/srv/rootdir\nPortable Service:\n\tn/a\nOperating System:\n\tBase OS 12\n"
    if systemd == 252:
        assert r.stdout == head + (
            "Extension:\n\t/srv/app0\n\tExtension Scope:\n\t\tn/a\n"
            "\tExtension Compatibility Level:\n\t\tn/a\n\tPortable Service:\n\t\tn/a\n"
            "\tPortable Prefixes:\n\t\tn/a\n\tOperating System:\n\t\tn/a (debian 12)\n"
            "Extension:\n\t/srv/app1\n\tExtension Scope:\n\t\tportable\n"
            "\tExtension Compatibility Level:\n\t\tn/a\n\tPortable Service:\n\t\tn/a\n"
            "\tPortable Prefixes:\n\t\tapp1\n\tOperating System:\n\t\tn/a (debian 12)\n"
            "Unit files:\n\tapp0.service\n\tapp1.service\n"
        )
    else:  # 257: the compatibility OS on lines of its own, the extension's own ID/version
        assert r.stdout == head + (
            "Extension:\n\t/srv/app0\n\tExtension Scope:\n\t\tn/a\n"
            "\tExtension Compatibility Level:\n\t\tn/a\n"
            "\tExtension Compatibility OS:\n\t\tdebian\n"
            "\tExtension Compatibility OS Version:\n\t\t12\n"
            "\tPortable Service:\n\t\tn/a\n\tPortable Prefixes:\n\t\tn/a\n"
            "\tExtension Image:\n\t\tID: n/a Version: n/a\n"
            "Extension:\n\t/srv/app1\n\tExtension Scope:\n\t\tportable\n"
            "\tExtension Compatibility Level:\n\t\tn/a\n"
            "\tExtension Compatibility OS:\n\t\tdebian\n"
            "\tExtension Compatibility OS Version:\n\t\t12\n"
            "\tPortable Service:\n\t\tn/a\n\tPortable Prefixes:\n\t\tapp1\n"
            "\tExtension Image:\n\t\tID: n/a Version: n/a\n"
            "Unit files:\n\tapp0.service\n\tapp1.service\n"
        )
    assert r.stderr == "(Matching unit files with prefixes 'app0', 'app1'.)\n"


def test_inspect_cat_shows_each_extension_release(root):
    r = ok(root, "inspect", "--cat", *EXT2, "/srv/rootdir", "app0", "app1")
    assert r.stdout == (
        f"-- OS Release: --\n{ROOT_OS}"
        f"\n-- Extension Release: /srv/app0 --\n{REL}"
        f"\n-- Extension Release: /srv/app1 --\n{REL}"
        "SYSEXT_SCOPE=portable\nPORTABLE_PREFIXES=app1\n"
        f"\n-- Unit file: app0.service --\n{APP0}"
        f"\n-- Unit file: app1.service --\n{APP1}"
    )


def test_inspect_json_with_extensions(root):
    doc = json.loads(ok(root, "inspect", "--json", *EXT2, "/srv/rootdir", "-").stdout)
    assert [u["name"] for u in doc["units"]] == [
        "app0.service",
        "app1.service",
        "minimal-app0.service",
    ]
    assert {u["name"]: u["image"] for u in doc["units"]}["app1.service"] == "/srv/app1"
    exts = doc["extensions"]
    assert [e["image"] for e in exts] == ["/srv/app0", "/srv/app1"]
    assert exts[1]["extension_release_file"] == (
        "/usr/lib/extension-release.d/extension-release.app2"
    )
    assert exts[1]["portable_prefixes"] == ["app1"] and exts[1]["units"] == ["app1.service"]


def test_root_unit_wins_then_earlier_extension(root):
    shadow = "[Service]\nExecStart=/bin/true\n# from app0\n"
    (root / "srv/app0/usr/lib/systemd/system/minimal-app0.service").write_text(shadow)
    (root / "srv/app1/usr/lib/systemd/system/app0.service").write_text("# from app1\n")
    found = inspect_image_with_extensions(
        "/srv/rootdir",
        ["-"],
        extensions=["/srv/app0", "/srv/app1"],
        host=Host(root),
        registry=make_registry(root=root),
    )
    origin = {n: img.path for n, img in found.origin.items()}
    assert origin == {
        "minimal-app0.service": "/srv/rootdir",
        "app0.service": "/srv/app0",
        "app1.service": "/srv/app1",
    }
    assert {u.name: u.data for u in found.units}["app0.service"] == APP0.encode()


def test_no_units_anywhere(root):
    msg = fails(root, "inspect", "--extension", "/srv/app0", "/srv/rootdir", "nothing")
    assert msg == (
        "Couldn't find any matching unit files in image '/srv/rootdir' or any of its "
        "extensions '/srv/app0', refusing."
    )


# --- extension-release lookup ---------------------------------------------------------------


def test_missing_extension_release(root):
    os.rename(root / "srv/app0", root / "srv/app10")
    msg = fails(root, "inspect", "--extension", "/srv/app10", "/srv/rootdir", "app0")
    assert msg.startswith("Image '/srv/app10' lacks extension-release data, refusing.")
    # --force: any single extension-release.* file is taken
    r = ok(root, "inspect", "--force", "--cat", "--extension", "/srv/app10", "/srv/rootdir", "app0")
    assert f"-- Extension Release: /srv/app10 --\n{REL}" in r.stdout


def test_versioned_extension_name_needs_its_own_release_file_on_252(root, systemd):
    # systemd 252 (whose PID 1 checks the same): app0_1.0 needs extension-release.app0_1.0; the
    # error says what was found. From 254 on, extension-release.app0 (no version) is taken.
    os.rename(root / "srv/app0", root / "srv/app0_1.0")
    args = ["inspect", "--cat", "--extension", "/srv/app0_1.0", "/srv/rootdir", "app0"]
    if systemd == 252:
        assert fails(root, *args) == (
            "Image '/srv/app0_1.0' lacks extension-release data, refusing. (Found "
            "extension-release.app0; for this image it must be named extension-release.app0_1.0, "
            "or use --force.)"
        )
    else:
        assert f"-- Extension Release: /srv/app0_1.0 --\n{REL}" in ok(root, *args).stdout


def test_confext_release_file_from_255(root, systemd):
    """A configuration extension keeps its release file in /etc/extension-release.d (255+)."""
    usr = root / "srv/app0/usr/lib/extension-release.d"
    etc = root / "srv/app0/etc/extension-release.d"
    etc.mkdir(parents=True)
    os.rename(usr / "extension-release.app0", etc / "extension-release.app0")
    args = ["inspect", "--cat", "--extension", "/srv/app0", "/srv/rootdir", "app0"]
    if systemd == 252:
        assert fails(root, *args).startswith("Image '/srv/app0' lacks extension-release data")
    else:
        assert f"-- Extension Release: /srv/app0 --\n{REL}" in ok(root, *args).stdout


def test_two_release_files_that_could_apply(root):
    d = root / "srv/app1/usr/lib/extension-release.d"
    (d / "extension-release.app3").write_text(REL)
    os.setxattr(d / "extension-release.app3", "user.extension-release.strict", b"0")
    msg = fails(root, "inspect", "--extension", "/srv/app1", "/srv/rootdir", "app1")
    assert "has several extension-release files that could apply" in msg
    assert "extension-release.app2, extension-release.app3" in msg


def test_strict_true_xattr_does_not_relax(root):
    rel = root / "srv/app1/usr/lib/extension-release.d/extension-release.app2"
    os.setxattr(rel, "user.extension-release.strict", b"true")
    msg = fails(root, "inspect", "--extension", "/srv/app1", "/srv/rootdir", "app1")
    assert msg.startswith("Image '/srv/app1' lacks extension-release data, refusing. (Found ")


def test_extension_release_name_of_files(tmp_path):
    reg = make_registry(load_entrypoints=False)
    d = make_directory_image(tmp_path / "app0_1.0", busybox=False)
    from portable.images.resolve import resolve_image

    assert extension_release_name(resolve_image(str(d), host=Host(), registry=reg)) == "app0_1.0"
    if os.geteuid() == 0 and os.path.exists("/dev/loop-control"):
        img = make_squashfs_image(tmp_path / "app1_2.raw.xz.raw", d)
        link = tmp_path / "other.raw"
        link.symlink_to(img.name)
        image = resolve_image(str(link), host=Host(), registry=reg)
        # after symlink resolution, with .raw .xz .raw stripped
        assert extension_release_name(image) == "app1_2"


# --- compatibility -----------------------------------------------------------------------------


def _meta(fields: dict[str, str]) -> ImageMetadata:
    from portable.images.resolve import resolve_image

    image = resolve_image("/", host=Host(), registry=make_registry(load_entrypoints=False))
    return ImageMetadata(
        image=image, os_release=b"", os_release_fields=fields, units=(), prefixes=()
    )


def _ext(fields: dict[str, str]) -> ExtensionMetadata:
    return ExtensionMetadata(
        image=_meta({}).image, release=b"", release_path="", release_fields=fields, units=()
    )


@pytest.mark.parametrize(
    ("root_fields", "ext_fields", "why"),
    [
        ({"ID": "debian", "VERSION_ID": "12"}, {"ID": "debian", "VERSION_ID": "12"}, None),
        ({"ID": "debian", "VERSION_ID": "12"}, {"ID": "_any"}, None),
        ({"ID": "debian"}, {"ID": "debian"}, None),  # rolling release
        ({"ID": "debian", "VERSION_ID": "12"}, {}, "its extension-release is empty"),
        ({"ID": "debian", "VERSION_ID": "12"}, {"VERSION_ID": "12"}, "it has no ID="),
        (
            {"ID": "debian", "VERSION_ID": "12"},
            {"ID": "fedora", "VERSION_ID": "40"},
            "ID=fedora, the root image has ID=debian",
        ),
        (
            {"ID": "debian", "VERSION_ID": "12"},
            {"ID": "debian", "VERSION_ID": "11"},
            "VERSION_ID=11, the root image has VERSION_ID=12",
        ),
        (
            {"ID": "debian", "VERSION_ID": "12"},
            {"ID": "debian"},
            "it has no VERSION_ID= (the root image has VERSION_ID=12)",
        ),
        (
            {"ID": "debian", "VERSION_ID": "12", "SYSEXT_LEVEL": "2"},
            {"ID": "debian", "SYSEXT_LEVEL": "2"},
            None,
        ),
        (
            {"ID": "debian", "SYSEXT_LEVEL": "2"},
            {"ID": "debian", "SYSEXT_LEVEL": "3"},
            "SYSEXT_LEVEL=3, the root image has SYSEXT_LEVEL=2",
        ),
        (
            {"ID": "debian", "VERSION_ID": "12"},
            {"ID": "debian", "VERSION_ID": "12", "SYSEXT_SCOPE": "system initrd"},
            "SYSEXT_SCOPE=system initrd does not include 'portable'",
        ),
        (
            {"ID": "debian", "VERSION_ID": "12"},
            {"ID": "debian", "VERSION_ID": "12", "ARCHITECTURE": "_any"},
            None,
        ),
        (
            {"ID": "debian", "VERSION_ID": "12"},
            {"ID": "debian", "VERSION_ID": "12", "ARCHITECTURE": "s390"},
            "ARCHITECTURE=s390, the host is",
        ),
    ],
)
@pytest.mark.parametrize("systemd", [252, 257])
def test_compatibility_rules(root_fields, ext_fields, why, systemd):
    if why is None:
        check_extension_compatible(_meta(root_fields), _ext(ext_fields), systemd=systemd)
        return
    with pytest.raises(BadImage, match="extension-release metadata does not match the root's"):
        check_extension_compatible(_meta(root_fields), _ext(ext_fields), systemd=systemd)
    try:
        check_extension_compatible(_meta(root_fields), _ext(ext_fields), systemd=systemd)
    except BadImage as exc:
        assert why in str(exc)


@pytest.mark.parametrize(("systemd", "fits"), [(252, False), (256, False), (257, True)])
def test_extension_id_may_be_the_roots_id_like_from_257(systemd, fits):
    """systemd 257 matches an extension's ID against the root's ID_LIKE too."""
    root_fields = {"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "12"}
    ext_fields = {"ID": "debian", "VERSION_ID": "12"}
    if fits:
        check_extension_compatible(_meta(root_fields), _ext(ext_fields), systemd=systemd)
    else:
        with pytest.raises(BadImage, match=r"ID=debian, the root image has ID=ubuntu$"):
            check_extension_compatible(_meta(root_fields), _ext(ext_fields), systemd=systemd)


def test_attach_refuses_incompatible_extension(root):
    rel = root / "srv/app0/usr/lib/extension-release.d/extension-release.app0"
    rel.write_text("ID=fedora\nVERSION_ID=40\n")
    before = sorted(p for p in root.rglob("*"))
    msg = fails(root, "attach", "--runtime", "--extension", "/srv/app0", "/srv/rootdir", "app0")
    assert msg.startswith(
        "Image /srv/app0 extension-release metadata does not match the root's: ID=fedora"
    )
    assert sorted(p for p in root.rglob("*")) == before
    # inspect does not check
    ok(root, "inspect", "--extension", "/srv/app0", "/srv/rootdir", "app0")


def test_empty_root_and_extension_fail_cleanly(tmp_path):
    (tmp_path / "srv/emptyroot/usr/lib").mkdir(parents=True)
    (tmp_path / "srv/emptyroot/usr/lib/os-release").write_text("")
    d = tmp_path / "srv/emptyext/usr/lib/extension-release.d"
    d.mkdir(parents=True)
    (d / "extension-release.emptyext").write_text("")
    msg = fails(tmp_path, "attach", "--extension", "/srv/emptyext", "/srv/emptyroot")
    assert msg == "Image /srv/emptyroot os-release metadata lacks the ID field"


def test_prefixes_must_be_allowed_by_root_or_an_extension(root):
    msg = fails(root, "attach", "--runtime", "--extension", "/srv/app0", "/srv/rootdir", "foo")
    assert msg == (
        "Selected matches 'foo' are not compatible with portable service image '/srv/rootdir' "
        "or any of its extensions '/srv/app0', refusing. (Acceptable prefix matches are: app0, "
        "minimal, minimal-app0)"
    )
    # app1's PORTABLE_PREFIXES adds app1
    ok(root, "attach", "--runtime", *EXT2, "/srv/rootdir", "app1")


def test_same_extension_name_twice(root):
    os.symlink("app0", root / "srv/other")
    (root / "srv/x").mkdir()
    os.symlink("../app0", root / "srv/x/app0")
    msg = fails(
        root, "attach", "--extension", "/srv/app0", "--extension", "/srv/x/app0", "/srv/rootdir"
    )
    assert "have the same image name 'app0'" in msg


# --- attach / detach files -----------------------------------------------------------------------


def dropin(root: Path, unit: str, runtime: bool = True) -> str:
    where = "run" if runtime else "etc"
    return (root / f"{where}/systemd/system.attached/{unit}.d/20-portable.conf").read_text()


def test_attach_directory_extensions_as_systemd_does(root, systemd):
    r = ok(root, "attach", "--copy=symlink", "--runtime", *EXT2, "/srv/rootdir", "app0", "app1")
    marker = "# Drop-in created for image '/srv/rootdir:/srv/app0:/srv/app1', do not edit.\n"
    for name in ("app0", "app1"):
        head = f"{marker}\n[Service]\nRootDirectory=/srv/rootdir\nEnvironment=PORTABLE={name}\n"
        if systemd == 252:
            expected = (
                f"{head}BindReadOnlyPaths={HOST_OS}:/run/host/os-release\n"
                f"LogExtraFields=PORTABLE={name}\n"
                "ExtensionDirectories=/srv/app0\nExtensionDirectories=/srv/app1\n"
            )
        else:
            expected = (
                f"{head}LogExtraFields=PORTABLE={name}\n"
                + ROOT_LOG_257.format(root="rootdir")
                + "\nExtensionDirectories=/srv/app0\nLogExtraFields=PORTABLE_EXTENSION=app0\n"
                "\nExtensionDirectories=/srv/app1\nLogExtraFields=PORTABLE_EXTENSION=app1\n"
            )
        assert dropin(root, f"{name}.service") == expected
    where = root / "run/systemd/system.attached"
    assert os.readlink(where / "app0.service") == "/srv/app0/usr/lib/systemd/system/app0.service"
    assert os.readlink(where / "app1.service") == "/srv/app1/usr/lib/systemd/system/app1.service"
    links = [line for line in r.stderr.splitlines() if "/run/portables/" in line]
    assert links == [
        "Created symlink /run/portables/app0 → /srv/app0.",
        "Created symlink /run/portables/app1 → /srv/app1.",
        "Created symlink /run/portables/rootdir → /srv/rootdir.",
    ]
    assert ok(root, "is-attached", *EXT2, "/srv/rootdir").stdout == "attached-runtime\n"
    r = ok(root, "detach", "--runtime", *EXT2, "/srv/rootdir", "app0", "app1")
    assert not where.exists()
    assert sorted(os.listdir(root / "run/portables")) == []


def test_units_from_the_root_get_no_extension_lines(root, systemd):
    ok(root, "attach", "--runtime", "--extension", "/srv/app0", "/srv/rootdir", "minimal-app0")
    head = (
        "# Drop-in created for image '/srv/rootdir:/srv/app0', do not edit.\n\n[Service]\n"
        "RootDirectory=/srv/rootdir\nEnvironment=PORTABLE=rootdir\n"
    )
    assert dropin(root, "minimal-app0.service") == (
        f"{head}BindReadOnlyPaths={HOST_OS}:/run/host/os-release\nLogExtraFields=PORTABLE=rootdir\n"
        if systemd == 252
        else f"{head}LogExtraFields=PORTABLE=rootdir\n" + ROOT_LOG_257.format(root="rootdir")
    )
    src = root / "run/systemd/system.attached/minimal-app0.service"
    assert not src.is_symlink()


def test_detach_needs_the_extensions_it_was_attached_with(root):
    ok(root, "attach", "--runtime", *EXT2, "/srv/rootdir", "app0", "app1")
    # v254+ matching: the root alone does not match units attached with extensions.
    msg = fails(root, "detach", "--runtime", "/srv/rootdir")
    assert msg == (
        "No unit files associated with '/srv/rootdir' found attached to the system. "
        "Image not attached?"
    )
    msg = fails(root, "detach", "--runtime", "--extension", "/srv/app0", "/srv/rootdir")
    assert "'/srv/rootdir' or any of its extensions '/srv/app0'" in msg
    # names and other versions match too; deleted extensions need not exist
    os.rename(root / "srv/app1", root / "srv/app1_2")
    ok(root, "detach", "--runtime", "--extension", "app0", "--extension", "/srv/app1", "rootdir")
    assert not (root / "run/systemd/system.attached").exists()


@pytest.mark.parametrize(
    ("args", "state"),
    [
        ([*EXT2, "/srv/rootdir"], "attached-runtime"),
        (["--extension", "app0", "--extension", "app1", "rootdir"], "attached-runtime"),
        (["--extension", "app0_7", "--extension", "app1.raw", "rootdir_2"], "attached-runtime"),
        (["/srv/rootdir"], "attached-runtime"),  # any token matching is enough (v254+)
        (["--extension", "app1", "app0"], "detached"),
        (["nothing"], "detached"),
    ],
)
def test_is_attached_with_extensions(root, args, state):
    ok(root, "attach", "--runtime", *EXT2, "/srv/rootdir", "app0", "app1")
    assert ok(root, "is-attached", *args).stdout == state + "\n"


def test_reattach_to_a_new_base_version_keeps_extensions(root):
    ok(root, "attach", "--runtime", "--extension", "/srv/app0", "/srv/rootdir", "app0")
    os.rename(root / "srv/rootdir", root / "srv/rootdir_2")
    r = ok(root, "reattach", "--runtime", "--extension", "/srv/app0", "/srv/rootdir_2", "app0")
    assert dropin(root, "app0.service").startswith(
        "# Drop-in created for image '/srv/rootdir_2:/srv/app0', do not edit.\n"
        "\n[Service]\nRootDirectory=/srv/rootdir_2\n"
    )
    assert "Removed /run/portables/rootdir." in r.stderr
    assert "Created symlink /run/portables/rootdir_2 → /srv/rootdir_2." in r.stderr
    assert (
        ok(root, "is-attached", "--extension", "app0", "rootdir_2").stdout == "attached-runtime\n"
    )


# --- raw extensions ------------------------------------------------------------------------------


@raw_needed
def test_raw_extension_on_raw_root_with_force(root, systemd):
    srv = root / "srv"
    make_squashfs_image(srv / "minimal_0.raw", srv / "rootdir")
    make_squashfs_image(srv / "app0.raw", srv / "app0")
    os.rename(srv / "app0.raw", srv / "app10.raw")  # release file still extension-release.app0
    msg = fails(
        root, "attach", "--runtime", "--extension", "/srv/app10.raw", "/srv/minimal_0.raw", "app0"
    )
    assert msg.startswith("Image '/srv/app10.raw' lacks extension-release data, refusing.")
    ok(
        root,
        "attach",
        "--force",
        "--runtime",
        "--extension",
        "/srv/app10.raw",
        "/srv/minimal_0.raw",
        "app0",
    )
    head = (
        "# Drop-in created for image '/srv/minimal_0.raw:/srv/app10.raw', do not edit.\n\n"
        "[Service]\nRootImage=/srv/minimal_0.raw\nEnvironment=PORTABLE=app10.raw\n"
    )
    assert dropin(root, "app0.service") == (
        f"{head}BindReadOnlyPaths={HOST_OS}:/run/host/os-release\n"
        "LogExtraFields=PORTABLE=app10.raw\n"
        "ExtensionImages=/srv/app10.raw:x-systemd.relax-extension-release-check\n"
        if systemd == 252
        else f"{head}LogExtraFields=PORTABLE=app10.raw\n"
        + ROOT_LOG_257.format(root="minimal_0.raw")
        + "\nExtensionImages=/srv/app10.raw:x-systemd.relax-extension-release-check\n"
        "LogExtraFields=PORTABLE_EXTENSION=app10.raw\n"
    )
    assert not (root / "run/systemd/system.attached/app0.service").is_symlink()
    r = ok(
        root,
        "inspect",
        "--force",
        "--cat",
        "--extension",
        "/srv/app10.raw",
        "/srv/minimal_0.raw",
        "app0",
    )
    assert "-- Extension Release: /srv/app10.raw --\n" in r.stdout
    (srv / "app10.raw").unlink()  # detach works after the extension is gone
    ok(
        root,
        "detach",
        "--force",
        "--runtime",
        "--extension",
        "/srv/app10.raw",
        "/srv/minimal_0.raw",
    )
    assert not (root / "run/systemd/system.attached").exists()


@raw_needed
def test_force_relax_option_only_on_extension_images(root, systemd):
    """systemd 252 keys the option to the root's type; we to the extension's (as 257)."""
    srv = root / "srv"
    make_squashfs_image(srv / "minimal_0.raw", srv / "rootdir")
    make_squashfs_image(srv / "app1.raw", srv / "app1")
    args = ["--extension", "/srv/app0", "--extension", "/srv/app1.raw"]
    expected = (
        "ExtensionDirectories=/srv/app0\n"
        "ExtensionImages=/srv/app1.raw:x-systemd.relax-extension-release-check\n"
        if systemd == 252
        else "\nExtensionDirectories=/srv/app0\nLogExtraFields=PORTABLE_EXTENSION=app0\n"
        "\nExtensionImages=/srv/app1.raw:x-systemd.relax-extension-release-check\n"
        "LogExtraFields=PORTABLE_EXTENSION=app1.raw\n"
    )
    ok(root, "attach", "--force", "--runtime", *args, "/srv/minimal_0.raw", "app0")
    assert dropin(root, "app0.service").endswith(expected)
    ok(root, "detach", "--runtime", *args, "/srv/minimal_0.raw")
    ok(root, "attach", "--force", "--runtime", *args, "/srv/rootdir", "app0")
    assert dropin(root, "app0.service").endswith(expected)


@raw_needed
def test_raw_extension_release_with_strict_false_xattr(root):
    srv = root / "srv"
    make_squashfs_image(srv / "minimal_0.raw", srv / "rootdir")
    make_squashfs_image(srv / "app1.raw", srv / "app1")  # extension-release.app2 + xattr
    r = ok(root, "inspect", "--extension", "/srv/app1.raw", "/srv/minimal_0.raw", "app1")
    assert "\tapp1.service\n" in r.stdout and "\t\tportable\n" in r.stdout


def test_control_characters_in_image_or_extension_paths_refused(root):
    """A newline in a path would add settings to 20-portable.conf: refused, one line."""
    evil = "app9\nProtectSystem=no"
    make_extension_tree(root / "srv" / evil, name=evil, release=REL, units={"app0.service": APP0})
    os.symlink(evil, root / "srv/app9")  # a harmless-looking name leading to it
    msg = fails(root, "attach", "--runtime", "--extension", "/srv/app9", "/srv/rootdir", "app0")
    assert msg == (
        "Image path '/srv/app9\\nProtectSystem=no' contains control characters, refusing."
    )
    shutil.copytree(root / "srv/rootdir", root / f"srv/{evil}_root", symlinks=True)
    msg = fails(root, "attach", "--runtime", f"/srv/{evil}_root", "minimal-app0")
    assert "contains control characters, refusing." in msg and "\n" not in msg
    assert not (root / "run/systemd/system.attached").exists()
