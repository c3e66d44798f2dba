"""portable verify against running services in a real systemd: every built-in profile holds its
promise, a namespace from --netns and a raw image are recognised, a weakened unit is caught.
The promise is read as the box's systemd reads it: 252's profiles bind the log sockets and say
PrivateTmp=yes; 257's say BindLogSockets=yes and leave the private /tmp to DynamicUser=yes.

The box has a network namespace of its own (``systemd-nspawn --private-network``, conftest's
``netbox``), so the veth of --netns stays inside it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image

pytestmark = pytest.mark.box

LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"
PROFILES = ("default", "nonetwork", "strict", "trusted")
LOG_SOCKETS = (
    "/run/systemd/journal/socket",
    "/run/systemd/journal/stdout",
    "/run/systemd/journal/dev-log",
)


def unit(extra: str = "") -> str:
    return f"[Unit]\nDescription=verify test\n\n[Service]\nExecStart={LOOP}\n{extra}\n"


@pytest.fixture
def tmp(netbox: Box) -> Iterator[Path]:
    path = netbox.mkdtemp(prefix="v-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean(netbox: Box) -> Iterator[None]:
    yield
    netbox.run(
        "for d in /run/systemd/system.attached /etc/systemd/system.attached; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf /run/portables /etc/portables /run/systemd/system/*.d; "
        "systemctl daemon-reload; for n in $(ip netns list | cut -d' ' -f1); do "
        "ip netns del $n; done",
        check=False,
    )


def verify(box: Box, target: str) -> tuple[int, list[dict]]:
    r = box.portable(["verify", "--json", target], check=False)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def rows(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


@pytest.mark.parametrize("profile", PROFILES)
def test_builtin_profile_holds(netbox, tmp, clean, profile):
    name = f"vp{profile}"
    img = make_directory_image(tmp / f"{name}_1", units={f"{name}.service": unit()})
    netbox.portable(["attach", "--runtime", "--now", "-q", "-p", profile, str(img)])
    code, (report,) = verify(netbox, str(img))
    assert code == 0, json.dumps(report, indent=1)
    assert report["unit"] == f"{name}.service" and report["profile"] == profile
    assert report["ok"] is True and report["pid"] > 1
    checks = rows(report)
    assert checks["root directory"]["seen"] == str(img)
    if profile in ("nonetwork", "strict"):
        assert checks["network namespace"]["seen"] == "own"
        assert checks["network links"]["seen"].startswith("lo ")
    else:
        assert checks["network namespace"]["seen"] == "host's"
    if profile == "trusted":
        assert checks["user"]["seen"] == "uid 0"
    else:
        assert checks["read-only /"]["seen"] == "read-only"
        assert checks["no new privileges"]["seen"] == "yes"
        assert checks["seccomp"]["seen"] == "filter"
        assert 61184 <= int(checks["user"]["seen"].split()[1]) <= 65519
    if profile == "strict":
        assert checks["capability bounding set"]["seen"] == "(none)"
    # what each systemd makes of the profile's log sockets and /tmp
    sockets = {c: checks.get(f"read-only {c}", {}).get("promised") for c in LOG_SOCKETS}
    tmp = checks.get("/tmp", {}).get("promised")
    if netbox.systemd_version >= 257:
        # BindLogSockets=yes; trusted (unchanged since 252) gets it from its MountAPIVFS=yes
        why = "BindLogSockets= by MountAPIVFS=yes" if profile == "trusted" else "BindLogSockets=yes"
        assert set(sockets.values()) == {f"read-only ({why})"}
        assert all(checks[f"read-only {c}"]["seen"] == "read-only" for c in LOG_SOCKETS)
        assert "read-only /dev/log" not in checks
        # trusted still says PrivateTmp=yes, the others leave it to DynamicUser=yes
        want_tmp = "yes" if profile == "trusted" else "disconnected by DynamicUser=yes"
    else:
        binds = None if profile == "trusted" else "read-only (BindReadOnlyPaths=)"
        assert sockets == {LOG_SOCKETS[0]: binds, LOG_SOCKETS[1]: binds, LOG_SOCKETS[2]: None}
        assert checks.get("read-only /dev/log", {}).get("promised") == binds
        want_tmp = "yes"  # every profile says PrivateTmp=yes
    assert tmp == f"private (PrivateTmp={want_tmp})"
    assert checks["/tmp"]["seen"] == "private"
    # the text form: a table, and the same verdict by unit name
    r = netbox.portable(["verify", f"{name}.service"])
    assert r.stdout.splitlines()[1].split() == ["CHECK", "PROMISED", "SEEN"]
    assert r.stdout.endswith(f"✓ {name}.service: sandbox as promised\n")
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])


def test_netns_and_raw_image(netbox, tmp, clean):
    img = make_directory_image(tmp / "vnet_1", units={"vnet.service": unit()})
    netbox.portable(["attach", "--runtime", "--now", "-q", "--netns", str(img)])
    code, (report,) = verify(netbox, "vnet.service")
    assert code == 0, json.dumps(report, indent=1)
    checks = rows(report)
    assert checks["network namespace"]["seen"] == "/run/netns/portable-vnet"
    assert checks["network links"]["seen"].startswith("host0 169.254.")
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])

    tree = make_directory_image(tmp / "tree", units={"vraw.service": unit()})
    raw = make_squashfs_image(tmp / "vraw_1.raw", tree)
    netbox.portable(["attach", "--runtime", "--now", "-q", "-p", "strict", str(raw)])
    code, (report,) = verify(netbox, str(raw))
    assert code == 0, json.dumps(report, indent=1)
    assert rows(report)["root image"]["seen"] == str(raw)
    netbox.portable(["detach", "--runtime", "--now", "-q", str(raw)])


def test_weakened_unit_is_caught(netbox, tmp, clean):
    img = make_directory_image(tmp / "vweak_1", units={"vweak.service": unit()})
    netbox.portable(["attach", "--runtime", "--now", "-q", "-p", "strict", str(img)])
    assert verify(netbox, str(img))[0] == 0
    # an administrator's drop-in undoes part of the profile; the unit restarts with it
    netbox.run(
        "mkdir -p /run/systemd/system/vweak.service.d && printf '[Service]\\n"
        "DynamicUser=no\\nPrivateNetwork=no\\nCapabilityBoundingSet=CAP_NET_RAW\\n"
        "ProtectSystem=no\\n' > /run/systemd/system/vweak.service.d/50-weaken.conf && "
        "systemctl daemon-reload && systemctl restart vweak.service"
    )
    code, (report,) = verify(netbox, str(img))
    assert code == 1
    bad = {c["check"]: c["seen"] for c in report["checks"] if not c["ok"]}
    weakened = {
        "network namespace": "host's",
        "capability bounding set": "cap_net_raw (extra: cap_net_raw)",
        "user": "uid 0",
        "read-only /": "writable",
        "read-only /usr": "writable",
        "read-only /etc": "writable",
        # the unit as PID 1 loaded it, held to the profile's floor: the drop-in's four lines
        "sandbox floor": "4 settings undo it",
    }
    if netbox.systemd_version >= 257:
        # 257's strict profile has no PrivateTmp=yes: its private /tmp came from DynamicUser=,
        # which the drop-in turned off
        weakened["/tmp"] = "shared"
    # (252's says PrivateTmp=yes itself: /tmp stays private)
    assert bad == weakened, json.dumps(report, indent=1)
    floor = next(c for c in report["checks"] if c["check"] == "sandbox floor")
    dropin = "/run/systemd/system/vweak.service.d/50-weaken.conf"
    assert [(f["unit"], f["line"], f["setting"]) for f in floor["findings"]] == [
        (dropin, 2, "DynamicUser"),
        (dropin, 3, "PrivateNetwork"),
        (dropin, 4, "CapabilityBoundingSet"),
        (dropin, 5, "ProtectSystem"),
    ]
    r = netbox.portable(["verify", "vweak.service"], check=False)
    assert r.returncode == 1
    assert r.stdout.endswith("✗ vweak.service: sandbox NOT as promised\n")
    assert "✗ user" in r.stdout


def test_not_running_and_not_attached(netbox, tmp, clean):
    img = make_directory_image(tmp / "vidle_1", units={"vidle.service": unit()})
    netbox.portable(["attach", "--runtime", "-q", str(img)])
    code, (report,) = verify(netbox, str(img))
    assert code == 1 and report["error"] == "not running"
    r = netbox.portable(["verify", "vidle.service"], check=False)
    assert r.returncode == 1
    assert r.stdout == "✗ vidle.service (profile default): not running\n"
    r = netbox.portable(["verify", str(tmp / "nosuch_1")], check=False)
    assert r.returncode == 1 and "is not attached" in r.stderr
    r = netbox.portable(["--root", str(tmp), "verify", "x.service"], check=False)
    assert r.returncode == 1 and "not with --root" in r.stderr
    netbox.portable(["detach", "--runtime", "-q", str(img)])


def test_dangling_profile_link_is_caught(netbox, tmp, clean):
    """The built-in profiles are links into the installed package: if it goes away, systemd
    skips the dangling drop-in and the service runs unsandboxed. verify says so."""
    img = make_directory_image(tmp / "vgone_1", units={"vgone.service": unit()})
    netbox.portable(["attach", "--runtime", "--now", "-q", "-p", "strict", str(img)])
    link = "/run/systemd/system.attached/vgone.service.d/10-profile.conf"
    netbox.run(f"ln -sfn /nonexistent/portable/profiles/strict/service.conf {link}")
    netbox.run("systemctl daemon-reload && systemctl restart vgone.service")
    code, (report,) = verify(netbox, str(img))
    assert code == 1 and not report["ok"]
    assert report["error"] == (
        "vgone.service.d/10-profile.conf can't be read (No such file or directory: it links to "
        "/nonexistent/portable/profiles/strict/service.conf), so systemd runs the service "
        "without its profile's sandbox; attach the image again"
    )
    r = netbox.portable(["verify", "vgone.service"], check=False)
    assert r.returncode == 1 and "without its profile's sandbox" in r.stdout, r.stdout
