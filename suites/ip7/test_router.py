"""ip(7) DESCRIPTION: the IP router and its packet filter, across hosts a - r - b
(harness.topology.routed: r forwards between 10.0.1.0/24 and 10.0.2.0/24).

The filter is an nftables chain on r's forward hook, made over netlink by
harness.topology.  That a datagram is dropped is shown by order and a short bounded wait:
it is sent first, a datagram to another port of b after it on the same path, and once
that one has arrived the dropped one is given SETTLE more seconds to show up at b.
"""

from __future__ import annotations

import select
import socket
import struct

import pytest

from harness import cmsg, expect, kernel, rawsock, sockaddr, topology
from suites.ip7._ip import IP_RECVTTL, IP_TTL, SOL_IP, Capture, ip_cmsgs, udp_to, wait_readable

A, B = "10.0.1.1", "10.0.2.1"
PORT, MARKER_PORT = 4321, 4322
SETTLE = 0.02          # seconds a dropped datagram gets to appear at b after the marker arrived


def _receiver(topo, port: int) -> socket.socket:
    rx = topo.socket("b")
    rx.setsockopt(SOL_IP, IP_RECVTTL, 1)
    rx.bind((B, port))
    return rx


def _received(rx: socket.socket, what: str) -> tuple[bytes, str, int | None]:
    """The next datagram at ``rx`` by recvmsg(2): (data, source address, the TTL it
    arrived with)."""
    wait_readable(rx, what)
    got = rawsock.recvmsg(rx.fileno(), 2048, controllen=64, namelen=sockaddr.SOCKADDR_IN,
                          flags=socket.MSG_DONTWAIT)
    ttl = ip_cmsgs(cmsg.decode(got.control), IP_TTL)
    return got.data, sockaddr.parse_in4(got.name.raw)[1], struct.unpack("=i", ttl[0].data)[0] if ttl else None


@pytest.mark.clause("ip.7/description/router-and-packet-filter")
@pytest.mark.fault("sendto", "recvmsg")
def test_router_forwards_and_its_packet_filter_drops():
    """"It also contains an IP router including a packet filter."

    The router: a's datagram to b's 10.0.2.1, on another network, reaches b's socket from
    a's 10.0.1.1 with the TTL a sent it with less one -- one hop, through r.  The packet
    filter: with a netfilter rule in r's FORWARD hook (nftables, "udp dport 4321 drop"),
    a's next datagram to port 4321 arrives at r (seen on r's a-side link) but not at b,
    while a datagram to port 4322 sent after it on the same path still reaches b."""
    if kernel.config_enabled("CONFIG_NF_TABLES") is False:
        expect.skip("the kernel was built without nftables (CONFIG_NF_TABLES unset), the packet "
                    "filter this test configures")
    topo = topology.routed(mtu=1500)
    rx, marker_rx = _receiver(topo, PORT), _receiver(topo, MARKER_PORT)
    tx = topo.socket("a")
    sent_ttl = tx.getsockopt(SOL_IP, IP_TTL)
    tx.sendto(b"forwarded", (B, PORT))
    expect.equal("datagram at b through r: (data, source, TTL)", _received(rx, "the datagram at b, through r"),
                 (b"forwarded", A, sent_ttl - 1))

    topo.nft_chain("r", "forward", "forward", topology.nft_udp_dport(PORT) + topology.nft_verdict("drop"))
    at_r = Capture(topo, "r", "to-a")
    tx.sendto(b"filtered", (B, PORT))
    tx.sendto(b"marker", (B, MARKER_PORT))
    arrived = at_r.next(f"the datagram to port {PORT} arriving at r", udp_to(PORT))
    expect.equal(f"datagram to port {PORT} at r's a-side link: (source, destination)", (arrived.src, arrived.dst),
                 (A, B))
    expect.equal(f"datagram at b's port {MARKER_PORT}, sent after the filtered one",
                 _received(marker_rx, "the marker datagram at b")[0], b"marker")
    late = rx.recv(2048, socket.MSG_DONTWAIT) if select.select([rx], [], [], SETTLE)[0] else None
    expect.equal(f"datagram to port {PORT} at b (dropped in r's FORWARD hook), within {SETTLE * 1000:g} ms "
                 "after the marker", late, None)
