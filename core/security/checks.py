"""systemd-analyze security's 81 checks (:data:`CHECKS`): each grades one aspect of a
service's :class:`~portable.security.settings.ServiceSettings` with a badness in ``0..range``
(or "not applicable"), weighted as systemd weighs it. Names, ``json_field`` keys, weights and
ranges are systemd's (the same in 252 and 257), so ``--json`` output can be matched against
systemd's and a ``--security-policy`` file would apply. :mod:`portable.security.score` adds
them up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from portable.security.settings import ServiceSettings
from portable.security.tables import NAMESPACES, cap_mask, syscall_exists

__all__ = ["CHECKS", "SCORED_SYSCALL_GROUPS", "Assessor", "Check"]

# The groups the score looks at, in systemd's order.
SCORED_SYSCALL_GROUPS = (
    "@swap",
    "@obsolete",
    "@clock",
    "@cpu-emulation",
    "@debug",
    "@mount",
    "@module",
    "@raw-io",
    "@reboot",
    "@privileged",
    "@resources",
)


# --- the checks --------------------------------------------------------------------------------

Assessor = Callable[[ServiceSettings], tuple[int | None, str]]
"""``(badness or None for "not applicable", description)``."""


# A NamedTuple: made at import in a fifth of the time of a frozen dataclass (~0.08 ms, not 0.45),
# and so are its 81 instances (no object.__setattr__ per field).
class Check(NamedTuple):
    """One of systemd's security assessors.

    :param name: as ``systemd-analyze security`` prints it (``CapabilityBoundingSet=~CAP_KILL``).
    :param json_field: systemd's key for it in ``--json`` output and ``--security-policy``
        files (kept verbatim, including upstream's stray ``)`` in one of them).
    :param weight: how much it counts; :param range: the badness scale (1 for yes/no checks).
    :param default_dependencies_only: not applicable to ``DefaultDependencies=no`` units.
    """

    name: str
    json_field: str
    weight: int
    range: int
    assess: Assessor
    default_dependencies_only: bool = False


def _yes_no(ok: Callable[[ServiceSettings], bool], good: str, bad: str) -> Assessor:
    """A yes/no check: badness 0 and ``good`` where ``ok``, else 1 and ``bad``."""

    def assess(s: ServiceSettings) -> tuple[int | None, str]:
        return (0, good) if ok(s) else (1, bad)

    return assess


def _flag(attr: str, good: str, bad: str, *, inverted: bool = False) -> Assessor:
    """A yes/no check of one setting; a setting with words (``PrivateTmp=disconnected``) is
    on unless ``no``, as systemd-analyze copies any non-zero value into a boolean."""

    def on(s: ServiceSettings) -> bool:
        raw = getattr(s, attr)
        return (raw != "no" if isinstance(raw, str) else bool(raw)) != inverted

    return _yes_no(on, good, bad)


def _unless_root(assess: Assessor) -> Assessor:
    """A check that does not apply to a service running as root."""

    def unless_root(s: ServiceSettings) -> tuple[int | None, str]:
        if s.runs_privileged:
            return None, "Service runs as root, option does not apply"
        return assess(s)

    return unless_root


def _assess_user(s: ServiceSettings) -> tuple[int | None, str]:
    if s.user == "nobody":
        return 9, "Service runs as the 'nobody' user, which should not own services"
    if s.dynamic_user and s.user not in ("0", "root"):
        return 0, "Service runs under a transient non-root user identity"
    if s.user and s.user not in ("0", "root"):
        return 0, "Service runs under a static non-root user identity"
    return 10, "Service runs as root"


def _assess_protect_home(s: ServiceSettings) -> tuple[int | None, str]:
    return {
        "yes": (0, "Service has no access to home directories"),
        "tmpfs": (1, "Service sees empty, fake home directories"),
        "read-only": (5, "Service has read-only access to home directories"),
    }.get(s.protect_home, (10, "Service has full access to home directories"))


def _assess_protect_system(s: ServiceSettings) -> tuple[int | None, str]:
    return {
        "strict": (0, "Service has strict read-only access to the OS file hierarchy"),
        "full": (3, "Service has very limited write access to the OS file hierarchy"),
        "yes": (5, "Service has limited write access to the OS file hierarchy"),
    }.get(s.protect_system, (10, "Service has full access to the OS file hierarchy"))


def _assess_umask(s: ServiceSettings) -> tuple[int | None, str]:
    if not s.umask & 0o002:
        return 10, "Files created by the service are world-writable by default"
    if not s.umask & 0o004:
        return 5, "Files created by the service are world-readable by default"
    if not s.umask & 0o020:
        return 2, "Files created by the service are group-writable by default"
    if not s.umask & 0o040:
        return 1, "Files created by the service are group-readable by default"
    return 0, "Files created by the service are private to its user by default"


def _assess_protect_proc(s: ServiceSettings) -> tuple[int | None, str]:
    if s.protect_proc in ("invisible", "ptraceable"):
        return 0, "Service sees only its own processes in /proc"
    if s.protect_proc == "noaccess":
        return 1, "Service sees other processes in /proc but not their details"
    return 3, "Service has full access to the process tree in /proc"


def _assess_namespace(flag: int, name: str) -> Assessor:
    return _yes_no(
        lambda s: not s.restrict_namespaces & flag,
        f"Service cannot create {name} namespaces",
        f"Service may create {name} namespaces",
    )


def _assess_family(bucket: str, what: str) -> Assessor:
    return _yes_no(
        lambda s: s.family_restricted(bucket),
        f"Service cannot allocate {what}",
        f"Service may allocate {what}",
    )


def _assess_archs(s: ServiceSettings) -> tuple[int | None, str]:
    if not s.system_call_architectures:
        return 10, "Service may make system calls with any ABI"
    if s.system_call_architectures == ["native"]:
        # systemd 252 (offline) credits "native" only alone: "native x86-64" scores as several.
        return 0, "Service may make system calls only with the native ABI"
    return 8, "Service may make system calls with several ABIs"


def _group_offender(s: ServiceSettings, group: str, depth: int = 0) -> str | None:
    assert s.system_call_filter is not None
    for member in s.rules.syscall_groups.get(group, "").split():
        if member.startswith("@"):
            if depth < 16 and (found := _group_offender(s, member, depth + 1)) is not None:
                return found
            continue
        if not syscall_exists(member):
            continue
        if (member in s.system_call_filter) == s.system_call_filter_allow_list:
            return member
    return None


def _assess_syscalls(group: str) -> Assessor:
    def assess(s: ServiceSettings) -> tuple[int | None, str]:
        if not s.system_call_filter_allow_list and not s.system_call_filter:
            return 10, "Service does not filter system calls"
        offender = _group_offender(s, group)
        if s.system_call_filter_allow_list:
            if offender is not None:
                return 9, f"System call allow list includes {group} (e.g. {offender})"
            return 0, f"System call allow list excludes {group}"
        if offender is not None:
            return 10, f"System call deny list misses {group} (e.g. {offender})"
        return 0, f"System call deny list includes {group}"

    return assess


def _assess_ip(s: ServiceSettings) -> tuple[int | None, str]:
    if s.ip_filters_ingress or s.ip_filters_egress:
        return 0, "Service has custom ingress/egress IP filters (BPF programs)"
    if not s.ip_deny_all:
        return 10, "Service does not define an IP address allow list"
    if any(not a.network_address.is_loopback for a in s.ip_address_allow):
        return 5, "Service may exchange IP traffic with non-localhost addresses"
    if s.ip_address_allow:
        return 2, "Service may exchange IP traffic with localhost only"
    return 0, "Service blocks all IP traffic"


def _assess_devices(s: ServiceSettings) -> tuple[int | None, str]:
    if s.device_policy in ("strict", "closed"):
        if s.device_allow:
            return 5, "Service has a device ACL with some devices: " + " ".join(s.device_allow)
        return 0, "Service has a minimal device ACL"
    return 10, "Service has no device ACL"


def _c(
    name: str,
    json_field: str,
    weight: int,
    range_: int,
    assess: Assessor,
    *,
    dd: bool = False,
) -> Check:
    return Check(
        name=name,
        json_field=json_field,
        weight=weight,
        range=range_,
        assess=assess,
        default_dependencies_only=dd,
    )


def _cap_check(name: str, field_: str, weight: int, caps: tuple[str, ...], what: str) -> Check:
    mask = cap_mask(*caps)
    return _c(
        f"CapabilityBoundingSet=~{name}",
        f"CapabilityBoundingSet_{field_}",
        weight,
        1,
        _yes_no(
            lambda s: not s.capability_bounding_set & mask,
            f"Service cannot {what}",
            f"Service may {what}",
        ),
    )


CHECKS: tuple[Check, ...] = (
    _c("User=/DynamicUser=", "UserOrDynamicUser", 2000, 10, _assess_user),
    _c(
        "SupplementaryGroups=",
        "SupplementaryGroups",
        200,
        1,
        _unless_root(
            _flag(
                "supplementary_groups",
                "Service has no supplementary groups",
                "Service runs with supplementary groups",
                inverted=True,
            )
        ),
    ),
    _c(
        "PrivateDevices=",
        "PrivateDevices",
        1000,
        1,
        _flag(
            "private_devices",
            "Service has no access to hardware devices",
            "Service may have access to hardware devices",
        ),
    ),
    _c(
        "PrivateMounts=",
        "PrivateMounts",
        1000,
        1,
        _flag(
            "private_mounts_graded",
            "Service cannot install system mounts",
            "Service may install system mounts",
        ),
    ),
    _c(
        "PrivateNetwork=",
        "PrivateNetwork",
        2500,
        1,
        _flag(
            "private_network",
            "Service has no access to the host's network",
            "Service has access to the host's network",
        ),
    ),
    _c(
        "PrivateTmp=",
        "PrivateTmp",
        1000,
        1,
        _flag(
            "private_tmp",
            "Service has no access to other software's temporary files",
            "Service has access to other software's temporary files",
        ),
        dd=True,
    ),
    _c(
        "PrivateUsers=",
        "PrivateUsers",
        1000,
        1,
        _flag(
            "private_users",
            "Service does not see other users",
            "Service has access to other users",
        ),
    ),
    _c(
        "ProtectControlGroups=",
        "ProtectControlGroups",
        1000,
        1,
        _flag(
            "protect_control_groups",
            "Service cannot modify the control group file system",
            "Service may modify the control group file system",
        ),
    ),
    _c(
        "ProtectKernelModules=",
        "ProtectKernelModules",
        1000,
        1,
        _flag(
            "protect_kernel_modules",
            "Service cannot load or read kernel modules",
            "Service may load or read kernel modules",
        ),
    ),
    _c(
        "ProtectKernelTunables=",
        "ProtectKernelTunables",
        1000,
        1,
        _flag(
            "protect_kernel_tunables",
            "Service cannot change kernel tunables (/proc/sys, ...)",
            "Service may change kernel tunables",
        ),
    ),
    _c(
        "ProtectKernelLogs=",
        "ProtectKernelLogs",
        1000,
        1,
        _flag(
            "protect_kernel_logs",
            "Service cannot use the kernel log ring buffer",
            "Service may read from or write to the kernel log ring buffer",
        ),
    ),
    _c(
        "ProtectClock=",
        "ProtectClock",
        1000,
        1,
        _flag(
            "protect_clock",
            "Service cannot set the hardware or system clock",
            "Service may set the hardware or system clock",
        ),
    ),
    _c("ProtectHome=", "ProtectHome", 1000, 10, _assess_protect_home, dd=True),
    _c(
        "ProtectHostname=",
        "ProtectHostname",
        50,
        1,
        _flag(
            "protect_hostname",
            "Service cannot change the host or domain name",
            "Service may change the host or domain name",
        ),
    ),
    _c("ProtectSystem=", "ProtectSystem", 1000, 10, _assess_protect_system, dd=True),
    _c(
        "RootDirectory=/RootImage=",
        "RootDirectoryOrRootImage",
        200,
        1,
        _yes_no(
            lambda s: (
                s.root_directory not in (None, "", "/") or s.root_image not in (None, "", "/")
            ),
            "Service has its own root directory or image",
            "Service runs in the host's root directory",
        ),
        dd=True,
    ),
    _c(
        "LockPersonality=",
        "LockPersonality",
        100,
        1,
        _flag(
            "lock_personality",
            "Service cannot change its ABI personality",
            "Service may change its ABI personality",
        ),
    ),
    _c(
        "MemoryDenyWriteExecute=",
        "MemoryDenyWriteExecute",
        100,
        1,
        _flag(
            "memory_deny_write_execute",
            "Service cannot create writable executable memory",
            "Service may create writable executable memory",
        ),
    ),
    _c(
        "NoNewPrivileges=",
        "NoNewPrivileges",
        1000,
        1,
        _flag(
            "no_new_privileges",
            "Service processes cannot gain new privileges",
            "Service processes may gain new privileges",
        ),
    ),
    _cap_check("CAP_SYS_ADMIN", "CAP_SYS_ADMIN", 1500, ("sys_admin",), "administer the system"),
    _cap_check(
        "CAP_SET(UID|GID|PCAP)",
        "CAP_SET_UID_GID_PCAP",
        1500,
        ("setuid", "setgid", "setpcap"),
        "change user/group identities or capabilities",
    ),
    _cap_check("CAP_SYS_PTRACE", "CAP_SYS_PTRACE", 1500, ("sys_ptrace",), "trace processes"),
    _cap_check("CAP_SYS_TIME", "CAP_SYS_TIME", 1000, ("sys_time",), "set the system clock"),
    _cap_check("CAP_NET_ADMIN", "CAP_NET_ADMIN", 1000, ("net_admin",), "configure networking"),
    _cap_check("CAP_SYS_RAWIO", "CAP_SYS_RAWIO", 1000, ("sys_rawio",), "do raw I/O"),
    _cap_check("CAP_SYS_MODULE", "CAP_SYS_MODULE", 1000, ("sys_module",), "load kernel modules"),
    _cap_check(
        "CAP_AUDIT_*",
        "CAP_AUDIT",
        500,
        ("audit_control", "audit_read", "audit_write"),
        "use the audit subsystem",
    ),
    _cap_check("CAP_SYSLOG", "CAP_SYSLOG", 500, ("syslog",), "use the kernel log"),
    _cap_check(
        "CAP_SYS_(NICE|RESOURCE)",
        "CAP_SYS_NICE_RESOURCE",
        500,
        ("sys_nice", "sys_resource"),
        "change resource use parameters",
    ),
    _cap_check("CAP_MKNOD", "CAP_MKNOD", 500, ("mknod",), "create device nodes"),
    _cap_check(
        "CAP_(CHOWN|FSETID|SETFCAP)",
        "CAP_CHOWN_FSETID_SETFCAP",
        1000,
        ("chown", "fsetid", "setfcap"),
        "change file ownership, access modes or file capabilities",
    ),
    _cap_check(
        "CAP_(DAC_*|FOWNER|IPC_OWNER)",
        "CAP_DAC_FOWNER_IPC_OWNER",
        1000,
        ("dac_override", "dac_read_search", "fowner", "ipc_owner"),
        "override file and IPC permission checks",
    ),
    _cap_check("CAP_KILL", "CAP_KILL", 500, ("kill",), "signal arbitrary processes"),
    _cap_check(
        "CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
        "CAP_NET_BIND_SERVICE_BROADCAST_RAW)",
        500,
        ("net_bind_service", "net_broadcast", "net_raw"),
        "use elevated networking privileges",
    ),
    _cap_check("CAP_SYS_BOOT", "CAP_SYS_BOOT", 100, ("sys_boot",), "reboot the system"),
    _cap_check(
        "CAP_MAC_*", "CAP_MAC", 100, ("mac_admin", "mac_override"), "change or bypass MAC policy"
    ),
    _cap_check(
        "CAP_LINUX_IMMUTABLE",
        "CAP_LINUX_IMMUTABLE",
        75,
        ("linux_immutable",),
        "mark files immutable",
    ),
    _cap_check("CAP_IPC_LOCK", "CAP_IPC_LOCK", 50, ("ipc_lock",), "lock memory into RAM"),
    _cap_check("CAP_SYS_CHROOT", "CAP_SYS_CHROOT", 50, ("sys_chroot",), "call chroot()"),
    _cap_check(
        "CAP_BLOCK_SUSPEND",
        "CAP_BLOCK_SUSPEND",
        25,
        ("block_suspend",),
        "keep the system from suspending",
    ),
    _cap_check("CAP_WAKE_ALARM", "CAP_WAKE_ALARM", 25, ("wake_alarm",), "program wake-up timers"),
    _cap_check("CAP_LEASE", "CAP_LEASE", 25, ("lease",), "take file leases"),
    _cap_check(
        "CAP_SYS_TTY_CONFIG", "CAP_SYS_TTY_CONFIG", 25, ("sys_tty_config",), "configure TTYs"
    ),
    _cap_check(
        "CAP_SYS_PACCT", "CAP_SYS_PACCT", 25, ("sys_pacct",), "configure process accounting"
    ),
    _cap_check("CAP_BPF", "CAP_BPF", 25, ("bpf",), "load BPF programs"),
    _c("UMask=", "UMask", 100, 10, _assess_umask),
    _c(
        "KeyringMode=",
        "KeyringMode",
        1000,
        1,
        _yes_no(
            lambda s: s.keyring_mode == "private",
            "Service has its own kernel keyring",
            "Service shares kernel keyring material with other services",
        ),
    ),
    _c("ProtectProc=", "ProtectProc", 1000, 3, _assess_protect_proc),
    _c(
        "ProcSubset=",
        "ProcSubset",
        10,
        1,
        _yes_no(
            lambda s: s.proc_subset == "pid",
            "Service sees only process entries in /proc",
            "Service has full access to non-process files in /proc",
        ),
    ),
    _c(
        "NotifyAccess=",
        "NotifyAccess",
        1000,
        1,
        _yes_no(
            lambda s: s.notify_access != "all",
            "Only the service's own processes may change its state",
            "Any process of the service may change the service's state",
        ),
    ),
    _c(
        "RemoveIPC=",
        "RemoveIPC",
        100,
        1,
        _unless_root(
            _flag(
                "remove_ipc",
                "Service user's IPC objects are removed when it stops",
                "Service user's IPC objects may outlive the service",
            )
        ),
    ),
    _c(
        "Delegate=",
        "Delegate",
        100,
        1,
        _flag(
            "delegate",
            "Service does not manage cgroup subtrees of its own",
            "Service manages cgroup subtrees of its own",
            inverted=True,
        ),
    ),
    _c(
        "RestrictRealtime=",
        "RestrictRealtime",
        500,
        1,
        _flag(
            "restrict_realtime",
            "Service cannot use real-time scheduling",
            "Service may use real-time scheduling",
        ),
    ),
    _c(
        "RestrictSUIDSGID=",
        "RestrictSUIDSGID",
        1000,
        1,
        _flag(
            "restrict_suid_sgid",
            "Service cannot create SUID/SGID files",
            "Service may create SUID/SGID files",
        ),
    ),
    *(
        _c(
            f"RestrictNamespaces=~{ns}",
            f"RestrictNamespaces_{ns}",
            weight,
            1,
            _assess_namespace(NAMESPACES[ns], what),
        )
        for ns, weight, what in (
            ("user", 1500, "user"),
            ("mnt", 500, "mount"),
            ("ipc", 500, "IPC"),
            ("pid", 500, "process"),
            ("cgroup", 500, "cgroup"),
            ("net", 500, "network"),
            ("uts", 100, "hostname"),
        )
    ),
    _c(
        "RestrictAddressFamilies=~AF_(INET|INET6)",
        "RestrictAddressFamilies_AF_INET_INET6",
        1500,
        1,
        _assess_family("inet", "Internet sockets"),
    ),
    _c(
        "RestrictAddressFamilies=~AF_UNIX",
        "RestrictAddressFamilies_AF_UNIX",
        25,
        1,
        _assess_family("unix", "local (AF_UNIX) sockets"),
    ),
    _c(
        "RestrictAddressFamilies=~AF_NETLINK",
        "RestrictAddressFamilies_AF_NETLINK",
        200,
        1,
        _assess_family("netlink", "netlink sockets"),
    ),
    _c(
        "RestrictAddressFamilies=~AF_PACKET",
        "RestrictAddressFamilies_AF_PACKET",
        1000,
        1,
        _assess_family("packet", "packet sockets"),
    ),
    _c(
        "RestrictAddressFamilies=~…",
        "RestrictAddressFamilies_OTHER",
        1250,
        1,
        _assess_family("other", "sockets of exotic address families"),
    ),
    _c("SystemCallArchitectures=", "SystemCallArchitectures", 1000, 10, _assess_archs),
    *(
        _c(
            f"SystemCallFilter=~{group}",
            "SystemCallFilter_" + group[1:].replace("-", "_"),
            weight,
            10,
            _assess_syscalls(group),
        )
        for group, weight in zip(
            SCORED_SYSCALL_GROUPS,
            (1000, 250, 1000, 250, 1000, 1000, 1000, 1000, 1000, 700, 700),
            strict=True,
        )
    ),
    _c("IPAddressDeny=", "IPAddressDeny", 1000, 10, _assess_ip),
    _c("DeviceAllow=", "DeviceAllow", 1000, 10, _assess_devices),
    _c(
        "AmbientCapabilities=",
        "AmbientCapabilities",
        500,
        1,
        _flag(
            "ambient_capabilities",
            "Service process does not receive ambient capabilities",
            "Service process receives ambient capabilities",
            inverted=True,
        ),
    ),
)
"""systemd's 81 checks, in its order (the same in 252 and 257)."""
