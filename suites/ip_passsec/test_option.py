"""IP_PASSSEC(2const) without an LSM: the option as an integer boolean, its history, and
the CAVEATS about control-message numbering.  These run on any Linux kernel.
"""

from __future__ import annotations

import socket

import pytest

from harness import expect, rawsock
from harness.inet import (DGRAM, IP_HDRINCL, IP_PASSSEC, IP_PKTINFO, IP_RECVTOS, IP_RECVTTL, IP_TOS,
                          IP_TTL, SOL_IP, inet, recv_control, udp_receiver)
from suites.ip_passsec._passsec import SCM_SECURITY, expect_hdrincl_never_a_cmsg_type

P = "ip_passsec.2const/"
INT = 4                                  # sizeof(int)


def _get(sock: socket.socket) -> tuple[int, int]:
    """getsockopt(IPPROTO_IP, IP_PASSSEC) into sizeof(int) bytes: (value, returned optlen)."""
    data, optlen = rawsock.getsockopt(sock.fileno(), SOL_IP, IP_PASSSEC, INT)
    return int.from_bytes(data[:INT].ljust(INT, b"\0"), "little", signed=True), optlen


@pytest.mark.clause(P + "synopsis/integer-boolean")
@pytest.mark.fault("setsockopt", "getsockopt")
def test_integer_boolean_set_and_get():
    """"int setsockopt(int sockfd, IPPROTO_IP, IP_PASSSEC, const int *enable,
    sizeof(int)); int getsockopt(int sockfd, IPPROTO_IP, IP_PASSSEC, int *enabled,
    sizeof(int));"

    On a UDP socket: getsockopt fills sizeof(int) bytes and reads 0 before any set; after
    setsockopt with an int 1 it reads nonzero, after an int 0 it reads 0 again, and any
    nonzero int enables it (a boolean).  No LSM is needed to store the flag."""
    s = inet(DGRAM)
    value, optlen = _get(s)
    expect.equal("optlen returned by getsockopt", optlen, INT)
    expect.equal("IP_PASSSEC before any setsockopt", value, 0)
    for enable, enabled in ((1, True), (0, False), (7, True), (0, False)):
        s.setsockopt(SOL_IP, IP_PASSSEC, enable)
        value, optlen = _get(s)
        expect.equal(f"optlen after setting {enable}", optlen, INT)
        expect.observe(f"value read after setting {enable}", value)
        expect.equal(f"IP_PASSSEC enabled after setting {enable}", value != 0, enabled)


@pytest.mark.clause(P + "history/linux-2-6-17")
@pytest.mark.fault("setsockopt")
def test_accepted_since_2_6_17():
    """"Linux 2.6.17."  The kernel under test (2.6.17 or later: the catalogue's ``since``)
    accepts setsockopt(IPPROTO_IP, IP_PASSSEC) on a UDP socket."""
    s = inet(DGRAM)
    expect.succeeds(s.setsockopt, SOL_IP, IP_PASSSEC, 1, what="setsockopt(IPPROTO_IP, IP_PASSSEC, 1) on UDP")


@pytest.mark.clause(P + "caveats/other-ip-cmsgs-use-option-value")
@pytest.mark.fault("recvmsg")
def test_other_ip_cmsgs_use_the_option_value():
    """"other IP control messages use their own numbering scheme in the IP namespace and
    often use the socket option value as the message type."

    The cases checked (the page says "often"): with IP_PKTINFO, IP_RECVTTL and
    IP_RECVTOS on, a datagram brings control messages at level IPPROTO_IP whose types are
    the values of the socket options IP_PKTINFO (8), IP_TTL (2) and IP_TOS (1), and none
    at SOL_SOCKET."""
    receiver = udp_receiver()
    for option in (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS):
        receiver.setsockopt(SOL_IP, option, 1)
    inet(DGRAM).sendto(b"numbered", receiver.getsockname())
    _, items = recv_control(receiver, "datagram with IP_PKTINFO, IP_RECVTTL and IP_RECVTOS on")
    expect.observe("control messages (level, type)", [(c.level, c.type) for c in items])
    expect.equal("types of the IPPROTO_IP control messages",
                 sorted(c.type for c in items if c.level == SOL_IP), sorted([IP_PKTINFO, IP_TTL, IP_TOS]))
    expect.equal("control messages at other levels", [c for c in items if c.level != SOL_IP], [])


@pytest.mark.clause(P + "caveats/scm-security-equals-ip-hdrincl")
@pytest.mark.fault("getsockopt", "setsockopt")
def test_ip_option_with_scm_security_value_is_ip_hdrincl():
    """"the IP option with the same value as SCM_SECURITY is IP_HDRINCL(2const)"

    SCM_SECURITY is 3 (the kernel's <linux/socket.h>; userspace headers do not define it;
    the labeled tests see it as the type of the delivered message) and IP_HDRINCL is 3 in
    the system headers.  The kernel's IPPROTO_IP option 3 is IP_HDRINCL: it reads 1 on an
    IPPROTO_RAW socket (which implies the header), 0 on a raw UDP socket until set, and 1
    after setsockopt(IPPROTO_IP, 3, 1)."""
    expect.equal("IP_HDRINCL in <netinet/in.h> (as Python was built with it)", socket.IP_HDRINCL, IP_HDRINCL)
    expect.equal("IP_HDRINCL == SCM_SECURITY", IP_HDRINCL, SCM_SECURITY)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    expect.equal("IPPROTO_IP option 3 on an IPPROTO_RAW socket",
                 raw.getsockopt(SOL_IP, SCM_SECURITY), 1)
    udp_raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    expect.equal("IPPROTO_IP option 3 on a raw UDP socket before setting it",
                 udp_raw.getsockopt(SOL_IP, SCM_SECURITY), 0)
    udp_raw.setsockopt(SOL_IP, SCM_SECURITY, 1)
    expect.equal("IPPROTO_IP option 3 on a raw UDP socket after setting it to 1",
                 udp_raw.getsockopt(SOL_IP, SCM_SECURITY), 1)


@pytest.mark.clause(P + "caveats/ip-hdrincl-never-cmsg-type")
@pytest.mark.fault("recvmsg", "sendmsg")
def test_ip_hdrincl_never_a_control_message_type():
    """"and this is never used for a control message type."

    With every IP_RECV* flag on (IP_PASSSEC off), no IPPROTO_IP control message of type 3
    arrives; sendmsg(2) with an IPPROTO_IP control message of type 3 is refused with
    EINVAL."""
    expect_hdrincl_never_a_cmsg_type()
