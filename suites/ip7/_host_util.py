"""Shared by the one-host ip(7) tests: socket kinds, a second interface, control messages.

Every test body runs in its own fresh network namespace (loopback up), so the knobs set
and the links added here belong to that test alone and die with it.
"""

from __future__ import annotations

import select
import socket

import pytest
from pyroute2 import IPRoute  # imported once in the parent: children fork with it loaded

from harness import cmsg, expect, rawsock

STREAM = socket.SOCK_STREAM
DGRAM = socket.SOCK_DGRAM
KINDS = {"tcp": STREAM, "udp": DGRAM}
LOOPBACK = "127.0.0.1"

# <linux/in.h> options that Python 3.11's socket module lacks (or spells differently)
IP_TOS = 1
IP_TTL = 2
IP_PKTINFO = 8
IP_RECVTTL = 12
IP_RECVTOS = 13
IP_FREEBIND = 15
IP_PASSSEC = 18
IP_TRANSPARENT = 19
IP_BIND_ADDRESS_NO_PORT = 24

# The second interface some tests need (dummy links are not built into this kernel, so a
# veth pair with both ends in the test's namespace plays the part).
VETH = "sspec0"
VETH_PEER = "sspec1"
VETH_ADDR = "10.91.0.1"
VETH_PREFIX = 24
VETH_BROADCAST = "10.91.0.255"
VETH_GATEWAY = "10.91.0.2"     # on the link, never configured: only a next hop for routes


def over(*names: str):
    """Parametrize a test's ``kind`` over IP socket kinds by name ("tcp", "udp")."""
    names = names or tuple(KINDS)
    return pytest.mark.parametrize("kind", [KINDS[n] for n in names], ids=list(names))


def inet(kind: int, proto: int = 0) -> socket.socket:
    return socket.socket(socket.AF_INET, kind, proto)


def add_veth(default_route: bool = False) -> int:
    """Add VETH (address VETH_ADDR/VETH_PREFIX, broadcast VETH_BROADCAST) and its peer,
    both up, in this namespace; optionally a default route via VETH_GATEWAY.  Returns the
    interface index of VETH.

    Netlink (pyroute2) calls socket, setsockopt, getsockopt, getsockname, sendto and
    recvfrom: a test that calls this should not name recvfrom in @fault (pyroute2 would
    wait for its reply until the time limit under --sockspec-prove)."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=VETH, kind="veth", peer=VETH_PEER)
        index = ipr.link_lookup(ifname=VETH)[0]
        peer = ipr.link_lookup(ifname=VETH_PEER)[0]
        ipr.addr("add", index=index, address=VETH_ADDR, prefixlen=VETH_PREFIX,
                 broadcast=VETH_BROADCAST)
        ipr.link("set", index=index, state="up")
        ipr.link("set", index=peer, state="up")
        if default_route:
            ipr.route("add", dst="0.0.0.0/0", gateway=VETH_GATEWAY)
    return index


def listener(addr: str = LOOPBACK, port: int = 0) -> socket.socket:
    s = inet(STREAM)
    s.bind((addr, port))
    s.listen(8)
    return s


def udp_receiver(addr: str = LOOPBACK, port: int = 0) -> socket.socket:
    s = inet(DGRAM)
    s.bind((addr, port))
    return s


def wait_readable(sock: socket.socket, what: str, timeout: float = 1.0) -> None:
    """Wait until ``sock`` has something to read; a deviation when nothing arrives."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise expect.Deviation(what, "data to read", f"nothing within {timeout:g} s")


def recv_control(sock: socket.socket, what: str = "datagram received", bufsize: int = 2048,
                 controllen: int = 512) -> tuple[bytes, list[cmsg.Cmsg]]:
    """One datagram (or stream read) by recvmsg(2) once it has arrived: its data and the
    decoded control messages."""
    wait_readable(sock, what)
    got = rawsock.recvmsg(sock.fileno(), bufsize, controllen, socket.MSG_DONTWAIT)
    return got.data, cmsg.decode(got.control)


def ip_cmsgs(items: list[cmsg.Cmsg], typ: int) -> list[cmsg.Cmsg]:
    return cmsg.find(items, socket.IPPROTO_IP, typ)
