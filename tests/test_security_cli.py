"""``portable security``: images, attached images, units and unit files (with --root), graded as
the root's systemd (252 or 257) grades them."""

from __future__ import annotations

import json
import re

import pytest
from helpers.runners import run_main as run
from test_security import analyze, analyzer

from portable.plugins.profiles.builtin import data_path
from portable.systemd.version import KNOWN_VERSIONS
from portable.testing.analyze import systemd_analyze
from portable.testing.images import make_directory_image, mark_systemd_version, service_unit

# What each version's systemd-analyze says of the two services of the image below.
SCORES = {
    252: {
        "attach": [("foo-net.service", "2.8", "OK"), ("foo.service", "3.3", "OK")],
        "attach strict": [("foo-net.service", "1.0", "OK"), ("foo.service", "1.0", "OK")],
        "trusted": [("foo-net.service", "8.5", "EXPOSED"), ("foo.service", "9.4", "UNSAFE")],
        "default": "3.3",
        "trusted + PrivateNetwork=yes": 8.9,
    },
    # an unset PrivateMounts= grades as set
    257: {
        "attach": [("foo-net.service", "2.7", "OK"), ("foo.service", "3.1", "OK")],
        "attach strict": [("foo-net.service", "0.8", "SAFE"), ("foo.service", "0.8", "SAFE")],
        "trusted": [("foo-net.service", "8.4", "EXPOSED"), ("foo.service", "9.2", "UNSAFE")],
        "default": "3.1",
        "trusted + PrivateNetwork=yes": 8.7,
    },
}


def overall(out):
    return re.findall(r"Overall exposure level for (\S+): (\d+\.\d) (\w+)", out)


@pytest.fixture(params=KNOWN_VERSIONS, ids=lambda v: f"systemd{v}")
def systemd(request):
    return request.param


@pytest.fixture
def root(tmp_path, systemd):
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
    mark_systemd_version(r, systemd)
    return r


def test_image_scored_as_attach_would_write_it(root, systemd, capsys):
    code, out, err = run(["--root", str(root), "security", "/srv/foo_1"], capsys)
    assert code == 0, err
    # services only, as systemd-analyze; a directory image: RootDirectory= counts as good
    assert overall(out) == SCORES[systemd]["attach"]
    assert "(foo.service: as attaching would write it with profile 'default'.)" in err
    code, out, err = run(["--root", str(root), "security", "-p", "strict", "/srv/foo_1"], capsys)
    assert overall(out) == SCORES[systemd]["attach strict"]


def copy_attached(root, unit, dest):
    """The attached unit and its drop-ins as plain files in ``dest`` (for systemd-analyze)."""
    where = root / "etc/systemd/system.attached"
    (dest / f"{unit}.d").mkdir(parents=True)
    (dest / unit).write_bytes((where / unit).read_bytes())
    for f in (where / f"{unit}.d").iterdir():
        (dest / f"{unit}.d" / f.name).write_bytes(f.read_bytes())  # symlinks followed


def test_attached_image_scored_as_attached(root, systemd, tmp_path, capsys):
    assert run(["--root", str(root), "attach", "-q", "-p", "trusted", "/srv/foo_1"], capsys)[0] == 0
    code, out, err = run(["--root", str(root), "security", "/srv/foo_1"], capsys)
    assert overall(out) == SCORES[systemd]["trusted"]
    assert "(foo.service: as attached.)" in err
    if systemd_analyze(systemd) is not None:
        for unit, value, _ in SCORES[systemd]["trusted"]:
            copy_attached(root, unit, tmp_path / unit)
            assert analyze(tmp_path / unit, unit, systemd)[0] == value
    # by unit name, and with another profile instead of the attached one
    code, out, err = run(["--root", str(root), "security", "foo.service"], capsys)
    assert overall(out) == SCORES[systemd]["trusted"][1:]
    code, out, err = run(["--root", str(root), "security", "-p", "default", "foo.service"], capsys)
    assert overall(out) == [("foo.service", SCORES[systemd]["default"], "OK")]
    # an admin's drop-in counts too
    extra = root / "etc/systemd/system/foo.service.d"
    extra.mkdir(parents=True)
    (extra / "50-net.conf").write_text("[Service]\nPrivateNetwork=yes\n")
    code, out, err = run(["--root", str(root), "security", "--json", "foo.service"], capsys)
    (doc,) = json.loads(out)
    assert doc["exposure"] == pytest.approx(SCORES[systemd]["trusted + PrivateNetwork=yes"])
    assert doc["how"] == "attached" and doc["systemd"] == systemd
    assert doc["files"] == [
        "/etc/systemd/system.attached/foo.service",
        "/etc/systemd/system.attached/foo.service.d/10-profile.conf",
        "/etc/systemd/system.attached/foo.service.d/20-portable.conf",
        "/etc/systemd/system/foo.service.d/50-net.conf",
    ]


def test_json_rows(root, systemd, capsys):
    code, out, err = run(["--root", str(root), "security", "--json", "/srv/foo_1", "foo"], capsys)
    docs = json.loads(out)
    assert [d["unit"] for d in docs] == ["foo-net.service", "foo.service"]
    assert docs[1]["exposure"] == pytest.approx(float(SCORES[systemd]["default"]))
    assert docs[1]["verdict"] == "OK" and docs[1]["systemd"] == systemd
    assert docs[1]["profile"] == "default" and docs[1]["how"] == "attach"
    assert len(docs[1]["checks"]) == 81
    rows = {c["json_field"]: c["set"] for c in docs[1]["checks"]}
    assert rows["PrivateMounts"] is (systemd == 257)  # unset: graded as set from 257 on
    assert err == ""


def test_max_exposure_exit_status(root, systemd, capsys):
    value = SCORES[systemd]["default"]
    args = ["--root", str(root), "security", "--max-exposure", value, "/srv/foo_1"]
    assert run(args, capsys)[0] == 0
    below = f"{float(value) - 0.1:.1f}"
    args[4] = below
    code, out, err = run(args, capsys)
    assert code == 1
    assert f"portable: foo.service: exposure {value} is above {below}" in err


def test_errors(root, capsys):
    code, out, err = run(["--root", str(root), "security", "nosuch.service"], capsys)
    assert (code, err) == (1, "portable: error: Unit nosuch.service not found on the host.\n")
    code, out, err = run(["--root", str(root), "security", "foo.socket"], capsys)
    assert code == 1 and "only services are scored" in err
    code, out, err = run(["--root", str(root), "security", "-p", "nosuch", "/srv/foo_1"], capsys)
    assert code == 1 and "unknown profile 'nosuch'" in err


@pytest.mark.parametrize("profile", [None, "default", "nonetwork", "strict", "trusted"])
def test_unit_file_matches_systemd_analyze(root, systemd, capsys, profile):
    """A unit file below --root, graded as the root's systemd; -p the profile that systemd
    ships (in the root: none, so the bundled copy of that version)."""
    analyzer(systemd)
    unit = root / "srv/x.service"
    unit.write_text(service_unit(extra="CapabilityBoundingSet=CAP_KILL\nUser=svc\n"))
    (root / "srv/x.service.d").mkdir()
    (root / "srv/x.service.d/20-portable.conf").write_text("[Service]\nRootImage=/srv/x.raw\n")
    args = ["--root", str(root), "security", "/srv/x.service"] + (
        ["-p", profile] if profile else []
    )
    code, out, err = run(args, capsys)
    if profile:  # what -p puts in place, for systemd-analyze
        profile_text = data_path(profile, systemd).read_text()
        (root / "srv/x.service.d/10-profile.conf").write_text(profile_text)
    value, verdict, _ = analyze(root / "srv", "x.service", systemd)
    assert overall(out) == [("x.service", value, verdict)]


def test_real_host_follows_its_systemd(tmp_path, capsys):
    """Without --root: the systemd this machine runs (or has installed)."""
    from portable.systemd.host import Host
    from portable.systemd.version import detect

    unit = tmp_path / "x.service"
    unit.write_text(service_unit())
    code, out, err = run(["security", "--json", str(unit)], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["systemd"] == detect(Host()).behaviour
