"""A pager for long output on a terminal, chosen and set up as systemd's tools do.

Used as ``with Pager(enabled=not no_pager): ...write to sys.stdout...``: on a terminal, fd 1
and fd 2 go into the pager's stdin for the block, and the pager is waited for at its end.
Anything else (a pipe, a file, ``TERM=dumb``, ``--no-pager``, ``SYSTEMD_PAGER=cat``, a pager
that can't be started) leaves the output alone, byte for byte.

As systemd's pager (src/shared/pager.c): ``$SYSTEMD_PAGER``, else ``$PAGER``; either set to
``cat`` or to nothing turns paging off. Otherwise they are used only when
``$SYSTEMD_PAGERSECURE`` is set (a root tool must not start whatever pager a sudo'ed
environment names); then ``pager``, ``less``, ``more``, and in secure mode (``$SUDO_UID`` set,
or not running as the login session's owner, or ``SYSTEMD_PAGERSECURE=1``) only ``less``,
with ``LESSSECURE=1``. ``less`` gets ``LESS`` from ``$SYSTEMD_LESS``, default ``FRSXMK``.

This module imports only ``os`` and ``sys`` until a pager is actually started; callers on the
fast path check :func:`os.isatty` first all the same.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

__all__ = ["Pager"]

LESS_DEFAULT = "FRSXMK"
_FALLBACKS = ("pager", "less", "more")  # Debian's alternative first, as systemd
_TRUE = ("1", "yes", "y", "true", "t", "on")
_FALSE = ("0", "no", "n", "false", "f", "off")


def _bool_env(name: str) -> bool | ValueError | None:
    """systemd's parse_boolean() of ``$name``: ``None`` when unset, ``ValueError`` if garbled."""
    value = os.environ.get(name)
    if value is None:
        return None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    return ValueError(value)


def _escalated() -> bool:
    """systemd's running_with_escalated_privileges(): under sudo, or the effective uid is not
    the owner of the login session (the ``user-UID.slice`` of our cgroup); unknown: yes."""
    if "SUDO_UID" in os.environ:
        return True
    try:
        with open("/proc/self/cgroup") as f:
            cgroups = f.read()
    except OSError:
        return True
    for line in cgroups.splitlines():
        for part in line.split(":", 2)[-1].split("/"):
            if part.startswith("user-") and part.endswith(".slice"):
                uid = part[len("user-") : -len(".slice")]
                if uid.isdigit():
                    return int(uid) != os.geteuid()
    return True


def _utf8_locale() -> bool:
    """systemd's is_locale_utf8(), near enough: ``$SYSTEMD_UTF8``, else the codeset."""
    forced = _bool_env("SYSTEMD_UTF8")
    if isinstance(forced, bool):
        return forced
    import locale  # here: only once a pager starts

    codeset = locale.nl_langinfo(locale.CODESET)
    return codeset == "UTF-8" or locale.setlocale(locale.LC_CTYPE) in ("C", "POSIX")


def _wanted() -> bool:
    """Page at all: stdout and stderr a terminal (systemd's on_tty()), ``TERM`` not dumb."""
    if not (os.isatty(1) and os.isatty(2)):
        return False
    return os.environ.get("TERM", "dumb") != "dumb"


class Pager:
    """Context manager: the block's stdout and stderr through a pager, on a terminal."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.process: subprocess.Popen[bytes] | None = None
        self._saved: list[tuple[int, int]] = []
        self._sigint: object = None

    def __enter__(self) -> Pager:
        if not self.enabled or not _wanted():
            return self
        configured = os.environ.get("SYSTEMD_PAGER")
        if configured is None:
            configured = os.environ.get("PAGER")
        args = configured.split() if configured is not None else None
        if args is not None and (not args or args == ["cat"]):
            return self  # explicitly off
        self._start(args)
        return self

    def _start(self, args: list[str] | None) -> None:
        import subprocess  # here: only once a pager starts

        less = os.environ.get("SYSTEMD_LESS", LESS_DEFAULT)
        env = dict(os.environ, LESS=less)
        charset = os.environ.get("SYSTEMD_LESSCHARSET")
        if charset is None and _utf8_locale():
            charset = "utf-8"
        if charset is not None:
            env["LESSCHARSET"] = charset
        secure = _bool_env("SYSTEMD_PAGERSECURE")
        trusted = isinstance(secure, bool)
        if secure is None:
            secure = _escalated()
        elif isinstance(secure, ValueError):
            secure = True
        if secure:
            env["LESSSECURE"] = "1"
        else:
            env.pop("LESSSECURE", None)
        candidates = [args] if trusted and args else []
        candidates += [[name] for name in _FALLBACKS if not secure or name == "less"]
        for argv in candidates:
            try:
                self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
            except OSError:
                continue  # the next one; none at all: the output goes out directly
            break
        else:
            return
        assert self.process.stdin is not None
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            self._saved.append((fd, os.dup(fd)))
            os.dup2(self.process.stdin.fileno(), fd)
        self.process.stdin.close()  # fds 1 and 2 hold the pipe now: closing them ends it
        if argv[0] == "less" and "K" not in less:
            # less without K stays on Ctrl-C, and so do we (systemd ignores SIGINT too).
            import signal  # here: only once a pager starts

            self._sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self.process is None:
            return False
        broken = exc_type is not None and issubclass(exc_type, BrokenPipeError)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            broken = True
        if broken:
            # The pager is gone (the user quit it): what is buffered can't go anywhere; drop
            # it into /dev/null, so it isn't written to the terminal once fd 1 is back.
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
            sys.stdout.flush()
        for fd, saved in self._saved:
            os.dup2(saved, fd)  # also closes our end of the pipe: the pager sees its end
            os.close(saved)
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        while True:
            try:
                self.process.wait()
                break
            except KeyboardInterrupt:
                interrupted = True  # the pager got it too; wait for it to restore the tty
        if self._sigint is not None:
            import signal  # here: only once a pager starts

            signal.signal(signal.SIGINT, self._sigint)  # type: ignore[arg-type]
        self.process = None
        if interrupted:
            # Ctrl-C in the pager: end as portablectl would by SIGINT, without a message.
            raise SystemExit(130)
        return broken  # a pager quit early is no error
