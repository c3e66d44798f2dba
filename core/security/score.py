"""The exposure score of a service: ``systemd-analyze security``'s algorithm, offline.

``systemd-analyze security --offline=yes [--profile=P] UNIT`` loads a unit file and its drop-ins
into a minimal service manager and grades 81 sandboxing settings; the weighted badness becomes an
*exposure* from 0.0 (everything locked down) to 10.0. This module does the same from the unit's
text, without systemd running, as the systemd the host runs does it (``systemd=`` on every entry
point: a major version, the nearest known one's behaviour applies; by default the version
:func:`portable.systemd.version.detect` finds for this machine):

1. the unit file and its drop-ins are parsed as systemd parses them (sections, ``\\``
   continuations, comments, later assignments overriding or extending earlier ones, an empty
   assignment resetting a list) into a :class:`ServiceSettings`;
2. systemd's unit-load implications are applied (``DynamicUser=yes`` implies ``PrivateTmp=``,
   ``RemoveIPC=``, ``NoNewPrivileges=``, ``RestrictSUIDSGID=``, ``ProtectSystem=strict``;
   ``PrivateDevices=`` drops ``CAP_MKNOD``/``CAP_SYS_RAWIO`` and closes the device policy;
   ``RootImage=`` adds loop and device-mapper devices to ``DeviceAllow=``, ...);
3. each of the 81 checks (:data:`CHECKS`) gives a badness in ``0..range`` or "not applicable";
   ``exposure = ceil(100 * sum(ceil(badness * weight / range)) / sum(weight))``, shown divided
   by ten, with systemd's verdicts (``PERFECT`` ... ``DANGEROUS``).

Names, ``json_field`` keys, weights and ranges are systemd's, so ``--json`` output can be matched
against systemd's and a ``--security-policy`` file would apply. System call groups are the
version's (as its ``systemd-analyze syscall-filter`` prints them); whether a system call exists
on this machine is asked of libseccomp, as systemd does (without libseccomp every listed call
counts).

The checks, weights, ranges and verdicts are the same in systemd 252 and 257; what differs is how
a unit is read (:data:`RULES`). In 257 ``PrivateMounts=`` is a tristate whose unset value
systemd-analyze grades as set, so a unit that says nothing about it scores better (a bare
service 9.4 instead of 9.6, the ``default`` profile 3.1 instead of 3.3);
``PrivateTmp=``, ``PrivateUsers=`` and ``ProtectControlGroups=`` take new values
(``disconnected``, ``identity``, ``strict``, ...); ``DynamicUser=yes`` implies
``PrivateTmp=disconnected`` (252: ``yes``); the system call groups grew (``@sandbox``, ...);
``loongarch64`` is an architecture; encrypted credentials open ``char-tpm`` (252:
``/dev/tpmrm0``).

The library entry points::

    from portable.security.score import profile_exposure, score_unit, UnitSource

    score = profile_exposure(profile, root_image=True, systemd=252)  # bare service + profile
    print(score.value, score.verdict)                                # 3.4 OK (257: 3.2 OK)

    score = score_unit(UnitSource(name="foo.service", text=unit_text,
                                  dropins=(("10-profile.conf", profile_text),)))

What the score does not see, like systemd's: ``NetworkNamespacePath=`` (a service in its own
network namespace still scores as "has access to the host's network" unless
``PrivateNetwork=yes``), ``ReadOnlyPaths=``/``BindPaths=``, resource limits.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from portable.systemd.unitfile import Assignment, parse_boolean, parse_unit_text
from portable.systemd.version import nearest_known

__all__ = [
    "BARE_UNIT",
    "CAPABILITIES",
    "CHECKS",
    "RULES",
    "VERDICTS",
    "Assignment",
    "Check",
    "Finding",
    "Rules",
    "Score",
    "ServiceSettings",
    "UnitSource",
    "assess",
    "capability_names",
    "dropin_dirs",
    "load_settings",
    "parse_boolean",
    "parse_unit_text",
    "profile_exposure",
    "rules_for",
    "score_unit",
    "verdict_for",
]

BARE_UNIT = "[Service]\nExecStart=/usr/bin/sleep infinity\n"
"""The unit the reference values are measured on: a service with no settings of its own."""

# --- capabilities -----------------------------------------------------------------------------

CAPABILITIES: tuple[str, ...] = (
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
)
"""Capability names by number (as the kernel numbers them), lower-case as systemd prints them."""

_CAP_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}
CAP_ALL = (1 << 64) - 1


def _cap(*names: str) -> int:
    return sum(1 << _CAP_NUMBER[f"cap_{n.lower()}"] for n in names)


def capability_names(mask: int) -> list[str]:
    """The capabilities set in ``mask``, upper-case (``CAP_SYS_ADMIN``), unknown bits as
    numbers."""
    return [
        CAPABILITIES[n].upper() if n < len(CAPABILITIES) else str(n)
        for n in range(64)
        if mask & (1 << n)
    ]


# --- namespaces ---------------------------------------------------------------------------------

_NAMESPACES = {
    "cgroup": 0x02000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
    "mnt": 0x00020000,
    "pid": 0x20000000,
    "user": 0x10000000,
    "uts": 0x04000000,
}
_NS_ALL = sum(_NAMESPACES.values())
_NS_INITIAL = (1 << 64) - 1  # systemd's NAMESPACE_FLAGS_INITIAL: "not set", everything allowed
# RestrictNamespaces= also takes "time", which is not in systemd's NAMESPACE_FLAGS_ALL (so
# "no" and "~time" don't allow it) and no check looks at.
_NAMESPACE_WORDS = {**_NAMESPACES, "time": 0x00000080}

# --- address families --------------------------------------------------------------------------

# The families systemd 252 knows (af_from_name), with the two aliases mapped to their family.
_ADDRESS_FAMILIES = frozenset(
    (
        "AF_UNSPEC",
        "AF_UNIX",
        "AF_INET",
        "AF_AX25",
        "AF_IPX",
        "AF_APPLETALK",
        "AF_NETROM",
        "AF_BRIDGE",
        "AF_ATMPVC",
        "AF_X25",
        "AF_INET6",
        "AF_ROSE",
        "AF_DECnet",
        "AF_NETBEUI",
        "AF_SECURITY",
        "AF_KEY",
        "AF_NETLINK",
        "AF_PACKET",
        "AF_ASH",
        "AF_ECONET",
        "AF_ATMSVC",
        "AF_RDS",
        "AF_SNA",
        "AF_IRDA",
        "AF_PPPOX",
        "AF_WANPIPE",
        "AF_LLC",
        "AF_IB",
        "AF_MPLS",
        "AF_CAN",
        "AF_TIPC",
        "AF_BLUETOOTH",
        "AF_IUCV",
        "AF_RXRPC",
        "AF_ISDN",
        "AF_PHONET",
        "AF_IEEE802154",
        "AF_CAIF",
        "AF_ALG",
        "AF_NFC",
        "AF_VSOCK",
        "AF_KCM",
        "AF_QIPCRTR",
        "AF_SMC",
        "AF_XDP",
        "AF_MCTP",
    )
)
_AF_ALIASES = {"AF_LOCAL": "AF_UNIX", "AF_FILE": "AF_UNIX", "AF_ROUTE": "AF_NETLINK"}

# --- system call groups (`systemd-analyze syscall-filter`) -------------------------------------

_SYSCALL_GROUPS_252: dict[str, str] = {
    "@default": (
        "arch_prctl brk cacheflush clock_getres clock_getres_time64 clock_gettime "
        "clock_gettime64 clock_nanosleep clock_nanosleep_time64 execve exit exit_group futex "
        "futex_time64 futex_waitv get_robust_list get_thread_area getegid getegid32 geteuid "
        "geteuid32 getgid getgid32 getgroups getgroups32 getpgid getpgrp getpid getppid "
        "getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getsid gettid "
        "gettimeofday getuid getuid32 membarrier mmap mmap2 mprotect munmap nanosleep pause "
        "prlimit64 restart_syscall riscv_flush_icache riscv_hwprobe rseq rt_sigreturn "
        "sched_getaffinity sched_yield set_robust_list set_thread_area set_tid_address set_tls "
        "sigreturn time ugetrlimit uretprobe "
    ),
    "@aio": (
        "io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup "
        "io_submit io_uring_enter io_uring_register io_uring_setup "
    ),
    "@basic-io": (
        "_llseek close close_range dup dup2 dup3 lseek pread64 preadv preadv2 pwrite64 pwritev "
        "pwritev2 read readv write writev "
    ),
    "@chown": ("chown chown32 fchown fchown32 fchownat lchown lchown32 "),
    "@clock": (
        "adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday "
    ),
    "@cpu-emulation": ("modify_ldt subpage_prot switch_endian vm86 vm86old "),
    "@debug": (
        "lookup_dcookie perf_event_open pidfd_getfd ptrace rtas s390_runtime_instr "
        "sys_debug_setcontext "
    ),
    "@file-system": (
        "access chdir chmod close creat faccessat faccessat2 fallocate fchdir fchmod fchmodat "
        "fchmodat2 fcntl fcntl64 fgetxattr flistxattr fremovexattr fsetxattr fstat fstat64 "
        "fstatat64 fstatfs fstatfs64 ftruncate ftruncate64 futimesat getcwd getdents getdents64 "
        "getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch lgetxattr link "
        "linkat listxattr llistxattr lremovexattr lsetxattr lstat lstat64 mkdir mkdirat mknod "
        "mknodat newfstatat oldfstat oldlstat oldstat open openat openat2 readlink readlinkat "
        "removexattr rename renameat renameat2 rmdir setxattr stat stat64 statfs statfs64 statx "
        "symlink symlinkat truncate truncate64 unlink unlinkat utime utimensat utimensat_time64 "
        "utimes "
    ),
    "@io-event": (
        "_newselect epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 "
        "epoll_wait epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64 pselect6 "
        "pselect6_time64 select "
    ),
    "@ipc": (
        "ipc memfd_create mq_getsetattr mq_notify mq_open mq_timedreceive "
        "mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget msgrcv "
        "msgsnd pipe pipe2 process_madvise process_vm_readv process_vm_writev semctl semget "
        "semop semtimedop semtimedop_time64 shmat shmctl shmdt shmget "
    ),
    "@keyring": ("add_key keyctl request_key "),
    "@memlock": ("mlock mlock2 mlockall munlock munlockall "),
    "@module": ("delete_module finit_module init_module "),
    "@mount": (
        "chroot fsconfig fsmount fsopen fspick mount mount_setattr move_mount open_tree "
        "pivot_root umount umount2 "
    ),
    "@network-io": (
        "accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom "
        "recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown "
        "socket socketcall socketpair "
    ),
    "@obsolete": (
        "_sysctl afs_syscall bdflush break create_module ftime get_kernel_syms getpmsg gtty "
        "idle lock mpx prof profil putpmsg query_module security sgetmask ssetmask stime stty "
        "sysfs tuxcall ulimit uselib ustat vserver "
    ),
    "@pkey": ("pkey_alloc pkey_free pkey_mprotect "),
    "@privileged": (
        "@chown @clock @module @raw-io @reboot @swap _sysctl acct bpf capset chroot "
        "fanotify_init fanotify_mark nfsservctl open_by_handle_at pivot_root quotactl "
        "quotactl_fd setdomainname setfsuid setfsuid32 setgroups setgroups32 sethostname "
        "setresuid setresuid32 setreuid setreuid32 setuid setuid32 vhangup "
    ),
    "@process": (
        "capget clone clone3 execveat fork getrusage kill pidfd_open pidfd_send_signal prctl "
        "rt_sigqueueinfo rt_tgsigqueueinfo setns swapcontext tgkill times tkill unshare vfork "
        "wait4 waitid waitpid "
    ),
    "@raw-io": (
        "ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read "
        "s390_pci_mmio_write "
    ),
    "@reboot": ("kexec_file_load kexec_load reboot "),
    "@resources": (
        "ioprio_set mbind migrate_pages move_pages nice sched_setaffinity sched_setattr "
        "sched_setparam sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority "
        "setrlimit "
    ),
    "@setuid": (
        "setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 "
        "setresuid setresuid32 setreuid setreuid32 setuid setuid32 "
    ),
    "@signal": (
        "rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait "
        "rt_sigtimedwait_time64 sigaction sigaltstack signal signalfd signalfd4 sigpending "
        "sigprocmask sigsuspend "
    ),
    "@swap": ("swapoff swapon "),
    "@sync": ("fdatasync fsync msync sync sync_file_range sync_file_range2 syncfs "),
    "@system-service": (
        "@aio @basic-io @chown @default @file-system @io-event @ipc @keyring @memlock "
        "@network-io @process @resources @setuid @signal @sync @timer arm_fadvise64_64 capget "
        "capset copy_file_range fadvise64 fadvise64_64 flock get_mempolicy getcpu getpriority "
        "ioctl ioprio_get kcmp madvise mremap name_to_handle_at oldolduname olduname "
        "personality readahead readdir remap_file_pages sched_get_priority_max "
        "sched_get_priority_min sched_getattr sched_getparam sched_getscheduler "
        "sched_rr_get_interval sched_rr_get_interval_time64 sched_yield sendfile sendfile64 "
        "setfsgid setfsgid32 setfsuid setfsuid32 setpgid setsid splice sysinfo tee umask uname "
        "userfaultfd vmsplice "
    ),
    "@timer": (
        "alarm getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime "
        "timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime "
        "timerfd_gettime64 timerfd_settime timerfd_settime64 times "
    ),
    "@known": (
        "@obsolete _llseek _newselect accept accept4 access acct add_key adjtimex alarm "
        "arc_gettls arc_settls arc_usr_cmpxchg arch_prctl arm_fadvise64_64 atomic_barrier "
        "atomic_cmpxchg_32 bind bpf brk cachectl cacheflush capget capset chdir chmod chown "
        "chown32 chroot clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 "
        "clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 clock_settime "
        "clock_settime64 clone clone3 close close_range connect copy_file_range creat "
        "delete_module dipc dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old "
        "epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 exec_with_loader "
        "execv execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 "
        "fallocate fanotify_init fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 "
        "fchownat fcntl fcntl64 fdatasync fgetxattr finit_module flistxattr flock fork "
        "fremovexattr fsconfig fsetxattr fsmount fsopen fspick fstat fstat64 fstatat64 fstatfs "
        "fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait "
        "futex_waitv futex_wake futimesat get_mempolicy get_robust_list get_thread_area getcpu "
        "getcwd getdents getdents64 getdomainname getdtablesize getegid getegid32 geteuid "
        "geteuid32 getgid getgid32 getgroups getgroups32 gethostname getitimer getpagesize "
        "getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 "
        "getresuid getresuid32 getrlimit getrusage getsid getsockname getsockopt gettid "
        "gettimeofday getuid getuid32 getxattr getxgid getxpid getxuid init_module "
        "inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy "
        "io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit io_uring_enter "
        "io_uring_register io_uring_setup ioctl ioperm iopl ioprio_get ioprio_set ipc kcmp "
        "kern_features kexec_file_load kexec_load keyctl kill landlock_add_rule "
        "landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat "
        "listen listxattr llistxattr lookup_dcookie lremovexattr lseek lsetxattr lstat lstat64 "
        "madvise map_shadow_stack mbind membarrier memfd_create memfd_secret memory_ordering "
        "migrate_pages mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 "
        "modify_ldt mount mount_setattr move_mount move_pages mprotect mq_getsetattr mq_notify "
        "mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 "
        "mq_unlink mremap msgctl msgget msgrcv msgsnd msync multiplexer munlock munlockall "
        "munmap name_to_handle_at nanosleep newfstatat nice old_adjtimex oldfstat oldlstat "
        "oldolduname oldstat oldumount olduname open open_by_handle_at open_tree openat openat2 "
        "or1k_atomic osf_fstat osf_fstatfs osf_fstatfs64 osf_getdirentries osf_getdomainname "
        "osf_getitimer osf_getrusage osf_getsysinfo osf_gettimeofday osf_lstat osf_mount "
        "osf_proplist_syscall osf_select osf_set_program_attributes osf_setitimer "
        "osf_setsysinfo osf_settimeofday osf_shmat osf_sigprocmask osf_sigstack osf_stat "
        "osf_statfs osf_statfs64 osf_swapon osf_syscall osf_sysinfo osf_usleep_thread "
        "osf_utimes osf_utsname osf_wait4 pause pciconfig_iobase pciconfig_read pciconfig_write "
        "perf_event_open perfctr personality pidfd_getfd pidfd_open pidfd_send_signal pipe "
        "pipe2 pivot_root pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl "
        "pread64 preadv preadv2 prlimit64 process_madvise process_mrelease process_vm_readv "
        "process_vm_writev pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2 quotactl "
        "quotactl_fd read readahead readdir readlink readlinkat readv reboot recv recvfrom "
        "recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat "
        "renameat2 request_key restart_syscall riscv_flush_icache riscv_hwprobe rmdir rseq "
        "rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend "
        "rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo rtas s390_guarded_storage "
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr s390_sthyi "
        "sched_get_affinity sched_get_priority_max sched_get_priority_min sched_getaffinity "
        "sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval "
        "sched_rr_get_interval_time64 sched_set_affinity sched_setaffinity sched_setattr "
        "sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop "
        "semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto "
        "set_mempolicy set_mempolicy_home_node set_robust_list set_thread_area set_tid_address "
        "setdomainname setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups "
        "setgroups32 sethae sethostname setitimer setns setpgid setpgrp setpriority setregid "
        "setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit "
        "setsid setsockopt settimeofday setuid setuid32 setxattr sgetmask shmat shmctl shmdt "
        "shmget shutdown sigaction sigaltstack signal signalfd signalfd4 sigpending sigprocmask "
        "sigreturn sigsuspend socket socketcall socketpair splice spu_create spu_run ssetmask "
        "stat stat64 statfs statfs64 statx stime subpage_prot swapcontext swapoff swapon "
        "switch_endian symlink symlinkat sync sync_file_range sync_file_range2 syncfs "
        "sys_debug_setcontext syscall sysfs sysinfo syslog sysmips tee tgkill time timer_create "
        "timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime "
        "timer_settime64 timerfd timerfd_create timerfd_gettime timerfd_gettime64 "
        "timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask "
        "umount umount2 uname unlink unlinkat unshare userfaultfd ustat utime utimensat "
        "utimensat_time64 utimes utrap_install vfork vhangup vm86 vm86old vmsplice wait4 waitid "
        "waitpid write writev "
    ),
}

# What systemd 257 added to the groups; none of the groups the score looks at changed.
_SYSCALL_GROUPS_ADDED_257 = {
    "@basic-io": "llseek ",
    "@default": "@sandbox lsm_get_self_attr lsm_list_modules mseal ",
    "@file-system": (
        "file_getattr file_setattr fstatat getxattrat listmount listxattrat newfstat "
        "removexattrat setxattrat statmount "
    ),
    "@known": (
        "breakpoint cachestat file_getattr file_setattr get_tls getxattrat listmount listxattrat "
        "llseek lsm_get_self_attr lsm_list_modules lsm_set_self_attr mseal removexattrat set_tls "
        "setxattrat statmount uretprobe usr26 usr32 "
    ),
    "@sandbox": "landlock_add_rule landlock_create_ruleset landlock_restrict_self seccomp ",
}
_SYSCALL_GROUPS_257 = {
    name: _SYSCALL_GROUPS_252.get(name, "") + _SYSCALL_GROUPS_ADDED_257.get(name, "")
    for name in {**_SYSCALL_GROUPS_252, **_SYSCALL_GROUPS_ADDED_257}
}

# SystemCallArchitectures= words (seccomp_arch_from_string).
_ARCHITECTURES_252 = frozenset(
    (
        "native",
        "x86",
        "x86-64",
        "x32",
        "arm",
        "arm64",
        "mips",
        "mips64",
        "mips64-n32",
        "mips-le",
        "mips64-le",
        "mips64-le-n32",
        "parisc",
        "parisc64",
        "ppc",
        "ppc64",
        "ppc64-le",
        "riscv64",
        "s390",
        "s390x",
    )
)


# --- what differs between systemd versions ------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Rules:
    """How one systemd version reads a unit for the score (the checks themselves, their weights
    and ranges are the same in every known version).

    :param systemd: the known version these rules were measured on (252, 257).
    :param syscall_groups: ``@group`` -> its members, separated by spaces.
    :param architectures: the ``SystemCallArchitectures=`` words it knows.
    :param words: the words settings take besides a boolean (:data:`_TRUE_WORD` says what
        their true boolean means: ``PrivateTmp=yes`` is ``connected``).
    :param private_mounts_tristate: ``PrivateMounts=`` is a tristate (an empty assignment
        resets it to unset), and systemd-analyze grades an unset one as set: its offline reader
        copies the unset value (-1) into a boolean.
    :param dynamic_user_private_tmp: the ``PrivateTmp=`` mode ``DynamicUser=yes`` implies
        where it is off (252: ``connected``, i.e. ``yes``).
    :param tpm_device: the ``DeviceAllow=`` entry encrypted credentials add.
    :param bind_log_sockets: ``BindLogSockets=`` exists (the journal's sockets bound read-only
        into the service's namespace; implied by ``MountAPIVFS=``, a root directory or image).
    """

    systemd: int
    syscall_groups: Mapping[str, str]
    architectures: frozenset[str]
    words: Mapping[str, tuple[str, ...]]
    private_mounts_tristate: bool
    dynamic_user_private_tmp: str
    tpm_device: str
    bind_log_sockets: bool


# What a true boolean means for the settings with words (all of them booleans in 252).
_TRUE_WORD = {"PrivateTmp": "connected", "PrivateUsers": "self", "ProtectControlGroups": "yes"}

RULES: dict[int, Rules] = {
    252: Rules(
        systemd=252,
        syscall_groups=_SYSCALL_GROUPS_252,
        architectures=_ARCHITECTURES_252,
        words={key: () for key in _TRUE_WORD},
        private_mounts_tristate=False,
        dynamic_user_private_tmp="connected",
        tpm_device="/dev/tpmrm0:rw",
        bind_log_sockets=False,
    ),
    257: Rules(
        systemd=257,
        syscall_groups=_SYSCALL_GROUPS_257,
        architectures=_ARCHITECTURES_252 | {"loongarch64"},
        words={
            "PrivateTmp": ("connected", "disconnected"),
            "PrivateUsers": ("self", "identity"),
            "ProtectControlGroups": ("yes", "private", "strict"),
        },
        private_mounts_tristate=True,
        dynamic_user_private_tmp="disconnected",
        tpm_device="char-tpm:rw",
        bind_log_sockets=True,
    ),
}
"""The rules of each known version (:data:`portable.systemd.version.KNOWN_VERSIONS`)."""


def rules_for(systemd: int | None = None) -> Rules:
    """The rules of systemd ``systemd`` (a major version: the nearest known one's); ``None``:
    the systemd of this machine (:func:`portable.systemd.version.detect` on ``/``)."""
    if systemd is None:
        from portable.systemd.host import Host
        from portable.systemd.version import detect

        systemd = detect(Host()).major
    return RULES[nearest_known(systemd)]


# The groups the score looks at, in systemd's order.
_SCORED_SYSCALL_GROUPS = (
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


@cache
def _libseccomp() -> Callable[[bytes], int] | None:
    import ctypes

    for name in ("libseccomp.so.2", "libseccomp.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        resolve = lib.seccomp_syscall_resolve_name
        resolve.argtypes = [ctypes.c_char_p]
        resolve.restype = ctypes.c_int
        return resolve
    return None


@cache
def _syscall_number(name: str) -> int | None:
    """libseccomp's number for ``name`` on this architecture: ``>= 0`` exists here, other
    negative numbers are calls libseccomp knows for other architectures, ``None`` unknown.
    Without libseccomp every name counts as existing (0)."""
    resolve = _libseccomp()
    if resolve is None:
        return 0
    number = resolve(name.encode())
    return None if number == -1 else number


def _syscall_exists(name: str) -> bool:
    number = _syscall_number(name)
    return number is not None and number >= 0


# --- words of a value (the unit files themselves: portable.systemd.unitfile) ----------------------


_WHITESPACE = " \t\n\r"


def _words(value: str) -> list[str]:
    """Whitespace-separated words, double or single quotes grouping (systemd's
    extract_first_word with EXTRACT_UNQUOTE, simplified)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    for ch in value:
        if quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch in _WHITESPACE:
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
        else:
            current.append(ch)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words


_bool = parse_boolean

# --- the settings the score looks at ---------------------------------------------------------


@dataclass(kw_only=True)
class ServiceSettings:
    """A service's effective sandboxing settings (systemd's ``SecurityInfo``), from its unit
    file and drop-ins, after :meth:`apply_implications`.

    Defaults are systemd's for a system service, read by ``rules`` (a systemd version's, see
    :data:`RULES`). ``capability_bounding_set`` and ``ambient_capabilities`` are bit masks (bit
    N = capability N); ``restrict_namespaces`` has a bit set for every namespace type the
    service may create. Settings with more values than yes/no keep systemd's word for them
    (``private_tmp``: ``no``, ``connected``, ``disconnected``; ``private_users``: ``no``,
    ``self``, ``identity``; ``protect_control_groups``: ``no``, ``yes``, ``private``,
    ``strict``); tristates are ``None`` while unset. ``implied`` says which settings
    :meth:`apply_implications` changed, and why (``{"PrivateTmp": "DynamicUser=yes"}``).
    """

    unit: str = "unit.service"
    rules: Rules = field(default_factory=lambda: RULES[252])
    default_dependencies: bool = True
    user: str | None = None
    dynamic_user: bool = False
    supplementary_groups: list[str] = field(default_factory=list)
    private_devices: bool = False
    private_mounts: bool | None = None
    private_network: bool = False
    private_tmp: str = "no"
    private_users: str = "no"
    protect_control_groups: str = "no"
    protect_kernel_modules: bool = False
    protect_kernel_tunables: bool = False
    protect_kernel_logs: bool = False
    protect_clock: bool = False
    protect_hostname: bool = False
    protect_home: str = "no"
    protect_system: str = "no"
    root_directory: str | None = None
    root_image: str | None = None
    mount_images: bool = False
    lock_personality: bool = False
    memory_deny_write_execute: bool = False
    no_new_privileges: bool = False
    capability_bounding_set: int = CAP_ALL
    ambient_capabilities: int = 0
    umask: int = 0o022
    keyring_mode: str = "private"
    protect_proc: str = "default"
    proc_subset: str = "all"
    notify_access: str = "none"
    remove_ipc: bool = False
    delegate: bool = False
    restrict_realtime: bool = False
    restrict_suid_sgid: bool = False
    restrict_namespaces: int = _NS_INITIAL
    address_families_allow_list: bool = False
    address_families: set[str] | None = None
    system_call_architectures: list[str] = field(default_factory=list)
    system_call_filter_allow_list: bool = False
    system_call_filter: set[str] | None = None
    ip_address_deny: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )
    ip_address_allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )
    ip_filters_ingress: list[str] = field(default_factory=list)
    ip_filters_egress: list[str] = field(default_factory=list)
    device_policy: str = "auto"
    device_allow: list[str] = field(default_factory=list)
    #: credential id -> encrypted, for LoadCredential[Encrypted]= and SetCredential[Encrypted]=
    load_credentials: dict[str, bool] = field(default_factory=dict)
    set_credentials: dict[str, bool] = field(default_factory=dict)
    network_namespace_path: str | None = None
    mount_apivfs: bool | None = None
    bind_log_sockets: bool | None = None
    log_namespace: str | None = None
    implied: dict[str, str] = field(default_factory=dict)
    #: Every assignment applied, in order (for ``verify`` and diagnostics).
    assignments: list[Assignment] = field(default_factory=list)

    # -- applying assignments --------------------------------------------------------------

    def apply(self, a: Assignment) -> None:
        """Apply one assignment as systemd's parser would (unknown keys are ignored)."""
        self.assignments.append(a)
        if a.section == "Unit":
            if a.key == "DefaultDependencies":
                b = _bool(a.value)
                if b is not None:
                    self.default_dependencies = b
            return
        if a.section != "Service":
            return
        if a.key == "BindLogSockets" and not self.rules.bind_log_sockets:
            return  # unknown before 257
        handler = _HANDLERS.get(a.key)
        if handler is not None:
            handler(self, a.value)

    def _imply(self, attr: str, key: str, value: object, why: str) -> None:
        if getattr(self, attr) != value:
            setattr(self, attr, value)
            self.implied[key] = why

    def apply_implications(self) -> None:
        """What systemd derives when it loads the unit (``unit_patch_contexts``)."""
        if self.dynamic_user:
            why = "DynamicUser=yes"
            if self.user is None:
                self.user = _unit_prefix(self.unit)
            if self.private_tmp == "no":  # (252 knows no other mode than "connected")
                self._imply("private_tmp", "PrivateTmp", self.rules.dynamic_user_private_tmp, why)
            self._imply("remove_ipc", "RemoveIPC", True, why)
            self._imply("protect_system", "ProtectSystem", "strict", why)
            if self.protect_home == "no":
                self._imply("protect_home", "ProtectHome", "read-only", why)
            self._imply("no_new_privileges", "NoNewPrivileges", True, why)
            self._imply("restrict_suid_sgid", "RestrictSUIDSGID", True, why)
        if self.private_devices:
            self.capability_bounding_set &= ~_cap("mknod", "sys_rawio")
        if self.protect_kernel_modules:
            self.capability_bounding_set &= ~_cap("sys_module")
        if self.protect_kernel_logs:
            self.capability_bounding_set &= ~_cap("syslog")
        if self.protect_clock:
            self.capability_bounding_set &= ~_cap("sys_time", "wake_alarm")
        if self.private_devices and self.device_policy == "auto":
            self.device_policy = "closed"
        # Only with a device policy: these entries would close everything else.
        if self.device_policy != "auto" or self.device_allow:
            if self.root_image or self.mount_images:
                # What a disk image needs to be mounted for the service (systemd prepends).
                self.device_allow[:0] = [
                    "block-device-mapper:rwm",
                    "block-blkext:rwm",
                    "block-loop:rwm",
                    "/dev/mapper/control:rw",
                    "/dev/loop-control:rw",
                ]
            if self.protect_clock:
                self.device_allow.insert(0, "char-rtc:r")
            if self.encrypted_credentials:
                self.device_allow.insert(0, self.rules.tpm_device)

    # -- derived facts ---------------------------------------------------------------------

    @property
    def encrypted_credentials(self) -> bool:
        return any(self.load_credentials.values()) or any(self.set_credentials.values())

    @property
    def private_mounts_graded(self) -> bool:
        """``PrivateMounts=`` as systemd-analyze grades it (an unset tristate counts as set from
        257 on)."""
        if self.private_mounts is None:
            return self.rules.private_mounts_tristate
        return self.private_mounts

    @property
    def rootfs(self) -> bool:
        """A root directory or image of its own (systemd's ``exec_context_with_rootfs``)."""
        return self.root_directory not in (None, "", "/") or bool(self.root_image)

    @property
    def effective_bind_log_sockets(self) -> bool:
        """Are the journal's sockets bound read-only into the service's mount namespace
        (systemd 257's ``exec_context_get_effective_bind_log_sockets``)? Never before 257."""
        if not self.rules.bind_log_sockets:
            return False
        if self.log_namespace:
            return True
        if self.bind_log_sockets is not None:
            return self.bind_log_sockets
        if self.mount_apivfs if self.mount_apivfs is not None else self.rootfs:
            return True
        return self.rootfs and self.private_devices

    @property
    def runs_privileged(self) -> bool:
        if self.user in ("0", "root"):
            return True
        if self.dynamic_user:
            return False
        return not self.user

    def family_restricted(self, bucket: str) -> bool:
        """Is the address family bucket (``inet``, ``unix``, ``netlink``, ``packet``, ``other``)
        denied to the service?"""
        restricted = self.address_families_allow_list
        for family in self.address_families or ():
            if _family_bucket(family) == bucket:
                restricted = not self.address_families_allow_list
        return restricted

    @property
    def ip_deny_all(self) -> bool:
        v4 = any(n.version == 4 and n.prefixlen == 0 for n in self.ip_address_deny)
        v6 = any(n.version == 6 and n.prefixlen == 0 for n in self.ip_address_deny)
        return v4 and v6

    def namespaces_allowed(self) -> list[str]:
        return [n for n, flag in _NAMESPACES.items() if self.restrict_namespaces & flag]


def _unit_prefix(unit: str) -> str:
    name = unit.rsplit(".", 1)[0]
    return name.split("@", 1)[0]


def _family_bucket(family: str) -> str:
    if family in ("AF_INET", "AF_INET6"):
        return "inet"
    if family == "AF_UNIX":
        return "unix"
    if family == "AF_NETLINK":
        return "netlink"
    if family == "AF_PACKET":
        return "packet"
    return "other"


# -- per-setting parsers (systemd's config_parse_* for the settings the score reads) ---------


def _set_bool(attr: str) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        b = _bool(value)
        if b is not None:
            setattr(s, attr, b)

    return handler


def _set_enum(attr: str, choices: Sequence[str]) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        if value in choices:
            setattr(s, attr, value)

    return handler


def _set_bool_or_enum(
    attr: str, true: str, choices: Sequence[str]
) -> Callable[[ServiceSettings, str], None]:
    """ProtectHome=/ProtectSystem=: a boolean or one of ``choices`` (anything else, including
    an empty value, is ignored)."""

    def handler(s: ServiceSettings, value: str) -> None:
        b = _bool(value)
        if b is not None:
            setattr(s, attr, true if b else "no")
        elif value in choices:
            setattr(s, attr, value)

    return handler


def _set_path(attr: str) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        setattr(s, attr, value or None)

    return handler


def _user(s: ServiceSettings, value: str) -> None:
    s.user = value or None


def _supplementary_groups(s: ServiceSettings, value: str) -> None:
    if not value:
        s.supplementary_groups = []
    else:
        s.supplementary_groups.extend(_words(value))


def _mount_images(s: ServiceSettings, value: str) -> None:
    s.mount_images = bool(value)


def _private_mounts(s: ServiceSettings, value: str) -> None:
    b = _bool(value)
    if b is not None:
        s.private_mounts = b
    elif not value and s.rules.private_mounts_tristate:
        s.private_mounts = None


def _tristate(attr: str) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        b = _bool(value)
        if b is not None or not value:
            setattr(s, attr, b)

    return handler


def _set_mode(attr: str, key: str) -> Callable[[ServiceSettings, str], None]:
    """A boolean or one of the version's words for ``key`` (:attr:`Rules.words`); anything
    else, an empty value included, is ignored."""

    def handler(s: ServiceSettings, value: str) -> None:
        b = _bool(value)
        if b is not None:
            setattr(s, attr, _TRUE_WORD[key] if b else "no")
        elif value in s.rules.words[key]:
            setattr(s, attr, value)

    return handler


def _parse_caps(value: str) -> tuple[int, bool]:
    invert = value.startswith("~")
    if invert:
        value = value[1:]
    mask = 0
    for word in _words(value):
        if word.isdigit():
            if int(word) < 64:
                mask |= 1 << int(word)
        elif word.lower() in _CAP_NUMBER:
            mask |= 1 << _CAP_NUMBER[word.lower()]
    return mask, invert


def _capability_set(attr: str, initial: int) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        mask, invert = _parse_caps(value)
        current: int = getattr(s, attr)
        if mask == 0 or current == initial:
            setattr(s, attr, (CAP_ALL & ~mask) if invert else mask)
        elif invert:
            setattr(s, attr, current & ~mask)
        else:
            setattr(s, attr, current | mask)

    return handler


def _umask(s: ServiceSettings, value: str) -> None:
    try:
        mode = int(value, 8)
    except ValueError:
        return
    if 0 <= mode <= 0o7777:
        s.umask = mode


def _delegate(s: ServiceSettings, value: str) -> None:
    if not value:
        s.delegate = False
        return
    b = _bool(value)
    s.delegate = True if b is None else b


def _restrict_namespaces(s: ServiceSettings, value: str) -> None:
    if not value:
        s.restrict_namespaces = _NS_INITIAL
        return
    b = _bool(value)
    if b is not None:
        s.restrict_namespaces = 0 if b else _NS_ALL
        return
    invert = value.startswith("~")
    if invert:
        value = value[1:]
    flags = 0
    for word in _words(value):
        if word not in _NAMESPACE_WORDS:
            return  # systemd ignores the whole assignment
        flags |= _NAMESPACE_WORDS[word]
    if s.restrict_namespaces == _NS_INITIAL:
        s.restrict_namespaces = (~flags & _NS_ALL) if invert else flags
    elif invert:
        s.restrict_namespaces &= ~flags
    else:
        s.restrict_namespaces |= flags


def _address_families(s: ServiceSettings, value: str) -> None:
    if not value:
        s.address_families = None
        s.address_families_allow_list = False
        return
    if value == "none":
        s.address_families = None
        s.address_families_allow_list = True
        return
    invert = value.startswith("~")
    if invert:
        value = value[1:]
    if s.address_families is None:
        # The first assignment decides allow or deny list (until an empty one resets it).
        s.address_families = set()
        s.address_families_allow_list = not invert
    for word in _words(value):
        family = _AF_ALIASES.get(word, word)
        if family not in _ADDRESS_FAMILIES:
            continue
        if (not invert) == s.address_families_allow_list:
            s.address_families.add(family)
        else:
            s.address_families.discard(family)


def _syscall_archs(s: ServiceSettings, value: str) -> None:
    if not value:
        s.system_call_architectures = []
        return
    for word in _words(value):
        if word in s.rules.architectures and word not in s.system_call_architectures:
            s.system_call_architectures.append(word)


def _syscall_filter_add(s: ServiceSettings, name: str, *, invert: bool, depth: int = 0) -> None:
    assert s.system_call_filter is not None
    if name.startswith("@"):
        group = s.rules.syscall_groups.get(name)
        if group is None or depth > 16:
            return
        for member in group.split():
            _syscall_filter_add(s, member, invert=invert, depth=depth + 1)
        return
    if _syscall_number(name) is None:
        return  # unknown to libseccomp: systemd ignores it
    if (not invert) == s.system_call_filter_allow_list:
        s.system_call_filter.add(name)
    else:
        s.system_call_filter.discard(name)


def _syscall_filter(s: ServiceSettings, value: str) -> None:
    if not value:
        s.system_call_filter = None
        s.system_call_filter_allow_list = False
        return
    invert = value.startswith("~")
    if invert:
        value = value[1:]
    if s.system_call_filter is None:
        s.system_call_filter = set()
        s.system_call_filter_allow_list = not invert
        if not invert:
            _syscall_filter_add(s, "@default", invert=False)
    for word in _words(value):
        name = word.split(":", 1)[0]  # "name:errno"
        _syscall_filter_add(s, name, invert=invert)


_IP_SPECIAL = {
    "any": ("0.0.0.0/0", "::/0"),
    "localhost": ("127.0.0.0/8", "::1/128"),
    "link-local": ("169.254.0.0/16", "fe80::/64"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
}


def _ip_words(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Address prefixes, host bits cleared (as systemd stores them)."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for word in _words(value):
        for item in _IP_SPECIAL.get(word, (word,)):
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                continue
    return out


def _ip_deny(s: ServiceSettings, value: str) -> None:
    if not value:
        s.ip_address_deny = []
    else:
        s.ip_address_deny.extend(_ip_words(value))


def _ip_allow(s: ServiceSettings, value: str) -> None:
    if not value:
        s.ip_address_allow = []
    else:
        s.ip_address_allow.extend(_ip_words(value))


def _list_of(attr: str) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        if not value:
            setattr(s, attr, [])
        else:
            getattr(s, attr).append(value)

    return handler


def _device_allow(s: ServiceSettings, value: str) -> None:
    if not value:
        s.device_allow = []
        return
    words = _words(value)
    if not words:
        return
    path, rights = words[0], "".join(words[1:2])
    if not path.startswith(("block-", "char-", "/dev/", "/sys/")):
        return
    if rights and not set(rights) <= set("rwm"):
        return
    # systemd keeps the rights as flags (printed in rwm order) and prepends each entry
    rights = "".join(c for c in "rwm" if c in rights) if rights else "rwm"
    s.device_allow.insert(0, f"{path}:{rights}")


def _credential(attr: str, *, encrypted: bool) -> Callable[[ServiceSettings, str], None]:
    """LoadCredential[Encrypted]=, SetCredential[Encrypted]=: ID[:...]; a later one for the
    same ID replaces it, an empty one clears them all (of that kind)."""

    def handler(s: ServiceSettings, value: str) -> None:
        credentials: dict[str, bool] = getattr(s, attr)
        if not value:
            credentials.clear()
            return
        name = value.split(":", 1)[0]
        if name and "/" not in name:
            credentials[name] = encrypted

    return handler


def _set_string(attr: str) -> Callable[[ServiceSettings, str], None]:
    def handler(s: ServiceSettings, value: str) -> None:
        setattr(s, attr, value or None)

    return handler


_HANDLERS: dict[str, Callable[[ServiceSettings, str], None]] = {
    "User": _user,
    "DynamicUser": _set_bool("dynamic_user"),
    "SupplementaryGroups": _supplementary_groups,
    "PrivateDevices": _set_bool("private_devices"),
    "PrivateMounts": _private_mounts,
    "PrivateNetwork": _set_bool("private_network"),
    "PrivateTmp": _set_mode("private_tmp", "PrivateTmp"),
    "PrivateUsers": _set_mode("private_users", "PrivateUsers"),
    "ProtectControlGroups": _set_mode("protect_control_groups", "ProtectControlGroups"),
    "ProtectKernelModules": _set_bool("protect_kernel_modules"),
    "ProtectKernelTunables": _set_bool("protect_kernel_tunables"),
    "ProtectKernelLogs": _set_bool("protect_kernel_logs"),
    "ProtectClock": _set_bool("protect_clock"),
    "ProtectHostname": _set_bool("protect_hostname"),
    "ProtectHome": _set_bool_or_enum("protect_home", "yes", ("read-only", "tmpfs")),
    "ProtectSystem": _set_bool_or_enum("protect_system", "yes", ("full", "strict")),
    "RootDirectory": _set_path("root_directory"),
    "RootImage": _set_path("root_image"),
    "MountImages": _mount_images,
    "LockPersonality": _set_bool("lock_personality"),
    "MemoryDenyWriteExecute": _set_bool("memory_deny_write_execute"),
    "NoNewPrivileges": _set_bool("no_new_privileges"),
    "CapabilityBoundingSet": _capability_set("capability_bounding_set", CAP_ALL),
    "AmbientCapabilities": _capability_set("ambient_capabilities", 0),
    "UMask": _umask,
    "KeyringMode": _set_enum("keyring_mode", ("inherit", "private", "shared")),
    "ProtectProc": _set_enum("protect_proc", ("noaccess", "invisible", "ptraceable", "default")),
    "ProcSubset": _set_enum("proc_subset", ("all", "pid")),
    "NotifyAccess": _set_enum("notify_access", ("none", "main", "exec", "all")),
    "RemoveIPC": _set_bool("remove_ipc"),
    "Delegate": _delegate,
    "RestrictRealtime": _set_bool("restrict_realtime"),
    "RestrictSUIDSGID": _set_bool("restrict_suid_sgid"),
    "RestrictNamespaces": _restrict_namespaces,
    "RestrictAddressFamilies": _address_families,
    "SystemCallArchitectures": _syscall_archs,
    "SystemCallFilter": _syscall_filter,
    "IPAddressDeny": _ip_deny,
    "IPAddressAllow": _ip_allow,
    "IPIngressFilterPath": _list_of("ip_filters_ingress"),
    "IPEgressFilterPath": _list_of("ip_filters_egress"),
    "DevicePolicy": _set_enum("device_policy", ("auto", "closed", "strict")),
    "DeviceAllow": _device_allow,
    "LoadCredential": _credential("load_credentials", encrypted=False),
    "LoadCredentialEncrypted": _credential("load_credentials", encrypted=True),
    "SetCredential": _credential("set_credentials", encrypted=False),
    "SetCredentialEncrypted": _credential("set_credentials", encrypted=True),
    "NetworkNamespacePath": _set_path("network_namespace_path"),
    "MountAPIVFS": _tristate("mount_apivfs"),
    "BindLogSockets": _tristate("bind_log_sockets"),
    "LogNamespace": _set_string("log_namespace"),
}


# --- the checks --------------------------------------------------------------------------------

Assessor = Callable[[ServiceSettings], tuple[int | None, str]]
"""``(badness or None for "not applicable", description)``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
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


def _flag(attr: str, good: str, bad: str, *, inverted: bool = False) -> Assessor:
    """A yes/no check; a setting with words (``PrivateTmp=disconnected``) is on unless
    ``no``, as systemd-analyze copies any non-zero value into a boolean."""

    def assess(s: ServiceSettings) -> tuple[int | None, str]:
        raw = getattr(s, attr)
        value = raw != "no" if isinstance(raw, str) else bool(raw)
        ok = (not value) if inverted else value
        return (0, good) if ok else (1, bad)

    return assess


def _assess_user(s: ServiceSettings) -> tuple[int | None, str]:
    if s.user == "nobody":
        return 9, "Service runs as the 'nobody' user, which should not own services"
    if s.dynamic_user and s.user not in ("0", "root"):
        return 0, "Service runs under a transient non-root user identity"
    if s.user and s.user not in ("0", "root"):
        return 0, "Service runs under a static non-root user identity"
    return 10, "Service runs as root"


def _assess_supplementary_groups(s: ServiceSettings) -> tuple[int | None, str]:
    if s.runs_privileged:
        return None, "Service runs as root, option does not apply"
    if s.supplementary_groups:
        return 1, "Service runs with supplementary groups"
    return 0, "Service has no supplementary groups"


def _assess_remove_ipc(s: ServiceSettings) -> tuple[int | None, str]:
    if s.runs_privileged:
        return None, "Service runs as root, option does not apply"
    if s.remove_ipc:
        return 0, "Service user's IPC objects are removed when it stops"
    return 1, "Service user's IPC objects may outlive the service"


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


def _assess_root(s: ServiceSettings) -> tuple[int | None, str]:
    if s.root_directory not in (None, "", "/") or s.root_image not in (None, "", "/"):
        return 0, "Service has its own root directory or image"
    return 1, "Service runs in the host's root directory"


def _assess_caps(mask: int, good: str, bad: str) -> Assessor:
    def assess(s: ServiceSettings) -> tuple[int | None, str]:
        return (1, bad) if s.capability_bounding_set & mask else (0, good)

    return assess


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


def _assess_keyring(s: ServiceSettings) -> tuple[int | None, str]:
    if s.keyring_mode == "private":
        return 0, "Service has its own kernel keyring"
    return 1, "Service shares kernel keyring material with other services"


def _assess_protect_proc(s: ServiceSettings) -> tuple[int | None, str]:
    if s.protect_proc in ("invisible", "ptraceable"):
        return 0, "Service sees only its own processes in /proc"
    if s.protect_proc == "noaccess":
        return 1, "Service sees other processes in /proc but not their details"
    return 3, "Service has full access to the process tree in /proc"


def _assess_proc_subset(s: ServiceSettings) -> tuple[int | None, str]:
    if s.proc_subset == "pid":
        return 0, "Service sees only process entries in /proc"
    return 1, "Service has full access to non-process files in /proc"


def _assess_notify(s: ServiceSettings) -> tuple[int | None, str]:
    if s.notify_access == "all":
        return 1, "Any process of the service may change the service's state"
    return 0, "Only the service's own processes may change its state"


def _assess_namespace(flag: int, name: str) -> Assessor:
    def assess(s: ServiceSettings) -> tuple[int | None, str]:
        if s.restrict_namespaces & flag:
            return 1, f"Service may create {name} namespaces"
        return 0, f"Service cannot create {name} namespaces"

    return assess


def _assess_family(bucket: str, what: str) -> Assessor:
    def assess(s: ServiceSettings) -> tuple[int | None, str]:
        if s.family_restricted(bucket):
            return 0, f"Service cannot allocate {what}"
        return 1, f"Service may allocate {what}"

    return assess


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
        if not _syscall_exists(member):
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


def _assess_ambient(s: ServiceSettings) -> tuple[int | None, str]:
    if s.ambient_capabilities:
        return 1, "Service process receives ambient capabilities"
    return 0, "Service process does not receive ambient capabilities"


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
    return _c(
        f"CapabilityBoundingSet=~{name}",
        f"CapabilityBoundingSet_{field_}",
        weight,
        1,
        _assess_caps(_cap(*caps), f"Service cannot {what}", f"Service may {what}"),
    )


CHECKS: tuple[Check, ...] = (
    _c("User=/DynamicUser=", "UserOrDynamicUser", 2000, 10, _assess_user),
    _c("SupplementaryGroups=", "SupplementaryGroups", 200, 1, _assess_supplementary_groups),
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
    _c("RootDirectory=/RootImage=", "RootDirectoryOrRootImage", 200, 1, _assess_root, dd=True),
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
    _c("KeyringMode=", "KeyringMode", 1000, 1, _assess_keyring),
    _c("ProtectProc=", "ProtectProc", 1000, 3, _assess_protect_proc),
    _c("ProcSubset=", "ProcSubset", 10, 1, _assess_proc_subset),
    _c("NotifyAccess=", "NotifyAccess", 1000, 1, _assess_notify),
    _c("RemoveIPC=", "RemoveIPC", 100, 1, _assess_remove_ipc),
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
            _assess_namespace(_NAMESPACES[ns], what),
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
            _SCORED_SYSCALL_GROUPS,
            (1000, 250, 1000, 250, 1000, 1000, 1000, 1000, 1000, 700, 700),
            strict=True,
        )
    ),
    _c("IPAddressDeny=", "IPAddressDeny", 1000, 10, _assess_ip),
    _c("DeviceAllow=", "DeviceAllow", 1000, 10, _assess_devices),
    _c("AmbientCapabilities=", "AmbientCapabilities", 500, 1, _assess_ambient),
)
"""systemd's 81 checks, in its order (the same in 252 and 257)."""

VERDICTS: tuple[tuple[int, str], ...] = (
    (100, "DANGEROUS"),
    (90, "UNSAFE"),
    (75, "EXPOSED"),
    (50, "MEDIUM"),
    (10, "OK"),
    (1, "SAFE"),
    (0, "PERFECT"),
)
"""(lowest exposure on systemd's 0..100 scale, verdict), worst first."""


def verdict_for(exposure: int) -> str:
    """systemd's verdict for an exposure on its internal 0..100 scale."""
    for lowest, name in VERDICTS:
        if exposure >= lowest:
            return name
    return "PERFECT"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One check's result. ``badness`` is ``None`` when the check does not apply."""

    check: Check
    badness: int | None
    description: str
    weight_sum: int

    @property
    def exposure(self) -> int | None:
        """This check's share of the exposure, 0..100 (systemd's per-row EXPOSURE column),
        None when it is 0 or not applicable."""
        if not self.badness:
            return None
        c = self.check
        return _ceil_div(_ceil_div(self.badness * c.weight * 100, c.range), self.weight_sum)

    @property
    def ok(self) -> bool | None:
        """True if fully good, False if not, None if not applicable (systemd's ``set``)."""
        return None if self.badness is None else self.badness == 0

    def to_json(self) -> dict[str, Any]:
        exposure = self.exposure
        return {
            "set": self.ok,
            "name": self.check.name,
            "json_field": self.check.json_field,
            "description": self.description,
            "weight": self.check.weight,
            "badness": self.badness,
            "range": self.check.range,
            "exposure": None if exposure is None else f"{exposure // 10}.{exposure % 10}",
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class Score:
    """An exposure score: ``value`` 0.0..10.0 as systemd prints it, ``exposure`` 0..100;
    ``systemd``: the version whose rules graded it (:attr:`Rules.systemd`)."""

    unit: str
    exposure: int
    verdict: str
    findings: tuple[Finding, ...]
    systemd: int = 252

    @property
    def value(self) -> float:
        return self.exposure / 10

    @property
    def text(self) -> str:
        """``"3.3"``: the value as systemd prints it."""
        return f"{self.exposure // 10}.{self.exposure % 10}"

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "exposure": self.value,
            "verdict": self.verdict,
            "systemd": self.systemd,
            "checks": [f.to_json() for f in self.findings],
        }


GRADED_SETTINGS = frozenset(_HANDLERS)
"""The ``[Service]`` settings the score reads (``[Unit]``'s ``DefaultDependencies=`` too): a
unit setting no check can see (``ExecStart=``, ``Description=``) never changes a score."""


def assess(settings: ServiceSettings) -> Score:
    """Grade ``settings`` (after :meth:`ServiceSettings.apply_implications`)."""
    results: list[tuple[Check, int | None, str]] = []
    badness_sum = weight_sum = 0
    for check in CHECKS:
        if check.default_dependencies_only and not settings.default_dependencies:
            results.append((check, None, "Service runs in a special boot phase, not applicable"))
            continue
        badness, description = check.assess(settings)
        results.append((check, badness, description))
        if badness is None:
            continue
        weight_sum += check.weight
        badness_sum += _ceil_div(badness * check.weight, check.range)
    exposure = _ceil_div(badness_sum * 100, weight_sum) if weight_sum else 0
    return Score(
        unit=settings.unit,
        exposure=exposure,
        verdict=verdict_for(exposure),
        findings=tuple(
            Finding(check=c, badness=b, description=d, weight_sum=weight_sum) for c, b, d in results
        ),
        systemd=settings.rules.systemd,
    )


# --- units and drop-ins ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitSource:
    """A unit file and the drop-ins that apply to it, in the order systemd applies them.

    :param name: the unit name (``foo.service``): ``DynamicUser=`` derives the user from it.
    :param text: the unit file's text.
    :param dropins: ``(file name or path, text)`` pairs, applied in this order.
    """

    name: str
    text: str
    dropins: tuple[tuple[str, str], ...] = ()


def load_settings(source: UnitSource, *, systemd: int | None = None) -> ServiceSettings:
    """The effective settings of a unit: its file, then its drop-ins, then the implications,
    as systemd ``systemd`` reads them (:func:`rules_for`; ``None``: this machine's)."""
    settings = ServiceSettings(unit=source.name, rules=rules_for(systemd))
    for a in parse_unit_text(source.text, source.name):
        settings.apply(a)
    for name, text in source.dropins:
        for a in parse_unit_text(text, name):
            settings.apply(a)
    settings.apply_implications()
    return settings


def score_unit(source: UnitSource, *, systemd: int | None = None) -> Score:
    """The exposure score of a unit file with its drop-ins, as systemd ``systemd``'s
    ``systemd-analyze security --offline=yes`` grades it (``None``: this machine's)."""
    return assess(load_settings(source, systemd=systemd))


def dropin_dirs(unit: str) -> list[str]:
    """The drop-in directory names that apply to ``unit``, most specific first:
    ``foo-bar@x.service.d``, ``foo-bar@.service.d``, ``foo-bar-.service.d``, ``foo-.service.d``,
    ``service.d``."""
    name, _, suffix = unit.rpartition(".")
    names = [unit]
    if "@" in name:
        prefix, _, instance = name.partition("@")
        if instance:
            names.append(f"{prefix}@.{suffix}")
        name = prefix
    parts = name.split("-")
    for i in range(len(parts) - 1, 0, -1):
        names.append("-".join(parts[:i]) + f"-.{suffix}")
    names.append(suffix)
    return [f"{n}.d" for n in names]


def merge_dropins(found: Iterable[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """``(file name, path, text)`` in priority order -> ``(path, text)`` as systemd applies
    them: the first file of each name wins, then sorted by file name."""
    chosen: dict[str, tuple[str, str]] = {}
    for filename, path, text in found:
        chosen.setdefault(filename, (path, text))
    return [chosen[name] for name in sorted(chosen)]


def profile_exposure(
    profile: Any,
    *,
    root_image: bool = False,
    root_directory: bool = False,
    systemd: int | None = None,
) -> Score:
    """The exposure of a bare service (:data:`BARE_UNIT`) with ``profile``'s service drop-in.

    This is ``systemd-analyze security --offline=yes --profile=NAME`` of systemd ``systemd``
    (``None``: this machine's) on a unit with no settings of its own: for no profile 9.6 on
    252, 9.4 on 257; for ``default`` 3.3 on 252, 3.1 on 257. With
    ``root_image`` the unit also has ``RootImage=`` (what attaching a raw image adds; scores
    slightly worse, systemd then allows loop devices), with ``root_directory``
    ``RootDirectory=`` (a directory image).

    :param profile: a :class:`portable.plugin.types.Profile` (or ``None`` for no profile).
    """
    dropins: list[tuple[str, str]] = []
    if profile is not None:
        dropin = profile.dropin_for("service")
        if dropin is not None:
            dropins.append(("10-profile.conf", dropin.text))
    root = ""
    if root_image:
        root += "RootImage=/var/lib/portables/image.raw\n"
    if root_directory:
        root += "RootDirectory=/var/lib/portables/image\n"
    if root:
        dropins.append(("20-portable.conf", "[Service]\n" + root))
    return score_unit(
        UnitSource(name="portable.service", text=BARE_UNIT, dropins=tuple(dropins)),
        systemd=systemd,
    )


def _read_text(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return f.read(4 * 1024 * 1024).decode("utf-8", "surrogateescape")


def host_dropins(
    local: Callable[[str], str | os.PathLike[str]],
    unit: str,
    search_path: Sequence[str],
    *,
    replace: Mapping[str, Mapping[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """The drop-ins systemd would apply to ``unit`` from the unit directories
    ``search_path`` (host paths; ``local`` maps one to where this process reads it).

    ``replace`` pretends files are (or are not) there: host directory -> {file name: text};
    a text of ``""`` hides a file. Used for what an attach would write.
    """
    found: list[tuple[str, str, str]] = []
    replace = replace or {}
    for directory in search_path:
        for sub in dropin_dirs(unit):
            host_dir = f"{directory}/{sub}"
            overlay = replace.get(host_dir, {})
            names: set[str] = set(overlay)
            with contextlib.suppress(OSError):
                names |= {n for n in os.listdir(local(host_dir)) if n.endswith(".conf")}
            for name in sorted(names):
                if name in overlay:
                    if overlay[name]:
                        found.append((name, f"{host_dir}/{name}", overlay[name]))
                    continue
                try:
                    found.append(
                        (name, f"{host_dir}/{name}", _read_text(local(f"{host_dir}/{name}")))
                    )
                except OSError:
                    continue
    return merge_dropins(found)


# --- scoring what is (or would be) on a host ---------------------------------------------------

SCORED_TYPES = ("service",)
"""Unit types that get a score (systemd-analyze security grades services only)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UnitExposure:
    """The score of one unit as found on a host or as an attach would write it.

    :param how: ``"attached"`` (its files on the host), ``"attach"`` (what attaching the image
        would write), ``"unit"`` (a unit on the host or a unit file).
    :param profile: the profile scored with (``None``: whatever the files say).
    :param files: the unit file and the drop-ins applied, in order (host paths).
    """

    unit: str
    how: str
    profile: str | None
    score: Score
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.score.to_json(),
            "how": self.how,
            "profile": self.profile,
            "files": list(self.files),
        }


def would_attach_exposure(
    image: Any,
    units: Sequence[Any],
    profile: Any,
    *,
    host: Any = None,
    runtime: bool = False,
    extra: Sequence[Any] = (),
    systemd: int | None = None,
) -> list[UnitExposure]:
    """The scores the services of ``image`` would get if attached with ``profile``: each unit
    file with the ``10-profile.conf`` and ``20-portable.conf`` attach writes, plus the drop-ins
    already on the host for that unit name (``host=None``: none), graded as systemd
    ``systemd`` does (``None``: the host's, :func:`portable.systemd.version.detect`).

    :param image: a :class:`portable.plugin.types.Image`; :param units: its
        :class:`portable.plugin.types.UnitFile`\\ s (other types than services are skipped);
    :param profile: a :class:`portable.plugin.types.Profile`; :param extra: the
        :class:`portable.plugin.types.ExtraSetting`\\ s hooks add to ``20-portable.conf``.
    """
    from portable.engine.dropins import MARKER_FILE, PROFILE_FILE, render_portable_dropin
    from portable.systemd.host import ATTACHED_DIR, UNIT_SEARCH_PATH, Host
    from portable.systemd.version import detect

    the_host = host if host is not None else Host()
    version = systemd if systemd is not None else detect(the_host).major
    where = ATTACHED_DIR[runtime]
    out = []
    for unit in units:
        if unit.type not in SCORED_TYPES:
            continue
        overlay: dict[str, str] = {}
        dropin = profile.dropin_for(unit.type) if profile is not None else None
        if dropin is not None:
            overlay[PROFILE_FILE] = dropin.text
        overlay[MARKER_FILE] = render_portable_dropin(
            image, unit, host_os_release=the_host.os_release_path(), extra=extra
        ).decode("utf-8", "surrogateescape")
        replace = {f"{where}/{unit.name}.d": overlay}
        if host is None:
            dropins = [(f"{where}/{unit.name}.d/{n}", t) for n, t in sorted(overlay.items())]
        else:
            dropins = host_dropins(the_host.path, unit.name, UNIT_SEARCH_PATH, replace=replace)
        text = unit.data.decode("utf-8", "surrogateescape")
        score = score_unit(
            UnitSource(name=unit.name, text=text, dropins=tuple(dropins)), systemd=version
        )
        out.append(
            UnitExposure(
                unit=unit.name,
                how="attach",
                profile=getattr(profile, "name", None),
                score=score,
                files=(f"{image.path.rstrip('/')}{unit.source}", *(p for p, _ in dropins)),
            )
        )
    return out


def host_unit_exposure(
    unit: str,
    *,
    host: Any,
    profile: Any = None,
    fragment: str | None = None,
    systemd: int | None = None,
) -> UnitExposure:
    """The score of a unit on the host: its unit file (the first in the unit search path, or
    ``fragment``) and every drop-in systemd would apply, graded as systemd ``systemd`` does
    (``None``: the host's, :func:`portable.systemd.version.detect`). With ``profile``, the
    unit's ``10-profile.conf`` (if attached) is replaced by that profile's drop-in, or added.

    :raises portable.errors.PortableError: no such unit.
    """
    from portable.engine.dropins import PROFILE_FILE
    from portable.errors import PortableError
    from portable.systemd.host import ATTACHED_DIR, UNIT_SEARCH_PATH
    from portable.systemd.version import detect

    version = systemd if systemd is not None else detect(host).major
    if fragment is None:
        for directory in UNIT_SEARCH_PATH:
            if os.path.isfile(host.path(f"{directory}/{unit}")):
                fragment = f"{directory}/{unit}"
                break
        else:
            raise PortableError(f"Unit {unit} not found on the host.")
    try:
        text = _read_text(host.path(fragment))
    except OSError as exc:
        raise PortableError(f"Cannot read unit file {fragment}: {exc.strerror}") from None
    directory = fragment.rsplit("/", 1)[0] or "/"
    search = list(UNIT_SEARCH_PATH)
    if directory not in search:
        search.insert(0, directory)
    replace: dict[str, dict[str, str]] = {}
    if profile is not None:
        dropin = profile.dropin_for(unit.rsplit(".", 1)[-1])
        if dropin is not None:
            replace[f"{directory}/{unit}.d"] = {PROFILE_FILE: dropin.text}
    dropins = host_dropins(host.path, unit, search, replace=replace)
    score = score_unit(UnitSource(name=unit, text=text, dropins=tuple(dropins)), systemd=version)
    return UnitExposure(
        unit=unit,
        how="attached" if directory in ATTACHED_DIR.values() else "unit",
        profile=getattr(profile, "name", None),
        score=score,
        files=(fragment, *(p for p, _ in dropins)),
    )
