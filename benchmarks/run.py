"""Benchmarks: ``portable`` against systemd's ``portablectl`` on the same images, same machine.

    .venv/bin/python benchmarks/run.py [--rounds N] [--only NAME[,NAME...]] [--json FILE]

Boots the test box (a throwaway systemd, :mod:`portable.testing.box`), builds the images in it,
and runs both tools side by side inside it (``_inbox.py`` times the commands there, so no
``nsenter`` is paid per command). Prints per benchmark the median of each tool, the ratio
ours/portablectl and the target, and exits non-zero if a target is missed. ``help`` runs on this
machine, outside the box: ``portable --help`` against ``python -c pass``.

Ours runs as a user gets it: the checkout built into a wheel and installed (with its ``.pyc``
files) into a fresh virtualenv, its dependencies copied from this one. An editable install
(``pip install -e``, the developers' ``.venv``) pays ~9 ms per start for its import hook; pass
``--editable`` to measure that one instead. Both tools run warm: a warm-up sample per side is
discarded (it starts ``systemd-portabled`` through D-Bus activation).

Not a test: nothing here is collected by pytest. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _inbox  # noqa: E402  (benchmarks/ is not a package)

from portable.plugin.entrypoints import RACY_NS  # noqa: E402
from portable.testing.box import Box, box_unavailable_reason  # noqa: E402
from portable.testing.images import make_directory_image, service_unit  # noqa: E402

# Set by main(): the interpreter and the ``portable`` script under test.
PY = Path(sys.prefix) / "bin" / "python"
OURS = str(Path(sys.prefix) / "bin" / "portable")
THEIRS = "portablectl"
PENDING_SQUASHFS = "pending: squashfs format not available yet"


@dataclass
class Bench:
    """One benchmark. ``target``: the highest acceptable ratio ours/portablectl (``help``: the
    milliseconds over ``python -c pass``); None for rows shown for information only.

    ``starts`` and ``reloads``: how many ``portable`` processes and daemon-reloads one sample of
    ours takes. The *floor* runs as many ``python -c pass`` and ``systemctl daemon-reload``,
    interleaved with the two tools: the ratio a Python tool that did nothing but start (and
    reload) would get on this machine.

    ``stack``: the libraries a ``portable`` command of this kind cannot run without, as the
    design fixes them (pathlib and dataclasses for the typed spec objects, pluggy for the
    registry, jeepney for D-Bus; not click: the plain spellings of the verbs timed here are
    read without it, see ``portable.cli.fast``, and click is loaded for help and unusual
    command lines only). The *stack floor* is the floor with ``python -c "import <stack>"``
    instead of ``pass``: the ratio no code of ours can beat.
    """

    name: str
    title: str
    target: float | None
    starts: int = 1
    reloads: int = 0
    kind: str = "ratio"  # "ratio", or "delta" for help
    squashfs: bool = False
    rounds: int | None = None  # default: --rounds
    stack: str = ""


# What each kind of command imports at the least (see Bench.stack).
BASE = "pathlib, dataclasses"
REGISTRY = f"{BASE}, pluggy"
CHANGING = f"{REGISTRY}, jeepney"

# reloads=0 for attach and detach: a daemon-reload is needed only when PID 1 has loaded one of
# the image's units (docs/reload.md), never here, so the floors count none (as scale.py's).
BENCHMARKS = [
    Bench(
        "attach-squashfs",
        "attach+detach (strict, squashfs)",
        1.1,
        2,
        0,
        squashfs=True,
        stack=CHANGING,
    ),
    Bench("attach-dir", "attach+detach (strict, directory)", None, 2, 0, stack=CHANGING),
    Bench("inspect-squashfs", "inspect (squashfs)", 1.2, squashfs=True, stack=REGISTRY),
    Bench("inspect-dir", "inspect (directory)", None, stack=REGISTRY),
    Bench("list-200", "list (200 images)", 3.0, stack=REGISTRY),
    Bench("is-attached", "is-attached", 6.0, stack=f"{BASE}, jeepney"),
    Bench("batch-20", "attach+detach 20 images: 1 call vs 20", 0.3, 2, 0, stack=CHANGING),
    Bench("help", "--help vs python -c pass (ms over)", 60.0, kind="delta", rounds=20),
]
BY_NAME = {b.name: b for b in BENCHMARKS}


@dataclass
class Row:
    bench: Bench
    ours: float | None = None  # median, seconds
    theirs: float | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""
    floor: float | None = None  # see Bench
    stack: float | None = None  # the stack floor, see Bench

    @property
    def value(self) -> float | None:
        if self.ours is None or self.theirs is None:
            return None
        if self.bench.kind == "delta":
            return (self.ours - self.theirs) * 1000
        return self.ours / self.theirs

    @property
    def status(self) -> str:
        if self.note:
            return "ERROR" if self.note.startswith("error") else "PENDING"
        value = self.value
        assert value is not None
        if self.bench.target is None:
            return "info"
        return "PASS" if value <= self.bench.target else "FAIL"

    def to_json(self) -> dict[str, Any]:
        """The row as ``--json`` writes it (``run.py`` and ``scale.py``)."""
        return {
            "title": self.bench.title,
            "ours": self.ours,
            "portablectl": self.theirs,
            "value": self.value,
            "target": self.bench.target,
            "status": self.status,
            "floor": self.floor,
            "stack_floor": self.stack,
            "stack": self.bench.stack,
            "note": self.note,
            "samples": self.samples,
        }


# --- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    systemd = subprocess.run(["systemctl", "--version"], capture_output=True, text=True)
    return {
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "systemd": systemd.stdout.split("\n", 1)[0],
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- images --------------------------------------------------------------------------------


def image(path: Path, name: str, *, busybox: bool = True) -> Path:
    """A directory image ``name`` offering ``name.service`` (with busybox: a real payload)."""
    return make_directory_image(path, units={f"{name}.service": service_unit()}, busybox=busybox)


def build_images(work: Path, count_list: int, count_batch: int) -> dict[str, Any]:
    """Every image the benchmarks use, below ``work`` (same path inside the box)."""
    paths: dict[str, Any] = {
        "dir": image(work / "benchdir", "benchdir"),
        "inspect": image(work / "benchin", "benchin"),
        "is_attached": image(work / "benchia", "benchia"),
    }
    # For the squashfs images: the tree of a directory image, packed.
    paths["squashfs"] = None
    paths["squashfs_inspect"] = None
    if shutil.which("mksquashfs"):
        for key, name in (("squashfs", "benchsq"), ("squashfs_inspect", "benchsqin")):
            tree = image(work / "trees" / name, name)
            raw = work / f"{name}.raw"
            subprocess.run(
                ["mksquashfs", str(tree), str(raw), "-quiet", "-noappend"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            paths[key] = raw
    lists = work / "list"
    lists.mkdir()
    paths["list"] = [
        image(lists / f"l{i:03d}", f"l{i:03d}", busybox=False) for i in range(count_list)
    ]
    paths["batch"] = [
        image(work / "batch" / f"b{i:02d}", f"b{i:02d}", busybox=False) for i in range(count_batch)
    ]
    return paths


# --- the plans -----------------------------------------------------------------------------


def attach_detach(img: str) -> dict[str, Any]:
    return {
        "ours": [[OURS, "attach", "--profile", "strict", img], [OURS, "detach", img]],
        "theirs": [[THEIRS, "attach", "--profile=strict", img], [THEIRS, "detach", img]],
    }


def inspect(img: str) -> dict[str, Any]:
    return {"ours": [[OURS, "inspect", img]], "theirs": [[THEIRS, "inspect", img]]}


def floor(b: Bench, code: str = "pass") -> list[list[str]]:
    return [[str(PY), "-c", code]] * b.starts + [["systemctl", "daemon-reload"]] * b.reloads


def plan(name: str, paths: dict[str, Any]) -> dict[str, Any]:
    if name == "attach-squashfs":
        return attach_detach(str(paths["squashfs"]))
    if name == "attach-dir":
        return attach_detach(str(paths["dir"]))
    if name == "inspect-squashfs":
        return inspect(str(paths["squashfs_inspect"]))
    if name == "inspect-dir":
        return inspect(str(paths["inspect"]))
    if name == "list-200":
        where = "/var/lib/portables"
        links = " ".join(f"'{p}'" for p in paths["list"])
        return {
            "setup": [["sh", "-c", f"mkdir -p {where} && ln -s {links} {where}/"]],
            "teardown": [["find", where, "-maxdepth", "1", "-type", "l", "-name", "l*", "-delete"]],
            "ours": [[OURS, "list", "--no-pager"]],
            "theirs": [[THEIRS, "list", "--no-pager"]],
        }
    if name == "is-attached":
        img = str(paths["is_attached"])
        return {
            "setup": [[THEIRS, "attach", "--runtime", img]],
            "teardown": [[THEIRS, "detach", "--runtime", img]],
            "ours": [[OURS, "is-attached", img]],
            "theirs": [[THEIRS, "is-attached", img]],
        }
    if name == "batch-20":
        imgs = [str(p) for p in paths["batch"]]
        return {
            "ours": [
                [OURS, "attach", "--runtime", *imgs],
                [OURS, "detach", "--runtime", *imgs],
            ],
            "theirs": [
                *([THEIRS, "attach", "--runtime", i] for i in imgs),
                *([THEIRS, "detach", "--runtime", i] for i in imgs),
            ],
        }
    raise ValueError(name)


# --- running -------------------------------------------------------------------------------


def install_as_user(checkout: Path, dest: Path) -> Path:
    """``checkout`` built into a wheel and installed into a new virtualenv ``dest``, as
    ``pip install`` does for a user; the dependencies are copied from this environment (no
    index needed). Returns the virtualenv's ``bin`` directory."""
    import importlib.metadata

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = dest / "wheel"
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(checkout)], check=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(dest / "venv")], check=True)
    python = dest / "venv" / "bin" / "python"
    wheel = [str(w) for w in wheels.glob("*.whl")]
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", *wheel], check=True)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # The runtime requirements pyproject.toml declares (none of them has dependencies itself).
    requires = importlib.metadata.requires("portable-services") or []
    names = [re.split(r"[ <>=!~;\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    for name in names:
        dist = importlib.metadata.distribution(name)
        for f in dist.files or ():
            src = Path(str(dist.locate_file(f)))
            if f.parts[0] == ".." or not src.is_file() or "__pycache__" in f.parts:
                continue  # scripts outside site-packages; .pyc are compiled below
            (site / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, site / f)
    subprocess.run([str(python), "-m", "compileall", "-q", str(site)], check=True)
    # A user's first command comes later than this: until RACY_NS have passed, the fresh
    # site-packages makes every run rescan the entry points (core/plugin/entrypoints.py).
    time.sleep(RACY_NS / 1e9)
    return python.parent


def run_in_box(box: Box, spec: dict[str, Any], rounds: int, env: dict[str, str]) -> Any:
    """One benchmark through ``_inbox.py`` inside the box; its JSON result."""
    proc = box.python(
        [str(HERE / "_inbox.py")],
        input=json.dumps({"rounds": rounds, "env": env, "benchmarks": [spec]}),
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"_inbox.py failed:\n{proc.stderr}")
    return json.loads(proc.stdout)[spec["name"]]


def fill(row: Row, result: dict[str, Any]) -> None:
    if "error" in result:
        row.note = f"error: {result['error']}"
        return
    row.samples = result
    row.ours = statistics.median(result["ours"])
    row.theirs = statistics.median(result["theirs"])
    if "floor" in result:
        row.floor = statistics.median(result["floor"]) / row.theirs
    if "stack" in result:
        row.stack = statistics.median(result["stack"]) / row.theirs


def host_help(row: Row, rounds: int, extra: dict[str, str]) -> None:
    """``portable --help`` against the bare interpreter, on this machine (not in the box)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    spec = {"name": "help", "ours": [[OURS, "--help"]], "theirs": [[str(PY), "-c", "pass"]]}
    try:
        fill(row, _inbox.bench(spec, rounds, env))
    except _inbox.CommandFailed as exc:
        row.note = f"error: {exc}"


def squashfs_works(box: Box, raw: Path | None, env: dict[str, str]) -> bool:
    """Can ``portable inspect`` read a squashfs image (is the format there yet)?"""
    if raw is None:
        return False
    proc = box.run([OURS, "inspect", str(raw)], env=env, check=False)
    return proc.returncode == 0


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def table(rows: list[Row]) -> str:
    head = ("benchmark", "ours", "portablectl", "ratio", "floor", "stack", "target", "result")
    lines = [head]
    for r in rows:
        b = r.bench
        floor = "-" if r.floor is None else f"{r.floor:.2f}x"
        stack = "-" if r.stack is None else f"{r.stack:.2f}x"
        if b.kind == "delta":
            value = "-" if r.value is None else f"+{r.value:.1f} ms"
            target = f"<= +{b.target:g} ms"
            theirs = fmt_ms(r.theirs) + " (python)" if r.theirs is not None else "-"
        else:
            value = "-" if r.value is None else f"{r.value:.2f}x"
            target = "-" if b.target is None else f"<= {b.target:g}x"
            theirs = fmt_ms(r.theirs)
        result = r.status if r.status != "PENDING" else r.note
        if r.status == "ERROR":
            result = "ERROR (see below)"
        lines.append((b.title, fmt_ms(r.ours), theirs, value, floor, stack, target, result))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        cells[-1] = line[-1]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--rounds", type=int, default=7, help="samples per tool (default 7)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help=f"run only these: {', '.join(BY_NAME)}",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument(
        "--tree",
        type=Path,
        metavar="CHECKOUT",
        help="install and measure this checkout instead of the one this script is in",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="measure the developers' editable install (this .venv) instead of a wheel install",
    )
    parser.add_argument("--list-images", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    only = [n.strip() for arg in args.only for n in arg.split(",") if n.strip()]
    unknown = [n for n in only if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    selected = [b for b in BENCHMARKS if not only or b.name in only]
    rows = {b.name: Row(b) for b in selected}

    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    context: dict[str, float] = {}
    global PY, OURS
    with tempfile.TemporaryDirectory(prefix="portable-bench-") as tmp:
        env: dict[str, str] = {}
        checkout = (args.tree or HERE.parent).resolve()
        if args.editable:
            if args.tree is not None:
                parser.error("--editable measures this checkout's .venv; --tree installs another")
            # The checkout is read-only in the box: a writable bytecode cache there.
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pyc")
        else:
            log(f"installing {checkout} into a new virtualenv ...")
            bin_dir = install_as_user(checkout, Path(tmp) / "install")
            PY, OURS = bin_dir / "python", str(bin_dir / "portable")
        if "help" in rows:
            log("help (on this machine) ...")
            rounds = rows["help"].bench.rounds or args.rounds
            host_help(rows["help"], rounds, env)
        in_box = [b for b in selected if b.name != "help"]
        if in_box:
            reason = box_unavailable_reason()
            if reason is not None:
                print(f"benchmarks/run.py: cannot boot the test box: {reason}", file=sys.stderr)
                return 2
            with Box(bind=[tmp]) as box:
                log(f"box {box.name} booted in {box.boot_seconds:.2f}s; building images ...")
                work = box.mkdtemp(prefix="bench-")
                t0 = time.monotonic()
                paths = build_images(work, args.list_images, 20)
                log(f"images built in {time.monotonic() - t0:.1f}s")
                squashfs_ok = squashfs_works(box, paths["squashfs_inspect"], env)
                spec = {
                    "name": "context",
                    "ours": [[str(PY), "-c", "pass"]],
                    "theirs": [["systemctl", "daemon-reload"]],
                }
                result = run_in_box(box, spec, args.rounds, env)
                if "error" not in result:
                    context["python -c pass (box)"] = statistics.median(result["ours"])
                    context["systemctl daemon-reload (box)"] = statistics.median(result["theirs"])
                for b in in_box:
                    if b.squashfs and not squashfs_ok:
                        rows[b.name].note = PENDING_SQUASHFS
                        continue
                    log(f"{b.name} ...")
                    spec = {"name": b.name, **plan(b.name, paths), "floor": floor(b)}
                    if b.stack:
                        spec["stack"] = floor(b, f"import {b.stack}")
                    fill(rows[b.name], run_in_box(box, spec, b.rounds or args.rounds, env))
    print()
    print(table(list(rows.values())))
    print()
    for what, seconds in context.items():
        print(f"{what}: {fmt_ms(seconds)}")
    print(
        "floor: the ratio of a Python command that only starts (python -c pass) and reloads "
        "as often as ours, measured in the same rounds"
    )
    print(
        "stack: the same with python -c 'import STACK', the libraries such a command can't do "
        "without: " + "; ".join(f"{b.name}: {b.stack}" for b in selected if b.stack)
    )
    print(f"rounds: {args.rounds} per tool (help: {BY_NAME['help'].rounds}), medians")
    print(
        "ours: the editable install in " + str(Path(sys.prefix))
        if args.editable
        else f"ours: {checkout} installed from a wheel into a new virtualenv"
    )
    for r in rows.values():
        if r.status == "ERROR":
            print(f"\n{r.bench.name}: {r.note}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "rounds": args.rounds,
                    "context": context,
                    "results": {r.bench.name: r.to_json() for r in rows.values()},
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if any(r.status in ("FAIL", "ERROR") for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
