"""Timings for issue 6: the exposure score and the network namespace hook.

Not a test (pytest does not collect benchmarks/). Needs root; the comparison rows need
systemd-analyze of each known systemd version (this machine's, and the test box root's for the
other: :mod:`portable.testing.analyze`), and are skipped for a version without one. The
namespace rows run in a throwaway network and mount namespace (``unshare --net --mount``, a
private tmpfs on /run), so nothing on this machine changes::

    .venv/bin/python benchmarks/netns_security.py [--rounds 30]

Prints medians:

* ``score (in process)``: ``portable.security.score.score_unit`` of a bare unit + the default
profile,
  graded as each known systemd version does (with that version's profile);
* ``systemd-analyze --offline``: the same unit and profile scored by that systemd (a process
  each);
* ``portable security FILE``: the command (it follows this machine's systemd);
* ``netns create+veth`` / ``netns remove``: ``ensure()`` and ``remove()`` of the hook.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NETNS_SCRIPT = r"""
import json, sys, time
from portable.plugins.hooks import netns
rounds = int(sys.argv[1])
make, drop = [], []
for i in range(rounds):
    ns = netns.Netns(name=f"portable-bench{i}")
    t = time.perf_counter(); netns.ensure(ns); make.append(time.perf_counter() - t)
    t = time.perf_counter(); netns.remove(ns.name); drop.append(time.perf_counter() - t)
print(json.dumps({"make": make, "drop": drop}))
"""


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.2f} ms"


def timed(cmd: list[str], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds + 1):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        out.append(time.perf_counter() - t)
    return out[1:]  # the first one warms caches


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds

    from portable.plugins.profiles.builtin import data_path
    from portable.security.score import score_unit
    from portable.security.sources import BARE_UNIT, UnitSource
    from portable.systemd.version import KNOWN_VERSIONS
    from portable.testing.analyze import systemd_analyze

    work = Path(tempfile.mkdtemp(prefix="bench-security-"))
    try:
        for systemd in KNOWN_VERSIONS:
            text = data_path("default", systemd).read_text()
            source = UnitSource(name="b.service", text=BARE_UNIT, dropins=(("p.conf", text),))
            score_unit(source, systemd=systemd)
            samples = []
            for _ in range(rounds):
                t = time.perf_counter()
                score_unit(source, systemd=systemd)
                samples.append(time.perf_counter() - t)
            print(f"score (in process), systemd {systemd}    {median_ms(samples)}")
            analyze = systemd_analyze(systemd)
            if analyze:
                (work / f"{systemd}/b.service.d").mkdir(parents=True)
                (work / f"{systemd}/b.service").write_text(BARE_UNIT)
                (work / f"{systemd}/b.service.d/p.conf").write_text(text)
                unit_path = str(work / f"{systemd}/b.service")
                cmd = [*analyze, "security", "--offline=yes", unit_path]
                print(f"systemd-analyze --offline, {systemd}     {median_ms(timed(cmd, rounds))}")
        unit = work / "b.service"
        unit.write_text(BARE_UNIT)
        portable = str(Path(sys.executable).parent / "portable")
        ours = timed([portable, "security", "-p", "default", str(unit)], rounds)
        print(f"portable security FILE             {median_ms(ours)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if shutil.which("unshare"):
        script = (
            "mount -t tmpfs tmpfs /run && ip link set lo up 2>/dev/null; "
            f'exec {sys.executable} -c "$0" {rounds}'
        )
        proc = subprocess.run(
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                NETNS_SCRIPT,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            import json

            data = json.loads(proc.stdout)
            print(f"netns create+veth (ensure)         {median_ms(data['make'])}")
            print(f"netns remove (veth + namespace)    {median_ms(data['drop'])}")
        else:
            print(f"netns: skipped ({proc.stderr.strip().splitlines()[-1:]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
