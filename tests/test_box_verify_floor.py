"""portable verify holds the unit as the box's systemd loaded it (FragmentPath, DropInPaths) to
the sandbox floor of its profile: an administrator's drop-in added after the attach that reaches
past the sandbox, or undoes what the profile sets, is named FILE:LINE; the attach's own two
drop-ins are the profile and are not checked. KillMode= is asked of the manager too.

One attach in the session's box (no boot of its own); each step changes the drop-ins and reloads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

NAME = "vfloor"
UNIT = f"{NAME}.service"
DROPIN_DIR = f"/etc/systemd/system/{UNIT}.d"
LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"


@pytest.fixture
def attached(box: Box) -> Iterator[Path]:
    tmp = box.mkdtemp(prefix="vf-")
    img = make_directory_image(
        tmp / f"{NAME}_1",
        units={UNIT: f"[Unit]\nDescription=floor test\n\n[Service]\nExecStart={LOOP}\n"},
    )
    try:
        box.portable(["attach", "--runtime", "--now", "-q", str(img)])
        yield img
    finally:
        box.run(f"rm -rf {DROPIN_DIR}; systemctl daemon-reload", check=False)
        box.portable(["detach", "--runtime", "--now", "-q", str(img)], check=False)
        box.run(  # if the detach failed
            f"systemctl stop {UNIT}; "
            f"rm -rf /run/systemd/system.attached/{UNIT} /run/systemd/system.attached/{UNIT}.d "
            f"/run/portables/{NAME}_1; systemctl daemon-reload",
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def verify(box: Box, *args: str) -> tuple[int, dict]:
    r = box.portable(["verify", "--json", *args, UNIT], check=False)
    assert r.returncode in (0, 1), r.stderr
    (report,) = json.loads(r.stdout)
    return r.returncode, report


def checks(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


def test_floor_of_the_loaded_unit(box: Box, attached: Path) -> None:
    code, report = verify(box)
    assert code == 0, json.dumps(report, indent=1)
    floor = checks(report)["sandbox floor"]
    assert floor == {
        "check": "sandbox floor",
        "promised": "profile default",
        "seen": "held (profile default)",
        "ok": True,
        "findings": [],
    }
    assert checks(report)["kill mode"]["seen"] == "control-group"

    # An administrator's drop-in, after the attach: a host path inside, a privileged command,
    # and a setting the profile's own (ProtectHome=yes) loses to (50- sorts after 10-profile).
    dropin = f"{DROPIN_DIR}/50-admin.conf"
    box.run(
        f"mkdir -p {DROPIN_DIR} && printf '[Service]\\nBindReadOnlyPaths=/etc:/mnt\\n"
        f"ExecStartPost=+/usr/bin/true\\nProtectHome=no\\n' > {dropin} && "
        f"systemctl daemon-reload && systemctl restart {UNIT}"
    )
    code, report = verify(box)
    assert code == 1 and not report["ok"]
    assert [c["check"] for c in report["checks"] if not c["ok"]] == ["sandbox floor"]
    floor = checks(report)["sandbox floor"]
    assert floor["seen"] == "3 settings undo it"
    found = [(f["unit"], f["line"], f["setting"], f["value"]) for f in floor["findings"]]
    assert found == [
        (dropin, 2, "BindReadOnlyPaths", "/etc:/mnt"),
        (dropin, 3, "ExecStartPost", "+/usr/bin/true"),
        (dropin, 4, "ProtectHome", "no"),
    ], json.dumps(floor, indent=1)
    assert floor["findings"][0]["text"] == (
        f"{dropin}:2: BindReadOnlyPaths=/etc:/mnt: makes a path of the host visible inside the "
        "service"
    )
    assert floor["findings"][2]["reason"].startswith("undoes what profile 'default' sets: ")
    # the text form: the findings below the table, the verdict last
    r = box.portable(["verify", UNIT], check=False)
    assert r.returncode == 1
    row = next(line for line in r.stdout.splitlines() if line.startswith("✗ sandbox floor "))
    assert row.split()[3:] == ["profile", "default", "3", "settings", "undo", "it"]
    assert f"\n    {dropin}:2: BindReadOnlyPaths=/etc:/mnt: makes a path" in r.stdout
    assert r.stdout.endswith(f"✗ {UNIT}: sandbox NOT as promised\n")
    # the settings an admin means to allow, as attach --allow-setting
    code, report = verify(
        box, "--allow-setting=BindReadOnlyPaths,ExecStartPost", "--allow-setting=ProtectHome"
    )
    assert code == 0, json.dumps(report, indent=1)

    # KillMode=none (asked of the manager: no restart needed, which would leave the old
    # process running)
    box.run(
        f"printf '[Service]\\nKillMode=none\\n' > {DROPIN_DIR}/60-kill.conf && "
        f"rm {dropin} && systemctl daemon-reload"
    )
    code, report = verify(box)
    assert code == 1
    bad = {c["check"]: c for c in report["checks"] if not c["ok"]}
    assert list(bad) == ["sandbox floor", "kill mode"], json.dumps(bad, indent=1)
    assert bad["kill mode"]["seen"] == "none"
    # the floor forbids it too, in the file
    assert [(f["unit"], f["line"], f["setting"]) for f in bad["sandbox floor"]["findings"]] == [
        (f"{DROPIN_DIR}/60-kill.conf", 2, "KillMode")
    ]
    assert bad["sandbox floor"]["seen"] == "1 setting undoes it"
