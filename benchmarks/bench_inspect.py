#!/usr/bin/env python3
"""Benchmark: ``portable inspect`` of a squashfs image vs systemd's ``portablectl inspect``.

Boots a test box (a throwaway systemd, see ``portable.testing.box``), builds a squashfs image,
and inside the box times N rounds of each command, interleaved, after a warm-up (portabled is
bus-activated on first use and then stays up, as on a real host). The timing loop runs inside
the box, so nothing of ``nsenter`` is counted. Prints the medians and the ratio; the target is
a ratio of at most 1.2.

    sudo .venv/bin/python benchmarks/bench_inspect.py [--rounds N] [--profile]

``--profile`` also prints where our time goes: ``python -X importtime`` (imports, cumulative)
and a cProfile of one in-process inspect.

Not a test (pytest does not collect ``benchmarks/``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from portable.testing.box import Box, box_unavailable_reason
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

TARGET = 1.2

# Runs inside the box: interleaved rounds, wall time per command, JSON out.
TIMER = r"""
import json, subprocess, sys, time
rounds, cmds = int(sys.argv[1]), json.loads(sys.argv[2])
for cmd in cmds.values():  # warm-up: portabled activation, page cache
    for _ in range(3):
        subprocess.run(cmd, capture_output=True, check=True)
times = {name: [] for name in cmds}
for _ in range(rounds):
    for name, cmd in cmds.items():
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times[name].append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="show where our time goes")
    args = parser.parse_args()
    reason = box_unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    # The checkout is read-only inside the box: bytecode must exist already, as it does for
    # an installed package (else every run compiles every module again).
    checkout = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            str(checkout / "core"),
            str(checkout / "plugins"),
        ],
        check=True,
    )
    with Box() as box:
        work = box.mkdtemp(prefix="bench-")
        tree = make_directory_image(
            work / "tree",
            os_release=Path("/usr/lib/os-release").read_text()
            + "PORTABLE_PREFIXES=minimal minimal-app0\n",
            units={
                "minimal-app0.service": service_unit(),
                "minimal-app0-foo.service": service_unit(),
                "other.service": service_unit(),
            },
        )
        image = make_squashfs_image(work / "minimal_0.raw", tree)
        venv = Path(sys.prefix)
        cmds = {
            "portablectl": ["portablectl", "inspect", str(image), "minimal-app0"],
            "portable": [str(venv / "bin/portable"), "inspect", str(image), "minimal-app0"],
            "portable --no-plugins": [
                str(venv / "bin/portable"),
                "--no-plugins",
                "inspect",
                str(image),
                "minimal-app0",
            ],
        }
        python = str(venv / "bin/python")
        if args.profile:  # floors: where the time goes before any image is read
            cmds |= {
                "python -c pass": [python, "-c", "pass"],
                "import portable.cli": [python, "-c", "import portable.cli"],
                "+ plugin registry": [
                    python,
                    "-c",
                    "from portable.plugin.registry import get_registry; get_registry().formats()",
                ],
                "portable inspect (dir)": [
                    str(venv / "bin/portable"),
                    "inspect",
                    str(tree),
                    "minimal-app0",
                ],
            }
        # Same output first: this is a benchmark of equal work.
        ref = box.run(cmds["portablectl"])
        ours = box.run(cmds["portable"])
        if (ref.stdout, ref.stderr) != (ours.stdout, ours.stderr):
            print("outputs differ!", ref, ours, file=sys.stderr)
            return 1
        out = box.python(["-c", TIMER, str(args.rounds), json.dumps(cmds)], timeout=600)
        times = json.loads(out.stdout)
        base = statistics.median(times["portablectl"])
        print(f"squashfs image {image.stat().st_size} bytes, {args.rounds} rounds, medians:")
        for name, samples in times.items():
            med = statistics.median(samples)
            q = statistics.quantiles(samples, n=10)
            print(
                f"  {name:24s} {med * 1000:7.1f} ms  (min {min(samples) * 1000:.1f}, p10 "
                f"{q[0] * 1000:.1f}, p90 {q[-1] * 1000:.1f})  ratio {med / base:.2f}"
            )
        ratio = statistics.median(times["portable"]) / base
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"ratio portable/portablectl: {ratio:.2f} ({verdict} the target of {TARGET})")
        if args.profile:
            baseline = box.run(
                [python, "-c", TIMER, "15", json.dumps({"python -c pass": [python, "-c", "pass"]})]
            )
            startup = statistics.median(json.loads(baseline.stdout)["python -c pass"])
            print(f"  python startup alone: {startup * 1000:.1f} ms")
            imp = box.run(
                [
                    python,
                    "-X",
                    "importtime",
                    "-m",
                    "portable",
                    "inspect",
                    str(image),
                    "minimal-app0",
                ]
            )
            rows = [
                line.split("|")
                for line in imp.stderr.splitlines()
                if line.startswith("import time:") and "|" in line
            ]
            top = sorted(
                ((int(r[1]), r[2].rstrip()) for r in rows if r[1].strip().isdigit()), reverse=True
            )[:25]
            print("  imports by cumulative time (us):")
            for us, name in top:
                print(f"    {us:8d} {name}")
            prof = box.run(
                [
                    python,
                    "-c",
                    "import cProfile, pstats, sys\n"
                    "from portable.cli import main\n"
                    "sys.argv = ['portable', 'inspect', sys.argv[1], 'minimal-app0']\n"
                    "p = cProfile.Profile(); p.enable()\n"
                    "try:\n    main()\nexcept SystemExit:\n    pass\n"
                    "p.disable(); pstats.Stats(p, stream=sys.stderr).sort_stats('cumulative')"
                    ".print_stats(25)\n",
                    str(image),
                ]
            )
            print(prof.stderr)
        return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
