"""portable.images.runnable: what an image lacks for systemd to run its services (issue 14, item 2),
and how inspect and attach report it (no service manager: --root)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.runners import run_main_int as run

from portable.images.confined import open_root
from portable.images.runnable import MOUNT_POINTS, check
from portable.plugin.types import Profile, ProfileDropin, UnitFile
from portable.testing.images import make_directory_image, service_unit

PROFILE = Profile(
    name="p",
    description="test",
    dropins={
        "service": ProfileDropin(
            text="[Service]\nBindReadOnlyPaths=/dev/log /run/x\n"
            "BindReadOnlyPaths=/etc/machine-id\nBindReadOnlyPaths=-/etc/resolv.conf\n"
            "BindPaths=/srv/host:/opt/data:rbind\n"
        )
    },
)


def unit(name: str, text: str) -> UnitFile:
    return UnitFile(name=name, source=f"/x/{name}", resolved=f"/x/{name}", data=text.encode())


def good(tmp_path: Path) -> Path:
    return make_directory_image(
        tmp_path / "img", units={}, files={"/opt/data/.k": ""}, busybox=True
    )


def problems(image: Path, units: list[UnitFile], profile: Profile = PROFILE) -> list[str]:
    with open_root(image) as fd:
        return [str(p) for p in check(fd, units, profile)]


SVC = unit("foo.service", service_unit("/usr/bin/sleep infinity"))


def test_a_complete_image_has_no_problem(tmp_path):
    assert problems(good(tmp_path), [SVC, unit("foo.socket", "[Socket]\nListenStream=1\n")]) == []


@pytest.mark.parametrize("point", MOUNT_POINTS)
def test_each_mount_point(tmp_path, point):
    image = good(tmp_path)
    os.rmdir(image / point.lstrip("/"))
    assert problems(image, [SVC]) == [
        f"foo.service: {point} is missing (systemd mounts the service's {point} there)"
    ]
    (image / point.lstrip("/")).write_text("")
    assert problems(image, [SVC]) == [
        f"foo.service: {point} is not a directory (systemd mounts the service's {point} there)"
    ]


def test_mount_point_symlinks_are_confined(tmp_path):
    image = good(tmp_path)
    os.rmdir(image / "tmp")
    os.symlink("/usr/bin", image / "tmp")  # inside the image: fine
    os.rmdir(image / "run")
    os.symlink("../../../../../run", image / "run")  # clamped to the image root: /run, missing
    assert problems(image, [SVC]) == [
        "foo.service: /run is missing (systemd mounts the service's /run there)"
    ]


def test_bind_targets_of_the_profile(tmp_path):
    image = good(tmp_path)
    (image / "etc/machine-id").unlink()
    (image / "etc/resolv.conf").unlink()  # '-': optional
    shutil.rmtree(image / "opt/data")  # a src:dest bind: the destination counts
    assert problems(image, [SVC]) == [
        "foo.service: /etc/machine-id is missing (the profile 'p' bind-mounts the host's "
        "there: BindReadOnlyPaths=/etc/machine-id)",
        "foo.service: /opt/data is missing (the profile 'p' bind-mounts the host's there: "
        "BindPaths=/srv/host:/opt/data:rbind)",
    ]


def test_executables(tmp_path):
    image = good(tmp_path)
    (image / "usr/bin/notexec").write_text("")
    os.symlink("/usr/bin/busybox", image / "usr/lib/abs-link")  # confined: the image's busybox
    units = [
        unit(
            "a.service",
            "[Service]\nExecStart=/nonexistent\nExecStart=\nExecStart=-@/usr/lib/abs-link x\n",
        ),
        unit("b.service", "[Service]\nType=oneshot\nExecStart=:sleep 1\nExecStart=nope --x\n"),
        unit("c.service", "[Service]\nExecStart=/usr/bin/notexec\nExecStart=+/host/only\n"),
        unit("d.service", "[Service]\nExecStart=/usr/%i/x\nExecStart=/usr/bin\n"),
    ]
    assert problems(image, units) == [
        "b.service: nope is missing (looked up in /usr/local/sbin:/usr/local/bin:/usr/sbin:"
        "/usr/bin:/sbin:/bin) (ExecStart=)",
        "c.service: /usr/bin/notexec is not an executable file (ExecStart=)",
        "d.service: /usr/bin is not an executable file (ExecStart=)",
    ]


def test_units_that_run_nothing_need_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert problems(empty, [unit("foo.timer", "[Timer]\nOnCalendar=daily\n")]) == []


def test_an_absolute_symlink_executable_does_not_reach_the_host(tmp_path):
    image = good(tmp_path)
    os.symlink("/usr/bin/python3", image / "usr/lib/py")  # the host has one, the image not
    units = [unit("a.service", "[Service]\nExecStart=/usr/lib/py\n")]
    assert problems(image, units) == ["a.service: /usr/lib/py is missing (ExecStart=)"]


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    image = make_directory_image(r / "srv/foo_1", units={"foo.service": service_unit()})
    os.rmdir(image / "dev")
    make_directory_image(r / "srv/ok_1", units={"ok.service": service_unit()})
    return r


MISSING_DEV = "foo.service: /dev is missing (systemd mounts the service's /dev there)"


def test_inspect_shows_the_block_only_when_needed(root, capsys):
    code, out, _ = run(["--root", str(root), "inspect", "/srv/foo_1"], capsys)
    assert code == 0
    assert out.endswith(
        "Unit files:\n\tfoo.service\nThis image can't run a portable service as is:\n"
        f"\t{MISSING_DEV}\n"
    )
    code, out, _ = run(["--root", str(root), "inspect", "/srv/ok_1"], capsys)
    assert code == 0 and out.endswith("Unit files:\n\tok.service\n")
    code, out, _ = run(["--root", str(root), "inspect", "--cat", "/srv/foo_1"], capsys)
    assert out.endswith(f"\n-- This image can't run a portable service as is: --\n{MISSING_DEV}\n")


def test_inspect_json(root, capsys):
    code, out, _ = run(["--root", str(root), "inspect", "--json", "/srv/foo_1"], capsys)
    assert code == 0
    assert json.loads(out)["runnable"] == {
        "ok": False,
        "problems": [
            {
                "units": ["foo.service"],
                "path": "/dev",
                "problem": "is missing (systemd mounts the service's /dev there)",
            }
        ],
    }
    _, out, _ = run(["--root", str(root), "inspect", "--json", "/srv/ok_1"], capsys)
    assert json.loads(out)["runnable"] == {"ok": True, "problems": []}


def test_attach_warns_and_strict_image_refuses(root, capsys):
    attached = root / "etc/systemd/system.attached"
    code, _, err = run(["--root", str(root), "attach", "--strict-image", "/srv/foo_1"], capsys)
    assert code == 1
    assert err == (
        f"portable: error: Image '/srv/foo_1' can't run a portable service as is ({MISSING_DEV}"
        "; see 'portable inspect'), refusing (--strict-image).\n"
    )
    assert not attached.exists() and not (root / "etc/portables").exists()
    code, _, err = run(["--root", str(root), "attach", "/srv/foo_1"], capsys)
    assert code == 0
    assert err.startswith(f"portable: warning: image '/srv/foo_1' can't run {MISSING_DEV}\n")
    assert (attached / "foo.service").exists()
    code, _, err = run(["--root", str(root), "attach", "--strict-image", "/srv/ok_1"], capsys)
    assert code == 0 and "warning" not in err
