"""Reading and writing systemd unit-file syntax.

:func:`parse_unit_text` reads a unit file or drop-in as systemd's config parser does (comments,
backslash continuations, sections, ``Key=value``), keeping each assignment's place: the exposure
score (:mod:`portable.security`), the netns hook and profiles all read through it.
:func:`parse` groups the assignments into sections of ordered ``(key, value)`` pairs (repeated
keys stay repeated: their order matters) and :func:`render` writes such sections back, for
profiles (``extends``, show, export).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Assignment", "Sections", "parse", "parse_boolean", "parse_unit_text", "render"]


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


def parse_unit_text(text: str, source: str = "") -> list[Assignment]:
    """The assignments of a unit file or drop-in, as systemd's config parser reads them.

    Lines ending in an odd number of backslashes continue on the next line (the backslash
    becomes a space; comment lines inside a continuation are skipped); ``#`` and ``;`` start
    comment lines; ``[Section]`` headers; ``Key = value`` with whitespace around both stripped.
    Lines outside a section and lines without ``=`` are ignored, as systemd ignores them.
    """
    out: list[Assignment] = []
    section = ""

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

    continuation: str | None = None
    start = 0
    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.rstrip("\r")
        stripped = raw.lstrip(_WHITESPACE)
        if stripped and stripped[0] in _COMMENTS:
            continue
        if continuation is None:
            line, start = raw, number
        else:
            line = continuation + raw
        escaped = False
        for ch in line:
            escaped = not escaped if ch == "\\" else False
        if escaped:
            continuation = line[:-1] + " "
            continue
        continuation = None
        parse_line(line, start)
    if continuation is not None:
        parse_line(continuation, start)
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
