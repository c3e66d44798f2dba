"""Unit tests (``--root``, no box) for what porting TEST-29-PORTABLE found (test_box_test29.py)."""

from __future__ import annotations

import pytest
from helpers.runners import run_main as run

from portable.testing.images import make_directory_image, service_unit


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    make_directory_image(
        r / "srv/foo_1.2", units={"foo.service": service_unit()}, busybox=False, os_release="ID=t\n"
    )
    return r


def test_is_attached_takes_force_as_portablectl_does(root, capsys):
    """TEST-29 runs 'portablectl is-attached --force minimal-app0': --force changes nothing."""
    plain = run(["--root", str(root), "is-attached", "/srv/foo_1.2"], capsys)
    assert plain == (0, "detached\n", "")
    code, out, err = run(["--root", str(root), "attach", "--runtime", "/srv/foo_1.2"], capsys)
    assert code == 0, err
    for args in (["--force", "/srv/foo_1.2"], ["/srv/foo_1.2", "--force"], ["--force", "foo"]):
        got = run(["--root", str(root), "is-attached", *args], capsys)
        assert got == (0, "attached-runtime\n", ""), args
