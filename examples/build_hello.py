"""Build the example image from ``examples/hello``: a directory, or a squashfs file.

    .venv/bin/python examples/build_hello.py /var/lib/portables/hello_1.0        # a directory
    .venv/bin/python examples/build_hello.py /var/lib/portables/hello_1.0.raw    # squashfs

``examples/hello`` holds only the example's own files (os-release, three units). An image needs
more to run a service: the mount points ``/dev /proc /sys /run /tmp /var/tmp`` (git keeps no
empty directories), ``/etc/machine-id`` and ``/etc/resolv.conf`` for the profiles' bind mounts,
and the programs its units run (``/usr/bin/sh``...: this machine's static busybox, package
busybox-static). This adds them, as the demo does; ``portable inspect`` of the result lists no
problem. A ``.raw`` name is packed with ``mksquashfs`` (package squashfs-tools).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from portable.testing.images import make_directory_image

HERE = Path(__file__).resolve().parent


def build(out: Path) -> Path:
    """Build the image at ``out`` (which must not exist yet) and return it."""
    if out.exists() or out.is_symlink():
        raise SystemExit(f"build_hello: {out} exists already")
    if out.suffix != ".raw":
        return make_directory_image(out, template=HERE / "hello", os_release=None)
    if shutil.which("mksquashfs") is None:
        raise SystemExit("build_hello: mksquashfs is missing (apt-get install squashfs-tools)")
    with tempfile.TemporaryDirectory(prefix="hello-") as tmp:
        tree = make_directory_image(Path(tmp) / "tree", template=HERE / "hello", os_release=None)
        subprocess.run(
            ["mksquashfs", str(tree), str(out), "-quiet", "-no-progress", "-noappend", "-all-root"],
            check=True,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the image to make (NAME.raw: squashfs)")
    print(build(parser.parse_args().out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
