"""IPv4 sockets as several suites use them: <linux/in.h> option numbers, socket kinds,
connected pairs over loopback, and waiting for what arrives (with its control messages).

The ip(7) suite (``suites/ip7/_ip.py`` adds option structures, packets and captures on
top), the IP_PASSSEC(2const) suite and the t6sendto(3N) suite use these; labeled
networking on top of them is :mod:`harness.labeling`.  Waiting is always for an event with
a time limit, never a fixed sleep.
"""

from __future__ import annotations

import select
import socket
import struct

from harness import cmsg, expect, rawsock

# <linux/in.h>; most are missing from Python's socket module.
SOL_IP = socket.IPPROTO_IP
IP_TOS, IP_TTL, IP_HDRINCL, IP_OPTIONS, IP_ROUTER_ALERT = 1, 2, 3, 4, 5
IP_RECVOPTS, IP_RETOPTS, IP_PKTINFO = 6, 7, 8
IP_MTU_DISCOVER, IP_RECVERR, IP_RECVTTL, IP_RECVTOS, IP_MTU = 10, 11, 12, 13, 14
IP_FREEBIND, IP_PASSSEC, IP_TRANSPARENT = 15, 18, 19
IP_ORIGDSTADDR = IP_RECVORIGDSTADDR = 20
IP_NODEFRAG = 22
IP_BIND_ADDRESS_NO_PORT = 24
IP_MULTICAST_IF, IP_MULTICAST_TTL, IP_MULTICAST_LOOP = 32, 33, 34
IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP = 35, 36
IP_UNBLOCK_SOURCE, IP_BLOCK_SOURCE = 37, 38
IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP = 39, 40
IP_MSFILTER = 41
IP_MULTICAST_ALL = 49
IPPROTO_SCTP = 132

WAIT = 2.0          # seconds: the limit of every wait for an event that should come

STREAM = socket.SOCK_STREAM
DGRAM = socket.SOCK_DGRAM
LOOPBACK = "127.0.0.1"


def inet(kind: int, proto: int = 0) -> socket.socket:
    """An AF_INET socket; a raw one skips the test where CAP_NET_RAW is missing (the
    environment's limit, not the kernel's answer to the clause)."""
    if kind == socket.SOCK_RAW:
        from harness import privileges
        if not privileges.has("CAP_NET_RAW"):
            expect.skip("a raw socket needs CAP_NET_RAW, which this process does not have")
    return socket.socket(socket.AF_INET, kind, proto)


def listener(addr: str = LOOPBACK, port: int = 0) -> socket.socket:
    s = inet(STREAM)
    s.bind((addr, port))
    s.listen(8)
    return s


def udp_receiver(addr: str = LOOPBACK, port: int = 0) -> socket.socket:
    s = inet(DGRAM)
    s.bind((addr, port))
    return s


def stream_pair(addr: str = LOOPBACK, proto: int = 0, *, timeout: float | None = None
                ) -> tuple[socket.socket, socket.socket]:
    """A stream connection (TCP, or ``proto``) to a listener on ``addr``, the connecting
    end bound to ``addr`` too unless it is 127.0.0.1: (the connecting socket, the
    accepted one).  ``timeout`` limits the connect (and stays set on that socket)."""
    server = socket.socket(socket.AF_INET, STREAM, proto)
    server.bind((addr, 0))
    server.listen(8)
    client = socket.socket(socket.AF_INET, STREAM, proto)
    if addr != LOOPBACK:
        client.bind((addr, 0))
    client.settimeout(timeout)
    client.connect(server.getsockname())
    conn, _ = server.accept()
    return client, conn


def int_opt(value: int) -> bytes:
    """An int option argument as exact bytes."""
    return struct.pack("=i", value)


def ip_cmsgs(items: list[cmsg.Cmsg], typ: int) -> list[cmsg.Cmsg]:
    """The IPPROTO_IP control messages of type ``typ``."""
    return cmsg.find(items, SOL_IP, typ)


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


def recv_control(sock: socket.socket, what: str = "datagram received", bufsize: int = 4096,
                 controllen: int = 512) -> tuple[bytes, list[cmsg.Cmsg]]:
    """One datagram (or stream read) by recvmsg(2) once it has arrived: its data and the
    decoded control messages."""
    wait_readable(sock, what)
    got = rawsock.recvmsg(sock.fileno(), bufsize, controllen, socket.MSG_DONTWAIT)
    return got.data, cmsg.decode(got.control)


def pending(sock: socket.socket) -> bool:
    """Whether something is queued to read right now."""
    return bool(select.select([sock], [], [], 0)[0])
