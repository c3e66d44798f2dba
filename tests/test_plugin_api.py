"""The plugin author's API (issue 13, item 1): every public name a plugin needs comes from
``portable`` or ``portable.plugin``, and the built-in plugins use nothing else, so what they do a
third-party plugin can do."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import portable
import portable.plugin

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
ALLOWED = ("portable", "portable.plugin")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, in functions and TYPE_CHECKING blocks too;
    relative imports (the plugin's own modules) are left out."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module is not None:
            out.append((node.lineno, node.module))
    return out


def test_builtin_plugins_import_only_the_public_api() -> None:
    modules = sorted(PLUGINS.rglob("*.py"))
    assert len(modules) > 10
    wrong = [
        f"{path.relative_to(PLUGINS.parent)}:{line}: {module}"
        for path in modules
        for line, module in _imports(path)
        if module.split(".")[0] == "portable"
        and module not in ALLOWED
        and not module.startswith("portable.plugins.")  # their own package
    ]
    assert not wrong, "plugins/ imports internals:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module", [portable, portable.plugin], ids=lambda m: m.__name__)
def test_every_exported_name_resolves(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(set(names), key=names.index)  # no name twice
    missing = [name for name in names if getattr(module, name, None) is None]
    assert not missing


def test_plugin_names_are_documented() -> None:
    """Each function and class of ``portable.plugin`` says what it is (help() shows it)."""
    undocumented = [
        name
        for name in portable.plugin.__all__
        if callable(value := getattr(portable.plugin, name))
        and not (getattr(value, "__doc__", None) or "").strip()
    ]
    assert not undocumented


def test_portable_plugin_exports_what_portable_does() -> None:
    """A plugin finds every name of ``portable`` in ``portable.plugin`` too, as the same object."""
    for name in portable.__all__:
        assert name in portable.plugin.__all__
        assert getattr(portable.plugin, name) is getattr(portable, name), name


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        portable.plugin.no_such_name  # noqa: B018
    from portable.plugin import registry  # a submodule is still importable by name

    assert registry.__name__ == "portable.plugin.registry"


def test_importing_the_api_loads_nothing_else() -> None:
    """``import portable.plugin`` stays cheap: each name is imported when first used."""
    code = (
        "import sys, portable.plugin\n"
        "print(sorted(m for m in sys.modules if m.startswith('portable')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "['portable', 'portable.plugin']"


def test_types_built_later_are_all_found_by_name() -> None:
    # portable.plugin.types finds a type built on first use through its _LATER table: every
    # type such a module defines must be in it (else it is found only once another name of
    # that module was asked for), and is the types module's as far as anyone can tell.
    from portable.plugin import types

    modules = set(types._LATER.values())
    for name in modules:
        module = importlib.import_module(name)
        assert {n for n, m in types._LATER.items() if m == name} == set(module.__all__), name
    for name in types._LATER:
        cls = getattr(types, name)
        assert cls.__module__ == "portable.plugin.types" and cls.__qualname__ == name
