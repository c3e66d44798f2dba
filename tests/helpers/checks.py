"""What the hostile-input drivers (and the crash sweeps) check: snapshots of host directories,
the exit status and the one-line error of a run, what a safe attach may add, and the loop
devices, mounts and network namespaces a run must not leave behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from helpers.corpus import SECRET, Case, Expect

__all__ = [
    "ATTACHED",
    "INFO_PREFIXES",
    "Snapshot",
    "check_attached",
    "check_result",
    "loops_below",
    "mount_points",
    "netns",
    "snapshot",
]

Snapshot = dict[str, tuple[str, int, bytes]]


def snapshot(top: Path, dirs: tuple[str, ...], skip: tuple[str, ...] = ()) -> Snapshot:
    """Every entry below ``top``/``dirs``: path -> (kind, mode, content or link target).

    Special files are recorded, never opened. ``skip``: paths (and what is below them) left
    out, never even listed: a running system changes them meanwhile (journal streams come and
    go between a directory listing and a look at the entry).
    """
    out: Snapshot = {}
    for d in dirs:
        start = top / d.lstrip("/")
        if not os.path.lexists(start):
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            here = "/" + str(Path(dirpath).relative_to(top))
            dirnames[:] = (
                [n for n in dirnames if not f"{here}/{n}".startswith(skip)] if skip else dirnames
            )
            for name in sorted(dirnames + filenames):
                p = Path(dirpath) / name
                key = "/" + str(p.relative_to(top))
                if skip and key.startswith(skip):
                    continue
                st = os.lstat(p)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    out[key] = ("link", 0, os.fsencode(os.readlink(p)))
                elif stat.S_ISDIR(st.st_mode):
                    out[key] = ("dir", mode, b"")
                elif stat.S_ISREG(st.st_mode):
                    out[key] = ("file", mode, p.read_bytes())
                else:
                    out[key] = ("special", mode, str(st.st_rdev).encode())
    return out


INFO_PREFIXES = ("portable: warning:", "(Matching ")
ATTACHED = "/run/systemd/system.attached"


def check_result(proc: subprocess.CompletedProcess[Any], expect: Expect) -> None:
    """Exit status and output of one run: success, or exactly one one-line error holding the
    expected text; never a traceback, never the secret."""
    out = _bytes(proc.stdout) + _bytes(proc.stderr)
    stderr = _bytes(proc.stderr).decode("utf-8", "replace")
    assert SECRET.encode() not in out, "the host secret was printed"
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("portable: error:")]
    outcome, text = expect
    if outcome == "ok":
        assert proc.returncode == 0, stderr
        assert errors == [], stderr
        return
    assert proc.returncode == 1, (proc.returncode, stderr)  # 70 would be an internal error
    assert len(errors) == 1, stderr
    assert text in errors[0], errors[0]
    others = [ln for ln in lines if not ln.startswith(("portable: error:", *INFO_PREFIXES))]
    assert others == [], f"the error is not one line: {stderr!r}"


def _bytes(data: str | bytes | None) -> bytes:
    if data is None:
        return b""
    return data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")


def check_attached(host: Path, case: Case, before: Snapshot, now: Snapshot) -> None:
    """After a safe runtime attach: only added files, in the runtime directories, with fixed
    modes and no secret; exactly the expected unit files, each with its marker."""
    changed = [k for k, v in before.items() if now.get(k) != v]
    assert changed == [], f"attach changed existing host files: {changed}"
    added = {k: v for k, v in now.items() if k not in before}
    for key, (kind, mode, data) in added.items():
        assert key.startswith((ATTACHED, "/run/portables/")), key
        assert SECRET.encode() not in data, f"the host secret was copied into {key}"
        assert not mode & stat.S_IWOTH, key
        if key.startswith("/run/portables/") and key.count("/") > 3:
            continue  # inside a --copy=mixed copy of the image: the image's own modes
        if key.startswith("/run/portables/") and kind == "dir":
            assert mode == 0o700, (key, oct(mode))  # a --copy=mixed copy (issue 16, hole 3)
            continue
        if kind == "file":
            assert mode == 0o644, (key, oct(mode))
        elif kind == "dir":
            assert mode == 0o755, (key, oct(mode))
        assert kind != "special", key
    attached_dir = host / ATTACHED.lstrip("/")
    units = {n for n in os.listdir(attached_dir) if not n.endswith(".d")}
    assert units == set(case.attached)
    for unit in units:
        assert (attached_dir / f"{unit}.d" / "20-portable.conf").is_file()
    if case.check is not None:
        case.check(attached_dir)


def loops_below(paths: tuple[str, ...]) -> set[str]:
    """Attached loop devices whose backing file lies below one of ``paths``."""
    try:
        out = subprocess.run(
            ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    if not out.strip():
        return set()
    found = set()
    for dev in json.loads(out).get("loopdevices", []):
        back = str(dev.get("back-file") or "").strip()
        if any(back.startswith(p) for p in paths):
            found.add(f"{dev['name']} {back}")
    return found


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    with open(mountinfo) as f:
        return {line.split()[4] for line in f if line.strip()}


def netns(run: Path) -> set[str]:
    try:
        return set(os.listdir(run / "netns"))
    except OSError:
        return set()
