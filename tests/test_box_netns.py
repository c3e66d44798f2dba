"""attach --netns in a real systemd: the service's own network namespace and veth pair.

These tests run in a box with a private network namespace (``systemd-nspawn
--private-network``, conftest's ``netbox``), so the host side of every veth lives in the box,
not on this machine.
Traffic goes only between the two ends of a veth the test made (bounded pings), or loopback.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.runners import box_crash_run

from portable.testing.box import Box
from portable.testing.images import make_directory_image

pytestmark = pytest.mark.box

# The service prints what it sees from inside (busybox ip), then stays up.
WATCH = (
    "/usr/bin/sh -c 'echo LINKS; ip -o link; echo ADDRS; ip -o -4 addr; echo END; "
    "while :; do sleep 3600; done'"
)
PING = "/bin/busybox ping -c 2 -W 2 -w 5"  # bounded: 2 packets, at most 5 seconds


def unit(exec_start: str = WATCH, extra: str = "") -> str:
    return f"[Unit]\nDescription=netns test\n\n[Service]\nExecStart={exec_start}\n{extra}\n"


@pytest.fixture
def tmp(netbox: Box) -> Iterator[Path]:
    path = netbox.mkdtemp(prefix="n-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean(netbox: Box) -> Iterator[None]:
    yield
    netbox.run(
        "for d in /run/systemd/system.attached /etc/systemd/system.attached; do "
        "for u in $(ls $d 2>/dev/null | grep -v '\\.d$'); do systemctl stop $u; done; "
        "rm -rf $d; done; rm -rf /run/portables /etc/portables /etc/systemd/portable; "
        "systemctl daemon-reload; for n in $(ip netns list | cut -d' ' -f1); do "
        "ip netns del $n; done; for l in $(ip -o link | grep -o 'vp-[^:@]*'); do "
        "ip link del $l; done",
        check=False,
    )


def wired(stderr: str) -> tuple[str, str, str, str, str]:
    """(verb, namespace, host interface, host address, service address) from attach's line."""
    m = re.search(
        r"(Created|Using) network namespace (\S+): host side (\S+) (\S+), service side host0 "
        r"(\S+)\.",
        stderr,
    )
    assert m, stderr
    return m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)


def main_pid(box: Box, service: str) -> str:
    return box.systemctl(["show", "-P", "MainPID", service]).stdout.strip()


def links(box: Box, ns: str | None = None) -> list[str]:
    cmd = ["ip", "-o", "link"] if ns is None else ["ip", "-n", ns, "-o", "link"]
    return [line.split(":")[1].strip().split("@")[0] for line in box.run(cmd).stdout.splitlines()]


def namespaces(box: Box) -> list[str]:
    return sorted(line.split()[0] for line in box.run("ip netns list").stdout.splitlines())


def journal(box: Box, service: str) -> str:
    return box.run(["journalctl", "--no-pager", "-o", "cat", "-u", service]).stdout


def test_service_sees_its_veth_and_nothing_else(netbox, tmp, clean):
    img = make_directory_image(tmp / "nsa_1", units={"nsa.service": unit()})
    r = netbox.portable(["attach", "--runtime", "--now", "--netns", str(img)])
    verb, ns, host_if, host_addr, inside_addr = wired(r.stderr)
    assert (verb, ns, host_if) == ("Created", "/run/netns/portable-nsa", "vp-nsa")
    assert host_addr.startswith("169.254.") and host_addr.endswith("/30")
    assert inside_addr.endswith("/30")
    dropin = netbox.path("/run/systemd/system.attached/nsa.service.d/20-portable.conf")
    assert dropin.read_text().endswith("NetworkNamespacePath=/run/netns/portable-nsa\n")

    pid = main_pid(netbox, "nsa.service")
    # the service is in that namespace ...
    assert netbox.run(["stat", "-L", "-c", "%i", f"/proc/{pid}/ns/net"]).stdout == (
        netbox.run(["stat", "-L", "-c", "%i", ns]).stdout
    )
    # ... and what it printed from inside: lo and its veth end, one IPv4 address
    for _ in range(50):
        out = journal(netbox, "nsa.service")
        if "END" in out:
            break
        netbox.run(["sleep", "0.1"])
    seen_links = out[out.index("LINKS") : out.index("ADDRS")]
    seen_addrs = out[out.index("ADDRS") : out.index("END")]
    names = re.findall(r"^\d+: ([^:@]+)", seen_links, re.MULTILINE)
    assert names == ["lo", "host0"], seen_links
    assert re.findall(r"inet (\S+)", seen_addrs) == ["127.0.0.1/8", inside_addr], seen_addrs
    assert ",UP" in next(line for line in seen_links.splitlines() if "host0" in line)

    # the host side is up with its address
    host_line = netbox.run(["ip", "-o", "link", "show", "vp-nsa"]).stdout
    assert "state UP" in host_line or ",UP" in host_line, host_line
    assert host_addr in netbox.run(["ip", "-o", "-4", "addr", "show", "vp-nsa"]).stdout
    # both ways
    host_ip, inside_ip = host_addr.split("/")[0], inside_addr.split("/")[0]
    netbox.run(f"{PING} {inside_ip}", timeout=15)
    netbox.run(f"ip netns exec portable-nsa {PING} {host_ip}", timeout=15)

    r = netbox.portable(["detach", "--runtime", "--now", str(img)])
    assert "Removed network namespace /run/netns/portable-nsa." in r.stderr
    assert namespaces(netbox) == []
    assert not any(name.startswith("vp-") for name in links(netbox))
    assert not netbox.path(ns).exists()


def test_rerun_reuses_and_repairs(netbox, tmp, clean):
    img = make_directory_image(tmp / "nsb_1", units={"nsb.service": unit()})
    first = wired(netbox.portable(["attach", "--runtime", "--now", "--netns", str(img)]).stderr)
    # attaching again: same namespace, same addresses
    again = wired(netbox.portable(["attach", "--runtime", "--netns", str(img)]).stderr)
    assert again == ("Using", *first[1:])
    # the veth went away (someone deleted it): a re-run rebuilds it, with the same addresses
    netbox.run(["ip", "link", "del", "vp-nsb"])
    assert links(netbox, "portable-nsb") == ["lo"]
    again = wired(netbox.portable(["attach", "--runtime", "--netns", str(img)]).stderr)
    assert again == ("Using", *first[1:])
    assert links(netbox, "portable-nsb") == ["lo", "host0"]
    netbox.systemctl(["restart", "nsb.service"])
    netbox.run(f"{PING} {again[4].split('/')[0]}", timeout=15)
    # after a "reboot" (/run/netns emptied) the service can't start; attach brings it back
    netbox.systemctl(["stop", "nsb.service"])
    netbox.run("ip link del vp-nsb; umount /run/netns/portable-nsb; rm /run/netns/portable-nsb")
    netbox.systemctl(["start", "nsb.service"], check=False)
    netbox.run(  # fails at exec: status 225/NETWORK
        "for i in $(seq 50); do systemctl is-failed -q nsb.service && exit 0; sleep 0.1; done; "
        "exit 1"
    )
    netbox.systemctl(["reset-failed", "nsb.service"])
    back = wired(netbox.portable(["attach", "--runtime", "--now", "--netns", str(img)]).stderr)
    assert back[0] == "Created" and back[1:3] == first[1:3]
    assert netbox.systemctl(["is-active", "nsb.service"]).stdout.strip() == "active"
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])
    assert namespaces(netbox) == []


def test_explicit_subnet_and_profile_opt_in(netbox, tmp, clean):
    img = make_directory_image(tmp / "nsc_1", units={"nsc.service": unit()})
    r = netbox.portable(["attach", "--runtime", "--now", "--netns-subnet=10.123.45.8/30", str(img)])
    assert wired(r.stderr)[3:] == ("10.123.45.9/30", "10.123.45.10/30")
    netbox.run(f"{PING} 10.123.45.10", timeout=15)
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])
    # a profile that asks for a namespace (a section systemd ignores)
    text = netbox.run(["cat", "/usr/lib/systemd/portable/profile/default/service.conf"]).stdout
    netbox.run(
        [
            "sh",
            "-c",
            "mkdir -p /etc/systemd/portable/profile/isolated && cat > "
            "/etc/systemd/portable/profile/isolated/service.conf",
        ],
        input=text + "\n[X-Portable]\nNetworkNamespace=yes\nNetworkNamespaceSubnet=10.9.0.0/31\n",
    )
    r = netbox.portable(["attach", "--runtime", "--now", "-p", "isolated", str(img)])
    assert wired(r.stderr)[1:] == (
        "/run/netns/portable-nsc",
        "vp-nsc",
        "10.9.0.0/31",
        "10.9.0.1/31",
    )
    assert netbox.systemctl(["is-active", "nsc.service"]).stdout.strip() == "active"
    # systemd did not complain about the X- section
    assert "Unknown section" not in netbox.run("journalctl -b --no-pager -o cat").stdout
    netbox.run(f"{PING} 10.9.0.1", timeout=15)
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])
    assert namespaces(netbox) == []


def test_refusals_leave_nothing(netbox, tmp, clean):
    img = make_directory_image(tmp / "nsd_1", units={"nsd.service": unit()})
    # as the box's systemd-analyze grades it (257: an unset PrivateMounts= passes)
    exposure = "3.1" if netbox.systemd_version >= 257 else "3.3"
    for args, message in (
        (["-p", "strict"], "profile 'strict' sets PrivateNetwork=yes"),
        (["-p", "nonetwork"], "profile 'nonetwork' sets PrivateNetwork=yes"),
        (
            ["--max-exposure", "2"],
            f"nsd.service: exposure {exposure} OK with profile 'default' is above",
        ),
    ):
        r = netbox.portable(["attach", "--runtime", "--netns", *args, str(img)], check=False)
        assert r.returncode == 1 and message in r.stderr, r.stderr
        assert namespaces(netbox) == []
        assert netbox.run("ls -A /run/systemd/system.attached", check=False).returncode != 0
    # a subnet that clashes with an address of the host
    netbox.run(
        "ip link add clash0 type veth peer name clash1 && ip addr add 10.50.0.1/24 dev clash0"
    )
    try:
        r = netbox.portable(
            ["attach", "--runtime", "--netns-subnet=10.50.0.0/30", str(img)], check=False
        )
        assert r.returncode == 1
        assert "overlaps 10.50.0.1/24 on clash0" in r.stderr, r.stderr
        assert namespaces(netbox) == []
    finally:
        netbox.run("ip link del clash0")


def test_failed_attach_and_killed_attach_leak_nothing(netbox, tmp, clean):
    img = make_directory_image(tmp / "nse_1", units={"nse.service": unit()})
    # the write fails after the namespace was made: rolled back, and the namespace removed by
    # the portable_attach_failed hook, in-process
    netbox.run(
        "mkdir -p /run/systemd/system.attached && touch /run/systemd/system.attached/nse.service.d"
    )
    r = netbox.portable(["attach", "--runtime", "--netns", str(img)], check=False)
    assert r.returncode == 1 and "Created network namespace" in r.stderr, r.stderr
    assert "portable: error: Failed to attach unit 'nse.service': Not a directory" in r.stderr
    assert "Removed network namespace /run/netns/portable-nse: the attach did not go" in r.stderr
    assert namespaces(netbox) == []
    # the same through the library in a process that goes on: gone before it exits
    library = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from portable.engine.attach import attach\n"
        "from portable.systemd.host import Host\n"
        "from portable.plugin.registry import get_registry\n"
        "from portable.plugin.types import AttachOptions\n"
        "try:\n"
        "    options = AttachOptions(runtime=True, plugin_options={'netns': True})\n"
        "    attach(sys.argv[1], options, host=Host(),\n"
        "           registry=get_registry())\n"
        "except Exception as exc:\n"
        "    print('failed:', exc)\n"
        "print('left:', sorted(n for n in os.listdir('/run/netns') if n.startswith('portable-')))\n"
    )
    out = netbox.python(["-c", library, str(img)]).stdout
    assert "failed:" in out and out.endswith("left: []\n"), out
    assert not any(name.startswith("vp-") for name in links(netbox))
    netbox.run("rm -rf /run/systemd/system.attached")
    # killed right after the namespace was made: a re-run uses it and completes the attach
    killed = box_crash_run(netbox, 1, ["attach", "--runtime", "--netns", str(img)], check=False)
    assert killed.returncode in (137, -9), killed.stderr
    assert namespaces(netbox) == ["portable-nse"]
    r = netbox.portable(["attach", "--runtime", "--now", "--netns", str(img)])
    assert wired(r.stderr)[0] == "Using"
    assert netbox.systemctl(["is-active", "nse.service"]).stdout.strip() == "active"
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])
    # a namespace left by a killed attach that is never re-run goes with the next attach
    netbox.run("ip netns add portable-orphan")
    other = make_directory_image(tmp / "nsf_1", units={"nsf.service": unit()})
    netbox.portable(["attach", "--runtime", "--netns", "-q", str(other)])
    assert namespaces(netbox) == ["portable-nsf"]
    netbox.portable(["detach", "--runtime", "-q", str(other)])
    assert namespaces(netbox) == []


def test_two_services_and_a_socket(netbox, tmp, clean):
    img = make_directory_image(
        tmp / "nsg_1",
        units={
            "nsg.service": unit(),
            "nsg-b.service": unit(),
            "nsg-sock.socket": "[Socket]\nListenStream=8099\nAccept=yes\n",
            "nsg-sock@.service": unit("/usr/bin/cat", "StandardInput=socket"),
        },
    )
    r = netbox.portable(["attach", "--runtime", "--now", "--netns", str(img)])
    ns = wired(r.stderr)[1]
    for service in ("nsg.service", "nsg-b.service"):
        pid = main_pid(netbox, service)
        assert (
            netbox.run(["readlink", f"/proc/{pid}/ns/net"]).stdout
            == netbox.run(
                ["sh", "-c", "ip netns exec portable-nsg readlink /proc/self/ns/net"]
            ).stdout
        )
    sock = netbox.path("/run/systemd/system.attached/nsg-sock.socket.d/20-portable.conf")
    assert sock.read_text().endswith(f"\n[Socket]\nNetworkNamespacePath={ns}\n")
    netbox.systemctl(["start", "nsg-sock.socket"])
    listening = netbox.run("ip netns exec portable-nsg ss -ltnH").stdout
    assert ":8099" in listening
    assert ":8099" not in netbox.run("ss -ltnH").stdout
    netbox.systemctl(["stop", "nsg-sock.socket"])
    netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])
    assert namespaces(netbox) == []


def test_plain_rerun(netbox, tmp, clean):
    img = make_directory_image(tmp / "nsh_1", units={"nsh.service": unit()})
    first = wired(netbox.portable(["attach", "--runtime", "--now", "--netns", str(img)]).stderr)
    try:
        r = netbox.portable(["attach", "--runtime", "--netns", str(img)], check=False)
        assert r.returncode == 0, r.stderr
        assert "is already attached" in r.stderr
        assert wired(r.stderr) == ("Using", *first[1:])
    finally:
        netbox.portable(["detach", "--runtime", "--now", "-q", str(img)])


def test_reattach_keeps_the_namespace(netbox, tmp, clean):
    old = make_directory_image(tmp / "nsi_1", units={"nsi.service": unit()})
    new = make_directory_image(tmp / "nsi_2", units={"nsi.service": unit()})
    first = wired(netbox.portable(["attach", "--runtime", "--now", "--netns", str(old)]).stderr)
    # no --netns: the netns plugin sees the attached version's namespace and keeps it
    r = netbox.portable(["reattach", "--now", str(new)])
    assert wired(r.stderr) == ("Using", *first[1:])
    dropin = netbox.path("/run/systemd/system.attached/nsi.service.d/20-portable.conf")
    assert dropin.read_text().endswith("NetworkNamespacePath=/run/netns/portable-nsi\n")
    pid = main_pid(netbox, "nsi.service")
    assert netbox.run(["stat", "-L", "-c", "%i", f"/proc/{pid}/ns/net"]).stdout == (
        netbox.run(["stat", "-L", "-c", "%i", "/run/netns/portable-nsi"]).stdout
    )
    assert namespaces(netbox) == ["portable-nsi"]
    netbox.portable(["detach", "--runtime", "--now", "-q", str(new)])
    assert namespaces(netbox) == []
    # attached without one: --netns adds it, and says so
    netbox.portable(["attach", "--runtime", "-q", str(old)])
    r = netbox.portable(["reattach", "--netns", str(new)])
    assert "portable: a network namespace is added (as --netns says)" in r.stderr
    assert wired(r.stderr)[0] == "Created"
    netbox.portable(["detach", "--runtime", "-q", str(new)])
    assert namespaces(netbox) == []
