"""Several hosts for one test: unnamed network namespaces joined by veth pairs.

Everything happens inside the test child, which already sits in its own fresh network
namespace (:mod:`harness.sandbox`).  That namespace is host ``a``; every other host is a
namespace made with ``unshare(CLONE_NEWNET)`` and held only by an open descriptor of
``/proc/thread-self/ns/net``.  Nothing is named under /run/netns: when the child exits
(or is killed on time-out) its descriptors close and the namespaces, their veths, routes
and sysctls vanish with them.

Links, addresses, routes and neighbours are made with rtnetlink messages encoded by
pyroute2's message classes.  They travel over a plain NETLINK_ROUTE socket with
``writev``/``readv``: pyroute2's IPRoute transport calls setsockopt, getsockopt, sendto and
recvfrom, which ``--sockspec-prove`` makes fail in the test child, and a topology built
with them would break before the test observed anything.  A netlink socket acts on the
namespace it was created in, so each host gets its own, opened while inside it.

A test switches hosts with ``with topo.inside("b"):``; a socket made there stays in ``b``
after the switch back, so the test body stays one single-threaded process.

    topo = two_hosts()                 # a 10.0.1.1/24 <-> b 10.0.1.2/24
    with topo.inside("b"):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("10.0.1.2", 4000))        # bind and use it from anywhere
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field

from pyroute2.netlink import (NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE,
                              NLM_F_REQUEST, NLMSG_ERROR)
from pyroute2.netlink.rtnl import (RTM_DELADDR, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK,
                                   RTM_NEWNEIGH, RTM_NEWROUTE)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from harness import expect, netns

IFF_UP = 0x1
IFLA_OPERSTATE, IF_OPER_UP = 16, 6
_IFINFOMSG_SIZE = 16
NUD_PERMANENT = 0x80
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8}
RTAX_MTU = 2
_NLMSGHDR = struct.Struct("=IHHII")

# Set in every host when it is made: no IPv6 on new links (no DAD, MLD or router
# solicitations on the wire), no reverse-path filter (hosts joined by two links receive
# on either), no ICMP rate limit (a test may provoke several errors in a row).
_HOST_SYSCTLS = (
    ("net/ipv6/conf/default/disable_ipv6", 1),
    ("net/ipv6/conf/all/disable_ipv6", 1),
    ("net/ipv4/conf/all/rp_filter", 0),
    ("net/ipv4/conf/default/rp_filter", 0),
    ("net/ipv4/icmp_ratelimit", 0),
)


class _Rtnl:
    """rtnetlink requests with an acknowledgement, on the namespace it was opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.seq = 0
        self.buf = bytearray(65536)

    def request(self, msg, mtype: int, flags: int = 0, what: str = "request") -> list[bytes]:
        """Send ``msg`` and read up to its acknowledgement: the replies that came before it
        (raw messages, header included); an OSError when the kernel refused."""
        self.seq += 1
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
        msg["header"]["sequence_number"] = self.seq
        msg.encode()
        fd = self.sock.fileno()
        os.writev(fd, [msg.data])
        replies = []
        while True:
            n = os.readv(fd, [self.buf])
            off = 0
            while off + _NLMSGHDR.size <= n:
                length, mtype_in, _, seq, _ = _NLMSGHDR.unpack_from(self.buf, off)
                if seq == self.seq:
                    if mtype_in != NLMSG_ERROR:
                        replies.append(bytes(self.buf[off:off + length]))
                    else:
                        err = struct.unpack_from("=i", self.buf, off + _NLMSGHDR.size)[0]
                        if err:
                            raise OSError(-err, f"rtnetlink {what}: {os.strerror(-err)}")
                        return replies
                off += max((length + 3) & ~3, _NLMSGHDR.size)


def _u8_attr(message: bytes, offset: int, wanted: int) -> int | None:
    """The first byte of attribute ``wanted`` in a raw rtnetlink message whose attributes
    start at ``offset``."""
    while offset + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        if length < 4:
            return None
        if kind & 0x3FFF == wanted:
            return message[offset + 4]
        offset += (length + 3) & ~3
    return None


@dataclass
class Link:
    """One end of a veth pair (or a bridge), as seen in its host."""

    host: str
    name: str
    ifindex: int
    mac: str
    peer: str | None = None          # the host at the other end
    address: str | None = None       # the first IPv4 address given to it
    prefixlen: int = 24
    mtu: int = 1500
    addresses: list[str] = field(default_factory=list)


class Host:
    """A network namespace of the topology: its descriptor, netlink socket and links."""

    def __init__(self, name: str, fd: int, rtnl: _Rtnl):
        self.name, self.fd, self.rtnl = name, fd, rtnl
        self.links: dict[str, Link] = {}

    @property
    def link(self) -> Link:
        """The host's first link."""
        return next(iter(self.links.values()))

    @property
    def address(self) -> str:
        """The address of the host's first link."""
        return self.link.address

    @property
    def ifindex(self) -> int:
        """The interface index of the host's first link."""
        return self.link.ifindex

    def link_to(self, peer: str, nth: int = 1) -> Link:
        """The ``nth`` link of this host towards ``peer``."""
        found = [l for l in self.links.values() if l.peer == peer]
        return found[nth - 1]

    def __repr__(self) -> str:
        return f"Host({self.name!r}, links={list(self.links)})"


def _mac(ifindex: int) -> str:
    return f"02:00:00:00:{ifindex >> 8 & 0xFF:02x}:{ifindex & 0xFF:02x}"


def _split(cidr: str, default_len: int) -> tuple[str, int]:
    if "/" in cidr:
        addr, plen = cidr.split("/")
        return addr, int(plen)
    return cidr, default_len


class Topology:
    """Hosts (network namespaces) and the links between them.  Host ``a`` is the test
    child's own namespace; it is where the child is whenever no ``inside`` is active.
    Interface indexes are chosen by the topology (unique over all its hosts), so build
    one topology per test child."""

    def __init__(self) -> None:
        started = time.perf_counter()
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.hosts: dict[str, Host] = {"a": Host("a", fd, _Rtnl())}
        self._current = "a"
        self._next_ifindex = 2     # unique over the whole topology: a mix-up shows
        self._prepare(forwarding=False)
        self.build_seconds = time.perf_counter() - started

    # ------------------------------------------------------------------ hosts

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def add_host(self, name: str, *, forwarding: bool = False) -> Host:
        """A new network namespace with loopback up, held by a descriptor only."""
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        previous = self._current
        netns.unshare(netns.CLONE_NEWNET)
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            host = self.hosts[name] = Host(name, fd, _Rtnl())
            self._prepare(forwarding=forwarding)      # written from inside the new host
            self._set_link(host, 1, up=True)          # lo
        finally:
            netns.enter(self.hosts[previous].fd)
        return host

    def _prepare(self, *, forwarding: bool) -> None:
        for path, value in _HOST_SYSCTLS + (("net/ipv4/ip_forward", int(forwarding)),):
            self._write_sysctl(path, value)

    @contextlib.contextmanager
    def inside(self, name: str):
        """Run the block in host ``name``'s namespace (sockets made there stay there)."""
        previous = self._current
        netns.enter(self.hosts[name].fd)
        self._current = name
        try:
            yield self.hosts[name]
        finally:
            netns.enter(self.hosts[previous].fd)
            self._current = previous

    def socket(self, name: str, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A socket created in host ``name``."""
        with self.inside(name):
            return socket.socket(family, type, proto)

    # ------------------------------------------------------------------ sysctls

    @staticmethod
    def _write_sysctl(path: str, value) -> None:
        fd = os.open(f"/proc/sys/{path}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.writev(fd, [f"{value}\n".encode()])
        finally:
            os.close(fd)

    def sysctl(self, name: str, path: str, value=None) -> str:
        """Read (and first write, when ``value`` is given) /proc/sys/``path`` in host
        ``name``: the /proc/sys/net view follows the namespace of the opener."""
        with self.inside(name):
            if value is not None:
                self._write_sysctl(path, value)
            fd = os.open(f"/proc/sys/{path}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                buf = bytearray(4096)
                n = os.readv(fd, [buf])
            finally:
                os.close(fd)
        return bytes(buf[:n]).decode().strip()

    # ------------------------------------------------------------------ links

    def _alloc_ifindex(self) -> int:
        self._next_ifindex += 1
        return self._next_ifindex - 1

    def _set_link(self, host: Host, ifindex: int, *, up: bool | None = None, **attrs) -> None:
        msg = ifinfmsg()
        msg["index"] = ifindex
        if up is not None:
            msg["flags"], msg["change"] = (IFF_UP if up else 0), IFF_UP
        msg["attrs"] = list(attrs.items())
        host.rtnl.request(msg, RTM_NEWLINK, what=f"set link {ifindex} in {host.name}")

    def set_link(self, name: str, ifname: str, **attrs) -> None:
        """Set IFLA_ attributes of a link, e.g. ``IFLA_GSO_MAX_SEGS=1`` (TCP then sends
        one segment per packet: no oversized GSO packet slips past a receiving veth's MTU
        check)."""
        self._set_link(self.hosts[name], self.hosts[name].links[ifname].ifindex, **attrs)

    def _operstate(self, host: Host, ifindex: int) -> int | None:
        msg = ifinfmsg()
        msg["index"] = ifindex
        reply = host.rtnl.request(msg, RTM_GETLINK, what=f"get link {ifindex} in {host.name}")
        return _u8_attr(reply[0], _NLMSGHDR.size + _IFINFOMSG_SIZE, IFLA_OPERSTATE) if reply else None

    def _wait_running(self, host: Host, ifindex: int, timeout: float = 2.0) -> None:
        """Wait until the link is operationally up.  The end of a veth pair brought up
        first has no carrier yet, so the kernel defers its transmit queue to the
        link-watch worker; until that runs (a fraction of a millisecond later), whatever
        the host sends on the link is dropped.  The worker sets the operational state and
        starts the queue under one rtnl lock, and RTM_GETLINK takes that lock."""
        deadline = time.monotonic() + timeout
        while self._operstate(host, ifindex) != IF_OPER_UP:
            if time.monotonic() > deadline:
                raise TimeoutError(f"link {ifindex} of host {host.name} not up after {timeout:g} s")
            time.sleep(0.0001)

    def set_mtu(self, name: str, ifname: str, mtu: int) -> None:
        link = self.hosts[name].links[ifname]
        self._set_link(self.hosts[name], link.ifindex, IFLA_MTU=mtu)
        link.mtu = mtu

    def _ifname(self, host: Host, peer: str) -> str:
        n = sum(1 for l in host.links.values() if l.peer == peer)
        return f"to-{peer}" + (str(n + 1) if n else "")

    def connect(self, one: str, two: str, addr_one: str | None = None, addr_two: str | None = None,
                *, mtu: int = 1500, master: str | None = None, neighbours: bool = True
                ) -> tuple[Link, Link]:
        """A veth pair between hosts ``one`` and ``two`` (named ``to-<peer>`` in each), up,
        with the given MTU on both ends and the given addresses ("10.0.1.1" or
        "10.0.1.1/24").  ``master`` enslaves ``one``'s end to that bridge of ``one``.  With
        both addresses given, each end gets a permanent neighbour entry for the other, so
        no ARP exchange delays the first packet."""
        h1, h2 = self.hosts[one], self.hosts[two]
        i1, i2 = self._alloc_ifindex(), self._alloc_ifindex()
        n1, n2 = self._ifname(h1, two), self._ifname(h2, one)
        peer = {"index": i2, "attrs": [("IFLA_IFNAME", n2), ("IFLA_ADDRESS", _mac(i2)), ("IFLA_MTU", mtu),
                          ("IFLA_NET_NS_FD", h2.fd)]}
        msg = ifinfmsg()
        msg["index"] = i1
        msg["attrs"] = [
            ("IFLA_IFNAME", n1), ("IFLA_ADDRESS", _mac(i1)), ("IFLA_MTU", mtu),
            ("IFLA_LINKINFO", {"attrs": [
                ("IFLA_INFO_KIND", "veth"),
                ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", peer)]}),
            ]}),
        ]
        if master is not None:
            msg["attrs"].append(("IFLA_MASTER", h1.links[master].ifindex))
        h1.rtnl.request(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, what=f"veth {one}-{two}")
        # Not up at creation: the kernel opens the peer before pairing it (ENOTCONN).
        self._set_link(h1, i1, up=True)
        self._set_link(h2, i2, up=True)
        self._wait_running(h1, i1)
        l1 = h1.links[n1] = Link(one, n1, i1, _mac(i1), peer=two, mtu=mtu)
        l2 = h2.links[n2] = Link(two, n2, i2, _mac(i2), peer=one, mtu=mtu)
        for host, link, cidr in ((h1, l1, addr_one), (h2, l2, addr_two)):
            if cidr:
                self.add_address(host.name, link.name, cidr)
        if neighbours and addr_one and addr_two:
            self.neighbour(one, n1, l2.address, l2.mac)
            self.neighbour(two, n2, l1.address, l1.mac)
        return l1, l2

    def add_bridge(self, name: str, ifname: str = "br0") -> Link:
        """A bridge in host ``name``, up, without multicast snooping (group traffic is
        flooded to every port, whatever the membership reports say)."""
        host = self.hosts[name]
        index = self._alloc_ifindex()
        msg = ifinfmsg()
        msg["index"], msg["flags"], msg["change"] = index, IFF_UP, IFF_UP
        msg["attrs"] = [("IFLA_IFNAME", ifname), ("IFLA_LINKINFO", {"attrs": [
            ("IFLA_INFO_KIND", "bridge"),
            ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_MCAST_SNOOPING", 0)]}),
        ]})]
        host.rtnl.request(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, what=f"bridge in {name}")
        link = host.links[ifname] = Link(name, ifname, index, "")
        return link

    # ------------------------------------------------------------------ addresses, routes

    def _address(self, name: str, ifname: str, cidr: str, mtype: int) -> tuple[Link, str]:
        link = self.hosts[name].links[ifname]
        addr, plen = _split(cidr, link.prefixlen)
        net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
        msg = ifaddrmsg()
        msg["family"], msg["prefixlen"], msg["index"] = socket.AF_INET, plen, link.ifindex
        msg["attrs"] = [("IFA_LOCAL", addr), ("IFA_ADDRESS", addr)]
        if plen < 31:
            msg["attrs"].append(("IFA_BROADCAST", str(net.broadcast_address)))
        flags = NLM_F_CREATE | NLM_F_EXCL if mtype == RTM_NEWADDR else 0
        self.hosts[name].rtnl.request(msg, mtype, flags, what=f"address {cidr} on {name}:{ifname}")
        return link, addr

    def add_address(self, name: str, ifname: str, cidr: str) -> None:
        """Add an IPv4 address ("10.0.1.3" takes the link's prefix length, or "x/len")."""
        link, addr = self._address(name, ifname, cidr, RTM_NEWADDR)
        if link.address is None:
            link.address, link.prefixlen = addr, _split(cidr, link.prefixlen)[1]
        link.addresses.append(addr)

    def del_address(self, name: str, ifname: str, cidr: str) -> None:
        link, addr = self._address(name, ifname, cidr, RTM_DELADDR)
        link.addresses.remove(addr)
        if link.address == addr:
            link.address = link.addresses[0] if link.addresses else None

    def add_route(self, name: str, dst: str, *, via: str | None = None, dev: str | None = None,
                  mtu: int | None = None, lock_mtu: bool = False, kind: str = "unicast",
                  src: str | None = None, metrics: dict[str, int] | None = None) -> None:
        """A route in host ``name``'s main table: ``dst`` is "default", "10.0.2.0/24" or an
        address; ``mtu`` (optionally locked) and other RTAX_ ``metrics`` go with it."""
        host = self.hosts[name]
        msg = rtmsg()
        addr, plen = ("0.0.0.0", 0) if dst == "default" else _split(dst, 32)
        msg["family"], msg["dst_len"], msg["table"] = socket.AF_INET, plen, RT_TABLE_MAIN
        msg["proto"], msg["type"] = RTPROT_STATIC, RTN_TYPES[kind]
        msg["scope"] = RT_SCOPE_LINK if (dev and not via and kind == "unicast") else RT_SCOPE_UNIVERSE
        attrs = [("RTA_DST", addr)] if plen else []
        if via:
            attrs.append(("RTA_GATEWAY", via))
        if dev:
            attrs.append(("RTA_OIF", host.links[dev].ifindex))
        if src:
            attrs.append(("RTA_PREFSRC", src))
        metric = dict(metrics or {})
        if mtu is not None:
            metric["RTAX_MTU"] = mtu
            if lock_mtu:
                metric["RTAX_LOCK"] = 1 << RTAX_MTU
        if metric:
            attrs.append(("RTA_METRICS", {"attrs": list(metric.items())}))
        msg["attrs"] = attrs
        host.rtnl.request(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, what=f"route {dst} in {name}")

    def neighbour(self, name: str, ifname: str, address: str, mac: str) -> None:
        """A permanent ARP entry in host ``name``."""
        host = self.hosts[name]
        msg = ndmsg()
        msg["family"], msg["ifindex"], msg["state"] = socket.AF_INET, host.links[ifname].ifindex, NUD_PERMANENT
        msg["attrs"] = [("NDA_DST", address), ("NDA_LLADDR", mac)]
        host.rtnl.request(msg, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, what=f"neighbour in {name}")


class _Dry(_Rtnl):
    """Encodes and discards: used once at import."""

    def __init__(self) -> None:
        self.seq = 0

    def request(self, msg, mtype: int, flags: int = 0, what: str = "") -> list[bytes]:
        msg["header"]["type"] = mtype
        msg.encode()
        return []


def _warm() -> None:
    """Encode one message of each kind in the importing (parent) process: pyroute2
    compiles its attribute tables on first use, which would otherwise cost every test
    child a few milliseconds."""
    topo = Topology.__new__(Topology)
    topo.hosts = {n: Host(n, 0, _Dry()) for n in ("a", "b")}
    topo._current, topo._next_ifindex = "a", 2
    topo._wait_running = lambda host, ifindex: None
    topo.connect("a", "b", "10.0.1.1/24", "10.0.1.2/24")
    topo.add_bridge("a")
    topo.connect("a", "b", master="br0")
    topo.add_route("a", "default", via="10.0.1.2", dev="to-b", src="10.0.1.1", mtu=1280, lock_mtu=True)
    topo.del_address("a", "to-b", "10.0.1.1")


_warm()


# ---------------------------------------------------------------------- the shapes

def _built(topo: Topology, started: float) -> Topology:
    topo.build_seconds += time.perf_counter() - started
    expect.observe("topology build (ms)", round(topo.build_seconds * 1000, 2))
    return topo


MULTICAST = "224.0.0.0/4"


def two_hosts(*, mtu: int = 1500) -> Topology:
    """Hosts ``a`` (this namespace, 10.0.1.1/24) and ``b`` (10.0.1.2/24) on one veth pair,
    each with a multicast route (224.0.0.0/4) over it."""
    topo = Topology()
    started = time.perf_counter()
    topo.add_host("b")
    topo.connect("a", "b", "10.0.1.1/24", "10.0.1.2/24", mtu=mtu)
    topo.add_route("a", MULTICAST, dev="to-b")
    topo.add_route("b", MULTICAST, dev="to-a")
    return _built(topo, started)


def routed(mtu: int = 1280) -> Topology:
    """Host ``a`` (10.0.1.1/24) - router ``r`` (10.0.1.254 and 10.0.2.254, ip_forward=1) -
    host ``b`` (10.0.2.1/24).  The r-b link has MTU ``mtu`` on both ends; a and b route
    everything (default route) through r."""
    topo = Topology()
    started = time.perf_counter()
    topo.add_host("r", forwarding=True)
    topo.add_host("b")
    topo.connect("a", "r", "10.0.1.1/24", "10.0.1.254/24")
    topo.connect("r", "b", "10.0.2.254/24", "10.0.2.1/24", mtu=mtu)
    topo.add_route("a", "default", via="10.0.1.254")
    topo.add_route("b", "default", via="10.0.2.254")
    return _built(topo, started)


def lan(names: tuple[str, ...] = ("a", "b", "c"), *, switch: str = "sw") -> Topology:
    """Hosts on one Ethernet segment: a bridge in host ``switch`` with one veth port per
    host; host ``names[i]`` gets 10.0.1.<i+1>/24 and a multicast route.  Every host has a
    permanent neighbour entry for every other."""
    topo = Topology()
    started = time.perf_counter()
    topo.add_host(switch)
    topo.add_bridge(switch)
    for name in names:
        if name not in topo.hosts:
            topo.add_host(name)
    for i, name in enumerate(names):
        topo.connect(switch, name, None, f"10.0.1.{i + 1}/24", master="br0")
        topo.add_route(name, MULTICAST, dev=f"to-{switch}")
    for name in names:
        for other in names:
            if other != name:
                link = topo[other].link_to(switch)
                topo.neighbour(name, f"to-{switch}", link.address, link.mac)
    return _built(topo, started)
