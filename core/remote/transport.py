"""Running shell commands on a remote host over OpenSSH, or in a local container.

A :class:`Transport` turns a POSIX shell script into the local command line that runs it there
(:meth:`Transport.argv`), and knows the one-line reason when that fails at the transport level
(:meth:`Transport.failure`). Two kinds:

* :class:`SshTransport` (``portable -H [USER@]HOST``): the user's own ``ssh`` (``$PORTABLE_SSH``,
  default ``ssh`` from PATH) with the user's config and keys, as portablectl's ``-H`` does
  (``ssh -xT HOST ...``). ``$PORTABLE_SSH_CONFIG`` adds ``-F FILE`` (the test fleet's config);
  ``--no-ask-password`` adds ``-o BatchMode=yes``, so ssh fails instead of prompting. ssh's own
  failures (exit 255) become "HOST: cannot connect: ...", "HOST: authentication failed ...".
* :class:`MachineTransport` (``portable -M CONTAINER``): a local container, entered with
  ``nsenter --all`` at its leader process (what ``machinectl shell`` reaches through
  systemd-machined). The leader is machined's (``machinectl show --property=Leader``), else, for
  a container nspawn runs without registering (``--register=no``), the PID 1 below the
  ``systemd-nspawn --machine=NAME`` process. Needs root, as nsenter does.

Either way the remote side runs ``sh -c SCRIPT`` (ssh hands its command to the login shell,
which may not be POSIX: the script is wrapped), with stdin, stdout and stderr as the caller
sets them: the image shipping (:mod:`portable.remote.ship`) streams the image on stdin, the
D-Bus client (:mod:`portable.remote.portabled`) talks to ``systemd-stdio-bridge`` over a
socket pair.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from portable.errors import PortableError

__all__ = [
    "REMOTE_PATH",
    "SSH_CONFIG_ENV",
    "SSH_ENV",
    "LocalTransport",
    "MachineTransport",
    "RemoteError",
    "SshTransport",
    "Transport",
    "find_machine_leader",
]

SSH_ENV = "PORTABLE_SSH"
SSH_CONFIG_ENV = "PORTABLE_SSH_CONFIG"
# PATH inside a container (nsenter keeps ours otherwise), as systemd's default for services.
REMOTE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSH_FAILED = 255  # ssh's exit status for its own errors (a remote command's is passed on)
_MAX_SOCKET_PATH = 107  # sun_path, less its NUL


class RemoteError(PortableError):
    """Something failed on (or on the way to) the remote: one line that starts with its name."""


class Transport:
    """How to run a script on the remote; see the module docstring."""

    #: how errors name the remote: "root@box1", "container foo"
    label: str

    def argv(self, script: str) -> list[str]:
        raise NotImplementedError

    def open(self) -> None:
        """Set up what later commands share (an ssh master connection); may raise RemoteError."""

    def close(self) -> None:
        """Undo :meth:`open`."""

    def run(
        self,
        script: str,
        *,
        input: bytes | None = None,
        stdin: int | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``script`` there, capturing its output; transport failures raise RemoteError."""
        try:
            proc = subprocess.run(
                self.argv(script),
                input=input,
                stdin=stdin if input is None else None,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as e:
            raise self.error(f"cannot run {e.filename}: not installed") from None
        except subprocess.TimeoutExpired:
            raise self.error("no answer (timed out)") from None
        reason = self.failure(proc.returncode, proc.stderr)
        if reason is not None:
            raise self.error(reason)
        return proc

    def popen(self, script: str, **kwargs: object) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(self.argv(script), **kwargs)  # type: ignore[call-overload, no-any-return]
        except FileNotFoundError as e:
            raise self.error(f"cannot run {e.filename}: not installed") from None

    def failure(self, returncode: int, stderr: bytes) -> str | None:
        """The one-line reason if the transport itself failed (not the script), else None."""
        return None

    def error(self, reason: str) -> RemoteError:
        return RemoteError(f"{self.label}: {reason}")


def _last_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no error message"


class SshTransport(Transport):
    """``ssh [USER@]HOST``; see the module docstring."""

    def __init__(self, host: str, *, batch: bool = False) -> None:
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise PortableError(f"-H: invalid host {host!r} (expected [USER@]HOST)")
        self.host = host
        self.label = host
        self.batch = batch
        self.ssh = os.environ.get(SSH_ENV) or "ssh"
        self.config = os.environ.get(SSH_CONFIG_ENV) or None
        self._mux_dir: str | None = None

    def _base(self) -> list[str]:
        return [
            self.ssh,
            *(["-F", self.config] if self.config else []),
            *(["-o", "BatchMode=yes"] if self.batch else []),
            *(
                ["-o", f"ControlPath={self._mux_dir}/%C", "-o", "ControlMaster=no"]
                if self._mux_dir
                else []
            ),
        ]

    def open(self) -> None:
        """Log in once: one master connection (ssh's ControlMaster) that every later command
        of this run shares, instead of a login each (a verb with an image to ship takes four).

        The master goes to the background once logged in (``-f``) and ends with :meth:`close`,
        or by itself 30 s after its last use if this process dies first. Its stderr goes to a
        file, never to a pipe of ours, which it would hold open. Failing to log in raises the
        one-line error; anything else about multiplexing just leaves it off.
        """
        if self._mux_dir is not None:
            return
        directory = tempfile.mkdtemp(prefix="portable-ssh-")
        if len(directory) + 42 > _MAX_SOCKET_PATH:  # %C is 40 hex digits
            os.rmdir(directory)
            return
        with tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(
                    [
                        *self._base(),
                        "-o",
                        f"ControlPath={directory}/%C",
                        "-o",
                        "ControlMaster=yes",
                        "-o",
                        "ControlPersist=30",
                        "-x",
                        "-f",
                        "-N",
                        "--",
                        self.host,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    check=False,
                )
            except FileNotFoundError as e:
                os.rmdir(directory)
                raise self.error(f"cannot run {e.filename}: not installed") from None
            err.seek(0)
            stderr = err.read()
        if proc.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            reason = self.failure(SSH_FAILED, stderr)
            raise self.error(reason or f"ssh failed: {_last_line(stderr)}")
        self._mux_dir = directory

    def close(self) -> None:
        """End the master connection, if :meth:`open` made one."""
        directory, self._mux_dir = self._mux_dir, None
        if directory is None:
            return
        subprocess.run(
            [
                self.ssh,
                *(["-F", self.config] if self.config else []),
                "-o",
                f"ControlPath={directory}/%C",
                "-O",
                "exit",
                "--",
                self.host,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)

    def argv(self, script: str) -> list[str]:
        return [
            *self._base(),
            # As portablectl: no X11 forwarding, no terminal (binary data on stdin/stdout).
            "-x",
            "-T",
            "--",
            self.host,
            # ssh hands this to the remote login shell, which may not be POSIX.
            f"sh -c {shlex.quote(script)}",
        ]

    def failure(self, returncode: int, stderr: bytes) -> str | None:
        if returncode != SSH_FAILED:
            return None
        text = stderr.decode(errors="replace")
        last = _last_line(stderr)
        if "Permission denied" in text or "Too many authentication failures" in text:
            return f"authentication failed ({last.removeprefix(f'{self.host}: ')})"
        if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION" in text:
            return "host key verification failed (see ssh's known_hosts)"
        if "Could not resolve hostname" in text:
            return "unknown host (could not resolve the name)"
        for reason in (
            "Connection refused",
            "Connection timed out",
            "No route to host",
            "Network is unreachable",
            "Connection reset",
            "Connection closed",
        ):
            if reason in text:
                return f"cannot connect: {reason.lower()} ({last})"
        return f"ssh failed: {last}"


def _nspawn_machine(pid: int) -> str | None:
    """The --machine=/-M name of a systemd-nspawn process, or None."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "systemd-nspawn":
            return None
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, arg in enumerate(args):
        if arg.startswith("--machine="):
            return arg.split("=", 1)[1]
        if arg in ("-M", "--machine") and i + 1 < len(args):
            return args[i + 1]
    return None


def _ns_pid1_child(pid: int) -> int | None:
    """The child of ``pid`` that is PID 1 of its own PID namespace (a container's init)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = re.search(r"^PPid:\s+(\d+)", status, re.M)
        nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
        if ppid and int(ppid[1]) == pid and nspid and nspid[1].split()[-1] == "1":
            return int(entry.name)
    return None


def find_machine_leader(name: str) -> int | None:
    """The host PID of container ``name``'s init; see the module docstring."""
    if shutil.which("machinectl"):
        proc = subprocess.run(
            ["machinectl", "show", "--property=Leader", "--value", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0 and proc.stdout.strip().isdigit():
            return int(proc.stdout.strip())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _nspawn_machine(int(entry.name)) == name:
            leader = _ns_pid1_child(int(entry.name))
            if leader is not None:
                return leader
    return None


class MachineTransport(Transport):
    """A local container, by name; see the module docstring."""

    def __init__(self, machine: str) -> None:
        if not machine or "/" in machine or machine.startswith("-"):
            raise PortableError(f"-M: invalid container name {machine!r}")
        self.machine = machine
        self.label = machine
        self._leader: int | None = None

    @property
    def leader(self) -> int:
        if self._leader is None:
            if os.geteuid() != 0:
                raise self.error("-M needs root (it enters the container's namespaces)")
            leader = find_machine_leader(self.machine)
            if leader is None:
                raise self.error("no such container is running (machinectl list shows them)")
            self._leader = leader
        return self._leader

    def argv(self, script: str) -> list[str]:
        return [
            shutil.which("nsenter") or "nsenter",
            f"--target={self.leader}",
            "--all",
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={REMOTE_PATH}",
            "LANG=C.UTF-8",
            "HOME=/root",
            "sh",
            "-c",
            script,
        ]

    def failure(self, returncode: int, stderr: bytes) -> str | None:
        text = stderr.decode(errors="replace")
        if returncode != 0 and text.startswith("nsenter:"):
            return f"cannot enter the container: {_last_line(stderr)}"
        return None


class LocalTransport(Transport):
    """This machine, as if it were a remote: ``sh -c SCRIPT`` here (tests, and ``-H .``-like
    uses by library callers). No transport of its own can fail."""

    def __init__(self, label: str = "localhost") -> None:
        self.label = label

    def argv(self, script: str) -> list[str]:
        return ["sh", "-c", script]


def quote_command(argv: Sequence[str]) -> str:
    """``argv`` as one line for the remote shell."""
    return shlex.join(argv)
