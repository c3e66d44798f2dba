"""The built-in attach hooks of issue 6 without a real host: --max-exposure, and what --netns
does and refuses below --root (the namespaces themselves are tested in the box)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest
from helpers.runners import run_main as run

from portable.plugin.types import AttachOptions, Profile, ProfileDropin
from portable.plugins.hooks import netns
from portable.systemd.version import KNOWN_VERSIONS
from portable.testing.images import make_directory_image, mark_systemd_version, service_unit


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    make_directory_image(r / "srv/foo_1", units={"foo.service": service_unit()}, busybox=False)
    return r


def attached(root):
    return sorted(p.name for p in (root / "etc/systemd/system.attached").glob("*"))


# The service with the default profile, as the root's systemd grades it (257 grades an unset
# PrivateMounts= as set), and a limit just below.
DEFAULT_SCORE = {252: ("3.3", "3.2"), 257: ("3.1", "3.0")}


@pytest.mark.parametrize("systemd", KNOWN_VERSIONS)
def test_max_exposure_refuses_above_the_limit(root, capsys, systemd):
    mark_systemd_version(root, systemd)
    value, limit = DEFAULT_SCORE[systemd]
    code, out, err = run(
        ["--root", str(root), "attach", "--max-exposure", limit, "/srv/foo_1"], capsys
    )
    assert code == 1
    assert err == (
        f"portable: error: foo.service: exposure {value} OK with profile 'default' is above "
        f"--max-exposure {limit}, refusing.\n"
    )
    assert not (root / "etc/systemd").exists()
    code, out, err = run(
        ["--root", str(root), "attach", "-q", "--max-exposure", value, "/srv/foo_1"], capsys
    )
    assert code == 0, err
    assert attached(root) == ["foo.service", "foo.service.d"]
    assert run(["--root", str(root), "detach", "-q", "/srv/foo_1"], capsys)[0] == 0
    code, out, err = run(
        ["--root", str(root), "attach", "-q", "--max-exposure", "1", "-p", "strict", "/srv/foo_1"],
        capsys,
    )
    assert code == 0, err
    assert attached(root) == ["foo.service", "foo.service.d"]


def test_max_exposure_bounds(root, capsys):
    code, out, err = run(
        ["--root", str(root), "attach", "--max-exposure", "11", "/srv/foo_1"], capsys
    )
    assert code == 2 and "--max-exposure" in err


def test_netns_refused_below_root(root, capsys):
    for flag in ("--netns", "--netns-subnet=10.1.2.0/30"):
        code, out, err = run(["--root", str(root), "attach", flag, "/srv/foo_1"], capsys)
        assert code == 1
        assert err == (
            "portable: error: --netns needs the running host: a network namespace can't be "
            "created below --root, refusing.\n"
        )
        assert not (root / "etc/systemd").exists()


def test_netns_bad_subnet(root, capsys):
    code, out, err = run(
        ["--root", str(root), "attach", "--netns-subnet=10.1.2.1/30", "/srv/foo_1"], capsys
    )
    assert code == 1 and "--netns-subnet 10.1.2.1/30: not an IPv4 network" in err
    code, out, err = run(
        ["--root", str(root), "attach", "--netns-subnet=fd00::/64", "/srv/foo_1"], capsys
    )
    assert code == 1 and "only IPv4" in err


def test_names():
    assert netns.netns_for_image("foo_1.2") == "portable-foo"
    assert netns.netns_for_image("foo") == "portable-foo"
    assert netns.host_ifname("portable-foo") == "vp-foo"
    assert netns.host_ifname("portable-abcdefghijkl") == "vp-abcdefghijkl"
    long = netns.host_ifname("portable-abcdefghijklm")
    assert len(long) == 15 and long.startswith("vp-abcd-")
    assert netns.host_ifname("portable-a:b") != "vp-a:b"
    assert len(netns.host_ifname("portable-a:b")) <= 15


def test_default_subnets_avoid_reserved_ranges():
    seen = set()
    for i in range(3000):
        net = netns.default_subnet(f"portable-s{i}")
        assert net.prefixlen == 30
        assert net.subnet_of(ipaddress.IPv4Network("169.254.0.0/16"))
        third = int(str(net.network_address).split(".")[2])
        assert third not in (0, 169, 255)
        seen.add(net)
    assert len(seen) > 2500  # spread over the pool
    # deterministic, and successive attempts move on
    assert netns.default_subnet("portable-foo") == netns.default_subnet("portable-foo")
    assert netns.default_subnet("portable-foo", 1) != netns.default_subnet("portable-foo")
    host, inside = netns.subnet_addresses(ipaddress.IPv4Network("10.0.0.0/30"))
    assert (str(host), str(inside)) == ("10.0.0.1/30", "10.0.0.2/30")
    host, inside = netns.subnet_addresses(ipaddress.IPv4Network("10.0.0.4/31"))
    assert (str(host), str(inside)) == ("10.0.0.4/31", "10.0.0.5/31")


def test_requested_by_options_or_profile():
    plain = Profile(
        name="p", description="", dropins={"service": ProfileDropin(text="[Service]\n")}
    )
    wants = Profile(
        name="q",
        description="",
        dropins={
            "service": ProfileDropin(
                text="[Service]\nDynamicUser=yes\n[X-Portable]\nNetworkNamespace=yes\n"
                "NetworkNamespaceSubnet=10.9.0.0/30\n"
            )
        },
    )
    assert netns.requested(AttachOptions(), plain) == (False, None)
    assert netns.requested(AttachOptions(plugin_options={"netns": True}), plain) == (True, None)
    subnet = AttachOptions(plugin_options={"netns_subnet": "10.0.0.0/30"})
    assert netns.requested(subnet, plain) == (True, "10.0.0.0/30")
    assert netns.requested(AttachOptions(), wants) == (True, "10.9.0.0/30")
    subnet = AttachOptions(plugin_options={"netns_subnet": "10.1.0.0/30"})
    assert netns.requested(subnet, wants) == (True, "10.1.0.0/30")


def test_cli_start_does_not_import_pyroute2():
    code = (
        "import sys, portable.cli\n"
        "from portable.plugin.registry import get_registry\n"
        "get_registry().hooks\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'jeepney')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
