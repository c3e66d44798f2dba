"""``systemd-analyze`` of each systemd version the project knows, runnable on this machine.

The exposure score (:mod:`portable.security.score`) is compared, check by check, with the real
``systemd-analyze security --offline=yes`` of every known version. Offline analysis needs no
running systemd, so no box is booted: this machine's own ``systemd-analyze`` serves its version,
and the other version's is run from the test box's root (:mod:`portable.testing.rootfs`, built by
``.ci/setup.sh``) through that root's own dynamic loader and libraries::

    from portable.testing.analyze import systemd_analyze

    cmd = systemd_analyze(257)      # ["/var/cache/.../ld-linux-x86-64.so.2", "--library-path",
                                    #  "...", ".../usr/bin/systemd-analyze"], or None
    subprocess.run([*cmd, "security", "--offline=yes", "/tmp/x/foo.service"])

Such a binary reads this machine's files (unit paths given to it, ``/etc/systemd``), and uses its
root's libseccomp to tell which system calls exist.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

from portable.testing.rootfs import RECIPES, cached_root

__all__ = ["systemd_analyze"]


def _version_of(cmd: list[str]) -> int | None:
    try:
        out = subprocess.run(
            [*cmd, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.split()
    if len(words) >= 2 and words[0] == "systemd" and words[1].isdigit():
        return int(words[1])
    return None


def _from_root(root: Path) -> list[str] | None:
    """systemd-analyze of an OS tree, run with the tree's loader and libraries."""
    shared = sorted(root.glob("usr/lib/*/systemd/libsystemd-shared-*.so"))
    loaders = sorted(root.glob("usr/lib64/ld-linux*.so*")) + sorted(
        root.glob("usr/lib/*/ld-linux*.so*")
    )
    exe = root / "usr/bin/systemd-analyze"
    if not shared or not loaders or not exe.is_file():
        return None
    libdir = shared[0].parent.parent  # usr/lib/<triplet>
    return [str(loaders[0]), "--library-path", f"{libdir}:{libdir}/systemd", str(exe)]


@cache
def systemd_analyze(version: int) -> list[str] | None:
    """The command that runs systemd ``version``'s ``systemd-analyze`` here, or None."""
    own = shutil.which("systemd-analyze")
    if own is not None and _version_of([own]) == version:
        return [own]
    for recipe in RECIPES.values():
        if recipe.systemd != version:
            continue
        root = cached_root(recipe)
        cmd = _from_root(root) if root is not None else None
        if cmd is not None and _version_of(cmd) == version:
            return cmd
    return None
