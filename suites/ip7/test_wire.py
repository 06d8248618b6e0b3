"""ip(7) options that shape the packet on the wire, checked where it arrives: IP options
(IP_OPTIONS, IP_RECVOPTS, IP_RETOPTS), IP_ROUTER_ALERT in a router, IP_HDRINCL,
IP_NODEFRAG with conntrack defragmentation, and ip_dynaddr's source rewriting."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from harness import expect, rawsock, topology
from suites.ip7._ip import (
    IP_HDRINCL, IP_NODEFRAG, IP_OPTIONS, IP_RECVOPTS, IP_RETOPTS, IP_ROUTER_ALERT, IP_TOS, IP_TTL,
    IPPROTO_EXPERIMENT, SOL_IP, Capture, IPv4, ipv4_header, recv_control, recv_within, udp_header,
    udp_to)

PORT = 4321
OPT_RR, OPT_TS, OPT_LSRR, OPT_RA = 7, 68, 131, 148
ROUTER_ALERT = bytes([OPT_RA, 4, 0, 0])


def _record_route(slots: int) -> bytes:
    """A Record Route option with ``slots`` empty address slots (pointer 4)."""
    return bytes([OPT_RR, 3 + 4 * slots, 4]) + bytes(4 * slots)


def _padded(options: bytes) -> bytes:
    return options + bytes(-len(options) % 4)


def _rr_view(options: bytes) -> tuple[int, list[str]]:
    """(pointer, recorded addresses) of the Record Route option at the start of
    ``options``; empty slots read 0.0.0.0."""
    length, pointer = options[1], options[2]
    return pointer, [socket.inet_ntoa(options[i:i + 4]) for i in range(3, length, 4)]


def _udp_pair(topo):
    rx = topo.socket("b")
    rx.bind(("0.0.0.0", PORT))
    return topo.socket("a"), rx


def _options_cmsgs(rx: socket.socket) -> dict[int, bytes]:
    """type -> data of the IPPROTO_IP control messages of the next datagram."""
    _, items = recv_control(rx, "the datagram at b")
    return {c.type: c.data for c in items if c.level == SOL_IP}


# ---------------------------------------------------------------------- IP_OPTIONS

@pytest.mark.clause("ip.7/ip-options/set-get-every-packet", "ip.7/ip-options/argument-buffer-length")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_ip_options_go_with_every_packet():
    """"Set or get the IP options to be sent with every packet from this socket." "The
    arguments are a pointer to a memory buffer containing the options and the option
    length. The setsockopt(2) call sets the IP options associated with a socket."

    a's UDP socket sets a Record Route option (11 bytes, two slots).  Both datagrams it
    sends arrive at b (raw socket: the header as delivered) with a 12-byte option area
    holding that option, a's address recorded in the first slot."""
    topo = topology.two_hosts()
    tx, _ = _udp_pair(topo)
    raw = topo.socket("b", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    tx.setsockopt(SOL_IP, IP_OPTIONS, _record_route(2))
    for data in (b"one", b"two"):
        tx.sendto(data, ("10.0.1.2", PORT))
    for data in (b"one", b"two"):
        pkt = IPv4(recv_within(raw, f"datagram {data!r} at b")[0])
        expect.equal(f"option area length of datagram {data!r}", len(pkt.options), 12)
        expect.equal(f"option type/length and first recorded address ({data!r})",
                     (pkt.options[0], pkt.options[1], _rr_view(pkt.options)[1][0]), (OPT_RR, 11, "10.0.1.1"))


OPTION_BUFFERS = [
    pytest.param(_record_route(2), _padded(_record_route(2)), id="record-route-11-padded-to-12"),
    pytest.param(_record_route(1), _padded(_record_route(1)), id="record-route-7-padded-to-8"),
    pytest.param(bytes([1] * 40), bytes([1] * 40), id="40-nops"),
    pytest.param(b"", b"", id="empty-clears"),
]


@pytest.mark.clause("ip.7/ip-options/argument-buffer-length", "ip.7/ip-options/getsockopt-current-options",
                    "ip.7/ip-options/max-40-bytes")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("options, expected", OPTION_BUFFERS)
def test_ip_options_read_back(options, expected):
    """"Calling getsockopt(2) with IP_OPTIONS puts the current IP options used for sending
    into the supplied buffer." "The maximum option size for IPv4 is 40 bytes."

    What was set reads back, padded to a multiple of 4, with optlen its length (0 when
    cleared with an empty buffer, which also replaces options set before)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(SOL_IP, IP_OPTIONS, _record_route(1))
    sock.setsockopt(SOL_IP, IP_OPTIONS, options)
    expect.equal("getsockopt(IP_OPTIONS) bytes and optlen",
                 rawsock.getsockopt(sock.fileno(), SOL_IP, IP_OPTIONS, 40), (expected, len(expected)))


@pytest.mark.clause("ip.7/ip-options/max-40-bytes")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("length", [41, 44, 60])
def test_ip_options_over_40_bytes_rejected(length):
    """"The maximum option size for IPv4 is 40 bytes."

    An option buffer longer than 40 bytes is refused (EINVAL)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expect.errno("EINVAL", sock.setsockopt, SOL_IP, IP_OPTIONS, bytes([1] * length), what=f"IP_OPTIONS of {length} bytes")


def _tcp_with_client_options(options: bytes):
    topo = topology.two_hosts()
    listener = topo.socket("b", socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("10.0.1.2", PORT))
    listener.listen()
    client = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(SOL_IP, IP_OPTIONS, options)
    client.connect(("10.0.1.2", PORT))
    server, _ = listener.accept()
    return topo, listener, client, server


@pytest.mark.clause("ip.7/ip-options/tcp-options-from-syn-reversed")
@pytest.mark.fault("getsockopt")
def test_tcp_takes_options_from_the_syn():
    """"When the initial connection request packet for a SOCK_STREAM socket contains IP
    options, the IP options will be set automatically to the options from the ini-tial
    packet with routing headers reversed."

    The client in a connects with a Record Route option (three slots); b's listener has no
    options.  The accepted socket's IP_OPTIONS hold the SYN's Record Route: same type and
    length, a's address recorded first.  (A Record Route carries no routing header to
    reverse; source routes are not exercised here.)"""
    _, listener, _, server = _tcp_with_client_options(_padded(_record_route(3)))
    expect.equal("IP_OPTIONS of the listener", listener.getsockopt(SOL_IP, IP_OPTIONS, 40), b"")
    opts = server.getsockopt(SOL_IP, IP_OPTIONS, 40)
    expect.equal("accepted socket's IP_OPTIONS: type, length, first address",
                 (opts[:2], _rr_view(opts)[1][0] if len(opts) >= 7 else None),
                 (bytes([OPT_RR, 15]), "10.0.1.1"))


@pytest.mark.clause("ip.7/ip-options/established-options-fixed")
@pytest.mark.fault("getsockopt", "recvfrom")
def test_tcp_options_fixed_after_establishment():
    """"Incoming packets are not allowed to change options after the connection is
    established."

    After the connection is set up with the client's Record Route, the client switches to
    a Timestamp option and sends data: the accepted socket's IP_OPTIONS are the same
    bytes as before."""
    _, _, client, server = _tcp_with_client_options(_padded(_record_route(3)))
    before = server.getsockopt(SOL_IP, IP_OPTIONS, 40)
    client.setsockopt(SOL_IP, IP_OPTIONS, bytes([OPT_TS, 12, 5, 0]) + bytes(8))
    client.sendall(b"with other options")
    expect.equal("data", recv_within(server, "data at b", 64)[0], b"with other options")
    expect.equal("accepted socket's IP_OPTIONS after the new segment",
                 server.getsockopt(SOL_IP, IP_OPTIONS, 40), before)


def _lsrr_to(hop: str) -> bytes:
    """A loose source route whose only listed hop is ``hop`` (the kernel sends to it and
    puts the final destination in the slot), padded with one NOP."""
    return bytes([1, OPT_LSRR, 7, 4]) + socket.inet_aton(hop)


@pytest.mark.clause("ip.7/ip-options/source-route-disabled-by-default", "ip.7/ip-options/other-options-handled")
@pytest.mark.fault("recvfrom")
def test_source_routed_datagrams_need_accept_source_route():
    """"The processing of all incoming source routing options is disabled by default and
    can be enabled by using the accept_source_route /proc interface." "Other options like
    timestamps are still handled."

    In b's fresh namespace (net.ipv4.conf.all.accept_source_route read as the default):
    a datagram with a loose source route is dropped, one with a Record Route sent after it
    is delivered first.  After accept_source_route=1 (all and b's link) the source-routed
    datagram is delivered."""
    topo = topology.two_hosts()
    default = topo.sysctl("b", "net/ipv4/conf/all/accept_source_route")
    expect.equal("net.ipv4.conf.all.accept_source_route in a fresh namespace", default, "0")
    rx = topo.socket("b")
    rx.bind(("0.0.0.0", PORT))
    srr, rr = topo.socket("a"), topo.socket("a")
    srr.setsockopt(SOL_IP, IP_OPTIONS, _lsrr_to("10.0.1.2"))
    rr.setsockopt(SOL_IP, IP_OPTIONS, _padded(_record_route(2)))
    srr.sendto(b"source routed", ("10.0.1.2", PORT))
    rr.sendto(b"record route", ("10.0.1.2", PORT))
    expect.equal("first datagram b receives (source routing off)", recv_within(rx, "b")[0], b"record route")
    for path in ("net/ipv4/conf/all/accept_source_route", "net/ipv4/conf/to-a/accept_source_route"):
        topo.sysctl("b", path, 1)
    srr.sendto(b"source routed", ("10.0.1.2", PORT))
    expect.equal("datagram b receives (source routing on)", recv_within(rx, "b")[0], b"source routed")


@pytest.mark.clause("ip.7/ip-options/datagram-local-user-only")
@pytest.mark.fault("getsockopt")
def test_received_options_do_not_become_the_sockets_options():
    """"For datagram sockets, IP options can be set only by the local user."

    b's UDP socket (no options set) receives a datagram carrying a Record Route; its
    getsockopt(IP_OPTIONS) stays empty."""
    topo = topology.two_hosts()
    tx, rx = _udp_pair(topo)
    tx.setsockopt(SOL_IP, IP_OPTIONS, _padded(_record_route(2)))
    tx.sendto(b"x", ("10.0.1.2", PORT))
    recv_within(rx, "the datagram at b")
    expect.equal("receiver's IP_OPTIONS", rawsock.getsockopt(rx.fileno(), SOL_IP, IP_OPTIONS, 40), (b"", 0))


# ---------------------------------------------------------------------- IP_RECVOPTS / IP_RETOPTS

@pytest.mark.clause("ip.7/ip-recvopts/pass-options")
@pytest.mark.fault("recvmsg", "setsockopt")
def test_recvopts_passes_options_in_an_ip_options_message():
    """"Pass all incoming IP options to the user in a IP_OPTIONS control message."

    a's datagram carries a Record Route; b's socket has IP_RECVOPTS on.  recvmsg returns
    one IPPROTO_IP control message of type IP_OPTIONS holding the options."""
    topo = topology.two_hosts()
    tx, rx = _udp_pair(topo)
    rx.setsockopt(SOL_IP, IP_RECVOPTS, 1)
    tx.setsockopt(SOL_IP, IP_OPTIONS, _padded(_record_route(2)))
    tx.sendto(b"x", ("10.0.1.2", PORT))
    types = sorted(_options_cmsgs(rx))
    expect.equal("IPPROTO_IP control message types", types, [IP_OPTIONS])


@pytest.mark.clause("ip.7/ip-recvopts/filled-in-for-local-host", "ip.7/ip-options/other-options-handled")
@pytest.mark.fault("recvmsg", "setsockopt")
def test_recvopts_copy_has_this_hosts_entry():
    """"The routing header and other options are already filled in for the local host."

    The Record Route a sends (two slots) comes to b's IP_RECVOPTS user with b's address
    in the second slot and the pointer past it (12).  (The message is looked for under
    either type, IP_OPTIONS or IP_RECVOPTS: the type is another clause's concern.)"""
    topo = topology.two_hosts()
    tx, rx = _udp_pair(topo)
    rx.setsockopt(SOL_IP, IP_RECVOPTS, 1)
    tx.setsockopt(SOL_IP, IP_OPTIONS, _padded(_record_route(2)))
    tx.sendto(b"x", ("10.0.1.2", PORT))
    got = _options_cmsgs(rx)
    data = got.get(IP_OPTIONS, got.get(IP_RECVOPTS))
    expect.true("an options control message", data is not None, "IP_OPTIONS or IP_RECVOPTS", sorted(got))
    expect.equal("Record Route (pointer, addresses) as passed", _rr_view(data), (12, ["10.0.1.1", "10.0.1.2"]))


@pytest.mark.clause("ip.7/ip-retopts/raw-unprocessed-options")
@pytest.mark.fault("recvmsg", "setsockopt")
@pytest.mark.parametrize("slots", [2, 3])
def test_retopts_not_filled_in_for_this_hop(slots):
    """"Identical to IP_RECVOPTS, but returns raw unprocessed options with timestamp and
    route record options not filled in for this hop."

    The Record Route a sends comes to b's IP_RETOPTS user as it arrived: type IP_RETOPTS,
    pointer 8 (after a's entry) and b's slot still empty."""
    topo = topology.two_hosts()
    tx, rx = _udp_pair(topo)
    rx.setsockopt(SOL_IP, IP_RETOPTS, 1)
    tx.setsockopt(SOL_IP, IP_OPTIONS, _padded(_record_route(slots)))
    tx.sendto(b"x", ("10.0.1.2", PORT))
    got = _options_cmsgs(rx)
    expect.equal("IPPROTO_IP control message types", sorted(got), [IP_RETOPTS])
    expect.equal("Record Route (pointer, addresses) as passed", _rr_view(got[IP_RETOPTS]),
                 (8, ["10.0.1.1"] + ["0.0.0.0"] * (slots - 1)))


@pytest.mark.clause("ip.7/ip-recvopts/not-sock-stream")
@pytest.mark.fault("recvmsg", "setsockopt")
def test_recvopts_not_for_stream_sockets():
    """"Not supported for SOCK_STREAM sockets."

    The accepted TCP socket in b has IP_RECVOPTS on (the call succeeds); a's segments carry
    a Record Route; recvmsg returns the data without an options control message."""
    _, _, client, server = _tcp_with_client_options(_padded(_record_route(3)))
    server.setsockopt(SOL_IP, IP_RECVOPTS, 1)
    client.sendall(b"stream")
    data, items = recv_control(server, "data at b")
    expect.equal("data", data, b"stream")
    expect.equal("control messages", [(c.level, c.type) for c in items], [])


# ---------------------------------------------------------------------- IP_ROUTER_ALERT

def _ra_sender(topo) -> socket.socket:
    tx = topo.socket("a")
    tx.setsockopt(SOL_IP, IP_OPTIONS, ROUTER_ALERT)
    return tx


def _raw(topo, host: str, proto: int) -> socket.socket:
    return topo.socket(host, socket.AF_INET, socket.SOCK_RAW, proto)


@pytest.mark.clause("ip.7/ip-router-alert/pass-to-be-forwarded", "ip.7/ip-router-alert/not-forwarded")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_router_alert_taps_transit_packets():
    """"Pass all to-be forwarded packets with the IP Router Alert option set to this
    socket." "The tapped packets are not forwarded by the kernel; it is the user's
    responsibility to send them out again."

    a - r - b.  A raw UDP socket in r with IP_ROUTER_ALERT receives a's datagram to b
    carrying the Router Alert option, and b does not; once that socket is closed, the next
    such datagram is forwarded and is the first b receives."""
    topo = topology.routed(1500)
    rx = topo.socket("b")
    rx.bind(("10.0.2.1", PORT))
    tap = _raw(topo, "r", socket.IPPROTO_UDP)
    tap.setsockopt(SOL_IP, IP_ROUTER_ALERT, 1)
    tx = _ra_sender(topo)
    tx.sendto(b"tapped", ("10.0.2.1", PORT))
    pkt = IPv4(recv_within(tap, "the datagram at r's tap")[0])
    expect.equal("(destination, options, payload) at r's tap", (pkt.dst, pkt.options, pkt.payload[8:]),
                 ("10.0.2.1", ROUTER_ALERT, b"tapped"))
    tap.close()
    tx.sendto(b"forwarded", ("10.0.2.1", PORT))
    expect.equal("first datagram b receives", recv_within(rx, "b")[0], b"forwarded")


@pytest.mark.clause("ip.7/ip-router-alert/filtered-by-protocol")
@pytest.mark.fault("recvfrom", "bind")
def test_router_alert_ignores_binding_filters_by_protocol():
    """"Socket binding is ignored, such pack-ets are filtered only by protocol."

    In r, a UDP raw socket bound to 127.0.0.1 (unrelated to the packets) and a raw socket
    of protocol 253, both with IP_ROUTER_ALERT.  a sends a UDP datagram with Router Alert
    and then a protocol-253 packet with Router Alert: the bound UDP socket gets the UDP
    one, the 253 socket gets the 253 one first."""
    topo = topology.routed(1500)
    udp_tap, other_tap = _raw(topo, "r", socket.IPPROTO_UDP), _raw(topo, "r", IPPROTO_EXPERIMENT)
    udp_tap.bind(("127.0.0.1", 0))
    for tap in (udp_tap, other_tap):
        tap.setsockopt(SOL_IP, IP_ROUTER_ALERT, 1)
    _ra_sender(topo).sendto(b"udp", ("10.0.2.1", PORT))
    raw_tx = _raw(topo, "a", IPPROTO_EXPERIMENT)
    raw_tx.setsockopt(SOL_IP, IP_OPTIONS, ROUTER_ALERT)
    raw_tx.sendto(b"proto 253", ("10.0.2.1", 0))
    got_udp = IPv4(recv_within(udp_tap, "UDP at the bound tap")[0])
    got_other = IPv4(recv_within(other_tap, "protocol 253 at its tap")[0])
    expect.equal("protocol of the packet at the bound UDP tap", got_udp.protocol, socket.IPPROTO_UDP)
    expect.equal("protocol of the first packet at the 253 tap", got_other.protocol, IPPROTO_EXPERIMENT)


@pytest.mark.clause("ip.7/ip-router-alert/raw-only")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_router_alert_refused_on_non_raw(kind):
    """"Valid only for raw sockets."

    On a UDP or TCP socket setsockopt(IP_ROUTER_ALERT, 1) fails (taken: ENOPROTOOPT or
    EINVAL)."""
    sock = socket.socket(socket.AF_INET, kind)
    expect.errno(("ENOPROTOOPT", "EINVAL"), sock.setsockopt, SOL_IP, IP_ROUTER_ALERT, 1, what="IP_ROUTER_ALERT")


@pytest.mark.clause("ip.7/ip-router-alert/integer-argument", "ip.7/ip-router-alert/raw-only")
@pytest.mark.fault("getsockopt")
def test_router_alert_integer_flag():
    """"Expects an integer"  (flag)

    On a raw socket a nonzero int enables the option and 0 disables it; getsockopt reads
    1 and 0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    seen = []
    for value in (7, 0):
        sock.setsockopt(SOL_IP, IP_ROUTER_ALERT, value)
        seen.append(sock.getsockopt(SOL_IP, IP_ROUTER_ALERT))
    expect.equal("IP_ROUTER_ALERT after setting 7, then 0", seen, [1, 0])


# ---------------------------------------------------------------------- IP_HDRINCL

@pytest.mark.clause("ip.7/ip-hdrincl/user-supplies-header")
@pytest.mark.fault("sendto")
def test_hdrincl_header_goes_out_as_built():
    """"If enabled, the user supplies an IP header in front of the user data."

    A raw UDP socket in a with IP_HDRINCL sends a hand-built header (source 10.0.1.77,
    which a does not have, TTL 7, ID 0x1234): the packet arrives at b with those fields
    and its UDP payload reaches b's socket."""
    topo = topology.two_hosts()
    rx = topo.socket("b")
    rx.bind(("0.0.0.0", PORT))
    cap = Capture(topo, "b")
    tx = _raw(topo, "a", socket.IPPROTO_UDP)
    tx.setsockopt(SOL_IP, IP_HDRINCL, 1)
    tx.sendto(ipv4_header("10.0.1.77", "10.0.1.2", ttl=7, ident=0x1234) + udp_header(5555, PORT, b"built"),
              ("10.0.1.2", 0))
    pkt = cap.next("the packet at b", udp_to(PORT))
    expect.equal("(source, TTL, ID) at b", (pkt.src, pkt.ttl, pkt.ident), ("10.0.1.77", 7, 0x1234))
    expect.equal("payload and source at b's socket", recv_within(rx, "b"), (b"built", ("10.0.1.77", 5555)))


IGNORED_SETTINGS = [
    pytest.param({IP_TTL: 33, IP_TOS: 0x10}, id="IP_TTL-IP_TOS"),
    pytest.param({IP_OPTIONS: _padded(_record_route(2))}, id="IP_OPTIONS"),
]


@pytest.mark.clause("ip.7/ip-hdrincl/ignores-options-ttl-tos")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("settings", IGNORED_SETTINGS)
def test_hdrincl_ignores_socket_ttl_tos_options(settings):
    """"When this flag is enabled, the values set by IP_OPTIONS, IP_TTL, and IP_TOS are
    ignored."

    The raw socket sets IP_TTL 33 and IP_TOS 0x10, or a Record Route in IP_OPTIONS, then
    sends with IP_HDRINCL a header with TTL 7, TOS 0x20 and no options: the send succeeds
    and b sees TTL 7, TOS 0x20 and a 20-byte header."""
    topo = topology.two_hosts()
    cap = Capture(topo, "b")
    tx = _raw(topo, "a", socket.IPPROTO_UDP)
    for option, value in settings.items():
        tx.setsockopt(SOL_IP, option, value)
    tx.setsockopt(SOL_IP, IP_HDRINCL, 1)
    packet = ipv4_header("10.0.1.1", "10.0.1.2", ttl=7, ident=1, tos=0x20) + udp_header(5555, PORT, b"x")
    expect.succeeds(tx.sendto, packet, ("10.0.1.2", 0), what="sendto of a built header")
    pkt = cap.next("the packet at b", udp_to(PORT))
    expect.equal("(TTL, TOS, header length) at b", (pkt.ttl, pkt.tos, pkt.ihl), (7, 0x20, 20))


HDRINCL_KINDS = [
    pytest.param(socket.SOCK_DGRAM, 0, "ENOPROTOOPT", id="udp"),
    pytest.param(socket.SOCK_STREAM, 0, "ENOPROTOOPT", id="tcp"),
    pytest.param(socket.SOCK_RAW, socket.IPPROTO_UDP, None, id="raw"),
]


@pytest.mark.clause("ip.7/ip-hdrincl/sock-raw-only")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("kind, proto, err", HDRINCL_KINDS)
def test_hdrincl_only_for_raw(kind, proto, err):
    """"Valid only for SOCK_RAW sockets;"

    setsockopt(IP_HDRINCL, 1) fails on UDP and TCP sockets (taken: ENOPROTOOPT or
    EINVAL) and succeeds on a raw socket, which then reads 1.  A socket opened with
    IPPROTO_RAW has it on already."""
    sock = socket.socket(socket.AF_INET, kind, proto)
    if err:
        expect.errno((err, "EINVAL"), sock.setsockopt, SOL_IP, IP_HDRINCL, 1, what="IP_HDRINCL")
        return
    sock.setsockopt(SOL_IP, IP_HDRINCL, 1)
    expect.equal("IP_HDRINCL of the raw socket", sock.getsockopt(SOL_IP, IP_HDRINCL), 1)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    expect.equal("IP_HDRINCL of an IPPROTO_RAW socket", raw.getsockopt(SOL_IP, IP_HDRINCL), 1)


# ---------------------------------------------------------------------- IP_NODEFRAG

def _first_fragment(ident: int) -> bytes:
    """The first fragment (MF set, offset 0) of a UDP datagram from a to b whose second
    fragment is never sent."""
    body = udp_header(5555, PORT, bytes(24))[:32]
    return ipv4_header("10.0.1.1", "10.0.1.2", ttl=64, ident=ident, frag=0x2000) + body


@pytest.mark.clause("ip.7/ip-nodefrag/no-netfilter-reassembly")
@pytest.mark.fault("setsockopt", "sendto")
@pytest.mark.parametrize("nodefrag", [True, False], ids=["IP_NODEFRAG", "without"])
def test_nodefrag_skips_conntrack_reassembly(nodefrag):
    """"If enabled (argument is nonzero), the reassembly of outgoing packets is disabled
    in the netfilter layer."

    a tracks connections (nftables ct rule in its output chain).  A raw IP_HDRINCL socket
    sends a lone first fragment, then a whole datagram.  With IP_NODEFRAG the fragment
    goes out as it is and is the first packet b's link sees; without it, conntrack holds
    the fragment for reassembly and the whole datagram arrives first."""
    topo = topology.two_hosts()
    topo.nft_chain("a", "out", "output", topology.nft_ct_state())
    cap = Capture(topo, "b")
    tx = _raw(topo, "a", socket.IPPROTO_RAW)
    if nodefrag:
        tx.setsockopt(SOL_IP, IP_NODEFRAG, 1)
    tx.sendto(_first_fragment(0x4242), ("10.0.1.2", 0))
    marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    marker.sendto(b"marker", ("10.0.1.2", PORT))
    first = cap.next("the first UDP packet at b", lambda p: p.protocol == socket.IPPROTO_UDP)
    seen = "the lone fragment" if (first.mf, first.ident) == (True, 0x4242) else f"a packet of ID {first.ident:#x}"
    expect.equal("first UDP packet at b", seen, "the lone fragment" if nodefrag else f"a packet of ID {first.ident:#x}")
    if not nodefrag:
        expect.equal("payload of the first UDP packet at b", first.payload[8:], b"marker")


@pytest.mark.clause("ip.7/ip-nodefrag/argument-integer")
@pytest.mark.fault("getsockopt")
def test_nodefrag_integer():
    """"The argument is an integer."

    On a raw socket, setting the int 1 reads back 1 and 0 reads back 0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    seen = []
    for value in (1, 0):
        sock.setsockopt(SOL_IP, IP_NODEFRAG, value)
        seen.append(sock.getsockopt(SOL_IP, IP_NODEFRAG))
    expect.equal("IP_NODEFRAG after setting 1, then 0", seen, [1, 0])


@pytest.mark.clause("ip.7/ip-nodefrag/sock-raw-only")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM], ids=["udp", "tcp"])
def test_nodefrag_refused_on_non_raw(kind):
    """"This option is valid only for SOCK_RAW sockets."

    setsockopt(IP_NODEFRAG, 1) on a UDP or TCP socket fails (taken: ENOPROTOOPT or
    EINVAL)."""
    sock = socket.socket(socket.AF_INET, kind)
    expect.errno(("ENOPROTOOPT", "EINVAL"), sock.setsockopt, SOL_IP, IP_NODEFRAG, 1, what="IP_NODEFRAG")


# ---------------------------------------------------------------------- ip_dynaddr

def _syn_sources_across_an_address_change(topo) -> tuple[str, str]:
    """a connects (non-blocking) to 10.0.1.99, an address b takes and drops; once the
    first SYN is seen at b, a's 10.0.1.1 is replaced by 10.0.4.1 on the same link.  The
    sources of the first SYN and of its retransmission (after the one-second initial
    RTO)."""
    topo.neighbour("a", "to-b", "10.0.1.99", topo["b"].link.mac)
    topo.add_route("a", "10.0.1.99", dev="to-b")
    cap = Capture(topo, "b")
    sock = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    expect.equal("connect_ex", errno.errorcode.get(sock.connect_ex(("10.0.1.99", PORT))), "EINPROGRESS")
    syn = lambda p: p.protocol == socket.IPPROTO_TCP and p.dst == "10.0.1.99"
    first = cap.next("the first SYN", syn)
    topo.add_address("a", "to-b", "10.0.4.1/24")
    topo.del_address("a", "to-b", "10.0.1.1/24")
    again = cap.next("the retransmitted SYN", syn, timeout=3.0)
    return first.src, again.src


@pytest.mark.clause("ip.7/proc-interfaces/ip-dynaddr-rewrite")
@pytest.mark.fault("connect")
def test_dynaddr_rewrites_the_source_of_a_pending_connect():
    """"Enable dynamic socket address and masquerading entry rewriting on interface
    address change."  (the knob: net.ipv4.ip_dynaddr)

    With ip_dynaddr=1 in a, a TCP connect to a silent address leaves its SYN from
    10.0.1.1; a's address is then replaced by 10.0.4.1 on the same link, and the
    retransmitted SYN carries the new source address."""
    topo = topology.two_hosts()
    topo.sysctl("a", "net/ipv4/ip_dynaddr", 1)
    expect.equal("source of the first SYN, then of the retransmitted one",
                 _syn_sources_across_an_address_change(topo), ("10.0.1.1", "10.0.4.1"))


@pytest.mark.clause("ip.7/proc-interfaces/ip-dynaddr-values")
@pytest.mark.fault("connect")
def test_dynaddr_values_and_verbose_mode():
    """"0 means no rewriting, 1 turns it on and 2 enables ver-bose mode."

    0, 1 and 2 are taken and read back.  With 2 the rewrite happens and the kernel log
    reports the address shift (read from /dev/kmsg)."""
    topo = topology.two_hosts()
    seen = [topo.sysctl("a", "net/ipv4/ip_dynaddr", value) for value in (0, 1, 2)]
    expect.equal("ip_dynaddr read back after writing 0, 1, 2", seen, ["0", "1", "2"])
    kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    os.lseek(kmsg, 0, os.SEEK_END)
    expect.equal("source of the first SYN, then of the retransmitted one",
                 _syn_sources_across_an_address_change(topo), ("10.0.1.1", "10.0.4.1"))
    log = []
    while True:
        try:
            log.append(os.read(kmsg, 8192).decode(errors="replace"))
        except BlockingIOError:
            break
    shifted = [line for line in log if "10.0.1.1" in line and "10.0.4.1" in line]
    expect.true("a kernel log line about the shift from 10.0.1.1 to 10.0.4.1", bool(shifted),
                "such a line", log[-5:])
