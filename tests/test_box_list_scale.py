"""list against portablectl with raw files (issue 15): a ``.raw`` name is a raw image, unread.

The same table as portablectl for squashfs files, junk named ``.raw`` and directories; and,
traced with strace, ``portable list`` opens no ``.raw`` file for reading (systemd-portabled
opens each one ``O_PATH`` only) and each directory image once, as portabled does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from portable.testing.box import Box
from portable.testing.images import make_directory_image, make_squashfs_image, service_unit

pytestmark = [
    pytest.mark.box,
    pytest.mark.skipif(not shutil.which("mksquashfs"), reason="needs mksquashfs"),
]


def test_raw_names_listed_as_portablectl_without_opening_them(box: Box, box_tmp: Path) -> None:
    tree = make_directory_image(box_tmp / "tree", units={"sq.service": service_unit()})
    raw = make_squashfs_image(box_tmp / "sq.raw", tree)
    lib = box_tmp / "lib"
    lib.mkdir()
    for i in range(20):
        shutil.copy(raw, lib / f"r{i:02d}.raw")
        make_directory_image(lib / f"d{i:02d}", units={f"d{i:02d}.service": service_unit()})
    (lib / "junk.raw").write_text("not an image\n")  # systemd lists it: raw by its name
    (lib / "empty.raw").touch()
    (lib / "notes.txt").write_text("not an image\n")
    box.run(["mkdir", "-p", "/var/lib/portables"])
    box.run(f"ln -s {lib}/* /var/lib/portables/")
    try:
        for args in (["list"], ["list", "--no-legend"]):
            theirs = box.portablectl(args, check=False)
            ours = box.portable(args, check=False)
            assert theirs.returncode == 0
            assert (ours.returncode, ours.stdout, ours.stderr) == (0, theirs.stdout, theirs.stderr)
        assert re.search(r"^junk +raw ", ours.stdout, re.M)
        if shutil.which("strace") is None:
            pytest.skip("needs strace on the host for the open count")
        trace = box_tmp / "list.trace"
        ns = ["nsenter", "--all", f"--target={box.leader_pid}", "--"]
        subprocess.run(
            [
                *["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(trace)],
                *[*ns, str(box.python_executable), "-m", "portable", "list", "--no-pager"],
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        opens = [
            line
            for line in trace.read_text().splitlines()
            if "openat(" in line and "O_PATH" not in line and "= -1" not in line
        ]
        assert not [line for line in opens if ".raw" in line]
        # by path, or by name from the search-path directory's (O_PATH) descriptor
        dirs = [
            m[1] for line in opens if (m := re.search(r'"(?:/var/lib/portables/)?(d\d\d)"', line))
        ]
        assert sorted(dirs) == [f"d{i:02d}" for i in range(20)]
    finally:
        box.run("rm -f /var/lib/portables/*", check=False)
