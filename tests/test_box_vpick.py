"""Versioned image directories (``.v/``) against portablectl: picked on 256+, a path on 252."""

from __future__ import annotations

from pathlib import Path

import pytest

from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DROPIN = "/run/systemd/system.attached/hello.service.d/20-portable.conf"


def tools(box):
    return {
        "portablectl": ["portablectl"],
        "portable": [str(box.python_executable), "-m", "portable"],
    }


def run(box, tool, *args):
    return box.run([*tools(box)[tool], *args], check=False)


@pytest.fixture
def versions(box, box_tmp):
    d = box_tmp / "hello.v"
    for version in ("1.0", "1.10", "1.9"):
        make_directory_image(d / f"hello_{version}", template=EXAMPLES / "hello", os_release=None)
    return d


@pytest.mark.parametrize("tool", ["portablectl", "portable"])
def test_attach_is_attached_detach_a_v_directory(box, versions, tool):
    if box.systemd_version < 256:
        r = run(box, tool, "attach", "--runtime", str(versions))
        # No vpick: the directory itself is the image, and it has no os-release.
        assert r.returncode == 1 and "lacks os-release data" in r.stderr, r
        assert not box.path("/run/systemd/system.attached").exists()
        return
    r = run(box, tool, "attach", "--runtime", f"{versions}/")
    assert r.returncode == 0, r.stderr
    assert (
        box.path(DROPIN)
        .read_text()
        .startswith(f"# Drop-in created for image '{versions}/hello_1.10', do not edit.\n")
    )
    assert "Created symlink /run/portables/hello_1.10 → " in r.stderr
    for t in ("portablectl", "portable"):  # both see it, whoever attached it
        assert run(box, t, "is-attached", str(versions)).stdout == "attached-runtime\n"
    theirs, ours = (run(box, t, "inspect", str(versions)) for t in ("portablectl", "portable"))
    assert ours.stdout == theirs.stdout and ours.returncode == theirs.returncode == 0
    r = run(box, tool, "detach", "--runtime", str(versions))
    assert r.returncode == 0, r.stderr
    assert not box.path("/run/systemd/system.attached").exists()


@pytest.mark.systemd(min=256)
def test_empty_v_directory_refused_as_portablectl(box, box_tmp):
    (box_tmp / "none.v").mkdir()
    theirs = run(box, "portablectl", "inspect", str(box_tmp / "none.v"))
    ours = run(box, "portable", "inspect", str(box_tmp / "none.v"))
    assert theirs.returncode == ours.returncode == 1
    assert "No such file or directory" in theirs.stderr
    assert ours.stderr == (
        f"portable: error: No matching entry in .v/ directory {box_tmp}/none.v found.\n"
    )
