"""Kill attach --now, detach --now and reattach --now at every crash point, in the box.

``crash=N`` SIGKILLs the process at the N-th step of its transaction (see
tests/helpers/crash.py). For every N until the command runs through: the re-run of the same
command succeeds (a detach may find nothing left to do), the services are in the state the
command promises, and a final detach leaves the box's host directories exactly as before,
with no temporary file, no unit running and a clean daemon-reload. (test_attach.py does the
same on --root without a service manager.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.checks import loops_below, mount_points, snapshot
from helpers.in_box import active, state
from helpers.runners import BoxCli

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image

pytestmark = pytest.mark.box

LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"
HOST_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/run/portables", "/etc/portables")
ATTACHED = "/run/systemd/system.attached"
MAX_STEPS = 60


def unit(extra: str = "") -> str:
    return (
        f"[Unit]\nDescription=crash test\n\n[Service]\nExecStart={LOOP}\n{extra}\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    yield
    box.run(
        f"for u in $(ls {ATTACHED} 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        f"rm -rf {ATTACHED} /run/portables; systemctl daemon-reload",
        check=False,
    )


def host_state(box: Box) -> dict[str, tuple[str, int, bytes]]:
    return snapshot(box.path("/"), (*HOST_DIRS, ATTACHED))


_CLI: dict[int, BoxCli] = {}


@pytest.fixture(scope="module", autouse=True)
def cli(box: Box) -> Iterator[BoxCli]:
    with BoxCli(box) as c:
        _CLI[id(box)] = c
        yield c
        del _CLI[id(box)]


def portable(box: Box, *args: str, crash: int | None = None) -> tuple[int, str]:
    return _CLI[id(box)](*args, crash_at=crash)


def sweep(
    box: Box,
    command: list[str],
    *,
    setup: list[str] | None,
    after_rerun: Callable[[int], None],
    final: Path | None,
    after_final: Callable[[int], None] = lambda step: None,
) -> int:
    """Crash ``command`` at every step; returns how many steps it has. ``after_final``: a check
    once the final detach has run (services stopped)."""
    pristine = host_state(box)
    for step in range(1, MAX_STEPS):
        if setup is not None:
            rc, err = portable(box, *setup)
            assert rc == 0, (step, err)
        rc, err = portable(box, *command, crash=step)
        if rc == 0:
            if final is not None:
                assert portable(box, "detach", "--runtime", "--now", "-q", str(final))[0] == 0
            after_final(step)
            assert host_state(box) == pristine
            return step - 1
        assert rc in (137, -9), (step, rc, err)  # SIGKILLed
        rc, err = portable(box, *command)
        gone = command[0] == "detach" and "Image not attached?" in err
        assert rc == 0 or gone, (step, err)
        after_rerun(step)
        if final is not None:  # (its reload makes PID 1 forget the removed files)
            rc, err = portable(box, "detach", "--runtime", "--now", "-q", str(final))
            assert rc == 0, (step, err)
        after_final(step)
        now = host_state(box)
        assert now == pristine, (step, sorted(set(now) ^ set(pristine)))
    pytest.fail(f"{command} never ran through in {MAX_STEPS} steps")


def test_attach_now_killed_at_every_step(box: Box, box_tmp: Path, clean: None) -> None:
    img = make_directory_image(box_tmp / "crash_1", units={"crash.service": unit()})

    def running(step: int) -> None:
        assert state(box, str(img)) == "running-runtime", step

    steps = sweep(
        box,
        ["attach", "--runtime", "--now", "-q", str(img)],
        setup=None,
        after_rerun=running,
        final=img,
    )
    assert steps >= 6
    assert active(box, "crash.service") != "active"


def _released(box: Box, backing: Path) -> tuple[set[str], set[str]]:
    """Loop devices backed by ``backing`` and the box's mount points, after a bounded wait:
    the kernel releases a killed process's loop device asynchronously."""
    deadline = time.monotonic() + 5
    while loops_below((str(backing),)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return loops_below((str(backing),)), mount_points(f"/proc/{box.leader_pid}/mountinfo")


def test_attach_raw_now_killed_at_every_step(box: Box, box_tmp: Path, clean: None) -> None:
    """A squashfs image: attach mounts it (loop device, detached mount) to read its units; a
    kill at any step leaves neither behind once the services are stopped."""
    tree = make_directory_image(box_tmp / "crashraw-tree", units={"crashraw.service": unit()})
    img = make_squashfs_image(box_tmp / "crashraw_1.raw", tree)
    _, mounts_before = _released(box, img)

    def running(step: int) -> None:
        assert state(box, str(img)) == "running-runtime", step
        dropin = box.path(f"{ATTACHED}/crashraw.service.d/20-portable.conf").read_text()
        assert f"RootImage={img}\n" in dropin, step

    def released(step: int) -> None:
        loops, mounts = _released(box, img)
        assert loops == set(), (step, loops)
        assert mounts == mounts_before, (step, set(mounts) ^ set(mounts_before))

    steps = sweep(
        box,
        ["attach", "--runtime", "--now", "-q", str(img)],
        setup=None,
        after_rerun=running,
        final=img,
        after_final=released,
    )
    assert steps >= 6


def test_detach_now_killed_at_every_step(box: Box, box_tmp: Path, clean: None) -> None:
    img = make_directory_image(box_tmp / "crash_1", units={"crash.service": unit()})

    def stopped(step: int) -> None:
        assert state(box, str(img)) == "detached", step
        assert active(box, "crash.service") != "active", step

    steps = sweep(
        box,
        ["detach", "--runtime", "--now", "-q", str(img)],
        setup=["attach", "--runtime", "--now", "-q", str(img)],
        after_rerun=stopped,
        final=None,
    )
    assert steps >= 4


def _versions(box_tmp: Path) -> tuple[Path, Path]:
    v1 = make_directory_image(
        box_tmp / "app_1", units={"app.service": unit(), "app-old.service": unit()}
    )
    v2 = make_directory_image(
        box_tmp / "app_2",
        units={"app.service": unit("Environment=V=2"), "app-new.service": unit()},
    )
    return v1, v2


def test_reattach_now_killed_at_every_step(box: Box, box_tmp: Path, clean: None) -> None:
    v1, v2 = _versions(box_tmp)

    def replaced(step: int) -> None:
        assert state(box, str(v2)) == "running-runtime", step
        dropin = box.path(f"{ATTACHED}/app.service.d/20-portable.conf").read_text()
        assert f"RootDirectory={v2}\n" in dropin, step
        assert not box.path(f"{ATTACHED}/app-old.service").exists(), step
        show = box.systemctl(
            ["show", "-p", "ActiveState", "-p", "Environment", "app.service", "app-new.service"]
        ).stdout
        assert show.count("ActiveState=active") == 2, (step, show)
        assert "V=2" in show, step  # app.service restarted from the new unit file
        # Also after a kill in the commit step, when the old files were gone already
        # (test_reattach_killed_in_commit_stops_removed_units).
        assert active(box, "app-old.service") != "active", step

    steps = sweep(
        box,
        ["reattach", "--runtime", "--now", "-q", str(v2)],
        setup=["attach", "--runtime", "--now", "-q", str(v1)],
        after_rerun=replaced,
        final=v2,
    )
    assert steps >= 15


def test_reattach_killed_in_commit_stops_removed_units(
    box: Box, box_tmp: Path, clean: None
) -> None:
    v1, v2 = _versions(box_tmp)
    attach = ["attach", "--runtime", "--now", "-q", str(v1)]
    reattach = ["reattach", "--runtime", "--now", "-q", str(v2)]

    def killed_at(step: int) -> bool:
        assert portable(box, *attach)[0] == 0
        killed = portable(box, *reattach, crash=step)[0] != 0
        if killed:
            assert portable(box, *reattach)[0] == 0
        assert portable(box, "detach", "--runtime", "--now", "-q", str(v2))[0] == 0
        box.systemctl(["stop", "app-old.service"], check=False)
        return killed

    lo, hi = 1, MAX_STEPS  # the last crash point: killed at lo, not at hi
    assert killed_at(lo) and not killed_at(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if killed_at(mid) else (lo, mid)
    assert portable(box, *attach)[0] == 0
    assert portable(box, *reattach, crash=lo)[0] in (137, -9)
    assert portable(box, *reattach)[0] == 0
    assert active(box, "app-old.service") != "active"
