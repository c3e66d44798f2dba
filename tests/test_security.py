"""The exposure score (portable.security) against systemd 252's own systemd-analyze security.

The reference values (peers-and-users.md §3.2) are checked without systemd; the differential tests
run the real ``systemd-analyze security --offline=yes`` on the same files and compare the
overall score and every check's row (skipped where systemd-analyze 252 is not installed).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portable.registry import get_registry
from portable.security import (
    BARE_UNIT,
    CHECKS,
    UnitSource,
    dropin_dirs,
    load_settings,
    parse_unit_text,
    profile_exposure,
    score_unit,
    verdict_for,
)

PROFILES = ("default", "nonetwork", "strict", "trusted")

# systemd 252, --offline=yes, a bare unit with each profile (peers-and-users.md §3.2).
REFERENCE = {
    None: ("9.6", None),  # not in the reference table
    "default": ("3.3", "3.4"),
    "nonetwork": ("2.2", "2.2"),
    "strict": ("1.0", "1.1"),
    "trusted": ("9.4", "9.4"),
}


def profile(name):
    return get_registry(load_entrypoints=False).profile(name).spec


# --- without systemd ---------------------------------------------------------------------------


def test_checks_match_systemd_table():
    assert len(CHECKS) == 81
    assert sum(c.weight for c in CHECKS) == 56460
    assert len({c.json_field for c in CHECKS}) == 81
    # kept verbatim, stray parenthesis included, so systemd policy files apply
    assert "CapabilityBoundingSet_CAP_NET_BIND_SERVICE_BROADCAST_RAW)" in {
        c.json_field for c in CHECKS
    }


@pytest.mark.parametrize("name", [None, *PROFILES])
def test_reference_values(name):
    p = None if name is None else profile(name)
    plain, image = REFERENCE[name]
    assert profile_exposure(p).text == plain
    if image is not None:
        assert profile_exposure(p, root_image=True).text == image


def test_score_api():
    score = profile_exposure(profile("default"))
    assert score.value == pytest.approx(3.3)
    assert score.exposure == 33
    assert score.verdict == "OK"
    data = score.to_json()
    assert data["exposure"] == pytest.approx(3.3) and data["verdict"] == "OK"
    rows = {c["json_field"]: c for c in data["checks"]}
    assert rows["PrivateNetwork"] == {
        "set": False,
        "name": "PrivateNetwork=",
        "json_field": "PrivateNetwork",
        "description": "Service has access to the host's network",
        "weight": 2500,
        "badness": 1,
        "range": 1,
        "exposure": "0.5",
    }
    assert rows["UserOrDynamicUser"]["set"] is True


@pytest.mark.parametrize(
    ("exposure", "verdict"),
    [
        (0, "PERFECT"),
        (1, "SAFE"),
        (9, "SAFE"),
        (10, "OK"),
        (49, "OK"),
        (50, "MEDIUM"),
        (74, "MEDIUM"),
        (75, "EXPOSED"),
        (89, "EXPOSED"),
        (90, "UNSAFE"),
        (99, "UNSAFE"),
        (100, "DANGEROUS"),
    ],
)
def test_verdicts(exposure, verdict):
    assert verdict_for(exposure) == verdict


def test_parser():
    text = (
        "# comment\n[Unit]\nDescription=x\n\n[Service]\n  Key = a b \\\n"
        "# comment inside a continuation\n  c\nNoEquals\n; other comment\n"
        "Trailing=\\\\\n[X-Mine]\nOwn=1\nLast=end \\"
    )
    got = [(a.section, a.key, a.value) for a in parse_unit_text(text)]
    assert got == [
        ("Unit", "Description", "x"),
        ("Service", "Key", "a b    c"),
        ("Service", "Trailing", "\\\\"),
        ("X-Mine", "Own", "1"),
        ("X-Mine", "Last", "end"),
    ]


def test_implications_of_dynamic_user():
    s = load_settings(UnitSource(name="web.service", text=BARE_UNIT + "DynamicUser=yes\n"))
    assert s.user == "web" and not s.runs_privileged
    assert s.private_tmp and s.remove_ipc and s.no_new_privileges and s.restrict_suid_sgid
    assert s.protect_system == "strict" and s.protect_home == "read-only"


def test_root_image_opens_loop_devices_only_with_a_device_policy():
    s = load_settings(
        UnitSource(name="a.service", text=BARE_UNIT + "RootImage=/x.raw\nPrivateDevices=yes\n")
    )
    assert s.device_policy == "closed"
    assert "block-loop:rwm" in s.device_allow
    s = load_settings(UnitSource(name="a.service", text=BARE_UNIT + "RootImage=/x.raw\n"))
    assert s.device_allow == []


def test_dropin_dirs():
    assert dropin_dirs("foo-bar@x.service") == [
        "foo-bar@x.service.d",
        "foo-bar@.service.d",
        "foo-.service.d",
        "service.d",
    ]
    assert dropin_dirs("a.socket") == ["a.socket.d", "socket.d"]


# --- against systemd-analyze -----------------------------------------------------------------


def _systemd_analyze_252() -> str | None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return exe if out.startswith("systemd 252 ") else None


SYSTEMD_ANALYZE = _systemd_analyze_252()
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="needs systemd-analyze from systemd 252"
)


def analyze(directory: Path, unit: str, profile_name: str | None = None):
    """systemd-analyze's overall score and per-check (set, exposure) for directory/unit."""
    assert SYSTEMD_ANALYZE is not None
    args = [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager"]
    if profile_name:
        args.append(f"--profile={profile_name}")
    path = str(directory / unit)
    text = subprocess.run([*args, path], capture_output=True, text=True)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", text.stdout)
    assert match, text.stdout + text.stderr
    rows = json.loads(
        subprocess.run([*args, "--json=short", path], capture_output=True, text=True).stdout
    )
    return (
        match.group(1),
        match.group(2),
        {r["json_field"]: (r["set"], r["exposure"]) for r in rows},
    )


def ours(directory: Path, unit: str, profile_name: str | None = None):
    dropin_dir = directory / f"{unit}.d"
    dropins = []
    if dropin_dir.is_dir():
        dropins = [
            (p.name, p.read_text()) for p in sorted(dropin_dir.iterdir()) if p.suffix == ".conf"
        ]
    if profile_name:
        dropins.append(("profile.conf", profile(profile_name).dropin_for("service").text))
    score = score_unit(
        UnitSource(name=unit, text=(directory / unit).read_text(), dropins=tuple(dropins))
    )
    rows = {f.check.json_field: (f.ok, f.to_json()["exposure"]) for f in score.findings}
    return score.text, score.verdict, rows


def write_unit(directory: Path, unit: str, text: str, dropins: dict[str, str] | None = None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / unit).write_text(text)
    if dropins:
        (directory / f"{unit}.d").mkdir()
        for name, content in dropins.items():
            (directory / f"{unit}.d" / name).write_text(content)


@needs_analyze
@pytest.mark.parametrize("root", [None, "RootImage=/srv/foo.raw", "RootDirectory=/srv/foo"])
@pytest.mark.parametrize("name", [None, *PROFILES])
def test_profiles_match_systemd_analyze(tmp_path, name, root):
    dropins = {"20-portable.conf": f"[Service]\n{root}\n"} if root else None
    write_unit(tmp_path, "t.service", BARE_UNIT, dropins)
    assert ours(tmp_path, "t.service", name) == analyze(tmp_path, "t.service", name)
    if root is None:
        assert analyze(tmp_path, "t.service", name)[0] == REFERENCE[name][0]
    elif root.startswith("RootImage") and name is not None:
        assert analyze(tmp_path, "t.service", name)[0] == REFERENCE[name][1]


CASES = [
    "DynamicUser=yes",
    "DynamicUser=yes\nProtectSystem=full\nProtectHome=tmpfs",
    "User=nobody",
    "User=root\nDynamicUser=yes",
    "User=0",
    "User=foo\nSupplementaryGroups=a b",
    "User=foo\nSupplementaryGroups=a\nSupplementaryGroups=",
    "SystemCallArchitectures=native",
    "SystemCallArchitectures=x86-64",
    "SystemCallArchitectures=native x86-64",
    "SystemCallArchitectures=bogus",
    "SystemCallArchitectures=native\nSystemCallArchitectures=\nSystemCallArchitectures=native",
    "SystemCallFilter=~@swap @obsolete",
    "SystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources",
    "SystemCallFilter=~@known",
    "SystemCallFilter=read write",
    "SystemCallFilter=~",
    "SystemCallFilter=@bogus",
    "SystemCallFilter=read:EPERM\nSystemCallFilter=~read",
    "SystemCallFilter=~@swap\nSystemCallFilter=swapon",
    "SystemCallFilter=@system-service\nSystemCallFilter=",
    "SystemCallFilter=@mount @clock @debug @module @raw-io @reboot @swap @cpu-emulation",
    "RestrictNamespaces=~user",
    "RestrictNamespaces=user net\nRestrictNamespaces=~net",
    "RestrictNamespaces=bogus user",
    "RestrictNamespaces=no",
    "RestrictNamespaces=yes\nRestrictNamespaces=",
    "RestrictAddressFamilies=none",
    "RestrictAddressFamilies=~AF_PACKET AF_BLUETOOTH",
    "RestrictAddressFamilies=AF_LOCAL AF_ROUTE",
    "RestrictAddressFamilies=AF_INET\nRestrictAddressFamilies=~AF_INET\nRestrictAddressFamilies=~AF_UNIX",
    "RestrictAddressFamilies=none\nRestrictAddressFamilies=~AF_INET",
    "RestrictAddressFamilies=AF_INET\nRestrictAddressFamilies=",
    "IPAddressDeny=any\nIPAddressAllow=localhost",
    "IPAddressDeny=any\nIPAddressAllow=10.0.0.0/8",
    "IPAddressDeny=any\nIPAddressAllow=127.0.0.0/7",
    "IPAddressDeny=any\nIPAddressAllow=::1",
    "IPAddressDeny=0.0.0.0/0",
    "IPAddressDeny=0.0.0.0/0 ::/0",
    "IPAddressDeny=any\nIPAddressDeny=",
    "IPIngressFilterPath=/sys/fs/bpf/x",
    "UMask=0077",
    "UMask=0027",
    "UMask=0007",
    "UMask=0000",
    "PrivateDevices=yes\nProtectClock=yes",
    "ProtectClock=yes",
    "DevicePolicy=strict\nDeviceAllow=/dev/null rw",
    "DevicePolicy=closed\nDeviceAllow=bogus rw",
    "DevicePolicy=closed\nDeviceAllow=/dev/null\nDeviceAllow=",
    "RootImage=/x.raw\nDevicePolicy=closed",
    "RootImage=/x.raw\nPrivateDevices=yes\nProtectClock=yes",
    "MountImages=/a.raw:/b\nPrivateDevices=yes",
    "LoadCredentialEncrypted=foo:/x\nPrivateDevices=yes",
    "KeyringMode=shared",
    "ProtectProc=noaccess\nProcSubset=pid",
    "ProtectProc=invisible",
    "NotifyAccess=all",
    "Delegate=cpu memory",
    "CapabilityBoundingSet=CAP_SYS_ADMIN\nCapabilityBoundingSet=CAP_KILL",
    "CapabilityBoundingSet=~CAP_SYS_ADMIN CAP_KILL",
    "CapabilityBoundingSet=\nCapabilityBoundingSet=cap_kill 21",
    "AmbientCapabilities=CAP_NET_RAW",
    "AmbientCapabilities=~",
    "PrivateMounts=yes\nProtectHome=\nProtectSystem=yes",
    "ProtectHome=tmpfs\nProtectHome=\nProtectSystem=strict\nProtectSystem=",
    "RootDirectory=/",
    "CapabilityBoundingSet=CAP_KILL \\\n# a comment\n  CAP_SYS_ADMIN",
    "PrivateNetwork=yes \\",
]


@needs_analyze
@pytest.mark.parametrize("case", CASES)
def test_settings_match_systemd_analyze(tmp_path, case):
    write_unit(tmp_path, "t.service", BARE_UNIT + case + "\n")
    assert ours(tmp_path, "t.service") == analyze(tmp_path, "t.service")


@needs_analyze
def test_special_units_match_systemd_analyze(tmp_path):
    write_unit(tmp_path, "a.service", "[Unit]\nDefaultDependencies=no\n" + BARE_UNIT)
    write_unit(tmp_path, "root.service", BARE_UNIT + "DynamicUser=yes\n")
    write_unit(
        tmp_path / "d",
        "t.service",
        BARE_UNIT,
        {
            "20-b.conf": "[Service]\nCapabilityBoundingSet=\nUser=root\n",
            "10-a.conf": "[Service]\nCapabilityBoundingSet=CAP_KILL\nUser=foo\n",
            "30-c.txt": "[Service]\nPrivateNetwork=yes\n",
        },
    )
    for directory, unit in ((tmp_path, "a.service"), (tmp_path, "root.service")):
        assert ours(directory, unit) == analyze(directory, unit)
    assert ours(tmp_path / "d", "t.service") == analyze(tmp_path / "d", "t.service")


# Random units: any mix of these, in the unit file or in two drop-ins, in any order.
POOL = {
    "User": ["", "root", "0", "nobody", "svc"],
    "DynamicUser": ["yes", "no"],
    "SupplementaryGroups": ["", "wheel"],
    "PrivateDevices": ["yes", "no"],
    "PrivateMounts": ["yes"],
    "PrivateNetwork": ["yes", "no"],
    "PrivateTmp": ["yes", "no"],
    "PrivateUsers": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectHome": ["yes", "no", "read-only", "tmpfs", ""],
    "ProtectSystem": ["yes", "no", "full", "strict"],
    "RootDirectory": ["/srv/x", "/", ""],
    "RootImage": ["/srv/x.raw", ""],
    "LockPersonality": ["yes"],
    "MemoryDenyWriteExecute": ["yes"],
    "NoNewPrivileges": ["yes", "no"],
    "CapabilityBoundingSet": [
        "",
        "~",
        "CAP_SYS_ADMIN CAP_NET_ADMIN",
        "~CAP_SYS_ADMIN CAP_KILL",
        "CAP_SYSLOG CAP_MKNOD CAP_SYS_TIME",
    ],
    "AmbientCapabilities": ["", "CAP_NET_BIND_SERVICE"],
    "UMask": ["0077", "0022", "0002", "0027"],
    "KeyringMode": ["inherit", "private", "shared"],
    "ProtectProc": ["noaccess", "invisible", "default"],
    "ProcSubset": ["pid", "all"],
    "NotifyAccess": ["all", "main", "none"],
    "RemoveIPC": ["yes", "no"],
    "Delegate": ["yes", "no", "cpu"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "RestrictNamespaces": ["yes", "no", "", "~user", "net ipc", "~net uts"],
    "RestrictAddressFamilies": [
        "",
        "none",
        "AF_UNIX",
        "AF_INET AF_INET6",
        "~AF_PACKET",
        "~AF_INET AF_NETLINK",
        "AF_UNIX AF_BLUETOOTH",
    ],
    "SystemCallArchitectures": ["", "native", "x86"],
    "SystemCallFilter": [
        "",
        "@system-service",
        "~@privileged @resources",
        "~@mount",
        "@basic-io @swap",
        "~@debug:EPERM",
        "~@obsolete @clock @cpu-emulation @module @raw-io @reboot",
    ],
    "IPAddressDeny": ["", "any", "0.0.0.0/0"],
    "IPAddressAllow": ["", "localhost", "192.168.0.0/16"],
    "DevicePolicy": ["auto", "closed", "strict"],
    "DeviceAllow": ["", "/dev/null rw", "char-rtc r"],
}

assignment = st.sampled_from(sorted(POOL)).flatmap(
    lambda key: st.sampled_from(POOL[key]).map(lambda value: f"{key}={value}")
)


@needs_analyze
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    unit=st.lists(assignment, max_size=12),
    first=st.lists(assignment, max_size=8),
    second=st.lists(assignment, max_size=8),
)
def test_random_units_match_systemd_analyze(tmp_path_factory, unit, first, second):
    directory = tmp_path_factory.mktemp("u")
    dropins = {}
    if first:
        dropins["10-first.conf"] = "[Service]\n" + "\n".join(first) + "\n"
    if second:
        dropins["20-second.conf"] = "[Service]\n" + "\n".join(second) + "\n"
    write_unit(directory, "t.service", BARE_UNIT + "\n".join(unit) + "\n", dropins)
    assert ours(directory, "t.service") == analyze(directory, "t.service")


@needs_analyze
def test_host_services_match_systemd_analyze():
    """Every (non-template) service unit this machine ships, with the drop-ins it has."""
    import glob
    import os

    from portable.host import Host
    from portable.security import host_unit_exposure

    assert SYSTEMD_ANALYZE is not None
    checked = 0
    for path in sorted(glob.glob("/lib/systemd/system/*.service")):
        name = os.path.basename(path)
        if "@" in name or os.path.islink(path) or os.path.getsize(path) == 0:
            continue
        out = subprocess.run(
            [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", path],
            capture_output=True,
            text=True,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out.stdout)
        if not match:
            continue  # systemd-analyze refused it (e.g. a oneshot it can't load offline)
        ours = host_unit_exposure(name, host=Host(), fragment=path).score.text
        assert ours == match.group(1), name
        checked += 1
    if checked == 0:
        pytest.skip("no service units in /lib/systemd/system")
