"""ip(7) IP_RECVERR, IP_MTU, IP_MTU_DISCOVER and the PMTU /proc knobs, with real ICMP
from other hosts: port unreachable from the peer (two_hosts), fragmentation needed from
a router whose far link has MTU 1280 (routed), and the don't-fragment bit as the packet
arrives at the next host (a packet socket there)."""

from __future__ import annotations

import errno
import os
import select
import socket
import struct

import pytest

from harness import cmsg, expect, rawsock, sockaddr, sysctl, topology
from suites.ip7._ip import (
    ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH, IP_HEADER, IP_MTU, IP_MTU_DISCOVER,
    IP_PMTUDISC_DO, IP_PMTUDISC_DONT, IP_PMTUDISC_PROBE, IP_PMTUDISC_WANT, IP_RECVERR, IP_RECVTOS,
    IP_RECVTTL, IP_TOS, IP_TTL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_LOCAL, SOL_IP, UDP_HEADER, Capture,
    inet, parse_extended_err, pending, recv_within, udp_header, udp_to, wait_error)

PORT, CLOSED = 4321, 9
ROUTER_MTU = 1280
TCP_INFO = 11


# ---------------------------------------------------------------------- helpers

def _udp(topo, host: str = "a", *, recverr: bool = True, pmtudisc: int | None = None) -> socket.socket:
    sock = topo.socket(host)
    if recverr:
        sock.setsockopt(SOL_IP, IP_RECVERR, 1)
    if pmtudisc is not None:
        sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, pmtudisc)
    return sock


def _errqueue(sock: socket.socket, what: str, *, wait: bool = True):
    """The next error-queue entry: (recvmsg result, sock_extended_err, all control
    messages)."""
    if wait:
        wait_error(sock, what)
    got = rawsock.recvmsg(sock.fileno(), 65536, controllen=512, namelen=sockaddr.SOCKADDR_IN,
                          flags=socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    items = cmsg.decode(got.control)
    found = cmsg.find(items, SOL_IP, IP_RECVERR)
    expect.equal(f"IP_RECVERR control messages in the entry ({what})", len(found), 1)
    return got, parse_extended_err(found[0].data), items


def _errqueue_empty(sock: socket.socket, what: str) -> None:
    """recvmsg(MSG_ERRQUEUE) must fail with EAGAIN: nothing is queued."""
    try:
        got = rawsock.recvmsg(sock.fileno(), 4096, controllen=512, flags=socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except OSError as exc:
        expect.equal(what, errno.errorcode.get(exc.errno), "EAGAIN")
        return
    found = cmsg.find(cmsg.decode(got.control), SOL_IP, IP_RECVERR)
    entry = _fields(parse_extended_err(found[0].data)) if found else "no IP_RECVERR message"
    raise expect.Deviation(what, "EAGAIN (nothing queued)", f"an entry of {got.nbytes} bytes, {entry}")


def _fields(ee) -> dict:
    return {"ee_errno": errno.errorcode.get(ee.errno, ee.errno), "ee_origin": ee.origin,
            "ee_type": ee.type, "ee_code": ee.code}


def _ip_mtu(sock: socket.socket) -> int:
    raw, optlen = rawsock.getsockopt(sock.fileno(), SOL_IP, IP_MTU, 4)
    expect.equal("IP_MTU optlen (an int)", optlen, 4)
    return struct.unpack("=i", raw)[0]


def _learn_pmtu(topo, sock: socket.socket, dst=("10.0.2.1", PORT)) -> None:
    """Send a datagram with DF that does not fit the router's far link, wait for the
    router's fragmentation-needed, and take the entry off the error queue."""
    sock.sendto(bytes(1400), dst)
    _errqueue(sock, "fragmentation needed from the router")


def _two_hosts_b_listening():
    topo = topology.two_hosts()
    rx = topo.socket("b")
    rx.bind(("0.0.0.0", PORT))
    return topo, rx


# ---------------------------------------------------------------------- IP_RECVERR: ICMP

@pytest.mark.clause("ip.7/ip-recverr/enable-extended-errors", "ip.7/ip-recverr/queued-per-socket",
                    "ip.7/ip-recverr/cmsg-level-type", "ip.7/ip-recverr/unconnected-sockets",
                    "ip.7/ip-recverr/sock-extended-err-origins", "ip.7/ip-recverr/ee-errno",
                    "ip.7/ip-recverr/ee-origin", "ip.7/ip-recverr/origin-icmp-or-local",
                    "ip.7/ip-recverr/ee-type-code", "ip.7/ip-recverr/so-ee-offender",
                    "ip.7/ip-recverr/offender-node", "ip.7/ip-recverr/data-is-error-packet",
                    "ip.7/ip-recverr/payload-returned")
@pytest.mark.fault("recvmsg")
def test_port_unreachable_is_queued():
    """"Enable extended reliable error message passing." "When enabled on a datagram
    socket, all generated errors will be queued in a per-socket error queue." "The
    sock_extended_err structure describing the error will be passed in an ancillary
    message with the type IP_RECVERR and the level IPPROTO_IP." "ee_origin is set to
    SO_EE_ORIGIN_ICMP for errors received as an ICMP packet" "ee_type and ee_code are set
    from the type and code fields of the ICMP header." "The message also contains the
    sockaddr_in of the node caused the error" "The payload of the packet causing the error
    is returned as normal payload."

    a's unconnected UDP socket sends to a closed port of b; b answers ICMP port
    unreachable.  recvmsg(MSG_ERRQUEUE) returns the datagram's payload, its destination as
    msg_name, and one (IPPROTO_IP, IP_RECVERR) message: ee_errno ECONNREFUSED, ee_origin
    SO_EE_ORIGIN_ICMP (2), ee_type 3, ee_code 3, offender b (AF_INET, 10.0.1.2).  Another
    socket of a with IP_RECVERR has nothing queued."""
    topo = topology.two_hosts()
    tx, other = _udp(topo), _udp(topo)
    tx.sendto(b"probe payload", ("10.0.1.2", CLOSED))
    got, ee, _ = _errqueue(tx, "ICMP port unreachable")
    expect.equal("sock_extended_err", _fields(ee),
                 {"ee_errno": "ECONNREFUSED", "ee_origin": SO_EE_ORIGIN_ICMP, "ee_type": ICMP_DEST_UNREACH,
                  "ee_code": ICMP_PORT_UNREACH})
    expect.equal("SO_EE_OFFENDER (family, address)", (ee.offender_family, ee.offender_addr),
                 (socket.AF_INET, "10.0.1.2"))
    expect.equal("data returned from the error queue", got.data, b"probe payload")
    expect.equal("msg_name (where the datagram was sent)", got.name.raw, sockaddr.in4("10.0.1.2", CLOSED))
    _errqueue_empty(other, "error queue of another socket")


@pytest.mark.clause("ip.7/ip-recverr/msg-errqueue")
@pytest.mark.fault("recvmsg", "recvfrom")
def test_error_reported_then_read_from_the_queue():
    """"When the user receives an error from a socket operation, the errors can be
    received by calling recvmsg(2) with the MSG_ERRQUEUE flag set."

    After the port unreachable, recv() reports ECONNREFUSED; recvmsg(MSG_ERRQUEUE) then
    returns the queued entry, and a second one fails with EAGAIN (the queue is empty)."""
    topo = topology.two_hosts()
    tx = _udp(topo)
    tx.sendto(b"x", ("10.0.1.2", CLOSED))
    wait_error(tx, "ICMP port unreachable")
    expect.errno("ECONNREFUSED", tx.recvfrom, 64, socket.MSG_DONTWAIT, what="recv() after the ICMP error")
    _, ee, _ = _errqueue(tx, "the queued error", wait=False)
    expect.equal("ee_errno of the queued entry", errno.errorcode.get(ee.errno), "ECONNREFUSED")
    _errqueue_empty(tx, "recvmsg(MSG_ERRQUEUE) once the entry is read")


@pytest.mark.clause("ip.7/ip-recverr/unconnected-sockets", "ip.7/ip-recverr/enable-extended-errors")
@pytest.mark.fault("recvmsg", "getsockopt")
def test_without_recverr_unconnected_socket_learns_nothing():
    """"This is useful for reliable error handling on unconnected sockets."

    Without IP_RECVERR, an unconnected socket whose datagram draws an ICMP port
    unreachable gets no error at all: SO_ERROR stays 0 and its error queue is empty.  (A
    second socket with IP_RECVERR sends after it; once that one's error has arrived, so
    has the first.)"""
    topo = topology.two_hosts()
    plain, witness = _udp(topo, recverr=False), _udp(topo)
    plain.sendto(b"x", ("10.0.1.2", CLOSED))
    witness.sendto(b"x", ("10.0.1.2", CLOSED))
    wait_error(witness, "the witness's ICMP error")
    expect.equal("SO_ERROR without IP_RECVERR", plain.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0)
    _errqueue_empty(plain, "error queue without IP_RECVERR")


@pytest.mark.clause("ip.7/ip-recverr/ip-options-as-cmsgs")
@pytest.mark.fault("recvmsg")
def test_icmp_error_carries_enabled_ip_cmsgs():
    """"When the error originated from the network, all IP options (IP_OPTIONS, IP_TTL,
    etc.) enabled on the socket and contained in the error packet are passed as control
    messages."

    With IP_RECVTTL and IP_RECVTOS on, the error-queue entry of b's port unreachable also
    carries IP_TTL (the TTL the ICMP packet arrived with: b's default TTL, one hop, not
    forwarded) and IP_TOS messages; a locally generated error (EMSGSIZE over the
    interface MTU) carries neither."""
    topo = topology.two_hosts()
    default_ttl = int(topo.sysctl("b", "net/ipv4/ip_default_ttl"))
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_DO)
    tx.setsockopt(SOL_IP, IP_RECVTTL, 1)
    tx.setsockopt(SOL_IP, IP_RECVTOS, 1)
    tx.sendto(b"x", ("10.0.1.2", CLOSED))
    _, _, items = _errqueue(tx, "ICMP port unreachable")
    kinds = sorted(c.type for c in items if c.level == SOL_IP)
    expect.equal("IPPROTO_IP control message types (ICMP error)", kinds, sorted([IP_RECVERR, IP_TTL, IP_TOS]))
    ttl = cmsg.find(items, SOL_IP, IP_TTL)[0].data
    expect.equal("IP_TTL of the ICMP packet", struct.unpack("=i", ttl)[0], default_ttl)
    expect.errno("EMSGSIZE", tx.sendto, bytes(2000), ("10.0.1.2", PORT), what="sendto over the interface MTU")
    _, ee, items = _errqueue(tx, "the local EMSGSIZE")
    kinds = sorted(c.type for c in items if c.level == SOL_IP)
    expect.equal("IPPROTO_IP control message types (local error)", kinds, [IP_RECVERR])


@pytest.mark.clause("ip.7/ip-recverr/ee-info-mtu", "ip.7/ip-recverr/offender-node",
                    "ip.7/ip-recverr/ee-type-code", "ip.7/ip-recverr/ee-errno",
                    "ip.7/ip-mtu-discover/pmtu-via-error-queue")
@pytest.mark.fault("recvmsg")
def test_fragmentation_needed_from_the_router():
    """"ee_info contains the discovered MTU for EMSGSIZE errors." "The message also
    contains the sockaddr_in of the node caused the error" "For connectionless sockets
    with many destinations, the new MTU for a given destination can also be accessed
    using the error queue (see IP_RECVERR)."

    a - r - b, the r-b link with MTU 1280.  a's unconnected socket (IP_PMTUDISC_DO) sends
    1400 bytes to b; r answers fragmentation needed.  The entry: ee_errno EMSGSIZE,
    SO_EE_ORIGIN_ICMP, type 3 code 4, ee_info 1280, offender the router (10.0.1.254),
    msg_name the destination (10.0.2.1:4321)."""
    topo = topology.routed(ROUTER_MTU)
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_DO)
    tx.sendto(bytes(1400), ("10.0.2.1", PORT))
    got, ee, _ = _errqueue(tx, "fragmentation needed")
    expect.equal("sock_extended_err", dict(_fields(ee), ee_info=ee.info),
                 {"ee_errno": "EMSGSIZE", "ee_origin": SO_EE_ORIGIN_ICMP, "ee_type": ICMP_DEST_UNREACH,
                  "ee_code": ICMP_FRAG_NEEDED, "ee_info": ROUTER_MTU})
    expect.equal("SO_EE_OFFENDER (family, address)", (ee.offender_family, ee.offender_addr),
                 (socket.AF_INET, "10.0.1.254"))
    expect.equal("msg_name (the destination)", got.name.raw, sockaddr.in4("10.0.2.1", PORT))


@pytest.mark.clause("ip.7/ip-recverr/ee-info-mtu", "ip.7/ip-recverr/offender-unknown-af-unspec",
                    "ip.7/ip-recverr/offender-af-unspec-unknown-source",
                    "ip.7/ip-recverr/origin-icmp-or-local", "ip.7/ip-recverr/sock-extended-err-origins")
@pytest.mark.fault("recvmsg")
def test_local_emsgsize_is_queued():
    """"ee_origin is set to ... SO_EE_ORIGIN_LOCAL for locally generated errors." "ee_info
    contains the discovered MTU for EMSGSIZE errors." "If this address is not known, the
    sa_family member of the sockaddr contains AF_UNSPEC" "The sin_family field of the
    SO_EE_OFFENDER address is AF_UNSPEC when the source was unknown."

    With IP_PMTUDISC_DO, a 2000-byte datagram on a 1500-byte link fails with EMSGSIZE
    and queues an entry: SO_EE_ORIGIN_LOCAL, ee_errno EMSGSIZE, ee_info 1500, offender
    family AF_UNSPEC."""
    topo = topology.two_hosts()
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_DO)
    expect.errno("EMSGSIZE", tx.sendto, bytes(2000), ("10.0.1.2", PORT), what="sendto over the interface MTU")
    _, ee, _ = _errqueue(tx, "the local EMSGSIZE")
    expect.equal("sock_extended_err", {"ee_errno": errno.errorcode.get(ee.errno), "ee_origin": ee.origin,
                                       "ee_info": ee.info},
                 {"ee_errno": "EMSGSIZE", "ee_origin": SO_EE_ORIGIN_LOCAL, "ee_info": 1500})
    expect.equal("SO_EE_OFFENDER sa_family", ee.offender_family, socket.AF_UNSPEC)


# ---------------------------------------------------------------------- IP_RECVERR: kinds

RECVERR_KINDS = [
    pytest.param(socket.SOCK_DGRAM, 0, id="udp"),
    pytest.param(socket.SOCK_STREAM, 0, id="tcp"),
    pytest.param(socket.SOCK_RAW, socket.IPPROTO_UDP, id="raw"),
]


@pytest.mark.clause("ip.7/ip-recverr/integer-boolean", "ip.7/ip-recverr/default-off")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("kind, proto", RECVERR_KINDS)
def test_recverr_is_an_int_flag_off_by_default(kind, proto):
    """"It sets or retrieves an integer boolean flag." "IP_RECVERR defaults to off."

    A new socket reads 0 (an int, optlen 4); after setting 1 it reads 1, after 0 again
    0."""
    sock = inet(kind, proto)
    values = []
    for setting in (None, 1, 0):
        if setting is not None:
            sock.setsockopt(SOL_IP, IP_RECVERR, setting)
        raw, optlen = rawsock.getsockopt(sock.fileno(), SOL_IP, IP_RECVERR, 4)
        values.append((struct.unpack("=i", raw)[0], optlen))
    expect.equal("IP_RECVERR (value, optlen): new, after 1, after 0", values, [(0, 4), (1, 4), (0, 4)])


def _tcp_connected_pair(topo=None, server_addr: str = "10.0.1.2"):
    """A TCP connection from host a to host b (``server_addr``) of ``topo`` (default:
    two hosts on one link): (topo, client, accepted server socket)."""
    topo = topo or topology.two_hosts()
    listener = topo.socket("b", socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((server_addr, PORT))
    listener.listen()
    client = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
    client.connect((server_addr, PORT))
    server, _ = listener.accept()
    return topo, client, server


@pytest.mark.clause("ip.7/ip-recverr/tcp-no-error-queue")
@pytest.mark.fault("recvmsg")
def test_tcp_msg_errqueue_is_not_permitted():
    """"Note that TCP has no error queue; MSG_ERRQUEUE is not permitted on SOCK_STREAM
    sockets."

    recvmsg(MSG_ERRQUEUE) on a connected TCP socket (with IP_RECVERR on) is refused.  The
    page names no errno; taken as refusals: EINVAL, EOPNOTSUPP, EPERM (not EAGAIN, which
    reports an empty queue)."""
    _, client, _ = _tcp_connected_pair()
    client.setsockopt(SOL_IP, IP_RECVERR, 1)
    expect.errno(("EINVAL", "EOPNOTSUPP", "EPERM"), rawsock.recvmsg, client.fileno(), 4096, controllen=512,
                 flags=socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT, what="recvmsg(MSG_ERRQUEUE) on SOCK_STREAM")


@pytest.mark.clause("ip.7/ip-recverr/tcp-errors-via-return-so-error", "ip.7/ip-recverr/tcp-no-error-queue")
@pytest.mark.fault("getsockopt", "setsockopt")
def test_tcp_icmp_error_only_by_so_error():
    """"IP_RECVERR is valid for TCP, but all errors are returned by socket function return
    or SO_ERROR only."  "Note that TCP has no error queue;"

    a - r - b; r has no route to 10.0.9.0/24 and answers ICMP network unreachable.  A TCP
    socket with IP_RECVERR (accepted) connects there without blocking: the error comes
    as SO_ERROR (ENETUNREACH), and nothing is queued: recvmsg(MSG_ERRQUEUE) fails with
    EAGAIN."""
    topo = topology.routed()
    sock = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(SOL_IP, IP_RECVERR, 1)
    sock.setblocking(False)
    expect.equal("connect_ex", errno.errorcode.get(sock.connect_ex(("10.0.9.1", 80))), "EINPROGRESS")
    poller = select.poll()
    poller.register(sock, select.POLLOUT | select.POLLERR)
    expect.true("connect completes (POLLOUT/POLLERR)", bool(poller.poll(2000)))
    expect.equal("SO_ERROR", errno.errorcode.get(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), "0"),
                 "ENETUNREACH")
    _errqueue_empty(sock, "recvmsg(MSG_ERRQUEUE) on the TCP socket")


@pytest.mark.clause("ip.7/ip-recverr/raw-all-icmp-errors")
@pytest.mark.fault("recvmsg", "getsockopt")
def test_raw_socket_icmp_errors():
    """"For raw sockets, IP_RECVERR enables passing of all received ICMP errors to the
    application, otherwise errors are reported only on connected sockets"

    Three IPPROTO_UDP raw sockets in a: unconnected with IP_RECVERR, unconnected
    without, connected to b without.  A UDP packet to a closed port of b draws a port
    unreachable, which concerns all three: the first queues it (ECONNREFUSED), the
    connected one reports it (SO_ERROR ECONNREFUSED), the unconnected one without the
    option learns nothing.  (A second round on the first socket makes sure the first
    ICMP has been handed to every socket.)"""
    topo = topology.two_hosts()
    with topo.inside("a"):
        with_opt = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        without = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
        connected = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    with_opt.setsockopt(SOL_IP, IP_RECVERR, 1)
    connected.connect(("10.0.1.2", 0))
    with_opt.sendto(udp_header(5555, CLOSED, b"raw"), ("10.0.1.2", 0))
    _, ee, _ = _errqueue(with_opt, "ICMP error on the raw socket with IP_RECVERR")
    expect.equal("ee_errno (raw, IP_RECVERR)", errno.errorcode.get(ee.errno), "ECONNREFUSED")
    wait_error(connected, "ICMP error on the connected raw socket")
    expect.equal("SO_ERROR of the connected raw socket",
                 errno.errorcode.get(connected.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), "0"), "ECONNREFUSED")
    with_opt.sendto(udp_header(5555, CLOSED, b"again"), ("10.0.1.2", 0))
    _errqueue(with_opt, "the second ICMP error")
    expect.equal("SO_ERROR of the unconnected raw socket without IP_RECVERR",
                 without.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0)
    _errqueue_empty(without, "error queue of the unconnected raw socket without IP_RECVERR")


# ---------------------------------------------------------------------- IP_MTU

@pytest.mark.clause("ip.7/ip-mtu/getsockopt-only")
@pytest.mark.fault("setsockopt")
def test_ip_mtu_cannot_be_set():
    """"IP_MTU is valid only for getsockopt(2)"

    setsockopt(IP_MTU) fails (taken: ENOPROTOOPT or EINVAL)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", PORT))
    expect.errno(("ENOPROTOOPT", "EINVAL"), sock.setsockopt, SOL_IP, IP_MTU, 1400, what="setsockopt(IP_MTU)")


@pytest.mark.clause("ip.7/ip-mtu/connected-only")
@pytest.mark.fault("getsockopt")
def test_ip_mtu_needs_a_connected_socket():
    """"can be employed only when the socket has been connected."

    getsockopt(IP_MTU) on an unconnected UDP socket fails with ENOTCONN."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    expect.errno("ENOTCONN", rawsock.getsockopt, sock.fileno(), SOL_IP, IP_MTU, 4, what="getsockopt(IP_MTU)")


@pytest.mark.clause("ip.7/ip-mtu-discover/initial-estimate-connect", "ip.7/ip-mtu/path-mtu",
                    "ip.7/ip-mtu/returns-integer")
@pytest.mark.fault("getsockopt")
def test_ip_mtu_after_connect_is_the_route_mtu():
    """"To get an initial estimate of the path MTU, connect a datagram socket to the
    destination address using connect(2) and retrieve the MTU by calling getsockopt(2)
    with the IP_MTU option." "Retrieve the current known path MTU of the current socket."
    "Returns an integer."

    Nothing is sent.  Connected to b (route over the 1500-byte veth): 1500.  Connected to
    b's second address, whose host route carries MTU 1400: 1400."""
    topo = topology.two_hosts()
    topo.add_address("b", "to-a", "10.0.1.4")
    topo.add_route("a", "10.0.1.4", dev="to-b", mtu=1400)
    seen = {}
    for dst in ("10.0.1.2", "10.0.1.4"):
        sock = topo.socket("a")
        sock.connect((dst, PORT))
        seen[dst] = _ip_mtu(sock)
    expect.equal("IP_MTU per destination", seen, {"10.0.1.2": 1500, "10.0.1.4": 1400})


# ---------------------------------------------------------------------- IP_MTU_DISCOVER: PMTU

@pytest.mark.clause("ip.7/ip-mtu/path-mtu", "ip.7/ip-mtu-discover/pmtu-changes",
                    "ip.7/ip-mtu-discover/ip-mtu-after-emsgsize", "ip.7/ip-mtu-discover/emsgsize-over-pmtu",
                    "ip.7/ip-mtu-discover/initial-packets-dropped")
@pytest.mark.fault("getsockopt", "sendto")
def test_pmtu_learned_from_the_router():
    """"The path MTU may change over time." "When it is connected to a specific peer with
    connect(2), the currently known path MTU can be retrieved conveniently using the
    IP_MTU socket option (e.g., after an EMSGSIZE error occurred)." "The kernel will
    reject (with EMSGSIZE) datagrams that are bigger than the known path MTU." "While MTU
    discovery is in progress, initial packets from datagram sockets may be dropped."

    a's socket, connected to b behind r (far link MTU 1280), IP_PMTUDISC_DO: IP_MTU reads
    1500; a 1400-byte datagram is sent but dropped by r, which answers fragmentation
    needed; IP_MTU then reads 1280 and the same datagram fails with EMSGSIZE.  A small
    datagram sent last is the first b receives."""
    topo = topology.routed(ROUTER_MTU)
    rx = topo.socket("b")
    rx.bind(("10.0.2.1", PORT))
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_DO)
    tx.connect(("10.0.2.1", PORT))
    before = _ip_mtu(tx)
    tx.send(bytes(1400))
    _errqueue(tx, "fragmentation needed")
    expect.equal("IP_MTU before and after the router's report", (before, _ip_mtu(tx)), (1500, ROUTER_MTU))
    expect.errno("EMSGSIZE", tx.send, bytes(1400), what="send over the learned path MTU")
    tx.send(b"small")
    expect.equal("first datagram b receives", recv_within(rx, "b")[0], b"small")


@pytest.mark.clause("ip.7/ip-mtu-discover/pmtu-per-destination")
@pytest.mark.fault("getsockopt")
def test_pmtu_is_kept_per_destination():
    """"When PMTU discovery is enabled, the kernel automati-cally keeps track of the path
    MTU per destination host."

    After r's fragmentation needed for 10.0.2.1, a socket connected to 10.0.2.1 reads
    IP_MTU 1280, one connected to 10.0.2.2 (b's other address, same route) still 1500."""
    topo = topology.routed(ROUTER_MTU)
    topo.add_address("b", "to-r", "10.0.2.2")
    _learn_pmtu(topo, _udp(topo, pmtudisc=IP_PMTUDISC_DO))
    seen = {}
    for dst in ("10.0.2.1", "10.0.2.2"):
        sock = topo.socket("a")
        sock.connect((dst, PORT))
        seen[dst] = _ip_mtu(sock)
    expect.equal("IP_MTU per destination", seen, {"10.0.2.1": ROUTER_MTU, "10.0.2.2": 1500})


@pytest.mark.clause("ip.7/ip-mtu-discover/error-per-mtu-update")
@pytest.mark.fault("recvmsg")
def test_every_mtu_update_queues_an_error():
    """"A new error will be queued for every incoming MTU update."

    The far link starts at MTU 1400: 1450 bytes draw an update to 1400.  The link then
    drops to 1280: 1350 bytes (under the learned 1400) draw an update to 1280.  Each
    update queues its entry: ee_info 1400, then 1280."""
    topo = topology.routed(1400)
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_DO)
    tx.sendto(bytes(1450), ("10.0.2.1", PORT))
    infos = [_errqueue(tx, "MTU update 1")[1].info]   # reading it clears the pending error
    topo.set_mtu("r", "to-b", 1280)
    tx.sendto(bytes(1350), ("10.0.2.1", PORT))
    infos.append(_errqueue(tx, "MTU update 2")[1].info)
    expect.equal("ee_info of the queued entries", infos, [1400, 1280])


@pytest.mark.clause("ip.7/ip-mtu-discover/bootstrap-big-datagram")
@pytest.mark.fault("recvmsg", "recvfrom")
def test_bootstrap_with_a_big_datagram():
    """"To bootstrap the path MTU discovery process on unconnected sockets, it is
    possible to start with a big datagram size (headers up to 64 kilobytes long) and let
    it shrink by updates of the path MTU."

    Unconnected, IP_PMTUDISC_DO, IP_RECVERR: 65000 bytes fail locally, the entry says
    1500; a datagram filling 1500 goes out and r's update says 1280; a datagram filling
    1280 reaches b."""
    topo = topology.routed(ROUTER_MTU)
    rx = topo.socket("b")
    rx.bind(("10.0.2.1", PORT))
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_DO)
    dst = ("10.0.2.1", PORT)
    size = 65000
    steps = []
    for _ in range(2):
        try:
            tx.sendto(bytes(size), dst)
        except OSError as exc:
            expect.equal("errno of the too-big send", errno.errorcode.get(exc.errno), "EMSGSIZE")
        mtu = _errqueue(tx, f"the MTU for a {size}-byte datagram")[1].info
        steps.append(mtu)
        size = mtu - IP_HEADER - UDP_HEADER
    tx.sendto(bytes(size), dst)
    expect.equal("MTUs learned, then the size b receives", (steps, len(recv_within(rx, "b")[0])),
                 ([1500, ROUTER_MTU], ROUTER_MTU - IP_HEADER - UDP_HEADER))


# ---------------------------------------------------------------------- IP_MTU_DISCOVER: modes

MODES = [("IP_PMTUDISC_DONT", IP_PMTUDISC_DONT), ("IP_PMTUDISC_WANT", IP_PMTUDISC_WANT),
         ("IP_PMTUDISC_DO", IP_PMTUDISC_DO), ("IP_PMTUDISC_PROBE", IP_PMTUDISC_PROBE)]


@pytest.mark.clause("ip.7/ip-mtu-discover/set-get")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("name, value", MODES, ids=[m[0] for m in MODES])
def test_mtu_discover_mode_reads_back(name, value):
    """"Set or receive the Path MTU Discovery setting for a socket."

    Each mode set reads back."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, value)
    expect.equal(f"IP_MTU_DISCOVER after setting {name}", sock.getsockopt(SOL_IP, IP_MTU_DISCOVER), value)


@pytest.mark.clause("ip.7/ip-mtu-discover/set-get")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("value", [-1, 6, 100])
def test_mtu_discover_out_of_range_is_einval(value):
    """"Set or receive the Path MTU Discovery setting for a socket."

    A value outside every defined mode fails with EINVAL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expect.errno("EINVAL", sock.setsockopt, SOL_IP, IP_MTU_DISCOVER, value, what=f"IP_MTU_DISCOVER={value}")


def _df_on_the_wire(topo, mode: int, dst: str, size: int = 100) -> bool:
    cap = Capture(topo, "b")
    tx = _udp(topo, recverr=False, pmtudisc=mode)
    tx.sendto(bytes(size), (dst, PORT))
    return cap.next(f"the datagram to {dst} arriving at b", udp_to(PORT)).df


DF_CASES = [
    pytest.param(IP_PMTUDISC_DO, "10.0.1.2", True, id="DO",
                 marks=pytest.mark.clause("ip.7/ip-mtu-discover/do-sets-df", "ip.7/ip-mtu-discover/pmtudisc-do")),
    pytest.param(IP_PMTUDISC_DO, "10.0.1.4", True, id="DO-locked-route",
                 marks=pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-do")),
    pytest.param(IP_PMTUDISC_WANT, "10.0.1.2", True, id="WANT",
                 marks=pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-want-per-route",
                                          "ip.7/ip-mtu-discover/want-fragment-or-df")),
    pytest.param(IP_PMTUDISC_WANT, "10.0.1.4", False, id="WANT-locked-route",
                 marks=pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-want-per-route")),
    pytest.param(IP_PMTUDISC_DONT, "10.0.1.2", False, id="DONT",
                 marks=pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-dont")),
    pytest.param(IP_PMTUDISC_PROBE, "10.0.1.2", True, id="PROBE",
                 marks=pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-probe")),
]


@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("mode, dst, df", DF_CASES)
def test_dont_fragment_bit_on_the_wire(mode, dst, df):
    """"For non-SOCK_STREAM sockets, IP_PMTUDISC_DO forces the don't-fragment flag to be
    set on all outgoing packets." "IP_PMTUDISC_WANT:Use per-route settings."
    "IP_PMTUDISC_DONT:Never do Path MTU Discovery." "IP_PMTUDISC_DO:Always do Path MTU
    Discovery." "IP_PMTUDISC_PROBE:Set DF but ignore Path MTU."

    A small datagram from a, as it arrives at b: DO and PROBE set DF; DONT does not; WANT
    follows the route, DF over the ordinary route and none over a host route whose MTU is
    locked (to b's second address); DO sets it there too."""
    topo = topology.two_hosts()
    topo.add_address("b", "to-a", "10.0.1.4")
    topo.neighbour("a", "to-b", "10.0.1.4", topo["b"].link.mac)
    topo.add_route("a", "10.0.1.4", dev="to-b", mtu=1500, lock_mtu=True)
    expect.equal(f"DF bit of the datagram to {dst}", _df_on_the_wire(topo, mode, dst), df)


@pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-dont")
@pytest.mark.fault("recvfrom", "sendto")
def test_dont_mode_is_fragmented_on_the_path():
    """"IP_PMTUDISC_DONT:Never do Path MTU Discovery."

    With DONT, 1400 bytes to b behind r (far link 1280) are sent without EMSGSIZE, leave a
    without DF, are fragmented by r, and reach b whole: b's link sees more than one
    fragment, none over 1280 bytes."""
    topo = topology.routed(ROUTER_MTU)
    rx = topo.socket("b")
    rx.bind(("10.0.2.1", PORT))
    cap = Capture(topo, "b")
    tx = _udp(topo, recverr=False, pmtudisc=IP_PMTUDISC_DONT)
    tx.sendto(bytes(1400), ("10.0.2.1", PORT))
    expect.equal("size of the datagram b receives", len(recv_within(rx, "b")[0]), 1400)
    first = cap.next("the first fragment", udp_to(PORT))
    second = cap.next("the second fragment", udp_to(PORT))
    expect.equal("(DF, MF, offset, length <= 1280) of the two fragments",
                 [(p.df, p.mf, p.offset > 0, p.total_length <= ROUTER_MTU) for p in (first, second)],
                 [(False, True, False, True), (False, False, True, True)])


@pytest.mark.clause("ip.7/ip-mtu-discover/want-fragment-or-df")
@pytest.mark.fault("recvfrom", "recvmsg")
def test_want_mode_fragments_by_the_learned_pmtu():
    """"IP_PMTUDISC_WANT will fragment a datagram if needed according to the path MTU, or
    will set the don't-fragment flag otherwise."

    With WANT, a's first 1400-byte datagram goes with DF and draws r's update (1280).  The
    same datagram sent again is fragmented by a itself: it leaves a's link in fragments
    of at most 1280 bytes, and b receives it whole."""
    topo = topology.routed(ROUTER_MTU)
    rx = topo.socket("b")
    rx.bind(("10.0.2.1", PORT))
    cap = Capture(topo, "r", "to-a")
    tx = _udp(topo, pmtudisc=IP_PMTUDISC_WANT)
    tx.sendto(bytes(1400), ("10.0.2.1", PORT))
    whole = cap.next("the first datagram at r", udp_to(PORT))
    expect.equal("(DF, fragment) of the first datagram", (whole.df, whole.is_fragment), (True, False))
    _errqueue(tx, "fragmentation needed")
    tx.sendto(bytes(1400), ("10.0.2.1", PORT))
    frags = [cap.next(f"fragment {n} at r", udp_to(PORT)) for n in (1, 2)]
    expect.equal("(MF, length <= 1280) of the fragments leaving a",
                 [(p.mf, p.total_length <= ROUTER_MTU) for p in frags], [(True, True), (False, True)])
    expect.equal("size of the datagram b receives", len(recv_within(rx, "b")[0]), 1400)


@pytest.mark.clause("ip.7/ip-mtu-discover/pmtudisc-probe", "ip.7/ip-mtu-discover/probe-larger-than-pmtu")
@pytest.mark.fault("sendto", "setsockopt")
def test_probe_mode_sends_beyond_the_learned_pmtu():
    """"IP_PMTUDISC_PROBE:Set DF but ignore Path MTU." "... diagnostic tools such as
    tracepath(8) that wish to deliberately send probe packets larger than the observed
    Path MTU."

    After r's update to 1280, a socket with PROBE sends 1400 bytes (within a's 1500-byte
    link) without EMSGSIZE; the packet reaches r whole, with DF."""
    topo = topology.routed(ROUTER_MTU)
    _learn_pmtu(topo, _udp(topo, pmtudisc=IP_PMTUDISC_DO))
    cap = Capture(topo, "r", "to-a")
    tx = _udp(topo, recverr=False, pmtudisc=IP_PMTUDISC_PROBE)
    tx.sendto(bytes(1400), ("10.0.2.1", PORT))
    pkt = cap.next("the probe at r", udp_to(PORT))
    expect.equal("(DF, fragment, total length) of the probe at r", (pkt.df, pkt.is_fragment, pkt.total_length),
                 (True, False, 1400 + IP_HEADER + UDP_HEADER))


@pytest.mark.clause("ip.7/ip-mtu-discover/probe-rfc4821")
@pytest.mark.fault("setsockopt", "getsockopt")
@pytest.mark.parametrize("kind, proto", [pytest.param(socket.SOCK_DGRAM, 0, id="dgram"),
                                         pytest.param(socket.SOCK_RAW, socket.IPPROTO_UDP, id="raw")])
def test_probe_mode_on_dgram_and_raw(kind, proto):
    """"It is possible to implement RFC 4821 MTU probing with SOCK_DGRAM or SOCK_RAW
    sockets by setting a value of IP_PMTUDISC_PROBE (available since Linux 2.6.22)."

    Both socket types accept IP_PMTUDISC_PROBE and read it back."""
    sock = inet(kind, proto)
    sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
    expect.equal("IP_MTU_DISCOVER", sock.getsockopt(SOL_IP, IP_MTU_DISCOVER), IP_PMTUDISC_PROBE)


def _pump(client: socket.socket, server: socket.socket, total: int, timeout: float = 5.0) -> int:
    """Send ``total`` bytes from client to server without blocking; the bytes received."""
    client.setblocking(False)
    server.setblocking(False)
    data, sent, got = bytes(total), 0, 0
    while got < total:
        want_w = [client] if sent < total else []
        readable, writable, _ = select.select([server], want_w, [], timeout)
        if not readable and not writable:
            break
        if writable:
            sent += client.send(data[sent:sent + 65536])
        if readable:
            chunk = server.recv(65536)
            if not chunk:
                break
            got += len(chunk)
    return got


@pytest.mark.clause("ip.7/ip-mtu-discover/tcp-rfc1191")
@pytest.mark.fault("getsockopt")
def test_tcp_path_mtu_discovery():
    """"When enabled, Linux will perform Path MTU Dis-covery as defined in RFC 1191 on
    SOCK_STREAM sockets."

    a - r - b, far link MTU 1280; b advertises an MSS for a 1500-byte path (advmss 1460
    on its route), so a's first segments do not fit.  A 200 kB transfer from a completes,
    and a's IP_MTU then reads 1280."""
    topo = topology.routed(ROUTER_MTU)
    topo.add_route("b", "default", via="10.0.2.254", metrics={"RTAX_ADVMSS": 1460})
    _, client, server = _tcp_connected_pair(topo, "10.0.2.1")
    expect.equal("bytes delivered", _pump(client, server, 200_000), 200_000)
    expect.equal("IP_MTU of a's TCP socket", _ip_mtu(client), ROUTER_MTU)


# ---------------------------------------------------------------------- /proc knobs

@pytest.mark.clause("ip.7/ip-mtu-discover/system-default-ip-no-pmtu-disc",
                    "ip.7/proc-interfaces/proc-sys-net-ipv4", "ip.7/proc-interfaces/boolean-knobs")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("knob, mode", [(0, IP_PMTUDISC_WANT), (1, IP_PMTUDISC_DONT)], ids=["0-WANT", "1-DONT"])
def test_ip_no_pmtu_disc_sets_the_default(knob, mode):
    """"The system-wide default can be toggled between IP_PMTUDISC_WANT and
    IP_PMTUDISC_DONT by writing (respectively, zero and nonzero values) to the
    /proc/sys/net/ipv4/ip_no_pmtu_disc file."  "The parameters can be accessed by reading
    or writing files in the directory /proc/sys/net/ipv4/."

    (In the test's own network namespace.)  After writing the value, a new UDP socket
    reads the matching mode."""
    sysctl.write("net.ipv4.ip_no_pmtu_disc", knob)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expect.equal(f"IP_MTU_DISCOVER of a new socket with ip_no_pmtu_disc={knob}",
                 sock.getsockopt(SOL_IP, IP_MTU_DISCOVER), mode)


@pytest.mark.clause("ip.7/proc-interfaces/ip-no-pmtu-disc-tcp")
@pytest.mark.fault("getsockopt", "connect")
@pytest.mark.parametrize("knob, mode, df", [(1, IP_PMTUDISC_DONT, False), (0, IP_PMTUDISC_WANT, True)],
                         ids=["1", "0"])
def test_ip_no_pmtu_disc_for_tcp(knob, mode, df):
    """"If enabled, don't do Path MTU Discovery for TCP sockets by default."

    With the knob at 1 in a, a new TCP socket reads IP_PMTUDISC_DONT and its SYN arrives
    at b without DF; at 0, IP_PMTUDISC_WANT and DF set."""
    topo = topology.two_hosts()
    topo.sysctl("a", "net/ipv4/ip_no_pmtu_disc", knob)
    listener = topo.socket("b", socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("10.0.1.2", PORT))
    listener.listen()
    cap = Capture(topo, "b")
    client = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
    expect.equal("IP_MTU_DISCOVER of a new TCP socket", client.getsockopt(SOL_IP, IP_MTU_DISCOVER), mode)
    client.connect(("10.0.1.2", PORT))
    syn = cap.next("the SYN at b", lambda p: p.protocol == socket.IPPROTO_TCP)
    expect.equal("DF bit of the SYN", syn.df, df)


@pytest.mark.clause("ip.7/proc-interfaces/ip-no-pmtu-disc-blackhole")
@pytest.mark.fault("getsockopt", "recvfrom")
def test_pmtu_discovery_fails_on_a_link_with_disagreeing_mtu():
    """"Path MTU discovery may fail if misconfigured firewalls (that drop all ICMP
    packets) or misconfigured interfaces (e.g., a point-to-point link where the both ends
    don't agree on the MTU) are on the path."

    The misconfigured-interface case: on the r-b link, r's end has MTU 1500 and b's end
    1280, so r forwards a's full-size packets and b's interface drops them, without any
    ICMP; b advertises an MSS for 1500 (advmss 1460 on its route).  A TCP connection from
    a (PMTU discovery on, tcp_mtu_probing 0, minimum RTO 2 ms, one segment per packet)
    delivers a small message, but a 20 kB write stalls: after three retransmissions b has
    received nothing of it."""
    topo = topology.routed(1500)
    topo.set_mtu("b", "to-r", 1280)
    topo.add_route("b", "default", via="10.0.2.254", metrics={"RTAX_ADVMSS": 1460})
    topo.set_link("a", "to-r", IFLA_GSO_MAX_SEGS=1)
    topo.sysctl("a", "net/ipv4/tcp_mtu_probing", 0)
    topo.sysctl("a", "net/ipv4/tcp_rto_min_us", 2000)
    listener = topo.socket("b", socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("10.0.2.1", PORT))
    listener.listen()
    client = topo.socket("a", socket.AF_INET, socket.SOCK_STREAM)
    client.connect(("10.0.2.1", PORT))
    server, _ = listener.accept()
    client.sendall(b"small")
    expect.equal("small message", recv_within(server, "the small message", 64)[0], b"small")
    client.setblocking(False)
    client.send(bytes(20_000))
    poller = select.poll()
    poller.register(server, select.POLLIN)
    retrans = 0
    while retrans < 3 and not poller.poll(10):      # until data arrives or 3 retransmissions
        retrans = _total_retrans(client)
    received = server.recv(65536, socket.MSG_DONTWAIT) if pending(server) else b""
    expect.equal("bytes of the large write b received", len(received), 0)
    expect.true("three retransmissions of the large write", retrans >= 3, ">= 3", retrans)


def _total_retrans(sock: socket.socket) -> int:
    """tcpi_total_retrans of struct tcp_info (the u32 at offset 100)."""
    return struct.unpack_from("=I", sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104), 100)[0]


@pytest.mark.clause("ip.7/proc-interfaces/proc-sys-net-ipv4", "ip.7/proc-interfaces/boolean-knobs")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("value, bind_ok", [(1, True), (0, False)], ids=["1-true", "0-false"])
def test_boolean_knob_ip_nonlocal_bind(value, bind_ok):
    """"Interfaces described as Boolean take an integer value, with a nonzero value
    ("true") meaning that the corresponding option is enabled, and a zero value ("false")
    meaning that the option is disabled."

    (In the test's own namespace.)  /proc/sys/net/ipv4/ip_nonlocal_bind reads back the
    value written; with 1, bind() to an address the host does not have succeeds; with 0
    it fails with EADDRNOTAVAIL."""
    expect.true("/proc/sys/net/ipv4 is a directory", os.path.isdir("/proc/sys/net/ipv4"))
    sysctl.write("net.ipv4.ip_nonlocal_bind", value)
    with open("/proc/sys/net/ipv4/ip_nonlocal_bind") as f:
        expect.equal("ip_nonlocal_bind read back", f.read().strip(), str(value))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if bind_ok:
        expect.succeeds(sock.bind, ("10.9.9.9", PORT), what="bind to a non-local address")
    else:
        expect.errno("EADDRNOTAVAIL", sock.bind, ("10.9.9.9", PORT), what="bind to a non-local address")
