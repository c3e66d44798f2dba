"""Profiles found where systemd looks for them, so existing custom profiles keep working.

systemd 252 looks for profiles in (first hit wins)::

    /etc/systemd/portable/profile/NAME/
    /run/systemd/portable/profile/NAME/
    /usr/local/lib/systemd/portable/profile/NAME/
    /usr/lib/systemd/portable/profile/NAME/

Which names exist follows systemd's listing (``portablectl attach -p help``): every
sub-directory, the first directory holding a name wins, hidden and backup entries
(``.foo``, ``foo~``, ``foo.dpkg-old``, ...) are ignored, and a *masking* entry (a symlink to
``/dev/null``, any character device, or an empty file) hides the name in that directory and all
later ones.

Which file a unit gets follows systemd's lookup at attach time, which is per unit type: for a
``.socket`` unit it takes the first ``NAME/socket.conf`` in the search order, even from a later
directory than the one that provided the name. So an admin's ``/etc/.../default/socket.conf``
adds a socket drop-in while services still get ``/usr/lib/.../default/service.conf``, as with
portablectl. Unit types: service, socket, target, timer, path.

Priorities (see :attr:`portable.Profile.priority`) follow the directory that provided the name:
``/etc`` 30, ``/run`` 20, ``/usr/local/lib`` 10, ``/usr/lib`` -10. An admin's profile overrides a
plugin's of the same name; systemd's own ``/usr/lib`` copies of the four built-ins do not.

Files are read below ``root`` (``--root``), but ``ProfileDropin.path`` and ``Profile.origin`` are
host paths as systemd sees them, since that is what an attached ``10-profile.conf`` symlink must
point to. Reads are bounded: a drop-in over 1 MiB, or one that is not a regular file (a FIFO, a
device), is skipped with a warning rather than read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from portable import plugin
from portable.plugin import (
    PORTABLE_UNIT_TYPES,
    Host,
    PluginError,
    hookimpl,
    validate_profile_name,
    warn,
)

if TYPE_CHECKING:
    from portable.plugin import Profile, ProfileDropin

__all__ = [
    "MAX_DROPIN_SIZE",
    "PRIORITIES",
    "PROFILE_DIRS",
    "describe",
    "portable_profiles",
    "read_dropin",
]

# systemd's profile search directories, first hit wins (spec 3.8), and the priority of the
# profiles found in each.
PRIORITIES = {
    "/etc/systemd/portable/profile": 30,
    "/run/systemd/portable/profile": 20,
    "/usr/local/lib/systemd/portable/profile": 10,
    "/usr/lib/systemd/portable/profile": -10,
}
PROFILE_DIRS = tuple(PRIORITIES)

MAX_DROPIN_SIZE = 1024 * 1024

# systemd's hidden_or_backup_file(): entries its directory listing never returns.
_BACKUP_SUFFIXES = frozenset(
    {
        "rpmnew",
        "rpmsave",
        "rpmorig",
        "dpkg-old",
        "dpkg-new",
        "dpkg-tmp",
        "dpkg-dist",
        "dpkg-bak",
        "dpkg-backup",
        "dpkg-remove",
        "ucf-new",
        "ucf-old",
        "ucf-dist",
        "swp",
        "bak",
        "old",
        "new",
    }
)


def describe(text: str) -> str | None:
    """A one-line description from the leading comment block of a profile drop-in, if any.

    systemd's files open with a comment saying what the profile is for; newer versions put an
    ``SPDX-License-Identifier`` line first, which is no description, so it is passed over. Only
    comments before the first setting or section count: later ones describe a single setting.
    """
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] not in "#;":
            break
        comment = stripped.lstrip("#;").strip()
        if comment and not comment.startswith("SPDX-License-Identifier:"):
            return comment
    return None


def _hidden_or_backup(name: str) -> bool:
    if name.startswith(".") or name.endswith("~"):
        return True
    if name in ("lost+found", "aquota.user", "aquota.group"):
        return True
    return "." in name and name.rsplit(".", 1)[1] in _BACKUP_SUFFIXES


def _is_mask(st: os.stat_result) -> bool:
    # systemd's null_or_empty(): any character device counts, not only /dev/null's numbers.
    return stat.S_ISCHR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_size == 0)


# A NamedTuple: every command loads this module, and a dataclass costs ~0.4 ms to build.
class _Found(NamedTuple):
    name: str
    dir_index: int


def _list_profiles(host: Host) -> list[_Found]:
    """Profile names and the directory each comes from, as systemd lists them."""
    found: dict[str, _Found] = {}
    masked: set[str] = set()
    for index, host_dir in enumerate(PROFILE_DIRS):
        local_dir = host.path(host_dir)
        try:
            entries = sorted(entry.name for entry in local_dir.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            warn(f"cannot list profile directory {host_dir}: {exc.strerror}")
            continue
        for name in entries:
            if _hidden_or_backup(name) or name in found or name in masked:
                continue
            try:
                # Follows symlinks: a symlinked profile directory is fine, a dangling one is not.
                st = (local_dir / name).stat()
            except OSError:
                continue
            if _is_mask(st):
                masked.add(name)
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                name.encode("utf-8")
                validate_profile_name(name)
            except (UnicodeEncodeError, PluginError):
                # repr(): the name may hold control characters or undecodable bytes.
                warn(f"ignoring profile {host_dir + '/' + name!r}: not a valid name")
                continue
            found[name] = _Found(name, index)
    return [found[name] for name in sorted(found)]


def read_dropin(local: Path, host_path: str) -> str | None:
    """The drop-in's text, or None (after a warning) if it is not a regular file or too big."""
    try:
        # stat first so a FIFO or device is never opened (opening some devices has effects).
        if not stat.S_ISREG(local.stat().st_mode):
            warn(f"ignoring profile drop-in {host_path}: not a regular file")
            return None
        # O_NONBLOCK: should the file be swapped for a FIFO after the stat, open() must not
        # wait for a writer. Symlinks are followed: a symlinked drop-in is legitimate.
        fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        warn(f"ignoring profile drop-in {host_path}: {exc.strerror}")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            warn(f"ignoring profile drop-in {host_path}: not a regular file")
            return None
        if st.st_size > MAX_DROPIN_SIZE:
            warn(f"ignoring profile drop-in {host_path}: larger than {MAX_DROPIN_SIZE} bytes")
            return None
        # Read one byte more than allowed: the file may have grown since fstat.
        data = f.read(MAX_DROPIN_SIZE + 1)
    if len(data) > MAX_DROPIN_SIZE:
        warn(f"ignoring profile drop-in {host_path}: larger than {MAX_DROPIN_SIZE} bytes")
        return None
    # surrogateescape keeps any non-UTF-8 byte, so encoding back gives the file's exact bytes.
    return data.decode("utf-8", "surrogateescape")


def _find_dropin(host: Host, found: _Found, unit_type: str) -> ProfileDropin | None:
    """systemd's find_portable_profile(): the first existing ``NAME/<type>.conf``."""
    for host_dir in PROFILE_DIRS[found.dir_index :]:
        host_path = f"{host_dir}/{found.name}/{unit_type}.conf"
        local = host.path(host_path)
        try:
            local.lstat()
        except (FileNotFoundError, NotADirectoryError):
            # Not here (or NAME is no directory here, e.g. masked): look further, as systemd does.
            continue
        except OSError as exc:
            warn(f"ignoring profile drop-in {host_path}: {exc.strerror}")
            return None
        # The first file that exists is the one systemd would use; if it is unusable, falling
        # back to a later directory's file would apply settings the admin did not choose.
        text = read_dropin(local, host_path)
        # plugin.X at call time: the profile types and floors are built only by commands that
        # collect profiles (not detach)
        return None if text is None else plugin.ProfileDropin(text=text, path=Path(host_path))
    return None


@hookimpl
def portable_profiles(root: Path) -> list[Profile]:
    """Every profile in systemd's profile directories below ``root``."""
    host = Host(root)
    profiles = []
    for found in _list_profiles(host):
        host_dir = PROFILE_DIRS[found.dir_index]
        origin = f"{host_dir}/{found.name}"
        dropins = {}
        for unit_type in PORTABLE_UNIT_TYPES:
            dropin = _find_dropin(host, found, unit_type)
            if dropin is not None:
                dropins[unit_type] = dropin
        description = None
        for unit_type in PORTABLE_UNIT_TYPES:  # service first: it is the file systemd ships
            if unit_type in dropins:
                description = describe(dropins[unit_type].text)
                break
        profiles.append(
            plugin.Profile(
                name=found.name,
                description=description or f"profile from {host_dir}",
                dropins=dropins,
                priority=PRIORITIES[host_dir],
                origin=origin,
                # A file replacing one of systemd's four promises what that one does.
                floor=plugin.builtin_floor(found.name),  # (as ProfileDropin above)
            )
        )
    return profiles
