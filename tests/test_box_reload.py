"""The daemon-reload that attach/detach/reattach skip (docs/reload.md) is not missed.

portablectl reloads PID 1 after every attach and detach; ours only when a unit it writes or
removes is loaded in PID 1 (``portable.engine.reload``). Proof by difference: the same sequence of
steps runs once with portablectl (which always reloads) and once with ours (by default), from
the same state, and after every step PID 1 must hold the same: the units it has in memory
(``list-units --all``, which loads nothing, before anything else looks), ``systemctl show`` of
a fixed list of properties of every unit (states, unit file state, fragment and drop-ins,
``NeedDaemonReload``, the sandbox), the users the services run as, what a connection to the
socket gets back, and ``is-attached``/``list`` of both tools. Starting and stopping the
units by hand after a plain attach must work alike, and so must a target whose ``Wants=`` held
a unit as not-found before it was attached. Ours must have skipped the reload exactly where
the rule says it can (``EXPECTED_RELOAD``). The steps take turns at the profiles; two
sequences, so that every step runs with two of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.in_box import main_process_user

from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

pytestmark = pytest.mark.box

REF = "portablectl"
OURS = "portable"
LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"
SOCKET = "/run/rl-portable.sock"
REF_TARGET = "/run/systemd/system/rlref.target"

UNITS = (
    "rl.service",
    "rl-sock.socket",
    "rl-sock@probe.service",
    "rl-tick.timer",
    "rl-tick.service",
    "rl-new.service",
)
PROPS = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "UnitFileState",
    "FragmentPath",
    "DropInPaths",
    "NeedDaemonReload",
    "Description",
    "WantedBy",
    "RootDirectory",
    "DynamicUser",
    "PrivateNetwork",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateUsers",
    "ProtectSystem",
    "ProtectHome",
    "CapabilityBoundingSet",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "NoNewPrivileges",
    "IPAddressDeny",
    "Listen",
    "Accept",
    "Triggers",
    "MainPID",  # compared as the user the process runs as
)
# Step i attaches with PROFILES[(i + offset) % 4]: every profile in every sequence, and the
# --force step's profile differs from the one before it (so the files change).
PROFILES = ("default", "strict", "trusted", "nonetwork")


def _units(version: str) -> dict[str, str]:
    """rl_1 and rl_2: a service, a socket with per-connection services, a timer; version 2
    changes descriptions, drops nothing and adds rl-new.service."""
    units = {
        "rl.service": service_unit(LOOP, description=f"rl {version}"),
        "rl-sock.socket": f"[Unit]\nDescription=rl socket {version}\n\n[Socket]\n"
        f"ListenStream={SOCKET}\nAccept=yes\n\n[Install]\nWantedBy=sockets.target\n",
        "rl-sock@.service": "[Unit]\nDescription=rl connection\n\n[Service]\n"
        "ExecStart=/usr/bin/cat\nStandardInput=socket\n",
        "rl-tick.timer": f"[Unit]\nDescription=rl tick {version}\n\n[Timer]\nOnActiveSec=1d\n\n"
        "[Install]\nWantedBy=timers.target\n",
        "rl-tick.service": "[Unit]\nDescription=rl tick\n\n[Service]\nType=oneshot\n"
        "RemainAfterExit=yes\nExecStart=/usr/bin/true\n",
    }
    if version == "2":
        units["rl-new.service"] = service_unit(LOOP, description="rl new")
    return units


@pytest.fixture(scope="module")
def images(box: Box) -> Path:
    d = box.mkdtemp(prefix="reload-")
    for version in ("1", "2"):
        make_directory_image(d / f"rl_{version}", units=_units(version))
    return d


@dataclass(frozen=True)
class Step:
    """One call of the tool (``args``, with {v1}, {v2}, {p} filled in), and what the
    test does around it: ``ref_target`` sets up a target whose Wants= holds rl.service as
    not-found first; ``by_hand`` starts the units with systemctl after the step and stops
    them again."""

    name: str
    args: tuple[str, ...]
    ref_target: bool = False
    by_hand: bool = False


STEPS = (
    Step("attach", ("attach", "-p", "{p}", "{v1}"), by_hand=True),
    Step("detach", ("detach", "{v1}")),
    Step("attach --now", ("attach", "--now", "-p", "{p}", "{v1}")),
    Step("attach --force", ("attach", "--force", "--now", "-p", "{p}", "{v1}")),
    Step("reattach --now", ("reattach", "--now", "-p", "{p}", "{v2}")),
    Step("detach --now", ("detach", "--now", "{v2}")),
    Step("attach --enable --now", ("attach", "--enable", "--now", "-p", "{p}", "{v1}")),
    Step("detach --now --enable", ("detach", "--now", "--enable", "{v1}")),
    Step("attach, held not-found", ("attach", "-p", "{p}", "{v1}"), ref_target=True),
    Step("detach --now, still wanted", ("detach", "--now", "{v1}")),
)

# Whether ours reloads, per step: (systemd 252, systemd 257). 257 holds a reload due after
# any enable/disable (NeedDaemonReload of every unit) until the next reload.
EXPECTED_RELOAD = {
    "attach": (False, False),
    "detach": (False, False),
    "attach --now": (False, False),
    "attach --force": (True, True),  # loaded and running, its drop-ins change
    "reattach --now": (True, True),  # the old version runs
    "detach --now": (False, False),  # stopped: collected
    "attach --enable --now": (False, False),
    "detach --now --enable": (False, True),
    "attach, held not-found": (False, False),  # loaded on demand (LoadUnit)
    "detach --now, still wanted": (True, True),  # rlref.target keeps it loaded
}


class Runner:
    def __init__(self, box: Box, images: Path) -> None:
        self.box = box
        self.images = images

    def tool(self, tool: str, args: list[str]) -> tuple[int, str]:
        run = self.box.portablectl if tool == REF else self.box.portable
        proc = run(args, check=False)
        return proc.returncode, proc.stderr

    def load_timestamp(self) -> str:
        return self.box.systemctl(["show", "-P", "UnitsLoadTimestampMonotonic"]).stdout.strip()

    def wait_idle(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.box.systemctl(["list-jobs", "--no-legend"]).stdout.strip():
            assert time.monotonic() < deadline, self.box.systemctl(["list-jobs"]).stdout
            time.sleep(0.02)

    def held(self) -> list[str]:
        """The rl units PID 1 has in memory (no unit is loaded by asking), without the
        per-connection instances of the socket (named after the connection)."""
        out = self.box.systemctl(
            ["list-units", "--all", "--plain", "--no-legend", "--full", "rl*"]
        ).stdout
        return sorted(
            line.split(None, 4)[0] + " " + " ".join(line.split(None, 4)[1:4])
            for line in out.splitlines()
            if line.strip() and (not line.startswith("rl-sock@") or "@probe" in line)
        )

    def show(self) -> dict[str, dict[str, str]]:
        out = self.box.systemctl(["show", "-p", ",".join(PROPS), *UNITS]).stdout
        blocks = out.rstrip("\n").split("\n\n")
        assert len(blocks) == len(UNITS), out
        return {
            unit: dict(line.split("=", 1) for line in block.splitlines())
            for unit, block in zip(UNITS, blocks, strict=True)
        }

    def user_of(self, pid: int) -> str:
        return main_process_user(self.box, pid) if pid else "-"

    def echo(self) -> str:
        """What a connection to the socket gets back ("-" if it is not listening)."""
        script = (
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.settimeout(10)\n"
            f"try: s.connect({SOCKET!r})\nexcept OSError: print('-'); sys.exit()\n"
            "s.sendall(b'hi\\n'); s.shutdown(1); print(s.recv(64).decode().strip())\n"
        )
        return self.box.python(["-c", script]).stdout.strip()

    def states(self) -> dict[str, str]:
        """is-attached of both images and list, as portablectl sees them, and our list (it
        says the state of every attached image; a detached one is not listed)."""
        images = [str(self.images / v) for v in ("rl_1", "rl_2")]
        script = 'for i; do portablectl is-attached "$i"; done; portablectl list --no-legend'
        ref = self.box.run(["sh", "-c", script, "sh", *images], check=False).stdout
        return {REF: ref, OURS: self.box.portable(["list", "--no-legend"]).stdout}

    def look(self) -> dict[str, object]:
        """Everything compared after a step; list-units first, before show loads units."""
        self.wait_idle()
        held = self.held()
        props = self.show()
        users = {u: self.user_of(int(props[u].pop("MainPID", "") or 0)) for u in props}
        return {"held": held, "show": props, "users": users, **self.states()}

    def by_hand(self) -> dict[str, object]:
        """Start the units with systemctl, look, connect, stop them again, look."""
        self.box.systemctl(["start", "rl.service", "rl-sock.socket", "rl-tick.timer"])
        seen: dict[str, object] = {"started": self.look(), "echo": self.echo()}
        self.box.systemctl(["stop", "rl.service", "rl-sock.socket", "rl-tick.timer"])
        seen["stopped"] = self.look()
        return seen

    def setup_ref_target(self) -> None:
        self.box.path(REF_TARGET).write_text("[Unit]\nDescription=rl ref\nWants=rl.service\n")
        self.box.systemctl(["daemon-reload"])
        self.box.systemctl(["start", "rlref.target"])

    def sequence(self, tool: str, offset: int) -> list[tuple[str, bool, dict[str, object]]]:
        """Run STEPS with ``tool``: per step (name, reloaded, what was seen)."""
        out = []
        for i, step in enumerate(STEPS):
            fill = {
                "{v1}": str(self.images / "rl_1"),
                "{v2}": str(self.images / "rl_2"),
                "{p}": PROFILES[(i + offset) % len(PROFILES)],
            }
            if step.ref_target:
                self.setup_ref_target()
            before = self.load_timestamp()
            rc, err = self.tool(tool, [fill.get(a, a) for a in step.args])
            assert rc == 0, f"{tool} {step.name}: {err}"
            reloaded = self.load_timestamp() != before
            seen = self.look()
            if step.by_hand:
                seen["by hand"] = self.by_hand()
            if step.ref_target:
                self.box.systemctl(["start", "rlref.target"])
                seen["after starting the target"] = self.look()
            if step.args[0] != "detach" and "--now" in step.args:
                seen["echo"] = self.echo()
            out.append((step.name, reloaded, seen))
        return out

    def cleanup(self) -> None:
        box = self.box
        for v in ("rl_1", "rl_2"):
            args = ["detach", "-q", "--force", "--now", "--enable", str(self.images / v)]
            box.portablectl(args, check=False)
        box.run("rm -rf /etc/systemd/system.attached /etc/portables " + REF_TARGET, check=False)
        box.systemctl(["stop", "rl*", "rlref.target"], check=False)
        box.systemctl(["reset-failed", "rl*"], check=False)
        box.systemctl(["daemon-reload"])


def _diff(expected: object, got: object, where: str = "") -> list[str]:
    """Readable differences between two nested dicts (empty if equal)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        out = []
        for key in sorted(expected.keys() | got.keys()):
            out += _diff(expected.get(key), got.get(key), f"{where}/{key}")
        return out
    return [] if expected == got else [f"{where}: expected {expected!r}, got {got!r}"]


@pytest.fixture
def runner(box: Box, images: Path) -> Iterator[Runner]:
    r = Runner(box, images)
    r.cleanup()
    yield r
    r.cleanup()


@pytest.mark.parametrize("offset", [0, 2], ids=["from-default", "from-trusted"])
def test_skipped_reload_same_as_portablectl(runner: Runner, box: Box, offset: int) -> None:
    ref = runner.sequence(REF, offset)
    runner.cleanup()
    got = runner.sequence(OURS, offset)
    new = box.systemd_version >= 257
    for (name, ref_reloaded, ref_seen), (_, reloaded, seen) in zip(ref, got, strict=True):
        assert ref_reloaded, f"portablectl did not reload at {name}"
        assert reloaded == EXPECTED_RELOAD[name][new], f"{name}: reloaded={reloaded}"
        diff = _diff(ref_seen, seen)
        assert not diff, f"{name}: differs from portablectl's\n" + "\n".join(diff)
    # The sequence did what it is meant to exercise.
    steps = {name: seen for name, _, seen in got}
    hand = steps["attach"]["by hand"]
    assert isinstance(hand, dict)
    assert hand["echo"] == "hi"
    started = hand["started"]
    assert isinstance(started, dict)
    assert started["show"]["rl.service"]["ActiveState"] == "active"
    assert started["show"]["rl-tick.timer"]["SubState"] == "waiting"
    dynamic = PROFILES[offset] != "trusted"
    assert started["users"]["rl.service"] == ("dynamic" if dynamic else "root")
    assert "rl_1" in steps["attach --now"]["portable"]
    assert steps["attach --now"]["echo"] == "hi"
    held = steps["attach, held not-found"]
    assert "rl.service loaded inactive dead" in held["held"]
    wanted = held["after starting the target"]
    assert isinstance(wanted, dict)
    assert wanted["show"]["rl.service"]["ActiveState"] == "active"


def test_reload_flag_forces_one(runner: Runner, images: Path) -> None:
    """--reload reloads where none is needed; --no-reload never; both together: refused."""
    image = str(images / "rl_1")
    before = runner.load_timestamp()
    assert runner.tool(OURS, ["attach", "--reload", image])[0] == 0
    forced = runner.load_timestamp()
    assert forced != before
    assert runner.tool(OURS, ["detach", "--reload", image])[0] == 0
    assert runner.load_timestamp() != forced
    rc, err = runner.tool(OURS, ["attach", "--reload", "--no-reload", image])
    assert rc == 1 and "--reload and --no-reload can't be used together" in err
    assert runner.states()[REF].splitlines()[0] == "detached"
