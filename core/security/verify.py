"""``portable verify``: does a running service get the sandbox its profile promises?

The promise is what the attach wrote: the unit file and the drop-ins next to it in the attached
directory (``10-profile.conf``, ``20-portable.conf``), read as the running systemd reads them
(:mod:`portable.security.score`; e.g. on 257, whose profiles no longer say ``PrivateTmp=yes``,
``DynamicUser=yes`` is what promises a private ``/tmp``). Drop-ins elsewhere (an
administrator's ``/etc/systemd/system/UNIT.d/``) are *not* part of the promise: a setting there
that weakens the sandbox is what this finds. What the service really got is read from the
kernel, for its main process:

* network: its network namespace (``/proc/PID/ns/net``) - the host's, a private one
  (``PrivateNetwork=``), or the named one of ``NetworkNamespacePath=`` - and the links and
  addresses in it (pyroute2, in that namespace);
* ``CapBnd``, ``NoNewPrivs``, ``Seccomp`` and ``Uid`` in ``/proc/PID/status``;
* its root directory (``/proc/PID/root`` against ``RootDirectory=``; for ``RootImage=``, the
  loop device mounted as its ``/``);
* read-only mounts in ``/proc/PID/mountinfo``: ``/`` (``ProtectSystem=strict``), ``/usr``
  (``yes``/``full``), ``/etc`` (``full``), ``/proc/sys`` (``ProtectKernelTunables=``),
  ``/sys/fs/cgroup`` (``ProtectControlGroups=yes``/``strict``), each ``BindReadOnlyPaths=``
  target, and from systemd 257 on the journal's three sockets where ``BindLogSockets=`` is in
  effect (said, or implied by ``MountAPIVFS=``, itself implied by a root directory or image);
  a private ``/dev`` (``PrivateDevices=``) and ``/tmp`` (``PrivateTmp=``, or implied by
  ``DynamicUser=``).

Besides, from the service manager: the unit as it loaded it (``FragmentPath``, ``DropInPaths``),
held to the sandbox floor of the profile it was attached with (:mod:`portable.security.floor`), all
but
the attach's own two drop-ins checked, so a drop-in added anywhere after the attach that reaches
past the sandbox is named ``file:line`` (:func:`floor_items`); and ``KillMode=`` (not ``none``).

A service that is not running but need not be (inactive and started by a timer, socket or path
unit, a oneshot between runs) is checked on all but its process: its load state, that its
trigger is active, the floor and kill mode; the kernel's rows say "not checked"
(:func:`not_running_status`). A failed service, or a long-running one nothing starts, fails.

A check passes when what is seen is at least as strict as the promise (fewer capabilities than
promised is fine). Needs root (other processes' ``/proc`` entries) and, for the main PID, the
service manager.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portable.engine.detach import find_attached
from portable.engine.dropins import MARKER_FILE, PROFILE_FILE
from portable.engine.state import attached_units, read_marker_line, recorded_profile
from portable.errors import PortableError
from portable.images.arguments import derived_prefixes, normalize_image_arg
from portable.plugin.registry import Registry, get_registry
from portable.plugin.types import Floor, Profile, ProfileDropin, UnitFile, validate_profile_name
from portable.security.floor import STANDARD, FloorFinding, check_unit, floor_of, undone
from portable.security.settings import ServiceSettings, words
from portable.security.sources import UnitSource, find_unit_file, load_settings
from portable.security.tables import capability_names
from portable.systemd.host import ATTACHED_DIR, Host
from portable.systemd.manager import ACTIVE_STATES, UNIT_IFACE, Manager
from portable.systemd.names import (
    TRIGGER_UNIT_TYPES,
    is_portable_unit_type,
    parse_marker,
    printable_path,
    unit_type,
)
from portable.systemd.unitfile import Assignment, parse_unit_text
from portable.systemd.version import detect

__all__ = [
    "DYNAMIC_UID_MAX",
    "DYNAMIC_UID_MIN",
    "BrokenProfile",
    "Item",
    "LoadedUnit",
    "Observed",
    "UnitReport",
    "compare",
    "floor_items",
    "loaded_unit",
    "observe",
    "promised_settings",
    "verify",
    "verify_unit",
]

DYNAMIC_UID_MIN, DYNAMIC_UID_MAX = 61184, 65519
SETUP_WAIT = 3.0  # seconds to wait for a main process still being set up by systemd


@dataclass(frozen=True, kw_only=True, slots=True)
class Item:
    """One row: what the profile promises, what the process has, and whether that holds."""

    check: str
    promised: str
    seen: str
    ok: bool | None  # None: not checked (the service is not running)
    # the sandbox floor's: the settings that undo the profile (None for the other checks)
    findings: tuple[FloorFinding, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "promised": self.promised,
            "seen": self.seen,
            "ok": self.ok,
        }
        if self.findings is not None:
            out["findings"] = [{**f.to_json(), "text": _finding_text(f)} for f in self.findings]
        return out

    @property
    def finding_lines(self) -> list[str]:
        """The findings as ``file:line: Setting=value: reason`` lines."""
        return [_finding_text(f) for f in self.findings or ()]


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitReport:
    """The verification of one service. ``error`` is set when it could not be looked at (not
    running and nothing starts it, failed, ...), which counts as a mismatch. ``status`` is
    ``running``, ``not running (triggered by X)``... ("" if the manager was not asked)."""

    unit: str
    pid: int | None
    profile: str | None
    items: tuple[Item, ...] = ()
    error: str = ""
    files: tuple[str, ...] = ()
    status: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(i.ok is not False for i in self.items)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "pid": self.pid,
            "profile": self.profile,
            "status": self.status or None,
            "ok": self.ok,
            "error": self.error or None,
            "files": list(self.files),
            "checks": [i.to_json() for i in self.items],
        }


# --- the promise ---------------------------------------------------------------------------------


class BrokenProfile(PortableError):
    """A unit's profile drop-in is there but can't be read (a dangling link)."""


def _broken_profile(local: Path, exc: OSError) -> BrokenProfile:
    why = exc.strerror or str(exc)
    if local.is_symlink():
        why += f": it links to {os.readlink(local)}"
    return BrokenProfile(
        f"{local.parent.name}/{local.name} can't be read ({why}), so systemd runs the service "
        "without its profile's sandbox; attach the image again"
    )


def _read(path: str | os.PathLike[str], limit: int = 4 << 20) -> str:
    """At most ``limit`` bytes of a regular file (a FIFO or device named like a drop-in would
    block or never end: OSError)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return f.read(limit).decode("utf-8", "surrogateescape")


def promised_settings(
    unit: str, *, host: Host, systemd: int | None = None
) -> tuple[ServiceSettings, str | None, tuple[str, ...]]:
    """What the unit's own files promise: the unit file found in the unit search path and the
    ``*.conf`` drop-ins in ``UNIT.d/`` next to it, in name order, read as systemd ``systemd``
    reads them (``None``: the host's, :func:`portable.systemd.version.detect`).

    :returns: (settings, profile name or None, the files read).
    :raises PortableError: no such unit file.
    """
    fragment = find_unit_file(unit, host=host)
    dropins: list[tuple[str, str]] = []
    dropin_dir = f"{fragment}.d"
    profile = None
    try:
        names = sorted(n for n in os.listdir(host.path(dropin_dir)) if n.endswith(".conf"))
    except OSError:
        names = []
    for name in names:
        try:
            dropins.append((f"{dropin_dir}/{name}", _read(host.path(f"{dropin_dir}/{name}"))))
        except OSError as exc:
            if name == PROFILE_FILE:
                # e.g. a link into a package that was removed: systemd skips the drop-in, so
                # the service runs without its sandbox
                raise _broken_profile(host.path(f"{dropin_dir}/{name}"), exc) from None
            continue
        if name == PROFILE_FILE:
            profile = recorded_profile(host, f"{dropin_dir}/{name}")
    source = UnitSource(
        name=unit, text=_read(host.path(fragment)), dropins=tuple(dropins), path=fragment
    )
    if systemd is None:
        systemd = detect(host).major
    return load_settings(source, systemd=systemd), profile, source.files


# --- what the kernel says ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mount:
    mount_point: str
    fstype: str
    source: str
    read_only: bool
    device: str = ""  # "major:minor"


@dataclass(kw_only=True)
class Observed:
    """What a process has, read from ``/proc/PID`` (and its network namespace)."""

    pid: int
    uid: int
    cap_bounding: int
    no_new_privs: bool
    seccomp: int
    netns_inode: tuple[int, int]
    host_netns_inode: tuple[int, int]
    links: list[tuple[str, str | None, bool]] = field(default_factory=list)  # name, kind, up
    addresses: list[tuple[str, str]] = field(default_factory=list)  # link name, address/len
    root: tuple[int, int] = (0, 0)
    mounts: list[Mount] = field(default_factory=list)
    network_error: str = ""

    def mount_at(self, path: str) -> Mount | None:
        """The mount that ``path`` is on (the last one mounted on its longest prefix)."""
        best: Mount | None = None
        best_len = -1
        for m in self.mounts:
            mp = m.mount_point
            covers = path == mp or mp == "/" or path.startswith(mp.rstrip("/") + "/")
            if covers and len(mp) >= best_len:
                best, best_len = m, len(mp)
        return best


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out = []
    i = 0
    while i < len(field_):
        if field_[i] == "\\" and i + 3 < len(field_) + 1 and field_[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def _mounts(pid: int) -> list[Mount]:
    mounts = []
    for line in _read(f"/proc/{pid}/mountinfo").splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        if len(fields) < 6:
            continue
        post_fields = post.split()
        mounts.append(
            Mount(
                mount_point=_unescape(fields[4]),
                fstype=post_fields[0] if post_fields else "",
                source=_unescape(post_fields[1]) if len(post_fields) > 1 else "",
                read_only="ro" in fields[5].split(","),
                device=fields[2],
            )
        )
    return mounts


def _inode(path: str | os.PathLike[str]) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _network(pid: int, observed: Observed) -> None:
    # Imported here: pyroute2 takes ~110 ms to import, as long as the rest of verify, and only
    # a running service is looked at with it (not a stopped one, nor --help).
    from pyroute2 import NetNS

    with NetNS(f"/proc/{pid}/ns/net", flags=0) as ns:
        names = {}
        for link in ns.get_links():
            name = str(link.get("IFLA_IFNAME"))
            names[link["index"]] = name
            kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            observed.links.append(
                (name, None if kind is None else str(kind), bool(link["flags"] & 1))
            )
        for family in (socket.AF_INET, socket.AF_INET6):
            for a in ns.get_addr(family=family):
                address = f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"
                observed.addresses.append((names.get(a["index"], str(a["index"])), address))


def observe(pid: int) -> Observed:
    """Read a process's sandbox from the kernel (needs root)."""
    status: dict[str, str] = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    observed = Observed(
        pid=pid,
        uid=int(status.get("Uid", "0").split()[0]),
        cap_bounding=int(status.get("CapBnd", "0"), 16),
        no_new_privs=status.get("NoNewPrivs", "0") == "1",
        seccomp=int(status.get("Seccomp", "0")),
        netns_inode=_inode(f"/proc/{pid}/ns/net"),
        host_netns_inode=_inode("/proc/1/ns/net"),
        root=_inode(f"/proc/{pid}/root"),
        mounts=_mounts(pid),
    )
    try:
        _network(pid, observed)
    except Exception as exc:  # the process may be gone; pyroute2 errors are not one type
        observed.network_error = f"{type(exc).__name__}: {exc}"
    return observed


# --- comparing ---------------------------------------------------------------------------------


def _caps_text(mask: int, all_caps: int) -> str:
    if mask & all_caps == all_caps:
        return "all"
    names = [n.lower() for n in capability_names(mask & all_caps)]
    return " ".join(names) if names else "(none)"


def _all_caps() -> int:
    try:
        last = int(_read("/proc/sys/kernel/cap_last_cap", 64))
    except (OSError, ValueError):
        last = 40
    return (1 << (last + 1)) - 1


def _bind_ro_targets(settings: ServiceSettings) -> list[tuple[str, bool]]:
    """BindReadOnlyPaths= targets: (path inside, optional)."""
    out: list[tuple[str, bool]] = []
    for a in settings.assignments:
        if a.section != "Service" or a.key != "BindReadOnlyPaths":
            continue
        if not a.value:
            out = []
            continue
        for word in words(a.value):
            optional = word.startswith("-")
            spec = word[1:] if optional else word
            parts = spec.split(":")
            out.append((parts[1] if len(parts) > 1 and parts[1] else parts[0], optional))
    return out


def _seccomp_promised(settings: ServiceSettings) -> bool:
    """Settings systemd implements with a seccomp filter: any of them means Seccomp: 2."""
    return bool(
        settings.system_call_filter
        or settings.system_call_filter_allow_list
        or settings.system_call_architectures
        or settings.address_families is not None
        or settings.address_families_allow_list
        or settings.restrict_namespaces != (1 << 64) - 1
        or settings.lock_personality
        or settings.memory_deny_write_execute
        or settings.restrict_realtime
        or settings.restrict_suid_sgid
        or settings.protect_kernel_modules
        or settings.protect_kernel_logs
        or settings.protect_clock
        or settings.protect_hostname
        or settings.private_devices
    )


def _network_items(settings: ServiceSettings, seen: Observed, host: Host) -> list[Item]:
    items = []
    own = seen.netns_inode != seen.host_netns_inode
    links = sorted(name for name, _, _ in seen.links)
    link_text = ", ".join(
        name
        + ("" if up else " (down)")
        + "".join(f" {addr}" for ifname, addr in seen.addresses if ifname == name)
        for name, _, up in sorted(seen.links)
    )
    path = settings.network_namespace_path
    if path:
        try:
            wanted = _inode(host.path(path))
        except OSError:
            wanted = None
        items.append(
            Item(
                check="network namespace",
                promised=path,
                seen=path if wanted == seen.netns_inode else "another one" if own else "host's",
                ok=wanted == seen.netns_inode,
            )
        )
        veths = [name for name, kind, up in seen.links if kind == "veth"]
        has_addr = {ifname for ifname, addr in seen.addresses if ":" not in addr}
        fine = (
            not seen.network_error
            and sorted(n for n in links if n != "lo") == veths
            and len(veths) == 1
            and all(up for _, _, up in seen.links)
            and veths[0] in has_addr
        )
        items.append(
            Item(
                check="network links",
                promised="lo and one veth with an IPv4 address, up",
                seen=seen.network_error or link_text or "(none)",
                ok=fine,
            )
        )
    elif settings.private_network:
        items.append(
            Item(
                check="network namespace",
                promised="own (PrivateNetwork=yes)",
                seen="own" if own else "host's",
                ok=own,
            )
        )
        items.append(
            Item(
                check="network links",
                promised="lo only",
                seen=seen.network_error or link_text or "(none)",
                ok=not seen.network_error and links in ([], ["lo"]),
            )
        )
    else:
        items.append(
            Item(
                check="network namespace",
                promised="host's",
                seen="own" if own else "host's",
                ok=True,
            )
        )
    return items


def _user_item(settings: ServiceSettings, seen: Observed) -> Item:
    if settings.dynamic_user and settings.user not in ("0", "root"):
        promised = f"dynamic ({DYNAMIC_UID_MIN}-{DYNAMIC_UID_MAX})"
        ok = DYNAMIC_UID_MIN <= seen.uid <= DYNAMIC_UID_MAX
    elif settings.user and settings.user not in ("0", "root"):
        promised = f"{settings.user} (not root)"
        ok = seen.uid != 0
    else:
        promised, ok = "root", True
    return Item(check="user", promised=promised, seen=f"uid {seen.uid}", ok=ok)


def _root_item(settings: ServiceSettings, seen: Observed, host: Host) -> Item | None:
    if settings.root_directory not in (None, "/"):
        assert settings.root_directory is not None
        try:
            wanted = _inode(host.path(settings.root_directory))
        except OSError:
            wanted = None
        ok = wanted == seen.root
        host_root = _inode("/")
        seen_text = (
            settings.root_directory
            if ok
            else "the host's /"
            if seen.root == host_root
            else "another directory"
        )
        return Item(check="root directory", promised=settings.root_directory, seen=seen_text, ok=ok)
    if settings.root_image:
        root = seen.mount_at("/")
        device = root.device if root is not None else "?"
        backing = _loop_backing(device)
        try:
            st = os.stat(host.path(settings.root_image))
            ok = backing == (st.st_dev, st.st_ino)
        except OSError:
            ok = False
        if ok:
            shown = settings.root_image
        elif backing is not None:
            shown = f"another file (loop device {device})"
        else:
            shown = f"{root.source if root is not None else '?'} (not a loop device)"
        return Item(check="root image", promised=settings.root_image, seen=shown, ok=ok)
    return None


LOOP_MAJOR = 7
LOOP_GET_STATUS64 = 0x4C05


def _loop_backing(device: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file behind loop device "major:minor" (LOOP_GET_STATUS64; the
    file name in sysfs is useless: systemd attaches through /proc/self/fd/N)."""
    try:
        major, minor = (int(x) for x in device.split(":"))
    except ValueError:
        return None
    if major != LOOP_MAJOR:
        return None
    rdev = os.makedev(major, minor)
    node = f"/dev/loop{minor}"
    made = None
    try:
        if not (os.path.exists(node) and os.stat(node).st_rdev == rdev):
            made = tempfile.mkdtemp(prefix="portable-verify-")
            node = f"{made}/loop"
            os.mknod(node, 0o600 | stat.S_IFBLK, rdev)
        fd = os.open(node, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(232))
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        if made is not None:
            with contextlib.suppress(OSError):
                os.unlink(f"{made}/loop")
            with contextlib.suppress(OSError):
                os.rmdir(made)
    lo_device, lo_inode = struct.unpack_from("=QQ", info)
    return lo_device, lo_inode


def _resolve_inside(pid: int, path: str) -> str:
    """``path`` as the process sees it, its last component's symlinks followed (``/dev/log``
    -> ``/run/systemd/journal/dev-log``): bind mounts land on the target."""
    for _ in range(8):
        try:
            target = os.readlink(f"/proc/{pid}/root{path}")
        except OSError:
            return path
        path = os.path.normpath(
            target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
        )
    return path


# What BindLogSockets= binds read-only (systemd 257); each only if the host has it.
LOG_SOCKETS = (
    "/run/systemd/journal/socket",
    "/run/systemd/journal/stdout",
    "/run/systemd/journal/dev-log",
)


def _because(settings: ServiceSettings, key: str, value: str) -> str:
    """``Key=value``, and what implied it if the unit did not say it itself."""
    implied = settings.implied.get(key)
    return f"{key}={value}" + (f" by {implied}" if implied else "")


def _log_sockets_reason(settings: ServiceSettings) -> str:
    if settings.bind_log_sockets and not settings.log_namespace:
        return "BindLogSockets=yes"
    if settings.log_namespace:
        return f"LogNamespace={settings.log_namespace}"
    if settings.mount_apivfs:
        return "BindLogSockets= by MountAPIVFS=yes"
    if settings.mount_apivfs is None and settings.rootfs:
        root = "RootImage=" if settings.root_image else "RootDirectory="
        return f"BindLogSockets= by {root}"
    return "BindLogSockets= by PrivateDevices=yes"


def _ro_items(settings: ServiceSettings, seen: Observed, host: Host | None = None) -> list[Item]:
    wanted: list[tuple[str, str, bool]] = []  # path, why, optional
    system = settings.protect_system
    if system == "strict":
        wanted.append(("/", _because(settings, "ProtectSystem", system), False))
    if system in ("yes", "full", "strict"):
        wanted.append(("/usr", _because(settings, "ProtectSystem", system), False))
    if system in ("full", "strict"):
        wanted.append(("/etc", _because(settings, "ProtectSystem", system), False))
    if settings.protect_kernel_tunables:
        wanted.append(("/proc/sys", "ProtectKernelTunables=yes", False))
    if settings.protect_control_groups in ("yes", "strict"):
        # "private" (257) is a cgroup namespace with a writable cgroupfs of its own
        why = f"ProtectControlGroups={settings.protect_control_groups}"
        wanted.append(("/sys/fs/cgroup", why, False))
    binds: list[tuple[str, str, bool]] = []  # must be mounted exactly there
    for target, optional in _bind_ro_targets(settings):
        binds.append((target, "BindReadOnlyPaths=", optional))
    if settings.effective_bind_log_sockets:
        why = _log_sockets_reason(settings)
        for path in LOG_SOCKETS:
            # systemd skips a socket the host does not have
            there = host is None or os.path.lexists(host.path(path))
            binds.append((path, why, not there))
    exact_only = {path for path, _, _ in binds}
    items = []
    done = set()
    for path, why, optional in wanted + binds:
        if path in done:
            continue
        done.add(path)
        m = seen.mount_at(_resolve_inside(seen.pid, path))
        exact = m is not None and (
            m.mount_point == _resolve_inside(seen.pid, path) or path not in exact_only
        )
        if path in exact_only and not exact:
            if optional:
                continue
            items.append(
                Item(
                    check=f"read-only {path}",
                    promised=f"read-only ({why})",
                    seen="not mounted",
                    ok=False,
                )
            )
            continue
        ro = m is not None and m.read_only
        items.append(
            Item(
                check=f"read-only {path}",
                promised=f"read-only ({why})",
                seen="read-only" if ro else "writable",
                ok=ro,
            )
        )
    if settings.private_devices:
        dev = seen.mount_at("/dev")
        private = dev is not None and dev.mount_point == "/dev" and dev.fstype == "tmpfs"
        items.append(
            Item(
                check="/dev",
                promised="private (PrivateDevices=yes)",
                seen="private" if private else f"{dev.fstype if dev else '?'} (host devices)",
                ok=private,
            )
        )
    if settings.private_tmp != "no":
        # "connected" is what PrivateTmp=yes means (a directory below the host's /tmp)
        tmp_mode = "yes" if settings.private_tmp == "connected" else settings.private_tmp
        tmp = seen.mount_at("/tmp")
        private = tmp is not None and tmp.mount_point == "/tmp"
        items.append(
            Item(
                check="/tmp",
                promised=f"private ({_because(settings, 'PrivateTmp', tmp_mode)})",
                seen="private" if private else "shared",
                ok=private,
            )
        )
    return items


def compare(settings: ServiceSettings, seen: Observed, *, host: Host) -> list[Item]:
    """The rows of the verification: each promise against what the process has."""
    all_caps = _all_caps()
    promised_caps = settings.capability_bounding_set & all_caps
    extra = seen.cap_bounding & ~promised_caps & all_caps
    items = _network_items(settings, seen, host)
    items.append(
        Item(
            check="capability bounding set",
            promised=_caps_text(promised_caps, all_caps),
            seen=_caps_text(seen.cap_bounding, all_caps)
            + (f" (extra: {_caps_text(extra, all_caps)})" if extra else ""),
            ok=not extra,
        )
    )
    items.append(
        Item(
            check="no new privileges",
            promised="yes" if settings.no_new_privileges else "no",
            seen="yes" if seen.no_new_privs else "no",
            ok=seen.no_new_privs or not settings.no_new_privileges,
        )
    )
    want_filter = _seccomp_promised(settings)
    items.append(
        Item(
            check="seccomp",
            promised="filter" if want_filter else "none",
            seen={0: "none", 1: "strict", 2: "filter"}.get(seen.seccomp, str(seen.seccomp)),
            ok=seen.seccomp >= 1 or not want_filter,
        )
    )
    items.append(_user_item(settings, seen))
    root = _root_item(settings, seen, host)
    if root is not None:
        items.append(root)
    items += _ro_items(settings, seen, host)
    return items


# --- the sandbox floor, on the unit as the service manager loaded it ----------------------------

FLOOR_CHECK = "sandbox floor"
MAX_UNIT_FILE = 4 << 20  # bytes read of a unit file or drop-in; a larger one is not checked


class _Unreadable(Exception):
    """A loaded unit file that can't be checked (gone, not a regular file, too large)."""


def _read_unit_file(path: str) -> bytes:
    """A unit file's bytes: a regular file (a FIFO never blocks), at most MAX_UNIT_FILE."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Unreadable("not a regular file")
        chunks = []
        size = 0
        while size <= MAX_UNIT_FILE:
            chunk = os.read(fd, MAX_UNIT_FILE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > MAX_UNIT_FILE:
        raise _Unreadable(f"larger than {MAX_UNIT_FILE >> 20} MiB")
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class LoadedUnit:
    """What the service manager loaded a unit from, and the settings verify asks it for."""

    fragment: str  # FragmentPath ("" if none)
    dropins: tuple[str, ...]  # DropInPaths, in the order systemd applied them
    kill_mode: str


def loaded_unit(unit: str, manager: Manager) -> LoadedUnit:
    """``FragmentPath``, ``DropInPaths`` and ``KillMode`` of ``unit``, from the manager."""
    p = manager.unit_properties(
        unit,
        [(UNIT_IFACE, "FragmentPath"), (UNIT_IFACE, "DropInPaths"), (SERVICE_IFACE, "KillMode")],
        what=f"Failed to get the unit files of {unit}",
    )
    return LoadedUnit(
        fragment=str(p["FragmentPath"]),
        dropins=tuple(str(d) for d in p["DropInPaths"]),
        kill_mode=str(p["KillMode"]),
    )


def _finding_text(f: FloorFinding) -> str:
    if f.setting:
        return str(f)
    where = f"{f.unit}:{f.line}" if f.line else f.unit
    return f"{printable_path(where)}: {f.reason}"


def _attach_dir(unit: str, host: Host) -> str | None:
    """The attached directory whose ``UNIT.d/20-portable.conf`` marks ``unit`` as attached."""
    for directory in ATTACHED_DIR.values():
        if os.path.lexists(host.path(f"{directory}/{unit}.d/{MARKER_FILE}")):
            return directory
    return None


def _own_names(unit: str, directory: str, host: Host) -> tuple[set[str], str]:
    """The units attached from the same image as ``unit`` in ``directory`` (those whose
    ``20-portable.conf`` names the same image: its own, for the floor's rules on dependencies
    and names), and the image's path ("" if not known)."""
    line = read_marker_line(host.path(f"{directory}/{unit}.d/{MARKER_FILE}"))
    marker = parse_marker(line) if line is not None else None
    if not marker:
        return {unit}, ""
    runtime = directory == ATTACHED_DIR[True]
    own = {u.name for u in attached_units(host, runtime) if u.marker[:1] == (marker[0],)}
    return own | {unit}, marker[0]


def _floor_profile(name: str | None, text: str, registry: Registry | None) -> tuple[Profile, str]:
    """The profile to hold the unit to: the attached ``10-profile.conf`` text (what systemd
    loaded) with the floor of the registered profile of that name; :data:`STANDARD` if there
    is none (the second value says so)."""
    floor, note = None, ""
    if registry is None:
        registry = get_registry()
    try:
        if not name or "/" in name:
            raise PortableError("no name")
        floor = floor_of(registry.profile(validate_profile_name(name)).spec)
    except PortableError:
        note = f"profile {name or '(unknown)'} not found: the standard floor"
    shown = name if name and "/" not in name else "unknown"
    try:
        validate_profile_name(shown)
    except PortableError:
        shown = "unknown"
    profile = Profile(
        name=shown,
        description="",
        dropins={"service": ProfileDropin(text=text)},
        floor=floor if floor is not None else STANDARD,
    )
    return profile, note


def floor_items(
    unit: str,
    *,
    host: Host,
    manager: Manager,
    profile_name: str | None,
    systemd: int,
    registry: Registry | None = None,
    allow: Collection[str] = (),
) -> list[Item]:
    """The unit as the service manager loaded it (``FragmentPath``, ``DropInPaths``) held to
    the floor of the profile it was attached with, everything but the attach's own
    ``10-profile.conf`` and ``20-portable.conf`` checked (an administrator's drop-in anywhere
    in the search path too); and its ``KillMode=``."""
    loaded = loaded_unit(unit, manager)
    items = [
        Item(
            check="kill mode",
            promised="stops every process (not none)",
            seen=loaded.kill_mode,
            ok=loaded.kill_mode != "none",
        )
    ]
    directory = _attach_dir(unit, host)
    if directory is None:  # not an attached unit: no profile, no floor
        return items
    own_files = {
        path
        for path in (f"{directory}/{unit}.d/{PROFILE_FILE}", f"{directory}/{unit}.d/{MARKER_FILE}")
        if os.path.lexists(host.path(path))
    }
    own_units, image = _own_names(unit, directory, host)
    findings: list[FloorFinding] = []
    for path in sorted(own_files - set(loaded.dropins)):
        why = "not loaded by the service manager (one of the same name elsewhere replaces it)"
        findings.append(FloorFinding(path, 0, "", "", why))
    texts: list[tuple[str, str]] = []
    profile_text = ""
    for path in (loaded.fragment, *loaded.dropins):
        if not path:
            continue
        try:
            data = _read_unit_file(str(host.path(path)))
        except _Unreadable as exc:
            findings.append(FloorFinding(path, 0, "", "", f"can't be read ({exc}): not checked"))
            continue
        texts.append((path, data.decode("utf-8", "surrogateescape")))
        if path in own_files and path.endswith(PROFILE_FILE):
            profile_text = texts[-1][1]
    if not loaded.fragment:
        findings.append(FloorFinding(unit, 0, "", "", "no unit file loaded: not checked"))
    profile, note = _floor_profile(profile_name, profile_text, registry)
    # The rules, file by file; what the files undo of the profile's own settings, graded in
    # systemd's order (a drop-in sorting after 10-profile.conf wins over it).
    rules_only = replace(profile, floor=Floor(rules=floor_of(profile).rules, hold_profile=False))
    applied: list[Assignment] = []
    for path, text in texts:
        try:
            lines = parse_unit_text(text, path)
        except PortableError as exc:  # a line systemd refuses as too long
            findings.append(FloorFinding(path, 0, "", "", f"{exc}: not checked"))
            continue
        applied += lines
        if path in own_files:
            continue
        unit_file = UnitFile(
            name=unit, source=path, resolved=path, data=text.encode("utf-8", "surrogateescape")
        )
        found = check_unit(
            unit_file,
            rules_only,
            own_units=own_units,
            image_prefixes=derived_prefixes(image, systemd) if image else (),
            systemd=systemd,
            allow=allow,
        )
        findings += [f._replace(unit=path) for f in found]
    if floor_of(profile).hold_profile:
        suspects = {p for p, _ in texts if p not in own_files}
        seen = {(f.unit, f.line, f.setting) for f in findings}
        findings += [
            f
            for f in undone(
                unit, applied, suspects, profile, systemd=systemd, profile_text=profile_text or None
            )
            if f.setting not in allow and (f.unit, f.line, f.setting) not in seen
        ]
    promised = f"profile {profile.name}" + (f" ({note})" if note else "")
    if findings:
        n = len(findings)
        seen_text = f"{n} settings undo it" if n != 1 else "1 setting undoes it"
    else:
        seen_text = f"held (profile {profile.name}{', the standard floor' if note else ''})"
    floor_item = Item(
        check=FLOOR_CHECK,
        promised=promised,
        seen=seen_text,
        ok=not findings,
        findings=tuple(findings),
    )
    return [floor_item, *items]


# --- the unit's state, for services that are not running ---------------------------------------

SERVICE_IFACE = "org.freedesktop.systemd1.Service"
UNIT_CHECK = "unit"
TRIGGER_CHECK = "triggered by"
NOT_CHECKED = "not checked"


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceState:
    """What the service manager says of a service: whether it runs, and what starts it."""

    load_state: str
    active_state: str
    sub_state: str
    need_reload: bool
    main_pid: int
    type: str
    result: str
    triggered_by: tuple[str, ...]


def _own_units(unit: str, host: Host) -> set[str]:
    """The units of the attach ``unit`` is part of (none if ``unit`` is not attached)."""
    directory = _attach_dir(unit, host)
    return set() if directory is None else _own_names(unit, directory, host)[0]


def service_state(unit: str, manager: Manager) -> ServiceState:
    """The state of service ``unit`` (loading it if the manager has not)."""
    p = manager.unit_properties(
        unit,
        [
            (UNIT_IFACE, "LoadState"),
            (UNIT_IFACE, "ActiveState"),
            (UNIT_IFACE, "SubState"),
            (UNIT_IFACE, "NeedDaemonReload"),
            (UNIT_IFACE, "TriggeredBy"),
            (SERVICE_IFACE, "MainPID"),
            (SERVICE_IFACE, "Type"),
            (SERVICE_IFACE, "Result"),
        ],
        what=f"Failed to get the state of {unit}",
    )
    return ServiceState(
        load_state=str(p["LoadState"]),
        active_state=str(p["ActiveState"]),
        sub_state=str(p["SubState"]),
        need_reload=bool(p["NeedDaemonReload"]),
        main_pid=int(p["MainPID"]),
        type=str(p["Type"]),
        result=str(p["Result"]),
        triggered_by=tuple(str(t) for t in p["TriggeredBy"]),
    )


def triggers(unit: str, state: ServiceState, *, host: Host, manager: Manager) -> list[str]:
    """The timers, sockets and paths that start ``unit``: the manager's ``TriggeredBy``, and
    those of the same attach whose ``Triggers`` name it (one the manager has not loaded yet,
    when the attach needed no daemon-reload, is not in ``TriggeredBy`` until it is)."""
    found = list(state.triggered_by)
    for name in sorted(_own_units(unit, host)):
        if name in found or unit_type(name) not in TRIGGER_UNIT_TYPES:
            continue
        try:
            triggered = manager.unit_properties(name, [(UNIT_IFACE, "Triggers")])["Triggers"]
        except PortableError:
            continue
        if unit in (str(t) for t in triggered):
            found.append(name)
    return found


def _trigger_item(unit: str, names: list[str], *, host: Host, manager: Manager) -> Item:
    """Whether what starts a service that is not running is itself active: every trigger of
    the same attach, and at least one."""
    own = _own_units(unit, host)
    seen, active, ok = [], 0, True
    for name in names:
        try:
            p = manager.unit_properties(
                name, [(UNIT_IFACE, "ActiveState"), (UNIT_IFACE, "SubState")]
            )
            state, sub = str(p["ActiveState"]), str(p["SubState"])
        except PortableError as exc:
            state, sub = "unknown", str(exc)
        up = state in ACTIVE_STATES
        active += up
        ok = ok and (up or name not in own)
        seen.append(f"{name} {state} ({sub})")
    return Item(
        check=TRIGGER_CHECK,
        promised=f"{', '.join(names)} active",
        seen=", ".join(seen),
        ok=ok and active > 0,
    )


def _unit_item(state: ServiceState) -> Item:
    """The unit as loaded: found, valid, and the files on disk what the manager runs (the
    promise is read from the files)."""
    seen = state.load_state
    if state.need_reload:
        seen += ", its files changed since (daemon-reload needed)"
    return Item(
        check=UNIT_CHECK,
        promised="loaded, as on disk",
        seen=seen,
        ok=state.load_state == "loaded" and not state.need_reload,
    )


def not_running_status(state: ServiceState, trigger_names: list[str]) -> tuple[str, bool]:
    """Why a service has no main process, and whether that is fine: triggered by a timer,
    socket or path unit (not started yet, or between runs), a oneshot that finished or
    exited with ``RemainAfterExit=yes``. A failed service, or a long-running one that nothing
    starts, is not."""
    if state.active_state == "failed":
        return f"failed (Result={state.result})", False
    if state.active_state == "inactive" and trigger_names:
        return f"not running (triggered by {', '.join(trigger_names)})", True
    if state.type == "oneshot" and state.active_state == "active":
        return "not running (oneshot, exited: RemainAfterExit=yes)", True
    if state.type == "oneshot" and state.active_state == "inactive":
        # finished (a failure would be "failed"), or never started: once the manager has
        # unloaded the inactive unit it can't tell which, and a oneshot has no process to
        # look at between runs either way
        return "not running (oneshot)", True
    if state.active_state == "inactive" and state.sub_state == "dead":
        return "not running", False
    return f"not running ({state.active_state}/{state.sub_state})", False


def _unchecked_items(settings: ServiceSettings, host: Host, why: str) -> list[Item]:
    """The kernel's rows with what they promise, not checked: no process to look at. (The
    promised side of :func:`compare` against a made-up process; optional binds, which only
    count when mounted, are left out.)"""
    nobody = Observed(
        pid=0,  # no such process: nothing is resolved inside it
        uid=0,
        cap_bounding=0,
        no_new_privs=False,
        seccomp=0,
        netns_inode=(0, 0),
        host_netns_inode=(0, 0),
    )
    seen = f"{NOT_CHECKED}: {why}"
    return [
        Item(check=i.check, promised=i.promised, seen=seen, ok=None)
        for i in compare(settings, nobody, host=host)
    ]


# --- services ---------------------------------------------------------------------------------


def _wait_for_exec(pid: int, timeout: float = SETUP_WAIT) -> None:
    """systemd's child is named "(name)" until it executes the service's binary; its sandbox is
    only complete then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            comm = _read(f"/proc/{pid}/comm", 64).strip()
        except OSError:
            return
        if not comm.startswith("("):
            return
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """The process is there and not a zombie (whose mounts and namespaces are gone)."""
    try:
        stat_line = _read(f"/proc/{pid}/stat", 4096)
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def verify_unit(
    unit: str,
    *,
    host: Host,
    manager: Manager,
    registry: Registry | None = None,
    allow: Collection[str] = (),
) -> UnitReport:
    """Verify one service, its promise read as the running systemd reads it, and the unit as
    the service manager loaded it against the floor of its profile (:func:`floor_items`;
    ``registry`` has the profiles, :func:`portable.plugin.registry.get_registry` by default;
    ``allow``: setting names not reported, as ``attach --allow-setting``).

    A service that is not running but need not be (:func:`not_running_status`: triggered by a
    timer/socket/path, a finished oneshot) is checked on everything but its process: the
    kernel's rows say "not checked"; that its trigger is active is a row of its own."""
    systemd = detect(host, manager).major
    try:
        settings, profile, files = promised_settings(unit, host=host, systemd=systemd)
    except BrokenProfile as exc:
        return UnitReport(unit=unit, pid=None, profile=None, error=exc.message)
    for attempt in range(2):
        try:
            state = service_state(unit, manager)
        except PortableError as exc:
            return UnitReport(unit=unit, pid=None, profile=profile, error=str(exc), files=files)
        if state.main_pid <= 0:
            break
        pid = state.main_pid
        _wait_for_exec(pid)
        try:
            seen = observe(pid)
        except PermissionError:
            raise PortableError(f"reading /proc/{pid} of {unit} needs root") from None
        except OSError as exc:
            gone = f"process gone: {exc.strerror}"
        else:
            gone = "" if _alive(pid) else "process gone while it was read"
        if not gone:
            items = [_unit_item(state), *compare(settings, seen, host=host)]
            items += _floor_items(unit, host, manager, profile, systemd, registry, allow)
            return UnitReport(
                unit=unit,
                pid=pid,
                profile=profile,
                items=tuple(items),
                files=files,
                status="running",
            )
        # A oneshot's run (a timer firing) can end while it is read: ask again, once.
        if attempt:
            return UnitReport(unit=unit, pid=pid, profile=profile, error=gone, files=files)
    names = triggers(unit, state, host=host, manager=manager)
    status, fine = not_running_status(state, names)
    if not fine:
        return UnitReport(
            unit=unit, pid=None, profile=profile, error=status, files=files, status=status
        )
    items = [_unit_item(state)]
    if names:
        items.append(_trigger_item(unit, names, host=host, manager=manager))
    items += _unchecked_items(settings, host, status)
    items += _floor_items(unit, host, manager, profile, systemd, registry, allow)
    return UnitReport(
        unit=unit, pid=None, profile=profile, items=tuple(items), files=files, status=status
    )


def _floor_items(
    unit: str,
    host: Host,
    manager: Manager,
    profile: str | None,
    systemd: int,
    registry: Registry | None,
    allow: Collection[str],
) -> list[Item]:
    """:func:`floor_items`, a manager error as a failed row."""
    try:
        return floor_items(
            unit,
            host=host,
            manager=manager,
            profile_name=profile,
            systemd=systemd,
            registry=registry,
            allow=allow,
        )
    except PortableError as exc:
        return [Item(check=FLOOR_CHECK, promised="", seen=str(exc), ok=False, findings=())]


def targets(arg: str, *, host: Host, runtime: bool | None = None) -> list[str]:
    """The services to verify: ``arg`` itself if it is a service name, else the attached
    (non-template) services of image ``arg``."""
    if is_portable_unit_type(arg) and "/" not in arg:
        if not arg.endswith(".service") or "@." in arg:
            raise PortableError(f"{arg}: only services (not templates) can be verified")
        return [arg]
    image = normalize_image_arg(arg, host=host)
    for rt in (False, True) if runtime is None else (runtime,):
        units = [
            u.name
            for u in find_attached(host, image, (), runtime=rt)
            if u.has_unit_file and u.name.endswith(".service") and "@." not in u.name
        ]
        if units:
            return units
    raise PortableError(f"Image '{image}' is not attached (or has no services to verify).")


def verify(
    arg: str,
    *,
    host: Host,
    manager: Manager,
    runtime: bool | None = None,
    registry: Registry | None = None,
    allow: Collection[str] = (),
) -> list[UnitReport]:
    """Verify a service, or every attached service of an image (:func:`verify_unit`)."""
    return [
        verify_unit(unit, host=host, manager=manager, registry=registry, allow=allow)
        for unit in targets(arg, host=host, runtime=runtime)
    ]
