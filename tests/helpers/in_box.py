"""Small things box tests do again and again: ask an image's state, a unit's, run either tool,
and clean up what a test attached."""

from __future__ import annotations

from collections.abc import Iterator
from subprocess import CompletedProcess

import pytest

from portable.testing.box import Box

__all__ = ["active", "clean", "run_tool", "state"]


def state(box: Box, image: str) -> str:
    """``portable is-attached IMAGE`` in the box."""
    return box.portable(["is-attached", image]).stdout.strip()


def active(box: Box, name: str) -> str:
    """``systemctl is-active NAME`` in the box."""
    return box.systemctl(["is-active", name], check=False).stdout.strip()


def run_tool(box: Box, tool: str, *args: str) -> CompletedProcess[str]:
    """``portablectl ARGS`` or ``python -m portable ARGS`` (``tool``: "portablectl" or other)
    in the box, not checked."""
    argv = (
        ["portablectl"] if tool == "portablectl" else [str(box.python_executable), "-m", "portable"]
    )
    return box.run([*argv, *args], check=False)


@pytest.fixture
def clean(box: Box) -> Iterator[None]:
    """Detach whatever a test left, so one failure doesn't cascade. (A fixture: a test module
    takes it in by assignment, ``clean = in_box.clean``.)"""
    yield
    box.run(
        "for d in /run/systemd/system.attached /etc/systemd/system.attached; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf /run/portables /etc/portables; systemctl daemon-reload",
        check=False,
    )
