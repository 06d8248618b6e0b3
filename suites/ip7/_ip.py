"""What the ip(7) tests share: <linux/in.h> constants, socket kinds, option arguments as
exact bytes, the structures the kernel returns, packets built and captured, and waiting.
The IPv4 basics other suites use too (option numbers, sockets and connected pairs over
loopback, waiting for a datagram with its control messages) live in :mod:`harness.inet`
and are re-exported here.

The option arguments (ip_mreqn, ip_mreq, ip_mreq_source, ip_msfilter, in_pktinfo) are
packed here as exact bytes; the control-message payloads the kernel returns
(sock_extended_err with its offender, in_pktinfo) and the IPv4 headers seen by a raw or
packet socket are unpacked here.  Control messages themselves are split by
:mod:`harness.cmsg`; links, addresses and routes are made by :mod:`harness.topology`.
Waiting is always for an event with a time limit: a datagram, an error-queue entry, a
captured packet.
"""

from __future__ import annotations

import select
import socket
import struct
from dataclasses import dataclass

import pytest

from harness import expect, rawsock, sockaddr, topology
# The IPv4 basics several suites share live in harness.inet; re-exported for ip(7)'s tests.
from harness.inet import (DGRAM, IP_ADD_MEMBERSHIP, IP_ADD_SOURCE_MEMBERSHIP,  # noqa: F401
                          IP_BIND_ADDRESS_NO_PORT, IP_BLOCK_SOURCE, IP_DROP_MEMBERSHIP,
                          IP_DROP_SOURCE_MEMBERSHIP, IP_FREEBIND, IP_HDRINCL, IP_MSFILTER,
                          IP_MTU, IP_MTU_DISCOVER, IP_MULTICAST_ALL, IP_MULTICAST_IF,
                          IP_MULTICAST_LOOP, IP_MULTICAST_TTL, IP_NODEFRAG, IP_OPTIONS,
                          IP_ORIGDSTADDR, IP_PASSSEC, IP_PKTINFO, IP_RECVERR, IP_RECVOPTS,
                          IP_RECVORIGDSTADDR, IP_RECVTOS, IP_RECVTTL, IP_RETOPTS,
                          IP_ROUTER_ALERT, IP_TOS, IP_TRANSPARENT, IP_TTL, IP_UNBLOCK_SOURCE,
                          LOOPBACK, SOL_IP, STREAM, WAIT, inet, int_opt, ip_cmsgs, listener,
                          pending, recv_control, recv_within, stream_pair, udp_receiver,
                          wait_readable)

IP_PMTUDISC_DONT, IP_PMTUDISC_WANT, IP_PMTUDISC_DO, IP_PMTUDISC_PROBE = 0, 1, 2, 3
MCAST_EXCLUDE, MCAST_INCLUDE = 0, 1
SO_EE_ORIGIN_NONE, SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 0, 1, 2, 3
ICMP_DEST_UNREACH = 3
ICMP_NET_UNREACH, ICMP_PORT_UNREACH, ICMP_FRAG_NEEDED = 0, 3, 4
IPPROTO_EXPERIMENT = 253        # RFC 3692: "Use for experimentation and testing"
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IP_DF, IP_MF = 0x4000, 0x2000
UDP_HEADER = 8
IP_HEADER = 20                  # an IPv4 header without options

# ---------------------------------------------------------------------- socket kinds

KINDS = {"tcp": STREAM, "udp": DGRAM}


def over(*names: str):
    """Parametrize a test's ``kind`` over IP socket kinds by name ("tcp", "udp")."""
    names = names or tuple(KINDS)
    return pytest.mark.parametrize("kind", [KINDS[n] for n in names], ids=list(names))


def second_interface(*, default_route: bool = False) -> topology.Topology:
    """This host (``a``) with an interface besides lo: its end "to-b" of a veth pair to a
    host ``b`` (:func:`harness.topology.two_hosts`: a 10.0.1.1/24, broadcast 10.0.1.255;
    b 10.0.1.2/24), optionally with a's default route through it, via b.  Keep the
    topology while the link is needed: it holds b's namespace."""
    topo = topology.two_hosts()
    if default_route:
        topo.add_route("a", "default", via=topo["b"].address)
    return topo


# ---------------------------------------------------------------------- option arguments

def _addr(a: str) -> bytes:
    return socket.inet_aton(a)


def ip_mreqn(group: str, address: str = "0.0.0.0", ifindex: int = 0) -> bytes:
    """struct ip_mreqn (12 bytes): imr_multiaddr, imr_address, imr_ifindex."""
    return _addr(group) + _addr(address) + struct.pack("=i", ifindex)


def ip_mreq(group: str, interface: str = "0.0.0.0") -> bytes:
    """struct ip_mreq (8 bytes): imr_multiaddr, imr_interface."""
    return _addr(group) + _addr(interface)


def ip_mreq_source(group: str, interface: str, source: str) -> bytes:
    """struct ip_mreq_source (12 bytes): imr_multiaddr, imr_interface, imr_sourceaddr."""
    return _addr(group) + _addr(interface) + _addr(source)


def ip_msfilter(group: str, interface: str, fmode: int, sources: list[str]) -> bytes:
    """struct ip_msfilter: multiaddr, interface, fmode, numsrc, then the sources (at least
    one slot, as IP_MSFILTER_SIZE(n) counts)."""
    slots = b"".join(_addr(s) for s in sources) or bytes(4)
    return _addr(group) + _addr(interface) + struct.pack("=II", fmode, len(sources)) + slots


def parse_msfilter(raw: bytes) -> tuple[str, str, int, list[str]]:
    group, iface = socket.inet_ntoa(raw[0:4]), socket.inet_ntoa(raw[4:8])
    fmode, numsrc = struct.unpack_from("=II", raw, 8)
    return group, iface, fmode, [socket.inet_ntoa(raw[16 + 4 * i:20 + 4 * i]) for i in range(numsrc)]


def in_pktinfo(ifindex: int = 0, spec_dst: str = "0.0.0.0", addr: str = "0.0.0.0") -> bytes:
    """struct in_pktinfo (12 bytes): ipi_ifindex, ipi_spec_dst, ipi_addr."""
    return struct.pack("=i", ifindex) + _addr(spec_dst) + _addr(addr)


def getsockopt_in(sock: socket.socket, level: int, option: int, inbuf: bytes, buflen: int) -> bytes:
    """getsockopt(2) on a buffer that carries input (IP_MSFILTER reads the group and
    interface from it, the iptables IPT_SO_GET_INFO the table name)."""
    return rawsock.getsockopt(sock.fileno(), level, option, buflen, fill=inbuf)[0]


# ---------------------------------------------------------------------- what comes back

@dataclass(frozen=True)
class Pktinfo:
    ifindex: int
    spec_dst: str
    addr: str


def parse_pktinfo(data: bytes) -> Pktinfo:
    return Pktinfo(struct.unpack_from("=i", data)[0], socket.inet_ntoa(data[4:8]),
                   socket.inet_ntoa(data[8:12]))


@dataclass(frozen=True)
class ExtendedErr:
    """struct sock_extended_err and the sockaddr_in SO_EE_OFFENDER points at."""

    errno: int
    origin: int
    type: int
    code: int
    pad: int
    info: int
    data: int
    offender: bytes          # the 16 bytes after the structure

    @property
    def offender_family(self) -> int:
        return struct.unpack_from("=H", self.offender)[0]

    @property
    def offender_addr(self) -> str:
        return sockaddr.parse_in4(self.offender)[1]


_EE = struct.Struct("=IBBBBII")


def parse_extended_err(data: bytes) -> ExtendedErr:
    fields = _EE.unpack_from(data)
    return ExtendedErr(*fields, offender=bytes(data[_EE.size:_EE.size + sockaddr.SOCKADDR_IN]))


def igmp_groups() -> dict[str, set[str]]:
    """/proc/net/igmp of the namespace the caller is in: device name -> joined groups."""
    with open("/proc/net/igmp") as f:
        lines = f.read().splitlines()[1:]
    out: dict[str, set[str]] = {}
    device = None
    for line in lines:
        if not line.startswith("\t"):
            device = line.split()[1]
            out[device] = set()
        else:
            group = int(line.split()[0], 16)
            out[device].add(socket.inet_ntoa(struct.pack("=I", group)))
    return out


# ---------------------------------------------------------------------- packets

def ipv4_header(src: str, dst: str, *, ttl: int, ident: int, tos: int = 0, proto: int = socket.IPPROTO_UDP,
                total: int = 0, frag: int = 0) -> bytes:
    """An IPv4 header without options (checksum 0: the kernel fills it, and a zero total
    length, for IP_HDRINCL)."""
    return struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, ident, frag, ttl, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))


def udp_header(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header (checksum 0: none) followed by ``payload``."""
    return struct.pack("!HHHH", sport, dport, UDP_HEADER + len(payload), 0) + payload


@dataclass(frozen=True)
class IPv4:
    """An IPv4 header and what follows it, as a raw or packet socket saw it."""

    raw: bytes

    @property
    def ihl(self) -> int:
        return (self.raw[0] & 0xF) * 4

    tos = property(lambda self: self.raw[1])
    total_length = property(lambda self: struct.unpack_from("!H", self.raw, 2)[0])
    ident = property(lambda self: struct.unpack_from("!H", self.raw, 4)[0])
    frag = property(lambda self: struct.unpack_from("!H", self.raw, 6)[0])
    ttl = property(lambda self: self.raw[8])
    protocol = property(lambda self: self.raw[9])
    src = property(lambda self: socket.inet_ntoa(self.raw[12:16]))
    dst = property(lambda self: socket.inet_ntoa(self.raw[16:20]))
    options = property(lambda self: self.raw[20:self.ihl])
    payload = property(lambda self: self.raw[self.ihl:])
    df = property(lambda self: bool(self.frag & IP_DF))
    mf = property(lambda self: bool(self.frag & IP_MF))
    offset = property(lambda self: (self.frag & 0x1FFF) * 8)

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.offset != 0

    @property
    def udp_ports(self) -> tuple[int, int]:
        return struct.unpack_from("!HH", self.payload)


# ---------------------------------------------------------------------- waiting

def wait_error(sock: socket.socket, what: str, timeout: float = WAIT) -> None:
    """Wait for POLLERR (a pending error or an error-queue entry)."""
    poller = select.poll()
    poller.register(sock, select.POLLERR)
    if not poller.poll(int(timeout * 1000)):
        raise expect.Deviation(what, "an error reported on the socket (POLLERR)",
                               f"none within {timeout:g} s")


class Capture:
    """IPv4 packets arriving at one interface, seen by an AF_PACKET socket in its host
    (so fragments show one by one, with the header as it was on the wire)."""

    def __init__(self, topo, host: str, ifname: str | None = None):
        self.ifindex = topo[host].iface(ifname).ifindex if ifname else topo[host].ifindex
        self.sock = topo.socket(host, socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))

    def next(self, what: str, match=lambda pkt: True, timeout: float = WAIT) -> IPv4:
        """The next arriving packet for which ``match`` holds."""
        while True:
            wait_readable(self.sock, what, timeout)
            got = rawsock.recvmsg(self.sock.fileno(), 65536, namelen=20, flags=socket.MSG_DONTWAIT)
            # struct sockaddr_ll: family, protocol, ifindex, hatype, pkttype, ...
            ifindex, pkttype = struct.unpack_from("=i", got.name.raw, 4)[0], got.name.raw[10]
            if pkttype == PACKET_OUTGOING or ifindex != self.ifindex:
                continue
            pkt = IPv4(got.data)
            if match(pkt):
                return pkt

    def close(self) -> None:
        self.sock.close()


def udp_to(port: int):
    """A Capture match: UDP packets to ``port``, and non-first fragments (which carry no
    UDP header) of any UDP datagram."""
    def match(pkt: IPv4) -> bool:
        return pkt.protocol == socket.IPPROTO_UDP and (pkt.offset != 0 or pkt.udp_ports[1] == port)
    return match
