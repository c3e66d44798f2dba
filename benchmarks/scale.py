"""Scale benchmarks (issue 15): ``portable`` against ``portablectl`` with many units, many images
and a big image, in one test box.

    .venv/bin/python benchmarks/scale.py [--box debian-12|debian-13] [--rounds N]
                                         [--only NAME[,NAME...]] [--json FILE] [--keep-big]

The method of ``run.py``, whose machinery this reuses: ours installed from a wheel into a fresh
virtualenv, one booted box, ``_inbox.py`` timing the commands inside it, a discarded warm-up
sample per side, then ``--rounds`` samples per side in turns, medians, the ratio
ours/portablectl, the floor (``python -c pass`` as many times as ours starts) and the stack
floor (the same importing the libraries such a command can't do without). Peak memory: the
largest ``RUSAGE_CHILDREN`` maxrss of ours over one run of each command, outside the timed
rounds. Exits 1 if a target is missed, 2 if the box can't be booted.

Not a test: nothing here is collected by pytest. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/ is not a package: run.py's machinery)
from run import BASE, CHANGING, REGISTRY, Bench, Row  # noqa: E402

from portable.testing.box import Box, box_unavailable_reason, resolve_distro  # noqa: E402
from portable.testing.images import make_directory_image, service_unit  # noqa: E402

THEIRS = run.THEIRS
EXTRA_UNITS = 500
LIST_IMAGES = 2000  # half squashfs files named .raw, half directories
BATCH = 100
ATTACHED = 200
BIG_BYTES = 1 << 30
BIG_CACHE = Path("/var/tmp/portable-bench-scale")
RSS_TARGET_MB = 80.0

# Runs one command, prints its peak RSS (kB; the children's, so only that command's).
WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)

# reloads=0 in the floors: a daemon-reload is needed only when PID 1 has loaded one of the
# image's unit names (issue 15, item 1), so the best tool reloads none here.
BENCHMARKS = [
    Bench(
        "attach-idle",
        "attach+detach (strict, squashfs), idle box",
        0.6,
        2,
        0,
        squashfs=True,
        stack=CHANGING,
    ),
    Bench(
        "attach-500",
        f"attach+detach (strict, squashfs), {EXTRA_UNITS} more units loaded",
        0.3,
        2,
        0,
        squashfs=True,
        stack=CHANGING,
    ),
    Bench(
        "batch-100",
        f"attach+detach {BATCH} images: 1 call vs {BATCH}",
        0.05,
        2,
        0,
        stack=CHANGING,
    ),
    Bench("list-2000", f"list ({LIST_IMAGES} images, half raw)", 2.0, stack=REGISTRY),
    Bench(
        "is-attached-200",
        f"is-attached, {ATTACHED} images attached",
        6.0,
        stack=f"{BASE}, jeepney",
    ),
    Bench(
        "inspect-1g",
        "inspect (1 GiB squashfs)",
        1.2,
        squashfs=True,
        stack=REGISTRY,
    ),
    Bench("attach-1g", "attach+detach (1 GiB squashfs)", None, 2, 0, squashfs=True, stack=CHANGING),
]
BY_NAME = {b.name: b for b in BENCHMARKS}
RSS_ROWS = ("inspect-1g", "attach-1g")  # peak memory measured, target RSS_TARGET_MB


@dataclass
class Rss:
    name: str
    kb: int | None = None
    note: str = ""

    @property
    def status(self) -> str:
        if self.kb is None:
            return "ERROR" if self.note else "-"
        return "PASS" if self.kb / 1024 < RSS_TARGET_MB else "FAIL"


# --- images ----------------------------------------------------------------------------------


def squashfs(tree: Path, raw: Path) -> Path:
    subprocess.run(
        ["mksquashfs", str(tree), str(raw), "-quiet", "-noappend", "-no-progress", "-all-root"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return raw


def big_image(log: Any) -> Path:
    """A 1 GiB squashfs image of incompressible data (a service image with a 1 GiB file of
    os.urandom bytes), built once into BIG_CACHE; the tree it is made from is removed at once."""
    raw = BIG_CACHE / "bigsq.raw"
    if raw.is_file() and raw.stat().st_size >= BIG_BYTES:
        return raw
    BIG_CACHE.mkdir(mode=0o700, exist_ok=True)
    free = shutil.disk_usage(BIG_CACHE).free
    if free < 3 * BIG_BYTES:
        raise SystemExit(f"benchmarks/scale.py: {BIG_CACHE} needs 3 GiB free, has {free >> 20} MiB")
    tree = BIG_CACHE / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    log(f"building a 1 GiB squashfs image in {BIG_CACHE} (once; --keep-big keeps it) ...")
    t0 = time.monotonic()
    try:
        image = make_directory_image(tree, units={"bigsq.service": service_unit()}, busybox=False)
        blob = image / "opt/big/blob"
        blob.parent.mkdir(parents=True)
        with blob.open("wb") as f:
            for _ in range(BIG_BYTES >> 24):
                f.write(os.urandom(1 << 24))
        squashfs(image, BIG_CACHE / "bigsq.raw.tmp")
        (BIG_CACHE / "bigsq.raw.tmp").rename(raw)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    log(f"  built in {time.monotonic() - t0:.0f}s ({raw.stat().st_size >> 20} MiB)")
    return raw


def build_images(work: Path, selected: set[str], big: Path | None) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    if selected & {"attach-idle", "attach-500", "list-2000"}:
        tree = run.image(work / "trees" / "scalesq", "scalesq")
        paths["squashfs"] = squashfs(tree, work / "scalesq.raw")
    if "list-2000" in selected:
        lst = work / "list"
        lst.mkdir()
        for i in range(LIST_IMAGES // 2):
            shutil.copy(paths["squashfs"], lst / f"r{i:04d}.raw")
            run.image(lst / f"d{i:04d}", f"d{i:04d}", busybox=False)
        paths["list"] = lst
    if "batch-100" in selected:
        paths["batch"] = [
            run.image(work / "batch" / f"b{i:03d}", f"b{i:03d}", busybox=False)
            for i in range(BATCH)
        ]
    if "is-attached-200" in selected:
        paths["attached"] = [
            run.image(work / "attached" / f"a{i:03d}", f"a{i:03d}", busybox=False)
            for i in range(ATTACHED)
        ]
    paths["big"] = big
    return paths


# --- plans ------------------------------------------------------------------------------------

UNIT_DIR = "/run/systemd/system"
EXTRA_SETUP = (
    f"for i in $(seq -f %03g 0 {EXTRA_UNITS - 1}); do "
    "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' "
    f"> {UNIT_DIR}/scalex-$i.service; done; systemctl daemon-reload && "
    f"systemctl start $(seq -f 'scalex-%03g.service' 0 {EXTRA_UNITS - 1})"
)
EXTRA_TEARDOWN = (
    f"systemctl stop 'scalex-*.service'; rm -f {UNIT_DIR}/scalex-*.service; systemctl daemon-reload"
)


def plan(name: str, paths: dict[str, Any]) -> dict[str, Any]:
    ours, theirs = run.OURS, THEIRS
    if name in ("attach-idle", "attach-500"):
        return run.attach_detach(str(paths["squashfs"]))
    if name == "attach-1g":
        return run.attach_detach(str(paths["big"]))
    if name == "inspect-1g":
        return run.inspect(str(paths["big"]))
    if name == "list-2000":
        where = "/var/lib/portables"
        return {
            "setup": [["sh", "-c", f"mkdir -p {where} && ln -s {paths['list']}/* {where}/"]],
            "teardown": [["sh", "-c", f"find {where} -maxdepth 1 -type l -delete"]],
            "ours": [[ours, "list", "--no-pager"]],
            "theirs": [[theirs, "list", "--no-pager"]],
        }
    if name == "is-attached-200":
        imgs = [str(p) for p in paths["attached"]]
        attach = " && ".join(f"{theirs} attach -q --no-reload --runtime '{i}'" for i in imgs)
        detach = "; ".join(f"{theirs} detach -q --no-reload --runtime '{i}'" for i in imgs)
        one = imgs[ATTACHED // 2]
        return {
            "setup": [["sh", "-c", attach], ["systemctl", "daemon-reload"]],
            "teardown": [["sh", "-c", detach], ["systemctl", "daemon-reload"]],
            "ours": [[ours, "is-attached", one]],
            "theirs": [[theirs, "is-attached", one]],
        }
    if name == "batch-100":
        imgs = [str(p) for p in paths["batch"]]
        return {
            "ours": [[ours, "attach", "--runtime", *imgs], [ours, "detach", "--runtime", *imgs]],
            "theirs": [
                *([theirs, "attach", "--runtime", i] for i in imgs),
                *([theirs, "detach", "--runtime", i] for i in imgs),
            ],
        }
    raise ValueError(name)


def rss_commands(name: str, paths: dict[str, Any]) -> list[list[str]]:
    img = str(paths["big"])
    if name == "inspect-1g":
        return [[run.OURS, "inspect", img]]
    return [[run.OURS, "attach", "--profile", "strict", img], [run.OURS, "detach", img]]


def peak_rss(box: Box, cmds: list[list[str]], env: dict[str, str]) -> int:
    """The largest peak RSS (kB) of ours over ``cmds``, each run alone under WRAPPER."""
    worst = 0
    for cmd in cmds:
        p = box.run([str(run.PY), "-c", WRAPPER, *cmd], env=env, check=False, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip()[-2000:]}")
        worst = max(worst, int(p.stdout.split()[-1]))
    return worst


def loaded_units(box: Box) -> int:
    out = box.run(["systemctl", "list-units", "--all", "--no-legend", "--plain"]).stdout
    return len(out.splitlines())


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/scale.py", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument(
        "--box", metavar="DISTRO", help="debian-12 or debian-13 (default: as run.py)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="samples per tool (default 5)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME[,NAME]")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument("--tree", type=Path, metavar="CHECKOUT", help="measure this checkout")
    parser.add_argument(
        "--keep-big", action="store_true", help=f"keep the 1 GiB image in {BIG_CACHE} for next time"
    )
    args = parser.parse_args(argv)
    only = [n.strip() for arg in args.only for n in arg.split(",") if n.strip()]
    unknown = [n for n in only if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    selected = [b for b in BENCHMARKS if not only or b.name in only]
    names = {b.name for b in selected}
    rows = {b.name: Row(b) for b in selected}
    rss = {n: Rss(n) for n in RSS_ROWS if n in names}
    distro = resolve_distro(args.box)
    reason = box_unavailable_reason(distro)
    if reason is not None:
        print(f"benchmarks/scale.py: cannot boot the test box: {reason}", file=sys.stderr)
        return 2

    info = run.machine()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    context: dict[str, str] = {}
    big: Path | None = None
    try:
        if names & set(RSS_ROWS):
            big = big_image(log)
        with tempfile.TemporaryDirectory(prefix="portable-bench-") as tmp:
            log(f"installing {(args.tree or HERE.parent).resolve()} into a new virtualenv ...")
            bin_dir = run.install_as_user((args.tree or HERE.parent).resolve(), Path(tmp) / "i")
            run.PY, run.OURS = bin_dir / "python", str(bin_dir / "portable")
            env: dict[str, str] = {}
            binds = [tmp] + ([str(BIG_CACHE)] if big is not None else [])
            with Box(distro=distro, bind=binds) as box:
                info["systemd (box)"] = str(box.systemd_version)
                log(f"box {box.name} ({distro}) booted in {box.boot_seconds:.2f}s; images ...")
                work = box.mkdtemp(prefix="scale-")
                t0 = time.monotonic()
                paths = build_images(work, names, big)
                log(f"images built in {time.monotonic() - t0:.1f}s")
                spec = {
                    "name": "context",
                    "ours": [[str(run.PY), "-c", "pass"]],
                    "theirs": [["systemctl", "daemon-reload"]],
                }
                result = run.run_in_box(box, spec, args.rounds, env)
                if "error" in result:
                    raise SystemExit(f"benchmarks/scale.py: {result['error']}")
                context["python -c pass"] = run.fmt_ms(statistics.median(result["ours"]))
                context["daemon-reload, idle"] = run.fmt_ms(statistics.median(result["theirs"]))
                context["units loaded, idle"] = str(loaded_units(box))
                for b in selected:
                    log(f"{b.name} ...")
                    extra = b.name == "attach-500"
                    if extra:
                        box.run(EXTRA_SETUP, timeout=600)
                        context[f"units loaded, with {EXTRA_UNITS} more"] = str(loaded_units(box))
                        result = run.run_in_box(
                            box,
                            {"name": "reload", "ours": [["true"]], "theirs": spec["theirs"]},
                            args.rounds,
                            env,
                        )
                        context[f"daemon-reload, {EXTRA_UNITS} more units"] = run.fmt_ms(
                            statistics.median(result["theirs"])
                        )
                    try:
                        full = {"name": b.name, **plan(b.name, paths), "floor": run.floor(b)}
                        if b.stack:
                            full["stack"] = run.floor(b, f"import {b.stack}")
                        run.fill(rows[b.name], run.run_in_box(box, full, args.rounds, env))
                        if b.name in rss:
                            try:
                                rss[b.name].kb = peak_rss(box, rss_commands(b.name, paths), env)
                            except RuntimeError as exc:
                                rss[b.name].note = str(exc)
                    finally:
                        if extra:
                            box.run(EXTRA_TEARDOWN, timeout=600, check=False)
    finally:
        if big is not None and not args.keep_big:
            shutil.rmtree(BIG_CACHE, ignore_errors=True)
    info["load (end)"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"box: {distro}")
    print()
    print(run.table(list(rows.values())))
    if rss:
        print()
        print(
            "peak RSS of ours (RUSAGE_CHILDREN maxrss, largest over its commands), "
            f"target < {RSS_TARGET_MB:g} MB:"
        )
        for r in rss.values():
            mb = "-" if r.kb is None else f"{r.kb / 1024:.1f} MB"
            print(f"  {r.name}: {mb}  {r.status}" + (f"  ({r.note})" if r.note else ""))
    print()
    for what, value in context.items():
        print(f"{what}: {value}")
    print(
        "floor: python -c pass as many times as ours starts (no daemon-reload: see the script); "
        "stack: the same importing "
        + "; ".join(f"{b.name}: {b.stack}" for b in selected if b.stack)
    )
    print(f"rounds: {args.rounds} per tool, medians; ours: installed from a wheel")
    for r in rows.values():
        if r.status == "ERROR":
            print(f"\n{r.bench.name}: {r.note}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "box": distro,
                    "rounds": args.rounds,
                    "context": context,
                    "results": {r.bench.name: r.to_json() for r in rows.values()},
                    "peak_rss_kb": {r.name: r.kb for r in rss.values()},
                },
                indent=2,
            )
            + "\n"
        )
    failed = any(r.status in ("FAIL", "ERROR") for r in rows.values())
    failed = failed or any(r.status in ("FAIL", "ERROR") for r in rss.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
