"""attach / detach / reattach / is-attached against a real systemd in the box.

(Byte-level equality with portablectl is in test_box_attach_diff.py; this file checks what a
user sees: the service runs sandboxed, states are right, refusals hold, kills recover.)
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from helpers import in_box
from helpers.in_box import state
from helpers.runners import box_crash_run

from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"


def unit(exec_start: str = LOOP, extra: str = "") -> str:
    return (
        f"[Unit]\nDescription=test\n\n[Service]\nExecStart={exec_start}\n{extra}\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


clean = in_box.clean  # (a fixture)


def test_hello_runs_sandboxed_with_strict(box, box_tmp, clean):
    img = make_directory_image(box_tmp / "hello_1.0", template=EXAMPLES / "hello", os_release=None)
    r = box.portable(["attach", "--profile=strict", "--runtime", "--now", str(img)])
    assert "Created symlink /run/portables/hello_1.0" in r.stderr
    assert state(box, str(img)) == "running-runtime"
    show = box.systemctl(["show", "hello.service", "-p", "ActiveState", "-p", "MainPID"]).stdout
    props = dict(line.split("=", 1) for line in show.split())
    assert props["ActiveState"] == "active"
    status = box.run(["cat", f"/proc/{props['MainPID']}/status"]).stdout
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert uid >= 61184  # a DynamicUser= uid, not root
    assert "CapBnd:\t0000000000000000" in status
    links = box.run(["nsenter", "-t", props["MainPID"], "-n", "ip", "-o", "link"]).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    journal = box.run(["journalctl", "--no-pager", "-o", "cat", "-u", "hello.service"]).stdout
    assert "hello from Hello Portable 1.0" in journal
    r = box.portable(["detach", "--runtime", "--now", str(img)])
    assert state(box, str(img)) == "detached"
    assert box.run("ls /run/systemd/system.attached", check=False).returncode != 0
    assert box.systemctl(["is-active", "hello.service"], check=False).stdout.strip() in (
        "inactive",
        "unknown",
    )


def test_states_enable_and_refusals(box, box_tmp, clean):
    img = make_directory_image(box_tmp / "st_1", units={"st.service": unit()})
    box.portable(["attach", "--runtime", "-q", str(img)])
    assert state(box, str(img)) == "attached-runtime"
    assert state(box, "st_1") == "attached-runtime"  # by name, too
    box.portable(["detach", "--runtime", "-q", str(img)])
    box.portable(["attach", "--runtime", "--enable", "-q", str(img)])
    assert state(box, str(img)) == "enabled-runtime"
    assert box.path("/run/systemd/system.attached/multi-user.target.wants/st.service").is_symlink()
    box.systemctl(["start", "st.service"])
    assert state(box, str(img)) == "running-runtime"
    # a running unit is not detached behind the user's back
    r = box.portable(["detach", "--runtime", str(img)], check=False)
    assert r.returncode == 1
    # portablectl's sentence, then what to do, on the same line
    assert r.stderr == (
        "portable: error: Unit file 'st.service' is active, can't detach. "
        "(use --now to stop it first)\n"
    )
    assert state(box, str(img)) == "running-runtime"
    # a second attach reports it is attached and changes nothing
    r = box.portable(["attach", "--runtime", "--enable", str(img)])
    assert "is already attached" in r.stderr and "Written" not in r.stderr
    box.portable(["detach", "--runtime", "--now", "--enable", "-q", str(img)])
    assert state(box, str(img)) == "detached"
    assert box.run("ls /run/systemd/system.attached", check=False).returncode != 0


def test_running_host_unit_of_same_name_is_refused(box, box_tmp, clean):
    box.run(
        "mkdir -p /run/systemd/system && printf '[Service]\\nExecStart=/bin/sleep 300\\n'"
        " > /run/systemd/system/busy.service && systemctl daemon-reload && "
        "systemctl start busy.service && rm /run/systemd/system/busy.service"
    )
    try:
        img = make_directory_image(box_tmp / "busy_1", units={"busy.service": unit()})
        r = box.portable(["attach", "--runtime", str(img)], check=False)
        assert r.returncode == 1
        assert (
            r.stderr == "portable: error: Unit file 'busy.service' is active already, refusing.\n"
        )
        assert box.run("ls /run/systemd/system.attached", check=False).returncode != 0
    finally:
        box.run("systemctl stop busy.service; systemctl daemon-reload", check=False)


def test_failed_start_is_one_line_and_nonzero(box, box_tmp, clean):
    img = make_directory_image(
        box_tmp / "bad_1",
        units={
            "bad.service": unit("/usr/bin/false", extra="Type=oneshot"),
        },
    )
    r = box.portable(["attach", "--runtime", "--now", str(img)], check=False)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("portable: error:")]
    assert errors == [
        "portable: error: Job for bad.service failed: result 'failed' "
        "(see 'journalctl -u bad.service')"
    ]
    assert state(box, str(img)) == "attached-runtime"  # attached, not started: files stay


def test_reattach_now_restarts_kept_and_stops_removed(box, box_tmp, clean):
    v1 = make_directory_image(
        box_tmp / "app_1",
        units={
            "app.service": unit(),
            "app-old.service": unit(),
        },
    )
    v2 = make_directory_image(
        box_tmp / "app_2",
        units={
            "app.service": unit(),
            "app-new.service": unit(),
        },
    )
    box.portable(["attach", "--runtime", "--now", "-q", str(v1)])
    pid1 = box.systemctl(["show", "-P", "MainPID", "app.service"]).stdout.strip()
    box.portable(["reattach", "--runtime", "--now", "-q", str(v2)])
    assert box.systemctl(["is-active", "app.service"]).stdout.strip() == "active"
    assert box.systemctl(["is-active", "app-new.service"]).stdout.strip() == "active"
    assert box.systemctl(["is-active", "app-old.service"], check=False).stdout.strip() != "active"
    assert box.systemctl(["show", "-P", "MainPID", "app.service"]).stdout.strip() != pid1
    dropin = box.path("/run/systemd/system.attached/app.service.d/20-portable.conf").read_text()
    assert f"RootDirectory={v2}\n" in dropin
    assert state(box, str(v2)) == "running-runtime"
    # reattach to an image that does not exist detaches nothing
    r = box.portable(["reattach", "--runtime", str(box_tmp / "app_3")], check=False)
    assert r.returncode == 1 and state(box, str(v2)) == "running-runtime"
    box.portable(["detach", "--runtime", "--now", "-q", str(v2)])
    assert state(box, str(v2)) == "detached"


def test_concurrent_attaches_of_the_same_image(box, box_tmp, clean):
    img = make_directory_image(box_tmp / "con_1", units={"con.service": unit()})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runs = list(
            pool.map(
                lambda _: box.portable(["attach", "--runtime", str(img)], check=False), range(4)
            )
        )
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    fresh = [r for r in runs if "Written" in r.stderr]
    assert len(fresh) == 1  # exactly one wrote; the others report it is attached
    assert sum("is already attached" in r.stderr for r in runs) == 3
    box.portable(["detach", "--runtime", "-q", str(img)])


def test_concurrent_attach_detach_of_different_images(box, box_tmp, clean):
    imgs = [
        make_directory_image(box_tmp / f"par{i}_1", units={f"par{i}.service": unit()})
        for i in range(6)
    ]

    def cycle(img: Path) -> tuple[int, int]:
        a = box.portable(["attach", "--runtime", "-q", str(img)], check=False)
        d = box.portable(["detach", "--runtime", "-q", str(img)], check=False)
        return a.returncode, d.returncode

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(cycle, imgs))
    assert results == [(0, 0)] * 6
    assert box.portable(["list"]).stdout == "No images.\n"
    assert box.run("ls -A /run/systemd/system.attached", check=False).returncode != 0


@pytest.mark.parametrize("verb", ["attach", "detach"])
def test_kill_then_rerun_in_the_box(box, box_tmp, clean, verb):
    """A sample of crash points with --now and a real reload (every point is in test_attach)."""
    img = make_directory_image(
        box_tmp / "kill_1",
        units={
            "kill.service": unit(),
            "kill-b.service": unit(),
        },
    )
    args = (
        ["attach", "--runtime", "--now", str(img)]
        if verb == "attach"
        else ["detach", "--runtime", "--now", str(img)]
    )
    for step in (1, 3, 5, 8, 11, 14, 100):
        if verb == "detach":
            box.portable(["attach", "--runtime", "--now", "-q", str(img)])
        killed = box_crash_run(box, step, args, check=False)
        if killed.returncode == 0:
            continue
        assert killed.returncode == 137 or killed.returncode < 0, killed.stderr
        rerun = box.portable(args, check=False)
        if verb == "attach":
            assert rerun.returncode == 0, (step, rerun.stderr)
            assert state(box, str(img)) == "running-runtime", step
            box.portable(["detach", "--runtime", "--now", "-q", str(img)])
        else:
            assert rerun.returncode == 0 or "Image not attached?" in rerun.stderr, rerun.stderr
        assert state(box, str(img)) == "detached", step
        assert box.run("ls -A /run/systemd/system.attached", check=False).returncode != 0, step


def test_batch_of_images_reloads_once(box, box_tmp, clean):
    imgs = [
        make_directory_image(box_tmp / f"bat{i}_1", units={f"bat{i}.service": unit()})
        for i in range(5)
    ]

    def reloads() -> int:
        # UnitsLoadTimestampMonotonic changes on every reload of PID 1
        return int(box.systemctl(["show", "-P", "UnitsLoadTimestampMonotonic"]).stdout)

    before = reloads()
    # --reload: none would be needed (no unit is loaded, docs/reload.md); one is asked for,
    # and one only is done
    box.portable(["attach", "--reload", "--runtime", "--now", "-q", *map(str, imgs)])
    after_attach = reloads()
    assert after_attach != before
    for i, img in enumerate(imgs):
        assert state(box, str(img)) == "running-runtime", i
    journal_cursor = box.run(["journalctl", "-n", "0", "--show-cursor", "-q"]).stdout
    r = box.portable(["detach", "--reload", "--runtime", "--now", *map(str, imgs)])
    assert r.stderr.count("Removed /run/systemd/system.attached.\n") == 1
    reload_lines = box.run(
        [
            "journalctl",
            "--no-pager",
            "-q",
            "-o",
            "cat",
            "--after-cursor",
            journal_cursor.strip().removeprefix("-- cursor: "),
            "-g",
            "Reloading",
        ],
        check=False,
    ).stdout
    # PID 1 logs one line as it starts a reload: "Reloading." (252), "Reloading..." (257; it
    # also logs "Reloading finished in N ms." and who asked for it).
    starts = [line for line in reload_lines.splitlines() if line in ("Reloading.", "Reloading...")]
    assert len(starts) == 1, reload_lines
    assert box.portable(["list"]).stdout == "No images.\n"
