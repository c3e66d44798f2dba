"""The sandbox floor (issue 16) in the box, against portablectl 252 and 257: unit settings an
image may not use to undo the profile it is attached with (core/security/floor.py).

For each case a small busybox image whose unit file has the setting. portablectl attaches every
one of them (the documented difference), and where it is cheap the escape is shown for real in
the box: ``ExecStart=+`` mounts /proc and copies a line of the box's /etc/shadow out through
/proc/1/root, ``StandardOutput=truncate:`` empties a file of /etc, a socket's ``ListenStream=``
replaces one, ``MakeDirectory=`` makes one, ``KillMode=none`` leaves the process running after
``detach --now``, ``Wants=`` starts a unit of the host and ``Alias=`` (with ``--enable``)
shadows one of /usr/lib. ``portable attach`` refuses each (exit 1, the refusal and a line
``unit:line: Setting=value: reason`` per finding) without touching anything, attaches it with
``--allow-setting`` and with ``--profile trusted``; a normal image (a socket in /run/NAME.sock,
StateDirectory=NAME, Wants=network-online.target...) attaches and runs.

Measured on both boxes (252.39, 257.13 alike):

* ``ExecStart=+...`` runs as root with every capability in the image's root, without the
  profile's /proc (MountAPIVFS= is not applied to it): the command mounts /proc itself and
  reaches the host's root through /proc/1/root;
* a unit's ``RootImage=`` wins over the ``RootDirectory=`` of 20-portable.conf: the service runs
  on the other image;
* ``NetworkNamespacePath=`` wins over strict's ``PrivateNetwork=yes``: the service is in PID 1's
  network namespace;
* a socket unit's ``Exec*=`` commands run as root on the host's root (a socket gets neither the
  profile nor RootDirectory=): the floor refuses any of them in a socket unit.

One box per distro (the session's), all images built once per box; every test removes what it
attached and puts back the host files it changed.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image

pytestmark = pytest.mark.box

# What attach writes; the refusal must leave all of it as it was.
WATCHED_DIRS = (
    "/etc/systemd/system.attached",
    "/etc/portables",
    "/run/systemd/system.attached",
    "/run/portables",
)
LOOP = "/usr/bin/sh -c 'while :; do sleep 3600; done'"

# The host's things the images go for.
VICTIM = "/etc/floor-victim"  # StandardOutput=truncate:
VICTIM_TEXT = "host data\n"
SOCKET_VICTIM = "/etc/floor-socket"  # ListenStream=
SOCKET_VICTIM_TEXT = "host file\n"
NEW_DIR = "/etc/floor-dir"  # MakeDirectory=
ESCAPED = "/run/floor-escaped"  # what ExecStart=+ copies out of /etc/shadow
SOCKET_EXEC_OUT = "/run/floor-socket-exec"  # what a socket's ExecStartPre= writes
HOST_UNIT = "hostdaemon.service"  # Wants=
HOST_UNIT_TEXT = "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
SHADOWED = "debug-shell.service"  # Alias=: in /usr/lib on both boxes, never started
KEEP = "987654"  # sleep's argument in the KillMode=none image: the process to find
OTHER_IMAGE = "floor-other.raw"  # RootImage=
WAIT_ONLINE = "systemd-networkd-wait-online.service"
ENABLED = "/etc/systemd/system.attached"


def service(
    extra: str,
    *,
    exec_start: str = LOOP,
    unit: str = "",
    kind: str = "exec",
    install: str = "WantedBy=multi-user.target\n",
) -> str:
    return (
        f"[Unit]\nDescription=floor test\n{unit}\n[Service]\nType={kind}\n"
        f"ExecStart={exec_start}\n{extra}\n[Install]\n{install}"
    )


# --- the box ------------------------------------------------------------------------------------


def show(box: Box, units: list[str], props: str) -> list[dict[str, str]]:
    out = box.systemctl(["show", "-p", props, *units]).stdout.rstrip("\n")
    return [dict(line.split("=", 1) for line in block.splitlines()) for block in out.split("\n\n")]


def main_pid(box: Box, unit: str) -> int:
    pid = int(show(box, [unit], "MainPID")[0]["MainPID"])
    assert pid, f"{unit} has no main process"
    return pid


def listing(box: Box) -> dict[str, str]:
    """Everything in WATCHED_DIRS: path -> kind and link target or content."""
    out = {}
    for top in WATCHED_DIRS:
        host_top = box.path(top)
        if not os.path.lexists(host_top):
            continue
        out[top] = "dir"
        for dirpath, dirnames, filenames in os.walk(host_top):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                inside = top + str(p)[len(str(host_top)) :]
                if p.is_symlink():
                    out[inside] = "-> " + os.readlink(p)
                elif p.is_dir():
                    out[inside] = "dir"
                else:
                    out[inside] = p.read_text(errors="replace")
    return out


@dataclass(frozen=True)
class HostState:
    files: dict[str, str | int | None]  # content, file type, or None: missing
    units: list[dict[str, str]]  # HOST_UNIT, SHADOWED, then the image's units
    kept: list[int]


def host_state(box: Box, units: list[str]) -> HostState:
    """The host's things the images go for, and the state of ``units``."""
    files: dict[str, str | int | None] = {}
    for path in (VICTIM, SOCKET_VICTIM, NEW_DIR, ESCAPED, SOCKET_EXEC_OUT):
        p = box.path(path)
        try:
            st = p.lstat()
        except FileNotFoundError:
            files[path] = None
            continue
        files[path] = p.read_text() if stat.S_ISREG(st.st_mode) else stat.S_IFMT(st.st_mode)
    props = show(box, [HOST_UNIT, SHADOWED, *units], "Id,LoadState,ActiveState")
    return HostState(files, props, kept_processes(box))


def kept_processes(box: Box) -> list[int]:
    """The PIDs (in the box) of the KillMode=none image's process."""
    pids = []
    for entry in box.path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"sleep") and argv[1:2] == [KEEP.encode()]:
                pids.append(int(entry.name))
    return pids


def put_back_host_files(box: Box) -> None:
    """The host files as the module made them (what the escapes under portablectl changed)."""
    for path, text in ((VICTIM, VICTIM_TEXT), (SOCKET_VICTIM, SOCKET_VICTIM_TEXT)):
        p = box.path(path)
        if p.is_symlink() or not p.is_file() or p.read_text() != text:
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            elif os.path.lexists(p):
                p.unlink()
            p.write_text(text)
    for path in (ESCAPED, SOCKET_EXEC_OUT):
        box.path(path).unlink(missing_ok=True)
    if box.path(NEW_DIR).is_dir():
        box.path(NEW_DIR).rmdir()


def leftovers(box: Box) -> list[str]:
    """What is in WATCHED_DIRS, but for the empty portables dirs both tools leave."""
    found = listing(box)
    return sorted(p for p in found if not (p.endswith("/portables") and found[p] == "dir"))


def clean_up(box: Box) -> None:
    """Stop and remove whatever our images left attached or running; the host files back."""
    if listing(box):
        dirs = " ".join(WATCHED_DIRS)
        box.run(
            "systemctl stop 'floor-*' 2>/dev/null; "
            f"for d in {dirs}; do [ -d $d ] || continue; "
            "find $d -depth \\( -name 'floor-*' -o -lname '*/floor-*' \\) -exec rm -rf {} +; "
            "find $d -depth -type d -empty -delete; done; "
            "systemctl daemon-reload; systemctl reset-failed 'floor-*' 2>/dev/null; true",
            check=False,
        )
    for pid in kept_processes(box):
        box.run(["kill", "-KILL", str(pid)], check=False)
    if box.systemctl(["is-active", "-q", HOST_UNIT], check=False).returncode == 0:
        box.systemctl(["stop", HOST_UNIT])
    put_back_host_files(box)


# --- the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    unit: str
    setting: str
    reason: str  # words the finding's reason has


@dataclass(frozen=True)
class Case:
    name: str  # the image's, and its units' prefix
    units: Mapping[str, str]  # "@IMAGES@" stands for the images' directory
    findings: tuple[Finding, ...]
    profile: str = "default"
    files: Mapping[str, str] = field(default_factory=dict)
    # How portablectl attaches it, what then shows the escape, and what after detach --now.
    ref_flags: tuple[str, ...] = ("--now",)
    escaped: Callable[[Box, Path], None] | None = None
    left: Callable[[Box], None] | None = None

    @property
    def settings(self) -> list[str]:
        return sorted({f.setting for f in self.findings})


def _runs_as_root(box: Box, images: Path) -> None:
    status = box.path(f"/proc/{main_pid(box, 'floor-user.service')}/status").read_text()
    assert "\nUid:\t0\t0\t0\t0\n" in status, status


def _copied_shadow(box: Box, images: Path) -> None:
    shadow = box.path("/etc/shadow").read_text().splitlines()[0]
    assert box.path(ESCAPED).read_text() == shadow + "\n"


def _sees_host_etc(box: Box, images: Path) -> None:
    pid = main_pid(box, "floor-bind.service")
    seen = box.run(["cat", f"/proc/{pid}/root/mnt/passwd"]).stdout
    assert seen == box.path("/etc/passwd").read_text()
    assert not (images / "floor-bind/etc/passwd").exists()


def _reads_host_files(box: Box, images: Path) -> None:
    credential = box.path("/run/credentials/floor-cred.service/shadow").read_text()
    assert credential == box.path("/etc/shadow").read_text()
    pid = main_pid(box, "floor-cred.service")
    environ = box.path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"ID=debian" in environ  # the box's os-release; the image's says portabletest


def _in_pid1_netns(box: Box, images: Path) -> None:
    pid = main_pid(box, "floor-netns.service")
    assert show(box, ["floor-netns.service"], "PrivateNetwork")[0]["PrivateNetwork"] == "yes"
    theirs, pid1 = box.run(["readlink", f"/proc/{pid}/ns/net", "/proc/1/ns/net"]).stdout.split()
    assert theirs == pid1


def _runs_on_other_image(box: Box, images: Path) -> None:
    pid = main_pid(box, "floor-rootimg.service")
    assert box.run(["cat", f"/proc/{pid}/root/other-marker"]).stdout == "the other image\n"


def _truncated(box: Box, images: Path) -> None:
    assert VICTIM_TEXT not in box.path(VICTIM).read_text()


def _socket_replaced(box: Box, images: Path) -> None:
    box.systemctl(["start", "floor-listen.socket"])
    assert stat.S_ISSOCK(box.path(SOCKET_VICTIM).lstat().st_mode)


def _made_directory(box: Box, images: Path) -> None:
    assert not box.path(NEW_DIR).exists()
    box.systemctl(["start", "floor-mkdir.path"])
    assert box.path(NEW_DIR).is_dir()


def _process_kept(box: Box) -> None:
    assert kept_processes(box), "KillMode=none: the process is gone after detach --now"


def _host_units_reached(box: Box, images: Path) -> None:
    # portablectl waits for its own unit's job; the host unit's, in the same transaction,
    # may still run (a oneshot of /bin/true).
    deadline = time.monotonic() + 10
    while (host := show(box, [HOST_UNIT], "ActiveState")[0])["ActiveState"] == "activating":
        assert time.monotonic() < deadline, host
        time.sleep(0.05)
    assert host["ActiveState"] == "active", host
    (alias,) = show(box, [SHADOWED], "Id")
    assert alias["Id"] == "floor-deps.service", alias  # the host's unit is shadowed


CASES = (
    Case(
        "floor-user",
        {"floor-user.service": service("User=root\n")},
        (Finding("floor-user.service", "User", "undoes what profile 'default' sets"),),
        escaped=_runs_as_root,
    ),
    Case(
        "floor-exec",
        {
            "floor-exec.service": service(
                "RemainAfterExit=yes\n", exec_start="+/usr/bin/sh /escape.sh", kind="oneshot"
            )
        },
        (Finding("floor-exec.service", "ExecStart", "full privileges"),),
        files={
            "escape.sh": "busybox mount -t proc proc /proc\n"
            f"head -n 1 /proc/1/root/etc/shadow > /proc/1/root{ESCAPED}\n"
        },
        escaped=_copied_shadow,
    ),
    Case(
        "floor-bind",
        {"floor-bind.service": service("BindReadOnlyPaths=/etc:/mnt\n")},
        (Finding("floor-bind.service", "BindReadOnlyPaths", "path of the host visible"),),
        escaped=_sees_host_etc,
    ),
    Case(
        "floor-cred",
        {
            "floor-cred.service": service(
                "LoadCredential=shadow:/etc/shadow\nEnvironmentFile=/etc/os-release\n"
            )
        },
        (
            Finding("floor-cred.service", "LoadCredential", "files of the host"),
            Finding("floor-cred.service", "EnvironmentFile", "files of the host"),
        ),
        escaped=_reads_host_files,
    ),
    Case(
        "floor-netns",
        {"floor-netns.service": service("NetworkNamespacePath=/proc/1/ns/net\n")},
        (Finding("floor-netns.service", "NetworkNamespacePath", "namespace of the host"),),
        profile="strict",
        escaped=_in_pid1_netns,
    ),
    Case(
        "floor-rootimg",
        {"floor-rootimg.service": service(f"RootImage=@IMAGES@/{OTHER_IMAGE}\n")},
        (Finding("floor-rootimg.service", "RootImage", "instead of the image"),),
        escaped=_runs_on_other_image,
    ),
    Case(
        "floor-stdout",
        {
            "floor-stdout.service": service(
                f"StandardOutput=truncate:{VICTIM}\n",
                exec_start="/usr/bin/sh -c 'echo pwned; while :; do sleep 3600; done'",
            )
        },
        (Finding("floor-stdout.service", "StandardOutput", "writes to a file of the host"),),
        escaped=_truncated,
    ),
    Case(
        "floor-listen",
        {
            "floor-listen.socket": f"[Socket]\nListenStream={SOCKET_VICTIM}\n",
            "floor-listen.service": service(""),
        },
        (Finding("floor-listen.socket", "ListenStream", "replaces) a file on the host"),),
        ref_flags=(),  # the socket alone is started: its service would be "already active"
        escaped=_socket_replaced,
    ),
    Case(
        "floor-mkdir",
        {
            "floor-mkdir.path": f"[Path]\nDirectoryNotEmpty={NEW_DIR}\nMakeDirectory=yes\n",
            "floor-mkdir.service": service(""),
        },
        (Finding("floor-mkdir.path", "MakeDirectory", "makes directories on the host"),),
        ref_flags=(),
        escaped=_made_directory,
    ),
    Case(
        "floor-killmode",
        {"floor-killmode.service": service("KillMode=none\n", exec_start=f"/usr/bin/sleep {KEEP}")},
        (Finding("floor-killmode.service", "KillMode", "leaves the service's processes"),),
        left=_process_kept,
    ),
    Case(
        "floor-deps",
        {
            "floor-deps.service": service(
                "", unit=f"Wants={HOST_UNIT}\n", install=f"Alias={SHADOWED}\n"
            )
        },
        (
            Finding("floor-deps.service", "Wants", "starts, stops or reloads a unit of the host"),
            Finding("floor-deps.service", "Alias", "shadows a unit of the host"),
        ),
        ref_flags=("--now", "--enable"),
        escaped=_host_units_reached,
    ),
)
CASE_IDS = [c.name.removeprefix("floor-") for c in CASES]

LEGIT = {
    "floor-ok.socket": "[Unit]\nDescription=floor test\n\n[Socket]\n"
    "ListenStream=/run/floor-ok.sock\nSocketMode=0660\n\n[Install]\nWantedBy=sockets.target\n",
    "floor-ok.service": service(
        "ExecStartPre=-/bin/true\nStateDirectory=floor-ok\nRuntimeDirectory=floor-ok\n"
        "Environment=FOO=bar\nRestart=on-failure\n",
        unit="Wants=network-online.target\nAfter=network-online.target floor-ok.socket\n"
        "Requires=floor-ok.socket\n",
        install="WantedBy=multi-user.target\nAlso=floor-ok.socket\n",
    ),
}
# Not caught by the floor (yet): a socket unit's ExecStartPre= runs as root on the host's root.
SOCKET_EXEC = {
    "floor-sockexec.socket": "[Socket]\nListenStream=/run/floor-sockexec.sock\n"
    f"ExecStartPre=/bin/sh -c 'id -u > {SOCKET_EXEC_OUT}; "
    f"head -n 1 /etc/os-release >> {SOCKET_EXEC_OUT}'\n",
    "floor-sockexec.service": service(""),
}


@dataclass(frozen=True)
class Images:
    top: Path

    def path(self, name: str) -> str:
        return str(self.top / name)


def unit_text(images: Images, case: Case, unit: str) -> str:
    return (images.top / case.name / "usr/lib/systemd/system" / unit).read_text()


def expected_lines(images: Images, case: Case) -> list[str]:
    """``  unit:line: Setting=value: `` for each finding (the reason is checked apart)."""
    out = []
    for f in case.findings:
        lines = unit_text(images, case, f.unit).splitlines()
        (n,) = [i for i, line in enumerate(lines, 1) if line.startswith(f.setting + "=")]
        out.append(f"  {f.unit}:{n}: {lines[n - 1]}: ")
    return out


@pytest.fixture(scope="module")
def images(box: Box) -> Iterator[Images]:
    """Every image, built once per box; the host files and unit the images go for."""
    top = box.mkdtemp(prefix="fl-")
    other = make_directory_image(top / "src-other", files={"other-marker": "the other image\n"})
    make_squashfs_image(top / OTHER_IMAGE, other)
    for case in CASES:
        units = {n: t.replace("@IMAGES@", str(top)) for n, t in case.units.items()}
        make_directory_image(top / case.name, units=units, files=case.files)
    make_directory_image(top / "floor-ok", units=LEGIT)
    make_directory_image(top / "floor-sockexec", units=SOCKET_EXEC)
    box.path(f"/run/systemd/system/{HOST_UNIT}").write_text(HOST_UNIT_TEXT)
    put_back_host_files(box)
    box.systemctl(["daemon-reload"])
    try:
        yield Images(top)
    finally:
        clean_up(box)
        for path in (VICTIM, SOCKET_VICTIM, f"/run/systemd/system/{HOST_UNIT}"):
            box.path(path).unlink(missing_ok=True)
        box.systemctl(["daemon-reload"])
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean(box: Box, images: Images) -> Iterator[None]:
    clean_up(box)  # a test starts with nothing attached (and no empty attach dirs)
    yield
    clean_up(box)


def portable(box: Box, *args: str) -> CompletedProcess[str]:
    return box.portable(list(args), check=False)


def portablectl(box: Box, *args: str) -> CompletedProcess[str]:
    return box.portablectl(list(args), check=False)


def profile_args(case: Case) -> list[str]:
    return [] if case.profile == "default" else ["--profile", case.profile]


# --- portablectl: attaches them all, and the escapes are real -----------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_portablectl_attaches_it(box: Box, images: Images, case: Case) -> None:
    """The documented difference: portablectl (and PID 1) take every one of these."""
    path = images.path(case.name)
    flags = [*case.ref_flags, *profile_args(case)]
    proc = portablectl(box, "attach", *flags, path)
    assert proc.returncode == 0, proc
    states = show(box, sorted(case.units), "LoadState")
    assert [s["LoadState"] for s in states] == ["loaded"] * len(case.units)
    if case.escaped is not None:
        case.escaped(box, images.top)
    enable = ["--enable"] if "--enable" in case.ref_flags else []
    proc = portablectl(box, "detach", "--now", *enable, path)
    assert proc.returncode == 0, proc
    if case.left is not None:
        case.left(box)


# --- portable: refuses them, and touches nothing ------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_portable_refuses_it(box: Box, images: Images, case: Case) -> None:
    path = images.path(case.name)
    units = sorted(case.units)
    before, host_before = listing(box), host_state(box, units)
    proc = portable(box, "attach", "--now", "--enable", *profile_args(case), path)
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    head, *lines = proc.stderr.splitlines()
    assert head == (
        f"portable: error: Image '{path}' has unit settings that undo the sandbox of profile "
        f"'{case.profile}' ({len(case.findings)}), refusing; "
        f"--allow-setting={','.join(case.settings)} attaches it anyway:"
    )
    assert len(lines) == len(case.findings), proc.stderr
    for line, expected, finding in zip(
        lines, expected_lines(images, case), case.findings, strict=True
    ):
        assert line.startswith(expected), (line, expected)
        assert finding.reason in line.removeprefix(expected), line
    assert listing(box) == before
    after = host_state(box, units)
    assert after == host_before
    assert [u["LoadState"] for u in after.units[2:]] == ["not-found"] * len(units)


def test_force_does_not_override_the_floor(box: Box, images: Images) -> None:
    case = next(c for c in CASES if c.name == "floor-stdout")
    proc = portable(box, "attach", "--force", "--now", images.path(case.name))
    assert proc.returncode == 1, proc
    assert "--allow-setting=StandardOutput attaches it anyway:" in proc.stderr.splitlines()[0]
    assert leftovers(box) == []
    assert box.path(VICTIM).read_text() == VICTIM_TEXT


def test_allowing_one_setting_refuses_the_other(box: Box, images: Images) -> None:
    case = next(c for c in CASES if c.name == "floor-cred")
    proc = portable(box, "attach", "--allow-setting", "LoadCredential", images.path(case.name))
    assert proc.returncode == 1, proc
    head, *lines = proc.stderr.splitlines()
    assert head.endswith("(1), refusing; --allow-setting=EnvironmentFile attaches it anyway:")
    assert lines == [
        expected_lines(images, case)[1] + "reads files of the host, not of the image (only "
        "/etc/default/NAME or /etc/sysconfig/NAME, NAME being the image's, may be read)"
    ]
    assert leftovers(box) == []


# --- portable: attaches them when told ----------------------------------------------------------


def attach_and_detach(box: Box, images: Images, case: Case, *args: str) -> None:
    path = images.path(case.name)
    proc = portable(box, "attach", *args, path)
    assert proc.returncode == 0, proc
    states = show(box, sorted(case.units), "LoadState")
    assert [s["LoadState"] for s in states] == ["loaded"] * len(case.units)
    proc = portable(box, "detach", path)
    assert proc.returncode == 0, proc
    assert leftovers(box) == []


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_allow_setting_attaches_it(box: Box, images: Images, case: Case) -> None:
    # Several settings: comma-separated once, one per option otherwise.
    if case.name == "floor-deps":
        allow = [a for s in case.settings for a in ("--allow-setting", s)]
    else:
        allow = ["--allow-setting", ",".join(case.settings)]
    attach_and_detach(box, images, case, *allow, *profile_args(case))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_trusted_attaches_it(box: Box, images: Images, case: Case) -> None:
    """trusted promises nothing, so it refuses nothing."""
    attach_and_detach(box, images, case, "--profile", "trusted")


# --- a normal image ------------------------------------------------------------------------------


def test_legit_image_attaches_and_runs(box: Box, images: Images) -> None:
    """A socket at /run/NAME.sock, StateDirectory=NAME, Wants=network-online.target,
    ExecStartPre=-...: the floor lets a normal image through, and it runs."""
    path = images.path("floor-ok")
    # The box has no network to wait for: systemd-networkd-wait-online would hold
    # network-online.target (and so the service) for two minutes.
    box.systemctl(["mask", "--runtime", WAIT_ONLINE])
    try:
        run_legit_image(box, path)
    finally:
        box.systemctl(["unmask", "--runtime", WAIT_ONLINE])
        box.run(["rm", "-rf", "/var/lib/private/floor-ok", "/var/lib/floor-ok"])
    for profile in ("strict", "nonetwork"):
        proc = portable(box, "attach", "--profile", profile, path)
        assert proc.returncode == 0, proc
        assert portable(box, "detach", path).returncode == 0


def run_legit_image(box: Box, path: str) -> None:
    proc = portable(box, "attach", "--now", "--enable", path)
    assert proc.returncode == 0, proc
    states = show(box, ["floor-ok.socket", "floor-ok.service"], "ActiveState")
    assert states == [{"ActiveState": "active"}] * 2, states
    attached = listing(box)
    for link in (
        "sockets.target.wants/floor-ok.socket",
        "multi-user.target.wants/floor-ok.service",
    ):
        assert f"{ENABLED}/{link}" in attached, attached
    assert stat.S_ISSOCK(box.path("/run/floor-ok.sock").lstat().st_mode)
    assert box.path("/var/lib/private/floor-ok").is_dir()  # DynamicUser=yes of the profile
    proc = portable(box, "detach", "--now", "--enable", path)
    assert proc.returncode == 0, proc
    assert leftovers(box) == []


# --- a hole the floor does not cover yet ---------------------------------------------------------


def test_socket_exec_runs_on_the_host(box: Box, images: Images) -> None:
    """Under portablectl: a socket gets no profile and no RootDirectory=, so its
    ExecStartPre= runs as root on the host's root (the host's /bin/sh and /etc)."""
    path = images.path("floor-sockexec")
    proc = portablectl(box, "attach", path)
    assert proc.returncode == 0, proc
    box.systemctl(["start", "floor-sockexec.socket"])
    out = box.path(SOCKET_EXEC_OUT).read_text().splitlines()
    assert out == ["0", box.path("/etc/os-release").read_text().splitlines()[0]]
    assert portablectl(box, "detach", "--now", path).returncode == 0


def test_portable_refuses_socket_exec(box: Box, images: Images) -> None:
    path = images.path("floor-sockexec")
    proc = portable(box, "attach", path)
    if proc.returncode == 0:
        assert portable(box, "detach", path).returncode == 0
    assert proc.returncode == 1, proc
    assert "floor-sockexec.socket:3: ExecStartPre=" in proc.stderr
    assert leftovers(box) == []
