"""Reading and writing systemd unit-file syntax.

:func:`parse_unit_text` reads a unit file or drop-in as systemd's config parser does (comments,
backslash continuations, sections, ``Key=value``), keeping each assignment's place: the exposure
score (:mod:`portable.security.score`), the netns hook and profiles all read through it. It reads
any input in linear time (unit files come from images) and refuses, in one line naming the file,
a line systemd refuses to read (:data:`LONG_LINE_MAX`).
:func:`parse` groups the assignments into sections of ordered ``(key, value)`` pairs (repeated
keys stay repeated: their order matters) and :func:`render` writes such sections back, for
profiles (``extends``, show, export).
"""

from __future__ import annotations

from dataclasses import dataclass

from portable.errors import PortableError

__all__ = [
    "LONG_LINE_MAX",
    "Assignment",
    "Sections",
    "UnitFileTooLong",
    "parse",
    "parse_boolean",
    "parse_unit_text",
    "render",
]


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``Key=value`` line of a unit file, with its section and where it came from."""

    section: str
    key: str
    value: str
    source: str = ""
    line: int = 0


_COMMENTS = "#;"
_WHITESPACE = " \t\n\r"

# systemd's LONG_LINE_MAX (src/basic/fileio.h, 1 MiB): conf-parser.c's read_line() refuses a
# line of this many bytes or more ("Line too long"), and a line continued with backslashes
# longer than this ("Continuation line too long"); the unit then fails to load. There is no
# limit on the file as a whole: every reader bounds that itself (units.MAX_UNIT_SIZE...).
LONG_LINE_MAX = 1024 * 1024


class UnitFileTooLong(PortableError):
    """A line systemd refuses to read (``LONG_LINE_MAX``), naming the file and the line."""


def _size(text: str) -> int:
    """``text``'s length in bytes, as systemd counts it (``surrogateescape``: one byte each)."""
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate not from surrogateescape
        return len(text.encode("utf-8", "surrogatepass"))


def parse_unit_text(text: str, source: str = "") -> list[Assignment]:
    """The assignments of a unit file or drop-in, as systemd's config parser reads them.

    Lines ending in an odd number of backslashes continue on the next line (the backslash
    becomes a space; comment lines inside a continuation are skipped); ``#`` and ``;`` start
    comment lines; ``[Section]`` headers; ``Key = value`` with whitespace around both stripped.
    Lines outside a section and lines without ``=`` are ignored, as systemd ignores them.

    Linear in the size of ``text``: each physical line is looked at once.

    :raises UnitFileTooLong: a line of ``LONG_LINE_MAX`` bytes or more, or a continued line of
        more, as systemd refuses them (the message names ``source``).
    """
    out: list[Assignment] = []
    section = ""
    limit = LONG_LINE_MAX

    def parse_line(line: str, number: int) -> None:
        nonlocal section
        line = line.strip(_WHITESPACE)
        if not line:
            return
        if line.startswith("["):
            if line.endswith("]") and len(line) > 2:
                section = line[1:-1]
            return
        key, sep, value = line.partition("=")
        if section and sep:
            out.append(
                Assignment(
                    section=section,
                    key=key.strip(_WHITESPACE),
                    value=value.strip(_WHITESPACE),
                    source=source,
                    line=number,
                )
            )

    def too_long(number: int, what: str, most: int) -> UnitFileTooLong:
        return UnitFileTooLong(
            f"{source or 'unit file'}: line {number}: {what} is longer than systemd reads "
            f"(at most {most} bytes: LONG_LINE_MAX), so systemd refuses to load this file"
        )

    pieces: list[str] = []  # the continued line so far, each backslash already a space
    length = 0  # its size in bytes
    start = 0
    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.rstrip("\r")
        size = _size(raw)
        if size >= limit:
            raise too_long(number, "the line", limit - 1)
        stripped = raw.lstrip(_WHITESPACE)
        if stripped and stripped[0] in _COMMENTS:
            continue
        if pieces:
            length += size
            if length > limit:
                raise too_long(number, "the continued line", limit)
        else:
            start, length = number, size
        # The pieces before end in a space, so the escape state at the end of the joined line
        # is this line's alone: an odd run of trailing backslashes continues it.
        if (len(raw) - len(raw.rstrip("\\"))) % 2:
            pieces.append(raw[:-1] + " ")
            continue
        if pieces:
            pieces.append(raw)
            raw = "".join(pieces)
            pieces = []
        parse_line(raw, start)
    if pieces:
        parse_line("".join(pieces), start)
    return out


_TRUE = ("1", "yes", "y", "true", "t", "on")
_FALSE = ("0", "no", "n", "false", "f", "off")


def parse_boolean(value: str) -> bool | None:
    """systemd's parse_boolean(): yes/no, true/false, on/off, 1/0, y/n, t/f; None otherwise."""
    v = value.lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


Sections = dict[str, list[tuple[str, str]]]


def parse(text: str) -> Sections:
    """``{"Service": [("DynamicUser", "yes"), ...]}``; lines outside a section are ignored."""
    sections: Sections = {}
    for a in parse_unit_text(text):
        sections.setdefault(a.section, []).append((a.key, a.value))
    return sections


def render(sections: Sections, *, header: str = "") -> str:
    """Unit-file text for ``sections`` (a leading comment ``header`` if given)."""
    out = [f"# {line}" for line in header.splitlines()]
    for name, pairs in sections.items():
        if out:
            out.append("")
        out.append(f"[{name}]")
        out += [f"{k}={v}" for k, v in pairs]
    return "\n".join(out) + "\n"
