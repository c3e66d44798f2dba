"""os-release / extension-release parsing with systemd's env-file rules.

:func:`parse_os_release` follows ``parse_env_file_internal`` (src/basic/env-file.c): a state
machine over bytes, so its quirks are kept (``A="x" y`` is ``xy``, quotes are only special at the
start of a value part, ``A=`` and ``A=""`` give an empty value). It is lenient where systemd fails
the whole file; :func:`os_release_error` tells whether systemd would have.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["MAX_OS_RELEASE_SIZE", "os_release_error", "parse_os_release", "split_prefixes"]

MAX_OS_RELEASE_SIZE = 1024 * 1024  # bytes; a larger os-release is hostile or broken

_KEY = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_SKIP_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_SKIP_BLANKS = re.compile(rb"[ \t]*")  # whitespace that is not a newline
_KEY_REST = re.compile(rb"[^=\n\r]*")
_COMMENT = re.compile(rb"[^\n\r]*")
_UNQUOTED = re.compile(rb"[^\\\n\r]*")
_DOUBLE_QUOTED = re.compile(rb'[^"\\]*')
_PREFIX_SEPARATORS = re.compile(r"[ \t\n\r]+")

_NEWLINE = b"\n\r"
_COMMENT_START = b"#;"
_SHELL_NEED_ESCAPE = b'"\\`$'


def _end(pattern: re.Pattern[bytes], data: bytes, i: int) -> int:
    """End of ``pattern``'s match at ``i`` (all patterns used here can match empty)."""
    m = pattern.match(data, i)
    return m.end() if m else i


def _assignments(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every ``(key, value)`` systemd's env-file parser would push, in order, undecoded.

    Runs of ordinary bytes are consumed with one regex match each, so the work is linear and
    the loop count is bounded by the number of quotes, escapes and lines, never recursive.
    """
    n = len(data)
    i = 0
    while True:
        # PRE_KEY: blank space and empty lines
        i = _end(_SKIP_WHITESPACE, data, i)
        if i >= n:
            return
        if data[i] in _COMMENT_START:
            # v254+: a comment ends at the newline even after a backslash (v252 continued it,
            # unlike the shell; the fix does not change any file written the usual way).
            i = _end(_COMMENT, data, i) + 1
            continue
        # KEY: the first byte is taken whatever it is (even '='), then up to '=' or a newline.
        end = _end(_KEY_REST, data, i + 1)
        if end >= n:
            return  # a key without '=' at end of file is dropped
        if data[end] in _NEWLINE:
            i = end + 1  # a line without '=' is ignored
            continue
        key = data[i:end].rstrip(b" \t")
        i = end + 1
        value, i = _value(data, i)
        yield key, value
        if i > n:
            return


def _value(data: bytes, i: int) -> tuple[bytes, int]:
    """Parse one value starting right after ``=``; return it and the index after its line.

    The returned index is ``len(data) + 1`` when the value ran to the end of the data.
    """
    n = len(data)
    out = bytearray()
    # Where trailing unescaped blanks of an unquoted part begin (systemd last_value_whitespace).
    trailing: int | None = None
    state = "pre"
    while True:
        if state == "pre":  # PRE_VALUE: between '=' or a closing quote and more value
            i = _end(_SKIP_BLANKS, data, i)
            if i >= n:
                return bytes(out), n + 1
            c = data[i]
            i += 1
            if c in _NEWLINE:
                return bytes(out), i
            if c == 0x27:  # ': literal up to the next ', newlines included
                close = data.find(b"'", i)
                if close < 0:
                    out += data[i:]
                    return bytes(out), n + 1
                out += data[i:close]
                i = close + 1
            elif c == 0x22:  # "
                state = "double"
            elif c == 0x5C:  # backslash
                state = "escape"
            else:
                i -= 1
                state = "plain"
        elif state == "plain":  # VALUE: unquoted, blanks at the end are dropped
            end = _end(_UNQUOTED, data, i)
            run = data[i:end]
            if run:
                kept = len(run.rstrip(b" \t"))
                if kept:
                    trailing = len(out) + kept if kept < len(run) else None
                elif trailing is None:
                    trailing = len(out)
                out += run
            i = end
            if i >= n or data[i] in _NEWLINE:
                if trailing is not None:
                    del out[trailing:]
                return bytes(out), i + 1
            i += 1  # a backslash: the next byte is literal, and not "trailing blank"
            trailing = None
            state = "escape"
        elif state == "escape":  # VALUE_ESCAPE: backslash-newline continues the line
            if i >= n:
                return bytes(out), n + 1
            if data[i] not in _NEWLINE:
                out.append(data[i])
            i += 1
            state = "plain"
        else:  # DOUBLE_QUOTE_VALUE
            end = _end(_DOUBLE_QUOTED, data, i)
            out += data[i:end]
            i = end
            if i >= n:
                return bytes(out), n + 1
            i += 1
            if data[i - 1] == 0x22:
                state = "pre"
                continue
            # DOUBLE_QUOTE_VALUE_ESCAPE: only shell-special bytes lose their backslash
            if i >= n:
                return bytes(out), n + 1
            c = data[i]
            i += 1
            if c in _SHELL_NEED_ESCAPE:
                out.append(c)
            elif c != 0x0A:  # backslash-LF is a continuation line and vanishes
                out += b"\\" + bytes((c,))


def parse_os_release(data: bytes) -> dict[str, str]:
    """Parse os-release/extension-release data into ``{KEY: value}``.

    Rules (systemd env-file): ``KEY=VALUE`` per line, leading blanks ignored, lines whose first
    non-blank byte is ``#`` or ``;`` are comments, lines without ``=`` are ignored; blanks around
    the key and after ``=`` are ignored. A value is a sequence of parts: unquoted (trailing blanks
    dropped, ``\\`` makes the next byte literal, ``\\``-newline continues the line), single-quoted
    (literal up to the next ``'``, across lines) or double-quoted (``\\`` escapes only
    ``" \\ ` $`` and a newline; before anything else it stays). Quotes only open a part at the
    start of a value or right after a closing quote (blanks in between are dropped:
    ``A="x" "y"`` is ``xy``); inside an unquoted part they are literal. Later assignments
    override earlier ones; an empty value is ``""``.

    Lenient where systemd is strict, so that garbage never raises: an assignment is skipped if
    its key is not an environment variable name (``[A-Za-z_][A-Za-z0-9_]*``; systemd only
    ignores such keys because nobody asks for them), or if its value is not UTF-8 or contains a
    NUL byte (systemd fails the whole file instead, see :func:`os_release_error`).
    """
    fields: dict[str, str] = {}
    for key, value in _assignments(data):
        if not _KEY.fullmatch(key) or b"\0" in value:
            continue
        try:
            fields[key.decode("ascii")] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return fields


def os_release_error(data: bytes) -> str | None:
    """Why systemd's ``parse_env_file`` would reject ``data`` as a whole, or ``None``.

    ``"Bad message"`` (EBADMSG): a NUL byte anywhere (``read_full_stream`` refuses embedded
    NULs). ``"Invalid argument"`` (EINVAL): an assignment whose key or value is not valid UTF-8
    (systemd logs "invalid UTF-8 ..., ignoring" but then aborts the parse). Callers that want
    systemd's refusal can check this before :func:`parse_os_release`.
    """
    if b"\0" in data:
        return "Bad message"
    for key, value in _assignments(data):
        try:
            key.decode("utf-8")
            value.decode("utf-8")
        except UnicodeDecodeError:
            return "Invalid argument"
    return None


def split_prefixes(value: str) -> list[str]:
    """The words of ``PORTABLE_PREFIXES=``: systemd ``strv_split(value, WHITESPACE)``.

    Only space, tab, CR and LF separate; quotes and backslashes are ordinary characters
    (``EXTRACT_RETAIN_ESCAPE`` without unquoting), and empty words do not occur.
    """
    return [word for word in _PREFIX_SEPARATORS.split(value) if word]
