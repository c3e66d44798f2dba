"""Build small but real portable service images for tests and demos.

An image is an OS tree: ``/usr/lib/os-release`` (with ``/etc/os-release`` linking to it), unit
files, the mount points systemd needs in a ``RootDirectory=``, and optionally a static busybox
as ``/usr/bin/busybox`` with the applets services use, so the units really run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["BUSYBOX", "DEFAULT_OS_RELEASE", "make_directory_image", "service_unit"]

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
APPLETS = (
    "sh",
    "sleep",
    "id",
    "ip",
    "cat",
    "echo",
    "ls",
    "true",
    "false",
    "env",
    "hostname",
    "tail",
    "cut",
    "tr",
    "grep",
)

DEFAULT_OS_RELEASE = 'ID=portabletest\nVERSION_ID=1\nPRETTY_NAME="Portable Test OS 1"\n'


def service_unit(
    exec_start: str = "/usr/bin/sleep infinity", *, description: str = "test", extra: str = ""
) -> str:
    """A minimal ``.service`` unit running ``exec_start``."""
    return (
        f"[Unit]\nDescription={description}\n\n[Service]\nExecStart={exec_start}\n{extra}"
        "\n[Install]\nWantedBy=multi-user.target\n"
    )


def make_directory_image(
    path: Path,
    *,
    units: Mapping[str, str] | None = None,
    os_release: str | None = DEFAULT_OS_RELEASE,
    unit_dir: str = "/usr/lib/systemd/system",
    files: Mapping[str, str | bytes] | None = None,
    symlinks: Mapping[str, str] | None = None,
    busybox: bool = True,
    template: Path | None = None,
) -> Path:
    """Create a directory image at ``path`` and return it.

    :param units: unit name -> content, written to ``unit_dir`` inside the image.
    :param os_release: content of ``/usr/lib/os-release``; ``None`` for an image without one.
    :param files: extra files, path inside the image -> content.
    :param symlinks: extra symlinks, path inside the image -> target (written verbatim).
    :param busybox: install the host's static busybox with a few applets in ``/usr/bin``.
    :param template: a directory whose tree is copied into the image first (symlinks kept),
        e.g. ``examples/hello``; ``os_release=None`` then keeps the template's.
    """
    path.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copytree(template, path, symlinks=True, dirs_exist_ok=True)
    for d in (
        "usr/bin",
        "usr/lib",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/tmp",
        "var/lib",
        "var/log",
        "var/cache",
    ):
        (path / d).mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("sbin", "usr/bin")):
        if not (path / link).exists():
            os.symlink(target, path / link)
    # Bind-mount targets of the built-in profiles must exist in a read-only root.
    (path / "etc/machine-id").touch()
    (path / "etc/resolv.conf").touch()
    if os_release is not None:
        (path / "usr/lib/os-release").write_text(os_release)
    if (path / "usr/lib/os-release").exists() and not os.path.lexists(path / "etc/os-release"):
        os.symlink("../usr/lib/os-release", path / "etc/os-release")
    if busybox and BUSYBOX.exists():
        shutil.copy2(BUSYBOX, path / "usr/bin/busybox")
        for applet in APPLETS:
            if not os.path.lexists(path / "usr/bin" / applet):
                os.symlink("busybox", path / "usr/bin" / applet)
    target_dir = path / unit_dir.lstrip("/")
    target_dir.mkdir(parents=True, exist_ok=True)
    for name, content in (units or {}).items():
        (target_dir / name).write_text(content)
    for rel, data in (files or {}).items():
        f = path / rel.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            f.write_bytes(data)
        else:
            f.write_text(data)
    for rel, target in (symlinks or {}).items():
        f = path / rel.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, f)
    return path
