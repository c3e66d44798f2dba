"""Shipping a local image to a remote's ``/var/lib/portables``, by content hash, atomically.

``portable -H HOST attach ./foo_1.2.raw`` must attach an image that is *here*: it is copied to
``/var/lib/portables/foo_1.2.raw`` on the remote (the same file name: systemd derives the image
name and the unit prefix from it), then attached there by that path.

* **By content hash.** The digest of a file image is the SHA-256 of its bytes; of a directory
  tree, the SHA-256 of a manifest (:func:`tree_manifest`: every entry's type, mode, owner,
  relative path and symlink target, sorted, then every regular file's SHA-256), which the remote
  computes with ``find``/``sha256sum`` alone. Where the final name already holds the same
  digest nothing is copied: a second attach costs one round trip.
* **Atomically.** The bytes go to a hidden temporary name in the same directory
  (``.NAME.portable-ship.PID``); only once their digest, computed *there*, is the one sent is the
  file renamed (after an fsync) to its final name. A full disk, a lost connection or a killed
  transfer leave no image under the final name: the remote shell removes its temporary file
  when it fails or is hung up on, and a temporary file whose shell is gone (SIGKILL, a crash)
  is swept by the next shipment to that host.
* A file replaces a different file of the same name (rename is atomic; a running service keeps
  the old inode). A directory tree never replaces one with other contents: a service may run
  from it; that is an error naming the remote (give the new version another name: foo_1.3).

The remote needs only POSIX sh and coreutils (``sha256sum``, ``sync``, ``mv -T``), plus ``tar``
for trees, as any systemd host has. The same works for a container (``-M``), where the
transport enters its namespaces (:mod:`portable.remote.transport`).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from portable.errors import PortableError
from portable.remote.transport import Transport

__all__ = [
    "REMOTE_DIR",
    "LocalImage",
    "ShipResult",
    "file_digest",
    "local_image",
    "remote_digest",
    "ship",
    "tree_digest",
    "tree_manifest",
]

REMOTE_DIR = "/var/lib/portables"
_CHUNK = 1 << 20
_TMP_MARK = ".portable-ship."

# The manifest of a tree, in the shell: the same bytes tree_manifest() makes (see there).
_TREE_HASH_SH = (
    "{ find . -mindepth 1 \\( -type l -printf 'l %m %U %G %P -> %l\\n' \\) "
    "-o -printf '%y %m %U %G %P\\n' | LC_ALL=C sort; "
    "find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum; } | sha256sum"
)


@dataclass(frozen=True)
class LocalImage:
    """An image to ship: where it is here, its file name, ``file`` or ``tree``, its digest."""

    path: Path
    name: str
    kind: str
    digest: str
    mode: int


@dataclass(frozen=True)
class ShipResult:
    remote_path: str
    copied: bool


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _type_letter(mode: int) -> str:
    for test, letter in (
        (stat.S_ISDIR, "d"),
        (stat.S_ISREG, "f"),
        (stat.S_ISLNK, "l"),
        (stat.S_ISBLK, "b"),
        (stat.S_ISCHR, "c"),
        (stat.S_ISFIFO, "p"),
        (stat.S_ISSOCK, "s"),
    ):
        if test(mode):
            return letter
    return "U"


def tree_manifest(root: Path) -> bytes:
    """What the remote's ``find ... | sort; sha256sum ...`` prints for the tree at ``root``.

    Lines ``TYPE MODE UID GID RELPATH`` (``-> TARGET`` for symlinks; MODE in octal as find's
    ``%m``), sorted bytewise, then ``SHA256  ./RELPATH`` for each regular file, sorted by path.
    (A name with a newline makes both sides differ: such a tree is just copied every time.)
    """
    entries: list[bytes] = []
    files: list[tuple[bytes, bytes]] = []
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            letter = _type_letter(st.st_mode)
            line = b"%s %o %d %d %s" % (
                letter.encode(),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                rel,
            )
            if letter == "l":
                line += b" -> " + os.readlink(full)
            entries.append(line + b"\n")
            if letter == "f":
                files.append((b"./" + rel, full))
    out = b"".join(sorted(entries))
    for rel, full in sorted(files):
        out += f"{file_digest(Path(os.fsdecode(full)))}  ".encode() + rel + b"\n"
    return out


def tree_digest(root: Path) -> str:
    return hashlib.sha256(tree_manifest(root)).hexdigest()


def local_image(arg: str) -> LocalImage:
    """The image at path ``arg`` here, hashed; a one-line error if it is not a file or tree."""
    path = Path(arg)
    try:
        resolved = path.resolve(strict=True)
        st = os.stat(resolved)
    except OSError as e:
        raise PortableError(f"{arg}: cannot ship this image: {e.strerror or e}") from None
    name = resolved.name
    if not name or name in (".", ".."):
        raise PortableError(f"{arg}: cannot ship this image: it has no file name")
    if stat.S_ISREG(st.st_mode):
        return LocalImage(resolved, name, "file", file_digest(resolved), stat.S_IMODE(st.st_mode))
    if stat.S_ISDIR(st.st_mode):
        return LocalImage(resolved, name, "tree", tree_digest(resolved), stat.S_IMODE(st.st_mode))
    raise PortableError(
        f"{arg}: cannot ship this image: only image files and directory trees can be shipped"
    )


def remote_digest(transport: Transport, final: str) -> tuple[str, str]:
    """``(kind, digest)`` of what is at ``final`` there: kind ``file``, ``tree``, ``other``
    (digest "") or ``none`` (nothing there)."""
    f = shlex.quote(final)
    script = (
        f"f={f}\n"
        'if [ -L "$f" ]; then echo other\n'
        'elif [ -f "$f" ]; then d=$(sha256sum < "$f") && echo "file ${d%% *}"\n'
        f'elif [ -d "$f" ]; then d=$(cd "$f" && {_TREE_HASH_SH}) && echo "tree ${{d%% *}}"\n'
        'elif [ -e "$f" ]; then echo other\n'
        "else echo none; fi\n"
    )
    proc = transport.run(script)
    words = proc.stdout.decode(errors="replace").split()
    if proc.returncode != 0 or not words:
        raise transport.error(f"cannot read {final}: {_reason(proc.stderr)}")
    return words[0], words[1] if len(words) > 1 else ""


def _reason(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    text = "\n".join(lines)
    if "No space left on device" in text:
        return "no space left on device"
    return lines[-1] if lines else "failed"


def _upload_script(image: LocalImage, directory: str) -> str:
    d = shlex.quote(directory)
    n = shlex.quote(image.name)
    if image.kind == "file":
        receive = 'cat > "$tmp" || exit 91\nd=$(sha256sum < "$tmp") || exit 92\n'
        put = (
            f'chmod {image.mode:o} "$tmp" && sync -- "$tmp" && mv -f -- "$tmp" "$final" '
            "|| exit 94\n"
        )
    else:
        receive = (
            'mkdir -m 0700 -- "$tmp" || exit 91\n'
            'tar --numeric-owner -xpf - -C "$tmp" || exit 91\n'
            f'd=$(cd "$tmp" && {_TREE_HASH_SH}) || exit 92\n'
        )
        put = (
            'if [ -e "$final" ] || [ -L "$final" ]; then\n'
            '  echo "portable-ship: $final exists with other contents" >&2; exit 95\n'
            "fi\n"
            'sync && mv -T -- "$tmp" "$final" || exit 94\n'
        )
    return (
        "set -u\n"
        f"dir={d}; name={n}; want={image.digest}\n"
        'final="$dir/$name"; tmp="$dir/.$name' + _TMP_MARK + '$$"\n'
        'mkdir -p -- "$dir" || exit 90\n'
        # What shipments killed outright (SIGKILL, a crash) left: their shell is gone.
        'for f in "$dir"/.*' + _TMP_MARK + "*; do\n"
        "  pid=${f##*.}\n"
        "  case $pid in ''|*[!0-9]*) continue ;; esac\n"
        '  [ -d "/proc/$pid" ] || rm -rf -- "$f"\n'
        "done\n"
        "trap 'rm -rf -- \"$tmp\"' EXIT\n"
        "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM; trap 'exit 141' PIPE\n"
        f"{receive}"
        'if [ "${d%% *}" != "$want" ]; then\n'
        '  echo "portable-ship: the copy is incomplete (the connection was lost?)" >&2; exit 93\n'
        "fi\n"
        f"{put}"
        "trap - EXIT\n"
    )


def ship(transport: Transport, image: LocalImage, directory: str = REMOTE_DIR) -> ShipResult:
    """Make ``image`` be at ``DIRECTORY/NAME`` there; copy only if it is not there yet."""
    final = f"{directory.rstrip('/')}/{image.name}"
    kind, digest = remote_digest(transport, final)
    if kind == image.kind and digest == image.digest:
        return ShipResult(final, copied=False)
    if image.kind == "tree" and kind != "none":
        raise transport.error(
            f"{final} exists with other contents; give the new version another name "
            f"(e.g. {image.name}_2) or remove it there first"
        )
    if kind not in ("none", "file"):
        raise transport.error(f"{final} exists and is not an image file; remove it there first")
    script = _upload_script(image, directory)
    if image.kind == "file":
        with open(image.path, "rb") as f:
            proc = transport.run(script, stdin=f.fileno())
    else:
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(image.path), "-cf", "-", "."],
            stdout=subprocess.PIPE,
            # A file it cannot read cuts the stream short: the remote's digest check says so.
            stderr=subprocess.DEVNULL,
        )
        assert tar.stdout is not None
        try:
            proc = transport.run(script, stdin=tar.stdout.fileno())
        finally:
            tar.stdout.close()
            tar.wait()
    if proc.returncode != 0:
        raise transport.error(
            f"shipping {image.path} to {final} failed: {_reason(proc.stderr)} "
            "(nothing was left there)"
        )
    return ShipResult(final, copied=True)
