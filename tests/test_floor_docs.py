"""docs/security.md lists the floors as portable.security.floor has them, and the docs' examples
work."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from portable.plugin.registry import make_registry
from portable.plugin.types import Floor, FloorRule, Profile, UnitFile
from portable.profiles.files import load_toml_profile, resolve
from portable.security.floor import NO_NETWORK, STANDARD, check_units, floor_of

DOCS = Path(__file__).resolve().parents[1] / "docs"


def section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of ``text``: rows of cells, header and separator left out."""
    out: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if current is None:
            current = []
            out.append(current)
            current.append(cells)  # the header
        elif not all(set(c) <= {"-", ":"} for c in cells):
            current.append(cells)
    return out


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def rules_of(table: list[list[str]]) -> list[FloorRule]:
    """The rules a ``| settings | forbidden when | unit types | why |`` table lists."""
    assert table[0] == ["settings", "forbidden when", "unit types", "why"]
    rules = []
    for settings, when, unit_types, reason in table[1:]:
        match = when.split()[0]
        for setting in code_spans(settings):
            assert setting.endswith("=")
            rules.append(
                FloorRule(
                    setting=setting.removesuffix("="),
                    match=match,
                    values=tuple(code_spans(when)),
                    reason=reason,
                    unit_types=tuple(t.strip() for t in unit_types.split(",") if t.strip()),
                )
            )
    return rules


@pytest.fixture(scope="module")
def floor_tables() -> list[list[FloorRule]]:
    text = section(DOCS / "security.md", "The sandbox floor")
    return [rules_of(t) for t in tables(text) if t[0][0] == "settings"]


def test_the_docs_list_every_rule_of_the_standard_floor(
    floor_tables: list[list[FloorRule]],
) -> None:
    assert len(floor_tables) == 2
    assert floor_tables[0] == list(STANDARD.rules)  # same rules, same order: none missing


def test_the_docs_list_what_no_network_adds(floor_tables: list[list[FloorRule]]) -> None:
    assert NO_NETWORK.rules[: len(STANDARD.rules)] == STANDARD.rules
    assert floor_tables[1] == list(NO_NETWORK.rules[len(STANDARD.rules) :])
    assert STANDARD.hold_profile and NO_NETWORK.hold_profile


def test_the_docs_match_every_match_kind() -> None:
    text = section(DOCS / "security.md", "The sandbox floor")
    from portable.plugin.types import FLOOR_MATCHES

    for match in FLOOR_MATCHES:
        if match != "any":
            assert f"`{match}`:" in text, match


def toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, flags=re.S)


def test_the_docs_toml_examples_load(tmp_path: Path) -> None:
    registry = make_registry(root=tmp_path, load_entrypoints=False)
    strict = registry.profile("strict").spec
    blocks = toml_blocks(section(DOCS / "profiles.md", "TOML profiles"))
    blocks += toml_blocks(section(DOCS / "security.md", "The sandbox floor"))
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        doc = tomllib.loads(block)
        assert doc["extends"] == "strict"
        path = tmp_path / f"web{i}.toml"
        path.write_text(block)
        web = resolve(load_toml_profile(path, shown=str(path)), strict)
        rules = floor_of(web).rules
        assert not any(r.setting == "BindReadOnlyPaths" for r in rules)
        assert (
            FloorRule(setting="User", match="values", values=("root", "0"), reason="runs as root")
            in rules
        )
        kept = [r for r in NO_NETWORK.rules if r.setting != "BindReadOnlyPaths"]
        assert list(rules[: len(kept)]) == kept


def test_the_python_example_of_the_docs_runs() -> None:
    text = section(DOCS / "security.md", "The sandbox floor")
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict[str, object] = {}
    exec(compile(block, "docs/security.md", "exec"), namespace)
    profile = namespace["profile"]
    assert isinstance(profile, Profile)
    floor = floor_of(profile)
    assert isinstance(floor, Floor) and floor.rules[:-1] == STANDARD.rules
    assert floor.rules[-1].setting == "User"


def test_the_plugin_example_with_a_floor_runs(tmp_path: Path) -> None:
    text = section(DOCS / "plugins.md", "Hooks")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "floor" in b)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/plugins.md", "exec"), namespace)
    (profile,) = namespace["portable_profiles"](root=tmp_path)
    assert floor_of(profile).rules == (*NO_NETWORK.rules, namespace["NO_ROOT"])
    unit = UnitFile(
        name="foo.service",
        source="/x/foo.service",
        resolved="/x/foo.service",
        data=b"[Service]\nExecStart=/bin/true\nUser=root\n",
    )
    found = check_units([unit], profile, systemd=257)
    assert [(f.setting, f.reason) for f in found] == [("User", "runs as root")]
