"""The user-facing error hierarchy.

Every error a user can cause, or a plugin can cause, is a :class:`PortableError`. The CLI turns
one into a single line ``portable: error: <message>`` and exits with ``exit_code``; anything else is
a bug and gets a traceback only with ``--debug``. What does not stop a command is a warning:
:func:`warn`, the one way core and plugins print one.
"""

from __future__ import annotations

import sys

__all__ = [
    "AmbiguousImageFormat",
    "AttachRefused",
    "BadImage",
    "DetachRefused",
    "ImageNotFound",
    "PluginConflict",
    "PluginError",
    "PortableError",
    "UnknownImageFormat",
    "UnknownProfile",
    "warn",
]


def warn(message: str) -> None:
    """Tell the user about a problem that does not stop the command: one line
    ``portable: warning: <message>`` on stderr (flushed, so it keeps its place among the
    command's other lines). For plugins too (``from portable import warn``)."""
    sys.stderr.write(f"portable: warning: {message}\n")
    sys.stderr.flush()


class PortableError(Exception):
    """A problem the user (or a plugin) can fix; shown as one line, never as a traceback."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class PluginError(PortableError):
    """A plugin misbehaved: failed to load, returned a bad object, or raised."""


class PluginConflict(PluginError):
    """Two plugins provide the same format or profile name."""


class ImageNotFound(PortableError):
    """No image of that name in the search path, or no such path."""


class BadImage(PortableError):
    """The image exists but can't be used: no os-release, unsafe symlink, no matching units..."""


class UnknownImageFormat(BadImage):
    """No image format plugin recognises the file."""


class AmbiguousImageFormat(BadImage):
    """More than one image format plugin claims the file."""


class UnknownProfile(PortableError):
    """The requested security profile does not exist (or its plugin failed to load)."""


class AttachRefused(PortableError):
    """Raised by a ``portable_pre_attach`` hook (or the engine) to refuse an attach.

    Nothing has been written when a pre-attach hook raises it.
    """


class DetachRefused(PortableError):
    """Raised by a ``portable_pre_detach`` hook (or the engine) to refuse a detach."""
