"""``--root`` trees, registries and unit files that tests build again and again.

The fixtures go into a test module by assignment, under the name its tests ask for::

    from helpers import roots

    root = roots.host_root  # (a fixture)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from portable.plugin.registry import Registry, make_registry
from portable.plugin.types import UnitFile

__all__ = ["empty_root", "host_root", "registry", "registry_for", "unit_file"]


@pytest.fixture
def host_root(tmp_path: Path) -> Path:
    """``TMP/root`` with an ``/etc/os-release`` (``ID=host``)."""
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/os-release").write_text("ID=host\n")
    return r


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    """``TMP/root``, empty."""
    r = tmp_path / "root"
    r.mkdir()
    return r


def registry_for(root: Path) -> Registry:
    """A registry over ``root`` with the built-in plugins only."""
    return make_registry(root=root, load_entrypoints=False)


@pytest.fixture
def registry(root: Path) -> Registry:
    """:func:`registry_for` the test's ``root``."""
    return registry_for(root)


def unit_file(text: str, name: str = "foo.service") -> UnitFile:
    """A unit file of ``text``, as read from an image at ``/x/NAME``."""
    return UnitFile(name=name, source=f"/x/{name}", resolved=f"/x/{name}", data=text.encode())
