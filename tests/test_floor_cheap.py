"""The floor's cheap path: a unit that sets nothing the exposure score reads is held to the
profile without the score (:func:`portable.security.floor.undone` returns early, and
:mod:`portable.security.score` is not even imported). Here: the same findings and messages as
when the score grades every unit, for systemd's four profiles as 252 and 257 ship them and for
odd or hostile profiles, and the score left unimported on that path.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Collection, Sequence

import pytest
from helpers.roots import unit_file as unit

from portable.plugin.types import Floor, FloorRule, Profile, ProfileDropin, UnitFile
from portable.plugins.profiles.builtin import NAMES, data_path
from portable.security import floor
from portable.security.floor import FloorFinding, check_units
from portable.security.floor_tables import GRADED_SETTINGS, builtin_floor
from portable.security.settings import HANDLERS
from portable.systemd.unitfile import Assignment

VERSIONS = (252, 257)
HEAD = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def builtin(name: str, systemd: int) -> Profile:
    text = data_path(name, systemd).read_bytes().decode("utf-8")
    return Profile(
        name=name,
        description=name,
        dropins={"service": ProfileDropin(text=text)},
        floor=builtin_floor(name),
    )


def odd(name: str, text: str, floor_: Floor | None = None) -> Profile:
    return Profile(
        name=name, description=name, dropins={"service": ProfileDropin(text=text)}, floor=floor_
    )


# Profiles a plugin or a file may bring: empty, no [Service], settings in odd sections or
# spellings, values systemd ignores, what loosens rather than tightens, a huge one.
ODD_PROFILES = [
    odd("empty", ""),
    odd("unit-only", "[Unit]\nDefaultDependencies=no\n"),
    odd("dynamic", "[Service]\nDynamicUser=yes\n"),
    odd("loose", "[Service]\nUser=root\nPrivateNetwork=no\nCapabilityBoundingSet=~\n"),
    odd("garbage", "[Service\nUser=root\n=\n[]\nDynamicUser\n\x00\x1b[2J=1\n[Service]\n x = y \n"),
    odd("cased", "[service]\nDynamicUser=yes\n[Service]\ndynamicuser=yes\nPrivateTmp=maybe\n"),
    odd(
        "resets",
        "[Service]\nSystemCallFilter=\nIPAddressDeny=\nDeviceAllow=\nRestrictNamespaces=\n",
    ),
    odd(
        "lists",
        "[Service]\nIPAddressDeny=any\nIPAddressAllow=localhost\nSystemCallFilter=@system-service\nRestrictAddressFamilies=~AF_PACKET\n",
    ),
    odd("defaultdeps", "[Unit]\nDefaultDependencies=no\n[Service]\nPrivateNetwork=yes\n"),
    odd("bindlogs", "[Service]\nBindLogSockets=yes\nMountAPIVFS=no\nRootImage=/x.raw\n"),
    odd("huge", "[Service]\n" + "ProtectSystem=strict\n" * 5000),
    odd(
        "own-floor",
        "[Service]\nDynamicUser=yes\n",
        Floor(rules=(FloorRule(setting="Nice", reason="no"),)),
    ),
    odd("no-hold", "[Service]\nDynamicUser=yes\n", Floor(rules=(), hold_profile=False)),
]

# Units that set nothing the score reads, as images ship them and as an attacker writes them:
# graded names in other sections or spellings, continuations, comments, templates, sockets.
UNGRADED_UNITS = [
    (HEAD, "foo.service"),
    (
        HEAD + "Environment=A=1\nType=notify\nRestart=always\nNice=-5\nLimitNOFILE=1\n",
        "foo.service",
    ),
    (
        HEAD + "ReadWritePaths=/var\nBindReadOnlyPaths=/etc:/mnt\nWorkingDirectory=/\n",
        "foo.service",
    ),
    (
        HEAD + "ExecStartPre=+/bin/sh\nStandardOutput=truncate:/etc/x\nKillMode=none\n",
        "foo.service",
    ),
    (
        "[Unit]\nUser=root\nPrivateNetwork=no\n[Install]\nDynamicUser=no\nWantedBy=multi-user.target\n",
        "foo.service",
    ),
    (
        "[X-Foo]\nCapabilityBoundingSet=~\n[Service]\nuser=root\nDEFAULTDEPENDENCIES=no\n",
        "foo.service",
    ),
    ("[Service]\nDefaultDependencies=no\nExecStart=/bin/true\n", "foo.service"),
    ("[Service]\nDescription=a \\\nUser=root\n# User=root\n; DynamicUser=no\n", "foo.service"),
    ("[Service ]\nUser=root\n[service]\nUser=root\n[Service]\n", "foo.service"),
    ("", "foo.service"),
    ("\x00\xff[Service]\n\x1b]52;c;x\x07=1\n", "foo.service"),
    (HEAD + "Wants=dbus.service\nAlias=x.service\n", "bar@.service"),
    (HEAD, "bar@inst.service"),
    ("[Socket]\nListenStream=0.0.0.0:80\nUser=root\n", "foo.socket"),
    (HEAD + "Environment=A=1\n" * 3000, "foo.service"),
]

# Units that do set something graded: the cheap path does not apply, the score answers (the
# comparison below then checks that both routes still agree).
GRADED_UNITS = [
    (HEAD + "User=root\n", "foo.service"),
    (HEAD + "PrivateNetwork=no\nIPAddressAllow=any\n", "foo.service"),
    ("[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/true\n", "foo.service"),
    (HEAD + "DynamicUser=no\nCapabilityBoundingSet=CAP_SYS_ADMIN\n", "bar@inst.service"),
]


def full_undone(
    unit_name: str,
    applied: Sequence[Assignment],
    suspects: Collection[str],
    profile: Profile,
    *,
    systemd: int | None = None,
    profile_text: str | None = None,
) -> list[FloorFinding]:
    """:func:`floor.undone` with the score always asked (no early return)."""
    dropin = profile.dropin_for("service")
    text = profile_text if profile_text is not None else (dropin.text if dropin else None)
    if text is None:
        return []
    theirs = [a for a in applied if a.source in suspects]
    return floor._undone_graded(unit_name, applied, suspects, theirs, profile, text, systemd)


def all_profiles() -> list[tuple[str, Profile, int]]:
    out = [(f"{n}-{v}", builtin(n, v), v) for n, v in itertools.product(NAMES, VERSIONS)]
    out += [(f"{p.name}-{v}", p, v) for p, v in itertools.product(ODD_PROFILES, VERSIONS)]
    return out


def test_graded_settings_are_what_the_score_reads() -> None:
    assert frozenset(HANDLERS) == GRADED_SETTINGS


def shown(attaches: list[list[UnitFile]], profile: Profile, systemd: int) -> list[list[str]]:
    return [[str(f) for f in check_units(u, profile, systemd=systemd)] for u in attaches]


@pytest.mark.parametrize(
    "label,profile,systemd", all_profiles(), ids=[p[0] for p in all_profiles()]
)
def test_the_cheap_path_finds_what_the_score_finds(
    label: str, profile: Profile, systemd: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each unit alone, then the units of one attach together (they are each other's own).
    attaches = [[unit(t, n)] for t, n in UNGRADED_UNITS + GRADED_UNITS]
    attaches.append([unit(t, n) for t, n in UNGRADED_UNITS if n != "foo.service"])
    # As verify asks: the profile's drop-in as loaded, another file among the suspects.
    dropin = profile.dropin_for("service")
    lines = [
        *floor.parse_unit_text(HEAD + "Nice=1\n", "foo.service"),
        *floor.parse_unit_text("[Service]\nType=simple\n", "50-admin.conf"),
        *(floor.parse_unit_text(dropin.text, "10-profile.conf") if dropin else ()),
    ]
    suspects = {"foo.service", "50-admin.conf"}
    text = dropin.text if dropin else "[Service]\nPrivateNetwork=yes\n"

    cheap = shown(attaches, profile, systemd)
    cheap_verify = floor.undone(
        "foo.service", lines, suspects, profile, systemd=systemd, profile_text=text
    )
    monkeypatch.setattr(floor, "undone", full_undone)
    assert shown(attaches, profile, systemd) == cheap
    assert cheap_verify == full_undone(
        "foo.service", lines, suspects, profile, systemd=systemd, profile_text=text
    )


def test_the_ungraded_units_are_refused_only_by_the_rules() -> None:
    # What the comparison above covers is the cheap path indeed: none of these sets a graded
    # setting, and the rules still refuse what they refuse.
    for text, name in UNGRADED_UNITS:
        assert not any(floor._graded(a) for a in floor.parse_unit_text(text, name)), text
    found = check_units([unit(UNGRADED_UNITS[3][0])], builtin("strict", 257), systemd=257)
    assert [f.setting for f in found] == ["ExecStartPre", "StandardOutput", "KillMode"]


def test_the_cheap_path_does_not_import_the_score() -> None:
    code = """
import sys
from portable.plugin.types import Profile, ProfileDropin, UnitFile
from portable.security.floor import check_units
from portable.security.floor_tables import builtin_floor
p = Profile(name="strict", description="", floor=builtin_floor("strict"),
            dropins={"service": ProfileDropin(text="[Service]\\nIPAddressDeny=any\\n")})
u = UnitFile(name="a.service", source="/a.service", resolved="/a.service",
             data=b"[Service]\\nExecStart=/bin/true\\n")
assert check_units([u], p, systemd=257) == []
assert "portable.security.score" not in sys.modules, "cheap path"
assert "portable.security.settings" not in sys.modules, "cheap path"
u = UnitFile(name="a.service", source="/a.service", resolved="/a.service",
             data=b"[Service]\\nExecStart=/bin/true\\nIPAddressAllow=any\\n")
assert [f.setting for f in check_units([u], p, systemd=257)] == ["IPAddressAllow"]
assert "portable.security.score" in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
