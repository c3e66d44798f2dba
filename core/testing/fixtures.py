"""pytest fixtures for plugin authors (and this project's tests): ``portable.testing``.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin's tests can simply ask for:

* ``portable_root``: an empty alternate root directory (``--root``): attach writes there;
* ``portable_registry``: a fresh registry over that root with the built-in plugins only;
* ``register_plugin``: ``register_plugin(obj, name)`` adds a plugin to that registry for the
  test (removed afterwards);
* ``make_image``: ``make_image("foo_1", units={...})`` builds a directory image in the root at
  ``/srv/images/foo_1`` and returns the path as the tool sees it;
* ``portable_cli``: ``portable_cli("attach", "/srv/images/foo_1")`` runs the CLI in-process
  against the root and that registry, returning ``(exit_code, stdout, stderr)``.

Example::

    def test_my_profile(register_plugin, make_image, portable_cli, portable_root):
        register_plugin(my_plugin, "my-plugin")
        image = make_image("foo_1", units={"foo.service": service_unit()})
        code, out, err = portable_cli("attach", "--profile=mine", image)
        assert code == 0
        dropin = portable_root / "etc/systemd/system.attached/foo.service.d/10-profile.conf"
        assert "PrivateNetwork=yes" in dropin.read_text()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from portable.plugin.registry import Registry, make_registry, seed_registry
from portable.testing.images import make_directory_image

__all__ = ["make_image", "portable_cli", "portable_registry", "portable_root", "register_plugin"]


@pytest.fixture
def portable_root(tmp_path: Path) -> Path:
    root = tmp_path / "portable-root"
    root.mkdir()
    return root


@pytest.fixture
def portable_registry(portable_root: Path) -> Iterator[Registry]:
    registry = make_registry(root=portable_root, load_entrypoints=False)
    with seed_registry(registry):  # the CLI run by portable_cli uses this very registry
        yield registry


@pytest.fixture
def register_plugin(portable_registry: Registry) -> Iterator[Callable[[object, str], None]]:
    added: list[str] = []

    def register(plugin: object, name: str) -> None:
        portable_registry.register(plugin, name)
        added.append(name)

    yield register
    for name in added:
        if portable_registry.pm.has_plugin(name):
            portable_registry.unregister(name)


@pytest.fixture
def make_image(portable_root: Path) -> Callable[..., str]:
    def make(name: str, **kwargs: Any) -> str:
        kwargs.setdefault("busybox", False)
        make_directory_image(portable_root / "srv/images" / name, **kwargs)
        return f"/srv/images/{name}"

    return make


@pytest.fixture
def portable_cli(
    portable_root: Path, portable_registry: Registry, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    from portable.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["--root", str(portable_root), *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
