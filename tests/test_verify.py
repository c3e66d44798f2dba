"""portable verify's promise and comparison without a running service: what each systemd
version's reading of the attached files promises, against a made-up process (the real thing is
tests/test_box_verify.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portable.plugins.profiles.builtin import data_path
from portable.security.verify import LOG_SOCKETS, Mount, Observed, compare, promised_settings
from portable.systemd.host import Host

UNIT = "[Service]\nExecStart=/usr/bin/sleep infinity\n"


def attach_files(root: Path, profile: str, systemd: int, extra: str = "") -> None:
    """What attaching a directory image with ``profile`` leaves (the parts verify reads)."""
    where = root / "run/systemd/system.attached"
    (where / "v.service.d").mkdir(parents=True)
    (where / "v.service").write_text(UNIT)
    (where / "v.service.d/10-profile.conf").write_text(data_path(profile, systemd).read_text())
    (where / "v.service.d/20-portable.conf").write_text(
        "[Service]\nRootDirectory=/srv/v_1\n" + extra
    )


def observed(mounts: list[Mount]) -> Observed:
    """A process as sandboxed as the strict profile wants, with these mounts."""
    return Observed(
        pid=0,  # no such process: nothing is resolved inside it
        uid=61200,
        cap_bounding=0,
        no_new_privs=True,
        seccomp=2,
        netns_inode=(1, 2),
        host_netns_inode=(1, 1),
        links=[("lo", None, True)],
        mounts=mounts,
    )


def ro(path: str) -> Mount:
    return Mount(mount_point=path, fstype="tmpfs", source="tmpfs", read_only=True)


BASE = [
    Mount(mount_point="/", fstype="ext4", source="/dev/x", read_only=True),
    ro("/proc/sys"),
    ro("/sys/fs/cgroup"),
    ro("/etc/machine-id"),
    Mount(mount_point="/dev", fstype="tmpfs", source="tmpfs", read_only=False),
]


@pytest.mark.parametrize(("systemd", "tmp"), [(252, "yes"), (257, "disconnected")])
def test_strict_promise_by_version(tmp_path, systemd, tmp):
    attach_files(tmp_path, "strict", systemd)
    host = Host(tmp_path)
    settings, profile, files = promised_settings("v.service", host=host, systemd=systemd)
    assert profile == "strict"
    # 252's profile says PrivateTmp=yes; 257's leaves the private /tmp to DynamicUser=yes
    assert settings.private_tmp == ("connected" if systemd == 252 else "disconnected")
    assert ("PrivateTmp" in settings.implied) == (systemd == 257)
    items = {i.check: i for i in compare(settings, observed(BASE), host=host)}
    why = "PrivateTmp=yes" if systemd == 252 else "PrivateTmp=disconnected by DynamicUser=yes"
    assert items["/tmp"].promised == f"private ({why})"
    assert (items["/tmp"].seen, items["/tmp"].ok) == ("shared", False)
    assert items["read-only /"].promised == "read-only (ProtectSystem=strict)"
    if systemd == 252:
        # the profile's BindReadOnlyPaths= of the log sockets (none mounted here)
        assert items["read-only /run/systemd/journal/socket"].seen == "not mounted"
        assert "read-only /run/systemd/journal/dev-log" not in items
    else:
        # BindLogSockets=yes, but this host has none of the sockets: systemd skips them
        assert not any(f"read-only {s}" in items for s in LOG_SOCKETS)


def test_257_log_sockets_where_the_host_has_them(tmp_path):
    attach_files(tmp_path, "default", 257)
    for socket in LOG_SOCKETS:
        (tmp_path / socket.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / socket.lstrip("/")).touch()
    host = Host(tmp_path)
    settings, _, _ = promised_settings("v.service", host=host, systemd=257)
    tmp = Mount(mount_point="/tmp", fstype="tmpfs", source="tmpfs", read_only=False)
    mounts = [*BASE, tmp, ro(LOG_SOCKETS[0]), ro(LOG_SOCKETS[1])]
    items = {i.check: i for i in compare(settings, observed(mounts), host=host)}
    rows = [items[f"read-only {s}"] for s in LOG_SOCKETS]
    assert {r.promised for r in rows} == {"read-only (BindLogSockets=yes)"}
    assert [(r.seen, r.ok) for r in rows] == [
        ("read-only", True),
        ("read-only", True),
        ("not mounted", False),
    ]
    assert items["/tmp"].ok


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ("", "BindLogSockets= by MountAPIVFS=yes"),  # the trusted profile says MountAPIVFS=yes
        ("MountAPIVFS=no\nBindLogSockets=yes\n", "BindLogSockets=yes"),
        ("MountAPIVFS=no\n", None),
        ("BindLogSockets=no\n", None),
    ],
)
def test_257_bind_log_sockets_in_effect(tmp_path, extra, why):
    attach_files(tmp_path, "trusted", 257, extra)
    for socket in LOG_SOCKETS:
        (tmp_path / socket.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / socket.lstrip("/")).touch()
    host = Host(tmp_path)
    settings, _, _ = promised_settings("v.service", host=host, systemd=257)
    items = {i.check: i for i in compare(settings, observed(BASE), host=host)}
    promised = {items[f"read-only {s}"].promised for s in LOG_SOCKETS if f"read-only {s}" in items}
    assert promised == ({f"read-only ({why})"} if why else set())
    # on 252 the same files bind nothing of the kind (BindLogSockets= is unknown there)
    settings, _, _ = promised_settings("v.service", host=host, systemd=252)
    assert not settings.effective_bind_log_sockets


@pytest.mark.parametrize(
    ("value", "row"),
    [("yes", True), ("strict", True), ("private", False)],
)
def test_257_protect_control_groups(tmp_path, value, row):
    """private: a cgroup namespace with a writable cgroupfs of its own, nothing read-only."""
    attach_files(tmp_path, "trusted", 257, f"ProtectControlGroups={value}\n")
    host = Host(tmp_path)
    settings, _, _ = promised_settings("v.service", host=host, systemd=257)
    items = {i.check: i for i in compare(settings, observed(BASE), host=host)}
    assert ("read-only /sys/fs/cgroup" in items) is row
    if row:
        assert items["read-only /sys/fs/cgroup"].promised == (
            f"read-only (ProtectControlGroups={value})"
        )
