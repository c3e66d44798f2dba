"""Reading and writing systemd unit-file syntax (for profiles: ``extends``, show, export).

Only what profiles need: sections of ordered ``(key, value)`` pairs, with comments dropped and
backslash-continued lines joined (``CapabilityBoundingSet=CAP_A \\`` newline ``CAP_B``), as
systemd's config parser reads them. Repeated keys stay repeated: their order matters.
"""

from __future__ import annotations

__all__ = ["Sections", "parse", "render"]

Sections = dict[str, list[tuple[str, str]]]


def parse(text: str) -> Sections:
    """``{"Service": [("DynamicUser", "yes"), ...]}``; lines outside a section are ignored."""
    sections: Sections = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):  # continuation: joined with a space, as systemd does
            pending += line[:-1].strip() + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        if sep and current is not None:
            current.append((key.strip(), value.strip()))
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
