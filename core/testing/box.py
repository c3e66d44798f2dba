"""A throwaway, real systemd host for tests and demos: the "test box".

A :class:`Box` boots an OS tree as a volatile ``systemd-nspawn`` container (``/usr`` read-only
from the tree, everything else a fresh tmpfs), so tests can run ``portablectl``, ``systemctl``
and this project against a real service manager without touching the host::

    from portable.testing.box import Box

    with Box() as box:                              # boots in about a second
        box.portablectl(["list"]).stdout            # "No images.\\n"
        box.portable(["--help"])                    # python -m portable, from this checkout
        box.run("systemctl is-system-running", check=False)
        work = box.mkdtemp()                        # same path on the host and inside
        (work / "hello").write_text("hi")
        box.run(["cat", str(work / "hello")]).stdout  # "hi"
        box.path("/etc/machine-id").read_text()     # read a file inside, from the host

The checkout, the virtualenv and the Python installation behind it are bound read-only at the
same paths, so ``box.python()`` runs exactly the code under test. Extra directories go in with
``bind=``/``bind_ro=`` (``"SRC"``, ``"SRC:DST"`` or ``(SRC, DST)``); note ``/usr`` is read-only
inside, so put images under ``/srv`` or ``/var/tmp``. Loop devices are passed in so
``portablectl attach`` of raw/squashfs images works, and the host's ``/dev`` is visible at
``/run/hostdev`` with ``/dev/loopNpM`` linked there, so GPT disk images work too.

**Which systemd** is one switch: ``Box(distro=...)``, or, when not given, the environment
variable ``PORTABLE_TEST_BOX``; the default is the release this machine runs.

* ``"debian-12"``: Debian 12 (bookworm), systemd 252;
* ``"debian-13"``: Debian 13 (trixie), systemd 257.

The release this machine runs boots from the host's own ``/``; the other from a minimal root built
once with ``mmdebstrap`` and cached in ``/var/cache/portable-services/rootfs`` (about 30 s and
200 MB the first time; :mod:`portable.testing.rootfs`, which ``.ci/setup.sh`` runs). Either way
the host's Python runs inside, so a root whose glibc is older than that interpreter needs cannot be
used (:class:`BoxError` says so). ``box.distro`` and ``box.systemd_version`` (read from the
running manager) say what booted::

    with Box(distro="debian-13") as box:
        box.systemd_version                         # 257
        box.portablectl(["--version"])              # systemd 257's portablectl

systemd >= 256 refuses the legacy (v1) cgroup hierarchy, so such a box always gets a unified
one, also on a host with hybrid cgroups, and a network namespace of its own (``lo`` only):
systemd 257 applies ``PrivateNetwork=`` only with CAP_NET_ADMIN, which nspawn grants only then.
The test suite runs its box tests on each box of ``PORTABLE_TEST_BOXES`` (``tests/conftest.py``).

Needs root, ``systemd-nspawn`` and ``nsenter``; :func:`box_unavailable_reason` says why not.
The box powers off when the ``with`` block ends (also on exceptions), at interpreter exit, and
(via the parent-death signal) when this process dies abruptly; whatever an earlier, killed session
left behind is swept on the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from subprocess import CompletedProcess
from typing import IO, Self, TypedDict, Unpack

from portable.testing.cli_server import MODULE as CLI_SERVER
from portable.testing.rootfs import (
    BOX_ENV_VAR,
    HOST,
    RootfsError,
    host_distro,
    parse_distros,
    tree_for,
    tree_glibc_version,
    tree_systemd_version,
)

__all__ = [
    "BOX_ENV",
    "MAINTENANCE_TIMERS",
    "MASKED_SERVICES",
    "BindSpec",
    "Box",
    "BoxBootError",
    "BoxCommandError",
    "BoxError",
    "RunOptions",
    "box_unavailable_reason",
    "resolve_distro",
]

StrPath = str | os.PathLike[str]
BindSpec = StrPath | tuple[StrPath, StrPath]
"""``"SRC"`` (same path inside), ``"SRC:DST"`` or ``(SRC, DST)``."""

# The environment of every command run inside: PATH as systemd uses it, no pager, no colours,
# so output is stable and parseable.
BOX_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
    "SYSTEMD_LOG_COLOR": "0",
}

DEFAULT_RUN_TIMEOUT = 120.0
SCRATCH_ROOT = Path("/var/tmp")
SCRATCH_PREFIX = "portable-box-"
NAME_PREFIX = "ptest-"
_OWNER_FILE = ".box-owner"
_PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")
_LOOP_MAJOR = 7
# Periodic jobs of the trees the box boots (Debian 12 and 13), masked inside.
MAINTENANCE_TIMERS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "man-db.timer",
    "systemd-sysupdate.timer",
    "systemd-sysupdate-reboot.timer",
    "systemd-tmpfiles-clean.timer",
)
# The trees have openssh-server (for portable.testing.fleet, which runs an sshd of its own):
# Debian's, enabled by the first boot's presets, would fail on the box's empty /etc (no config,
# no host keys) and leave the system "degraded".
MASKED_SERVICES = ("ssh.service", "ssh.socket")
HOST_DEV = "/run/hostdev"  # where the host's /dev is visible inside the box
_PARTITIONS_PER_LOOP = 16


class RunOptions(TypedDict, total=False):
    """Keyword arguments of :meth:`Box.run`, accepted by its helpers too."""

    check: bool
    input: str | None
    env: Mapping[str, str] | None
    timeout: float | None
    cwd: str


class BoxError(RuntimeError):
    """The box could not be started, stopped or used."""


class BoxBootError(BoxError):
    """The container did not come up; ``console`` holds everything it printed."""

    def __init__(self, message: str, console: str) -> None:
        super().__init__(f"{message}\n--- container console ---\n{console.rstrip()}\n---")
        self.console = console


class BoxCommandError(BoxError, subprocess.CalledProcessError):
    """A command inside the box failed; unlike CalledProcessError, str() shows its output."""

    def __init__(self, cmd: list[str], returncode: int, stdout: str, stderr: str) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, cmd, stdout, stderr)

    def __str__(self) -> str:
        return (
            f"command {self.cmd!r} failed with exit code {self.returncode}\n"
            f"--- stdout ---\n{self.stdout.rstrip()}\n--- stderr ---\n{self.stderr.rstrip()}"
        )


def box_unavailable_reason(distro: str | None = None) -> str | None:
    """Why a box of ``distro`` cannot be booted here (for ``pytest.skip``), or None if it can.

    A root that is not built yet counts as available if ``mmdebstrap`` can build it.
    """
    if os.geteuid() != 0:
        return "the test box needs root"
    for tool in ("systemd-nspawn", "nsenter", "setpriv"):
        if shutil.which(tool) is None:
            return f"the test box needs {tool}, which is not installed"
    try:
        distro = resolve_distro(distro)
        tree = tree_for(distro, build=False)
    except BoxError as e:
        return str(e)
    except RootfsError:
        if shutil.which("mmdebstrap") is None:
            return (
                f"the {distro} test box needs mmdebstrap to build its root "
                "(apt-get install mmdebstrap, or run .ci/setup.sh)"
            )
        return None  # built by the first start
    if tree_systemd_version(tree) is None and not (tree / "usr/lib/systemd/systemd").exists():
        return f"the {distro} test box boots the systemd of {tree}, which is not installed"
    return _interpreter_mismatch(distro, tree)


def resolve_distro(distro: str | None = None) -> str:
    """The distro id a box boots: ``distro``, else $PORTABLE_TEST_BOX, else this machine's."""
    chosen = distro or os.environ.get(BOX_ENV_VAR) or host_distro() or HOST
    try:
        parse_distros(chosen)
    except RootfsError as e:
        source = "" if distro else f" (from ${BOX_ENV_VAR})"
        raise BoxError(f"{e}{source}") from None
    return chosen


def _glibc_needed(files: Iterable[Path]) -> tuple[int, int]:
    """The newest GLIBC_x.y symbol version that some of ``files`` (ELF objects) asks for."""
    need = (0, 0)
    for path in files:
        with contextlib.suppress(OSError):
            for major, minor in re.findall(rb"GLIBC_(\d+)\.(\d+)", path.read_bytes()):
                need = max(need, (int(major), int(minor)))
    return need


def _interpreter_mismatch(distro: str, tree: Path) -> str | None:
    """Why the host's Python cannot run inside ``tree`` (its glibc is too old), or None."""
    have = tree_glibc_version(tree)
    host = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    match = re.fullmatch(r"glibc (\d+)\.(\d+)", host)
    if have is None or match is None or have >= (int(match[1]), int(match[2])):
        return None  # same or newer glibc (or not glibc at all): nothing to check
    # An older glibc only matters if the interpreter uses something newer from it.
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    files = [
        Path(sys.executable).resolve(),
        *base.glob("lib/libpython3*.so*"),
        *(base / "lib" / version / "lib-dynload").glob("*.so"),
    ]
    need = _glibc_needed(files)
    if need <= have:
        return None
    return (
        f"the {distro} test box cannot run this Python ({base}): it needs glibc "
        f"{need[0]}.{need[1]}, the {distro} root has {have[0]}.{have[1]}; run the tests with "
        f"a Python built on {distro} or older"
    )


# --- small /proc and /sys helpers -----------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, ppid, starttime) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses: it ends at the last ')'.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), int(fields[19])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None and st[1] == pid:
                found.append(int(entry.name))
    return found


def _mount_points() -> list[str]:
    # Field 5 of mountinfo is the mount point, with spaces etc. octal-escaped.
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].encode().decode("unicode_escape") for line in f]


def _has_mounts_below(path: Path) -> bool:
    prefix = str(path).rstrip("/") + "/"
    return any(m == str(path) or m.startswith(prefix) for m in _mount_points())


def _standard_loop_count() -> int:
    """How many loop devices the kernel creates by itself (max_loop, default 8)."""
    try:
        return int(Path("/sys/module/loop/parameters/max_loop").read_text()) or 8
    except (OSError, ValueError):
        return 8


def _kernel_loop_numbers() -> set[int]:
    """The loop devices that exist in the kernel (attached or not)."""
    try:
        return {int(p.name[4:]) for p in Path("/sys/block").iterdir() if p.name[4:].isdigit()}
    except OSError:
        return set()


def _make_loop_node(n: int, directory: Path = Path("/dev")) -> None:
    """Create ``directory``/loopN (block device 7:N) if it is missing."""
    with contextlib.suppress(FileExistsError):
        os.mknod(directory / f"loop{n}", 0o600 | stat.S_IFBLK, os.makedev(_LOOP_MAJOR, n))


def _restore_host_loop_nodes() -> None:
    """Recreate the host's missing /dev/loop-control and /dev/loopN.

    The kernel drops a loop device's node from devtmpfs when the device is removed (systemd
    removes the ones it used), and on a host without udev nothing brings it back.
    """
    with contextlib.suppress(FileExistsError):
        os.mknod("/dev/loop-control", 0o600 | stat.S_IFCHR, os.makedev(10, 237))
    for n in set(range(_standard_loop_count())) | _kernel_loop_numbers():
        _make_loop_node(n)


def _loop_devices() -> dict[str, tuple[str, str, str]]:
    """Attached loop devices: name -> (backing file, its "maj:min", its inode)."""
    try:
        out = subprocess.run(
            ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE,BACK-MAJ:MIN,BACK-INO"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    if not out.strip():
        return {}
    # losetup pads some columns with spaces, even in JSON.
    return {
        d["name"]: (
            str(d.get("back-file") or "").strip(),
            str(d.get("back-maj:min") or "").strip(),
            str(d.get("back-ino") or "").strip(),
        )
        for d in json.loads(out).get("loopdevices", [])
    }


def _detach_loops_backed_by(top: Path) -> None:
    """Detach the loop devices whose backing file lies below ``top``."""
    files = set()
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                files.add((f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", str(st.st_ino)))
    for loop, (_, dev, ino) in _loop_devices().items():
        if (dev, ino) in files:
            subprocess.run(["losetup", "--detach", loop], capture_output=True, check=False)


def _mountinfo_devs(path: str) -> set[str]:
    with open(path) as f:
        return {line.split()[2] for line in f if line.strip()}


def _cgroup_roots() -> list[Path]:
    """Our own cgroup in each hierarchy nspawn cares about (cgroup2 and v1 name=systemd)."""
    mounts: dict[str, Path] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _, options = post.split()[:3]
            if fstype == "cgroup2":
                mounts.setdefault("", Path(pre.split()[4]))
            elif fstype == "cgroup" and "name=systemd" in options.split(","):
                mounts.setdefault("name=systemd", Path(pre.split()[4]))
    roots = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers in mounts:
            roots.append(mounts[controllers] / path.lstrip("/"))
    return roots


def _cgroup_pids(top: Path) -> set[int]:
    """Every process in a cgroup and its children."""
    pids: set[int] = set()
    for procs in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids |= {int(line) for line in procs.read_text().split()}
    return pids


def _kill_cgroup_tree(top: Path, timeout: float = 5.0, spare: int | None = None) -> None:
    """SIGKILL everything in a cgroup tree (but ``spare``) and wait until it is gone."""
    deadline = time.monotonic() + timeout
    while (pids := _cgroup_pids(top) - {spare}) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _rmdir_cgroup_tree(top: Path, timeout: float = 5.0) -> None:
    """Remove a cgroup and its children, bottom-up, once their last processes have exited."""
    deadline = time.monotonic() + timeout
    while top.exists():
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        busy = False
        for d in [*dirs, top]:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                busy = True
        if not busy or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _venv_binds() -> list[Path]:
    """The virtualenv, and the Python installation it was made from."""
    prefix = Path(sys.prefix)
    paths = [prefix]
    home = None
    with contextlib.suppress(OSError):
        for line in (prefix / "pyvenv.cfg").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "home":
                home = Path(value.strip())
    # home = .../versions/3.11.7/bin: the installation is its parent (lib/, include/ ...).
    paths.append(home.parent if home is not None else Path(sys.base_prefix))
    return [p.resolve() for p in paths]


def _parse_bind(spec: BindSpec) -> tuple[Path, str]:
    if isinstance(spec, tuple):
        return Path(spec[0]), os.fspath(spec[1])
    src, sep, dst = os.fspath(spec).partition(":")
    return Path(src), dst if sep else src


_LIVE: set[Box] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    # Last line of defence for sessions that forgot (or could not) leave the with block.
    with _LIVE_LOCK:
        boxes = list(_LIVE)
    for box in boxes:
        with contextlib.suppress(Exception):
            box.stop()


def _sweep_stale() -> None:
    """Remove what boxes of dead processes (SIGKILLed test runs) left behind."""
    for scratch in SCRATCH_ROOT.glob(SCRATCH_PREFIX + "*"):
        name = scratch.name.removeprefix(SCRATCH_PREFIX)
        try:
            pid, start = map(int, (scratch / _OWNER_FILE).read_text().split())
        except (OSError, ValueError):
            continue  # not ours, or just being created
        st = _proc_stat(pid)
        if st is not None and st[2] == start:
            continue  # its owner still lives
        if _nspawn_running(name):
            continue
        for root in _cgroup_roots():
            # A container that nspawn orphaned (SIGTERMed while starting) may still run here.
            _kill_cgroup_tree(root / (SCRATCH_PREFIX + name))
            _rmdir_cgroup_tree(root / (SCRATCH_PREFIX + name))
        with contextlib.suppress(OSError):
            (_PROPAGATE_DIR / name).rmdir()
        shutil.rmtree(Path("/dev") / f".{SCRATCH_PREFIX}{name}", ignore_errors=True)
        if not _has_mounts_below(scratch):
            _detach_loops_backed_by(scratch)
            shutil.rmtree(scratch, ignore_errors=True)


def _nspawn_running(name: str) -> bool:
    """Whether a systemd-nspawn for machine ``name`` is still running."""
    arg = f"--machine={name}".encode()
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (_proc_stat(int(p.name)) or ("",))[0] == "systemd-nspawn":
            with contextlib.suppress(OSError):
                if arg in (p / "cmdline").read_bytes().split(b"\0"):
                    return True
    return False


# Variables that change how an interpreter starts (the resident server's has started already).
_STARTUP_ENV = ("PYTHON", "LANG", "LC_")


def _text(data: bytes) -> str:
    """Output as :func:`subprocess.run` decodes it in :meth:`Box.run` (newlines translated)."""
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


class _CliServer:
    """The client of :mod:`portable.testing.cli_server` running in a box."""

    def __init__(self, box: Box) -> None:
        self.path = str(box.scratch_dir / ".portable-cli.sock")  # the same path inside
        nsenter = shutil.which("nsenter") or "nsenter"
        self._proc = subprocess.Popen(
            [
                *(nsenter, "--all", f"--target={box.leader_pid}", "--wdns=/", "--"),
                *(str(box.python_executable), "-m", CLI_SERVER, self.path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=dict(BOX_ENV),
        )
        assert self._proc.stdout is not None
        if self._proc.stdout.readline() != b"ready\n":
            self.close()
            raise BoxError(f"the portable server in box {box.name} did not start")

    def run(
        self,
        args: list[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        input: str | None,
        timeout: float | None,
    ) -> tuple[int | None, bytes, bytes]:
        """Exit status (None: killed after ``timeout``), stdout and stderr of one run."""
        request = {"args": args, "env": dict(env), "cwd": cwd, "input": input, "timeout": timeout}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            reply = conn.makefile("rb")
            header = json.loads(reply.readline() or b"null")
            if header is None:
                raise BoxError(f"the portable server died running {args!r}")
            out, err = reply.read(header["out"]), reply.read(header["err"])
        return (None if header["timeout"] else int(header["rc"])), out, err

    def close(self) -> None:
        """Stop the server (it ends when its standard input closes)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class Box:
    """A booted, throwaway systemd container; see the module docstring.

    ``distro``: which OS tree (and so which systemd) boots, ``"debian-12"`` or ``"debian-13"``;
    default $PORTABLE_TEST_BOX, else the release this machine runs.
    ``bind``/``bind_ro``: extra host directories (``"SRC"``, ``"SRC:DST"`` or ``(SRC, DST)``).
    ``wait_running``: after PID 1 is up, also wait for ``systemctl is-system-running --wait``,
    so the bus and the boot jobs are settled when :meth:`start` returns.
    ``loop_devices``: how many /dev/loopN nodes (at least) to pass in.
    ``host_dev``: also bind the host's ``/dev`` read-only at :data:`HOST_DEV` and link every
    ``/dev/loopNpM`` there. Partition devices of loop devices (GPT images, which systemd
    attaches with partition scanning) appear only in the host's devtmpfs, never in the box's
    own ``/dev``; the links (dangling until the kernel creates the partition) make them reachable.
    ``with_portable``: bind this checkout and its virtualenv (default). ``False`` boots a box
    that has only what its OS tree has, as a remote host with only systemd would (no
    ``portable`` inside; :meth:`python` and :meth:`portable` raise :class:`BoxError`).
    ``fast_cli``: :meth:`portable` runs through a resident server in the box (see there).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        distro: str | None = None,
        bind: Iterable[BindSpec] = (),
        bind_ro: Iterable[BindSpec] = (),
        boot_timeout: float = 30.0,
        stop_timeout: float = 20.0,
        wait_running: bool = True,
        loop_devices: int = 16,
        host_dev: bool = True,
        nspawn_args: Sequence[str] = (),
        with_portable: bool = True,
        fast_cli: bool = True,
    ) -> None:
        self.name = name or NAME_PREFIX + secrets.token_hex(4)
        self.distro = resolve_distro(distro)
        # The OS tree booted: "/" or a cached root; found (built if need be) by start().
        self.tree: Path | None = None
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.wait_running = wait_running
        self.loop_devices = loop_devices
        self.host_dev = host_dev
        self.with_portable = with_portable
        self.scratch_dir = SCRATCH_ROOT / (SCRATCH_PREFIX + self.name)
        # core/testing/box.py -> the checkout (the package is installed editable).
        self.checkout = Path(__file__).resolve().parents[2]
        self.python_executable = Path(sys.prefix) / "bin" / "python"
        self.fast_cli = fast_cli
        self.boot_seconds: float | None = None
        self._binds = [_parse_bind(b) for b in bind]
        self._binds_ro = [_parse_bind(b) for b in bind_ro]
        self._nspawn_args = list(nspawn_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._console_file: IO[bytes] | None = None
        self._console_text = ""
        self._leader: int | None = None
        self._cgroups: list[Path] = []
        self._loops_before: set[str] = set()
        self._loop_numbers: list[int] = []
        self._dev_dir = Path("/dev") / f".{SCRATCH_PREFIX}{self.name}"
        self._box_loops: dict[str, str] = {}
        self._systemd_version: int | None = None
        self._tree_systemd = 0  # the systemd version installed in the tree, 0 if unknown
        self._lock = threading.Lock()
        self._cli: _CliServer | None = None
        self._cli_failed = False
        self._cli_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Box {self.name} {self.distro} leader={self._leader}>"

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def nspawn_pid(self) -> int:
        """The PID of systemd-nspawn."""
        if self._proc is None:
            raise BoxError(f"box {self.name} is not running")
        return self._proc.pid

    @property
    def leader_pid(self) -> int:
        """The container's PID 1 (systemd), as a host PID."""
        if self._leader is None:
            raise BoxError(f"box {self.name} is not running")
        return self._leader

    def is_running(self) -> bool:
        """Whether the container has been started and not stopped (or died) since."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def systemd_version(self) -> int:
        """The major version of the running systemd, from its manager (e.g. 252 or 257)."""
        if self._systemd_version is None:
            # The manager's own D-Bus Version property, not the systemctl binary's.
            out = self.systemctl(["show", "--property=Version", "--value"]).stdout.strip()
            match = re.match(r"\d+", out)
            if match is None:
                raise BoxError(f"box {self.name}: cannot read the systemd version from {out!r}")
            self._systemd_version = int(match.group())
        return self._systemd_version

    def _find_tree(self) -> Path:
        """The OS tree to boot; builds the cached root on first use."""
        if self.tree is None:
            try:
                tree = tree_for(self.distro)
            except RootfsError as e:
                raise BoxError(f"box {self.name}: {e}") from None
            reason = _interpreter_mismatch(self.distro, tree)
            if reason is not None:
                raise BoxError(reason)
            self.tree = tree
            self._tree_systemd = tree_systemd_version(tree) or 0
        return self.tree

    def console_output(self) -> str:
        """What the container printed on its console (and nspawn on stderr) so far."""
        if self._console_file is None:
            return self._console_text
        return os.pread(self._console_file.fileno(), 1 << 24, 0).decode(errors="replace")

    def _bind_table(self) -> list[tuple[Path, str, bool]]:
        """(host path, path inside, read-only) for every directory bound into the box."""
        ro: list[Path] = []
        for path in [self.checkout, *_venv_binds()] if self.with_portable else []:
            # Skip paths inside one already bound (the venv usually lives in the checkout).
            if not any(path == p or path.is_relative_to(p) for p in ro):
                ro.append(path)
        return [
            *((p, str(p), True) for p in ro),
            *((src, dst, True) for src, dst in self._binds_ro),
            (self.scratch_dir, str(self.scratch_dir), False),
            *((src, dst, False) for src, dst in self._binds),
        ]

    def nspawn_command(self) -> list[str]:
        """The command line that boots this box (without the cgroup/pdeathsig wrapper)."""
        return [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--volatile=yes",
            f"--directory={self._find_tree()}",
            "--boot",
            "--console=pipe",
            f"--machine={self.name}",
            *(f"--bind{'-ro' if ro else ''}={src}:{dst}" for src, dst, ro in self._bind_table()),
            "--bind=/dev/loop-control",
            *([f"--bind-ro=/dev:{HOST_DEV}"] if self.host_dev else []),
            *(f"--bind={self._dev_dir}/loop{n}:/dev/loop{n}" for n in self._loop_numbers),
            # Only takes effect where nspawn registers a scope; without registration it runs
            # in our (here unrestricted) device cgroup anyway.
            "--property=DeviceAllow=block-loop rwm",
            # systemd >= 253 holds back mount jobs for up to 1 s once /proc/self/mountinfo
            # changed 5 times in a second, which a boot (and attaching images) easily does:
            # a whole second of every boot of the 257 box. Nothing else reads this variable.
            "--setenv=SYSTEMD_DEFAULT_MOUNT_RATE_LIMIT_BURST=1000",
            # systemd 257 skips PrivateNetwork= (the service stays in the host's network) unless
            # it has CAP_NET_ADMIN, which nspawn grants only with a network namespace of the
            # container's own; 252 sets the namespace up regardless (its lo stays down).
            *(["--private-network"] if self._tree_systemd >= 256 else []),
            *self._nspawn_args,
            # Arguments for the container's systemd (it reads them like a kernel command line).
            # /etc starts empty, so systemd-firstboot.service runs, wants /dev/console (which
            # --console=pipe does not create) and fails, leaving the system "degraded".
            "systemd.mask=systemd-firstboot.service",
            # The distribution's maintenance timers: a job they start at a random time (apt's,
            # after a boot) is noise to tests that wait for PID 1 to be idle or compare jobs.
            *(f"systemd.mask={timer}" for timer in MAINTENANCE_TIMERS),
            *(f"systemd.mask={unit}" for unit in MASKED_SERVICES),
        ]

    def start(self) -> Self:
        """Boot the container; return once PID 1 (and, with ``wait_running``, boot) is done."""
        with self._lock:
            if self._proc is not None:
                raise BoxError(f"box {self.name} is already started")
            _sweep_stale()
            self._find_tree()  # before the clock starts: a first build takes a while
            if self.scratch_dir.exists():  # checked here: cleaning up after a failure removes it
                raise BoxError(f"box {self.name} exists already ({self.scratch_dir})")
            t0 = time.monotonic()
            try:
                self._spawn()
                self._wait_for_boot(t0 + self.boot_timeout)
            except BaseException:
                self._stop_locked(graceful=False)
                raise
            self.boot_seconds = time.monotonic() - t0
            return self

    def _spawn(self) -> None:
        self.scratch_dir.mkdir(mode=0o755)
        st = _proc_stat(os.getpid())
        (self.scratch_dir / _OWNER_FILE).write_text(f"{os.getpid()} {st[2] if st else 0}\n")
        self._loops_before = set(_loop_devices())
        _restore_host_loop_nodes()
        # The box gets its loop nodes from a private directory: more than the kernel's default
        # 8 (with loops busy on the host, one allocated inside gets a higher number, and a node
        # appearing later would not show up inside), without adding any to the host's /dev.
        self._dev_dir.mkdir(mode=0o700, exist_ok=True)
        numbers = set(range(max(self.loop_devices, _standard_loop_count())))
        self._loop_numbers = sorted(numbers | _kernel_loop_numbers())
        for n in self._loop_numbers:
            _make_loop_node(n, self._dev_dir)
        # Own cgroups: nspawn without a unit runs the container below its *current* cgroup
        # (creating "payload"/"supervisor" there); here that is the hierarchy root on a host
        # that systemd does not manage, so two boxes would share (and fight over) one tree.
        for root in _cgroup_roots():
            cg = root / (SCRATCH_PREFIX + self.name)
            with contextlib.suppress(OSError):
                cg.mkdir(exist_ok=True)
                self._cgroups.append(cg)
        moves = "".join(f'echo $$ > "{cg}/cgroup.procs" && ' for cg in self._cgroups)
        # setpriv --pdeathsig: if this process dies without cleaning up, nspawn gets SIGTERM and
        # halts the container instead of living on. (Tied to the calling thread, see prctl(2).)
        wrapper = ["setpriv", "--pdeathsig=TERM", "--", "sh", "-c", moves + 'exec "$@"', "sh"]
        # Drop the caller's SYSTEMD_* variables so they cannot change how the box boots.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
        # On a hybrid v1/v2 host nspawn gives the container the same hybrid layout, which
        # systemd < 256 boots with; 256 and later refuse v1 and need the unified hierarchy
        # (nspawn then mirrors our cgroup in the v2 tree, where _cgroup_roots made one too).
        if self._tree_systemd >= 256:
            env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"] = "1"
        # Unlinked at once, so nothing is left in /tmp; lives until stop() closes it.
        self._console_file = tempfile.TemporaryFile(prefix="portable-box-console-")  # noqa: SIM115
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._proc = subprocess.Popen(
            [*wrapper, *self.nspawn_command()],
            stdin=subprocess.DEVNULL,
            stdout=self._console_file,
            stderr=subprocess.STDOUT,
            env=env,
            # Not in our process group: a terminal's Ctrl-C must reach us, and we stop it cleanly.
            start_new_session=True,
        )

    def _wait_for_boot(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise BoxBootError(
                    f"systemd-nspawn for box {self.name} exited with {self._proc.returncode}",
                    self.console_output(),
                )
            if self._leader is None:
                self._leader = next(
                    (
                        pid
                        for pid in _children(self._proc.pid)
                        if (_proc_stat(pid) or ("",))[0] == "systemd"
                    ),
                    None,
                )
            if self._leader is not None and self.path("/run/systemd/private").exists():
                break
            if time.monotonic() > deadline:
                raise BoxBootError(
                    f"box {self.name} did not boot within {self.boot_timeout:g}s "
                    "(no /run/systemd/private)",
                    self.console_output(),
                )
            time.sleep(0.02)
        if self.wait_running:
            remaining = max(deadline - time.monotonic(), 1.0)
            try:
                # "degraded" exits non-zero, which is still booted; only a timeout is fatal.
                self.run(
                    ["systemctl", "is-system-running", "--wait"], check=False, timeout=remaining
                )
            except subprocess.TimeoutExpired as e:
                # PID 1 runs, so its jobs and journal say more than the (empty) console.
                diag = self.run(
                    "systemctl list-jobs --no-pager; journalctl -b --no-pager -n 60",
                    check=False,
                    timeout=10,
                )
                raise BoxBootError(
                    f"box {self.name} did not finish booting within {self.boot_timeout:g}s",
                    self.console_output() + diag.stdout + diag.stderr,
                ) from e
        if self.host_dev:
            self._link_partition_nodes()
        # Debian ships /etc/os-release as a link into /usr; the volatile /etc lacks it.
        os_release = self.path("/etc/os-release")
        if not os_release.exists() and not os_release.is_symlink():
            os_release.symlink_to("../usr/lib/os-release")
        self._open_bind_parents()
        if self._tree_systemd >= 254:
            self._prepare_run_host()

    def _prepare_run_host(self) -> None:
        """Make the box's /run/host look as a service of systemd >= 254 leaves a host's.

        Such a service with RootDirectory=/RootImage= gets the host's os-release as
        ``/run/host/os-release -> .os-release-stage/os-release``, a bind mount on the directory
        and a symlink, both created inside its image's /run. With BindPaths=/run (the "trusted"
        profile) that is the box's /run/host, which nspawn made read-only and where it put a
        regular os-release file: the symlink cannot be created and the service fails (226/
        NAMESPACE). On a real host the first such service creates both; here they are made
        ahead, and the symlink resolves to the same file as before.
        """
        self.run(
            "set -e; mount -o remount,bind,rw /run/host; mkdir -p /run/host/.os-release-stage; "
            "cp /run/host/os-release /run/host/.os-release-stage/os-release; "
            "umount /run/host/os-release; rm -f /run/host/os-release; "
            "ln -s .os-release-stage/os-release /run/host/os-release; "
            "mount -o remount,bind,ro /run/host"
        )

    def _open_bind_parents(self) -> None:
        """Let every user reach the bound directories (a box's /root is 0750, say).

        Only directories of the box's own root file system are changed, never a bound one: this
        is what lets the Python installation below /root/.pyenv run as another user.
        """
        root_dev = os.stat(self.path("/")).st_dev
        for _, dst, _ in self._bind_table():
            for parent in Path(dst).parents:
                inside = self.path(parent)
                st = os.stat(inside)
                if st.st_dev == root_dev and not st.st_mode & stat.S_IXOTH:
                    os.chmod(inside, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)

    def _link_partition_nodes(self) -> None:
        """``/dev/loopNpM`` -> the host's node (see ``host_dev``), for every loop passed in."""
        dev = self.path("/dev")
        for n in self._loop_numbers:
            for m in range(1, _PARTITIONS_PER_LOOP + 1):
                with contextlib.suppress(FileExistsError):
                    os.symlink(f"{HOST_DEV}/loop{n}p{m}", dev / f"loop{n}p{m}")

    def stop(self) -> None:
        """Power the container off and remove everything it left on the host. Idempotent."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self, graceful: bool = True) -> None:
        with self._cli_lock:
            if self._cli is not None:
                self._cli.close()
            self._cli, self._cli_failed = None, False
        proc = self._proc
        if proc is not None:
            self._box_loops = self._find_box_loops()
            # nspawn turns SIGTERM into an orderly poweroff of the container; but before it
            # has set up its handlers SIGTERM just kills it, orphaning the container.
            if graceful and self._leader is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self.stop_timeout)
            self._kill(proc)
            self._console_text = self.console_output()
        if self._console_file is not None:
            self._console_file.close()
            self._console_file = None
        self._proc = None
        self._leader = None
        self._systemd_version = None
        self._cleanup_host()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        """Make sure nspawn and every process of the container are gone."""
        # nspawn and the container all live in our cgroups (and nowhere else): killing those
        # catches everything, also a container that nspawn left behind.
        # The container first: nspawn then exits by itself and reaps its helpers, which would
        # otherwise linger as zombies of whatever reaps orphans here.
        for cg in self._cgroups:
            _kill_cgroup_tree(cg, spare=proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        for cg in self._cgroups:
            _kill_cgroup_tree(cg)
        if not self._cgroups:  # we could not make our own cgroups: fall back to the PIDs
            for pid in [p for p in (self._leader, proc.pid) if p is not None]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait()

    def _find_box_loops(self) -> dict[str, str]:
        """Loop devices attached from inside the box: name -> backing inode.

        Read while the box runs: only then are backing files shown with their paths inside.
        """
        if self._leader is None:
            return {}
        try:
            # File systems only the container has: its tmpfs, images it mounted...
            own_devs = _mountinfo_devs(f"/proc/{self._leader}/mountinfo")
            own_devs -= _mountinfo_devs("/proc/self/mountinfo")
        except OSError:
            own_devs = set()
        # Host directories inside: our binds, and /usr, which --volatile=yes binds from the host.
        inside = [dst.rstrip("/") + "/" for _, dst, _ in self._bind_table()] + ["/usr/"]
        return {
            name: ino
            for name, (back_file, back_dev, ino) in _loop_devices().items()
            if name not in self._loops_before
            and (back_dev in own_devs or any(back_file.startswith(p) for p in inside))
        }

    def _cleanup_host(self) -> None:
        # Loops attached inside without autoclear (plain losetup) outlive the container.
        for name, (_, _, ino) in _loop_devices().items():
            if self._box_loops.get(name) == ino:
                subprocess.run(["losetup", "--detach", name], capture_output=True, check=False)
        self._box_loops = {}
        _restore_host_loop_nodes()
        self._loop_numbers = []
        shutil.rmtree(self._dev_dir, ignore_errors=True)
        for cg in self._cgroups:
            _rmdir_cgroup_tree(cg)
        self._cgroups = []
        # nspawn removes this itself unless it was killed.
        with contextlib.suppress(OSError):
            (_PROPAGATE_DIR / self.name).rmdir()
        if self.scratch_dir.exists():
            if _has_mounts_below(self.scratch_dir):
                raise BoxError(f"{self.scratch_dir} still has mounts below it; not removing it")
            _detach_loops_backed_by(self.scratch_dir)
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    # --- using the box --------------------------------------------------------------------

    def path(self, path: StrPath) -> Path:
        """The host path through which a path inside the box can be read (via /proc/PID/root)."""
        return Path(f"/proc/{self.leader_pid}/root") / os.fspath(path).lstrip("/")

    def mkdtemp(self, prefix: str = "tmp") -> Path:
        """A new directory with the same path on the host and inside the box."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.scratch_dir))

    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_RUN_TIMEOUT,
        cwd: str = "/",
    ) -> CompletedProcess[str]:
        """Run a command inside the box (a string goes through ``sh -c``), capturing output.

        ``env`` is added to :data:`BOX_ENV`; ``cwd`` is a directory inside. With ``check``, a
        non-zero exit raises :class:`BoxCommandError`. A timeout raises
        :class:`subprocess.TimeoutExpired` (the command itself lives on until the box stops).
        """
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        nsenter = shutil.which("nsenter") or "nsenter"
        proc = subprocess.run(
            [nsenter, "--all", f"--target={self.leader_pid}", f"--wdns={cwd}", "--", *argv],
            input=input,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            env={**BOX_ENV, **(env or {})},
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise BoxCommandError(argv, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def python(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run the virtualenv's python inside the box; keyword arguments as for :meth:`run`."""
        if not self.with_portable:
            raise BoxError(f"box {self.name} was started without this checkout (with_portable)")
        return self.run([str(self.python_executable), *args], **kw)

    def portable(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run ``python -m portable`` (this checkout) inside the box; keyword arguments as for
        :meth:`run`.

        Through a resident server in the box that has imported the CLI once and forks a
        process per run (:mod:`portable.testing.cli_server`): the same run, the same
        environment, without the interpreter's start-up and imports. ``Box(fast_cli=False)``,
        or an ``env`` that changes how Python starts (``PYTHON*``, ``LANG``, ``LC_*``), runs a
        new interpreter instead.
        """
        env = kw.get("env") or {}
        server = None if any(k.startswith(_STARTUP_ENV) for k in env) else self._cli_server()
        if server is None:
            return self.python(["-m", "portable", *args], **kw)
        argv = [str(self.python_executable), "-m", "portable", *args]
        timeout = kw.get("timeout", DEFAULT_RUN_TIMEOUT)
        rc, out, err = server.run(
            list(args),
            env={**BOX_ENV, **env},
            cwd=kw.get("cwd", "/"),
            input=kw.get("input"),
            timeout=timeout,
        )
        stdout, stderr = _text(out), _text(err)
        if rc is None:
            raise subprocess.TimeoutExpired(argv, timeout or 0, stdout, stderr)
        if kw.get("check", True) and rc != 0:
            raise BoxCommandError(argv, rc, stdout, stderr)
        return CompletedProcess(argv, rc, stdout, stderr)

    def _cli_server(self) -> _CliServer | None:
        """The box's resident ``portable`` server, started on first use; None if it can't be."""
        if not self.fast_cli:
            return None
        with self._cli_lock:
            if self._cli is None and not self._cli_failed:
                try:
                    self._cli = _CliServer(self)
                except (OSError, BoxError):
                    self._cli_failed = True  # a new interpreter per run, as before
            return self._cli

    def portablectl(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run systemd's own ``portablectl`` inside the box."""
        return self.run(["portablectl", *args], **kw)

    def systemctl(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run ``systemctl`` inside the box."""
        return self.run(["systemctl", *args], **kw)
