"""Errors that say what to do next (issue 14, item 8): portablectl's sentence kept, the hint on
the same line after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from portable.cli import main
from portable.engine.detach import active_refusal
from portable.errors import ImageNotFound
from portable.images.resolve import resolve_image
from portable.plugin.registry import get_registry
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, service_unit

PORTABLECTL = "Unit file 'foo.service' is active, can't detach."


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("unit", "now", "hint"),
    [
        ("foo.service", False, "(use --now to stop it first)"),
        ("foo.service", True, "(it is still active after the stop: --force detaches it running)"),
        ("foo@.service", False, "(stop its instances first, or --force detaches it running)"),
        ("foo@.service", True, "(stop its instances first, or --force detaches it running)"),
    ],
)
def test_active_refusal_keeps_portablectls_sentence(unit: str, now: bool, hint: str) -> None:
    message = active_refusal(unit, now=now)
    # byte for byte portablectl's message first, so tests comparing with it stay valid
    assert message == f"{PORTABLECTL.replace('foo.service', unit)} {hint}"
    assert "\n" not in message


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A --root tree, and an image outside it (at a path that does not exist inside it)."""
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    outside = make_directory_image(
        tmp_path / "outside" / "foo", units={"foo.service": service_unit()}, busybox=False
    )
    return root, outside


@pytest.mark.parametrize("verb", ["attach", "inspect"])
def test_root_path_not_found_says_where_it_was_looked_up(
    tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    root, outside = tree
    code, out, err = run(["--root", str(root), verb, str(outside)], capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"portable: error: Cannot normalize specified image path '{outside}': No such file or "
        f"directory (looked up below --root {root}: {outside} is {root}{outside})\n"
    )
    assert sorted(p.name for p in root.rglob("*")) == ["srv"]  # nothing written


def test_root_relative_path_and_real_host_have_no_hint(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    registry = get_registry(root=root)
    monkeypatch.chdir(root / "srv")
    with pytest.raises(ImageNotFound) as info:  # relative: from the current directory
        resolve_image("./nothing", host=Host(root=root), registry=registry, cwd=root / "srv")
    assert str(info.value).endswith("'./nothing': No such file or directory")
    with pytest.raises(ImageNotFound) as info:  # the real host: portablectl's words only
        resolve_image("/nonexistent/portable-test", host=Host(), registry=registry)
    assert str(info.value) == (
        "Cannot normalize specified image path '/nonexistent/portable-test': "
        "No such file or directory"
    )
