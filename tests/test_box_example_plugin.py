"""The example plugin as a user gets it: pip install into a fresh virtualenv, use it in a real
systemd, pip uninstall it. (Its own unit tests are in examples/portable-example-plugin/tests.)"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers.in_box import venv_with_example_plugin

from portable.testing.box import Box
from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "examples" / "portable-example-plugin"
LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"


@pytest.fixture(scope="module")
def venv(box: Box) -> Path:
    """A fresh virtualenv (visible in the box) with portable-services and the example plugin."""
    return venv_with_example_plugin(box)


def make_tar(path: Path, *, vendor: bool) -> Path:
    tree = path.with_suffix(".tree")
    os_release = 'ID=ex\nPRETTY_NAME="Example"\n' + (
        'VENDOR_NAME="Example Corp"\n' if vendor else ""
    )
    make_directory_image(
        tree,
        os_release=os_release,
        units={
            "app.service": f"[Service]\nExecStart={LOOP}\n",
        },
    )
    with tarfile.open(path, "w") as archive:
        archive.add(tree, arcname=".")
    return path


def test_installed_plugin_end_to_end(box: Box, venv: Path, box_tmp: Path) -> None:
    portable = str(venv / "bin/portable")
    out = box.run([portable, "plugins"]).stdout
    assert "example (portable-example-plugin 0.1.0): active" in out
    assert "provides: format tar, profile example-locked" in out
    assert "example-locked" in box.run([portable, "profiles"]).stdout
    assert (
        "plugin example (portable-example-plugin 0.1.0)" in box.run([portable, "--version"]).stdout
    )

    image = make_tar(box_tmp / "app_1.tar", vendor=True)
    r = box.run([portable, "attach", "--profile=example-locked", "--runtime", "--now", str(image)])
    assert "Copied " + str(image) + " → /run/portable-services/unpacked/app_1.tar-" in r.stderr
    assert "(Plugins taking part: example (portable-example-plugin 0.1.0).)" in r.stderr
    assert box.run([portable, "is-attached", str(image)]).stdout == "running-runtime\n"
    show = box.systemctl(
        [
            "show",
            "app.service",
            "-p",
            "RootDirectory",
            "-p",
            "TasksMax",
            "-p",
            "ProtectProc",
            "-p",
            "ActiveState",
        ]
    ).stdout
    assert "RootDirectory=/run/portable-services/unpacked/app_1.tar-" in show
    assert "TasksMax=8" in show and "ProtectProc=invisible" in show
    assert "ActiveState=active" in show
    journal = box.run(["journalctl", "--no-pager", "-o", "cat", "-u", "app.service"]).stdout
    assert "started" in journal

    box.run([portable, "detach", "--runtime", "--now", str(image)])
    assert box.run(["ls", "-A", "/run/portable-services/unpacked"]).stdout == ""
    assert box.run([portable, "list"]).stdout == "No images.\n"

    anonymous = make_tar(box_tmp / "app_2.tar", vendor=False)
    r = box.run([portable, "attach", "--runtime", str(anonymous)], check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(
        "portable: error: plugin 'example' (portable-example-plugin 0.1.0) refused the attach: "
        "portable-example-plugin: image "
    )
    assert "has no VENDOR_NAME=" in r.stderr and r.stderr.count("\n") == 1
    assert box.run("ls /run/systemd/system.attached", check=False).returncode != 0


def test_installed_plugin_adds_an_option(box: Box, venv: Path, box_tmp: Path) -> None:
    portable = str(venv / "bin/portable")
    help_text = " ".join(box.run([portable, "attach", "--help"]).stdout.split())
    assert (
        "--require-vendor NAME Attach only an image whose os-release says VENDOR_NAME=NAME. "
        "[plugin example]"
    ) in help_text
    image = make_tar(box_tmp / "app_4.tar", vendor=True)
    r = box.run(
        [portable, "attach", "--runtime", "--require-vendor", "Other Corp", str(image)],
        check=False,
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "is made by 'Example Corp', not 'Other Corp' (--require-vendor)" in r.stderr
    assert box.run("ls /run/systemd/system.attached", check=False).returncode != 0
    box.run([portable, "attach", "--runtime", "-q", "--require-vendor=Example Corp", str(image)])
    box.run([portable, "detach", "--runtime", "-q", str(image)])


def test_uninstall_removes_it(box: Box, venv: Path, box_tmp: Path) -> None:
    subprocess.run(
        [str(venv / "bin/pip"), "uninstall", "-q", "-y", "portable-example-plugin"], check=True
    )
    portable = str(venv / "bin/portable")
    assert "No third-party plugins" in box.run([portable, "plugins"]).stdout
    r = box.run([portable, "attach", "--profile=example-locked", "/nonexistent_1"], check=False)
    assert r.returncode == 1 and "unknown profile 'example-locked'" in r.stderr
    image = make_tar(box_tmp / "app_3.tar", vendor=True)
    r = box.run([portable, "inspect", str(image)], check=False)
    assert r.returncode == 1 and "not a recognised image" in r.stderr
