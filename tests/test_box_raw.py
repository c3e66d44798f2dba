"""Raw images (squashfs, erofs, ext4, GPT) against systemd's own portablectl in the box.

inspect must print what portablectl prints; attach and detach with ``--now`` under every
profile must leave the same files and the same running services (the harness of
test_box_attach_diff.py); reattach must upgrade in place; bad images must fail with one line
and leave no loop device or mount in the box. GPT images need the box's ``/dev/loopNpM``
links (see :class:`portable.testing.box.Box`) for portablectl; we do not (offset loops).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import attach_diff
from helpers.attach_diff import (  # the attach/detach harness
    ATTACHED_DIRS,
    PORTABLES_DIRS,
    REF,
    Harness,
    Run,
    _without_template_jobs,
    assert_same_tree,
    canonical_changes,
    invoke,
    without_new_portables_dirs,
)

from portable.testing.box import Box
from portable.testing.images import (
    GptPart,
    make_directory_image,
    make_erofs_image,
    make_ext4_image,
    make_gpt_image,
    make_gpt_image_with_repart,
    make_squashfs_image,
    service_unit,
)

pytestmark = pytest.mark.box

OURS = "portable"
known_profiles = attach_diff.known_profiles  # the fixture, shared
LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"
PREFIXES = "PORTABLE_PREFIXES=app0 minimal minimal-app0\n"


@pytest.fixture(scope="module")
def raw(box: Box) -> Path:
    """TEST-29's minimal_0/minimal_1 as squashfs, plus the same tree as other kinds of image."""
    d = box.mkdtemp(prefix="raw-")
    host_os = Path("/usr/lib/os-release").read_text()
    for n, extra in ((0, "foo"), (1, "bar")):
        tree = make_directory_image(
            d / f"tree_{n}",
            os_release=host_os + f"MARKER={n + 1}\n" + PREFIXES,
            units={
                "minimal-app0.service": service_unit(LOOP),
                f"minimal-app0-{extra}.service": service_unit(LOOP),
            },
        )
        (tree / "opt").mkdir(exist_ok=True)
        (tree / "var/lib/app1").mkdir(parents=True, exist_ok=True)
        make_squashfs_image(d / f"minimal_{n}.raw", tree)
    tree = d / "tree_0"
    make_erofs_image(d / "minimal_2.raw", tree)
    make_ext4_image(d / "minimal_3.raw", tree)
    make_gpt_image_with_repart(d / "minimal_4.raw", tree, fs="squashfs")
    make_gpt_image_with_repart(d / "minimal_5.raw", tree, fs="ext4")
    # By hand: a root partition and a root-verity partition (noted by us, unused by both).
    make_gpt_image(
        d / "minimal_6.raw",
        [
            GptPart(type="root-x86-64", content=d / "minimal_0.raw"),
            GptPart(type="root-x86-64-verity"),
        ],
    )
    # A squashfs file not called *.raw: systemd refuses it, we take it.
    os.link(d / "minimal_0.raw", d / "minimal_7.squashfs")
    return d


def loops_and_mounts(box: Box) -> tuple[str, str]:
    # Loop devices are the host's: only those of this box's files (other test sessions may run
    # boxes meanwhile, and the kernel frees an autoclear loop a moment after its last user).
    loops = box.run(["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"]).stdout
    mine = f" {box.scratch_dir}/"
    loops = "".join(line + "\n" for line in loops.splitlines() if mine in line)
    mounts = box.run(["sh", "-c", "cut -d' ' -f5 /proc/self/mountinfo | sort"]).stdout
    return loops, mounts


@pytest.fixture
def nothing_left(box: Box) -> Iterator[None]:
    before = loops_and_mounts(box)
    yield
    assert loops_and_mounts(box) == before


# --- inspect ------------------------------------------------------------------------------------

INSPECT = [
    ("minimal_0.raw", []),
    ("minimal_0.raw", ["minimal-app0"]),
    ("minimal_1.raw", ["-"]),
    ("minimal_2.raw", []),  # erofs
    ("minimal_3.raw", []),  # ext4
    ("minimal_4.raw", []),  # GPT (systemd-repart), squashfs root
    ("minimal_5.raw", ["minimal-app0-foo.service"]),  # GPT, ext4 root
]


@pytest.mark.parametrize("cat", [False, True], ids=["plain", "cat"])
@pytest.mark.parametrize(("image", "prefixes"), INSPECT, ids=lambda x: str(x))
def test_inspect_same_as_portablectl(box, raw, nothing_left, image, prefixes, cat):
    args = ["inspect", *(["--cat"] if cat else []), str(raw / image), *prefixes]
    theirs, ours = invoke(box, REF, args), invoke(box, OURS, args)
    assert theirs.rc == 0, theirs
    assert ours == theirs


@pytest.fixture
def in_search_path(box: Box, raw: Path) -> Iterator[None]:
    """minimal_4.raw linked into /var/lib/portables."""
    box.run(["mkdir", "-p", "/var/lib/portables"])
    box.run(["ln", "-sf", str(raw / "minimal_4.raw"), "/var/lib/portables/minimal_4.raw"])
    yield
    box.run(["rm", "-f", "/var/lib/portables/minimal_4.raw"])


def test_inspect_by_name_in_search_path(box, in_search_path, nothing_left):
    theirs, ours = (
        invoke(box, REF, ["inspect", "minimal_4"]),
        invoke(box, OURS, ["inspect", "minimal_4"]),
    )
    assert theirs.rc == 0 and ours == theirs
    assert "\t/var/lib/portables/minimal_4.raw\n" in ours.stdout


def test_list_image_in_search_path(box, in_search_path, nothing_left):
    theirs, ours = invoke(box, REF, ["list"]), invoke(box, OURS, ["list"])
    assert " raw " in theirs.stdout
    assert ours == theirs


def test_inspect_verity_partition_noted(box, raw, nothing_left):
    args = ["inspect", str(raw / "minimal_6.raw")]
    theirs, ours = invoke(box, REF, args), invoke(box, OURS, args)
    assert theirs.rc == 0 and ours.stdout == theirs.stdout
    note = "(Image has root-x86-64-verity partition(s): not used to read it here"
    assert ours.stderr.startswith(theirs.stderr) and note in ours.stderr


def test_squashfs_without_raw_suffix_accepted(box, raw, nothing_left):
    args = ["inspect", str(raw / "minimal_7.squashfs"), "minimal-app0"]
    theirs, ours = invoke(box, REF, args), invoke(box, OURS, args)
    assert theirs.rc == 1  # systemd: "Wrong medium type" or "not recognized"
    assert ours.rc == 0 and "\tminimal-app0.service\n" in ours.stdout


# --- attach / detach with --now under every profile -------------------------------------------


class RawHarness(Harness):
    """The attach/detach harness, for images that are files in ``raw``."""

    def image(self, key: str) -> Path:
        return self.images / key

    def cleanup(self, keys: object = ()) -> None:
        box = self.box
        # Detach every image only where something of theirs is left (most calls find nothing:
        # 22 portablectl runs each time were a fifth of this file's time).
        dirty = any(
            os.path.basename(p).startswith(("minimal", "app")) or p in ATTACHED_DIRS
            for p in self.snapshot()
        )
        for image in sorted(self.images.glob("*.raw")) if dirty else ():
            for runtime in ([], ["--runtime"]):
                box.portablectl(
                    ["detach", "-q", "--force", "--now", "--enable", *runtime, str(image)],
                    check=False,
                )
        box.run(
            ["sh", "-c", 'rm -rf "$@"; true', "sh", *ATTACHED_DIRS, *PORTABLES_DIRS], check=False
        )
        box.systemctl(["daemon-reload"])
        box.systemctl(["stop", "minimal*", "app*"], check=False)
        box.systemctl(["reset-failed"], check=False)
        self.reset()


@pytest.fixture
def h(box: Box, raw: Path, known_profiles: dict[str, str]) -> Iterator[RawHarness]:
    harness = RawHarness(box, raw, known_profiles)
    yield harness
    harness.cleanup()


def normalized(h: Harness, run: Run) -> tuple[int, list[str], list[str]]:
    """Exit code and canonical output lines; the image links' order (hash order in systemd's
    detach) made stable."""

    def lines(text: str) -> list[str]:
        out = canonical_changes(h, _without_template_jobs(text)).lines
        links = sorted(x for x in out if "/run/portables/" in x or "/etc/portables/" in x)
        it = iter(links)
        return [next(it) if ("/run/portables/" in x or "/etc/portables/" in x) else x for x in out]

    return run.rc, lines(run.stdout), lines(run.stderr)


def run_scenario(h: RawHarness, tool: str, attach: list[str], detach: list[str], show: list[str]):
    h.cleanup()
    before = h.snapshot()
    a = invoke(h.box, tool, attach)
    h.wait_idle()
    attached = h.snapshot()
    props = h.show(show, ["ActiveState", "SubState", "RootImage", "ExtensionImages", "DynamicUser"])
    users = h.main_users(h.show(show, ["ActiveState"]))
    d = invoke(h.box, tool, detach)
    h.wait_idle()
    after = h.snapshot()
    return before, a, attached, props, users, d, after


PROFILE_CASES = [
    (image, profile)
    for image in ("minimal_0.raw", "minimal_4.raw")
    for profile in (None, "strict", "trusted", "nonetwork")
]


@pytest.mark.parametrize(("image", "profile"), PROFILE_CASES, ids=lambda x: str(x))
def test_attach_now_same_as_portablectl(nothing_left, h, image, profile):
    path = str(h.image(image))
    prof = [f"--profile={profile}"] if profile else []
    attach = ["attach", *prof, "--runtime", "--now", path, "minimal-app0"]
    detach = ["detach", "--runtime", "--now", path, "minimal-app0"]
    show = ["minimal-app0.service", "minimal-app0-foo.service"]
    ref = run_scenario(h, REF, attach, detach, show)
    got = run_scenario(h, OURS, attach, detach, show)
    assert ref[1].rc == 0 and ref[5].rc == 0, (ref[1], ref[5])
    assert {p["ActiveState"] for p in ref[3].values()} == {"active"}
    assert_same_tree(ref[0], got[0], "before")
    assert normalized(h, got[1]) == normalized(h, ref[1]), "attach output"
    assert_same_tree(ref[2], got[2], "after attach")
    assert got[3] == ref[3], "systemctl show"
    assert got[4] == ref[4], "users"
    assert normalized(h, got[5]) == normalized(h, ref[5]), "detach output"
    assert_same_tree(ref[6], got[6], "after detach")
    assert_same_tree(got[0], without_new_portables_dirs(got[0], got[6]), "restored")


def test_attach_copy_symlink_still_copies_from_raw(nothing_left, h):
    path = str(h.image("minimal_0.raw"))
    attach = ["attach", "--copy=symlink", "--runtime", path, "minimal-app0"]
    detach = ["detach", "--runtime", path, "minimal-app0"]
    ref = run_scenario(h, REF, attach, detach, ["minimal-app0.service"])
    got = run_scenario(h, OURS, attach, detach, ["minimal-app0.service"])
    assert normalized(h, got[1]) == normalized(h, ref[1])
    assert_same_tree(ref[2], got[2], "after attach")
    unit = got[2]["/run/systemd/system.attached/minimal-app0.service"]
    assert unit.kind == "file"


@pytest.mark.parametrize("tool", [REF, OURS])
def test_reattach_upgrades_in_place(nothing_left, h, tool):
    """TEST-29 scenarios 3-5 with raw images: attach minimal_0, reattach minimal_1, detach."""
    box = h.box
    r0, r1 = str(h.image("minimal_0.raw")), str(h.image("minimal_1.raw"))
    h.cleanup()
    r = invoke(box, tool, ["attach", "--now", "--runtime", r0, "minimal-app0"])
    assert r.rc == 0, r
    assert invoke(box, tool, ["is-attached", r0]).stdout == "running-runtime\n"
    active = box.systemctl(
        ["is-active", "minimal-app0", "minimal-app0-foo", "minimal-app0-bar"], check=False
    )
    assert active.stdout.split() == ["active", "active", "inactive"]
    r = invoke(box, tool, ["reattach", "--now", "--runtime", r1, "minimal-app0"])
    assert r.rc == 0, r
    h.wait_idle()
    active = box.systemctl(
        ["is-active", "minimal-app0", "minimal-app0-foo", "minimal-app0-bar"], check=False
    )
    assert active.stdout.split() == ["active", "inactive", "active"]
    assert "minimal_1" in invoke(box, tool, ["list"]).stdout
    r = invoke(box, tool, ["detach", "--now", "--runtime", r1, "minimal-app0"])
    assert r.rc == 0, r
    assert invoke(box, tool, ["list"]).stdout == "No images.\n"


# --- bad images ------------------------------------------------------------------------------


def _bad_images(d: Path, raw: Path) -> dict[str, str]:
    """name -> what our one-line error must say."""
    (d / "garbage.raw").write_bytes(os.urandom(1 << 20))
    (d / "empty.raw").write_bytes(b"")
    data = (raw / "minimal_0.raw").read_bytes()
    (d / "truncated.raw").write_bytes(data[: len(data) // 3])
    make_gpt_image(d / "noroot.raw", [GptPart(type="swap"), GptPart(type="esp")])
    os.mkfifo(d / "fifo.raw")
    return {
        "garbage.raw": "not a recognised image",
        "empty.raw": "is an empty file",
        "truncated.raw": "is truncated: its squashfs file system needs",
        "noroot.raw": "No suitable root partition found in image",
        "fifo.raw": "is a FIFO",
    }


@pytest.mark.parametrize("verb", ["inspect", "attach"])
def test_bad_images_fail_cleanly(box, raw, box_tmp, nothing_left, verb):
    cases = _bad_images(box_tmp, raw)
    before = box.run(["sh", "-c", "ls -R /run/systemd /etc/systemd /run/portables 2>&1; true"])
    for name, message in cases.items():
        args = [verb, *(["--runtime"] if verb == "attach" else []), str(box_tmp / name)]
        theirs = invoke(box, REF, args)
        ours = invoke(box, OURS, [*args, "minimal-app0"])
        assert theirs.rc == 1, (name, theirs)
        assert ours.rc == 1 and ours.stdout == "", (name, ours)
        assert ours.stderr.count("\n") == 1 and message in ours.stderr, (name, ours)
    after = box.run(["sh", "-c", "ls -R /run/systemd /etc/systemd /run/portables 2>&1; true"])
    assert after.stdout == before.stdout
