"""The harness of test_box_attach_diff.py (also used by test_box_raw.py, test_box_extensions.py
and test_box_test29.py): attach/detach run with systemd's own ``portablectl`` and with
``portable`` in the box, and what each left compared.

See test_box_attach_diff.py for what is captured and compared. The fixtures ``images`` and
``known_profiles`` are module-scoped: a test module takes them in by assignment
(``known_profiles = attach_diff.known_profiles``).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from helpers.in_box import main_process_user
from portable.testing.box import Box
from portable.testing.images import make_directory_image, service_unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

REF = "portablectl"
OURS = "portable"
TOOLS = (REF, OURS)

ATTACHED_DIRS = ("/etc/systemd/system.attached", "/run/systemd/system.attached")
PORTABLES_DIRS = ("/etc/portables", "/run/portables")
HOST_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system")
SNAPSHOT_DIRS = (*ATTACHED_DIRS, *PORTABLES_DIRS, *HOST_UNIT_DIRS)
SYSTEMD_PROFILES = Path("/usr/lib/systemd/portable/profile")

# A payload that runs under every profile (busybox sh and sleep), and keeps running.
LOOP = "/usr/bin/sh -c 'echo started; while :; do sleep 3600; done'"

SHOW_PROPS = (
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "FragmentPath",
    "DropInPaths",
    "UnitFileState",
    "NeedDaemonReload",
    "RootDirectory",
    "RootImage",
    "Environment",
    "BindReadOnlyPaths",
    "BindPaths",
    "LogExtraFields",
    "DynamicUser",
    "PrivateNetwork",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateUsers",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "CapabilityBoundingSet",
    "RestrictAddressFamilies",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "SystemCallArchitectures",
    "NoNewPrivileges",
    "IPAddressDeny",
    "TasksMax",
    "MountAPIVFS",
    "RemoveIPC",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RestrictNamespaces",
    "RestrictRealtime",
    "Listen",
    "Accept",
    "Triggers",
)
AFTER_DETACH_PROPS = ("LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath")


# --- images ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    """An image of the module's image directory, and the units to ``systemctl show``."""

    name: str
    prefix: str
    show: tuple[str, ...]  # templates as an instance: a template itself cannot be shown


IMAGES = {
    "hello": ImageSpec(
        "hello_1.0", "hello", ("hello.service", "hello-tick.service", "hello-tick.timer")
    ),
    "echo": ImageSpec(
        "echo_2", "echo", ("echo-daemon.service", "echo.socket", "echo@probe.service")
    ),
    "solo": ImageSpec("solo_3", "solo", ("solo.service",)),
}
ALL_PREFIXES = tuple(spec.prefix for spec in IMAGES.values())


@pytest.fixture(scope="module")
def images(box: Box) -> Path:
    d = box.mkdtemp(prefix="attach-diff-")
    # examples/hello, but with a timer that does not fire during the tests (minutely would
    # start hello-tick.service at random moments).
    make_directory_image(
        d / "hello_1.0",
        template=EXAMPLES / "hello",
        os_release=None,
        units={
            "hello-tick.timer": "[Timer]\nOnActiveSec=1d\n\n[Install]\nWantedBy=timers.target\n"
        },
    )
    # A socket with per-connection template services (Accept=yes: starting the socket does not
    # depend on whether a service was started first), and a plain service.
    make_directory_image(
        d / "echo_2",
        units={
            "echo.socket": "[Unit]\nDescription=echo socket\n\n[Socket]\n"
            "ListenStream=/run/echo-portable.sock\nAccept=yes\n\n"
            "[Install]\nWantedBy=sockets.target\n",
            "echo@.service": "[Unit]\nDescription=echo connection\n\n[Service]\n"
            "ExecStart=/usr/bin/cat\nStandardInput=socket\n",
            "echo-daemon.service": service_unit(LOOP, description="echo daemon"),
        },
    )
    # One unit only: refusal messages name "the first" unit, which is hash order otherwise.
    make_directory_image(d / "solo_3", units={"solo.service": service_unit(LOOP)})
    return d


# --- running the tools -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    rc: int
    stdout: str
    stderr: str

    @classmethod
    def of(cls, proc: CompletedProcess[str]) -> Run:
        return cls(proc.returncode, proc.stdout, proc.stderr)


def invoke(box: Box, tool: str, args: Sequence[str]) -> Run:
    if tool == REF:
        return Run.of(box.portablectl(args, check=False))
    return Run.of(box.portable(args, check=False))


# --- snapshots of the trees --------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    kind: str  # "dir", "file", "link" or "other"
    mode: int
    uid: int
    gid: int
    payload: str = ""  # file content, link target, or for 10-profile.conf links what they hold

    def __str__(self) -> str:
        payload = self.payload if len(self.payload) < 200 else self.payload[:200] + "..."
        return f"{self.kind} {self.mode:04o} {self.uid}:{self.gid} {payload!r}"


Snapshot = dict[str, Entry]


def _box_sha256(box: Box, paths: Sequence[str]) -> list[str]:
    """sha256 of each file's content, following links inside the box ("missing" if none)."""
    if not paths:
        return []
    script = 'for f; do if [ -f "$f" ]; then sha256sum < "$f"; else echo missing; fi; done'
    out = box.run(["sh", "-c", script, "sh", *paths]).stdout.split("\n")
    return [line.split()[0] for line in out[: len(paths)]]


@pytest.fixture(scope="module")
def known_profiles(box: Box) -> dict[str, str]:
    """sha256 -> "<profile>/service.conf" for systemd's shipped profiles."""
    files = sorted(str(p) for p in SYSTEMD_PROFILES.glob("*/*.conf"))
    return {
        digest: str(Path(f).relative_to(SYSTEMD_PROFILES))
        for f, digest in zip(files, _box_sha256(box, files), strict=True)
    }


class Harness:
    """The box, the images and what is known about profiles; the building blocks of a test."""

    def __init__(self, box: Box, images: Path, known_profiles: dict[str, str]) -> None:
        self.box = box
        self.images = images
        self.known_profiles = known_profiles

    def image(self, key: str) -> Path:
        return self.images / IMAGES[key].name

    def profile_token(self, digest: str) -> str:
        """What a profile file is: systemd's profile it equals, or its hash."""
        known = self.known_profiles.get(digest)
        return f"<profile:{known}>" if known else f"<profile:sha256:{digest}>"

    def profile_tokens(self, paths: Sequence[str]) -> list[str]:
        return [self.profile_token(d) for d in _box_sha256(self.box, paths)]

    def snapshot(self) -> Snapshot:
        entries: Snapshot = {}
        profile_links: list[str] = []
        for top in SNAPSHOT_DIRS:
            host_top = self.box.path(top)
            if not os.path.lexists(host_top):
                continue
            entries[top] = _entry(host_top)
            for dirpath, dirnames, filenames in os.walk(host_top):
                for name in dirnames + filenames:
                    inside = top + os.path.join(dirpath, name)[len(str(host_top)) :]
                    entries[inside] = _entry(Path(dirpath) / name)
                    if name == "10-profile.conf" and entries[inside].kind == "link":
                        profile_links.append(inside)
        for path, token in zip(profile_links, self.profile_tokens(profile_links), strict=True):
            e = entries[path]
            entries[path] = Entry(e.kind, e.mode, e.uid, e.gid, f"link to {token}")
        return dict(sorted(entries.items()))

    # --- systemd state ---

    def units_load_timestamp(self) -> str:
        return self.box.systemctl(["show", "-P", "UnitsLoadTimestampMonotonic"]).stdout.strip()

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Until PID 1 has no jobs queued (after --no-block)."""
        deadline = time.monotonic() + timeout
        while self.box.systemctl(["list-jobs", "--no-legend"]).stdout.strip():
            if time.monotonic() > deadline:
                pytest.fail("jobs still queued: " + self.box.systemctl(["list-jobs"]).stdout)
            time.sleep(0.05)

    def show(self, units: Sequence[str], props: Sequence[str]) -> dict[str, dict[str, str]]:
        out = self.box.systemctl(["show", "-p", ",".join(props), *units]).stdout
        blocks = out.rstrip("\n").split("\n\n")
        assert len(blocks) == len(units), out
        return {
            unit: dict(line.split("=", 1) for line in block.splitlines())
            for unit, block in zip(units, blocks, strict=True)
        }

    def main_users(self, props: dict[str, dict[str, str]]) -> dict[str, str]:
        """unit -> "root" / "dynamic" / "uid N" for every unit with a main process."""
        services = [u for u in props if u.endswith(".service")]
        pids = self.show(services, ["MainPID"]) if services else {}
        users = {}
        for unit, p in pids.items():
            pid = int(p.get("MainPID") or 0)
            if pid:
                users[unit] = main_process_user(self.box, pid)
        return users

    # --- state between runs ---

    def reset(self, *, reload: bool = False) -> None:
        """Remove the (empty) attached and portables dirs, so every run starts alike."""
        self.box.run(
            ["sh", "-c", 'rmdir "$@" 2>/dev/null; true', "sh", *ATTACHED_DIRS, *PORTABLES_DIRS]
        )
        if reload:
            self.box.systemctl(["daemon-reload"])

    def cleanup(self, keys: Sequence[str] = tuple(IMAGES)) -> None:
        """Last resort after a test: detach, stop, remove whatever the images left behind."""
        box = self.box
        dirty = any(
            os.path.basename(p).startswith(ALL_PREFIXES) or p in ATTACHED_DIRS
            for p in self.snapshot()
        )
        if dirty:
            for key in keys:
                for runtime in ([], ["--runtime"]):
                    box.portablectl(
                        [
                            "detach",
                            "-q",
                            "--force",
                            "--now",
                            "--enable",
                            *runtime,
                            str(self.image(key)),
                        ],
                        check=False,
                    )
            globs = [f"{prefix}*" for prefix in ALL_PREFIXES]
            script = (
                'for d in "$@"; do [ -d "$d" ] || continue; cd "$d" || continue; '
                f"rm -rf {' '.join(globs)} */{' */'.join(globs)}; "
                "rmdir --ignore-fail-on-non-empty -- *.wants *.requires 2>/dev/null; cd /; done; "
                f"rm -f {' '.join('/run/systemd/system/' + g for g in globs)}; "
                f"rm -f {' '.join('/etc/systemd/system/' + g for g in globs)}; true"
            )
            box.run(["sh", "-c", script, "sh", *ATTACHED_DIRS, *PORTABLES_DIRS])
            box.systemctl(["daemon-reload"])
        box.systemctl(["stop", *(f"{p}*" for p in ALL_PREFIXES)], check=False)
        box.systemctl(["reset-failed", *(f"{p}*" for p in ALL_PREFIXES)], check=False)
        self.reset()


def _entry(path: Path) -> Entry:
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return Entry("link", mode, st.st_uid, st.st_gid, os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", mode, st.st_uid, st.st_gid)
    if stat.S_ISREG(st.st_mode):
        data = path.read_bytes()
        if len(data) > 65536:
            return Entry(
                "file", mode, st.st_uid, st.st_gid, "sha256:" + hashlib.sha256(data).hexdigest()
            )
        return Entry("file", mode, st.st_uid, st.st_gid, data.decode(errors="backslashreplace"))
    return Entry("other", st.st_mode, st.st_uid, st.st_gid)


def snapshot_diff(expected: Snapshot, got: Snapshot) -> list[str]:
    """Readable differences between two snapshots (empty if equal)."""
    lines = []
    for path in sorted(expected.keys() | got.keys()):
        a, b = expected.get(path), got.get(path)
        if a != b:
            lines.append(f"{path}:\n    expected {a}\n    got      {b}")
    return lines


def assert_same_tree(expected: Snapshot, got: Snapshot, what: str) -> None:
    diff = snapshot_diff(expected, got)
    assert not diff, f"{what}: trees differ\n" + "\n".join(diff)


def without_new_portables_dirs(before: Snapshot, after: Snapshot) -> Snapshot:
    """``after`` minus the portables dirs that attach created (they stay, as with systemd)."""
    return {p: e for p, e in after.items() if not (p in PORTABLES_DIRS and p not in before)}


# --- change lists ------------------------------------------------------------------------------

_ARROW = r"(?:→|->)"
_JOB_RE = re.compile(r"/org/freedesktop/systemd1/job/\d+")
_SERVICE_RE = re.compile(r"portable service (\S+?)(?::|\.$)")


def _line_paths(line: str) -> tuple[str, str | None] | None:
    """(destination, source) of a change line, or None if it is not one."""
    # systemctl's enable lines quote paths from 257 on ('...'), 252's do not.
    if m := re.fullmatch(rf"Created symlink '?(/[^\s']+)'? {_ARROW} '?(/[^\s']+)'?\.", line):
        return m[1], m[2]
    if m := re.fullmatch(rf"Copied (\S+) {_ARROW} (\S+)\.", line):
        return m[2], m[1]
    if m := re.fullmatch(
        r"(?:Created directory|Written|Removed|Copied) [\"']?(/\S+?)[\"']?\.", line
    ):
        return m[1], None
    return None


def classify(line: str) -> tuple[str | None, str | None]:
    """(phase, unit) of an output line; (None, None) for lines that belong to no unit.

    Phases: "files" (what portabled did in the attached dir) and "install" (what the client did
    through PID 1: enable/disable links, start/stop jobs and their errors).
    """
    if m := _SERVICE_RE.search(line):
        return "install", os.path.basename(m[1])
    if m := re.fullmatch(r"Removed [\"'](/\S+)[\"']\.", line):
        # DisableUnitFiles (detach --enable) quotes ("..." on 252, '...' on 257); it also removes
        # the unit symlinks that --copy=symlink made (systemd issue #23481).
        return "install", os.path.basename(m[1])
    paths = _line_paths(line)
    if paths is None:
        return None, None
    dest = paths[0]
    for where in ATTACHED_DIRS:
        if dest.startswith(where + "/"):
            first = dest[len(where) + 1 :].split("/")[0]
            if first.endswith((".wants", ".requires", ".upholds")):
                return "install", os.path.basename(dest)
            return "files", first.removesuffix(".d")
    return None, None


@dataclass
class ChangeList:
    lines: list[str]  # normalized, per-unit blocks in name order within each phase
    problems: list[str] = field(default_factory=list)  # a unit's lines not in one block


_PROFILE_SOURCE_RES = (
    re.compile(rf"(Created symlink \S+/10-profile\.conf {_ARROW} )(\S+)(\.)"),
    re.compile(rf"(Copied )(\S+)( {_ARROW} \S+/10-profile\.conf\.)"),
)


def _profile_source(line: str) -> tuple[str, str, str] | None:
    """(before, source, after) of a line that installs a 10-profile.conf."""
    for regex in _PROFILE_SOURCE_RES:
        if m := regex.fullmatch(line):
            return m[1], m[2], m[3]
    return None


def canonical_changes(h: Harness, text: str) -> ChangeList:
    raw = [_JOB_RE.sub("/org/freedesktop/systemd1/job/N", line) for line in text.splitlines()]
    # The profile's source is ours or systemd's: name it by content.
    parts = {line: p for line in raw if (p := _profile_source(line))}
    sources = sorted({p[1] for p in parts.values()})
    tokens = dict(zip(sources, h.profile_tokens(sources), strict=True))
    shown = {line: f"{p[0]}{tokens[p[1]]}{p[2]}" for line, p in parts.items()}
    out: list[str] = []
    problems: list[str] = []
    i = 0
    while i < len(raw):
        phase, _ = classify(raw[i])
        if phase is None:
            out.append(shown.get(raw[i], raw[i]))
            i += 1
            continue
        j = i
        while j < len(raw) and classify(raw[j])[0] == phase:
            j += 1
        run = raw[i:j]
        units = [classify(line)[1] or "" for line in run]
        order = [u for k, u in enumerate(units) if k == 0 or units[k - 1] != u]
        if len(order) != len(set(order)):
            problems.append(f"{phase} lines of a unit are not one block: {order}")
        ordered = sorted(zip(units, run, strict=True), key=lambda t: t[0])
        out.extend(shown.get(line, line) for _, line in ordered)
        i = j
    return ChangeList(out, problems)


# A deliberate difference: portablectl asks PID 1 to start/stop a template unit (x@.service),
# which can't work, and prints the failure; we don't try. Those reference lines are dropped.
_TEMPLATE_JOB_RE = re.compile(
    r"Failed to call (?:Start|Stop)Unit on (?:the )?portable service \S*@\.\w+: Unit name "
    r"\S+ is missing the instance name\."
)


def _without_template_jobs(text: str) -> str:
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not _TEMPLATE_JOB_RE.fullmatch(line.rstrip("\n"))
    )


def assert_same_output(h: Harness, expected: Run, got: Run, what: str) -> None:
    assert got.rc == expected.rc, f"{what}: exit code {got.rc}, expected {expected.rc}\n{got}"
    for stream in ("stdout", "stderr"):
        a = canonical_changes(h, _without_template_jobs(getattr(expected, stream)))
        b = canonical_changes(h, _without_template_jobs(getattr(got, stream)))
        assert not a.problems, f"{what} (reference) {stream}: {a.problems}"
        assert not b.problems, f"{what} {stream}: {b.problems}\n{getattr(got, stream)}"
        assert b.lines == a.lines, f"{what}: {stream} differs"


# --- the scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    image: str  # key of IMAGES
    profile: str | None  # None: no --profile
    copy: str | None  # None: no --copy
    flags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        flags = "+".join(f.lstrip("-") for f in self.flags) or "plain"
        return f"{self.image}-{self.profile or 'noprofile'}-{self.copy or 'nocopy'}-{flags}"

    def attach_args(self, image: Path) -> list[str]:
        args = ["attach"]
        if self.profile is not None:
            args.append(f"--profile={self.profile}")
        if self.copy is not None:
            args.append(f"--copy={self.copy}")
        return [*args, *self.flags, str(image)]

    def detach_args(self, image: Path) -> list[str]:
        keep = ("--runtime", "--now", "--enable", "--no-reload", "--no-block", "--quiet")
        return ["detach", *(f for f in self.flags if f in keep), str(image)]


@dataclass
class Outcome:
    before: Snapshot
    attach: Run
    attach_reloaded: bool
    attached: Snapshot
    props: dict[str, dict[str, str]]
    users: dict[str, str]
    detach: Run
    detach_reloaded: bool
    after: Snapshot
    after_props: dict[str, dict[str, str]]


def scenario(h: Harness, case: Case, tool: str) -> Outcome:
    """attach, look, detach, look: with ``tool``, from a clean state, cleaning up after."""
    image = h.image(case.image)
    units = IMAGES[case.image].show
    no_reload = "--no-reload" in case.flags
    try:
        h.reset(reload=no_reload)
        before = h.snapshot()
        t0 = h.units_load_timestamp()
        attach = invoke(h.box, tool, case.attach_args(image))
        h.wait_idle()
        t1 = h.units_load_timestamp()
        attached = h.snapshot()
        props = h.show(units, SHOW_PROPS)
        users = h.main_users(props)
        detach = invoke(h.box, tool, case.detach_args(image))
        h.wait_idle()
        t2 = h.units_load_timestamp()
        after = h.snapshot()
        after_props = h.show(units, AFTER_DETACH_PROPS)
    finally:
        h.cleanup([case.image])
    return Outcome(
        before, attach, t1 != t0, attached, props, users, detach, t2 != t1, after, after_props
    )


def assert_restored(o: Outcome, what: str) -> None:
    assert_same_tree(
        o.before, without_new_portables_dirs(o.before, o.after), f"{what} after detach"
    )


def expected_reloads(h: Harness, case: Case, tool: str, ref: Outcome) -> tuple[bool, bool]:
    """Whether attach and detach reload PID 1. portablectl reloads after both; ours only when
    a unit it writes or removes is loaded in PID 1 (docs/reload.md, proven equal step by step
    in test_box_reload.py), which none is in these scenarios; but systemd 257 holds a reload
    due after detach --enable's disable (NeedDaemonReload of every unit), so ours reloads then.
    A deliberate difference: the rest of the outcome (systemctl show included) is the same."""
    if tool == REF or "--no-reload" in case.flags:
        return ref.attach_reloaded, ref.detach_reloaded
    return False, "--enable" in case.flags and h.box.systemd_version >= 257


def assert_same_outcome(
    h: Harness, ref: Outcome, got: Outcome, reloads: tuple[bool, bool] | None = None
) -> None:
    attach_reload, detach_reload = reloads or (ref.attach_reloaded, ref.detach_reloaded)
    assert_same_tree(ref.before, got.before, "before attach")
    assert_same_output(h, ref.attach, got.attach, "attach")
    assert got.attach_reloaded == attach_reload, "attach: daemon-reload or not"
    assert_same_tree(ref.attached, got.attached, "after attach")
    assert got.props == ref.props, "systemctl show after attach"
    assert got.users == ref.users, "users the main processes run as"
    assert_same_output(h, ref.detach, got.detach, "detach")
    assert got.detach_reloaded == detach_reload, "detach: daemon-reload or not"
    assert_same_tree(ref.after, got.after, "after detach")
    assert got.after_props == ref.after_props, "systemctl show after detach"
    assert_restored(got, "tool")


def check_reference(case: Case, ref: Outcome) -> None:
    """The reference run did what the scenario is meant to exercise."""
    assert ref.attach.rc == 0, ref.attach
    assert ref.detach.rc == 0, ref.detach
    reload = "--no-reload" not in case.flags
    assert ref.attach_reloaded == reload and ref.detach_reloaded == reload
    where = ATTACHED_DIRS[1] if "--runtime" in case.flags else ATTACHED_DIRS[0]
    assert any(p.startswith(f"{where}/{IMAGES[case.image].prefix}") for p in ref.attached)
    if "--now" in case.flags:
        services = [u for u, p in ref.props.items() if p.get("SubState") == "running"]
        assert services, ref.props
        dynamic = case.profile in (None, "default", "strict", "nonetwork")
        assert {ref.users[u] for u in services} == {"dynamic" if dynamic else "root"}
    assert_restored(ref, "reference")
