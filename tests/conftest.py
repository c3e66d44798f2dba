"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from portable.testing.box import Box, box_unavailable_reason

# --- test box: a throwaway systemd (portable.testing.box) -----------------------------------
# Use with @pytest.mark.box. One box serves the whole session: booting per test is wasteful, so
# tests must clean up what they attach/start inside it.


@pytest.fixture(scope="session")
def box() -> Iterator[Box]:
    """A booted systemd container shared by the session; skips if one cannot be booted here."""
    reason = box_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Box() as b:
        yield b


@pytest.fixture
def box_tmp(box: Box) -> Iterator[Path]:
    """A fresh directory with the same path on the host and inside ``box``."""
    path = box.mkdtemp(prefix="t-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- end of test box fixtures ----------------------------------------------------------------
