"""ip(7) IP_PKTINFO and IP_RECVORIGDSTADDR across two hosts: what a receiver learns about
the interface and the addresses of a datagram, and how IP_PKTINFO on sendmsg(2) picks the
source address and the outgoing interface."""

from __future__ import annotations

import socket

import pytest

from harness import cmsg, expect, rawsock, sockaddr, topology
from suites.ip7._ip import (
    IP_ADD_MEMBERSHIP, IP_ORIGDSTADDR, IP_PKTINFO, IP_RECVORIGDSTADDR, SOL_IP, in_pktinfo,
    ip_mreqn, parse_pktinfo, recv_control, wait_readable)

PORT = 4321
G = "239.1.2.3"


def _pktinfo(items: list[cmsg.Cmsg]):
    found = cmsg.find(items, SOL_IP, IP_PKTINFO)
    expect.equal("number of IP_PKTINFO control messages", len(found), 1)
    expect.equal("IP_PKTINFO payload length (struct in_pktinfo)", len(found[0].data), 12)
    return parse_pktinfo(found[0].data)


def _udp_receiver(topo, host: str = "b") -> socket.socket:
    sock = topo.socket(host)
    sock.bind(("0.0.0.0", PORT))
    return sock


# ---------------------------------------------------------------------- receiving

DESTINATIONS = [
    pytest.param("10.0.1.2", "10.0.1.2", id="unicast"),
    pytest.param("10.0.1.255", "10.0.1.255", id="subnet-broadcast"),
    pytest.param(G, G, id="group"),
]


@pytest.mark.clause("ip.7/ip-pktinfo/pass-pktinfo", "ip.7/ip-pktinfo/flag-argument",
                    "ip.7/ip-pktinfo/ipi-ifindex", "ip.7/ip-pktinfo/ipi-spec-dst-ipi-addr")
@pytest.mark.fault("recvmsg", "setsockopt")
@pytest.mark.parametrize("dst, header_dst", DESTINATIONS)
def test_pktinfo_describes_the_received_datagram(dst, header_dst):
    """"Pass an IP_PKTINFO ancillary message that contains a pktinfo structure that
    supplies some information about the incoming packet." "The argument is a flag that
    tells the socket whether the IP_PKTINFO message should be passed or not."
    "ipi_ifindex is the unique index of the interface the packet was received on."
    "ipi_spec_dst is the local address of the packet and ipi_addr is the destination
    address in the packet header."

    a sends two datagrams to b; b's socket sets the flag between them.  The first comes
    without IP_PKTINFO; the second with ipi_ifindex = b's veth, ipi_spec_dst = b's local
    address 10.0.1.2 and ipi_addr = the header's destination (unicast, broadcast or
    group address)."""
    topo = topology.two_hosts()
    rx = _udp_receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", topo["b"].ifindex))
    tx = topo.socket("a")
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.sendto(b"flag off", (dst, PORT))
    data, items = recv_control(rx, "the first datagram")
    expect.equal("control messages without the flag", [(c.level, c.type) for c in items], [])
    rx.setsockopt(SOL_IP, IP_PKTINFO, 1)
    tx.sendto(b"flag on", (dst, PORT))
    data, items = recv_control(rx, "the second datagram")
    info = _pktinfo(items)
    expect.equal("ipi_ifindex", info.ifindex, topo["b"].ifindex)
    expect.equal("ipi_spec_dst", info.spec_dst, "10.0.1.2")
    expect.equal("ipi_addr", info.addr, header_dst)


SOCKET_KINDS = [
    pytest.param(socket.SOCK_DGRAM, 0, True, id="udp"),
    pytest.param(socket.SOCK_RAW, socket.IPPROTO_UDP, True, id="raw"),
    pytest.param(socket.SOCK_STREAM, 0, False, id="tcp"),
]


@pytest.mark.clause("ip.7/ip-pktinfo/datagram-only")
@pytest.mark.fault("recvmsg", "setsockopt")
@pytest.mark.parametrize("kind, proto, gets_pktinfo", SOCKET_KINDS)
def test_pktinfo_only_for_datagram_sockets(kind, proto, gets_pktinfo):
    """"This works only for datagram ori-ented sockets."

    UDP and raw sockets in b get an IP_PKTINFO message with what a sends; a TCP socket
    accepts the option but its recvmsg never carries the message."""
    topo = topology.two_hosts()
    rx = topo.socket("b", socket.AF_INET, kind, proto)
    rx.setsockopt(SOL_IP, IP_PKTINFO, 1)
    if kind == socket.SOCK_STREAM:
        rx.bind(("10.0.1.2", PORT))
        rx.listen()
        tx = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
        tx.connect(("10.0.1.2", PORT))
        rx, _ = rx.accept()
        rx.setsockopt(SOL_IP, IP_PKTINFO, 1)
        tx.sendall(b"stream data")
    else:
        if kind == socket.SOCK_DGRAM:
            rx.bind(("0.0.0.0", PORT))
        topo.socket("a").sendto(b"datagram", ("10.0.1.2", PORT))
    _, items = recv_control(rx, "data at b")
    found = cmsg.find(items, SOL_IP, IP_PKTINFO)
    expect.equal("IP_PKTINFO control message present", bool(found), gets_pktinfo)
    if gets_pktinfo:
        expect.equal("ipi_ifindex", parse_pktinfo(found[0].data).ifindex, topo["b"].ifindex)


@pytest.mark.clause("ip.7/ip-pktinfo/control-message-only", "ip.7/ip-pktinfo/flag-argument")
@pytest.mark.fault("getsockopt")
def test_pktinfo_getsockopt_returns_only_the_flag():
    """"The message itself can be sent/retrieved only as a control message with a packet
    using recvmsg(2) or"

    getsockopt(IP_PKTINFO) into a buffer the size of struct in_pktinfo (12 bytes)
    returns the int flag (4 bytes), never a structure."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expect.equal("getsockopt(IP_PKTINFO) before setting", rawsock.getsockopt(sock.fileno(), SOL_IP, IP_PKTINFO, 12),
                 (b"\0\0\0\0", 4))
    sock.setsockopt(SOL_IP, IP_PKTINFO, 1)
    expect.equal("getsockopt(IP_PKTINFO) after setting 1", rawsock.getsockopt(sock.fileno(), SOL_IP, IP_PKTINFO, 12),
                 (b"\1\0\0\0", 4))


# ---------------------------------------------------------------------- sending

@pytest.mark.clause("ip.7/ip-pktinfo/sendmsg-spec-dst-source")
@pytest.mark.fault("sendmsg")
def test_pktinfo_spec_dst_chooses_the_source():
    """"If IP_PKTINFO is passed to sendmsg(2) and ipi_spec_dst is not zero, then it is
    used as the local source address for the routing table lookup and for setting up IP
    source route options."

    a has 10.0.1.1 and 10.0.1.3; sendmsg with ipi_spec_dst = 10.0.1.3 (ipi_ifindex 0)
    from an unbound socket: b sees the datagram come from 10.0.1.3."""
    topo = topology.two_hosts()
    topo.add_address("a", "to-b", "10.0.1.3")
    rx = _udp_receiver(topo)
    tx = topo.socket("a")
    control = cmsg.encode([cmsg.Cmsg(SOL_IP, IP_PKTINFO, in_pktinfo(0, "10.0.1.3"))])
    rawsock.sendmsg(tx.fileno(), b"spec_dst", control, sockaddr.in4("10.0.1.2", PORT))
    wait_readable(rx, "the datagram at b")
    data, (src, _) = rx.recvfrom(64, socket.MSG_DONTWAIT)
    expect.equal("source address seen by b", src, "10.0.1.3")


@pytest.mark.clause("ip.7/ip-pktinfo/sendmsg-ifindex-primary-address")
@pytest.mark.fault("sendmsg")
@pytest.mark.parametrize("spec_dst", ["0.0.0.0", "10.0.1.1"])
def test_pktinfo_ifindex_uses_the_interface_primary_address(spec_dst):
    """"When ipi_ifindex is not zero, the primary local address of the interface
    specified by the index overwrites ipi_spec_dst for the routing table lookup."

    a and b share two links.  sendmsg to b's first-link address 10.0.1.2 with ipi_ifindex
    = a's second link: the datagram leaves by the second link (it arrives on b's second
    link) and its source is that interface's primary address, 10.0.3.1, whether
    ipi_spec_dst is 0 or another local address (10.0.1.1), which it overwrites."""
    topo = topology.two_hosts()
    a2, b2 = topo.connect("a", "b", "10.0.3.1/24", "10.0.3.2/24")
    topo.neighbour("a", a2.name, "10.0.1.2", b2.mac)
    rx = _udp_receiver(topo)
    rx.setsockopt(SOL_IP, IP_PKTINFO, 1)
    tx = topo.socket("a")
    control = cmsg.encode([cmsg.Cmsg(SOL_IP, IP_PKTINFO, in_pktinfo(a2.ifindex, spec_dst))])
    rawsock.sendmsg(tx.fileno(), b"by index", control, sockaddr.in4("10.0.1.2", PORT))
    wait_readable(rx, "the datagram at b")
    got = rawsock.recvmsg(rx.fileno(), 64, controllen=64, namelen=16, flags=socket.MSG_DONTWAIT)
    arrived = parse_pktinfo(cmsg.find(cmsg.decode(got.control), SOL_IP, IP_PKTINFO)[0].data).ifindex
    expect.equal("b's interface the datagram arrived on", arrived, b2.ifindex)
    expect.equal("source address seen by b", sockaddr.parse_in4(got.name.raw)[1], "10.0.3.1")


# ---------------------------------------------------------------------- IP_RECVORIGDSTADDR

@pytest.mark.clause("ip.7/ip-recvorigdstaddr/original-destination", "ip.7/ip-recvorigdstaddr/struct-sockaddr-in")
@pytest.mark.fault("recvmsg", "setsockopt")
@pytest.mark.parametrize("dst", ["10.0.1.2", G])
def test_recvorigdstaddr(dst):
    """"This boolean option enables the IP_ORIGDSTADDR ancil-lary message in recvmsg(2),
    in which the kernel returns the original destination address of the datagram being
    received." "The ancillary message contains a struct"  (sockaddr_in)

    b's socket, bound to 0.0.0.0:4321 with the option on, receives a datagram to
    <dst>:4321: the IP_ORIGDSTADDR message holds the 16 bytes of a sockaddr_in with
    AF_INET, port 4321 and <dst>.  (No redirection is set up: the original destination
    is the datagram's own.)"""
    topo = topology.two_hosts()
    rx = _udp_receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", topo["b"].ifindex))
    rx.setsockopt(SOL_IP, IP_RECVORIGDSTADDR, 1)
    topo.socket("a").sendto(b"where to", (dst, PORT))
    _, items = recv_control(rx, "the datagram at b")
    found = cmsg.find(items, SOL_IP, IP_ORIGDSTADDR)
    expect.equal("number of IP_ORIGDSTADDR control messages", len(found), 1)
    expect.equal("IP_ORIGDSTADDR payload", found[0].data, sockaddr.in4(dst, PORT))
