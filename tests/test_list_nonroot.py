"""``list`` run by a user who can't read every image (issue 14, item 5).

portablectl asks portabled, which runs as root, so it lists everything; ours shows what the
user can know (see :func:`portable.images.listing.list_images`): names it can list, the type a name
tells, and the state from the world-readable markers. Run as ``nobody`` with ``setpriv`` on a
``--root`` tree whose permissions are set here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.testing.images import make_directory_image, service_unit

SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
CLI = "import sys; from portable.cli import main; sys.exit(main(sys.argv[1:]))"


def _nobody_can_run() -> str | None:
    """Why the tests can't run as nobody, or ``None`` if they can."""
    if os.geteuid() != 0:
        return "needs root, to switch to nobody"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed"
    probe = subprocess.run(
        [*SETPRIV, sys.executable, "-c", "import portable.cli"],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    if probe.returncode != 0:
        return f"nobody can't run {sys.executable} with portable: {probe.stderr.strip()[-200:]}"
    return None


pytestmark = pytest.mark.skipif((reason := _nobody_can_run()) is not None, reason=reason or "")


def portable(args: list[str], *, nobody: bool) -> str:
    cmd = [*(SETPRIV if nobody else []), sys.executable, "-c", CLI, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)
    assert r.returncode == 0 and r.stderr == "", r
    return r.stdout


@pytest.fixture
def root() -> Iterator[Path]:
    """A --root tree nobody can walk into (pytest's tmp_path is root's only). Its search path:

    * /var/lib/portables/open: a directory image anyone can read;
    * /var/lib/portables/hidden, sq.raw, lost: links into /srv/private (0700): a directory image
      (attached), a raw image and a directory image that are not;
    * /etc/portables (0700): inetc (attached) and idle (not).
    """
    top = Path(tempfile.mkdtemp(prefix="portable-list-nonroot."))
    try:
        top.chmod(0o755)
        r = top / "root"
        images = r / "var/lib/portables"
        private = r / "srv/private"
        for name, where in [
            ("open", images),
            ("hidden", private),
            ("lost", private),
            ("inetc", r / "etc/portables"),
            ("idle", r / "etc/portables"),
        ]:
            make_directory_image(
                where / name, units={f"{name}.service": service_unit()}, busybox=True
            )
        (private / "sq.raw").write_bytes(b"\0" * 4096)
        for name in ("hidden", "sq.raw", "lost"):
            (images / name).symlink_to(f"/srv/private/{name}")
        for p in [r, *r.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() or p.stat().st_mode & 0o111 else 0o644)
        portable(["--root", str(r), "attach", "-q", "hidden"], nobody=False)
        portable(["--root", str(r), "attach", "-q", "inetc"], nobody=False)
        private.chmod(0o700)
        (r / "etc/portables").chmod(0o700)
        yield r
    finally:
        shutil.rmtree(top)


def listing(root: Path, *, nobody: bool) -> dict[str, dict[str, object]]:
    rows = json.loads(portable(["--root", str(root), "list", "--json"], nobody=nobody))
    return {row.pop("name"): row for row in rows}


def test_root_sees_everything(root: Path) -> None:
    rows = listing(root, nobody=False)
    assert {n: (r["type"], r["state"]) for n, r in rows.items()} == {
        "hidden": ("directory", "attached"),
        "idle": ("directory", "detached"),
        "inetc": ("directory", "attached"),
        "lost": ("directory", "detached"),
        "open": ("directory", "detached"),
        "sq": ("raw", "detached"),
    }


def test_nobody_sees_what_can_be_known(root: Path) -> None:
    rows = listing(root, nobody=True)
    unknown = {"read_only": False, "crtime_us": None, "mtime_us": None, "usage": None}
    assert rows == {
        # a link nobody can follow: named by the entry, stated by the markers
        "hidden": {
            "type": "",
            "format": None,
            "path": "/var/lib/portables/hidden",
            "state": "attached",
            **unknown,
        },
        # in a directory nobody can list: known from the markers only
        "inetc": {
            "type": "",
            "format": None,
            "path": "/etc/portables/inetc",
            "state": "attached",
            **unknown,
        },
        "open": rows["open"] | {"type": "directory", "format": "directory", "state": "detached"},
        # NAME.raw is a raw image by its name, as systemd decides
        "sq": {
            "type": "raw",
            "format": None,
            "path": "/var/lib/portables/sq.raw",
            "state": "detached",
            **unknown,
        },
    }
    # lost (not attached, no suffix) may be a directory image or no image: not claimed; idle
    # (not attached, in a directory nobody can list) can't be known at all.
    assert rows["open"]["crtime_us"]


def test_nobody_table(root: Path) -> None:
    out = portable(["--root", str(root), "list"], nobody=True)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "RO", "CRTIME", "MTIME", "USAGE", "STATE"]
    assert [line.split()[0] for line in lines[1:-2]] == ["hidden", "inetc", "open", "sq"]
    assert lines[1].split() == ["hidden", "no", "-", "-", "attached"]  # empty type and usage
    assert lines[-1] == "4 images listed."
