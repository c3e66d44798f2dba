"""Debian OS trees for the test box, built once with ``mmdebstrap`` and cached.

The test box (:mod:`portable.testing.box`) boots one of a few Debian releases, named by a
*distro id*: ``debian-12`` (bookworm, systemd 252) or ``debian-13`` (trixie, systemd 257). The
release this machine runs is booted from its own ``/``; any other comes from a minimal root that
:func:`ensure_root` builds with ``mmdebstrap`` into::

    /var/cache/portable-services/rootfs/<distro>-<12 hex digits of the recipe>

Only the recipe (:class:`Recipe`: suite, packages, variant, mirror, dpkg options, customise
hooks) decides whether a cached root can be used: a changed recipe gets a new directory and the
old ones of that distro are removed; an unchanged one is never rebuilt. A root is built in a
temporary directory next to the cache and renamed into place when complete, under a lock, so two
processes asking at once build it once, and an interrupted build leaves nothing that looks
usable. From the shell (what ``.ci/setup.sh`` runs)::

    python -m portable.testing.rootfs debian-13     # build if needed; print "debian-13 PATH"
    python -m portable.testing.rootfs               # every box PORTABLE_TEST_BOXES selects

The box binds this machine's Python into the root and runs it there, so a root must provide the
shared libraries that interpreter loads (libssl, libsqlite3, libffi ...), and its glibc must not
be older than the one the interpreter was built for (the box checks that before booting).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "BOXES_ENV",
    "BOX_ENV_VAR",
    "CACHE_DIR",
    "DEFAULT_BOXES",
    "HOST",
    "RECIPES",
    "Recipe",
    "RootfsError",
    "cached_root",
    "ensure_root",
    "host_distro",
    "parse_distros",
    "tree_for",
    "tree_glibc_version",
    "tree_systemd_version",
]

CACHE_DIR = Path("/var/cache/portable-services/rootfs")
CACHE_ENV = "PORTABLE_ROOTFS_CACHE"  # another cache directory (tests, machines without /var/cache)
BOX_ENV_VAR = "PORTABLE_TEST_BOX"  # the distro a Box() boots when none is given
BOXES_ENV = "PORTABLE_TEST_BOXES"  # the distros the test suite runs its box tests on
DEFAULT_BOXES = "debian-12,debian-13"
HOST = "host"  # a distro id too: this machine's own / whatever it runs (non-Debian hosts)
MIRROR = "http://deb.debian.org/debian"
# Bump to rebuild every root when what this module does with a recipe changes.
_FORMAT = 1
_STAMP = ".portable-rootfs.json"  # the recipe, written into the root's top directory
_LOG_TAIL = 3

# What the box needs inside, besides systemd itself: portablectl (systemd-container), a bus,
# the image tools the tests use, sshd for the test fleet (portable.testing.fleet), and the
# shared libraries of the host's Python build.
_COMMON = (
    "systemd",
    "systemd-container",
    "dbus",
    "squashfs-tools",
    "erofs-utils",
    "e2fsprogs",
    "busybox-static",
    "iproute2",
    "python3",
    "libsqlite3-0",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "zlib1g",
    "libuuid1",
    "libncursesw6",
    "mount",
    "util-linux",
    "procps",
    "openssh-server",
)
# Only /usr of a root is used (the box's /etc, /var ... are a fresh tmpfs): leave out what no test
# reads, which also makes the build faster.
_SLIM = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)


class RootfsError(RuntimeError):
    """A root could not be built or found; the message is one line."""


@dataclass(frozen=True)
class Recipe:
    """How to build one distro's root. Every field but ``systemd`` is part of the cache key."""

    distro: str
    suite: str
    release: int
    systemd: int  # the systemd major version the suite ships (test ids; checked by the tests)
    packages: tuple[str, ...]
    variant: str = "minbase"
    mirror: str = MIRROR
    dpkg_options: tuple[str, ...] = _SLIM
    customize: tuple[str, ...] = ()  # shell commands run by mmdebstrap at the end; $1 = the root

    def digest(self) -> str:
        """12 hex digits naming this recipe's cached root."""
        inputs = {k: v for k, v in asdict(self).items() if k != "systemd"}
        blob = json.dumps({"format": _FORMAT, **inputs}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def mmdebstrap_command(self, target: Path) -> list[str]:
        return [
            "mmdebstrap",
            "--mode=root",
            f"--variant={self.variant}",
            f"--include={','.join(self.packages)}",
            '--aptopt=Acquire::Languages "none"',
            *(f"--dpkgopt={o}" for o in self.dpkg_options),
            *(f"--customize-hook={c}" for c in self.customize),
            self.suite,
            str(target),
            self.mirror,
        ]


RECIPES: dict[str, Recipe] = {
    "debian-12": Recipe(
        distro="debian-12",
        suite="bookworm",
        release=12,
        systemd=252,
        # systemd-repart is still part of the systemd package in bookworm.
        packages=(*_COMMON, "libssl3"),
    ),
    "debian-13": Recipe(
        distro="debian-13",
        suite="trixie",
        release=13,
        systemd=257,
        packages=(*_COMMON, "systemd-repart", "libssl3t64"),
    ),
}


def host_distro(root: Path = Path("/")) -> str | None:
    """The distro id of the Debian release ``root`` runs (``/etc/debian_version``), or None."""
    try:
        version = (root / "etc/debian_version").read_text().strip()
    except OSError:
        return None
    major = version.split(".")[0]
    if major.isdigit():
        release = int(major)
        return next((d for d, r in RECIPES.items() if r.release == release), None)
    # Testing/unstable say "trixie/sid": the codename of the release being prepared.
    suite = version.split("/")[0]
    return next((d for d, r in RECIPES.items() if r.suite == suite), None)


def parse_distros(spec: str) -> list[str]:
    """``"debian-12,debian-13"`` -> the ids, checked; raises RootfsError for an unknown one."""
    ids = [d.strip() for d in spec.split(",") if d.strip()]
    for d in ids:
        if d not in RECIPES and d != HOST:
            known = ", ".join([*RECIPES, HOST])
            raise RootfsError(f"unknown test box distro {d!r} (known: {known})")
    if not ids:
        raise RootfsError("no test box distro selected")
    return list(dict.fromkeys(ids))


def _cache_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return cache_dir
    return Path(os.environ.get(CACHE_ENV) or CACHE_DIR)


def cached_root(recipe: Recipe, cache_dir: Path | None = None) -> Path | None:
    """The complete cached root of ``recipe``, or None if it has not been built."""
    path = _cache_dir(cache_dir) / f"{recipe.distro}-{recipe.digest()}"
    return path if path.is_dir() else None


Builder = Callable[[Recipe, Path, Path], None]
"""``build(recipe, empty_target_dir, log_file)``; raises RootfsError on failure."""


def _mmdebstrap(recipe: Recipe, target: Path, log: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        raise RootfsError(
            f"mmdebstrap is not installed (apt-get install mmdebstrap); "
            f"it builds the {recipe.distro} root of the test box"
        )
    if os.geteuid() != 0:
        raise RootfsError(f"building the {recipe.distro} root of the test box needs root")
    with log.open("w") as out:
        proc = subprocess.run(
            recipe.mmdebstrap_command(target),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        tail = " | ".join(lines[-_LOG_TAIL:]) or "no output"
        raise RootfsError(
            f"mmdebstrap failed to build the {recipe.distro} root (exit {proc.returncode}, "
            f"log {log}): {tail}"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_root_dir_of(name: str, distro: str) -> bool:
    return re.fullmatch(re.escape(distro) + r"-[0-9a-f]{12}", name) is not None


def _remove_tree(path: Path) -> None:
    # A build killed half-way may leave mmdebstrap's /proc, /sys or /dev mounts in its target:
    # removing files below those would reach the host's.
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4].encode().decode("unicode_escape") for line in f]
    if any(m == str(path) or m.startswith(prefix) for m in mounts):
        raise RootfsError(f"{path} has mounts below it (a killed build?); run umount -R {path}")
    shutil.rmtree(path, ignore_errors=True)


def ensure_root(
    recipe: Recipe, cache_dir: Path | None = None, *, build: Builder | None = None
) -> Path:
    """The cached root of ``recipe``, built first if it is missing (see the module docstring)."""
    cache = _cache_dir(cache_dir)
    final = cache / f"{recipe.distro}-{recipe.digest()}"
    if final.is_dir():  # complete: it only appears by the rename below
        return final
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RootfsError(f"cannot create the test box root cache {cache}: {e.strerror}") from e
    with _locked(cache / ".lock"):
        # Whatever starts with a dot here, but the lock, is an earlier build or removal that
        # was killed: nobody else can be working while we hold the lock.
        for stale in cache.glob(".*"):
            if stale.name != ".lock" and stale.is_dir():
                _remove_tree(stale)
        if not final.is_dir():  # another process may have built it while we waited
            tmp = cache / f".build-{final.name}"
            tmp.mkdir()
            try:
                (build or _mmdebstrap)(recipe, tmp, cache / f"{recipe.distro}-build.log")
                stamp = {"format": _FORMAT, "digest": recipe.digest(), **asdict(recipe)}
                (tmp / _STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
                tmp.rename(final)
            except BaseException:
                with contextlib.suppress(RootfsError):  # the build's own error says more
                    _remove_tree(tmp)
                raise
        for old in cache.iterdir():
            if old != final and _is_root_dir_of(old.name, recipe.distro):
                # Renamed first, so a half-removed tree never looks like a complete root.
                trash = cache / f".old-{old.name}"
                old.rename(trash)
                _remove_tree(trash)
    return final


def tree_for(distro: str, cache_dir: Path | None = None, *, build: bool = True) -> Path:
    """The OS tree a box of ``distro`` boots: ``/`` if this machine runs it, else its root.

    With ``build=False`` a root that is not cached yet raises RootfsError instead of being built.
    """
    if distro == HOST or distro == host_distro():
        return Path("/")
    recipe = RECIPES.get(distro)
    if recipe is None:
        parse_distros(distro)  # raises, naming the known ids
        raise AssertionError(distro)
    if not build:
        root = cached_root(recipe, cache_dir)
        if root is None:
            raise RootfsError(f"the {distro} root of the test box is not built yet")
        return root
    return ensure_root(recipe, cache_dir)


def tree_systemd_version(tree: Path) -> int | None:
    """The systemd major version installed in an OS tree (from libsystemd-shared-NNN.so)."""
    for lib in ("usr/lib/systemd", "usr/lib/*/systemd", "usr/lib64/systemd"):
        for path in tree.glob(f"{lib}/libsystemd-shared-*.so"):
            match = re.fullmatch(r"libsystemd-shared-(\d+)\S*\.so", path.name)
            if match:
                return int(match.group(1))
    return None


def tree_glibc_version(tree: Path) -> tuple[int, int] | None:
    """The glibc version of an OS tree (the banner in its libc.so.6), or None if not found."""
    for pattern in ("usr/lib/*/libc.so.6", "usr/lib64/libc.so.6", "usr/lib/libc.so.6"):
        for path in tree.glob(pattern):
            with contextlib.suppress(OSError):
                match = re.search(rb"release version (\d+)\.(\d+)", path.read_bytes())
                if match:
                    return int(match.group(1)), int(match.group(2))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m portable.testing.rootfs",
        description="Build (if needed) the cached Debian roots of the test box; print their "
        "paths. Without DISTRO: the ones the test suite uses "
        f"(${BOXES_ENV}, default {DEFAULT_BOXES}).",
    )
    parser.add_argument("distros", nargs="*", metavar="DISTRO", help=", ".join(RECIPES))
    args = parser.parse_args(argv)
    try:
        distros = args.distros or parse_distros(os.environ.get(BOXES_ENV) or DEFAULT_BOXES)
        for distro in parse_distros(",".join(distros)):
            print(distro, tree_for(distro), flush=True)
    except RootfsError as e:
        print(f"rootfs: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
