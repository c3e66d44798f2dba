"""The hostile-input corpus (tests/helpers/corpus.py) through the real CLI, on an alternate root.

For every case and verb: the expected exit status; on error exactly one line
``portable: error: ...`` and no traceback; completion within a timeout; the host tree (the
root's /etc, /run and /var) unchanged byte for byte, or (after a safe attach) changed only by
added files with fixed modes, none holding the planted secret, and restored by detach; no
secret in the output; no loop device, mount or network namespace left behind.
"""

from __future__ import annotations

import os
import stat
import subprocess
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
from helpers.corpus import CASES, SECRET, Case, Place, case_param, plant_secrets
from helpers.runners import fork_cli, fork_run_bytes

from portable.testing.images import make_directory_image, service_unit

TIMEOUT = 30
HOST_DIRS = ("/etc", "/run", "/var")
ATTACHED = "/run/systemd/system.attached"


@pytest.fixture
def place(tmp_path: Path) -> Place:
    root = tmp_path / "root"
    for d in ("etc/systemd/system", "run/systemd", "run/portables", "etc/portables", "var/lib"):
        (root / d).mkdir(parents=True)
    (root / "srv").mkdir()
    (root / "etc/os-release").write_text("ID=host\n")
    plant_secrets(root)
    outside = tmp_path / "outside" / "secret"
    outside.parent.mkdir()
    outside.write_text(SECRET + "\n")
    return Place(images=root / "srv", images_arg="/srv", host=root, outside=str(outside))


def run(place: Place, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``portable --root HOST ARGS`` in a forked child (the console script's main())."""
    try:
        return fork_run_bytes(
            ["--root", str(place.host), *args],
            {"PORTABLE_SERVICES_NO_PLUGINS": "1"},
            TIMEOUT,
            unset=("PORTABLE_SERVICES_DEBUG",),
            cwd=place.host.parent,  # outside the root
        )
    except TimeoutError:
        pytest.fail(f"portable {' '.join(args)!r} hung for {TIMEOUT}s")


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_hostile_input(place: Place, case: Case) -> None:
    built = case.build(place)
    watched = (str(place.host.parent),)
    before = snapshot(place.host, HOST_DIRS)
    loops, mounts, namespaces = loops_below(watched), mount_points(), netns(Path("/run"))

    if case.inspect is not None:
        check_result(run(place, "inspect", "--cat", built.image, *built.prefixes), case.inspect)
        assert snapshot(place.host, HOST_DIRS) == before
    if case.attach is not None:
        args = ["attach", "--runtime", *built.attach_opts, built.image, *built.prefixes]
        check_result(run(place, *args), case.attach)
        if case.attach[0] == "ok":
            check_attached(place.host, case, before, snapshot(place.host, HOST_DIRS))
            check_result(run(place, "detach", "--runtime", built.image), ("ok", ""))
        assert snapshot(place.host, HOST_DIRS) == before
    if case.detach is not None:
        check_result(run(place, "detach", "--runtime", built.image), case.detach)
        state = run(place, "is-attached", built.image)
        if state.returncode == 0:  # an unknown image is just "detached" (as portablectl)
            assert state.stdout == b"detached\n" and state.stderr == b""
        else:
            check_result(state, case.detach)
        assert snapshot(place.host, HOST_DIRS) == before

    assert loops_below(watched) == loops, "a loop device was left behind"
    new_mounts = {m for m in mount_points() - mounts if m.startswith(str(place.host.parent))}
    assert new_mounts == set(), "a mount was left behind"
    # Namespaces: none below the root, and none of this case's on the real host (others'
    # tests may create theirs there meanwhile).
    assert netns(place.host / "run") == set()
    ours = {
        n for n in netns(Path("/run")) - namespaces if n.startswith(("portable-foo", "portable-x"))
    }
    assert ours == set(), "a network namespace was left behind"


def test_corpus_covers_the_issue() -> None:
    """The categories issue 7 lists are all in the corpus."""
    ids = " ".join(c.id for c in CASES)
    for needle in (
        "unit-symlink-escape-abs",
        "unit-symlink-escape-rel",
        "os-release-symlink-escape-abs",
        "os-release-symlink-escape-rel",
        "symlink-loop",
        "is-fifo",
        "is-chardev",
        "is-blockdev",
        "is-directory",
        "unit-huge",
        "os-release-huge",
        "unit-binary",
        "os-release-binary",
        "unit-names-invalid",
        "image-name-dotdot",
        "image-name-300-chars",
        "raw-truncated-squashfs",
        "raw-garbage-raw",
        "raw-gpt-without-partitions",
        "image-drop-ins-weakening-the-profile",
        "profile-unknown",
        "profile-relative-path",
        "host-unit-same-name",
    ):
        assert needle in ids, needle


# --- fixes the corpus led to, pinned down directly -----------------------------------------


def test_special_files_are_never_opened_for_reading(tmp_path: Path, monkeypatch) -> None:
    """A device is refused from its O_PATH stat alone: opening one can have effects (a
    watchdog arms, a tape rewinds) even if nothing is read."""
    import portable.images.confined as confined

    img = tmp_path / "img"
    (img / "etc").mkdir(parents=True)
    os.mknod(img / "etc/dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(img / "etc/fifo")
    os.symlink("dev", img / "etc/link")
    opened: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path, flags, *args, **kw):
        opened.append((os.fspath(path), flags))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(confined.os, "open", spy)
    with confined.open_root(img) as fd:
        for name, kind in (("dev", "character device"), ("fifo", "FIFO"), ("link", "character")):
            opened.clear()
            with pytest.raises(confined.UnsafePath, match=kind):
                confined.read_file(fd, f"/etc/{name}", max_size=1024)
            readers = [p for p, flags in opened if not flags & os.O_PATH]
            assert readers == [], f"{name} was opened for reading: {readers}"


def test_list_skips_symlink_loops_in_the_search_path(place: Place) -> None:
    d = place.host / "var/lib/portables"
    d.mkdir(parents=True)
    os.symlink("loop", d / "loop")
    os.symlink("/var/lib/portables/b", d / "a")
    os.symlink("/var/lib/portables/a", d / "b")
    os.symlink("../" * 10 + "x" * 300, d / "long")
    for verb in (("list",), ("list", "--json"), ("is-attached", "loop")):
        proc = run(place, *verb)
        assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert run(place, "list").stdout == b"No images.\n"


def _sweep(
    place: Place, args: list[str], setup: list[str] | None, final: str | None
) -> tuple[int, int]:
    """Kill ``args`` at every crash point; after each kill a re-run must succeed and a final
    detach leave the host as it was. Returns the number of crash points, and after how many
    of them a holder directory was left for the re-run to recover."""
    root = ["--root", str(place.host)]
    quiet = {"PORTABLE_SERVICES_NO_PLUGINS": "1"}

    def ok(*argv: str) -> bytes:
        rc, err = fork_cli([*root, *argv], quiet)
        assert rc == 0, (argv, err)
        return err

    pristine = snapshot(place.host, HOST_DIRS)
    step = holders = 0
    while True:
        step += 1
        assert step < 100, "crash points never ran out"
        if setup is not None:
            ok(*setup)
        rc, err = fork_cli([*root, *args], quiet, crash_at=step)
        if rc == 0:
            if final is not None:
                ok("detach", "--runtime", final)
            assert snapshot(place.host, HOST_DIRS) == pristine
            return step - 1, holders
        assert rc == -9, err
        holders += any(".#portable-hold-" in k for k in snapshot(place.host, HOST_DIRS))
        rc, err = fork_cli([*root, *args], quiet)
        gone = args[0] == "detach" and b"Image not attached?" in err
        assert rc == 0 or gone, (step, err)
        if final is not None:
            ok("detach", "--runtime", final)
        now = snapshot(place.host, HOST_DIRS)
        assert now == pristine, (step, set(now) ^ set(pristine))


def test_names_too_long_for_temporary_names_survive_kills(place: Place) -> None:
    """Unit and image names so long that '.#portable-backup-<name>.<hex>' can't be a file name
    (a unit name may have 255 bytes): written, replaced and removed through hidden holder
    directories, and recovered after a kill at every step."""
    long_unit = "foo-" + "u" * 241 + ".service"  # 253 bytes: "<unit>.d" still fits
    v1, v2 = "x" * 240 + "_1", "x" * 240 + "_2"
    for version in (v1, v2):
        make_directory_image(
            place.images / version,
            units={long_unit: service_unit(f"/{version[-1]}"), "foo.service": service_unit()},
            os_release="ID=x\n",
            busybox=False,
        )
    a1, a2 = f"/srv/{v1}", f"/srv/{v2}"
    attach = ["attach", "--runtime", a1, "foo"]
    # (reattach writes new files, replaces and removes: every kind of holder; attach alone
    # is swept with ordinary names in test_attach.py)
    results = [
        _sweep(place, ["detach", "--runtime", a1], attach, None),
        _sweep(place, ["reattach", "--runtime", a2, "foo"], attach, a2),
    ]
    assert all(steps > 3 and holders > 0 for steps, holders in results), results
