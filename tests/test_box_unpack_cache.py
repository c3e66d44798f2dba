"""A replaced archive image in a real systemd: the service runs the new tree after
``attach --force`` (and a restart) and after ``reattach --now``; the tree a running service
uses is never changed under it; detach removes every unpacked tree. The archive format is the
example plugin's ``tar``, installed with pip as a user would (as in test_box_example_plugin)."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import pytest
from helpers.in_box import venv_with_example_plugin

from portable.testing.box import Box
from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "examples" / "portable-example-plugin"
UNPACKED = "/var/cache/portable-services/unpacked"
# Says which version of the tree it runs from, then stays up
SERVICE = (
    "[Service]\n"
    "ExecStart=/usr/bin/sh -c 'echo running-version-$(cat /srv/version); "
    "while :; do sleep 3600; done'\n"
)


@pytest.fixture(scope="module")
def portable(box: Box) -> str:
    """``portable`` from a fresh virtualenv (visible in the box) with the example plugin."""
    return str(venv_with_example_plugin(box) / "bin/portable")


def write_tar(path: Path, version: str) -> None:
    """The archive of an image whose /srv/version says ``version``, renamed over ``path``."""
    tree = path.parent / f"tree-{version}"
    make_directory_image(
        tree,
        os_release='ID=ex\nVENDOR_NAME="Example Corp"\n',
        units={"app.service": SERVICE},
        files={"/srv/version": version},
    )
    new = path.with_name(f".new-{path.name}")
    with tarfile.open(new, "w") as archive:
        archive.add(tree, arcname=".")
    os.replace(new, path)


def show(box: Box, prop: str) -> str:
    return box.systemctl(["show", "app.service", "-p", prop, "--value"]).stdout.strip()


def running_version(box: Box) -> str:
    """/srv/version as the service's main process sees it (in the tree it runs from)."""
    # Type=simple: the start job is done once the process is forked, maybe before it is in
    # its root directory
    deadline = time.monotonic() + 10
    while True:
        pid = show(box, "MainPID")
        r = box.run(["cat", f"/proc/{pid}/root/srv/version"], check=False)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.returncode == 0, box.systemctl(["status", "app.service"], check=False).stdout
    return r.stdout


def cache_dirs(box: Box) -> list[str]:
    return box.run(["ls", "-A", UNPACKED], check=False).stdout.split()


def test_replaced_archive_runs_the_new_tree(box: Box, portable: str, box_tmp: Path) -> None:
    image = box_tmp / "app_1.tar"
    write_tar(image, "1")
    try:
        box.run([portable, "attach", "--now", str(image)])
        assert show(box, "ActiveState") == "active"
        assert running_version(box) == "1"
        first = show(box, "RootDirectory")
        assert first.startswith(f"{UNPACKED}/app_1.tar-")

        # attach --force: the unit points at the new tree; the running service keeps the old
        # one, unchanged, until it is restarted
        write_tar(image, "2")
        box.run([portable, "attach", "--force", "--now", str(image)])
        second = show(box, "RootDirectory")
        assert second.startswith(f"{UNPACKED}/app_1.tar-") and second != first
        assert running_version(box) == "1"
        assert box.run(["cat", f"{first}/srv/version"]).stdout == "1"
        box.systemctl(["restart", "app.service"])
        assert running_version(box) == "2"

        # reattach --now restarts it from the new tree at once
        write_tar(image, "3")
        box.run([portable, "reattach", "--now", str(image)])
        third = show(box, "RootDirectory")
        assert third not in (first, second)
        assert show(box, "ActiveState") == "active"
        assert running_version(box) == "3"
        # The old trees stay until the image is detached
        assert box.run(["cat", f"{second}/srv/version"]).stdout == "2"
        assert len(cache_dirs(box)) == 3
        journal = box.run(["journalctl", "--no-pager", "-o", "cat", "-u", "app.service"]).stdout
        assert "running-version-3" in journal

        box.run([portable, "detach", "--now", str(image)])
        assert cache_dirs(box) == []
    finally:
        box.run([portable, "detach", "--now", "--force", str(image)], check=False)
        box.run(["rm", "-rf", UNPACKED], check=False)
    assert box.run([portable, "list"]).stdout == "No images.\n"
