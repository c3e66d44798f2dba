"""portable security against systemd-analyze security in a real systemd (252 or 257): the
attached files of directory and raw images with each profile, scored by both; and attach
--max-exposure. Each box's systemd-analyze is the reference for that box."""

from __future__ import annotations

import json
import re

import pytest
from helpers import in_box

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image

pytestmark = pytest.mark.box

PROFILES = ("default", "nonetwork", "strict", "trusted")
UNIT = "[Unit]\nDescription=t\n\n[Service]\nExecStart=/usr/bin/sleep infinity\n"
# systemd-analyze --offline=yes, bare unit + profile + what attach writes. 252: with RootImage=
# the reference values of peers-and-users.md §3.2; with RootDirectory= that item is good too.
# 257 (its own profiles and 20-portable.conf): an unset PrivateMounts= grades as set.
EXPECTED = {
    252: {
        "raw": {"default": "3.4", "nonetwork": "2.2", "strict": "1.1", "trusted": "9.4"},
        "dir": {"default": "3.3", "nonetwork": "2.1", "strict": "1.0", "trusted": "9.4"},
    },
    257: {
        "raw": {"default": "3.2", "nonetwork": "2.0", "strict": "0.9", "trusted": "9.2"},
        "dir": {"default": "3.1", "nonetwork": "1.9", "strict": "0.8", "trusted": "9.2"},
    },
}
# attach --max-exposure=3 of a bare service with the default profile, and with an admin's
# PrivateNetwork=yes drop-in
MAX_EXPOSURE = {252: ("3.3", "2.8"), 257: ("3.1", "2.7")}


clean = in_box.clean  # (a fixture)


def analyze(box: Box, path: str) -> tuple[str, dict[str, tuple]]:
    args = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    text = box.run([*args, path]).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", text)
    assert match, text
    rows = json.loads(box.run([*args, "--json=short", path]).stdout)
    return match.group(1), {r["json_field"]: (r["set"], r["exposure"]) for r in rows}


def ours(box: Box, args: list[str]) -> tuple[str, dict[str, tuple]]:
    (doc,) = json.loads(box.portable(["security", "--json", *args]).stdout)
    assert doc["systemd"] == box.systemd_version  # graded as the running systemd does
    value = f"{doc['exposure']:.1f}"
    return value, {c["json_field"]: (c["set"], c["exposure"]) for c in doc["checks"]}


@pytest.mark.parametrize("kind", ["dir", "raw"])
def test_attached_units_score_as_systemd_analyze_says(box, box_tmp, clean, kind):
    tree = make_directory_image(box_tmp / "sec_1", units={"sec.service": UNIT})
    img = make_squashfs_image(box_tmp / "sec_1.raw", tree) if kind == "raw" else tree
    for profile in PROFILES:
        before = ours(box, ["-p", profile, str(img)])  # what attaching would write
        box.portable(["attach", "--runtime", "-q", "-p", profile, str(img)])
        theirs = analyze(box, "/run/systemd/system.attached/sec.service")
        assert theirs[0] == EXPECTED[box.systemd_version][kind][profile], profile
        assert ours(box, ["sec.service"]) == theirs, profile
        assert ours(box, [str(img)]) == theirs, profile  # the attached image, as attached
        assert before == theirs, profile
        box.portable(["detach", "--runtime", "-q", str(img)])


def test_attach_max_exposure(box, box_tmp, clean):
    default, private_network = MAX_EXPOSURE[box.systemd_version]
    img = make_directory_image(box_tmp / "mx_1", units={"mx.service": UNIT})
    r = box.portable(["attach", "--runtime", "--max-exposure=3", str(img)], check=False)
    assert r.returncode == 1
    assert r.stderr == (
        f"portable: error: mx.service: exposure {default} OK with profile 'default' is above "
        "--max-exposure 3.0, refusing.\n"
    )
    assert box.run("ls /run/systemd/system.attached", check=False).returncode != 0
    # an administrator's drop-in on the host counts
    box.run(
        "mkdir -p /run/systemd/system/mx.service.d && printf '[Service]\\nPrivateNetwork=yes\\n'"
        " > /run/systemd/system/mx.service.d/50-net.conf"
    )
    try:
        box.portable(["attach", "--runtime", "-q", "--max-exposure=3", str(img)])
        assert ours(box, ["mx.service"]) == analyze(box, "/run/systemd/system.attached/mx.service")
        assert ours(box, ["mx.service"])[0] == private_network
    finally:
        box.run("rm -rf /run/systemd/system/mx.service.d")
    box.portable(["detach", "--runtime", "-q", str(img)])
