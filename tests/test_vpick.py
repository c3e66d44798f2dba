"""Versioned image directories (``.v/``, systemd 256+'s vpick) on an alternate root."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.runners import cli_root

from portable.errors import ImageNotFound
from portable.images.architecture import local_architectures
from portable.images.vpick import is_versioned, pick, version_compare
from portable.systemd.host import Host
from portable.testing.images import make_directory_image, mark_systemd_version

# systemd's own documented order for strverscmp_improved(), oldest first.
ORDERED = [
    "122.1",
    "123~rc1-1",
    "123",
    "123-a",
    "123-a.1",
    "123-1",
    "123-1.1",
    "123^post1",
    "123.a-1",
    "123.1-1",
    "123a-1",
    "124-1",
]


@pytest.mark.parametrize(("i", "j"), [(i, j) for i in range(12) for j in range(12)])
def test_version_compare_follows_systemds_order(i, j):
    got = version_compare(ORDERED[i], ORDERED[j])
    assert (got > 0) - (got < 0) == (i > j) - (i < j), (ORDERED[i], ORDERED[j])


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [("1.10", "1.9", 1), ("00123", "123", 0), ("1.0", "1.0", 0), ("2", "10", -1), ("1a", "1", 1)],
)
def test_version_compare_cases(a, b, sign):
    got = version_compare(a, b)
    assert (got > 0) - (got < 0) == sign


def test_is_versioned():
    assert is_versioned("/srv/app.v")
    assert is_versioned("/srv/app.v/")
    assert is_versioned("/srv/app.v/app___.raw")
    assert not is_versioned("/srv/app_1.raw")
    assert not is_versioned("/srv/app___.raw")  # a pattern only inside a .v directory


def make(root: Path, *names: str) -> Path:
    d = root / "srv/app.v"
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith(".raw"):
            (d / name).write_bytes(b"")
        else:
            (d / name).mkdir()
    return d


def test_newest_version_wins(tmp_path):
    # "2~rc1" is no valid version (~), "other" not this image: both passed over
    make(tmp_path, "app_1.0", "app_1.9", "app_1.10", "other_9", "app_2~rc1")
    assert pick("/srv/app.v", host=Host(tmp_path)) == "/srv/app.v/app_1.10"
    assert pick("/srv/app.v/", host=Host(tmp_path)) == "/srv/app.v/app_1.10"


def test_raw_files_and_directories(tmp_path):
    make(tmp_path, "app_1.raw", "app_2.raw", "app_3")
    assert pick("/srv/app.v", host=Host(tmp_path)) == "/srv/app.v/app_3"
    d = tmp_path / "srv/app.raw.v"
    d.mkdir()
    (d / "app_5.raw").write_bytes(b"")
    assert pick("/srv/app.raw.v", host=Host(tmp_path)) == "/srv/app.raw.v/app_5.raw"


def test_tries_left_win_over_exhausted_ones(tmp_path):
    make(tmp_path, "app_2+0.raw", "app_1+3.raw")
    assert pick("/srv/app.v", host=Host(tmp_path)) == "/srv/app.v/app_1+3.raw"


def test_architecture_of_the_host_only(tmp_path):
    native = local_architectures()[0]
    other = "s390x" if native != "s390x" else "x86-64"
    make(tmp_path, f"app_9_{other}.raw", f"app_1_{native}.raw")
    assert pick("/srv/app.v", host=Host(tmp_path)) == f"/srv/app.v/app_1_{native}.raw"


def test_pattern_inside_a_v_directory(tmp_path):
    make(tmp_path, "web_1.raw", "web_2.raw", "app_7.raw")
    assert pick("/srv/app.v/web___.raw", host=Host(tmp_path)) == "/srv/app.v/web_2.raw"


def test_no_entry_is_systemds_error(tmp_path):
    make(tmp_path)
    with pytest.raises(ImageNotFound, match=r"^No matching entry in \.v/ directory /srv/app\.v"):
        pick("/srv/app.v", host=Host(tmp_path))
    with pytest.raises(ImageNotFound, match="No matching entry"):
        pick("/srv/missing.v", host=Host(tmp_path))


cli = cli_root  # portable --root ROOT ARGS, on the forking runner


@pytest.mark.parametrize("systemd", [252, 257])
def test_attach_a_v_directory_from_256(tmp_path, systemd):
    """257 attaches the newest image of app.v/ (prefix 'app'); 252 takes app.v as a path."""
    mark_systemd_version(tmp_path, systemd)
    d = tmp_path / "srv/app.v"
    for version in ("1.0", "1.10", "1.9"):
        make_directory_image(
            d / f"app_{version}", busybox=False, units={"app.service": "[Service]\nExecStart=/x\n"}
        )
    r = cli(tmp_path, "attach", "--runtime", "/srv/app.v/")
    if systemd == 252:
        assert r.returncode == 1
        assert r.stderr == "portable: error: Image '/srv/app.v' lacks os-release data, refusing.\n"
        return
    assert r.returncode == 0, r.stderr
    marker = (tmp_path / "run/systemd/system.attached/app.service.d/20-portable.conf").read_text()
    assert marker.startswith("# Drop-in created for image '/srv/app.v/app_1.10', do not edit.\n")
    assert cli(tmp_path, "is-attached", "/srv/app.v").stdout == "attached-runtime\n"
    inspect = cli(tmp_path, "inspect", "/srv/app.v")
    assert inspect.stdout.startswith("Image:\n\t/srv/app.v\n")  # as given, as portablectl shows
    assert cli(tmp_path, "detach", "--runtime", "/srv/app.v").returncode == 0
    assert not (tmp_path / "run/systemd/system.attached").exists()
