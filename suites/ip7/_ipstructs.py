"""ip(7) structures, constants and packet views shared by the multi-host ip(7) tests.

The option arguments (ip_mreqn, ip_mreq, ip_mreq_source, ip_msfilter, in_pktinfo) are
packed here as exact bytes; the control-message payloads the kernel returns
(sock_extended_err with its offender, in_pktinfo) and the IPv4 headers seen by a raw or
packet socket are unpacked here.  Control messages themselves are split by
:mod:`harness.cmsg`.  Waiting is always for an event with a time limit: a datagram, an
error-queue entry, a captured packet.
"""

from __future__ import annotations

import select
import socket
import struct
from dataclasses import dataclass

from harness import expect, rawsock, sockaddr

# <linux/in.h>; most are missing from Python's socket module.
IP_TOS, IP_TTL, IP_HDRINCL, IP_OPTIONS, IP_ROUTER_ALERT = 1, 2, 3, 4, 5
IP_RECVOPTS, IP_RETOPTS, IP_PKTINFO = 6, 7, 8
IP_MTU_DISCOVER, IP_RECVERR, IP_RECVTTL, IP_RECVTOS, IP_MTU = 10, 11, 12, 13, 14
IP_ORIGDSTADDR = IP_RECVORIGDSTADDR = 20
IP_NODEFRAG = 22
IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP = 32, 33, 34
IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP = 35, 36
IP_UNBLOCK_SOURCE, IP_BLOCK_SOURCE = 37, 38
IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP = 39, 40
IP_MSFILTER = 41
IP_MULTICAST_ALL = 49
IP_PMTUDISC_DONT, IP_PMTUDISC_WANT, IP_PMTUDISC_DO, IP_PMTUDISC_PROBE = 0, 1, 2, 3
MCAST_EXCLUDE, MCAST_INCLUDE = 0, 1
SO_EE_ORIGIN_NONE, SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 0, 1, 2, 3
ICMP_DEST_UNREACH = 3
ICMP_NET_UNREACH, ICMP_PORT_UNREACH, ICMP_FRAG_NEEDED = 0, 3, 4
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SOL_IP = socket.IPPROTO_IP
IP_DF, IP_MF = 0x4000, 0x2000
UDP_HEADER = 8
IP_HEADER = 20
WAIT = 2.0          # seconds: the limit of every wait for an event that should come


def _addr(a: str) -> bytes:
    return socket.inet_aton(a)


# ---------------------------------------------------------------------- option arguments

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


def int_opt(value: int) -> bytes:
    return struct.pack("=i", value)


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

def wait_readable(sock: socket.socket, what: str, timeout: float = WAIT) -> None:
    """Wait until ``sock`` is readable; a deviation if nothing comes within ``timeout``."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise expect.Deviation(what, "something to receive", f"nothing within {timeout:g} s")


def recv_within(sock: socket.socket, what: str, bufsize: int = 65536, timeout: float = WAIT):
    """recvfrom after waiting for readability: (data, address)."""
    wait_readable(sock, what, timeout)
    return sock.recvfrom(bufsize, socket.MSG_DONTWAIT)


def wait_error(sock: socket.socket, what: str, timeout: float = WAIT) -> None:
    """Wait for POLLERR (a pending error or an error-queue entry)."""
    poller = select.poll()
    poller.register(sock, select.POLLERR)
    if not poller.poll(int(timeout * 1000)):
        raise expect.Deviation(what, "an error reported on the socket (POLLERR)",
                               f"none within {timeout:g} s")


def pending(sock: socket.socket) -> bool:
    """Whether something is queued to read right now."""
    return bool(select.select([sock], [], [], 0)[0])


class Capture:
    """IPv4 packets arriving at one interface, seen by an AF_PACKET socket in its host
    (so fragments show one by one, with the header as it was on the wire)."""

    def __init__(self, topo, host: str, ifname: str | None = None):
        self.ifindex = topo[host].links[ifname].ifindex if ifname else topo[host].ifindex
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
