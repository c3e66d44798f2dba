"""The timing half of the benchmarks: runs *inside* the test box, started by ``run.py``.

It reads a plan (JSON) on stdin, runs every command of it with :mod:`subprocess` and times it
with :func:`time.perf_counter`, so no ``nsenter`` is paid per command. Standard library only:
it must not import the code under test.

Plan::

    {"rounds": 7,
     "env": {"PYTHONPYCACHEPREFIX": "..."},          # added to every command's environment
     "benchmarks": [
        {"name": "is-attached",
         "setup": [[...], ...],                      # run once before, not timed
         "teardown": [[...], ...],                   # run once after (also after a failure)
         "ours": [[...], ...], "theirs": [[...], ...],  # one sample: all commands in order
         "floor": [[...], ...],                      # optional third side
         "stack": [[...], ...]}                      # optional fourth side
     ]}

For each benchmark one warm-up sample per side (discarded), then ``rounds`` samples per side,
the sides taking turns (which one goes first rotates per round, so slow drift of the machine
hits all alike). A command that fails stops the benchmark: a failing command's time means
nothing. Prints one JSON object: name -> {"ours": [s, ...], "theirs": [s, ...], ...} or
{"error": "..."}.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any


class CommandFailed(Exception):
    pass


def run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise CommandFailed(f"{' '.join(cmd)!r} exited with {proc.returncode}: {err[-2000:]}")
    return elapsed


def sample(cmds: list[list[str]], env: dict[str, str]) -> float:
    return sum(run(cmd, env) for cmd in cmds)


def bench(spec: dict[str, Any], rounds: int, env: dict[str, str]) -> dict[str, Any]:
    for cmd in spec.get("setup", []):
        run(cmd, env)
    sides = [side for side in ("ours", "theirs", "floor", "stack") if side in spec]
    try:
        for side in sides:  # warm-up: caches, portabled's D-Bus activation
            sample(spec[side], env)
        samples: dict[str, list[float]] = {side: [] for side in sides}
        for i in range(rounds):
            for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
                samples[side].append(sample(spec[side], env))
        return samples
    finally:
        for cmd in spec.get("teardown", []):
            try:
                run(cmd, env)
            except CommandFailed as exc:
                print(f"teardown of {spec['name']}: {exc}", file=sys.stderr)


def main() -> None:
    plan = json.load(sys.stdin)
    env = {**os.environ, **plan.get("env", {})}
    results: dict[str, Any] = {}
    for spec in plan["benchmarks"]:
        print(f"  {spec['name']} ...", file=sys.stderr, flush=True)
        try:
            results[spec["name"]] = bench(spec, plan["rounds"], env)
        except CommandFailed as exc:
            results[spec["name"]] = {"error": str(exc)}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
