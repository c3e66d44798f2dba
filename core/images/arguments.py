"""IMAGE arguments: a name (looked up in the search path later) or a path, made canonical.

An argument without ``/`` that is a valid image name is a *name* (spec 1.4); anything else is a
*path*, made absolute and canonical (spec 1.5, 1.7), inside the root with ``--root``. Detach and
``is-attached`` (the CLI's fast path) need nothing more: no registry, no image formats (those
are :mod:`portable.images.resolve`'s, which turns an argument into an
:class:`~portable.plugin.types.Image`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from portable.errors import BadImage, ImageNotFound, PortableError
from portable.images.confined import open_root, resolve_path
from portable.systemd.host import Host
from portable.systemd.names import (
    extract_prefix,
    has_control,
    is_valid_image_name,
    printable,
    printable_path,
)

__all__ = [
    "canonical_path",
    "check_image_arg",
    "derived_prefixes",
    "effective_prefixes",
    "image_path",
    "is_name",
    "normalize_image_arg",
    "pick_version",
]


def is_name(arg: str) -> bool:
    """portablectl's rule: an argument that is a valid image name is a name, else a path."""
    return is_valid_image_name(arg)


def check_image_arg(arg: str) -> None:
    """Refuse an empty IMAGE argument, in systemd's words (it would mean the current directory
    or the root)."""
    if not arg:
        raise ImageNotFound("Cannot normalize specified image path '': Invalid argument")


def effective_prefixes(arg: str, prefixes: Sequence[str], *, systemd: int) -> tuple[str, ...]:
    """The explicit prefixes, or the one derived from the image argument as typed (spec 2.4)
    by systemd ``systemd``'s rules."""
    check_image_arg(arg)  # systemd's error for '' before a prefix error
    return tuple(prefixes) if prefixes else (extract_prefix(arg, systemd=systemd),)


def derived_prefixes(arg: str, systemd: int) -> tuple[str, ...]:
    """The unit name prefix portablectl derives from the image argument (:func:`extract_prefix`),
    or none for a name it derives none from: what the image's own names start with."""
    try:
        return (extract_prefix(arg, systemd=systemd),)
    except PortableError:
        return ()


def canonical_path(arg: str, *, host: Host, cwd: Path | None = None) -> str | None:
    """The canonical host path of a PATH argument, or ``None`` if it does not exist.

    Relative paths are taken from the current directory. With ``--root`` an absolute path means
    a path inside the root, and a relative one must lead below the root.
    """
    cwd = cwd or Path.cwd()
    if host.is_real:
        absolute = os.path.normpath(os.path.join(cwd, arg))
        real = os.path.realpath(absolute)
        return real if os.path.lexists(real) else None
    if arg.startswith("/"):
        inside = arg
    else:
        local = Path(os.path.normpath(os.path.join(cwd, arg)))
        try:
            inside = host.unpath(local)
        except ValueError:
            raise ImageNotFound(
                f"image path '{printable(arg)}' is outside the --root directory"
            ) from None
    with open_root(host.root) as rfd:
        return resolve_path(rfd, inside)


def _check_utf8(path: str) -> None:
    """Refuse a path that is not UTF-8, in portablectl's words (sd-bus refuses to send it).

    systemd ignores a unit-file line that is not UTF-8: the image's ``RootDirectory=`` would
    be dropped and the service would run on the host's root.
    """
    try:
        path.encode("utf-8")  # strict: bytes os.fsdecode() surrogate-escaped are not UTF-8
    except UnicodeEncodeError:
        raise BadImage(
            "Failed to create bus message: Invalid argument (image path "
            f"'{printable_path(path)}' is not valid UTF-8, which systemd can't use in a unit file)"
        ) from None


def pick_version(arg: str, *, host: Host, cwd: Path | None = None) -> str:
    """A PATH argument with a versioned directory (``foo.v/``) replaced by the image it stands
    for, on systemd 256 and later (:mod:`portable.images.vpick`); any other argument as it is."""
    if ".v" not in arg or is_name(arg):
        return arg
    # Only for a foo.v path: is-attached (the CLI's fast path) comes through here, ~2 ms.
    from portable.images.vpick import MIN_SYSTEMD, is_versioned, pick
    from portable.systemd.version import detect

    cwd = cwd or Path.cwd()
    if arg.startswith("/"):
        absolute = arg
    elif host.is_real:
        absolute = os.path.join(cwd, arg)
    else:
        try:
            absolute = host.unpath(Path(os.path.normpath(os.path.join(cwd, arg))))
        except ValueError:
            return arg  # outside the root: canonical_path says so
    slash = "/" if absolute.endswith("/") else ""
    absolute = os.path.normpath(absolute) + slash
    if not is_versioned(absolute) or detect(host).major < MIN_SYSTEMD:
        return arg
    return pick(absolute, host=host)


def normalize_image_arg(arg: str, *, host: Host, cwd: Path | None = None, pick: bool = True) -> str:
    """An IMAGE argument as detach and is-attached use it: a name as is, a path made canonical
    if it exists and absolute otherwise (a deleted image can still be detached, spec 1.7); a
    versioned directory (``foo.v/``) replaced by its pick on systemd 256+ unless not ``pick``."""
    check_image_arg(arg)
    if is_name(arg):
        return arg
    if pick:
        arg = pick_version(arg, host=host, cwd=cwd)
    path = canonical_path(arg, host=host, cwd=cwd)
    if path is not None:
        return path
    if arg.startswith("/") or not host.is_real:
        return os.path.normpath(arg if arg.startswith("/") else "/" + arg)
    return os.path.normpath(os.path.join(cwd or Path.cwd(), arg))


def image_path(arg: str, *, host: Host, cwd: Path | None = None) -> str:
    """The canonical host path of the image a PATH argument names (a versioned directory
    replaced by its pick), as attach and inspect take it, or a one-line error: no such file, a
    path that is not UTF-8 or holds control characters (it goes into the unit files as it is)."""
    _check_utf8(arg)
    arg = pick_version(arg, host=host, cwd=cwd)
    path = canonical_path(arg, host=host, cwd=cwd)
    if path is None:
        message = (
            f"Cannot normalize specified image path '{printable(arg)}': No such file or directory"
        )
        if not host.is_real and arg.startswith("/"):
            # With --root an absolute path is inside the root: say so (the file may well
            # exist at the same path outside it).
            root, inside = printable(str(host.root)), printable(str(host.path(arg)))
            message += f" (looked up below --root {root}: {printable(arg)} is {inside})"
        raise ImageNotFound(message)
    _check_utf8(path)
    if has_control(path):
        # The path goes into 20-portable.conf (RootDirectory=, PORTABLE=...) as it is: a
        # newline in it would add settings. systemd refuses such image names too.
        raise BadImage(f"Image path '{printable(path)}' contains control characters, refusing.")
    return path
