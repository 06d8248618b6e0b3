"""ip(7) DESCRIPTION: IPv4 sockets, their types and protocols, and binding to (address, port).

socket(AF_INET, type, protocol) with SOCK_STREAM (0 or IPPROTO_TCP, IPPROTO_SCTP),
SOCK_DGRAM (0 or IPPROTO_UDP, IPPROTO_UDPLITE) and SOCK_RAW (an IANA protocol number);
the protocol is the one of the IP header; one socket per local (address, port) pair;
level 2 multicasting.  All on one host: the test's own namespace, loopback and (for
multicasting) a second interface, a's end of harness.topology's two_hosts veth pair.
"""

from __future__ import annotations

import errno
import socket

import pytest

from harness import expect, kernel, privileges, rawsock, sockaddr
from suites.ip7._ip import (DGRAM, IP_ADD_MEMBERSHIP, IP_HEADER, IP_MULTICAST_IF,
                            IPPROTO_EXPERIMENT, LOOPBACK, STREAM, igmp_groups, inet, ip_mreqn,
                            listener, over, second_interface, udp_receiver, wait_readable)

SOCK_RAW = socket.SOCK_RAW
IPPROTO_TCP, IPPROTO_UDP = 6, 17
IPPROTO_SCTP, IPPROTO_UDPLITE = 132, 136
IPPROTO_ICMP, IPPROTO_IGMP = 1, 2
GROUP = "239.1.2.3"


def _opt(sock: socket.socket, option: int) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, option)


def _tcp_exchange(client: socket.socket, server: socket.socket) -> None:
    """Connect ``client`` to the listening ``server`` and pass bytes both ways."""
    expect.succeeds(client.connect, server.getsockname(), what="connect over loopback")
    conn, _ = expect.succeeds(server.accept, what="accept over loopback")
    client.sendall(b"to-server")
    wait_readable(conn, "data at the accepted socket")
    expect.equal("bytes the accepted socket received", conn.recv(64), b"to-server")
    conn.sendall(b"to-client")
    wait_readable(client, "data at the connecting socket")
    expect.equal("bytes the connecting socket received", client.recv(64), b"to-client")


def _udp_exchange(sender: socket.socket, receiver: socket.socket) -> None:
    sender.sendto(b"datagram", receiver.getsockname())
    wait_readable(receiver, "datagram at the receiver")
    data, addr = receiver.recvfrom(64)
    expect.equal("datagram received", data, b"datagram")
    expect.equal("source address of the datagram", addr[0], LOOPBACK)


def _raw_packet(sock: socket.socket, what: str) -> bytes:
    wait_readable(sock, what)
    return sock.recv(65535, socket.MSG_DONTWAIT)


# ------------------------------------------------------------------- smoke


@pytest.mark.clause("ip.7/description/implements-ipv4", "ip.7/description/bsd-sockets-compatible")
@pytest.mark.fault("connect", "accept", "sendto", "recvfrom")
def test_ipv4_sockets_exchange_data():
    """"Linux implements the Internet Protocol, version 4, described in RFC 791 and RFC
    1122."  "The programming interface is BSD-sockets compatible."

    Smoke check over loopback: the BSD call sequence (socket, bind, listen, connect,
    accept, send, recv; sendto, recvfrom) carries TCP and UDP data both ways, and the
    packets are IPv4 (RFC 791: version 4, header length 5 words without options,
    protocol 17 for the UDP datagram), seen by a raw socket."""
    sniffer = inet(SOCK_RAW, IPPROTO_UDP) if privileges.has("CAP_NET_RAW") else None
    _tcp_exchange(inet(STREAM), listener())
    _udp_exchange(inet(DGRAM), udp_receiver())
    if sniffer is None:
        return
    packet = _raw_packet(sniffer, "the UDP datagram at a raw IPPROTO_UDP socket")
    expect.equal("IP version (high nibble of the first byte)", packet[0] >> 4, 4)
    expect.equal("IP header length in 32-bit words", packet[0] & 0xF, 5)
    expect.equal("IP header protocol", packet[9], IPPROTO_UDP)
    expect.equal("UDP payload after the headers", packet[IP_HEADER + 8:], b"datagram")


# ------------------------------------------------------------------- creation and types


@pytest.mark.clause("ip.7/description/socket-creation")
@pytest.mark.fault("socket", "getsockopt", "getsockname")
@over()
def test_socket_af_inet(kind):
    """"An IP socket is created using socket(2): socket(AF_INET, socket_type, protocol);"

    The socket's SO_DOMAIN is AF_INET, and its (unbound) name is an AF_INET address."""
    s = expect.succeeds(socket.socket, socket.AF_INET, kind, 0, what="socket(AF_INET, type, 0)")
    expect.equal("SO_DOMAIN", _opt(s, socket.SO_DOMAIN), int(socket.AF_INET))
    name = rawsock.getsockname(s.fileno(), sockaddr.SOCKADDR_IN)
    expect.equal("family of getsockname", name.family, int(socket.AF_INET))


TYPE_CASES = [
    pytest.param(STREAM, 0, id="stream"),
    pytest.param(DGRAM, 0, id="dgram"),
    pytest.param(SOCK_RAW, IPPROTO_ICMP, id="raw"),
]


@pytest.mark.clause("ip.7/description/valid-socket-types")
@pytest.mark.fault("socket", "getsockopt")
@pytest.mark.parametrize("kind,proto", TYPE_CASES)
def test_valid_socket_type(kind, proto):
    """"Valid socket types include SOCK_STREAM to open a stream socket, SOCK_DGRAM to
    open a datagram socket, and SOCK_RAW to open a raw(7) socket to access the IP
    protocol directly."

    Each is created and SO_TYPE reads back the requested type."""
    s = expect.succeeds(socket.socket, socket.AF_INET, kind, proto, what="socket(AF_INET, type)")
    expect.equal("SO_TYPE", _opt(s, socket.SO_TYPE), int(kind))


@pytest.mark.clause("ip.7/description/valid-socket-types")
@pytest.mark.fault("socket")
def test_raw_type_needs_cap_net_raw_others_none():
    """"Valid socket types include SOCK_STREAM ..., SOCK_DGRAM ..., and SOCK_RAW to open
    a raw(7) socket"

    SOCK_STREAM and SOCK_DGRAM need no privilege: with every capability dropped they are
    still created.  A raw(7) socket needs CAP_NET_RAW: without it socket() fails with
    EPERM (raw(7) ERRORS)."""
    privileges.drop_all_caps()
    for kind, name in ((STREAM, "SOCK_STREAM"), (DGRAM, "SOCK_DGRAM")):
        expect.succeeds(socket.socket, socket.AF_INET, kind, 0,
                        what=f"socket(AF_INET, {name}, 0) without capabilities")
    expect.errno("EPERM", socket.socket, socket.AF_INET, SOCK_RAW, IPPROTO_ICMP,
                 what="socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) without CAP_NET_RAW")


# ------------------------------------------------------------------- protocols

PROTOCOL_CASES = [
    pytest.param(STREAM, 0, IPPROTO_TCP, id="stream-0",
                 marks=pytest.mark.clause("ip.7/description/protocol-tcp")),
    pytest.param(STREAM, IPPROTO_TCP, IPPROTO_TCP, id="stream-IPPROTO_TCP",
                 marks=pytest.mark.clause("ip.7/description/protocol-tcp")),
    pytest.param(DGRAM, 0, IPPROTO_UDP, id="dgram-0",
                 marks=pytest.mark.clause("ip.7/description/protocol-udp")),
    pytest.param(DGRAM, IPPROTO_UDP, IPPROTO_UDP, id="dgram-IPPROTO_UDP",
                 marks=pytest.mark.clause("ip.7/description/protocol-udp")),
]


@pytest.mark.clause("ip.7/description/protocol-in-ip-header")
@pytest.mark.fault("socket", "getsockopt")
@pytest.mark.parametrize("kind,proto,expected", PROTOCOL_CASES)
def test_protocol_for_type(kind, proto, expected):
    """"0 and IPPROTO_TCP for tcp(7) stream sockets;"  "0 and IPPROTO_UDP for udp(7)
    datagram sockets;"  "protocol is the IP protocol in the IP header to be received or
    sent."

    Both spellings give a socket whose SO_PROTOCOL is the IP protocol (6 for TCP, 17 for
    UDP), and the socket works as that protocol over loopback."""
    s = expect.succeeds(socket.socket, socket.AF_INET, kind, proto,
                        what=f"socket(AF_INET, type {kind}, {proto})")
    expect.equal("SO_PROTOCOL", _opt(s, socket.SO_PROTOCOL), expected)
    if kind == STREAM:
        _tcp_exchange(s, listener())
    else:
        _udp_exchange(s, udp_receiver())


MISMATCH_CASES = [
    pytest.param(STREAM, IPPROTO_UDP, id="stream-IPPROTO_UDP"),
    pytest.param(STREAM, IPPROTO_UDPLITE, id="stream-IPPROTO_UDPLITE"),
    pytest.param(DGRAM, IPPROTO_TCP, id="dgram-IPPROTO_TCP"),
]


@pytest.mark.clause("ip.7/description/protocol-tcp", "ip.7/description/protocol-udp")
@pytest.mark.fault("socket")
@pytest.mark.parametrize("kind,proto", MISMATCH_CASES)
def test_protocol_of_other_type_rejected(kind, proto):
    """"Valid values for protocol include: 0 and IPPROTO_TCP for tcp(7) stream sockets;
    0 and IPPROTO_UDP for udp(7) datagram sockets; ..."

    A datagram protocol with SOCK_STREAM, or TCP with SOCK_DGRAM, is not among the valid
    values: socket(2) fails with EPROTONOSUPPORT ("the specified protocol is not
    supported within this domain")."""
    expect.errno("EPROTONOSUPPORT", socket.socket, socket.AF_INET, kind, proto,
                 what=f"socket(AF_INET, type {kind}, protocol {proto})")


@pytest.mark.clause("ip.7/description/protocol-udplite", "ip.7/description/protocol-in-ip-header")
@pytest.mark.fault("socket", "getsockopt")
def test_udplite_datagram_socket():
    """"IPPROTO_UDPLITE for udplite(7) datagram sockets."

    socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE) gives a datagram socket with
    SO_PROTOCOL 136 that exchanges datagrams over loopback.  (UDP-Lite is deprecated
    upstream; a kernel without it deviates from this page.)"""
    a = expect.succeeds(socket.socket, socket.AF_INET, DGRAM, IPPROTO_UDPLITE,
                        what="socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE)")
    expect.equal("SO_PROTOCOL", _opt(a, socket.SO_PROTOCOL), IPPROTO_UDPLITE)
    expect.equal("SO_TYPE", _opt(a, socket.SO_TYPE), int(DGRAM))
    b = socket.socket(socket.AF_INET, DGRAM, IPPROTO_UDPLITE)
    b.bind((LOOPBACK, 0))
    _udp_exchange(a, b)


@pytest.mark.clause("ip.7/description/protocol-sctp")
@pytest.mark.fault("socket", "getsockopt")
def test_sctp_stream_socket():
    """"IPPROTO_SCTP for sctp(7) stream sockets;"

    socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP) gives a stream socket with SO_PROTOCOL
    132 that connects and carries data over loopback.  A kernel built without SCTP
    (CONFIG_IP_SCTP unset, and modules are not loaded here) cannot check this."""
    try:
        s = socket.socket(socket.AF_INET, STREAM, IPPROTO_SCTP)
    except OSError as exc:
        if exc.errno == errno.EPROTONOSUPPORT and kernel.config_enabled("CONFIG_IP_SCTP") is not True:
            expect.skip("the kernel lacks SCTP (CONFIG_IP_SCTP unset): socket(AF_INET, "
                        "SOCK_STREAM, IPPROTO_SCTP) fails with EPROTONOSUPPORT")
        raise expect.Deviation("socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)", "success",
                               expect.errno_name(exc.errno)) from None
    expect.equal("SO_PROTOCOL", _opt(s, socket.SO_PROTOCOL), IPPROTO_SCTP)
    expect.equal("SO_TYPE", _opt(s, socket.SO_TYPE), int(STREAM))
    server = socket.socket(socket.AF_INET, STREAM, IPPROTO_SCTP)
    server.bind((LOOPBACK, 0))
    server.listen(1)
    _tcp_exchange(s, server)


RAW_CASES = [
    pytest.param(IPPROTO_ICMP, id="ICMP-1"),
    pytest.param(IPPROTO_IGMP, id="IGMP-2"),
    pytest.param(IPPROTO_UDP, id="UDP-17"),
    pytest.param(IPPROTO_EXPERIMENT, id="experimental-253"),
]


@pytest.mark.clause("ip.7/description/raw-iana-protocol")
@pytest.mark.fault("socket", "getsockopt")
@pytest.mark.parametrize("proto", RAW_CASES)
def test_raw_socket_iana_protocol(proto):
    """"For SOCK_RAW you may specify a valid IANA IP protocol defined in RFC 1700
    assigned numbers."

    socket(AF_INET, SOCK_RAW, p) succeeds for assigned numbers and SO_PROTOCOL reads p."""
    s = expect.succeeds(socket.socket, socket.AF_INET, SOCK_RAW, proto,
                        what=f"socket(AF_INET, SOCK_RAW, {proto})")
    expect.equal("SO_PROTOCOL", _opt(s, socket.SO_PROTOCOL), proto)


@pytest.mark.clause("ip.7/description/raw-iana-protocol")
@pytest.mark.fault("socket")
def test_raw_socket_needs_a_protocol():
    """"raw_socket = socket(AF_INET, SOCK_RAW, protocol);"  "For SOCK_RAW you may specify
    a valid IANA IP protocol"

    Reading: the default protocol 0 is listed only for stream and datagram sockets; a
    raw socket names the protocol it receives and sends, so socket(AF_INET, SOCK_RAW, 0)
    fails with socket(2)'s EPROTONOSUPPORT."""
    expect.errno("EPROTONOSUPPORT", socket.socket, socket.AF_INET, SOCK_RAW, 0,
                 what="socket(AF_INET, SOCK_RAW, 0)")


@pytest.mark.clause("ip.7/description/protocol-in-ip-header")
@pytest.mark.fault("sendto", "recvfrom")
def test_raw_protocol_is_the_ip_header_protocol():
    """"protocol is the IP protocol in the IP header to be received or sent."

    Sent: a datagram from a raw socket of protocol 253 carries 253 in its IP header (seen
    by a second raw 253 socket).  Received: a raw IPPROTO_UDP socket receives the UDP
    datagrams, whose IP header says 17, and not the protocol-253 packet."""
    if not privileges.has("CAP_NET_RAW"):
        expect.skip("needs CAP_NET_RAW for raw sockets")
    sender = inet(SOCK_RAW, IPPROTO_EXPERIMENT)
    receiver = inet(SOCK_RAW, IPPROTO_EXPERIMENT)
    udp_sniffer = inet(SOCK_RAW, IPPROTO_UDP)
    sender.sendto(b"raw-253", (LOOPBACK, 0))
    packet = _raw_packet(receiver, "the protocol-253 packet at the raw 253 socket")
    expect.equal("IP header protocol of the packet sent", packet[9], IPPROTO_EXPERIMENT)
    expect.equal("payload after the IP header", packet[IP_HEADER:], b"raw-253")
    inet(DGRAM).sendto(b"udp", (LOOPBACK, 9))
    packet = _raw_packet(udp_sniffer, "the UDP datagram at the raw IPPROTO_UDP socket")
    expect.equal("IP header protocol of the packet received", packet[9], IPPROTO_UDP)
    expect.equal("UDP payload", packet[IP_HEADER + 8:], b"udp")


# ------------------------------------------------------------------- binding


@pytest.mark.clause("ip.7/description/bind-unique-address-port")
@pytest.mark.fault("bind")
@over()
def test_one_socket_per_address_port(kind):
    """"When a process wants to receive new incoming packets or connections, it should
    bind a socket to a local interface address using bind(2).  In this case, only one IP
    socket may be bound to any given local (address, port) pair."

    Without SO_REUSEADDR/SO_REUSEPORT, a second bind(2) to the same (127.0.0.1, port)
    fails with EADDRINUSE; the same port on another local address is a different pair."""
    first = inet(kind)
    expect.succeeds(first.bind, (LOOPBACK, 0), what="first bind")
    port = first.getsockname()[1]
    expect.errno("EADDRINUSE", inet(kind).bind, (LOOPBACK, port),
                 what=f"second bind to ({LOOPBACK}, {port})")
    expect.succeeds(inet(kind).bind, ("127.0.0.2", port), what=f"bind to (127.0.0.2, {port})")


# ------------------------------------------------------------------- multicast


@pytest.mark.clause("ip.7/description/multicast-level-2")
@pytest.mark.fault("recvmsg")
def test_level_2_multicast_send_and_receive():
    """"ip contains a level 2 multicasting implementation conforming to RFC 1112."

    RFC 1112 level 2: full support for sending and receiving.  One host: a socket joins
    239.1.2.3 on the veth interface, the membership shows in /proc/net/igmp, and a
    datagram sent to the group through that interface (multicast loopback on, its
    default) is delivered to the member.  (Delivery from another host belongs to the
    two-namespace tests.)"""
    topo = second_interface()
    veth = topo["a"].link
    port = 4242
    member = inet(DGRAM)
    member.bind(("0.0.0.0", port))
    member.setsockopt(socket.IPPROTO_IP, IP_ADD_MEMBERSHIP, ip_mreqn(GROUP, veth.address, veth.ifindex))
    joined = igmp_groups().get(veth.name, set())
    expect.true(f"{GROUP} listed for {veth.name} in /proc/net/igmp", GROUP in joined,
                expected=GROUP, observed=sorted(joined))
    sender = inet(DGRAM)
    sender.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_IF, socket.inet_aton(veth.address))
    sent = expect.succeeds(sender.sendto, b"to-group", (GROUP, port), what="sendto the group")
    expect.equal("bytes sent to the group", sent, 8)
    wait_readable(member, "datagram for the group at the member")
    got = rawsock.recvmsg(member.fileno(), 64, namelen=sockaddr.SOCKADDR_IN)
    expect.equal("datagram received by the member", got.data, b"to-group")
    expect.equal("source of the group datagram", sockaddr.parse_in4(got.name.raw)[1], veth.address)
