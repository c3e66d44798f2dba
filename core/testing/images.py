"""Build small but real portable service images for tests and demos.

An image is an OS tree: ``/usr/lib/os-release`` (with ``/etc/os-release`` linking to it), unit
files, the mount points systemd needs in a ``RootDirectory=``, and optionally a static busybox
as ``/usr/bin/busybox`` with the applets services use, so the units really run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUSYBOX",
    "DEFAULT_OS_RELEASE",
    "GPT_TYPES",
    "GptPart",
    "make_directory_image",
    "make_erofs_image",
    "make_ext4_image",
    "make_extension_tree",
    "make_gpt_image",
    "make_gpt_image_with_repart",
    "make_squashfs_image",
    "mark_systemd_version",
    "service_unit",
]

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


def mark_systemd_version(root: Path, version: int) -> Path:
    """Make the tree ``root`` look as if systemd ``version`` were installed in it.

    ``--root`` follows the systemd of the tree (:mod:`portable.systemd.version`), found by its
    shared library's name as Debian installs it; an empty file of that name is enough.
    """
    lib = root / f"usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-{version}.so"
    lib.parent.mkdir(parents=True, exist_ok=True)
    lib.touch()
    return lib


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


# --- raw images ------------------------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr or proc.stdout}")


def make_squashfs_image(path: Path, tree: Path) -> Path:
    """``mksquashfs`` ``tree`` into ``path`` (files owned by root, xattrs kept)."""
    path.unlink(missing_ok=True)
    _run(["mksquashfs", str(tree), str(path), "-noappend", "-quiet", "-no-progress", "-all-root"])
    return path


def make_erofs_image(path: Path, tree: Path) -> Path:
    """``mkfs.erofs`` ``tree`` into ``path`` (erofs-utils)."""
    path.unlink(missing_ok=True)
    _run(["mkfs.erofs", "--quiet", "--all-root", str(path), str(tree)])
    return path


def _tree_bytes(tree: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        total += 4096 * (len(dirnames) + 1)
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size + 4096
    return total


def make_ext4_image(path: Path, tree: Path) -> Path:
    """``mkfs.ext4 -d`` ``tree`` into a file just big enough (no journal: mounted read-only)."""
    path.unlink(missing_ok=True)
    size_kib = max(4096, 2 * _tree_bytes(tree) // 1024 + 2048)
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-O",
            "^has_journal",
            "-E",
            "root_owner=0:0",
            "-d",
            str(tree),
            str(path),
            f"{size_kib}K",
        ]
    )
    return path


# Discoverable Partitions Specification type UUIDs used by the tests (x86-64 and generic).
GPT_TYPES = {
    "root-x86-64": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    "root-x86-64-verity": "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
    "usr-x86-64": "8484680c-9521-48c6-9c11-b0720656f69e",
    "root-arm64": "b921b045-1df0-41c3-af44-4c6f280d3fae",
    "root-x86": "44479540-f297-41b2-9af7-d131d5f0458a",
    "linux-generic": "0fc63daf-8483-4772-8e79-3d69d8477de4",
    "swap": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
    "esp": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
}


@dataclass(frozen=True)
class GptPart:
    """One partition of :func:`make_gpt_image`: a type (a key of :data:`GPT_TYPES` or a UUID),
    its content (a file copied in, or ``size`` zero bytes), a label and GPT attribute flags."""

    type: str
    content: Path | None = None
    size: int = 1024 * 1024
    label: str = ""
    flags: int = 0


def make_gpt_image(path: Path, parts: Sequence[GptPart], *, sector: int = 512) -> Path:
    """A GPT disk image written directly (no tools): protective MBR, both headers, the
    partitions 1 MiB aligned. For odd layouts (verity partitions, no-auto flags, several
    roots) that ``systemd-repart`` makes hard to produce."""
    align = 1024 * 1024
    entries = bytearray(128 * 128)
    offset = align
    layout: list[tuple[int, GptPart, int]] = []
    for i, part in enumerate(parts):
        size = part.content.stat().st_size if part.content is not None else part.size
        size = -(-size // align) * align
        layout.append((offset, part, size))
        type_uuid = uuid.UUID(GPT_TYPES.get(part.type, part.type))
        struct.pack_into(
            "<16s16sQQQ72s",
            entries,
            i * 128,
            type_uuid.bytes_le,
            uuid.uuid4().bytes_le,
            offset // sector,
            (offset + size) // sector - 1,
            part.flags,
            part.label.encode("utf-16-le"),
        )
        offset += size
    total = offset + align
    last_lba = total // sector - 1
    entries_sectors = len(entries) // sector

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        h = bytearray(92)
        struct.pack_into(
            "<8sIIIIQQQQ16sQIII",
            h,
            0,
            b"EFI PART",
            0x00010000,
            92,
            0,
            0,
            current,
            backup,
            align // sector,
            last_lba - entries_sectors - 1,
            uuid.uuid4().bytes_le,
            entries_lba,
            128,
            128,
            zlib.crc32(entries) & 0xFFFFFFFF,
        )
        struct.pack_into("<I", h, 16, zlib.crc32(h) & 0xFFFFFFFF)
        return bytes(h) + bytes(sector - 92)

    mbr = bytearray(512)
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\0\x02\0", 0xEE, b"\xff\xff\xff", 1, 0xFFFFFFFF)
    mbr[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.truncate(total)
        f.write(bytes(mbr) + bytes(sector - 512 if sector > 512 else 0))
        f.seek(sector)
        f.write(header(1, last_lba, 2))
        f.seek(2 * sector)
        f.write(entries)
        for start, part, _ in layout:
            if part.content is not None:
                f.seek(start)
                with open(part.content, "rb") as src:
                    shutil.copyfileobj(src, f)
        f.seek((last_lba - entries_sectors) * sector)
        f.write(entries)
        f.seek(last_lba * sector)
        f.write(header(last_lba, 1, last_lba - entries_sectors))
    return path


def make_gpt_image_with_repart(
    path: Path, tree: Path, *, partition: str = "root", fs: str = "squashfs"
) -> Path:
    """A GPT disk image built by ``systemd-repart``: one ``root`` (or ``usr``: ``tree``'s
    ``/usr`` only) partition for the host's architecture, formatted ``fs`` from ``tree``."""
    path.unlink(missing_ok=True)
    source = tree / "usr" if partition == "usr" else tree
    with tempfile.TemporaryDirectory(prefix="repart-") as defs:
        Path(defs, "10-root.conf").write_text(
            f"[Partition]\nType={partition}\nFormat={fs}\nCopyFiles={source}:/\n"
        )
        _run(
            [
                "systemd-repart",
                f"--definitions={defs}",
                "--empty=create",
                "--size=auto",
                "--dry-run=no",
                "--no-pager",
                str(path),
            ]
        )
    return path


def make_extension_tree(
    path: Path,
    *,
    name: str,
    release: str = DEFAULT_OS_RELEASE,
    release_name: str | None = None,
    strict: bool | None = None,
    units: Mapping[str, str] | None = None,
    files: Mapping[str, str | bytes] | None = None,
    unit_dir: str = "/usr/lib/systemd/system",
) -> Path:
    """An extension (sysext) tree: ``/usr/lib/extension-release.d/extension-release.NAME``
    (``release_name`` overrides NAME; ``strict=False`` sets the xattr
    ``user.extension-release.strict=false`` on it), unit files and other files."""
    rel_dir = path / "usr/lib/extension-release.d"
    rel_dir.mkdir(parents=True, exist_ok=True)
    rel = rel_dir / f"extension-release.{release_name or name}"
    rel.write_text(release)
    if strict is not None:
        os.setxattr(rel, "user.extension-release.strict", b"true" if strict else b"false")
    target = path / unit_dir.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for unit, content in (units or {}).items():
        (target / unit).write_text(content)
    for rel_path, data in (files or {}).items():
        f = path / rel_path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            f.write_bytes(data)
        else:
            f.write_text(data)
        if rel_path.endswith(".sh"):
            f.chmod(0o755)
    return path
