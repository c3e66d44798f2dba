"""``portable security``: images, attached images, units and unit files (with --root)."""

from __future__ import annotations

import json
import re

import pytest
from test_security import SYSTEMD_ANALYZE, analyze, needs_analyze

from portable.cli import main
from portable.testing.images import make_directory_image, service_unit


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def overall(out):
    return re.findall(r"Overall exposure level for (\S+): (\d+\.\d) (\w+)", out)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    make_directory_image(
        r / "srv/foo_1",
        units={
            "foo.service": service_unit(),
            "foo-net.service": service_unit(extra="PrivateNetwork=yes\nUser=svc"),
            "foo.socket": "[Socket]\nListenStream=/run/foo.sock\n",
        },
        busybox=False,
    )
    return r


def test_image_scored_as_attach_would_write_it(root, capsys):
    code, out, err = run(["--root", str(root), "security", "/srv/foo_1"], capsys)
    assert code == 0, err
    # services only, as systemd-analyze; a directory image: RootDirectory= counts as good
    assert overall(out) == [("foo-net.service", "2.8", "OK"), ("foo.service", "3.3", "OK")]
    assert "(foo.service: as attaching would write it with profile 'default'.)" in err
    code, out, err = run(["--root", str(root), "security", "-p", "strict", "/srv/foo_1"], capsys)
    assert overall(out) == [("foo-net.service", "1.0", "OK"), ("foo.service", "1.0", "OK")]


def copy_attached(root, unit, dest):
    """The attached unit and its drop-ins as plain files in ``dest`` (for systemd-analyze)."""
    where = root / "etc/systemd/system.attached"
    (dest / f"{unit}.d").mkdir(parents=True)
    (dest / unit).write_bytes((where / unit).read_bytes())
    for f in (where / f"{unit}.d").iterdir():
        (dest / f"{unit}.d" / f.name).write_bytes(f.read_bytes())  # symlinks followed


def test_attached_image_scored_as_attached(root, tmp_path, capsys):
    assert run(["--root", str(root), "attach", "-q", "-p", "trusted", "/srv/foo_1"], capsys)[0] == 0
    code, out, err = run(["--root", str(root), "security", "/srv/foo_1"], capsys)
    assert overall(out) == [("foo-net.service", "8.5", "EXPOSED"), ("foo.service", "9.4", "UNSAFE")]
    assert "(foo.service: as attached.)" in err
    if SYSTEMD_ANALYZE:
        for unit, value in (("foo.service", "9.4"), ("foo-net.service", "8.5")):
            copy_attached(root, unit, tmp_path / unit)
            assert analyze(tmp_path / unit, unit)[0] == value
    # by unit name, and with another profile instead of the attached one
    code, out, err = run(["--root", str(root), "security", "foo.service"], capsys)
    assert overall(out) == [("foo.service", "9.4", "UNSAFE")]
    code, out, err = run(["--root", str(root), "security", "-p", "default", "foo.service"], capsys)
    assert overall(out) == [("foo.service", "3.3", "OK")]
    # an admin's drop-in counts too
    extra = root / "etc/systemd/system/foo.service.d"
    extra.mkdir(parents=True)
    (extra / "50-net.conf").write_text("[Service]\nPrivateNetwork=yes\n")
    code, out, err = run(["--root", str(root), "security", "--json", "foo.service"], capsys)
    (doc,) = json.loads(out)
    assert doc["exposure"] == pytest.approx(8.9)
    assert doc["how"] == "attached"
    assert doc["files"] == [
        "/etc/systemd/system.attached/foo.service",
        "/etc/systemd/system.attached/foo.service.d/10-profile.conf",
        "/etc/systemd/system.attached/foo.service.d/20-portable.conf",
        "/etc/systemd/system/foo.service.d/50-net.conf",
    ]


def test_json_rows(root, capsys):
    code, out, err = run(["--root", str(root), "security", "--json", "/srv/foo_1", "foo"], capsys)
    docs = json.loads(out)
    assert [d["unit"] for d in docs] == ["foo-net.service", "foo.service"]
    assert docs[1]["exposure"] == pytest.approx(3.3) and docs[1]["verdict"] == "OK"
    assert docs[1]["profile"] == "default" and docs[1]["how"] == "attach"
    assert len(docs[1]["checks"]) == 81
    assert err == ""


def test_max_exposure_exit_status(root, capsys):
    args = ["--root", str(root), "security", "--max-exposure", "3.3", "/srv/foo_1"]
    assert run(args, capsys)[0] == 0
    args[4] = "3.2"
    code, out, err = run(args, capsys)
    assert code == 1
    assert "portable: foo.service: exposure 3.3 is above 3.2" in err


def test_errors(root, capsys):
    code, out, err = run(["--root", str(root), "security", "nosuch.service"], capsys)
    assert (code, err) == (1, "portable: error: Unit nosuch.service not found on the host.\n")
    code, out, err = run(["--root", str(root), "security", "foo.socket"], capsys)
    assert code == 1 and "only services are scored" in err
    code, out, err = run(["--root", str(root), "security", "-p", "nosuch", "/srv/foo_1"], capsys)
    assert code == 1 and "unknown profile 'nosuch'" in err


@needs_analyze
@pytest.mark.parametrize("profile", [None, "default", "nonetwork", "strict", "trusted"])
def test_unit_file_matches_systemd_analyze(tmp_path, capsys, profile):
    assert SYSTEMD_ANALYZE
    unit = tmp_path / "x.service"
    unit.write_text(service_unit(extra="CapabilityBoundingSet=CAP_KILL\nUser=svc\n"))
    (tmp_path / "x.service.d").mkdir()
    (tmp_path / "x.service.d/20-portable.conf").write_text("[Service]\nRootImage=/srv/x.raw\n")
    args = ["security", str(unit)] + (["-p", profile] if profile else [])
    code, out, err = run(args, capsys)
    value, verdict, _ = analyze(tmp_path, "x.service", profile)
    assert overall(out) == [("x.service", value, verdict)]
