"""ip(7) "Address format" and binding: struct sockaddr_in byte for byte, privileged
ports, raw sockets and ports, the special addresses INADDR_ANY and INADDR_LOOPBACK, and
binding to addresses that are not (yet) local (IP_FREEBIND, ip_nonlocal_bind).

Addresses go in and come out as exact bytes (harness.sockaddr.in4, harness.rawsock), so a
byte-order mistake shows as the wrong bytes or the wrong peer, not as a Python tuple.
"""

from __future__ import annotations

import socket
import struct

import pytest

from harness import expect, privileges, rawsock, sockaddr, sysctl
from suites.ip7._ip import (DGRAM, IP_FREEBIND, IP_HEADER, IP_PKTINFO, IPPROTO_EXPERIMENT, LOOPBACK,
                            STREAM, inet, ip_cmsgs, listener, over, parse_pktinfo, recv_control,
                            second_interface, udp_receiver, wait_readable)

SIN = sockaddr.SOCKADDR_IN
ANY = "0.0.0.0"
NONLOCAL = "192.0.2.1"          # TEST-NET-1: configured on no interface of the namespace
AF_UNSPEC, AF_UNIX, AF_INET6 = 0, 1, 10


def _name(sock: socket.socket) -> sockaddr.Unpacked:
    return rawsock.getsockname(sock.fileno(), SIN)


def _reach(kind: int, addr: str, port: int, server: socket.socket) -> None:
    """From a new socket, connect (TCP) or send a datagram (UDP) to (addr, port); the
    bound ``server`` must get the connection or the datagram."""
    client = inet(kind)
    if kind == STREAM:
        expect.succeeds(client.connect, (addr, port), what=f"connect to {addr}:{port}")
        conn, _ = expect.succeeds(server.accept, what=f"accept of the connection to {addr}:{port}")
        conn.close()
        return
    client.sendto(b"reach", (addr, port))
    wait_readable(server, f"datagram sent to {addr}:{port}")
    expect.equal(f"datagram sent to {addr}:{port}", server.recv(64, socket.MSG_DONTWAIT), b"reach")


def _serve(kind: int, addr: str, port: int = 0) -> socket.socket:
    return listener(addr, port) if kind == STREAM else udp_receiver(addr, port)


# ------------------------------------------------------------------- sockaddr_in bytes

PORT_CASES = [
    pytest.param("127.1.2.3", 0x1234, id="port-0x1234"),
    pytest.param("127.4.3.2", 65535, id="port-65535"),
]


@pytest.mark.clause("ip.7/address-format/address-and-16-bit-port",
                    "ip.7/address-format/sin-port-network-byte-order",
                    "ip.7/address-format/s-addr-network-byte-order",
                    "ip.7/address-format/network-byte-order")
@pytest.mark.fault("bind", "getsockname")
@pytest.mark.parametrize("addr,port", PORT_CASES)
@over()
def test_sockaddr_in_round_trip(kind, addr, port):
    """"An IP socket address is defined as a combination of an IP interface address and
    a 16-bit port number."  "sin_port contains the port in network byte order."  "The
    s_addr member of struct in_addr contains the host interface address in network byte
    order."  "Note that the address and the port are always stored in network byte
    order."

    bind(2) with the 16 bytes of a sockaddr_in (port and address big-endian); getsockname
    returns addrlen 16 and the same bytes; a peer that names (addr, port) as numbers
    reaches the socket, so the kernel read both fields in network byte order.  Ports up
    to 65535 fit."""
    raw = sockaddr.in4(addr, port)
    expect.equal("sin_port bytes", raw[2:4], struct.pack("!H", port))
    s = inet(kind)
    rawsock.bind(s.fileno(), raw)
    if kind == STREAM:
        s.listen(1)
    name = _name(s)
    expect.equal("getsockname addrlen (sizeof struct sockaddr_in)", name.addrlen, SIN)
    expect.equal("getsockname bytes", name.raw, raw)
    _reach(kind, addr, port, s)


@pytest.mark.clause("ip.7/address-format/s-addr-network-byte-order")
@pytest.mark.fault("bind")
@over()
def test_s_addr_read_in_network_byte_order(kind):
    """"The s_addr member of struct in_addr contains the host interface address in
    network byte order."

    127.0.0.2 in network byte order is local; the same 4 bytes swapped (2.0.0.127) name
    an address no interface has, so bind(2) with them fails with EADDRNOTAVAIL."""
    swapped = sockaddr.in4(LOOPBACK, 0)[:4] + socket.inet_aton("127.0.0.2")[::-1] + bytes(8)
    s = inet(kind)
    expect.errno("EADDRNOTAVAIL", rawsock.bind, s.fileno(), swapped,
                 what="bind to the byte-swapped loopback address 2.0.0.127")
    expect.succeeds(rawsock.bind, s.fileno(), sockaddr.in4("127.0.0.2", 0), what="bind to 127.0.0.2")


@pytest.mark.clause("ip.7/address-format/sin-family-af-inet", "ip.7/address-format/network-byte-order")
@pytest.mark.fault("getsockname", "getpeername", "accept", "recvmsg")
def test_returned_addresses_are_af_inet():
    """"sin_family is always set to AF_INET."  "Note that the address and the port are
    always stored in network byte order."

    Every address the kernel returns -- getsockname, getpeername, accept and recvmsg's
    msg_name -- is 16 bytes: AF_INET, then port and address in network byte order."""
    server = listener()
    server_port = server.getsockname()[1]
    client = inet(STREAM)
    client.connect((LOOPBACK, server_port))
    client_port = client.getsockname()[1]
    fd, accepted = rawsock.accept(server.fileno(), SIN)
    socket.socket(fileno=fd).close()
    returned = {
        "getsockname": (_name(client), client_port),
        "getpeername": (rawsock.getpeername(client.fileno(), SIN), server_port),
        "accept": (accepted, client_port),
    }
    receiver = udp_receiver()
    sender = udp_receiver()
    sender.sendto(b"name", receiver.getsockname())
    wait_readable(receiver, "datagram for recvmsg")
    returned["recvmsg msg_name"] = (rawsock.recvmsg(receiver.fileno(), 64, namelen=SIN).name,
                                    sender.getsockname()[1])
    for call, (name, port) in returned.items():
        expect.equal(f"{call} addrlen", name.addrlen, SIN)
        expect.equal(f"{call} sin_family", name.family, int(socket.AF_INET))
        expect.equal(f"{call} bytes", name.raw, sockaddr.in4(LOOPBACK, port))


def _with_family(addr: str, port: int, family: int) -> bytes:
    return sockaddr.in4(addr, port, family=family)


FAMILY_CASES = [
    pytest.param(AF_UNIX, id="AF_UNIX"),
    pytest.param(AF_INET6, id="AF_INET6"),
]


@pytest.mark.clause("ip.7/address-format/sin-family-required")
@pytest.mark.fault("bind", "connect", "sendto")
@pytest.mark.parametrize("family", FAMILY_CASES)
@over()
def test_wrong_family_fails(kind, family):
    """"sin_family is always set to AF_INET.  This is required; in Linux 2.2 most
    networking functions return EINVAL when this setting is missing."

    bind(2), connect(2) and (UDP) sendto(2) with a 16-byte sockaddr_in whose family is
    not AF_INET fail.  The page names EINVAL for Linux 2.2 only; later kernels return
    EAFNOSUPPORT (address family not supported), so either is accepted.  The same call
    with AF_INET then succeeds."""
    allowed = ("EAFNOSUPPORT", "EINVAL")
    server = _serve(kind, LOOPBACK)
    port = server.getsockname()[1]
    s = inet(kind)
    expect.errno(allowed, rawsock.bind, s.fileno(), _with_family(LOOPBACK, 0, family),
                 what=f"bind with sin_family {family}")
    expect.succeeds(rawsock.bind, s.fileno(), sockaddr.in4(LOOPBACK, 0), what="bind with AF_INET")
    expect.errno(allowed, rawsock.connect, s.fileno(), _with_family(LOOPBACK, port, family),
                 what=f"connect with sin_family {family}")
    if kind == DGRAM:
        expect.errno(allowed, rawsock.sendto, s.fileno(), b"x", _with_family(LOOPBACK, port, family),
                     what=f"sendto with sin_family {family}")
        expect.succeeds(rawsock.sendto, s.fileno(), b"x", sockaddr.in4(LOOPBACK, port),
                        what="sendto with AF_INET")
    expect.succeeds(rawsock.connect, s.fileno(), sockaddr.in4(LOOPBACK, port), what="connect with AF_INET")


@pytest.mark.clause("ip.7/address-format/sin-family-required")
@pytest.mark.fault("bind")
@over()
def test_missing_family_fails_for_a_specific_address(kind):
    """"sin_family is always set to AF_INET.  This is required"

    A sockaddr_in left with sin_family 0 (AF_UNSPEC, "missing") and a specific address
    is refused by bind(2) (EAFNOSUPPORT, or Linux 2.2's EINVAL).  bind with AF_UNSPEC
    and INADDR_ANY is accepted for compatibility and is not checked here."""
    s = inet(kind)
    expect.errno(("EAFNOSUPPORT", "EINVAL"), rawsock.bind, s.fileno(),
                 _with_family(LOOPBACK, 0, AF_UNSPEC), what="bind 127.0.0.1 with sin_family 0")
    expect.succeeds(rawsock.bind, s.fileno(), sockaddr.in4(LOOPBACK, 0), what="bind 127.0.0.1 with AF_INET")


# ------------------------------------------------------------------- privileged ports

PRIVILEGE_CASES = [
    # id,                   port, keep CAP_NET_BIND_SERVICE, errno (None: bind succeeds)
    pytest.param(1, False, "EACCES", id="port-1-without-cap"),
    pytest.param(80, False, "EACCES", id="port-80-without-cap"),
    pytest.param(1023, False, "EACCES", id="port-1023-without-cap"),
    pytest.param(1024, False, None, id="port-1024-without-cap"),
    pytest.param(80, True, None, id="port-80-with-cap"),
    pytest.param(1023, True, None, id="port-1023-with-cap"),
]


@pytest.mark.clause("ip.7/address-format/privileged-ports")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("port,keep_cap,error", PRIVILEGE_CASES)
@over()
def test_privileged_ports(kind, port, keep_cap, error):
    """"The port numbers below 1024 are called privileged ports (or sometimes: reserved
    ports).  Only a privileged process (on Linux: a process that has the
    CAP_NET_BIND_SERVICE capability in the user namespace governing its network
    namespace) may bind(2) to these sockets."

    net.ipv4.ip_unprivileged_port_start is set to its default, 1024, in the test's
    namespace (container runtimes often lower it).  Without CAP_NET_BIND_SERVICE, bind to
    a port below 1024 fails with EACCES (bind(2) ERRORS); 1024 works; with the
    capability, ports below 1024 work."""
    sysctl.write("net.ipv4.ip_unprivileged_port_start", 1024)
    if not keep_cap:
        privileges.drop_caps("CAP_NET_BIND_SERVICE")
    s = inet(kind)
    what = f"bind to port {port} {'with' if keep_cap else 'without'} CAP_NET_BIND_SERVICE"
    if error:
        expect.errno(error, rawsock.bind, s.fileno(), sockaddr.in4(LOOPBACK, port), what=what)
    else:
        expect.succeeds(rawsock.bind, s.fileno(), sockaddr.in4(LOOPBACK, port), what=what)
        expect.equal("bound port", s.getsockname()[1], port)


# ------------------------------------------------------------------- raw sockets and ports

RAW_PROTOCOLS = [pytest.param(p, id=f"protocol-{p}") for p in (1, socket.IPPROTO_UDP, IPPROTO_EXPERIMENT)]


@pytest.mark.clause("ip.7/address-format/raw-sin-port-protocol")
@pytest.mark.fault("getsockname")
@pytest.mark.parametrize("proto", RAW_PROTOCOLS)
def test_raw_sin_port_is_protocol(proto):
    """"On raw sockets sin_port is set to the IP protocol."

    getsockname(2) of a raw socket returns sin_port == htons(protocol)."""
    s = inet(socket.SOCK_RAW, proto)
    name = _name(s)
    expect.equal("getsockname addrlen", name.addrlen, SIN)
    expect.equal("getsockname bytes (sin_port = protocol)", name.raw, sockaddr.in4(ANY, proto))


@pytest.mark.clause("ip.7/address-format/raw-no-port-concept",
                    "ip.7/address-format/ports-from-higher-protocols")
@pytest.mark.fault("sendto", "recvfrom")
def test_raw_sockets_have_no_ports():
    """"The basic IP protocol does not supply port numbers, they are implemented by
    higher level protocols like udp(7) and tcp(7)."  "Note that the raw IPv4 protocol as
    such has no concept of a port, they are implemented only by higher protocols like
    tcp(7) and udp(7)."

    A raw IPPROTO_UDP socket receives UDP datagrams whatever their port, also one for a
    port no socket has, while a UDP socket receives only those for its own port.  The
    sin_port given to sendto(2) on a raw socket leaves no trace in the packet: sent with
    port 4321 and with port 0, the packets carry the same bytes after the IP header."""
    sniffer = inet(socket.SOCK_RAW, socket.IPPROTO_UDP)
    udp = udp_receiver()
    own = udp.getsockname()[1]
    sender = inet(DGRAM)
    for port, payload in ((own, b"own-port"), (own ^ 1, b"other-port")):
        sender.sendto(payload, (LOOPBACK, port))
        wait_readable(sniffer, f"datagram to port {port} at the raw socket")
        packet = sniffer.recv(2048, socket.MSG_DONTWAIT)
        expect.equal(f"raw socket: UDP payload of the datagram to port {port}",
                     packet[IP_HEADER + 8:], payload)
    wait_readable(udp, "datagram at the UDP socket")
    expect.equal("datagram at the UDP socket", udp.recv(64, socket.MSG_DONTWAIT), b"own-port")
    expect.errno("EAGAIN", udp.recv, 64, socket.MSG_DONTWAIT,
                 what="a second datagram (the one for another port) at the UDP socket")
    raw_out = inet(socket.SOCK_RAW, IPPROTO_EXPERIMENT)
    raw_in = inet(socket.SOCK_RAW, IPPROTO_EXPERIMENT)
    seen = []
    for port in (4321, 0):
        rawsock.sendto(raw_out.fileno(), b"no-port", sockaddr.in4(LOOPBACK, port))
        wait_readable(raw_in, f"raw packet sent with sin_port {port}")
        seen.append(raw_in.recv(2048, socket.MSG_DONTWAIT)[IP_HEADER:])
    expect.equal("bytes after the IP header, sent with sin_port 4321 and 0", seen, [b"no-port"] * 2)


# ------------------------------------------------------------------- special addresses


@pytest.mark.clause("ip.7/description/bind-inaddr-any-all-interfaces", "ip.7/address-format/inaddr-any")
@pytest.mark.fault("bind")
@over()
def test_inaddr_any_binds_all_interfaces(kind):
    """"When INADDR_ANY is specified in the bind call, the socket will be bound to all
    local interfaces."  "INADDR_ANY ( means any address for binding;"

    A socket bound to 0.0.0.0:P (the value was lost from this copy of the page; it is
    0.0.0.0) keeps that name, and is reached at P on loopback and on the address of a
    second interface (a veth, 10.0.1.1).  A socket bound to 127.0.0.1 only is not reached
    at the veth address (connection refused), so the reach comes from INADDR_ANY."""
    topo = second_interface()
    veth_addr = topo["a"].address
    s = inet(kind)
    rawsock.bind(s.fileno(), sockaddr.in4(ANY, 0))
    if kind == STREAM:
        s.listen(8)
    name = _name(s)
    port = sockaddr.parse_in4(name.raw)[2]
    expect.equal("getsockname bytes", name.raw, sockaddr.in4(ANY, port))
    for addr in (LOOPBACK, veth_addr):
        _reach(kind, addr, port, s)
    narrow = _serve(kind, LOOPBACK)
    probe = inet(kind)
    target = (veth_addr, narrow.getsockname()[1])
    if kind == STREAM:
        expect.errno("ECONNREFUSED", probe.connect, target,
                     what="connect to the veth address, port of a 127.0.0.1-bound socket")
        return
    probe.connect(target)
    probe.send(b"not-for-you")
    wait_readable(probe, "port-unreachable error at the sender")
    expect.errno("ECONNREFUSED", probe.recv, 64, socket.MSG_DONTWAIT,
                 what="datagram to the veth address, port of a 127.0.0.1-bound socket")


@pytest.mark.clause("ip.7/address-format/inaddr-loopback")
@pytest.mark.fault("recvmsg")
def test_inaddr_loopback_is_local_via_lo():
    """"INADDR_LOOPBACK ( always refers to the local host via the loopback device;"

    (127.0.0.1; the value was lost from this copy of the page.)  With a second interface
    (a veth, 10.0.1.1) and a default route through it, a datagram to 127.0.0.1 -- also one
    sent from the other interface's address -- is received on this host, and IP_PKTINFO
    says it came in on lo (ipi_ifindex = lo's index, ipi_addr = 127.0.0.1)."""
    topo = second_interface(default_route=True)
    lo = socket.if_nametoindex("lo")
    receiver = udp_receiver(ANY)
    receiver.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    port = receiver.getsockname()[1]
    for source in (LOOPBACK, topo["a"].address):
        sender = udp_receiver(source)
        sender.sendto(b"loopback", (LOOPBACK, port))
        data, items = recv_control(receiver, f"datagram to 127.0.0.1 from {source}")
        expect.equal(f"datagram from {source}", data, b"loopback")
        info = ip_cmsgs(items, IP_PKTINFO)
        expect.equal(f"IP_PKTINFO messages (from {source})", len(info), 1)
        pktinfo = parse_pktinfo(info[0].data)
        expect.equal(f"ipi_ifindex (from {source})", pktinfo.ifindex, lo)
        expect.equal(f"ipi_addr (from {source})", pktinfo.addr, LOOPBACK)


# ------------------------------------------------------------------- nonlocal addresses


def _bind_nonlocal(sock: socket.socket):
    return rawsock.bind(sock.fileno(), sockaddr.in4(NONLOCAL, 0))


@pytest.mark.clause("ip.7/ip-freebind/nonlocal-bind")
@pytest.mark.fault("bind", "getsockname")
@over()
def test_freebind_allows_nonlocal_bind(kind):
    """"If enabled, this boolean option allows binding to an IP address that is nonlocal
    or does not (yet) exist."

    With ip_nonlocal_bind = 0 in the namespace, bind(2) to 192.0.2.1 (no interface has
    it) fails with EADDRNOTAVAIL; with IP_FREEBIND set it succeeds and getsockname shows
    192.0.2.1."""
    sysctl.write("net.ipv4.ip_nonlocal_bind", 0)
    expect.errno("EADDRNOTAVAIL", _bind_nonlocal, inet(kind), what=f"bind to {NONLOCAL} without IP_FREEBIND")
    s = inet(kind)
    s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    expect.succeeds(_bind_nonlocal, s, what=f"bind to {NONLOCAL} with IP_FREEBIND")
    expect.equal("getsockname address", sockaddr.parse_in4(_name(s).raw)[1], NONLOCAL)


@pytest.mark.clause("ip.7/ip-freebind/per-socket-ip-nonlocal-bind")
@pytest.mark.fault("bind")
@over()
def test_ip_nonlocal_bind_is_freebind_for_all(kind):
    """"This option is the per-socket equivalent of the ip_nonlocal_bind /proc interface
    described below."

    With /proc/sys/net/ipv4/ip_nonlocal_bind = 1 in the test's namespace, a socket
    without IP_FREEBIND (it reads 0) binds to the nonlocal 192.0.2.1; set back to 0, the
    same bind fails with EADDRNOTAVAIL."""
    sysctl.write("net.ipv4.ip_nonlocal_bind", 1)
    s = inet(kind)
    expect.equal("IP_FREEBIND of the socket", s.getsockopt(socket.IPPROTO_IP, IP_FREEBIND), 0)
    expect.succeeds(_bind_nonlocal, s, what=f"bind to {NONLOCAL} with ip_nonlocal_bind=1")
    sysctl.write("net.ipv4.ip_nonlocal_bind", 0)
    expect.errno("EADDRNOTAVAIL", _bind_nonlocal, inet(kind), what=f"bind to {NONLOCAL} with ip_nonlocal_bind=0")
