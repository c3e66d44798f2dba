"""What attach, reattach, detach and inspect check in their arguments before they run:
several images or prefixes, a name that is also a file here, --reload with --no-reload.

Click-free: the verbs' bodies (:mod:`portable.cli.verbs`) run on the fast path too.
"""

from __future__ import annotations

from pathlib import Path

from portable.cli import App
from portable.errors import PortableError
from portable.images.arguments import is_name

__all__ = ["check_reload_flags", "split_images", "warn_if_ambiguous"]


def split_images(image: str, rest: tuple[str, ...]) -> tuple[list[str], tuple[str, ...]]:
    """``IMAGE [PREFIX...]`` or ``IMAGE IMAGE...``: a prefix never contains ``/``, so extra
    arguments that do are more images (several images in one call share one reload)."""
    more = [a for a in rest if "/" in a]
    if not more:
        return [image], rest
    if len(more) != len(rest):
        raise PortableError(
            "give either one IMAGE with PREFIX arguments, or several images as paths "
            "(a PREFIX never contains '/')"
        )
    images = [image, *rest]
    if len(set(images)) != len(images):
        raise PortableError("an image is given twice")
    return images, ()


def warn_if_ambiguous(app: App, arg: str, quiet: bool) -> None:
    """portablectl's warning when a bare name also exists as a file in the current directory."""
    if is_name(arg) and not quiet and Path(arg).exists():
        app.info(
            "Ambiguous invocation: current working directory contains file matching non-path "
            f"argument '{arg}', ignoring. Prefix argument with './' to force reference to file "
            "in current working directory."
        )


def check_reload_flags(no_reload: bool, force_reload: bool) -> None:
    if no_reload and force_reload:
        raise PortableError("--reload and --no-reload can't be used together")
