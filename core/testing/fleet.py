"""Several test boxes at once, each a real ``sshd`` the host's OpenSSH client reaches: a "fleet".

For tests of ``portable -H`` and of the Ansible collection: every box is a
:class:`~portable.testing.box.Box` (a throwaway systemd in ``systemd-nspawn``) with a network
namespace of its own (``lo`` only), where ``sshd`` listens on ``127.0.0.1:PORT`` (box N: port
2200+N). The host reaches it with its own ``ssh``, through an ``ssh_config`` whose
``ProxyCommand`` enters the box's network namespace (``nsenter --net``) and relays to that
port: real SSH, real keys, nothing leaves the machine and no host port is opened::

    from portable.testing.fleet import Fleet

    with Fleet(3) as fleet:                          # box1, box2, box3 (~1 s each)
        fleet.ssh("box1", "systemctl is-system-running").stdout
        fleet.ssh_config                             # Path: "Host box1 ...", for ssh -F
        fleet.ssh_command("box2")                    # ["ssh", "-F", CONFIG, "box2"]
        fleet.env                                    # {"PORTABLE_SSH_CONFIG": CONFIG}
        fleet["box3"].box.portablectl(["list"])      # the Box behind an alias
        fleet.inventory()                            # Path: an Ansible INI inventory

    with Fleet(2, portable=[True, False]) as fleet:  # box2 has only systemd, no `portable`
        ...

The key pair (ed25519, no passphrase), each box's host key and a ``known_hosts`` naming them are
made for the fleet in a temporary directory: host keys are checked strictly, and
``BatchMode=yes`` means nothing ever prompts. Each box's root may log in with the key
(``root@boxN`` or just ``boxN``: the config says ``User root``). In a box with ``portable``
(the default: the checkout and its virtualenv are bound in, see :class:`Box`) the virtualenv's
``bin`` comes first in PATH of SSH sessions, so ``ssh box1 portable list`` runs this checkout;
``portable=False`` boxes have none of it (``command -v portable`` fails there).

For Ansible: :meth:`Fleet.inventory` writes an inventory whose hosts use ``-F ssh_config``;
``ansible_python_interpreter`` is the box's ``/usr/bin/python3`` (both Debian roots have one).

Everything (boxes, keys, the temporary directory) is removed when the ``with`` block ends.
Needs what a Box needs (root, ``systemd-nspawn``) plus ``openssh-server`` in the boxes' OS trees
(the host's own for the release it runs: ``.ci/setup.sh`` installs it) and ``ssh``/``ssh-keygen``
on the host; :func:`fleet_unavailable_reason` says why not.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Self

from portable.testing.box import BOX_ENV, Box, BoxError, box_unavailable_reason, resolve_distro
from portable.testing.rootfs import RootfsError, tree_for

__all__ = [
    "BASE_PORT",
    "SSH_CONFIG_ENV",
    "Fleet",
    "FleetHost",
    "fleet_unavailable_reason",
    "relay",
]

BASE_PORT = 2200  # box N listens on BASE_PORT + N (in its own network namespace)
# Read by tests (and usable by anyone) to point ``portable -H`` at this config: see
# portable.remote.transport, which passes it to ssh as ``-F``.
SSH_CONFIG_ENV = "PORTABLE_SSH_CONFIG"
SSHD = "/usr/sbin/sshd"
_SSHD_UNIT = "fleet-sshd.service"
_SSHD_CONFIG = "/etc/ssh/fleet_sshd_config"
_HOST_KEY = "/etc/ssh/fleet_host_ed25519_key"


def fleet_unavailable_reason(distro: str | None = None) -> str | None:
    """Why a fleet of ``distro`` boxes cannot run here (for ``pytest.skip``), or None."""
    reason = box_unavailable_reason(distro)
    if reason is not None:
        return reason
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the test fleet needs {tool} (openssh-client), which is not installed"
    with contextlib.suppress(RootfsError, BoxError):
        tree = tree_for(resolve_distro(distro), build=False)
        if not (tree / SSHD.lstrip("/")).exists():
            return (
                f"the test fleet needs openssh-server in the {resolve_distro(distro)} box's "
                f"tree ({tree}); run .ci/setup.sh"
            )
    return None


@dataclass
class FleetHost:
    """One box of a fleet: its ssh alias, the box and the port its sshd listens on."""

    alias: str
    box: Box
    port: int
    with_portable: bool


class Fleet:
    """``count`` boxes running sshd; see the module docstring.

    ``portable``: one bool for every box, or one per box (``False``: only systemd, no
    ``portable`` inside). ``distro``: as for :class:`Box` (default: $PORTABLE_TEST_BOX, else
    this machine's release). ``box_options``: more keyword arguments for every Box.
    """

    def __init__(
        self,
        count: int = 3,
        *,
        portable: bool | Sequence[bool] = True,
        distro: str | None = None,
        box_options: Mapping[str, object] | None = None,
    ) -> None:
        flags = [portable] * count if isinstance(portable, bool) else list(portable)
        if len(flags) != count:
            raise ValueError(f"portable= has {len(flags)} entries for {count} boxes")
        self.count = count
        self.distro = distro
        self._flags = flags
        self._box_options = dict(box_options or {})
        self.hosts: list[FleetHost] = []
        self.workdir: Path | None = None
        self._stack: contextlib.ExitStack | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Self:
        """Make the keys, boot every box and start its sshd; return once each answers ssh."""
        if self._stack is not None:
            raise BoxError("the fleet is already started")
        stack = contextlib.ExitStack()
        self._stack = stack
        try:
            self.workdir = Path(tempfile.mkdtemp(prefix="portable-fleet-"))
            stack.callback(shutil.rmtree, self.workdir, ignore_errors=True)
            os.chmod(self.workdir, 0o700)
            self._keygen(self.key)
            for n, with_portable in enumerate(self._flags, start=1):
                options: dict[str, object] = {**self._box_options}
                # Its own network namespace also where Box would share the host's (systemd
                # < 256): each sshd is then reachable only through nsenter, never on the host.
                args = [*options.pop("nspawn_args", ()), "--private-network"]  # type: ignore[misc]
                box = Box(
                    distro=self.distro,
                    with_portable=with_portable,
                    nspawn_args=args,
                    **options,  # type: ignore[arg-type]
                )
                stack.enter_context(box)
                host = FleetHost(f"box{n}", box, BASE_PORT + n, with_portable)
                self.hosts.append(host)
                self._start_sshd(host)
            self._write_client_files()
            for host in self.hosts:
                self.ssh(host.alias, "true")  # raises BoxError if it does not answer
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Power every box off and remove the keys and files. Idempotent."""
        stack, self._stack = self._stack, None
        self.hosts = []
        if stack is not None:
            stack.close()
        self.workdir = None

    # --- files ----------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.workdir is None:
            raise BoxError("the fleet is not started")
        return self.workdir

    @property
    def key(self) -> Path:
        """The private key that logs in as root on every box (``key.pub`` beside it)."""
        return self._dir() / "id_ed25519"

    @property
    def ssh_config(self) -> Path:
        """The ssh_config naming every box (``Host box1`` ...): give it to ``ssh -F``."""
        return self._dir() / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self._dir() / "known_hosts"

    @property
    def aliases(self) -> list[str]:
        return [h.alias for h in self.hosts]

    @property
    def env(self) -> dict[str, str]:
        """Environment for a ``portable -H boxN`` subprocess: which ssh_config to use."""
        return {SSH_CONFIG_ENV: str(self.ssh_config)}

    def __getitem__(self, alias: str) -> FleetHost:
        for host in self.hosts:
            if host.alias == alias:
                return host
        raise KeyError(alias)

    def __iter__(self) -> Iterator[FleetHost]:
        return iter(self.hosts)

    @staticmethod
    def _keygen(path: Path) -> None:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
            check=True,
            capture_output=True,
        )

    def _start_sshd(self, host: FleetHost) -> None:
        box = host.box
        if not box.path(SSHD).exists():
            raise BoxError(
                f"{host.alias}: {SSHD} is not installed in the {box.distro} box's tree "
                "(openssh-server; run .ci/setup.sh)"
            )
        host_key = self._dir() / f"{host.alias}_host_ed25519_key"
        self._keygen(host_key)
        ssh_dir = box.path("/etc/ssh")
        ssh_dir.mkdir(mode=0o755, exist_ok=True)
        inside_key = box.path(_HOST_KEY)
        shutil.copyfile(host_key, inside_key)
        os.chmod(inside_key, 0o600)
        root_ssh = box.path("/root/.ssh")
        root_ssh.mkdir(mode=0o700, exist_ok=True)
        authorized = root_ssh / "authorized_keys"
        shutil.copyfile(self.key.with_name(self.key.name + ".pub"), authorized)
        os.chmod(authorized, 0o600)
        path = BOX_ENV["PATH"]
        if host.with_portable:
            path = f"{box.python_executable.parent}:{path}"
        box.path(_SSHD_CONFIG).write_text(
            "\n".join(
                [
                    f"Port {host.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {_HOST_KEY}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "AuthorizedKeysFile .ssh/authorized_keys",
                    "Subsystem sftp internal-sftp",
                    # After sshd's own default PATH: the virtualenv first where portable is.
                    f"SetEnv PATH={path} LANG=C.UTF-8",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        # A box's /etc is fresh: no privilege separation user, and root is locked ("!*"),
        # which sshd without PAM refuses even for key logins.
        box.run(
            [
                "sh",
                "-ec",
                "systemd-sysusers --inline 'u sshd - \"sshd privilege separation\" /run/sshd'; "
                "sed -i 's/^root:![^:]*:/root:*:/' /etc/shadow; mkdir -p -m 0755 /run/sshd",
            ]
        )
        started = box.run(
            [
                "systemd-run",
                f"--unit={_SSHD_UNIT}",
                # Debian's sshd tells systemd when it listens: systemd-run returns then.
                "--property=Type=notify",
                "--property=Restart=on-failure",
                SSHD,
                "-D",
                "-e",
                "-f",
                _SSHD_CONFIG,
            ],
            check=False,
        )
        if started.returncode != 0:
            log = box.run(["journalctl", "-u", _SSHD_UNIT, "--no-pager", "-n", "20"], check=False)
            raise BoxError(f"{host.alias}: sshd did not start:\n{log.stdout}{started.stderr}")

    def _write_client_files(self) -> None:
        lines: list[str] = []
        known: list[str] = []
        relay_cmd = [sys.executable, "-m", "portable.testing.fleet", "relay"]
        for host in self.hosts:
            pub = (self._dir() / f"{host.alias}_host_ed25519_key.pub").read_text().split()
            known.append(f"{host.alias} {pub[0]} {pub[1]}")
            proxy = shlex.join(
                [
                    shutil.which("nsenter") or "nsenter",
                    f"--net=/proc/{host.box.leader_pid}/ns/net",
                    "--",
                    *relay_cmd,
                ]
            )
            lines += [
                f"Host {host.alias}",
                "    HostName 127.0.0.1",
                f"    Port {host.port}",
                "    User root",
                f"    HostKeyAlias {host.alias}",
                # %p: the port, so ``ssh -p`` (or a wrong one, in tests) goes where it says.
                f"    ProxyCommand {proxy} %p",
                "",
            ]
        lines += [
            "Host *",
            f"    IdentityFile {self.key}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {self.known_hosts}",
            "    GlobalKnownHostsFile /dev/null",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    ConnectTimeout 10",
            "    LogLevel ERROR",
            "",
        ]
        self.known_hosts.write_text("\n".join(known) + "\n")
        self.ssh_config.write_text("\n".join(lines))

    def inventory(self, group: str = "fleet", **variables: str) -> Path:
        """An Ansible INI inventory of every box (written once; ``variables`` go to the group)."""
        path = self._dir() / "inventory.ini"
        ssh_args = f"-F {self.ssh_config}"
        rows = [f"[{group}]"]
        for host in self.hosts:
            rows.append(f"{host.alias} ansible_host={host.alias} ansible_user=root")
        rows += [
            "",
            f"[{group}:vars]",
            f"ansible_ssh_common_args='{ssh_args}'",
            "ansible_python_interpreter=/usr/bin/python3",
            *(f"{k}={v}" for k, v in variables.items()),
            "",
        ]
        path.write_text("\n".join(rows))
        return path

    # --- using it ---------------------------------------------------------------------------

    def ssh_command(self, alias: str, *options: str) -> list[str]:
        """The host's ssh, with this fleet's config, to ``alias`` (a command may follow)."""
        return ["ssh", "-F", str(self.ssh_config), *options, alias]

    def ssh(
        self,
        alias: str,
        command: str,
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> CompletedProcess[str]:
        """Run a shell command on a box over ssh (as root); with ``check``, raise on failure."""
        proc = subprocess.run(
            [*self.ssh_command(alias), command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise BoxError(
                f"ssh {alias} {command!r} failed with exit code {proc.returncode}: "
                f"{proc.stderr.strip()}"
            )
        return proc


# --- the ProxyCommand side ------------------------------------------------------------------


def relay(port: int, host: str = "127.0.0.1") -> None:
    """Copy stdin to a TCP connection to ``host:port`` and the connection to stdout until both
    sides are done (ssh's ProxyCommand protocol), run inside the box's network namespace."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "in")
    sel.register(sock, selectors.EVENT_READ, "sock")
    with sock:
        while True:
            for key, _ in sel.select():
                if key.data == "in":
                    data = os.read(0, 65536)
                    if data:
                        sock.sendall(data)
                    else:  # ssh is done sending: pass the half-close on, keep reading
                        sel.unregister(0)
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_WR)
                    continue
                data = sock.recv(65536)
                if not data:
                    return  # the server is done; ssh closes our stdin once stdout ends
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view) :]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "relay" and args[1].isdigit():
        try:
            relay(int(args[1]))
        except OSError as e:
            print(f"fleet relay: 127.0.0.1:{args[1]}: {e.strerror or e}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m portable.testing.fleet relay PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
