"""A subset of the hostile-input corpus (tests/helpers/corpus.py) against a real systemd in the box.

Same checks as test_hostile.py, on the box's host directories (/etc/systemd, /run/systemd,
/etc/portables, /run/portables) and with PID 1 reloading after each attach and detach; plus
what only a running systemd shows: image drop-ins never reach PID 1, and a host unit of the
same name stays the one systemd loads.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.checks import (
    check_attached,
    check_result,
    loops_below,
    mount_points,
    netns,
    snapshot,
)
from helpers.corpus import (
    BOX_CASES,
    CASES,
    SECRET_PATH,
    SECRET_UNIT,
    Case,
    Place,
    case_param,
    plant_secrets,
)

from portable.testing.box import Box

pytestmark = pytest.mark.box

TIMEOUT = 60
HOST_DIRS = ("/etc/systemd", "/run/systemd", "/etc/portables", "/run/portables")
# What changes in /run/systemd while a system simply runs (journal streams, unit runtime state,
# reloads): not ours to compare.
VOLATILE = (
    "/run/systemd/journal",
    "/run/systemd/units",
    "/run/systemd/propagate",
    "/run/systemd/transient",
    "/run/systemd/generator",
    "/run/systemd/generator.early",
    "/run/systemd/generator.late",
    "/run/systemd/systemd-units-load",
    "/run/systemd/netif",
    "/run/systemd/inhibit",
    "/run/systemd/sessions",
    "/run/systemd/users",
    "/run/systemd/seats",
    "/run/systemd/incoming",
    "/run/systemd/ask-password",
    "/run/systemd/shutdown",
    "/run/systemd/notify",
    "/run/systemd/private",
    "/run/systemd/io.system.ManagedOOM",
    "/run/systemd/unit-root",
)
PLANTED = ("/etc/systemd/system/foo.service", "/run/systemd/system/foo.service", "/run/portables")


def host_state(box: Box) -> dict[str, tuple[str, int, bytes]]:
    return snapshot(box.path("/"), HOST_DIRS, skip=VOLATILE)


@pytest.fixture(scope="module")
def secrets_planted(box: Box) -> Iterator[None]:
    plant_secrets(box.path("/"))
    box.systemctl(["daemon-reload"])
    yield
    for path in (SECRET_PATH, SECRET_UNIT):
        box.path(path).unlink(missing_ok=True)
    box.systemctl(["daemon-reload"])


@pytest.fixture
def place(box: Box, box_tmp: Path, secrets_planted: None) -> Iterator[Place]:
    yield Place(images=box_tmp, images_arg=str(box_tmp), host=box.path("/"), in_box=True)
    # Undo what a case planted on the host, and whatever a failed case left attached.
    leftovers = [*PLANTED, "/run/systemd/system.attached", "/etc/systemd/system.attached"]
    if not any(box.path(p).exists() for p in leftovers):
        return
    box.run(
        "for d in /run/systemd/system.attached /etc/systemd/system.attached; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf " + " ".join(PLANTED) + "; systemctl daemon-reload",
        check=False,
    )


def run(box: Box, *args: str) -> object:
    return box.portable(list(args), check=False, timeout=TIMEOUT)


def box_only_checks(box: Box, case: Case) -> None:
    """What PID 1 itself says about the attached units."""
    if case.id == "image-drop-ins-weakening-the-profile":
        show = box.systemctl(
            ["show", "foo.service", "-p", "DropInPaths", "-p", "PrivateNetwork", "-p", "User"]
        ).stdout
        props = dict(line.split("=", 1) for line in show.splitlines())
        assert props["DropInPaths"].split() == [
            "/run/systemd/system.attached/foo.service.d/10-profile.conf",
            "/run/systemd/system.attached/foo.service.d/20-portable.conf",
        ]
        assert props["PrivateNetwork"] == "yes" and props["User"] != "root"
    if case.id == "host-unit-same-name-force":
        path = box.systemctl(["show", "foo.service", "-P", "FragmentPath"]).stdout.strip()
        assert path == "/etc/systemd/system/foo.service"  # the host's file, untouched
        assert "the host's own foo" in box.path(path).read_text()


@pytest.mark.parametrize("case", [case_param(c) for c in CASES if c.id in BOX_CASES])
def test_hostile_input_in_the_box(box: Box, place: Place, case: Case) -> None:
    built = case.build(place)
    leader_mounts = f"/proc/{box.leader_pid}/mountinfo"
    watched = (str(place.images.parent),)
    before = host_state(box)
    loops, mounts, namespaces = loops_below(watched), mount_points(leader_mounts), box_netns(box)

    if case.inspect is not None:
        check_result(run(box, "inspect", "--cat", built.image, *built.prefixes), case.inspect)
        assert host_state(box) == before
    if case.attach is not None:
        args = ["attach", "--runtime", *built.attach_opts, built.image, *built.prefixes]
        check_result(run(box, *args), case.attach)
        if case.attach[0] == "ok":
            check_attached(place.host, case, before, host_state(box))
            box_only_checks(box, case)
            check_result(run(box, "detach", "--runtime", built.image), ("ok", ""))
        assert host_state(box) == before
    if case.detach is not None:
        check_result(run(box, "detach", "--runtime", built.image), case.detach)
        assert host_state(box) == before

    assert box.systemctl(["daemon-reload"]).returncode == 0
    assert loops_below(watched) == loops, "a loop device was left behind"
    assert mount_points(leader_mounts) == mounts, "a mount was left behind in the box"
    assert box_netns(box) == namespaces, "a network namespace was left behind"


def box_netns(box: Box) -> set[str]:
    return netns(box.path("/run"))


def test_secret_files_stay_put(box: Box, secrets_planted: None) -> None:
    """Sanity: the planted secrets exist in the box, so the corpus really points at them."""
    assert box.path(SECRET_PATH).read_text().startswith("hostile-secret-")
    assert shutil.which("losetup") is not None
