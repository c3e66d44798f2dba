"""The sandbox floor (issue 16): the settings an image's unit files may not use to undo the
profile it is attached with, and attach refusing them.

portablectl (252 and 257) attaches every one of these cases; the box tests
(``test_box_floor.py``) show what each does to a real host. Here: each rule of the built-in
tables, the profile-holding rule, the images that must still attach, and the refusal itself
(one line per finding, nothing written, ``--allow-setting`` as the only way past it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import roots
from helpers.roots import unit_file as unit

from portable.engine.attach import attach
from portable.plugin.registry import make_registry
from portable.plugin.types import AttachOptions, Floor, FloorRule, Profile, ProfileDropin
from portable.security.floor import (
    BUILTIN,
    NO_NETWORK,
    NONE,
    STANDARD,
    FloorViolation,
    check_unit,
    check_units,
)
from portable.systemd.host import Host
from portable.testing.images import make_directory_image

HEAD = "[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/sleep infinity\n"


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    registry = make_registry(root=Path("/nonexistent-root"), load_entrypoints=False)
    return {name: registry.profile(name).spec for name in BUILTIN}


def findings(
    profiles: dict[str, Profile],
    text: str,
    *,
    name: str = "foo.service",
    profile: str = "default",
    systemd: int = 257,
    others: tuple[str, ...] = (),
) -> list[str]:
    units = [unit(text, name), *(unit("[Unit]\n", o) for o in others)]
    found = check_units(units, profiles[profile], systemd=systemd)
    return [str(f) for f in found]


# Each case of the issue, by what it does to the host when portablectl attaches it.
HOSTILE = [
    ("User=root\n", "foo.service:6: User=root: undoes what profile 'default' sets"),
    ("User=0\n", "foo.service:6: User=0: undoes what profile 'default' sets"),
    ("ExecStartPre=+/bin/cat /proc/1/root/etc/shadow\n", "ExecStartPre=+/bin/cat"),
    ("ExecStartPost=-!!/bin/sh\n", "runs with full privileges"),
    ("ExecStart=\nExecStart=/bin/true ; +/bin/sh\n", "ExecStart=/bin/true ; +/bin/sh"),
    ("PermissionsStartOnly=yes\n", "PermissionsStartOnly=yes"),
    ("BindReadOnlyPaths=/etc:/mnt\n", "BindReadOnlyPaths=/etc:/mnt: makes a path of the host"),
    ("BindPaths=-/home\n", "BindPaths=-/home"),
    ("LoadCredential=pw:/etc/shadow\n", "LoadCredential=pw:/etc/shadow: reads files of the host"),
    ("LoadCredentialEncrypted=k:/etc/k\n", "LoadCredentialEncrypted="),
    ("ImportCredential=*\n", "ImportCredential=*"),
    ("EnvironmentFile=/etc/default/keys\n", "EnvironmentFile=/etc/default/keys"),
    ("EnvironmentFile=-/etc/default/../shadow\n", "EnvironmentFile=-/etc/default/../shadow"),
    ("NetworkNamespacePath=/proc/1/ns/net\n", "joins a namespace of the host"),
    ("IPCNamespacePath=/proc/1/ns/ipc\n", "IPCNamespacePath="),
    ("RootImage=/var/lib/portables/other.raw\n", "RootImage=/var/lib/portables/other.raw"),
    ("RootDirectory=/\n", "RootDirectory=/: runs the service on"),
    ("MountImages=/srv/x.raw:/mnt\n", "MountImages="),
    ("ExtensionDirectories=/srv/ext\n", "ExtensionDirectories="),
    ("StandardOutput=truncate:/etc/x\n", "StandardOutput=truncate:/etc/x: writes to a file"),
    ("StandardError=append:/etc/x\n", "StandardError=append:/etc/x"),
    ("StandardInput=file:/etc/shadow\n", "StandardInput=file:/etc/shadow: opens a file"),
    ("TTYPath=/dev/tty1\n", "TTYPath=/dev/tty1"),
    ("KillMode=none\n", "KillMode=none: leaves the service's processes running"),
    ("StateDirectory=foo ssh\n", "StateDirectory=ssh: gives the service a host directory"),
    ("RuntimeDirectory=dbus\n", "RuntimeDirectory=dbus"),
    ("CapabilityBoundingSet=CAP_SYS_PTRACE\n", "CapabilityBoundingSet=CAP_SYS_PTRACE: undoes"),
    ("RestrictAddressFamilies=AF_PACKET\n", "RestrictAddressFamilies=AF_PACKET: undoes"),
    ("SystemCallFilter=@mount\n", "SystemCallFilter=@mount: undoes"),
]


@pytest.mark.parametrize("setting,expected", HOSTILE, ids=[h[0].split("=")[0] for h in HOSTILE])
@pytest.mark.parametrize("systemd", [252, 257])
def test_each_case_is_refused_under_default(
    profiles: dict[str, Profile], setting: str, expected: str, systemd: int
) -> None:
    found = findings(profiles, HEAD + setting, systemd=systemd)
    assert any(expected in f for f in found), found
    assert all(f.startswith("foo.service:") for f in found)
    # The same image under trusted: nothing (it promises no sandbox).
    assert findings(profiles, HEAD + setting, profile="trusted", systemd=systemd) == []


def test_dependencies_and_aliases_of_host_units(profiles: dict[str, Profile]) -> None:
    text = (
        "[Unit]\nWants=ssh.service network-online.target foo-helper.service\n"
        "Conflicts=shutdown.target sshd.service\nOnFailure=%p-failed.service\n"
        "Requires=dbus.socket\n[Service]\nExecStart=/bin/true\n"
        "[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\nAlias=foo-alias.service\n"
        "Also=foo.socket getty@tty1.service\n"
    )
    found = findings(profiles, text, others=("foo-helper.service", "foo.socket"))
    assert found == [
        "foo.service:2: Wants=ssh.service: starts, stops or reloads a unit of the host",
        "foo.service:3: Conflicts=sshd.service: starts, stops or reloads a unit of the host",
        "foo.service:4: OnFailure=%p-failed.service: starts, stops or reloads a unit of the host",
        "foo.service:5: Requires=dbus.socket: starts, stops or reloads a unit of the host",
        "foo.service:10: Alias=sshd.service: shadows a unit of the host of that name when enabled",
        "foo.service:12: Also=getty@tty1.service: starts, stops or reloads a unit of the host",
    ]


def test_socket_and_path_units(profiles: dict[str, Profile]) -> None:
    sock = (
        "[Socket]\nListenStream=/etc/x\nListenStream=/run/foo.sock\nListenStream=/run/foo/a.sock\n"
        "ListenStream=/run/dbus/system_bus_socket\nListenFIFO=/run/../etc/fifo\n"
        "ListenStream=@foo-abstract\nListenStream=8080\nSymlinks=/etc/y\nService=ssh.service\n"
    )
    found = findings(profiles, sock, name="foo.socket", others=("foo.service",))
    assert [f.split(": ")[0] for f in found] == [
        "foo.socket:2",
        "foo.socket:5",
        "foo.socket:6",
        "foo.socket:9",
        "foo.socket:10",
    ]
    # PrivateNetwork=yes profiles also keep host network sockets away.
    strict = findings(profiles, sock, name="foo.socket", profile="strict", others=("foo.service",))
    assert "foo.socket:8: ListenStream=8080: hands the service a socket on the host's network" in (
        " ".join(strict)
    )
    # A socket unit's commands run on the host's root as root: no profile, no RootDirectory=.
    exec_sock = "[Socket]\nListenStream=/run/foo.sock\nExecStartPre=/bin/sh -c id\n"
    assert findings(profiles, exec_sock, name="foo.socket", others=("foo.service",)) == [
        "foo.socket:3: ExecStartPre=/bin/sh -c id: runs on the host's root, as root: a socket "
        "unit gets neither the profile nor the image's root directory"
    ]
    path = "[Path]\nPathChanged=/etc/foo\nMakeDirectory=yes\nUnit=foo.service\n"
    assert findings(profiles, path, name="foo.path", others=("foo.service",)) == [
        "foo.path:3: MakeDirectory=yes: makes directories on the host"
    ]
    timer = "[Timer]\nOnCalendar=daily\nUnit=apt-daily.service\n"
    assert findings(profiles, timer, name="foo.timer") == [
        "foo.timer:3: Unit=apt-daily.service: starts, stops or reloads a unit of the host"
    ]


def test_profile_holding(profiles: dict[str, Profile]) -> None:
    # strict denies all IP traffic; the unit allowing it takes that back.
    text = HEAD + "IPAddressAllow=any\n"
    assert findings(profiles, text, profile="default") == []
    assert findings(profiles, text, profile="strict") == [
        "foo.service:6: IPAddressAllow=any: undoes what profile 'strict' sets: Service may "
        "exchange IP traffic with non-localhost addresses (IPAddressDeny=)"
    ]
    # Only the setting that loosens is blamed, not the unit's own IPAddressDeny=any.
    text = HEAD + "IPAddressDeny=any\nIPAddressAllow=localhost\n"
    assert [f.split(": ")[0] for f in findings(profiles, text, profile="strict")] == [
        "foo.service:7"
    ]
    # Settings the profile writes after the unit win anyway: nothing to refuse.
    ok = HEAD + "PrivateDevices=no\nProtectSystem=no\nDynamicUser=no\nNoNewPrivileges=no\n"
    assert findings(profiles, ok, profile="strict") == []
    # What the profile doesn't promise is the image's business (NotifyAccess=all, Delegate=).
    assert findings(profiles, HEAD + "NotifyAccess=all\nUser=app\n") == []


def test_images_that_must_still_attach(profiles: dict[str, Profile]) -> None:
    svc = (
        "[Unit]\nDescription=web\nWants=network-online.target foo.socket\n"
        "After=network-online.target ssh.service\nRequires=foo.socket\n"
        "Conflicts=shutdown.target\n[Service]\nExecStartPre=-/bin/mkdir -p /tmp/x\n"
        "ExecStart=@/bin/httpd httpd -f\nExecReload=/bin/kill -HUP $MAINPID\n"
        "StateDirectory=foo\nRuntimeDirectory=foo/run foo-cache\nLogsDirectory=%N\n"
        "StandardOutput=journal\nKillMode=mixed\nUser=app\nEnvironment=A=1\n"
        "EnvironmentFile=-/etc/default/foo\nEnvironmentFile=-/etc/sysconfig/foo-web\n"
        "PrivateNetwork=no\n[Install]\nWantedBy=multi-user.target\nAlias=foo-web.service\n"
    )
    sock = "[Socket]\nListenStream=/run/foo.sock\nListenStream=0.0.0.0:8080\n[Install]\n"
    units = [unit(svc), unit(sock, "foo.socket")]
    for name in ("default", "trusted"):
        assert check_units(units, profiles[name], systemd=257) == []
    # PrivateNetwork=yes profiles only refuse the network socket.
    for name in ("strict", "nonetwork"):
        found = check_units(units, profiles[name], systemd=257)
        assert [(f.unit, f.line, f.setting) for f in found] == [("foo.socket", 3, "ListenStream")]


def test_builtin_tables() -> None:
    assert BUILTIN == {
        "default": STANDARD,
        "nonetwork": NO_NETWORK,
        "strict": NO_NETWORK,
        "trusted": NONE,
    }
    assert set(STANDARD.rules) < set(NO_NETWORK.rules)
    assert NONE.rules == () and not NONE.hold_profile


def test_a_profile_without_a_floor_gets_the_standard_one() -> None:
    plain = Profile(
        name="mine",
        description="x",
        dropins={"service": ProfileDropin(text="[Service]\nDynamicUser=yes\n")},
    )
    text = HEAD + "User=root\nBindPaths=/etc\n"
    found = check_unit(unit(text), plain, systemd=257)
    assert [f.setting for f in found] == ["User", "BindPaths"]
    # A plugin's own table: only its rules, and it may turn the holding rule off.
    own = Profile(
        name="mine",
        description="x",
        dropins=plain.dropins,
        floor=Floor(rules=(FloorRule(setting="Nice", reason="no"),), hold_profile=False),
    )
    assert [f.setting for f in check_unit(unit(text + "Nice=-5\n"), own)] == ["Nice"]
    with pytest.raises(Exception, match="unknown match 'sometimes'"):
        FloorRule(setting="Nice", match="sometimes", reason="x")


def test_allow_and_hostile_text(profiles: dict[str, Profile]) -> None:
    text = HEAD + "BindPaths=/etc\nUser=root\nExecStart=+/bin/sh -c '\x1b[2Jgot you'\n"
    found = check_units([unit(text)], profiles["default"], allow=("BindPaths", "User"))
    assert [f.setting for f in found] == ["ExecStart"]
    assert "\x1b" not in str(found[0]) and "\\x1b[2J" in str(found[0])
    long = HEAD + "BindPaths=" + "/x" * 200 + "\n"
    (f,) = check_units([unit(long)], profiles["default"])
    assert len(str(f)) < 200 and "..." in str(f)


def test_a_huge_unit_file_is_checked_in_bounded_time(profiles: dict[str, Profile]) -> None:
    # 1 MB of settings that each grade nothing: the line search is bounded, the check linear.
    text = HEAD + "Environment=A=1\n" * 60000 + "CapabilityBoundingSet=CAP_SYS_PTRACE\n"
    found = check_units([unit(text)], profiles["default"], systemd=257)
    assert [(f.line, f.setting) for f in found] == [(60006, "CapabilityBoundingSet")]


def test_a_typed_prefix_does_not_make_host_units_the_images(root: Path) -> None:
    # attach IMG IMG dbus: takes the image's units named dbus*, but the host's dbus.service
    # is still the host's, and /run/dbus is still the host's directory.
    make_directory_image(
        root / "srv/images/foo",
        units={
            "foo.service": HEAD + "Wants=dbus.service\n",
            "foo.socket": "[Socket]\nListenStream=/run/dbus/system_bus_socket\n",
        },
        busybox=False,
    )
    registry = make_registry(root=root, load_entrypoints=False)
    with pytest.raises(FloorViolation) as exc:
        attach(
            "/srv/images/foo",
            AttachOptions(runtime=True, prefixes=("foo", "dbus")),
            host=Host(root),
            registry=registry,
        )
    assert [(f.unit, f.setting) for f in exc.value.findings] == [
        ("foo.service", "Wants"),
        ("foo.socket", "ListenStream"),
    ]


def test_names_after_the_image_are_its_own(profiles: dict[str, Profile]) -> None:
    # Debian's redis-server.service says Alias=redis.service: named after the image redis_7.0.
    text = HEAD + "StateDirectory=redis\n[Install]\nAlias=redis.service\nAlias=sshd.service\n"
    units = [unit(text, "redis-server.service")]
    found = check_units(units, profiles["default"], image_prefixes=("redis",), systemd=257)
    assert [(f.line, f.value) for f in found] == [(9, "sshd.service")]
    found = check_units(units, profiles["default"], systemd=257)
    assert [f.value for f in found] == ["redis", "redis.service", "sshd.service"]


# --- attach -----------------------------------------------------------------------------------


root = roots.host_root  # (a fixture)


def listing(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    )


def test_attach_refuses_and_writes_nothing(root: Path) -> None:
    make_directory_image(
        root / "srv/images/foo",
        units={
            "foo.service": HEAD + "ExecStartPost=+/bin/cat /proc/1/root/etc/shadow\n"
            "BindReadOnlyPaths=/etc:/mnt\n"
        },
        busybox=False,
    )
    registry = make_registry(root=root, load_entrypoints=False)
    before = listing(root)
    for force in (False, True):  # --force does not override the floor
        with pytest.raises(FloorViolation) as exc:
            attach(
                "/srv/images/foo",
                AttachOptions(runtime=True, force=force),
                host=Host(root),
                registry=registry,
            )
        assert str(exc.value).splitlines() == [
            "Image '/srv/images/foo' has unit settings that undo the sandbox of profile "
            "'default' (2), refusing; --allow-setting=BindReadOnlyPaths,ExecStartPost attaches "
            "it anyway:",
            "  foo.service:6: ExecStartPost=+/bin/cat /proc/1/root/etc/shadow: runs with full "
            "privileges, outside the sandbox (the host's files are reachable through "
            "/proc/1/root)",
            "  foo.service:7: BindReadOnlyPaths=/etc:/mnt: makes a path of the host visible "
            "inside the service",
        ]
        assert listing(root) == before
    # Naming the settings attaches it; trusted attaches it as is.
    opts = AttachOptions(runtime=True, allow_settings=("ExecStartPost", "BindReadOnlyPaths"))
    attach("/srv/images/foo", opts, host=Host(root), registry=registry)
    assert (root / "run/systemd/system.attached/foo.service").exists()
