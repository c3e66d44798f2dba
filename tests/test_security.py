"""The exposure score (portable.security.score) against systemd's own systemd-analyze security, of
each known version (252, 257).

The reference values (peers-and-users.md §3.2 for 252) are checked without systemd; the
differential tests run the real ``systemd-analyze security --offline=yes`` of each version on the
same files and compare the overall score and every check's row with ours graded as that version
(``portable.testing.analyze``: this machine's own, the other from the test box's root; skipped
for a version whose systemd-analyze can't be run here).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portable.plugin.types import Profile, ProfileDropin
from portable.plugins.profiles.builtin import data_path
from portable.security.checks import CHECKS
from portable.security.score import profile_exposure, score_unit, verdict_for
from portable.security.settings import ServiceSettings
from portable.security.sources import BARE_UNIT, UnitSource, dropin_dirs, load_settings
from portable.security.tables import RULES, rules_for
from portable.systemd.unitfile import parse_unit_text
from portable.systemd.version import KNOWN_VERSIONS
from portable.testing.analyze import systemd_analyze

PROFILES = ("default", "nonetwork", "strict", "trusted")

# systemd-analyze --offline=yes of each version, a bare unit with each profile (that version's
# own file): (as is, with RootDirectory=, with RootImage=). 252: peers-and-users.md §3.2. 257
# grades an unset PrivateMounts= as set: 0.2 better everywhere, 0.1 more for strict with a root
# directory (one ceil fewer).
REFERENCE = {
    252: {
        None: ("9.6", "9.5", "9.5"),
        "default": ("3.3", "3.3", "3.4"),
        "nonetwork": ("2.2", "2.1", "2.2"),
        "strict": ("1.0", "1.0", "1.1"),
        "trusted": ("9.4", "9.4", "9.4"),
    },
    257: {
        None: ("9.4", "9.4", "9.4"),
        "default": ("3.1", "3.1", "3.2"),
        "nonetwork": ("2.0", "1.9", "2.0"),
        "strict": ("0.9", "0.8", "0.9"),
        "trusted": ("9.2", "9.2", "9.2"),
    },
}
ROOTS = (None, "RootDirectory=/srv/foo", "RootImage=/srv/foo.raw")


def profile(name, systemd):
    """Built-in profile ``name`` as systemd ``systemd`` ships it."""
    text = data_path(name, systemd).read_text()
    return Profile(name=name, description="", dropins={"service": ProfileDropin(text=text)})


# --- without systemd ---------------------------------------------------------------------------


def test_checks_match_systemd_table():
    assert len(CHECKS) == 81
    assert sum(c.weight for c in CHECKS) == 56460
    assert len({c.json_field for c in CHECKS}) == 81
    # kept verbatim, stray parenthesis included, so systemd policy files apply
    assert "CapabilityBoundingSet_CAP_NET_BIND_SERVICE_BROADCAST_RAW)" in {
        c.json_field for c in CHECKS
    }


def test_rules_for_every_known_version():
    assert sorted(RULES) == sorted(KNOWN_VERSIONS)
    assert rules_for(252) is rules_for(255) is RULES[252]  # the nearest known below
    assert rules_for(257) is rules_for(260) is RULES[257]
    assert rules_for(250) is RULES[252]
    # the groups the score looks at are the same in every version
    scored = [c.name.split("~", 1)[1] for c in CHECKS if c.name.startswith("SystemCallFilter=")]
    for group in scored:
        assert RULES[252].syscall_groups[group] == RULES[257].syscall_groups[group], group
    assert "@sandbox" in RULES[257].syscall_groups and "@sandbox" not in RULES[252].syscall_groups


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
@pytest.mark.parametrize("name", [None, *PROFILES])
def test_reference_values(name, systemd):
    p = None if name is None else profile(name, systemd)
    plain, directory, image = REFERENCE[systemd][name]
    assert profile_exposure(p, systemd=systemd).text == plain
    assert profile_exposure(p, root_directory=True, systemd=systemd).text == directory
    assert profile_exposure(p, root_image=True, systemd=systemd).text == image
    assert profile_exposure(p, systemd=systemd).systemd == systemd


def test_unknown_versions_score_as_the_nearest_known_below():
    default = profile("default", 252)
    assert profile_exposure(default, systemd=255).text == "3.3"
    assert profile_exposure(profile("default", 257), systemd=258).text == "3.1"


def test_private_mounts_by_version():
    """257 reads PrivateMounts= as a tristate and grades "unset" (also after an empty
    assignment) as set; 252 reads a boolean (an empty value is invalid and ignored)."""

    def graded(extra, systemd):
        score = score_unit(UnitSource(name="t.service", text=BARE_UNIT + extra), systemd=systemd)
        (row,) = [f for f in score.findings if f.check.json_field == "PrivateMounts"]
        return row.ok

    assert [graded(x, 252) for x in ("", "PrivateMounts=no\n", "PrivateMounts=yes\n")] == [
        False,
        False,
        True,
    ]
    assert [graded(x, 257) for x in ("", "PrivateMounts=no\n", "PrivateMounts=yes\n")] == [
        True,
        False,
        True,
    ]
    assert graded("PrivateMounts=no\nPrivateMounts=\n", 257) is True
    assert graded("PrivateMounts=yes\nPrivateMounts=\n", 252) is True


def test_score_api():
    score = profile_exposure(profile("default", 252), systemd=252)
    assert score.value == pytest.approx(3.3)
    assert score.exposure == 33
    assert score.verdict == "OK"
    data = score.to_json()
    assert data["exposure"] == pytest.approx(3.3) and data["verdict"] == "OK"
    assert data["systemd"] == 252
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


def test_settings_share_no_state():
    # ServiceSettings keeps its immutable defaults on the class: every list, set and dict a
    # service's settings collect is its own, and two services compare by their settings.
    text = (
        "[Service]\nSupplementaryGroups=a\nSystemCallArchitectures=native\nIPAddressDeny=any\n"
        "IPAddressAllow=localhost\nIPIngressFilterPath=/x\nIPEgressFilterPath=/y\n"
        "DeviceAllow=/dev/null r\nLoadCredential=a:/b\nSetCredential=c:d\nDynamicUser=yes\n"
        "RestrictAddressFamilies=AF_UNIX\nSystemCallFilter=@system-service\n"
    )
    first = load_settings(UnitSource(name="a.service", text=text), systemd=257)
    bare = load_settings(UnitSource(name="a.service", text="[Service]\n"), systemd=257)
    fresh = ServiceSettings(unit="a.service", rules=rules_for(257))
    fresh.apply_implications()
    assert bare == fresh and bare != first
    for name in ServiceSettings.__annotations__:
        value = getattr(first, name)
        if isinstance(value, list | set | dict) and value:
            assert getattr(bare, name) != value, name
    again = load_settings(UnitSource(name="a.service", text=text), systemd=257)
    assert again == first and repr(again) == repr(first)
    assert "ServiceSettings(unit='a.service', rules=Rules(systemd=257" in repr(first)


@pytest.mark.parametrize(("systemd", "tmp"), [(252, "connected"), (257, "disconnected")])
def test_implications_of_dynamic_user(systemd, tmp):
    unit = UnitSource(name="web.service", text=BARE_UNIT + "DynamicUser=yes\n")
    s = load_settings(unit, systemd=systemd)
    assert s.user == "web" and not s.runs_privileged
    assert s.remove_ipc and s.no_new_privileges and s.restrict_suid_sgid
    assert s.protect_system == "strict" and s.protect_home == "read-only"
    # 252: PrivateTmp=yes; 257: a disconnected /tmp, only where PrivateTmp= is off
    assert s.private_tmp == tmp and s.implied["PrivateTmp"] == "DynamicUser=yes"
    s = load_settings(
        UnitSource(name="web.service", text=BARE_UNIT + "DynamicUser=yes\nPrivateTmp=yes\n"),
        systemd=systemd,
    )
    assert s.private_tmp == "connected" and "PrivateTmp" not in s.implied  # the unit's own


@pytest.mark.parametrize(
    ("text", "v252", "v257"),
    [
        ("PrivateTmp=disconnected", "no", "disconnected"),
        ("PrivateTmp=yes\nPrivateTmp=connected", "connected", "connected"),
        ("PrivateUsers=identity", "no", "identity"),
        ("PrivateUsers=yes", "self", "self"),
        ("ProtectControlGroups=strict", "no", "strict"),
        ("ProtectControlGroups=yes\nProtectControlGroups=private", "yes", "private"),
        ("ProtectControlGroups=yes\nProtectControlGroups=", "yes", "yes"),
    ],
)
def test_words_each_version_knows(text, v252, v257):
    """257's new values for PrivateTmp=, PrivateUsers=, ProtectControlGroups= (252 ignores
    them, as any value it can't parse)."""
    for systemd, expected in ((252, v252), (257, v257)):
        s = load_settings(UnitSource(name="a.service", text=BARE_UNIT + text), systemd=systemd)
        key = text.split("=", 1)[0]
        attr = {"PrivateTmp": "private_tmp", "PrivateUsers": "private_users"}.get(
            key, "protect_control_groups"
        )
        assert getattr(s, attr) == expected, systemd


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
def test_root_image_opens_loop_devices_only_with_a_device_policy(systemd):
    s = load_settings(
        UnitSource(name="a.service", text=BARE_UNIT + "RootImage=/x.raw\nPrivateDevices=yes\n"),
        systemd=systemd,
    )
    assert s.device_policy == "closed"
    assert "block-loop:rwm" in s.device_allow
    s = load_settings(
        UnitSource(name="a.service", text=BARE_UNIT + "RootImage=/x.raw\nProtectClock=yes\n"),
        systemd=systemd,
    )
    assert s.device_allow == []


@pytest.mark.parametrize(("systemd", "tpm"), [(252, "/dev/tpmrm0:rw"), (257, "char-tpm:rw")])
def test_encrypted_credentials_open_the_tpm(systemd, tpm):
    text = BARE_UNIT + "PrivateDevices=yes\nLoadCredentialEncrypted=a:/x\n"
    s = load_settings(UnitSource(name="a.service", text=text), systemd=systemd)
    assert s.device_allow == [tpm]
    # the same credential loaded plainly later, or all of them reset: no TPM
    for more in ("LoadCredential=a:/y\n", "LoadCredential=\n"):
        s = load_settings(UnitSource(name="a.service", text=text + more), systemd=systemd)
        assert s.device_allow == []


@pytest.mark.parametrize(
    ("text", "v252", "v257"),
    [
        ("", False, False),
        ("MountAPIVFS=yes", False, True),
        ("RootDirectory=/srv/x", False, True),  # MountAPIVFS= defaults to yes with a root
        ("RootDirectory=/srv/x\nMountAPIVFS=no", False, False),
        ("RootImage=/x.raw\nMountAPIVFS=no\nPrivateDevices=yes", False, True),
        ("RootDirectory=/srv/x\nBindLogSockets=no", False, False),
        ("BindLogSockets=yes", False, True),
        ("LogNamespace=foo\nBindLogSockets=no", False, True),
    ],
)
def test_bind_log_sockets(text, v252, v257):
    """257's BindLogSockets= and when it is in effect; 252 has no such thing."""
    for systemd, expected in ((252, v252), (257, v257)):
        s = load_settings(UnitSource(name="a.service", text=BARE_UNIT + text), systemd=systemd)
        assert s.effective_bind_log_sockets is expected, systemd


def test_dropin_dirs():
    assert dropin_dirs("foo-bar@x.service") == [
        "foo-bar@x.service.d",
        "foo-bar@.service.d",
        "foo-.service.d",
        "service.d",
    ]
    assert dropin_dirs("a.socket") == ["a.socket.d", "socket.d"]


# --- against systemd-analyze -----------------------------------------------------------------


def analyzer(systemd):
    """systemd ``systemd``'s systemd-analyze (a command), or skip the test."""
    cmd = systemd_analyze(systemd)
    if cmd is None:
        pytest.skip(f"needs systemd-analyze from systemd {systemd} (or the test box's root)")
    return cmd


def analyze(directory: Path, unit: str, systemd: int):
    """systemd-analyze's overall score and per-check (set, exposure) for directory/unit."""
    args = [*analyzer(systemd), "security", "--offline=yes", "--no-pager"]
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


def ours(directory: Path, unit: str, systemd: int):
    dropin_dir = directory / f"{unit}.d"
    dropins = []
    if dropin_dir.is_dir():
        dropins = [
            (p.name, p.read_text()) for p in sorted(dropin_dir.iterdir()) if p.suffix == ".conf"
        ]
    score = score_unit(
        UnitSource(name=unit, text=(directory / unit).read_text(), dropins=tuple(dropins)),
        systemd=systemd,
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


def same(directory: Path, unit: str, systemd: int):
    """Ours graded as systemd ``systemd`` == that systemd-analyze's verdict, on every row."""
    theirs = analyze(directory, unit, systemd)
    assert ours(directory, unit, systemd) == theirs
    return theirs


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
@pytest.mark.parametrize("root", range(len(ROOTS)))
@pytest.mark.parametrize("name", [None, *PROFILES])
def test_profiles_match_systemd_analyze(tmp_path, name, root, systemd):
    # the profile as a drop-in, as attach writes it (and systemd-analyze --profile copies it):
    # --profile would look for the profile file on this machine, whatever the version
    dropins = {}
    if name is not None:
        dropins["10-profile.conf"] = data_path(name, systemd).read_text()
    if ROOTS[root]:
        dropins["20-portable.conf"] = f"[Service]\n{ROOTS[root]}\n"
    write_unit(tmp_path, "t.service", BARE_UNIT, dropins)
    assert same(tmp_path, "t.service", systemd)[0] == REFERENCE[systemd][name][root]


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
    # what differs between versions: values 257 added, PrivateMounts= as a tristate, ...
    "PrivateMounts=",
    "PrivateMounts=no",
    "PrivateMounts=yes\nPrivateMounts=",
    "PrivateMounts=bogus",
    "PrivateTmp=disconnected",
    "PrivateTmp=connected",
    "PrivateTmp=yes\nPrivateTmp=",
    "PrivateUsers=identity",
    "PrivateUsers=self",
    "ProtectControlGroups=private",
    "ProtectControlGroups=strict",
    "ProtectControlGroups=yes\nProtectControlGroups=bogus",
    "DynamicUser=yes\nPrivateTmp=no",
    "DynamicUser=yes\nPrivateMounts=no",
    "SystemCallFilter=~@sandbox",
    "SystemCallFilter=@sandbox @basic-io",
    "SystemCallFilter=@system-service\nSystemCallFilter=~@sandbox @privileged",
    "SystemCallFilter=@default @file-system",
    "SystemCallArchitectures=loongarch64",
    "SystemCallArchitectures=mips-le native",
    "SystemCallArchitectures=mipsel native",
    "RestrictNamespaces=time",
    "RestrictNamespaces=~time",
    "RestrictNamespaces=time user\nRestrictNamespaces=~user",
    "DevicePolicy=closed\nDeviceAllow=/dev/null wr\nDeviceAllow=/dev/zero",
    "SetCredentialEncrypted=a:eHl6\nPrivateDevices=yes",
    "LoadCredentialEncrypted=a:/x\nLoadCredential=a:/y\nPrivateDevices=yes",
    "LoadCredentialEncrypted=a:/x\nLoadCredential=\nPrivateDevices=yes\nProtectClock=yes",
    "BindLogSockets=yes\nMountAPIVFS=yes",
]


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_settings_match_systemd_analyze(tmp_path, case, systemd):
    write_unit(tmp_path, "t.service", BARE_UNIT + case + "\n")
    same(tmp_path, "t.service", systemd)


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
def test_special_units_match_systemd_analyze(tmp_path, systemd):
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
        same(directory, unit, systemd)
    same(tmp_path / "d", "t.service", systemd)


# Random units: any mix of these, in the unit file or in two drop-ins, in any order.
POOL = {
    "User": ["", "root", "0", "nobody", "svc"],
    "DynamicUser": ["yes", "no"],
    "SupplementaryGroups": ["", "wheel"],
    "PrivateDevices": ["yes", "no"],
    "PrivateMounts": ["yes", "no", ""],
    "PrivateNetwork": ["yes", "no"],
    "PrivateTmp": ["yes", "no", "disconnected"],
    "PrivateUsers": ["yes", "identity"],
    "ProtectControlGroups": ["yes", "no", "strict", "private"],
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
    "SystemCallArchitectures": ["", "native", "x86", "loongarch64"],
    "SystemCallFilter": [
        "",
        "@system-service",
        "~@privileged @resources",
        "~@mount",
        "@basic-io @swap",
        "~@debug:EPERM",
        "~@obsolete @clock @cpu-emulation @module @raw-io @reboot",
        "~@sandbox",
    ],
    "IPAddressDeny": ["", "any", "0.0.0.0/0"],
    "IPAddressAllow": ["", "localhost", "192.168.0.0/16"],
    "DevicePolicy": ["auto", "closed", "strict"],
    "DeviceAllow": ["", "/dev/null rw", "char-rtc r"],
}

assignment = st.sampled_from(sorted(POOL)).flatmap(
    lambda key: st.sampled_from(POOL[key]).map(lambda value: f"{key}={value}")
)


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
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
def test_random_units_match_systemd_analyze(tmp_path_factory, systemd, unit, first, second):
    analyzer(systemd)
    directory = tmp_path_factory.mktemp("u")
    dropins = {}
    if first:
        dropins["10-first.conf"] = "[Service]\n" + "\n".join(first) + "\n"
    if second:
        dropins["20-second.conf"] = "[Service]\n" + "\n".join(second) + "\n"
    write_unit(directory, "t.service", BARE_UNIT + "\n".join(unit) + "\n", dropins)
    same(directory, "t.service", systemd)


def _units_of(systemd: int) -> Path:
    """Where the service units shipped with systemd ``systemd`` are: this machine's, or the
    test box root's that systemd-analyze comes from."""
    cmd = analyzer(systemd)
    if len(cmd) == 1:
        return Path("/lib/systemd/system")
    return Path(cmd[-1]).parents[2] / "usr/lib/systemd/system"


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
def test_shipped_services_match_systemd_analyze(systemd):
    """Every (non-template) service unit that systemd's distribution ships, with the drop-ins
    it has on this machine (systemd-analyze reads this machine's unit directories)."""
    import os

    from portable.security.score import host_unit_exposure
    from portable.systemd.host import Host

    checked = 0
    for path in sorted(_units_of(systemd).glob("*.service")):
        name = path.name
        if "@" in name or path.is_symlink() or path.stat().st_size == 0:
            continue
        out = subprocess.run(
            [*analyzer(systemd), "security", "--offline=yes", "--no-pager", str(path)],
            capture_output=True,
            text=True,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out.stdout)
        if not match:
            continue  # systemd-analyze refused it (e.g. a oneshot it can't load offline)
        exposure = host_unit_exposure(name, host=Host(), fragment=os.fspath(path), systemd=systemd)
        assert exposure.score.text == match.group(1), name
        assert exposure.score.systemd == systemd
        checked += 1
    if checked == 0:
        pytest.skip(f"no service units in {_units_of(systemd)}")
