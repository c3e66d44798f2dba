"""Lint, format and type checks run with the tests, so CI enforces them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name):
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
        path = Path(found)
    return str(path)


def test_ruff_lint():
    proc = subprocess.run(
        [tool("ruff"), "check", "core", "plugins", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format():
    proc = subprocess.run(
        [tool("ruff"), "format", "--check", "core", "plugins", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict(tmp_path):
    # mypy can't follow setuptools' package-dir mapping (core -> portable); give it the
    # installed layout as a tree of links.
    pkg = tmp_path / "portable"
    pkg.mkdir()
    for entry in (REPO / "core").iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, pkg / entry.name)
    os.symlink(REPO / "plugins", pkg / "plugins")
    proc = subprocess.run(
        [
            tool("mypy"),
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--no-incremental",
            "-p",
            "portable",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
