"""Timings for issue 16 (item 7): an image with many units (10,000 by default).

Not a test (pytest does not collect benchmarks/). Needs no box for the main figures: the CLI
runs ``python -m portable --root TMP`` on a throwaway root in a temporary directory::

    .venv/bin/python benchmarks/many_units.py [--units 10000] [--rounds 1] [--profile DIR]

It builds a directory image ``/srv/images/many_1`` below the root with N services named
``many-NNNNN.service`` (all matching the image's name, ``many``) and times, per round, ``inspect
IMAGE``, ``attach --runtime IMAGE`` and ``detach --runtime IMAGE``, each as a separate
process, and the peak RSS of each (``resource.getrusage(RUSAGE_CHILDREN)``, measured in a small
wrapper process per command so the figures are per command). ``--box debian-12`` runs the same
commands in the test box instead (no ``--root``: the box's service manager, so each attach and
detach ends with a daemon-reload; no ``--now``; one round). ``--profile DIR`` also writes a
cProfile of each command there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portable.testing.images import make_directory_image

HERE = Path(__file__).resolve().parent
UNIT = "[Unit]\nDescription=many %d\n\n[Service]\nExecStart=/usr/bin/true\n"

# Runs one command and prints its children's peak RSS (kB), so each command is measured alone.
WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def build_root(root: Path, units: int) -> str:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=host\n")
    image = root / "srv/images/many_1"
    make_directory_image(image, busybox=False, units={})
    units_dir = image / "usr/lib/systemd/system"
    units_dir.mkdir(parents=True, exist_ok=True)
    for i in range(units):
        (units_dir / f"many-{i:05d}.service").write_text(UNIT % i)
    return "/srv/images/many_1"


def run(root: Path, args: list[str], profile: Path | None, name: str) -> tuple[float, int]:
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile / f"{name}.prof")]
    cmd += ["-m", "portable", "--root", str(root), *args]
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=False
    )
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{name} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return dt, int(p.stdout.split()[-1])


def run_box(distro: str, units: int) -> dict[str, list[tuple[float, int]]]:
    """The same three commands in the test box (the service manager, a daemon-reload per
    attach and detach, no --now), on an image in a directory the box shares with the host."""
    from portable.testing.box import Box

    results: dict[str, list[tuple[float, int]]] = {"inspect": [], "attach": [], "detach": []}
    with Box(distro=distro) as box:
        image = box.mkdtemp("many-units-") / "many_1"
        make_directory_image(image, busybox=False, units={})
        units_dir = image / "usr/lib/systemd/system"
        units_dir.mkdir(parents=True, exist_ok=True)
        for i in range(units):
            (units_dir / f"many-{i:05d}.service").write_text(UNIT % i)
        py = str(box.python_executable)
        for name, args in (
            ("inspect", ["inspect", str(image)]),
            ("attach", ["attach", "--runtime", str(image)]),
            ("detach", ["detach", "--runtime", str(image)]),
        ):
            t0 = time.perf_counter()
            p = box.python(["-c", WRAPPER, py, "-m", "portable", *args], timeout=3600, check=False)
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                sys.exit(f"{name} failed in the box ({p.returncode}): {p.stderr.strip()[-2000:]}")
            results[name].append((dt, int(p.stdout.split()[-1])))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", type=Path, default=None, help="write cProfile output here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary root")
    ap.add_argument("--box", metavar="DISTRO", help="run in the test box (debian-12, debian-13)")
    a = ap.parse_args()
    if a.box:
        report(run_box(a.box, a.units))
        return
    if a.profile is not None:
        a.profile.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="many-units-"))
    results: dict[str, list[tuple[float, int]]] = {"inspect": [], "attach": [], "detach": []}
    try:
        root = tmp / "root"
        t0 = time.perf_counter()
        image = build_root(root, a.units)
        print(f"built {a.units} units in {time.perf_counter() - t0:.1f} s ({tmp})")
        attached = root / "run/systemd/system.attached"
        for r in range(a.rounds):
            prof = a.profile if r == 0 else None
            results["inspect"].append(run(root, ["inspect", image], prof, "inspect"))
            results["attach"].append(run(root, ["attach", "--runtime", image], prof, "attach"))
            n = sum(1 for e in os.scandir(attached) if e.name.endswith(".service"))
            if n != a.units:
                sys.exit(f"attach left {n} units, expected {a.units}")
            results["detach"].append(run(root, ["detach", "--runtime", image], prof, "detach"))
            left = list(os.scandir(attached)) if attached.exists() else []
            if left:
                sys.exit(f"detach left {len(left)} entries in {attached}")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report(results)


def report(results: dict[str, list[tuple[float, int]]]) -> None:
    print(f"{'command':<10} {'median s':>9} {'max s':>8} {'peak RSS MB':>12}")
    for name, samples in results.items():
        ts = [t for t, _ in samples]
        rss = max(m for _, m in samples) / 1024
        print(f"{name:<10} {statistics.median(ts):>9.2f} {max(ts):>8.2f} {rss:>12.1f}")


if __name__ == "__main__":
    main()
