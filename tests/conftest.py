"""Shared pytest fixtures.

Test box (``portable.testing.box``): tests marked ``@pytest.mark.box`` (and any test using the
``box`` fixture) run once per box that ``PORTABLE_TEST_BOXES`` selects, a comma-separated list
of distro ids, default ``debian-12,debian-13`` (systemd 252 and 257)::

    PORTABLE_TEST_BOXES=debian-13 pytest -m box      # only the systemd 257 box

Their ids say which systemd ran them: ``test_x[systemd252]``, ``test_x[systemd257]``. All
tests of one box run before the next box boots (and everything of the first is torn down by
then), so only one box tree is in use at a time; a box a test boots itself (``Box()``, module
fixtures) boots the same distro, through ``PORTABLE_TEST_BOX``, which is set meanwhile.

A test that only applies to some systemd versions says so with a marker, and is skipped (with
the reason) on the other boxes::

    @pytest.mark.box
    @pytest.mark.systemd(min=256)          # also max=..., both inclusive
    def test_something_new(box): ...
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.runner import runtestprotocol

from portable.testing.box import Box, box_unavailable_reason, resolve_distro
from portable.testing.rootfs import (
    BOX_ENV_VAR,
    BOXES_ENV,
    DEFAULT_BOXES,
    HOST,
    RECIPES,
    RootfsError,
    parse_distros,
    tree_systemd_version,
)

# --- test box: a throwaway systemd (portable.testing.box) -----------------------------------
# Use with @pytest.mark.box. One box serves the whole session (per distro): booting per test is
# wasteful, so tests must clean up what they attach/start inside it.


def _selected_distros() -> list[str]:
    return parse_distros(os.environ.get(BOXES_ENV) or DEFAULT_BOXES)


def _expected_systemd(distro: str) -> int | None:
    """The systemd major version a box of ``distro`` runs, known without booting it."""
    if distro in RECIPES:
        return RECIPES[distro].systemd
    return tree_systemd_version(Path("/")) if distro == HOST else None


def _distro_ids(distros: list[str]) -> list[str]:
    ids = [f"systemd{_expected_systemd(d)}" for d in distros]
    return ids if len(set(ids)) == len(ids) else distros


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "systemd(min=None, max=None): run only on test boxes whose systemd major version is in "
        "[min, max]; skipped (with the reason) on the others",
    )
    try:
        _selected_distros()
    except RootfsError as e:
        raise pytest.UsageError(f"{BOXES_ENV}: {e}") from None


def _uses_box(definition: pytest.Item) -> bool:
    return definition.get_closest_marker("box") is not None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if _uses_box(metafunc.definition) or "box" in metafunc.fixturenames:
        distros = _selected_distros()
        metafunc.parametrize(
            "box_distro", distros, indirect=True, scope="session", ids=_distro_ids(distros)
        )


def _item_distro(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("box_distro")


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests without a box first, then each box's tests in the order PORTABLE_TEST_BOXES gives;
    # stable, so pytest's grouping within each (per module, per fixture) stays as it was.
    order = {d: i for i, d in enumerate(_selected_distros())}
    items.sort(key=lambda item: -1 if (d := _item_distro(item)) is None else order[d])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    # Where the next test runs on another box, tear down everything now, also module fixtures
    # that boot their own Box() (they do not depend on box_distro, so pytest would keep them
    # when the next test is in the same module).
    if nextitem is None or _item_distro(item) == _item_distro(nextitem):
        return None
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    runtestprotocol(item, nextitem=None)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.fixture(scope="session", autouse=True)
def box_distro(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The distro of the box the current test runs on (None for tests without a box).

    While set, ``PORTABLE_TEST_BOX`` names it, so boxes that tests boot themselves match.
    """
    distro: str | None = getattr(request, "param", None)
    if distro is None:
        yield None
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BOX_ENV_VAR, distro)
        yield distro


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("systemd")
    if marker is None:
        return
    if marker.args:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.systemd(min=N, max=N)")
    distro = _item_distro(item) or resolve_distro()
    version = _expected_systemd(distro)
    low, high = marker.kwargs.get("min"), marker.kwargs.get("max")
    if version is None:
        pytest.skip(f"the systemd version of the {distro} box is not known")
    if low is not None and version < low:
        pytest.skip(f"needs systemd >= {low}; the {distro} box has {version}")
    if high is not None and version > high:
        pytest.skip(f"needs systemd <= {high}; the {distro} box has {version}")


@pytest.fixture(scope="session")
def box(box_distro: str | None) -> Iterator[Box]:
    """A booted systemd container shared by the session (one per distro); skips if one cannot
    be booted here."""
    reason = box_unavailable_reason(box_distro)
    if reason is not None:
        pytest.skip(reason)
    with Box(distro=box_distro) as b:
        yield b


@pytest.fixture(scope="session")
def netbox(box_distro: str | None) -> Iterator[Box]:
    """A second booted box with a network namespace of its own (``systemd-nspawn
    --private-network``), so the host side of a veth lives in it, not on this machine; shared
    by the session (one per distro), like ``box``."""
    reason = box_unavailable_reason(box_distro)
    if reason is not None:
        pytest.skip(reason)
    with Box(distro=box_distro, nspawn_args=["--private-network"]) as b:
        yield b


@pytest.fixture
def box_tmp(box: Box) -> Iterator[Path]:
    """A fresh directory with the same path on the host and inside ``box``."""
    path = box.mkdtemp(prefix="t-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- end of test box fixtures ----------------------------------------------------------------
