"""The host's file-system layout, as systemd 252 defines it, below a root directory.

Everything that reads or writes the host goes through a :class:`Host`, so ``--root DIR`` runs
the whole tool against an alternate tree (files only: no service manager is contacted).
Paths in this module are *host* paths as systemd sees them (``/etc/portables``); ``Host.path()``
maps one to where this process finds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from portable.images.confined import open_root, resolve_path

__all__ = [
    "ATTACHED_DIR",
    "IMAGE_SEARCH_PATH",
    "PORTABLES_DIR",
    "UNIT_SEARCH_PATH",
    "UNPACK_DIR",
    "Host",
]

# Image search path (class "portable"), in order (spec 1.3).
IMAGE_SEARCH_PATH = (
    "/etc/portables",
    "/run/portables",
    "/var/lib/portables",
    "/usr/local/lib/portables",
    "/usr/lib/portables",
)

# Where attach puts unit files and the image link: persistent / runtime (spec 3.3, 3.9).
ATTACHED_DIR = {False: "/etc/systemd/system.attached", True: "/run/systemd/system.attached"}
PORTABLES_DIR = {False: "/etc/portables", True: "/run/portables"}
# Where archive images are unpacked for the service manager (portable.images.unpacked).
UNPACK_DIR = {
    False: "/var/cache/portable-services/unpacked",
    True: "/run/portable-services/unpacked",
}

# The system unit search path: used inside images to discover units (spec 2.3) and on the host
# to refuse a unit name that exists already (spec 3.2 step 7). Debian lists /lib before /usr/lib.
UNIT_SEARCH_PATH = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
)


_SLASH = Path("/")


@dataclass(frozen=True, slots=True)
class Host:
    """A host root: ``/`` for the real system, or the directory given with ``--root``."""

    root: Path = Path("/")

    @property
    def is_real(self) -> bool:
        """True when this is the running system (so the service manager may be contacted)."""
        return self.root == _SLASH  # not Path("/") per call: hot (once per file of an attach)

    def path(self, host_path: str) -> Path:
        """Where this process finds ``host_path`` (an absolute path as systemd sees it)."""
        if self.is_real:
            return Path(host_path)
        return self.root / host_path.lstrip("/")

    def unpath(self, local: Path) -> str:
        """The inverse of :meth:`path`: the host's view of a local path below the root."""
        if self.is_real:
            return str(local)
        # As local.relative_to(root) (lexical too), without its cost: once per change recorded
        s, root = str(local), str(self.root)
        if s == root:
            return "/"
        if not s.startswith(root + "/"):
            raise ValueError(f"{s!r} is not below {root!r}")
        return s[len(root) :]

    def resolve(self, host_path: str) -> Path | None:
        """Where ``host_path`` leads with every symlink followed, or ``None`` if nowhere.

        On the real host the kernel follows links. Below ``--root`` links are resolved inside
        the root (an absolute target means a path in the root), as systemd does with --root.
        """
        if self.is_real:
            return Path(host_path) if os.path.exists(host_path) else None
        with open_root(self.root) as fd:
            inside = resolve_path(fd, host_path)
        return None if inside is None else self.path(inside)

    def os_release_path(self) -> str:
        """The host os-release that portabled binds into services (spec 3.4 ``<HOSTOSREL>``)."""
        return "/etc/os-release" if self.path("/etc/os-release").exists() else "/usr/lib/os-release"
