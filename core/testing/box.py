"""A throwaway, real systemd host for tests and demos: the "test box".

A :class:`Box` boots the host's own OS tree as a volatile ``systemd-nspawn`` container (``/usr``
read-only from the host, everything else a fresh tmpfs), so tests can run ``portablectl``,
``systemctl`` and this project against a real service manager without touching the host::

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
``portablectl attach`` of raw/squashfs images works.

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
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from subprocess import CompletedProcess
from types import TracebackType
from typing import IO, Self, TypedDict, Unpack

__all__ = [
    "BOX_ENV",
    "BindSpec",
    "Box",
    "BoxBootError",
    "BoxCommandError",
    "BoxError",
    "RunOptions",
    "box_unavailable_reason",
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


def box_unavailable_reason() -> str | None:
    """Why a box cannot be booted here (for ``pytest.skip``), or None if it can."""
    if os.geteuid() != 0:
        return "the test box needs root"
    for tool in ("systemd-nspawn", "nsenter", "setpriv"):
        if shutil.which(tool) is None:
            return f"the test box needs {tool}, which is not installed"
    if not Path("/usr/lib/systemd/systemd").exists() and not Path("/lib/systemd/systemd").exists():
        return "the test box boots the host's systemd, which is not installed"
    return None


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


def _ensure_loop_nodes(minimum: int) -> list[Path]:
    """Make sure /dev/loop-control and /dev/loopN exist on the host; return the loopN nodes.

    The kernel removes a loop device's node from devtmpfs when the device itself is removed
    (systemd does that after using one), and nothing recreates it on a host without udev, so a
    later container would be missing it.
    """
    numbers = set(range(minimum))
    with contextlib.suppress(OSError):
        numbers |= {int(p.name[4:]) for p in Path("/sys/block").iterdir() if p.name[4:].isdigit()}
    if not Path("/dev/loop-control").exists():
        os.mknod("/dev/loop-control", 0o660 | stat.S_IFCHR, os.makedev(10, 237))
    nodes = []
    for n in sorted(numbers):
        node = Path(f"/dev/loop{n}")
        if not node.exists():
            with contextlib.suppress(FileExistsError):
                os.mknod(node, 0o660 | stat.S_IFBLK, os.makedev(_LOOP_MAJOR, n))
        nodes.append(node)
    return nodes


def _loop_devices() -> dict[str, tuple[str, str]]:
    """Attached loop devices: name -> (backing file, backing "maj:min")."""
    try:
        out = subprocess.run(
            ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE,BACK-MAJ:MIN"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    if not out.strip():
        return {}
    return {
        d["name"]: (d.get("back-file") or "", d.get("back-maj:min") or "")
        for d in json.loads(out).get("loopdevices", [])
    }


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
            _rmdir_cgroup_tree(root / (SCRATCH_PREFIX + name), timeout=0)
        with contextlib.suppress(OSError):
            (_PROPAGATE_DIR / name).rmdir()
        if not _has_mounts_below(scratch):
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


class Box:
    """A booted, throwaway systemd container sharing the host's /usr; see the module docstring.

    ``bind``/``bind_ro``: extra host directories (``"SRC"``, ``"SRC:DST"`` or ``(SRC, DST)``).
    ``wait_running``: after PID 1 is up, also wait for ``systemctl is-system-running --wait``,
    so the bus and the boot jobs are settled when :meth:`start` returns.
    ``loop_devices``: how many /dev/loopN nodes (at least) to pass in.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        bind: Iterable[BindSpec] = (),
        bind_ro: Iterable[BindSpec] = (),
        boot_timeout: float = 30.0,
        stop_timeout: float = 20.0,
        wait_running: bool = True,
        loop_devices: int = 16,
        nspawn_args: Sequence[str] = (),
    ) -> None:
        self.name = name or NAME_PREFIX + secrets.token_hex(4)
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.wait_running = wait_running
        self.loop_devices = loop_devices
        self.scratch_dir = SCRATCH_ROOT / (SCRATCH_PREFIX + self.name)
        self.checkout = Path(__file__).resolve().parents[2]
        self.python_executable = Path(sys.prefix) / "bin" / "python"
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
        self._container_devs: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Box {self.name} leader={self._leader}>"

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def nspawn_pid(self) -> int:
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
        return self._proc is not None and self._proc.poll() is None

    def console_output(self) -> str:
        """What the container printed on its console (and nspawn on stderr) so far."""
        if self._console_file is None:
            return self._console_text
        return os.pread(self._console_file.fileno(), 1 << 24, 0).decode(errors="replace")

    def nspawn_command(self) -> list[str]:
        """The full command line that boots this box (without the cgroup/pdeathsig wrapper)."""
        ro: list[Path] = []
        for path in [self.checkout, *_venv_binds()]:
            # Skip paths inside one already bound (the venv usually lives in the checkout).
            if not any(path == p or path.is_relative_to(p) for p in ro):
                ro.append(path)
        cmd = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--volatile=yes",
            "--directory=/",
            "--boot",
            "--console=pipe",
            f"--machine={self.name}",
            *(f"--bind-ro={p}" for p in ro),
            *(f"--bind-ro={src}:{dst}" for src, dst in self._binds_ro),
            f"--bind={self.scratch_dir}",
            *(f"--bind={src}:{dst}" for src, dst in self._binds),
            "--bind=/dev/loop-control",
            *(f"--bind={node}" for node in _ensure_loop_nodes(self.loop_devices)),
            # Only takes effect where nspawn registers a scope; without registration it runs
            # in our (unrestricted) device cgroup anyway.
            "--property=DeviceAllow=block-loop rwm",
            *self._nspawn_args,
            # Arguments for the container's systemd (it reads them like a kernel command line).
            # /etc starts empty, so systemd-firstboot.service runs, wants /dev/console (which
            # --console=pipe does not create) and fails, leaving the system "degraded".
            "systemd.mask=systemd-firstboot.service",
        ]
        return cmd

    def start(self) -> Self:
        """Boot the container; return once PID 1 (and, with ``wait_running``, boot) is done."""
        with self._lock:
            if self._proc is not None:
                raise BoxError(f"box {self.name} is already started")
            _sweep_stale()
            t0 = time.monotonic()
            try:
                self._spawn()
                self._wait_for_boot(t0 + self.boot_timeout)
            except BaseException:
                self._stop_locked()
                raise
            self.boot_seconds = time.monotonic() - t0
            return self

    def _spawn(self) -> None:
        self.scratch_dir.mkdir(mode=0o755)
        st = _proc_stat(os.getpid())
        (self.scratch_dir / _OWNER_FILE).write_text(f"{os.getpid()} {st[2] if st else 0}\n")
        self._loops_before = set(_loop_devices())
        # Own cgroups: nspawn without a unit runs the container below its *current* cgroup
        # (creating "payload"/"supervisor" there); here that is the hierarchy root on a host
        # that systemd does not manage, so two boxes would share (and fight over) one tree.
        for root in _cgroup_roots():
            cg = root / (SCRATCH_PREFIX + self.name)
            with contextlib.suppress(OSError):
                cg.mkdir()
                self._cgroups.append(cg)
        moves = "".join(f'echo $$ > "{cg}/cgroup.procs" && ' for cg in self._cgroups)
        # setpriv --pdeathsig: if this process dies without cleaning up, nspawn gets SIGTERM and
        # halts the container instead of living on. (Tied to the calling thread, see prctl(2).)
        wrapper = ["setpriv", "--pdeathsig=TERM", "--", "sh", "-c", moves + 'exec "$@"', "sh"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
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
        # Debian ships /etc/os-release as a link into /usr; the volatile /etc lacks it.
        os_release = self.path("/etc/os-release")
        if not os_release.exists() and not os_release.is_symlink():
            os_release.symlink_to("../usr/lib/os-release")

    def stop(self) -> None:
        """Power the container off and remove everything it left on the host. Idempotent."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        proc = self._proc
        if proc is not None:
            self._remember_container_devs()
            if proc.poll() is None:
                # nspawn turns SIGTERM into an orderly poweroff of the container.
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._kill(proc)
            self._console_text = self.console_output()
        if self._console_file is not None:
            self._console_file.close()
            self._console_file = None
        self._proc = None
        self._leader = None
        self._cleanup_host()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        # Killing PID 1 of the container kills everything in its PID namespace; nspawn then
        # notices and cleans up after itself. Only if that fails, kill nspawn too.
        if self._leader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._leader, signal.SIGKILL)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _remember_container_devs(self) -> None:
        """Note the devices of file systems only the container has (its tmpfs etc.)."""
        if self._leader is None:
            return

        def devs(mountinfo: str) -> set[str]:
            return {line.split()[2] for line in mountinfo.splitlines() if line}

        with contextlib.suppress(OSError):
            inside = devs(Path(f"/proc/{self._leader}/mountinfo").read_text())
            self._container_devs = inside - devs(Path("/proc/self/mountinfo").read_text())

    def _cleanup_host(self) -> None:
        self._detach_leaked_loops()
        for cg in self._cgroups:
            _rmdir_cgroup_tree(cg)
        self._cgroups = []
        # nspawn removes this itself unless it was killed.
        with contextlib.suppress(OSError):
            (_PROPAGATE_DIR / self.name).rmdir()
        if self.scratch_dir.exists():
            if _has_mounts_below(self.scratch_dir):
                raise BoxError(f"{self.scratch_dir} still has mounts below it; not removing it")
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def _detach_leaked_loops(self) -> None:
        """Detach loop devices the container attached without autoclear (e.g. ``losetup``)."""
        ours = [str(p) for p in [self.scratch_dir, *(s for s, _ in self._binds)]]
        ours += [str(s) for s, _ in self._binds_ro]
        for name, (back_file, back_dev) in _loop_devices().items():
            if name in self._loops_before:
                continue
            from_box = back_dev in self._container_devs or any(
                back_file == p or back_file.startswith(p.rstrip("/") + "/") for p in ours
            )
            if from_box:
                subprocess.run(["losetup", "--detach", name], capture_output=True, check=False)

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

        ``env`` is added to :data:`BOX_ENV`. With ``check``, a non-zero exit raises
        :class:`BoxCommandError`; a timeout raises :class:`subprocess.TimeoutExpired`.
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
        return self.run([str(self.python_executable), *args], **kw)

    def portable(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run ``python -m portable`` (this checkout) inside the box."""
        return self.python(["-m", "portable", *args], **kw)

    def portablectl(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run systemd's own ``portablectl`` inside the box."""
        return self.run(["portablectl", *args], **kw)

    def systemctl(self, args: Sequence[str], **kw: Unpack[RunOptions]) -> CompletedProcess[str]:
        """Run ``systemctl`` inside the box."""
        return self.run(["systemctl", *args], **kw)
