"""Timings for issue 16 (hole 6): parsing huge unit files, in process and through the CLI.

Not a test (pytest does not collect benchmarks/). Needs no root and no box: the CLI rows run
``portable --root`` on a throwaway root in a temporary directory::

    .venv/bin/python benchmarks/unitfile_parse.py [--rounds 5] [--module OLD.py] [--timeout 120]

``--module`` times another version of ``core/systemd/unitfile.py`` in process (e.g. the one before
the
linear parser: ``git show COMMIT:core/unitfile.py > /tmp/old_unitfile.py``); the CLI rows always
run this checkout's ``portable``. Prints medians:

* ``parse cont-5k`` / ``parse cont-20k``: ``parse_unit_text`` of a service whose ``ExecStart=``
  continues over 5,000 / 20,000 lines (the issue's cases);
* ``parse cont-1MB``: one ``ExecStart=`` continued up to just under 1 MiB (systemd's
  ``LONG_LINE_MAX``, so systemd itself still loads it); ``parse plain-1MB``: 1 MB of short
  ``Environment=`` lines;
* ``security cont-1MB`` / ``attach --max-exposure cont-1MB``: the whole command, that unit as a
  file and in a directory image, ``--root`` (the attach is refused by the score, nothing is
  written);
* ``parse over-limit``: a continued line just over 1 MiB, refused (time to refuse).

A case slower than ``--timeout`` seconds is stopped and shown as ``> N s``.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

LONG_LINE_MAX = 1024 * 1024  # systemd's src/basic/fileio.h


def continued(lines: int, *, width: int = 24) -> str:
    """A service whose ExecStart= continues over ``lines`` lines of ``width`` bytes each."""
    head = "[Unit]\nDescription=huge\n\n[Service]\nExecStart=/usr/bin/true \\\n"
    arg = "  --argument-%08d".ljust(width - 2)
    body = "".join(arg % i + " \\\n" for i in range(lines))
    return head + body + "  end\n"


def continued_bytes(size: int, *, logical: bool = False) -> str:
    """A service with one ExecStart= continued to make a file of ``size`` bytes (``logical``:
    a logical line of ``size`` bytes, as systemd counts it against LONG_LINE_MAX)."""
    head = "[Unit]\nDescription=huge\n\n[Service]\n"
    first = "ExecStart=/usr/bin/true \\\n"
    piece = "  --argument-" + "x" * 60 + " \\\n"
    # Per piece the file grows by len(piece); the logical line by one less (the newline goes,
    # the backslash becomes a space).
    drop = 1 if logical else 0
    total = (0 if logical else len(head)) + len(first) - drop
    parts = [head, first]
    while total + len(piece) - drop + 3 <= size:
        parts.append(piece)
        total += len(piece) - drop
    parts.append("x" * (size - total - (0 if logical else 1)) + "\n")
    return "".join(parts)


def plain_bytes(size: int) -> str:
    head = "[Service]\nExecStart=/usr/bin/true\n"
    line = "Environment=VARIABLE_%07d=some-value-of-moderate-length\n"
    parts, total, i = [head], len(head), 0
    while total < size:
        parts.append(line % i)
        total += len(parts[-1])
        i += 1
    return "".join(parts)


def load_module(path: str | None) -> ModuleType:
    if path is None:
        import portable.systemd.unitfile

        return portable.systemd.unitfile
    spec = importlib.util.spec_from_file_location("unitfile_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _parse_child(path: str | None, text: str, rounds: int, out: Any) -> None:
    module = load_module(path)
    samples = []
    outcome = ""
    for _ in range(rounds):
        t = time.perf_counter()
        try:
            n = len(module.parse_unit_text(text, "huge.service"))
            outcome = f"{n} assignments"
        except Exception as exc:  # the refusal is what the over-limit case times
            outcome = f"refused: {exc}"
        samples.append(time.perf_counter() - t)
    out.put((samples, outcome))


def time_parse(path: str | None, text: str, rounds: int, timeout: float) -> tuple[str, str]:
    """Median of ``rounds`` parses in a child process (stopped after ``timeout`` s)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_parse_child, args=(path, text, rounds, queue))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return f"> {timeout:.0f} s", "stopped"
    samples, outcome = queue.get()
    return fmt(statistics.median(samples)), outcome


def time_cmd(cmd: list[str], rounds: int, timeout: float) -> tuple[str, str]:
    samples = []
    outcome = ""
    for _ in range(rounds):
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"> {timeout:.0f} s", "stopped"
        samples.append(time.perf_counter() - t)
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        outcome = f"exit {proc.returncode}: {lines[-1][:90] if lines else ''}"
    return fmt(statistics.median(samples)), outcome


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--module", help="a unitfile.py to time in process instead of ours")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = parser.parse_args()

    cont_1mb = continued_bytes(1_000_000)
    texts = {
        "cont-5k": continued(5000),
        "cont-20k": continued(20000),
        "cont-1MB": cont_1mb,
        "plain-1MB": plain_bytes(1_000_000),
        "over-limit": continued_bytes(LONG_LINE_MAX + 1, logical=True),
    }
    rows: list[tuple[str, str, str]] = []

    def row(name: str, result: tuple[str, str]) -> None:
        rows.append((name, *result))
        print(f"{name:<32} {result[0]:>12}   {result[1]}", flush=True)

    print(f"python {sys.version.split()[0]}; module: {args.module or 'this checkout'}")
    print(f"cont-1MB: {len(cont_1mb.encode())} bytes, {cont_1mb.count(chr(10))} lines")
    for name, text in texts.items():
        row(f"parse {name}", time_parse(args.module, text, args.rounds, args.timeout))

    portable = str(Path(sys.executable).parent / "portable")
    work = Path(tempfile.mkdtemp(prefix="bench-unitfile-"))
    try:
        from portable.testing.images import make_directory_image

        root = work / "root"
        unit = root / "srv/huge.service"
        unit.parent.mkdir(parents=True)
        unit.write_text(cont_1mb)
        make_directory_image(
            root / "srv/images/huge_1", units={"huge.service": cont_1mb}, busybox=False
        )
        base = [portable, "--root", str(root)]
        cases: dict[str, list[str]] = {
            "security cont-1MB": [*base, "security", "-p", "default", "/srv/huge.service"],
            "attach --max-exposure cont-1MB": [
                *base,
                "attach",
                "--max-exposure",
                "0.1",
                "/srv/images/huge_1",
            ],
        }
        for name, cmd in cases.items():
            row(name, time_cmd(cmd, args.rounds, args.timeout))
        assert not (root / "etc/systemd/system.attached").exists(), "attach wrote files"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
