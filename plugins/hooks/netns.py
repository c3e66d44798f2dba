"""Per-service network namespaces: ``attach --netns`` (built-in lifecycle hook).

With ``--netns`` (or ``--netns-subnet=CIDR``, or a profile that asks for it, below), attach puts
the image's services in a network namespace of their own, wired to the host by a veth pair
(the two options are this plugin's, added to ``attach`` and ``reattach`` through
``portable_cli_options`` as any plugin adds options):

* the namespace is ``/run/netns/portable-NAME`` (the ``ip netns`` convention, so ``ip -n
  portable-NAME ...`` works), NAME being the image name up to the first ``_`` (``foo_1.2`` ->
  ``portable-foo``), so a reattach of ``foo_2`` keeps the namespace and its addresses;
* the host side of the veth is ``vp-NAME`` (``vp-`` + 4 characters + a hash when that would
  exceed 15 characters), the service side ``host0`` (as systemd-nspawn names it); both up,
  ``lo`` up inside, a default route inside via the host side;
* addresses: the host side gets the first, the service side the second address of a /30 in
  169.254.0.0/16, chosen from a hash of NAME (169.254.0.x, 169.254.169.x - the cloud metadata
  address - and 169.254.255.x are never used), moving on to the next /30 while one overlaps an
  IPv4 address of the host; or of the subnet given with ``--netns-subnet`` (an IPv4 network of at
  most /30, or a /31 whose two addresses are both used);
* ``20-portable.conf`` gets ``NetworkNamespacePath=/run/netns/portable-NAME`` in ``[Service]``
  (and ``[Socket]``, so socket units listen inside too).

Nothing is forwarded or NATed: the service reaches the host's veth address and nothing else
until the administrator routes it (``ip_forward`` and a masquerade rule for the /30).

A profile opts in with a section systemd ignores (``X-`` sections are skipped by systemd)::

    [X-Portable]
    NetworkNamespace=yes
    NetworkNamespaceSubnet=10.77.0.0/30

Profiles with ``PrivateNetwork=yes`` (``nonetwork``, ``strict``) are refused with a network
namespace: systemd lets ``NetworkNamespacePath=`` win over ``PrivateNetwork=`` (the service joins
the named namespace), so the service would get the network the profile is there to take away.

Lifecycle. The namespace is created (or found and repaired: missing veth, addresses, links
down) by the pre-attach hook, which runs after every other pre-attach hook that might refuse.
Re-running ``portable attach`` reuses it, so after a reboot (``/run`` is empty again) a
persistent attach is brought back by attaching again. ``reattach`` keeps it: the attach half
(``options.reattach``) runs while the attached version's drop-ins are still in place, and a
namespace they refer to is the new version's too. Detach removes the namespace and its veth
once no attached unit refers to it any more. If the attach fails after the namespace was made
(a later hook refuses, a write fails, a post-attach hook rolls it back), the namespace is removed
when the process exits; namespaces left by a killed run are removed by the next attach or
detach (any ``/run/netns/portable-*`` no attached unit refers to).

Not with ``--root``: there is no host network to wire; attach refuses.

pyroute2 (and hashlib, ctypes) are imported only when a namespace is named, made or removed:
every command loads this hook, few use a namespace.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from portable import plugin
from portable.plugin import AttachRefused, CliOption, PortableError, hookimpl

if TYPE_CHECKING:
    from portable.plugin import (
        AttachOptions,
        DetachOptions,
        ExtraSetting,
        Host,
        Image,
        Profile,
        UnitFile,
    )

__all__ = [
    "INSIDE_IFNAME",
    "NETNS",
    "NETNS_DIR",
    "NETNS_PREFIX",
    "NETNS_SUBNET",
    "Netns",
    "collect_garbage",
    "default_subnet",
    "ensure",
    "host_ifname",
    "netns_for_image",
    "portable_cli_options",
    "referenced_namespaces",
    "remove",
    "requested",
]

NETNS_DIR = "/run/netns"
NETNS_PREFIX = "portable-"
INSIDE_IFNAME = "host0"
HOST_IF_PREFIX = "vp-"
IFNAMSIZ = 15  # usable characters of an interface name
# systemd's attached directories, where a reference to a namespace can be.
_ATTACHED = ("/etc/systemd/system.attached", "/run/systemd/system.attached")
# Patterns, compiled by re on first use (every command loads this module, few use them).
_REFERENCE = r"^\s*NetworkNamespacePath\s*=\s*(\S+)\s*$"
_IFNAME_OK = r"^[A-Za-z0-9_.-]+$"

# 169.254.1.0 - 169.254.254.255 in /30 blocks, minus 169.254.169.0/24 (cloud metadata).
_POOL_THIRD_OCTETS = [n for n in range(1, 255) if n != 169]
_POOL_SIZE = len(_POOL_THIRD_OCTETS) * 64
_AF_INET = 2  # socket.AF_INET on Linux (the socket module is not loaded by most commands)


def _info(message: str) -> None:
    print(message, file=sys.stderr)


# --- names and addresses -----------------------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    import hashlib  # loads OpenSSL (~3 ms): only when a namespace is named

    return hashlib.sha256(data).digest()


def netns_for_image(image_name: str) -> str:
    """The namespace name of an image: ``portable-`` + the image name up to the first ``_``."""
    return NETNS_PREFIX + (image_name.split("_", 1)[0] or image_name)


def host_ifname(netns: str) -> str:
    """The host side's interface name: ``vp-NAME``, or ``vp-`` + 4 characters + ``-`` + 7
    hex digits of a hash when that is too long or NAME has characters an interface name can't
    have."""
    name = netns.removeprefix(NETNS_PREFIX)
    plain = HOST_IF_PREFIX + name
    if len(plain) <= IFNAMSIZ and re.match(_IFNAME_OK, name):
        return plain
    digest = _sha256(netns.encode("utf-8", "surrogateescape")).hex()[:7]
    head = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:4]
    return f"{HOST_IF_PREFIX}{head}-{digest}"


def default_subnet(netns: str, attempt: int = 0) -> ipaddress.IPv4Network:
    """The ``attempt``-th candidate /30 of a namespace in 169.254.0.0/16 (see the module doc)."""
    digest = _sha256(b"portable-netns\0" + netns.encode("utf-8", "surrogateescape"))
    index = (int.from_bytes(digest[:8], "big") + attempt) % _POOL_SIZE
    third = _POOL_THIRD_OCTETS[index // 64]
    return ipaddress.IPv4Network(f"169.254.{third}.{(index % 64) * 4}/30")


def subnet_addresses(
    subnet: ipaddress.IPv4Network,
) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    """(host side, service side) addresses of a subnet."""
    if subnet.prefixlen == 31:
        first, second = subnet.network_address, subnet.broadcast_address
    else:
        first, second = subnet.network_address + 1, subnet.network_address + 2
    return (
        ipaddress.IPv4Interface(f"{first}/{subnet.prefixlen}"),
        ipaddress.IPv4Interface(f"{second}/{subnet.prefixlen}"),
    )


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """An IPv4 network for ``--netns-subnet`` (host bits must be zero); at most /31."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise PortableError(f"--netns-subnet {text}: not an IPv4 network ({exc})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise PortableError(f"--netns-subnet {text}: only IPv4 networks are supported")
    if net.prefixlen > 31:
        raise PortableError(f"--netns-subnet {text}: needs two addresses (at most /31)")
    return net


# --- what was asked for ------------------------------------------------------------------------

NETNS = CliOption[bool](
    name="--netns",
    verbs=("attach", "reattach"),
    flag=True,
    help="Run the services in their own network namespace (/run/netns/portable-NAME), "
    "wired to the host by a veth pair.",
)
# Checked by the pre-attach hook (parse_subnet), which says what is wrong in its own words.
NETNS_SUBNET = CliOption[str](
    name="--netns-subnet",
    verbs=("attach", "reattach"),
    metavar="CIDR",
    help="IPv4 subnet for --netns: host side gets its first address, the services the second "
    "(default: a /30 in 169.254.0.0/16 derived from the name). Implies --netns.",
)


# Netns and Wired are NamedTuples, not dataclasses (~0.4 ms each to build): every command loads
# this module, few use a namespace.
class Netns(NamedTuple):
    """A portable network namespace: its name, file, interfaces and (requested) subnet."""

    name: str
    subnet: ipaddress.IPv4Network | None = None

    @property
    def path(self) -> str:
        return f"{NETNS_DIR}/{self.name}"

    @property
    def host_ifname(self) -> str:
        return host_ifname(self.name)


def _profile_settings(profile: Profile | None) -> dict[str, str]:
    """The ``[X-Portable]`` settings of a profile's service drop-in."""
    if profile is None:
        return {}
    dropin = profile.dropin_for("service")
    if dropin is None:
        return {}
    # plugin.X at call time (also below): only an attach asks, not every command loading us
    text = plugin.parse_unit_text(dropin.text)
    return {a.key: a.value for a in text if a.section == "X-Portable"}


def requested(options: AttachOptions, profile: Profile | None) -> tuple[bool, str | None]:
    """(namespace wanted?, subnet or None): the options win over the profile's
    ``[X-Portable] NetworkNamespace=``/``NetworkNamespaceSubnet=``."""
    settings = _profile_settings(profile)
    given = options.plugin_options
    subnet = given.value(NETNS_SUBNET) or settings.get("NetworkNamespaceSubnet")
    wanted = bool(given.value(NETNS)) or bool(given.value(NETNS_SUBNET))
    if not wanted:
        wanted = bool(plugin.parse_boolean(settings.get("NetworkNamespace", "no"))) or bool(
            settings.get("NetworkNamespaceSubnet")
        )
    return wanted, subnet or None


# --- making and removing (pyroute2) ------------------------------------------------------------


def _is_netns(path: str) -> bool:
    """Is ``path`` a bound network namespace (an nsfs file), not a stale empty file?"""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def _kind(link: Any) -> str | None:
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    return str(kind) if kind is not None else None


def _one_link(ipr: Any, ifname: str) -> Any:
    indexes = ipr.link_lookup(ifname=ifname)
    return ipr.get_links(indexes[0])[0] if indexes else None


def _ipv4(ipr: Any, index: int | None = None) -> list[ipaddress.IPv4Interface]:
    kw: dict[str, Any] = {"family": _AF_INET}
    if index is not None:
        kw["index"] = index
    return [
        ipaddress.IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
        for a in ipr.get_addr(**kw)
    ]


def _host_networks(ipr: Any, skip_index: int | None) -> list[tuple[str, ipaddress.IPv4Interface]]:
    names = {link["index"]: link.get("IFLA_IFNAME") for link in ipr.get_links()}
    return [
        (
            str(names.get(a["index"], a["index"])),
            ipaddress.IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"),
        )
        for a in ipr.get_addr(family=_AF_INET)
        if a["index"] != skip_index
    ]


def _overlaps(
    subnet: ipaddress.IPv4Network, used: Iterable[tuple[str, ipaddress.IPv4Interface]]
) -> str | None:
    for ifname, iface in used:
        if iface.ip in subnet or (iface.network.prefixlen < 32 and subnet.overlaps(iface.network)):
            return f"{iface} on {ifname}"
    return None


def _set_address(ipr: Any, index: int, want: ipaddress.IPv4Interface) -> None:
    for have in _ipv4(ipr, index):
        if have != want:
            ipr.addr("del", index=index, address=str(have.ip), prefixlen=have.network.prefixlen)
    if want not in _ipv4(ipr, index):
        ipr.addr("add", index=index, address=str(want.ip), prefixlen=want.network.prefixlen)


class Wired(NamedTuple):
    """What :func:`ensure` set up."""

    netns: Netns
    host: ipaddress.IPv4Interface
    inside: ipaddress.IPv4Interface
    created: bool


def ensure(ns: Netns) -> Wired:
    """Create the namespace and its veth pair, or reuse and repair them; idempotent.

    An existing pair keeps its addresses unless ``ns.subnet`` asks for others. Whatever this
    call created is removed again if it fails.
    """
    from pyroute2 import IPRoute, NetNS  # ~100 ms to import: only when a namespace is made
    from pyroute2 import netns as pyroute2_netns

    created = False
    if not _is_netns(ns.path):
        if os.path.lexists(ns.path):  # a stale file from a run killed while creating it
            _unbind(ns.path)
        os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
        pyroute2_netns.create(ns.path)
        created = True
    try:
        with IPRoute() as ipr, NetNS(ns.path, flags=0) as inner:
            host = _one_link(ipr, ns.host_ifname)
            inside = _one_link(inner, INSIDE_IFNAME)
            paired = (
                host is not None
                and inside is not None
                and _kind(host) == "veth"
                and _kind(inside) == "veth"
                and host.get("IFLA_LINK") == inside["index"]
                and inside.get("IFLA_LINK") == host["index"]
            )
            if not paired:
                if host is not None:
                    if _kind(host) != "veth":
                        raise PortableError(
                            f"network interface {ns.host_ifname} exists on the host and is not "
                            f"the veth of {ns.path}; refusing to touch it"
                        )
                    ipr.link("del", index=host["index"])
                if inside is not None:
                    inner.link("del", index=inside["index"])
                ipr.link(
                    "add",
                    ifname=ns.host_ifname,
                    kind="veth",
                    peer={"ifname": INSIDE_IFNAME, "net_ns_fd": ns.path},
                )
                host = _one_link(ipr, ns.host_ifname)
                inside = _one_link(inner, INSIDE_IFNAME)
            host_index, inside_index = host["index"], inside["index"]
            used = _host_networks(ipr, host_index)
            subnet = ns.subnet
            if subnet is None:
                have_host, have_inside = _ipv4(ipr, host_index), _ipv4(inner, inside_index)
                if (
                    len(have_host) == 1
                    and len(have_inside) == 1
                    and have_host[0].network == have_inside[0].network
                    and _overlaps(have_host[0].network, used) is None
                ):
                    subnet = have_host[0].network
                else:
                    for attempt in range(_POOL_SIZE):
                        candidate = default_subnet(ns.name, attempt)
                        if _overlaps(candidate, used) is None:
                            subnet = candidate
                            break
                    else:
                        raise PortableError(
                            "no free /30 left in 169.254.0.0/16 for the network namespace; "
                            "give one with --netns-subnet"
                        )
            else:
                clash = _overlaps(subnet, used)
                if clash is not None:
                    raise PortableError(
                        f"--netns-subnet {subnet} overlaps {clash}; choose another subnet"
                    )
            host_addr, inside_addr = subnet_addresses(subnet)
            _set_address(ipr, host_index, host_addr)
            _set_address(inner, inside_index, inside_addr)
            ipr.link("set", index=host_index, state="up")
            inner.link("set", index=inside_index, state="up")
            lo = inner.link_lookup(ifname="lo")
            if lo:
                inner.link("set", index=lo[0], state="up")
            inner.route("replace", dst="0.0.0.0/0", gateway=str(host_addr.ip))
    except BaseException:
        if created:
            with contextlib.suppress(Exception):
                remove(ns.name)
        raise
    return Wired(netns=ns, host=host_addr, inside=inside_addr, created=created)


def _unbind(path: str) -> None:
    import ctypes  # only when a namespace is removed

    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(path.encode(), 2)  # MNT_DETACH; fails harmlessly if it is no mount
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove(name: str) -> bool:
    """Remove namespace ``name`` and its veth pairs; True if there was anything to remove."""
    path = f"{NETNS_DIR}/{name}"
    found = False
    if _is_netns(path):
        from pyroute2 import IPRoute, NetNS  # ~100 ms to import: only when there is one

        found = True
        # Deleting the inside end of a veth deletes both ends at once: no host side lingers
        # while the kernel tears the namespace down.
        with contextlib.suppress(Exception), NetNS(path, flags=0) as inner:
            for link in inner.get_links():
                if _kind(link) == "veth":
                    inner.link("del", index=link["index"])
        with contextlib.suppress(Exception), IPRoute() as ipr:
            host = _one_link(ipr, host_ifname(name))
            if host is not None and _kind(host) == "veth":
                ipr.link("del", index=host["index"])
    if os.path.lexists(path):
        found = True
        _unbind(path)
    return found


def _references_in(dropin_dir: str) -> Iterator[tuple[str, str]]:
    """(namespace name, drop-in) for each ``/run/netns/portable-*`` a unit's drop-in directory
    refers to (``NetworkNamespacePath=`` in its ``*.conf``)."""
    try:
        confs = sorted(os.listdir(dropin_dir))
    except OSError:
        return
    for conf in confs:
        if not conf.endswith(".conf"):
            continue
        try:
            with open(f"{dropin_dir}/{conf}", "rb") as f:
                text = f.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            continue
        for path in re.findall(_REFERENCE, text, re.MULTILINE):
            if path.startswith(f"{NETNS_DIR}/{NETNS_PREFIX}"):
                yield path.rsplit("/", 1)[1], f"{dropin_dir}/{conf}"


def referenced_namespaces(root: str = "/") -> dict[str, list[str]]:
    """Namespace name -> attached units whose drop-ins refer to ``/run/netns/portable-*``
    (those attached below ``root``)."""
    refs: dict[str, list[str]] = {}
    for where in (root.rstrip("/") + attached for attached in _ATTACHED):
        try:
            entries = sorted(os.listdir(where))
        except OSError:
            continue
        for entry in entries:
            if entry.endswith(".d"):
                for name, _ in _references_in(f"{where}/{entry}"):
                    refs.setdefault(name, []).append(entry[:-2])
    return refs


def collect_garbage(keep: Iterable[str] = ()) -> list[str]:
    """Remove ``/run/netns/portable-*`` namespaces no attached unit refers to (left by a
    killed run or a failed attach), except those in ``keep``; returns their names."""
    try:
        present = [n for n in os.listdir(NETNS_DIR) if n.startswith(NETNS_PREFIX)]
    except OSError:
        return []
    refs = referenced_namespaces()
    keep = set(keep) | _pending
    removed = []
    for name in sorted(present):
        if name not in refs and name not in keep and remove(name):
            removed.append(name)
    return removed


# --- failure handling --------------------------------------------------------------------------

# Namespaces this process created in a pre-attach hook: if the attach does not go through,
# portable_attach_failed removes them; should that fail, no drop-in refers to them at exit, and
# they are removed then.
_pending: set[str] = set()
_atexit_registered = False
# pre-detach -> post-detach: the namespaces the units being detached refer to, and the drop-ins
# that said so (only when those are gone was the detach one on this host).
_detaching: dict[str, list[tuple[str, str]]] = {}


def _cleanup_at_exit() -> None:
    """Remove namespaces this process created that no attached unit refers to (a failed
    attach), under the host lock; if another command holds it, its own clean-up will."""
    if not _pending:
        return
    try:
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        refs = referenced_namespaces()
        for name in sorted(_pending):
            if name not in refs:
                with contextlib.suppress(Exception):
                    remove(name)
        _pending.clear()
    finally:
        os.close(fd)


def _track(name: str) -> None:
    global _atexit_registered
    _pending.add(name)
    if not _atexit_registered:
        atexit.register(_cleanup_at_exit)
        _atexit_registered = True


# --- hooks ---------------------------------------------------------------------------------------


@hookimpl
def portable_cli_options() -> Iterable[CliOption[Any]]:
    return [NETNS, NETNS_SUBNET]


def _kept_by_reattach(host: Host, image: Image, options: AttachOptions, wanted: bool) -> bool:
    """In the attach half of a reattach: does the attached version use the image's namespace?
    Its drop-ins are still in place (they are replaced after the pre-attach hooks). (Below
    --root too: such a reattach is then refused, as an attach with --netns is.)"""
    if not options.reattach:
        return False
    if netns_for_image(image.name) in referenced_namespaces(str(host.root)):
        return True
    given = options.plugin_options
    if wanted and (given.given(NETNS) or given.given(NETNS_SUBNET)):
        _info("portable: a network namespace is added (as --netns says)")
    return False


@hookimpl(trylast=True)
def portable_pre_attach(
    host: Host, image: Image, units: Sequence[UnitFile], profile: Profile, options: AttachOptions
) -> list[ExtraSetting] | None:
    """Create (or reuse) the namespace and point the units at it."""
    wanted, subnet_text = requested(options, profile)
    if _kept_by_reattach(host, image, options, wanted):
        wanted = True
    if not wanted:
        return None
    subnet = parse_subnet(subnet_text) if subnet_text else None
    if not host.is_real:
        raise AttachRefused(
            "--netns needs the running host: a network namespace can't be created below "
            "--root, refusing."
        )
    dropin = profile.dropin_for("service")
    for unit in units:
        # (plugin.unit_settings: the score's modules load only when a namespace is asked for)
        if unit.type == "service" and plugin.unit_settings(unit, profile).private_network:
            where = (
                f"profile '{profile.name}'"
                if dropin is not None and "PrivateNetwork" in dropin.text
                else f"unit {unit.name}"
            )
            raise AttachRefused(
                f"{where} sets PrivateNetwork=yes: the service is meant to have no network, "
                "and a network namespace would give it one (NetworkNamespacePath= wins over "
                "PrivateNetwork=); use a profile without it (e.g. default), or no --netns, "
                "refusing."
            )
    ns = Netns(name=netns_for_image(image.name), subnet=subnet)
    collect_garbage(keep=[ns.name])
    wired = ensure(ns)
    if ns.name not in referenced_namespaces():
        _track(ns.name)  # removed at exit unless the attach goes through
    verb = "Created" if wired.created else "Using"
    _info(
        f"{verb} network namespace {ns.path}: host side {ns.host_ifname} {wired.host}, "
        f"service side {INSIDE_IFNAME} {wired.inside}."
    )
    return [
        plugin.ExtraSetting(key="NetworkNamespacePath", value=ns.path),
        plugin.ExtraSetting(key="NetworkNamespacePath", value=ns.path, section="Socket"),
    ]


@hookimpl
def portable_attach_failed(image: Image) -> None:
    """Remove the namespace this process created for the image, now that the attach failed
    (nothing refers to it); a namespace it only reused stays, as do other images' ones."""
    name = netns_for_image(image.name)
    if name not in _pending:
        return  # not created by this run (or our pre-attach never ran for this image)
    if name in referenced_namespaces():
        _pending.discard(name)
    elif remove(name):
        _pending.discard(name)
        _info(f"Removed network namespace {NETNS_DIR}/{name}: the attach did not go through.")
    # else: left for the exit handler and the garbage collection to retry


def _attached_dir(options: DetachOptions) -> str:
    return _ATTACHED[1] if options.runtime else _ATTACHED[0]


@hookimpl
def portable_pre_detach(
    host: Host, image: Image, units: Sequence[str], options: DetachOptions
) -> None:
    """Note which of our namespaces the units refer to (their drop-ins are still there)."""
    if not host.is_real:
        return  # below --root: the host's namespaces are none of this detach's business
    where = _attached_dir(options)
    found = [ref for unit in units for ref in _references_in(f"{where}/{unit}.d")]
    if found:
        _detaching[image.path] = found


@hookimpl
def portable_post_detach(image: Image) -> None:
    """Remove the namespaces the detached units used, once nothing refers to them."""
    found = _detaching.pop(image.path, [])
    # Only if the drop-ins that referred to them are gone: a detach below --root removed
    # other files, and the host's namespaces are none of its business.
    names = sorted({name for name, conf in found if not os.path.lexists(conf)})
    if not names:
        return
    refs = referenced_namespaces()
    for name in names:
        if name not in refs and remove(name):
            _info(f"Removed network namespace {NETNS_DIR}/{name}.")
    collect_garbage()
