"""systemd-analyze security's tables, per systemd version: what the exposure score
(:mod:`portable.security.score`) needs to know of capabilities, namespaces, address families,
system call groups and architectures, and how each known version reads a unit (:data:`RULES`).

System call groups are the version's (as its ``systemd-analyze syscall-filter`` prints them);
whether a system call exists on this machine is asked of libseccomp, as systemd does (without
libseccomp every listed call counts): :func:`syscall_exists`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from functools import cache
from typing import NamedTuple

from portable.systemd.host import Host
from portable.systemd.version import detect, nearest_known

__all__ = [
    "ADDRESS_FAMILIES",
    "AF_ALIASES",
    "CAPABILITIES",
    "CAP_ALL",
    "CAP_NUMBER",
    "NAMESPACES",
    "NAMESPACE_WORDS",
    "NS_ALL",
    "NS_INITIAL",
    "RULES",
    "TRUE_WORD",
    "Rules",
    "cap_mask",
    "capability_names",
    "rules_for",
    "syscall_exists",
    "syscall_number",
]

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

CAP_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}
CAP_ALL = (1 << 64) - 1


def cap_mask(*names: str) -> int:
    return sum(1 << CAP_NUMBER[f"cap_{n.lower()}"] for n in names)


def capability_names(mask: int) -> list[str]:
    """The capabilities set in ``mask``, upper-case (``CAP_SYS_ADMIN``), unknown bits as
    numbers."""
    return [
        CAPABILITIES[n].upper() if n < len(CAPABILITIES) else str(n)
        for n in range(64)
        if mask & (1 << n)
    ]


# --- namespaces ---------------------------------------------------------------------------------

NAMESPACES = {
    "cgroup": 0x02000000,
    "ipc": 0x08000000,
    "net": 0x40000000,
    "mnt": 0x00020000,
    "pid": 0x20000000,
    "user": 0x10000000,
    "uts": 0x04000000,
}
NS_ALL = sum(NAMESPACES.values())
NS_INITIAL = (1 << 64) - 1  # systemd's NAMESPACE_FLAGS_INITIAL: "not set", everything allowed
# RestrictNamespaces= also takes "time", which is not in systemd's NAMESPACE_FLAGS_ALL (so
# "no" and "~time" don't allow it) and no check looks at.
NAMESPACE_WORDS = {**NAMESPACES, "time": 0x00000080}

# --- address families --------------------------------------------------------------------------

# The families systemd 252 knows (af_from_name), with the two aliases mapped to their family.
ADDRESS_FAMILIES = frozenset(
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
AF_ALIASES = {"AF_LOCAL": "AF_UNIX", "AF_FILE": "AF_UNIX", "AF_ROUTE": "AF_NETLINK"}

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


# A NamedTuple: made at import in a fifth of the time of a frozen dataclass (~0.08 ms, not 0.45).
class Rules(NamedTuple):
    """How one systemd version reads a unit for the score (the checks themselves, their weights
    and ranges are the same in every known version).

    :param systemd: the known version these rules were measured on (252, 257).
    :param syscall_groups: ``@group`` -> its members, separated by spaces.
    :param architectures: the ``SystemCallArchitectures=`` words it knows.
    :param words: the words settings take besides a boolean (:data:`TRUE_WORD` says what
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
TRUE_WORD = {"PrivateTmp": "connected", "PrivateUsers": "self", "ProtectControlGroups": "yes"}

RULES: dict[int, Rules] = {
    252: Rules(
        systemd=252,
        syscall_groups=_SYSCALL_GROUPS_252,
        architectures=_ARCHITECTURES_252,
        words={key: () for key in TRUE_WORD},
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
        systemd = detect(Host()).major
    return RULES[nearest_known(systemd)]


# The groups the score looks at, in systemd's order.


@cache
def _libseccomp() -> Callable[[bytes], int] | None:
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
def syscall_number(name: str) -> int | None:
    """libseccomp's number for ``name`` on this architecture: ``>= 0`` exists here, other
    negative numbers are calls libseccomp knows for other architectures, ``None`` unknown.
    Without libseccomp every name counts as existing (0)."""
    resolve = _libseccomp()
    if resolve is None:
        return 0
    number = resolve(name.encode())
    return None if number == -1 else number


def syscall_exists(name: str) -> bool:
    number = syscall_number(name)
    return number is not None and number >= 0
