"""IP_PASSSEC checks shared by IP_PASSSEC(2const) and ip(7), whose IP_PASSSEC text repeats
the dedicated page's: one body per behaviour, each suite's test naming its own clause.

Sockets come from :mod:`harness.inet`, contexts and labeling from :mod:`harness.labeling`.
"""

from __future__ import annotations

import socket
import struct

from harness import cmsg, expect, labeling, rawsock, sockaddr
from harness.inet import (DGRAM, IP_HDRINCL, IP_PASSSEC, IP_PKTINFO, IP_RECVOPTS, IP_RECVORIGDSTADDR,
                          IP_RECVTOS, IP_RECVTTL, IP_RETOPTS, LOOPBACK, SOL_IP, inet, ip_cmsgs,
                          recv_control, udp_receiver)

SCM_SECURITY = cmsg.SCM_SECURITY


def passsec_receiver(addr: str = LOOPBACK) -> socket.socket:
    receiver = udp_receiver(addr)
    receiver.setsockopt(SOL_IP, IP_PASSSEC, 1)
    return receiver


def datagram_controls(addr: str = LOOPBACK, sender: socket.socket | None = None,
                      payload: bytes = b"labelled") -> list[cmsg.Cmsg]:
    """The control messages of one datagram from ``sender`` (default: a new UDP socket of
    this process, bound to ``addr``) to an IP_PASSSEC receiver on ``addr``."""
    receiver = passsec_receiver(addr)
    if sender is None:
        sender = inet(DGRAM)
        sender.bind((addr, 0))
    sender.sendto(payload, receiver.getsockname())
    data, items = recv_control(receiver, f"datagram to the IP_PASSSEC receiver on {addr}")
    expect.equal(f"datagram received on {addr}", data, payload)
    return items


def one_context(items: list[cmsg.Cmsg], what: str, clause: str | None = None) -> bytes:
    """The payload of the one SOL_IP SCM_SECURITY message among ``items``."""
    found = ip_cmsgs(items, SCM_SECURITY)
    expect.equal(f"SOL_IP SCM_SECURITY messages with {what}", len(found), 1, clause=clause)
    return expect.observe(f"SCM_SECURITY payload with {what}", found[0].data)


def expect_unlabeled_gets_nothing(clause: str | None = None) -> None:
    """The control case: a datagram over an address no labeling covers carries no
    SCM_SECURITY, IP_PASSSEC on or not."""
    items = datagram_controls(labeling.UNLABELED_ADDR)
    expect.equal(f"SCM_SECURITY messages with an unlabeled datagram ({labeling.UNLABELED_ADDR})",
                 ip_cmsgs(items, SCM_SECURITY), [], clause=clause)


def expect_hdrincl_never_a_cmsg_type(clause: str | None = None) -> None:
    """IP_HDRINCL (3, SCM_SECURITY's value) is never a control message type: with every
    IP_RECV* flag on and IP_PASSSEC off, no SOL_IP message of type 3 arrives, and
    sendmsg(2) with a SOL_IP control message of type 3 is refused with EINVAL."""
    receiver = udp_receiver()
    for option in (IP_RECVOPTS, IP_RETOPTS, IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVORIGDSTADDR):
        receiver.setsockopt(SOL_IP, option, 1)
    sender = inet(DGRAM)
    sender.sendto(b"all-flags", receiver.getsockname())
    _, items = recv_control(receiver, "datagram with every IP_RECV* flag on", controllen=1024)
    types = expect.observe("SOL_IP control message types received",
                           sorted(c.type for c in items if c.level == SOL_IP))
    expect.true("SOL_IP control messages arrive at all (the check has something to look at)",
                len(types) >= 4, expected="at least 4 (pktinfo, ttl, tos, origdstaddr)", observed=types,
                clause=clause)
    expect.equal("SOL_IP control messages of type 3", ip_cmsgs(items, IP_HDRINCL), [], clause=clause)
    control = cmsg.encode([cmsg.Cmsg(SOL_IP, IP_HDRINCL, struct.pack("=i", 1))])
    expect.errno("EINVAL", rawsock.sendmsg, sender.fileno(), b"x", control,
                 name=sockaddr.in4(LOOPBACK, receiver.getsockname()[1]),
                 what="sendmsg with a SOL_IP control message of type 3", clause=clause)
