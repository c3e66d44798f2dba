"""Many attach and detach commands at once, on the same and on different images, in the box.

8 workers x 4 rounds of ``portable attach``/``detach`` (the real CLI, separate processes) on 4
images picked at random (seeded), then: every command either succeeded or failed with the one
error a race can legitimately cause ("not attached"); each image's final state is the effect
of a command that could have been the last one (no successful command on it started after
that one ended); no temporary ``.#portable-*`` file, no partial unit (a unit without its
drop-ins or drop-ins without their unit), every attached file exactly what its image holds;
PID 1 reloads cleanly and has every attached unit loaded. A last sequential command per image
then pins the state down exactly.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.checks import loops_below, mount_points

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

pytestmark = pytest.mark.box

WORKERS = 8
ROUNDS = 4
IMAGES = 4
ATTACHED = "/run/systemd/system.attached"
PORTABLES = "/run/portables"
NOT_ATTACHED = "Image not attached?"


@dataclass(frozen=True)
class Op:
    verb: str  # "attach" or "detach"
    image: int
    start: float
    end: float
    rc: int
    stderr: str


@pytest.fixture
def images(box: Box, box_tmp: Path) -> Iterator[list[Path]]:
    imgs = [
        make_directory_image(
            box_tmp / f"con{i}_1",
            units={
                f"con{i}.service": service_unit(description=f"con{i}"),
                f"con{i}-b.service": service_unit(description=f"con{i}-b"),
                f"con{i}.socket": f"[Socket]\nListenStream=/run/con{i}.sock\n",
            },
            busybox=False,
        )
        for i in range(IMAGES)
    ]
    yield imgs
    box.run(f"rm -rf {ATTACHED} {PORTABLES}; systemctl daemon-reload", check=False)


def run_op(box: Box, images: list[Path], verb: str, i: int) -> Op:
    start = time.monotonic()
    proc = box.portable([verb, "--runtime", "-q", str(images[i])], check=False, timeout=120)
    return Op(verb, i, start, time.monotonic(), proc.returncode, proc.stderr)


def check_op(op: Op) -> None:
    assert "Traceback" not in op.stderr, op
    if op.rc == 0:
        return
    errors = [ln for ln in op.stderr.splitlines() if ln.startswith("portable: error:")]
    # The only failure a race may cause: detaching what another worker just detached.
    assert op.verb == "detach" and len(errors) == 1 and NOT_ATTACHED in errors[0], op


def possible_final_states(ops: list[Op], initial: bool) -> set[bool]:
    """Attached (True) or not: the effect of every successful command that may have been the
    last to take the lock, i.e. that no other successful command started after it ended."""
    done = [op for op in ops if op.rc == 0]
    if not done:
        return {initial}
    return {
        op.verb == "attach"
        for op in done
        if not any(other.start > op.end for other in done if other is not op)
    }


def check_host(box: Box, images: list[Path], expected: dict[int, bool | set[bool]]) -> None:
    """No temporaries, no partial units, attached files as in their images, states right."""
    for top in (ATTACHED, PORTABLES):
        for dirpath, dirnames, filenames in os.walk(box.path(top)):
            for name in dirnames + filenames:
                assert not name.startswith(".#"), f"temporary left: {dirpath}/{name}"
    attached = box.path(ATTACHED)
    entries = set(os.listdir(attached)) if attached.exists() else set()
    units = {e for e in entries if not e.endswith(".d")}
    dropins = {e[:-2] for e in entries if e.endswith(".d")}
    assert units == dropins, f"partial units: {units ^ dropins}"
    for i, img in enumerate(images):
        mine = {f"con{i}.service", f"con{i}-b.service", f"con{i}.socket"}
        state = box.portable(["is-attached", str(img)]).stdout.strip()
        want = expected[i]
        allowed = want if isinstance(want, set) else {want}
        is_attached = state == "attached-runtime"
        assert state in ("attached-runtime", "detached"), (i, state)
        assert is_attached in allowed, (i, state, allowed)
        assert (mine <= units) if is_attached else not (mine & units), (i, units)
        link = box.path(f"{PORTABLES}/{img.name}")
        assert os.path.islink(link) == is_attached, (i, "image link")
        if not is_attached:
            continue
        for name in mine:
            data = (attached / name).read_bytes()
            assert data == (img / "usr/lib/systemd/system" / name).read_bytes(), name
            marker = (attached / f"{name}.d/20-portable.conf").read_text().split("\n", 1)[0]
            assert marker == f"# Drop-in created for image '{img}', do not edit.", name
            files = sorted(os.listdir(attached / f"{name}.d"))
            want_files = ["20-portable.conf"]
            if name.endswith(".service"):
                want_files.insert(0, "10-profile.conf")
            assert files == want_files, (name, files)
            for f in files:
                mode = os.lstat(attached / f"{name}.d" / f).st_mode & 0o777
                assert mode in (0o644, 0o777), (name, f, oct(mode))  # 0777: a symlink
    assert box.systemctl(["daemon-reload"]).returncode == 0
    if units:
        show = box.systemctl(["show", "-p", "Id", "-p", "LoadState", *sorted(units)]).stdout
        loaded = [b for b in show.split("\n\n") if "LoadState=loaded" in b]
        assert len(loaded) == len(units), show


def test_parallel_attach_and_detach(box: Box, images: list[Path]) -> None:
    rng = random.Random(7)
    plan = [
        [(rng.choice(["attach", "attach", "detach"]), rng.randrange(IMAGES)) for _ in range(ROUNDS)]
        for _ in range(WORKERS)
    ]

    def worker(ops: list[tuple[str, int]]) -> list[Op]:
        return [run_op(box, images, verb, i) for verb, i in ops]

    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        results = [op for ops in pool.map(worker, plan) for op in ops]
    assert len(results) == WORKERS * ROUNDS
    for op in results:
        check_op(op)
    expected: dict[int, bool | set[bool]] = {
        i: possible_final_states([op for op in results if op.image == i], initial=False)
        for i in range(IMAGES)
    }
    check_host(box, images, expected)
    assert any(op.rc == 0 and op.verb == "detach" for op in results)
    assert any(op.rc == 0 and op.verb == "attach" for op in results)
    overlapping = sum(
        1
        for a in results
        for b in results
        if a is not b and a.image == b.image and a.start < b.end and b.start < a.end
    )
    assert overlapping > 0, "no two commands on one image ran at the same time"

    # One more command per image, one after the other: now the state is exactly its effect.
    final = {i: rng.choice(["attach", "detach"]) for i in range(IMAGES)}
    for i, verb in final.items():
        check_op(run_op(box, images, verb, i))
    check_host(box, images, {i: verb == "attach" for i, verb in final.items()})


def test_parallel_attach_of_one_image_writes_once(box: Box, images: list[Path]) -> None:
    """8 attaches of the same image at once: one writes, the others find it attached; then 8
    detaches at once: one removes, the others find nothing."""
    img = str(images[0])
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        attaches = list(
            pool.map(
                lambda _: box.portable(["attach", "--runtime", img], check=False), range(WORKERS)
            )
        )
    assert all(r.returncode == 0 for r in attaches), [r.stderr for r in attaches]
    assert sum("Written" in r.stderr for r in attaches) == 1
    check_host(box, images, {0: True, 1: False, 2: False, 3: False})
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        detaches = list(
            pool.map(
                lambda _: box.portable(["detach", "--runtime", img], check=False), range(WORKERS)
            )
        )
    assert sum(r.returncode == 0 for r in detaches) == 1
    assert all(r.returncode == 0 or NOT_ATTACHED in r.stderr for r in detaches)
    check_host(box, images, dict.fromkeys(range(IMAGES), False))
    assert not box.path(ATTACHED).exists()


def test_parallel_attach_and_detach_of_raw_images(box: Box, box_tmp: Path) -> None:
    """The same with squashfs images, which every attach mounts (loop device, detached mount)
    to read: states as above, and no loop device or mount left once all is done."""
    raws = []
    for i in range(2):
        tree = make_directory_image(
            box_tmp / f"conraw{i}-tree",
            units={f"conraw{i}.service": service_unit(description=f"conraw{i}")},
            busybox=False,
        )
        raws.append(make_squashfs_image(box_tmp / f"conraw{i}_1.raw", tree))

    def loops() -> set[str]:
        return loops_below(tuple(str(r) for r in raws))

    def mounts() -> set[str]:
        return mount_points(f"/proc/{box.leader_pid}/mountinfo")

    mounts_before = mounts()
    rng = random.Random(11)
    plan = [
        [(rng.choice(["attach", "attach", "detach"]), rng.randrange(2)) for _ in range(ROUNDS)]
        for _ in range(WORKERS)
    ]
    try:
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            results = [
                op
                for ops in pool.map(lambda ops: [run_op(box, raws, v, i) for v, i in ops], plan)
                for op in ops
            ]
        for op in results:
            check_op(op)
        for i, raw in enumerate(raws):
            allowed = possible_final_states([op for op in results if op.image == i], False)
            state = box.portable(["is-attached", str(raw)]).stdout.strip()
            assert state in ("attached-runtime", "detached"), (i, state)
            assert (state == "attached-runtime") in allowed, (i, state, allowed)
            unit = box.path(f"{ATTACHED}/conraw{i}.service")
            assert unit.exists() == (state == "attached-runtime"), i
            if unit.exists():
                dropin = box.path(f"{ATTACHED}/conraw{i}.service.d/20-portable.conf").read_text()
                assert f"RootImage={raw}\n" in dropin
        for dirpath, dirnames, filenames in os.walk(box.path(ATTACHED)):
            assert not [n for n in dirnames + filenames if n.startswith(".#")], dirpath
        deadline = time.monotonic() + 5  # the kernel releases loop devices asynchronously
        while loops() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loops() == set()
        assert mounts() == mounts_before
    finally:
        for raw in raws:
            box.portable(["detach", "--runtime", "-q", str(raw)], check=False)
    assert box.systemctl(["daemon-reload"]).returncode == 0
