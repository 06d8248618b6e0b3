"""Several hosts for one test: unnamed network namespaces joined by veth pairs, and
everything else a test configures over netlink (routes, policy rules, queueing
disciplines, nftables chains, IPsec SAs and policies).

Everything happens inside the test child, which already sits in its own fresh network
namespace (:mod:`harness.sandbox`).  That namespace is host ``a``; every other host is a
namespace made with ``unshare(CLONE_NEWNET)`` and held only by an open descriptor of
``/proc/thread-self/ns/net``.  Nothing is named under /run/netns: when the child exits
(or is killed on time-out) its descriptors close and the namespaces, their veths, routes
and sysctls vanish with them.  A test that needs nothing but its own namespace builds a
``Topology()`` of host ``a`` alone and configures ``lo`` and routes through it.

This is the one module that talks netlink.  Messages are encoded by pyroute2's message
classes (xfrm structures, which pyroute2 lacks, are packed here) and travel over a plain
netlink socket with ``writev``/``readv``: pyroute2's IPRoute transport calls setsockopt,
getsockopt, sendto and recvfrom, which ``--sockspec-prove`` makes fail in the test child,
and a set-up made with them would break before the test observed anything.  A netlink
socket acts on the namespace it was created in, so each host gets its own, opened while
inside it.

A test switches hosts with ``with topo.inside("b"):``; a socket made there stays in ``b``
after the switch back, so the test body stays one single-threaded process.

    topo = two_hosts()                 # a 10.0.1.1/24 <-> b 10.0.1.2/24
    with topo.inside("b"):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("10.0.1.2", 4000))        # bind and use it from anywhere
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field

from pyroute2.netlink import (NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL,
                              NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_ERROR)
from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES, nfgen_msg
from pyroute2.netlink.nfnetlink.nftsocket import (NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE,
                                                  NFT_MSG_NEWTABLE, nft_chain_msg,
                                                  nft_rule_msg, nft_table_msg)
from pyroute2.netlink.rtnl import (RTM_DELADDR, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK,
                                   RTM_NEWNEIGH, RTM_NEWQDISC, RTM_NEWROUTE, RTM_NEWRULE,
                                   TC_H_ROOT)
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import plugins as tc_plugins
from pyroute2.netlink.rtnl.tcmsg import tcmsg
from pyroute2.nftables.expressions import genex
from pyroute2.nftables.expressions import verdict as _nft_verdict

from harness import expect, netns, sandbox
from harness import sysctl as sysctl_mod

IFF_UP = 0x1
IFLA_OPERSTATE, IF_OPER_UP = 16, 6
_IFINFOMSG_SIZE = 16
NUD_PERMANENT = 0x80
RT_TABLE_MAIN = 254
RT_TABLE_COMPAT = 252          # rtmsg/fib_rule_hdr's 8-bit table field for tables above 255
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
RTN_TYPES = {"unicast": 1, "local": 2, "blackhole": 6, "unreachable": 7, "prohibit": 8}
RTAX_MTU = 2
FR_ACT_TO_TBL = 1
LOOPBACK_IFINDEX = 1
_NLMSGHDR = struct.Struct("=IHHII")
NETLINK_NETFILTER = 12
NETLINK_XFRM = 6

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


class _Netlink:
    """Requests with acknowledgements on a netlink socket of ``protocol``, acting on the
    namespace it was opened in."""

    def __init__(self, protocol: int = socket.NETLINK_ROUTE) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        self.seq = 0
        self.buf = bytearray(65536)

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _stamp(self, msg, mtype: int, flags: int) -> int:
        """Fill in a pyroute2 message's header and encode it; its sequence number."""
        seq = self._next_seq()
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = NLM_F_REQUEST | flags
        msg["header"]["sequence_number"] = seq
        msg.encode()
        return seq

    def request(self, msg, mtype: int, flags: int = 0, what: str = "request") -> list[bytes]:
        """Send pyroute2 message ``msg`` and read up to its acknowledgement: the replies
        that came before it (raw messages, header included); an OSError when the kernel
        refused."""
        seq = self._stamp(msg, mtype, flags | NLM_F_ACK)
        return self._send(msg.data, {seq}, what)

    def request_raw(self, mtype: int, payload: bytes, flags: int = 0, what: str = "request") -> list[bytes]:
        """The same for a message whose body is packed by the caller."""
        seq = self._next_seq()
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), mtype, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
        return self._send(header + payload, {seq}, what)

    def batch(self, messages: list[tuple], subsystem: int, what: str) -> None:
        """An nfnetlink batch: ``messages`` (pyroute2 message, type, flags) between a batch
        begin and end, applied by the kernel all or nothing; each is acknowledged."""
        begin, end = nfgen_msg(), nfgen_msg()
        begin["res_id"] = end["res_id"] = subsystem
        data, acked = b"", set()
        self._stamp(begin, 0x10, 0)                      # NFNL_MSG_BATCH_BEGIN
        data += begin.data
        for msg, mtype, flags in messages:
            acked.add(self._stamp(msg, mtype, flags | NLM_F_ACK))
            data += msg.data
        self._stamp(end, 0x11, 0)                        # NFNL_MSG_BATCH_END
        self._send(data + end.data, acked, what)

    def _send(self, data: bytes, acked: set[int], what: str) -> list[bytes]:
        """Write ``data`` and read until every sequence number in ``acked`` has its
        acknowledgement; the other replies to those numbers, in order."""
        fd = self.sock.fileno()
        os.writev(fd, [data])
        waiting, replies = set(acked), []
        while waiting:
            n = os.readv(fd, [self.buf])
            off = 0
            while off + _NLMSGHDR.size <= n:
                length, mtype_in, _, seq, _ = _NLMSGHDR.unpack_from(self.buf, off)
                if seq in waiting:
                    if mtype_in != NLMSG_ERROR:
                        replies.append(bytes(self.buf[off:off + length]))
                    else:
                        err = struct.unpack_from("=i", self.buf, off + _NLMSGHDR.size)[0]
                        if err:
                            raise OSError(-err, f"netlink {what}: {os.strerror(-err)}")
                        waiting.discard(seq)
                off += max((length + 3) & ~3, _NLMSGHDR.size)
        return replies


def _u8_attr(message: bytes, offset: int, wanted: int) -> int | None:
    """The first byte of attribute ``wanted`` in a raw rtnetlink message whose attributes
    start at ``offset``."""
    value = _attr(message, offset, wanted)
    return value[0] if value else None


def _attr(message: bytes, offset: int, wanted: int) -> bytes | None:
    """The payload of attribute ``wanted`` in a raw netlink message whose attributes start
    at ``offset``."""
    while offset + 4 <= len(message):
        length, kind = struct.unpack_from("=HH", message, offset)
        if length < 4:
            return None
        if kind & 0x3FFF == wanted:
            return message[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return None


@dataclass
class Link:
    """One end of a veth pair (or a bridge, or loopback), as seen in its host."""

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
    """A network namespace of the topology: its descriptor, netlink sockets and links."""

    def __init__(self, name: str, fd: int, rtnl: _Netlink):
        self.name, self.fd, self.rtnl = name, fd, rtnl
        self.netlink: dict[int, _Netlink] = {socket.NETLINK_ROUTE: rtnl}
        self.links: dict[str, Link] = {}
        self.lo = Link(name, "lo", LOOPBACK_IFINDEX, "00:00:00:00:00:00", prefixlen=8, mtu=65536)

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

    def iface(self, ifname: str) -> Link:
        """The link named ``ifname``; "lo" is every host's loopback."""
        if ifname == "lo":
            return self.lo
        return self.links[ifname]

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


def tc_handle(text: str) -> int:
    """A tc handle as tc(8) writes it: "1:" is 0x10000, "1:1" is 0x10001 (hexadecimal)."""
    major, _, minor = text.partition(":")
    return int(major or "0", 16) << 16 | int(minor or "0", 16)


class Topology:
    """Hosts (network namespaces) and the links between them.  Host ``a`` is the test
    child's own namespace; it is where the child is whenever no ``inside`` is active.
    Interface indexes are chosen by the topology (unique over all its hosts), so build
    one topology per test child."""

    def __init__(self) -> None:
        started = time.perf_counter()
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.hosts: dict[str, Host] = {"a": Host("a", fd, _Netlink())}
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
        try:
            netns.unshare(netns.CLONE_NEWNET)
        except OSError as exc:
            if exc.errno == errno.EPERM and sandbox.shares_container_namespace():
                expect.skip("cannot make the test's hosts: creating a network namespace needs "
                            "CAP_SYS_ADMIN, and this container refuses new namespaces")
            raise
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            host = self.hosts[name] = Host(name, fd, _Netlink())
            self._prepare(forwarding=forwarding)      # written from inside the new host
            self._set_link(host, LOOPBACK_IFINDEX, up=True)
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

    def _netlink(self, name: str, protocol: int) -> _Netlink:
        """Host ``name``'s netlink socket of ``protocol`` (opened inside it on first use)."""
        host = self.hosts[name]
        if protocol not in host.netlink:
            with self.inside(name):
                host.netlink[protocol] = _Netlink(protocol)
        return host.netlink[protocol]

    # ------------------------------------------------------------------ sysctls

    @staticmethod
    def _write_sysctl(path: str, value) -> None:
        try:
            fd = os.open(f"/proc/sys/{path}", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            sysctl_mod.skip_if_unwritable(path.replace("/", "."), exc)
            raise
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
        self._set_link(self.hosts[name], self.hosts[name].iface(ifname).ifindex, **attrs)

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
        link = self.hosts[name].iface(ifname)
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

    # ------------------------------------------------------------------ addresses, routes, rules

    def _address(self, name: str, ifname: str, cidr: str, mtype: int) -> tuple[Link, str]:
        link = self.hosts[name].iface(ifname)
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
        """Add an IPv4 address ("10.0.1.3" takes the link's prefix length, or "x/len");
        ``ifname`` "lo" is the host's loopback."""
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
                  src: str | None = None, metrics: dict[str, int] | None = None,
                  table: int = RT_TABLE_MAIN) -> None:
        """A route in host ``name``: ``dst`` is "default", "10.0.2.0/24" or an address;
        ``kind`` one of RTN_TYPES ("local" delivers to this host, scope host); ``mtu``
        (optionally locked) and other RTAX_ ``metrics`` go with it; ``table`` (main by
        default) holds it."""
        host = self.hosts[name]
        msg = rtmsg()
        addr, plen = ("0.0.0.0", 0) if dst == "default" else _split(dst, 32)
        msg["family"], msg["dst_len"] = socket.AF_INET, plen
        msg["table"] = table if table < 256 else RT_TABLE_COMPAT
        msg["proto"], msg["type"] = RTPROT_STATIC, RTN_TYPES[kind]
        if kind == "local":
            msg["scope"] = RT_SCOPE_HOST
        else:
            msg["scope"] = RT_SCOPE_LINK if (dev and not via and kind == "unicast") else RT_SCOPE_UNIVERSE
        attrs = [("RTA_DST", addr)] if plen else []
        if table != RT_TABLE_MAIN:
            attrs.append(("RTA_TABLE", table))
        if via:
            attrs.append(("RTA_GATEWAY", via))
        if dev:
            attrs.append(("RTA_OIF", host.iface(dev).ifindex))
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

    def add_rule(self, name: str, *, table: int, priority: int, dst: str | None = None,
                 fwmark: int | None = None, fwmask: int = 0xFFFFFFFF) -> None:
        """A policy routing rule in host ``name``: packets to ``dst`` ("192.0.2.0/24")
        and/or with firewall mark ``fwmark`` (under ``fwmask``) look up ``table``."""
        msg = fibmsg()
        msg["family"], msg["action"] = socket.AF_INET, FR_ACT_TO_TBL
        msg["table"] = table if table < 256 else RT_TABLE_COMPAT
        attrs = [("FRA_TABLE", table), ("FRA_PRIORITY", priority)]
        if dst is not None:
            addr, plen = _split(dst, 32)
            msg["dst_len"] = plen
            attrs.append(("FRA_DST", addr))
        if fwmark is not None:
            attrs += [("FRA_FWMARK", fwmark), ("FRA_FWMASK", fwmask)]
        msg["attrs"] = attrs
        self.hosts[name].rtnl.request(msg, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, what=f"rule in {name}")

    def neighbour(self, name: str, ifname: str, address: str, mac: str) -> None:
        """A permanent ARP entry in host ``name``."""
        host = self.hosts[name]
        msg = ndmsg()
        msg["family"], msg["ifindex"], msg["state"] = socket.AF_INET, host.iface(ifname).ifindex, NUD_PERMANENT
        msg["attrs"] = [("NDA_DST", address), ("NDA_LLADDR", mac)]
        host.rtnl.request(msg, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, what=f"neighbour in {name}")

    # ------------------------------------------------------------------ traffic control

    def add_qdisc(self, name: str, ifname: str, kind: str, *, handle: str, parent: str | None = None,
                  **params) -> None:
        """tc qdisc add dev IFNAME [parent PARENT | root] handle HANDLE KIND PARAMS, in host
        ``name``.  Handles as tc(8) writes them ("1:", "1:1"); PARAMS as pyroute2's tc
        plugin for KIND takes them (tbf: rate="8mbit", burst=4000, latency="500ms")."""
        host = self.hosts[name]
        msg = tcmsg()
        msg["family"], msg["index"] = socket.AF_UNSPEC, host.iface(ifname).ifindex
        msg["handle"] = tc_handle(handle)
        msg["parent"] = TC_H_ROOT if parent is None else tc_handle(parent)
        msg["attrs"] = [("TCA_KIND", kind)]
        if params:
            msg["attrs"].append(("TCA_OPTIONS", tc_plugins[kind].get_parameters(dict(params))))
        host.rtnl.request(msg, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, what=f"qdisc {kind} on {name}:{ifname}")

    # ------------------------------------------------------------------ nftables

    def nft_chain(self, name: str, chain: str, hook: str, *rules: list, priority: int = 0,
                  table: str = "sockspec") -> None:
        """An nftables base chain of type filter on netfilter hook ``hook`` ("prerouting",
        "input", "forward", "output", "postrouting") in host ``name``, in IPv4 table
        ``table`` (created when new), holding ``rules`` in order (each a list of
        expressions: :func:`nft_ct_state`, :func:`nft_match`, :func:`nft_verdict`).  One
        batch over NETLINK_NETFILTER: all of it is in place, or an OSError says why not."""
        sub = NFNL_SUBSYS_NFTABLES << 8
        tab = nft_table_msg()
        tab["attrs"] = [("NFTA_TABLE_NAME", table)]
        base = nft_chain_msg()
        base["attrs"] = [("NFTA_CHAIN_TABLE", table), ("NFTA_CHAIN_NAME", chain),
                         ("NFTA_CHAIN_HOOK", {"attrs": [("NFTA_HOOK_HOOKNUM", NF_INET_HOOKS[hook]),
                                                        ("NFTA_HOOK_PRIORITY", priority)]}),
                         ("NFTA_CHAIN_TYPE", "filter")]
        messages = [(tab, sub | NFT_MSG_NEWTABLE, NLM_F_CREATE), (base, sub | NFT_MSG_NEWCHAIN, NLM_F_CREATE)]
        for expressions in rules:
            rule = nft_rule_msg()
            rule["attrs"] = [("NFTA_RULE_TABLE", table), ("NFTA_RULE_CHAIN", chain),
                             ("NFTA_RULE_EXPRESSIONS", list(expressions))]
            messages.append((rule, sub | NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND))
        for msg, _, _ in messages:
            msg["nfgen_family"] = NFPROTO_IPV4
        self._netlink(name, NETLINK_NETFILTER).batch(messages, NFNL_SUBSYS_NFTABLES,
                                                     what=f"nftables chain {chain} in {name}")

    # ------------------------------------------------------------------ IPsec (xfrm)

    def add_sa(self, name: str, *, src: str, dst: str, spi: int, ctx: bytes | None = None,
               auth_key: bytes = bytes(32)) -> None:
        """ip xfrm state add src SRC dst DST proto esp spi SPI mode transport
        enc "ecb(cipher_null)" "" auth "hmac(sha256)" KEY [ctx CTX], in host ``name``: an
        ESP SA that authenticates but does not encrypt.  ``ctx`` is the SA's security
        context (XFRMA_SEC_CTX, for SELinux)."""
        attrs = (_rtattr(XFRMA_ALG_CRYPT, _xfrm_algo("ecb(cipher_null)", b""))
                 + _rtattr(XFRMA_ALG_AUTH, _xfrm_algo("hmac(sha256)", auth_key)))
        if ctx is not None:
            attrs += _rtattr(XFRMA_SEC_CTX, _xfrm_sec_ctx(ctx))
        body = _usersa_info(src, dst, spi)
        self._netlink(name, NETLINK_XFRM).request_raw(XFRM_MSG_NEWSA, body + attrs, NLM_F_CREATE | NLM_F_EXCL,
                                                      what=f"xfrm state spi {spi:#x} in {name}")

    def add_policy(self, name: str, *, direction: str, src: str, dst: str, proto: int,
                   ctx: bytes | None = None, priority: int = 0) -> None:
        """ip xfrm policy add src SRC/32 dst DST/32 proto PROTO dir DIRECTION [ctx CTX]
        tmpl proto esp mode transport, in host ``name``: traffic of that selector in
        ``direction`` ("in", "out", "fwd") must go through an ESP SA."""
        body = _userpolicy_info(src, dst, proto, XFRM_POLICY_DIRS[direction], priority)
        attrs = _rtattr(XFRMA_TMPL, _user_tmpl())
        if ctx is not None:
            attrs += _rtattr(XFRMA_SEC_CTX, _xfrm_sec_ctx(ctx))
        self._netlink(name, NETLINK_XFRM).request_raw(XFRM_MSG_NEWPOLICY, body + attrs, NLM_F_CREATE | NLM_F_EXCL,
                                                      what=f"xfrm policy {direction} in {name}")

    def del_sa(self, name: str, *, dst: str, spi: int) -> None:
        """ip xfrm state delete dst DST proto esp spi SPI, in host ``name``."""
        body = _usersa_id(dst, spi)
        self._netlink(name, NETLINK_XFRM).request_raw(XFRM_MSG_DELSA, body,
                                                      what=f"delete xfrm state spi {spi:#x} in {name}")

    def del_policy(self, name: str, *, direction: str, src: str, dst: str, proto: int,
                   ctx: bytes | None = None) -> None:
        """ip xfrm policy delete src SRC/32 dst DST/32 proto PROTO dir DIRECTION [ctx CTX],
        in host ``name`` (a labeled policy is found by its selector and its context)."""
        body = (_selector(src, dst, proto) + struct.pack("=IB3x", 0, XFRM_POLICY_DIRS[direction]))
        attrs = _rtattr(XFRMA_SEC_CTX, _xfrm_sec_ctx(ctx)) if ctx is not None else b""
        self._netlink(name, NETLINK_XFRM).request_raw(XFRM_MSG_DELPOLICY, body + attrs,
                                                      what=f"delete xfrm policy {direction} in {name}")

    def sa(self, name: str, *, dst: str, spi: int) -> "SaState":
        """What host ``name``'s kernel holds for the ESP SA (``dst``, ``spi``): the packets
        and bytes it has carried and its security context (None when it has none)."""
        replies = self._netlink(name, NETLINK_XFRM).request_raw(XFRM_MSG_GETSA, _usersa_id(dst, spi),
                                                                what=f"xfrm state spi {spi:#x} in {name}")
        reply = replies[0]
        info = reply[_NLMSGHDR.size:_NLMSGHDR.size + _USERSA_INFO_SIZE]
        nbytes, packets = struct.unpack_from("=QQ", info, _USERSA_CURLFT)
        raw_ctx = _attr(reply, _NLMSGHDR.size + _USERSA_INFO_SIZE, XFRMA_SEC_CTX)
        ctx = None
        if raw_ctx is not None:
            ctx_len = struct.unpack_from("=H", raw_ctx, 6)[0]
            ctx = bytes(raw_ctx[8:8 + ctx_len])
        return SaState(packets=packets, bytes=nbytes, ctx=ctx)


# ---------------------------------------------------------------------- nftables expressions

NFPROTO_IPV4 = 2
NF_INET_HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
NF_VERDICTS = {"drop": 0, "accept": 1}
NFT_PAYLOAD_BASES = {"network": 1, "transport": 2}
NFT_CT_STATE = 0
NFT_REG_1 = 1
NFT_CMP_EQ = 0


def nft_ct_state() -> list:
    """ct state loaded into register 1: a rule holding it makes the host track
    connections (and so defragment at the hook)."""
    return [genex("ct", {"key": NFT_CT_STATE, "dreg": NFT_REG_1})]


def nft_match(header: str, offset: int, value: bytes) -> list:
    """The packet's bytes at ``offset`` of its ``header`` ("network": the IP header,
    "transport": the UDP/TCP header) equal ``value``."""
    load = genex("payload", {"dreg": NFT_REG_1, "base": NFT_PAYLOAD_BASES[header], "offset": offset,
                             "len": len(value)})
    compare = genex("cmp", {"sreg": NFT_REG_1, "op": NFT_CMP_EQ,
                            "data": {"attrs": [("NFTA_DATA_VALUE", value)]}})
    return [load, compare]


def nft_udp_dport(port: int) -> list:
    """ip protocol udp, udp dport ``port``."""
    return nft_match("network", 9, bytes([socket.IPPROTO_UDP])) + nft_match("transport", 2, struct.pack("!H", port))


def nft_verdict(name: str) -> list:
    """The rule's verdict: "drop" or "accept"."""
    return _nft_verdict(NF_VERDICTS[name])


# ---------------------------------------------------------------------- xfrm structures
# <linux/xfrm.h> on LP64; pyroute2 has no xfrm messages.

XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA, XFRM_MSG_NEWPOLICY = 0x10, 0x11, 0x12, 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRMA_ALG_AUTH, XFRMA_ALG_CRYPT, XFRMA_TMPL, XFRMA_SEC_CTX = 1, 2, 5, 8
XFRM_POLICY_DIRS = {"in": 0, "out": 1, "fwd": 2}
XFRM_MODE_TRANSPORT = 0
XFRM_SC_DOI_LSM, XFRM_SC_ALG_SELINUX = 1, 1
XFRM_INF = 0xFFFFFFFFFFFFFFFF
_USERSA_INFO_SIZE = 224          # sizeof(struct xfrm_usersa_info)
_USERSA_CURLFT = 160             # offsetof(struct xfrm_usersa_info, curlft): bytes, packets, ...


@dataclass(frozen=True)
class SaState:
    packets: int
    bytes: int
    ctx: bytes | None


def _rtattr(kind: int, payload: bytes) -> bytes:
    return (struct.pack("=HH", 4 + len(payload), kind) + payload).ljust((4 + len(payload) + 3) & ~3, b"\0")


def _xaddr(addr: str) -> bytes:
    return socket.inet_aton(addr) + bytes(12)          # xfrm_address_t (16 bytes)


def _selector(src: str, dst: str, proto: int, prefixlen: int = 32) -> bytes:
    """struct xfrm_selector (56 bytes): ``src`` and ``dst`` (host addresses by default),
    any port, ``proto`` (0: any)."""
    return (_xaddr(dst) + _xaddr(src) + bytes(8)                        # daddr, saddr, ports and masks
            + struct.pack("=HBBB3xiI", socket.AF_INET, prefixlen, prefixlen, proto, 0, 0))


def _usersa_id(dst: str, spi: int) -> bytes:
    """struct xfrm_usersa_id (24 bytes): daddr, spi, family, proto ESP."""
    return (_xaddr(dst) + struct.pack("!I", spi) + struct.pack("=HB", socket.AF_INET, socket.IPPROTO_ESP)).ljust(24, b"\0")


def _lifetime_cfg() -> bytes:
    return struct.pack("=8Q", XFRM_INF, XFRM_INF, XFRM_INF, XFRM_INF, 0, 0, 0, 0)  # no limits


def _usersa_info(src: str, dst: str, spi: int) -> bytes:
    """struct xfrm_usersa_info: a transport-mode ESP SA from ``src`` to ``dst``."""
    xid = _xaddr(dst) + struct.pack("!I", spi) + struct.pack("=B3x", socket.IPPROTO_ESP)  # struct xfrm_id
    out = (_selector("0.0.0.0", "0.0.0.0", 0, prefixlen=0) + xid + _xaddr(src) + _lifetime_cfg()
           + bytes(32) + bytes(12)                                      # curlft, stats
           + struct.pack("=IIHBBB", 0, 0, socket.AF_INET, XFRM_MODE_TRANSPORT, 32, 0))
    return out.ljust(_USERSA_INFO_SIZE, b"\0")


def _userpolicy_info(src: str, dst: str, proto: int, direction: int, priority: int) -> bytes:
    """struct xfrm_userpolicy_info (168 bytes): action allow, no sharing."""
    out = (_selector(src, dst, proto) + _lifetime_cfg() + bytes(32)
           + struct.pack("=IIBBBB", priority, 0, direction, 0, 0, 0))
    return out.ljust(168, b"\0")


def _user_tmpl() -> bytes:
    """struct xfrm_user_tmpl (64 bytes): ESP, transport mode, any SPI, all algorithms."""
    xid = bytes(16) + struct.pack("!I", 0) + struct.pack("=B3x", socket.IPPROTO_ESP)
    return (xid + struct.pack("=H2x", socket.AF_INET) + bytes(16)
            + struct.pack("=IBBBxIII", 0, XFRM_MODE_TRANSPORT, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF))


def _xfrm_algo(name: str, key: bytes) -> bytes:
    """struct xfrm_algo: name[64], key length in bits, key."""
    return name.encode().ljust(64, b"\0") + struct.pack("=I", 8 * len(key)) + key


def _xfrm_sec_ctx(ctx: bytes) -> bytes:
    """struct xfrm_user_sec_ctx and the context string (no terminating null)."""
    return struct.pack("=HHBBH", 8 + len(ctx), XFRMA_SEC_CTX, XFRM_SC_ALG_SELINUX, XFRM_SC_DOI_LSM, len(ctx)) + ctx


class _Dry(_Netlink):
    """Encodes and discards: used once at import."""

    def __init__(self) -> None:
        self.seq = 0

    def _send(self, data: bytes, acked: set[int], what: str) -> list[bytes]:
        return []


def _warm() -> None:
    """Encode one message of each kind in the importing (parent) process: pyroute2
    compiles its attribute tables on first use, which would otherwise cost every test
    child a few milliseconds."""
    topo = Topology.__new__(Topology)
    topo.hosts = {n: Host(n, 0, _Dry()) for n in ("a", "b")}
    topo.hosts["a"].netlink[NETLINK_NETFILTER] = _Dry()
    topo._current, topo._next_ifindex = "a", 2
    topo._wait_running = lambda host, ifindex: None
    topo.connect("a", "b", "10.0.1.1/24", "10.0.1.2/24")
    topo.add_bridge("a")
    topo.connect("a", "b", master="br0")
    topo.add_route("a", "default", via="10.0.1.2", dev="to-b", src="10.0.1.1", mtu=1280, lock_mtu=True)
    topo.add_route("a", "192.0.2.0/24", kind="local", dev="lo", table=100)
    topo.add_rule("a", table=100, priority=100, dst="192.0.2.0/24", fwmark=1, fwmask=1)
    topo.add_qdisc("a", "lo", "tbf", handle="1:", rate="8mbit", burst=4000, latency="500ms")
    topo.add_qdisc("a", "lo", "pfifo_fast", handle="2:", parent="1:1")
    topo.nft_chain("a", "out", "output", nft_ct_state(), nft_udp_dport(9) + nft_verdict("drop"))
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
