"""docs/plugins.md's examples run as printed: a profile that extends another, a TOML profile
shipped by a plugin, and every name the export table lists resolves from portable.plugin."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import portable.plugin
from portable.testing.images import service_unit

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def run_block(containing: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(python_block(containing), "docs/plugins.md", "exec"), namespace)
    return namespace


def test_every_name_in_the_export_table_is_in_portable_plugin():
    text = DOCS.read_text()
    table = text[text.index("| what | names |") : text.index("Each is documented by")]
    names = set(re.findall(r"`([A-Za-z_]+)(?:\(|`)", table))
    names -= {"host", "message"}  # words of the descriptions (host.root, warn(message))
    assert names, "the table lists no names"
    missing = sorted(n for n in names if n not in portable.plugin.__all__)
    assert not missing, f"docs/plugins.md lists names portable.plugin lacks: {missing}"
    for name in names:
        getattr(portable.plugin, name)


def test_the_extends_example_attaches_strict_with_its_edits(
    register_plugin, make_image, portable_cli, portable_root
):
    namespace = run_block('extends="strict"')
    plugin = type(
        "StrictWeb", (), {"portable_profiles": staticmethod(namespace["portable_profiles"])}
    )
    register_plugin(plugin(), "strict-web")
    code, out, err = portable_cli("profiles", "--json")
    assert code == 0, err
    assert "strict-web" in {p["name"] for p in json.loads(out)["profiles"]}
    image = make_image("web_1", units={"web.service": service_unit()})
    code, out, err = portable_cli("attach", "--profile=strict-web", image)
    assert code == 0, err
    dropin = portable_root / "etc/systemd/system.attached/web.service.d/10-profile.conf"
    text = dropin.read_text()
    assert "ProtectSystem=full" in text and "StateDirectory=web" in text
    assert "ProtectSystem=strict" not in text
    assert "PrivateNetwork=yes" in text  # the rest of strict is kept


def test_the_toml_shipping_example_loads_the_packaged_profile(tmp_path, monkeypatch):
    package = tmp_path / "portable_myvendor"
    (package / "profiles").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "profiles/myvendor.toml").write_text(
        'description = "our sandbox"\nextends = "strict"\n[service]\nset = { TasksMax = "4" }\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        namespace = run_block("load_toml_profile(path")
        (profile,) = namespace["portable_profiles"](root=tmp_path)
    finally:
        sys.modules.pop("portable_myvendor", None)
    assert (profile.name, profile.description, profile.extends) == (
        "myvendor",
        "our sandbox",
        "strict",
    )
