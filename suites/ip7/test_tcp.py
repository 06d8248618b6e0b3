"""ip(7) for connection-oriented (TCP) sockets on one host: autobind on listen(2) and
connect(2), the address kept after an active close (TIME_WAIT) and SO_REUSEADDR,
unicast-only peers, IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND before the address exists, and
IP_TRANSPARENT as client and server on a foreign address.  (SO_PEERSEC is in
test_peersec.py.)

Ephemeral port ranges and nonlocal routing are set in the test's own namespace (routes,
rules and addresses through harness.topology).  The "TProxy box" of IP_TRANSPARENT is the
test's namespace itself: a policy rule delivers packets for 192.0.2.0/24 locally (what a
TPROXY setup's routing does), while no interface has those addresses.
"""

from __future__ import annotations

import ctypes
import errno
import select
import socket
import struct
import time

import pytest

from harness import expect, kernel, rawsock, sockaddr, sysctl, topology
from suites.ip7._ip import (DGRAM, IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND, IP_TRANSPARENT, LOOPBACK,
                            STREAM, getsockopt_in, inet, listener, over, second_interface,
                            udp_receiver)

SIN = sockaddr.SOCKADDR_IN
ANY = "0.0.0.0"
PORT_RANGE = (42000, 42999)     # net.ipv4.ip_local_port_range in the autobind tests
TCP_TIME_WAIT = "06"            # state column of /proc/net/tcp
FOREIGN_CLIENT = "192.0.2.7"    # TEST-NET-1 addresses: on no interface, routed locally
FOREIGN_SERVER = "192.0.2.8"
FOREIGN_NET = "192.0.2.0"
LATE_ADDR = "192.0.2.9"
TPROXY_TABLE = 100
NO_HANDSHAKE_WAIT = 0.05        # a loopback handshake takes microseconds


def _port_range(low: int, high: int) -> None:
    sysctl.write("net.ipv4.ip_local_port_range", f"{low} {high}")


def _name(sock: socket.socket) -> tuple[int, str, int]:
    """(family, address, port) of getsockname, read from the exact bytes."""
    got = rawsock.getsockname(sock.fileno(), SIN)
    expect.equal("getsockname addrlen", got.addrlen, SIN)
    return sockaddr.parse_in4(got.raw)


def _in_range(what: str, port: int, low: int, high: int) -> None:
    expect.true(f"{what} in ip_local_port_range {low}-{high}", low <= port <= high,
                expected=f"{low}..{high}", observed=port)


# ------------------------------------------------------------------- autobind


@pytest.mark.clause("ip.7/description/listen-autobind")
@pytest.mark.fault("listen", "getsockname")
def test_listen_autobinds_to_inaddr_any():
    """"When listen(2) is called on an unbound socket, the socket is automatically bound
    to a random free port with the local address set to INADDR_ANY."

    With ip_local_port_range set to 42000-42999 in the namespace, getsockname after
    listen(2) returns AF_INET, 0.0.0.0 and a port in that range, and the socket accepts
    connections on it."""
    _port_range(*PORT_RANGE)
    s = inet(STREAM)
    expect.equal("name before listen", _name(s), (socket.AF_INET, ANY, 0))
    s.listen(1)
    family, addr, port = _name(s)
    expect.equal("family after listen", family, socket.AF_INET)
    expect.equal("local address after listen", addr, ANY)
    _in_range("port after listen", port, *PORT_RANGE)
    client = inet(STREAM)
    expect.succeeds(client.connect, (LOOPBACK, port), what="connect to the autobound port")


@pytest.mark.clause("ip.7/description/connect-autobind")
@pytest.mark.fault("connect", "getsockname")
@over()
def test_connect_autobinds_a_free_port(kind):
    """"When connect(2) is called on an unbound socket, the socket is automatically bound
    to a random free port or to a usable shared port with the local address set to
    INADDR_ANY."

    After connect(2) from an unbound socket, getsockname shows a port in
    ip_local_port_range (42000-42999 here).  The local address the autobind set is not
    observable: connect(2) itself then sets the source address routing chose (getsockname
    shows 127.0.0.1 here), and dissolving a UDP association releases an autobound port
    altogether.  So the INADDR_ANY part is not checked here; listen(2)'s autobind, which no
    connect follows, checks it (test_listen_autobinds_to_inaddr_any)."""
    server = listener() if kind == STREAM else udp_receiver()
    _port_range(*PORT_RANGE)
    s = inet(kind)
    s.connect(server.getsockname())
    family, _addr, port = _name(s)
    expect.equal("family after connect", family, socket.AF_INET)
    _in_range("port after connect", port, *PORT_RANGE)


@pytest.mark.clause("ip.7/description/connect-autobind")
@pytest.mark.fault("connect")
def test_connect_autobind_shares_a_port():
    """"... automatically bound to a random free port or to a usable shared port ..."

    With ip_local_port_range narrowed to the single port 42000, two unbound TCP sockets
    connecting to two different listeners both get port 42000: the port is shared, the
    4-tuples differ."""
    first, second = listener(), listener()
    _port_range(42000, 42000)
    ports, connections = [], []
    for server in (first, second):
        s = inet(STREAM)
        expect.succeeds(s.connect, server.getsockname(), what=f"connect to {server.getsockname()}")
        ports.append(_name(s)[2])
        connections.append(s)  # open until the end
    expect.equal("local ports of the two connections", ports, [42000, 42000])


# ------------------------------------------------------------------- after close


def _tcp_states(port: int) -> list[str]:
    """States (hex, as /proc/net/tcp shows them) of the sockets with local port ``port``."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    return [r[3] for r in rows if int(r[1].split(":")[1], 16) == port]


def _active_close(server: socket.socket, reuse: bool) -> int:
    """Bind a socket (SO_REUSEADDR as given) to a port of its own, connect it to
    ``server``, close it first and then the peer: its address goes to TIME_WAIT.
    Returns the port."""
    c = inet(STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
    c.bind((LOOPBACK, 0))
    port = c.getsockname()[1]
    c.connect(server.getsockname())
    conn, _ = server.accept()
    c.close()
    select.select([conn], [], [], 1.0)
    expect.equal("end of stream at the peer", conn.recv(1), b"")
    conn.close()
    deadline = time.monotonic() + 1.0
    while _tcp_states(port) != [TCP_TIME_WAIT] and time.monotonic() < deadline:
        select.select([], [], [], 0.001)
    expect.equal(f"state of local port {port} after the active close", _tcp_states(port), [TCP_TIME_WAIT])
    return port


def _try_bind(port: int, reuse: bool) -> str:
    s = inet(STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
    try:
        s.bind((LOOPBACK, port))
    except OSError as exc:
        return expect.errno_name(exc.errno)
    finally:
        s.close()
    return "success"


@pytest.mark.clause("ip.7/description/tcp-address-unavailable-after-close")
@pytest.mark.fault("bind")
def test_address_unavailable_after_close_unless_reuseaddr():
    """"A TCP local socket address that has been bound is unavailable for some time after
    closing, unless the SO_REUSEADDR flag has been set."

    After an active close (the address is in TIME_WAIT), bind(2) to it fails with
    EADDRINUSE; with SO_REUSEADDR set -- on the socket that had the address and on the
    one binding again, the reading that fits either party -- the bind succeeds.  A socket
    that was only bound and closed frees its address at once.  (One-sided SO_REUSEADDR is
    recorded, not judged: the page does not say whose flag counts.)"""
    server = listener()
    plain = _active_close(server, reuse=False)
    expect.errno("EADDRINUSE", inet(STREAM).bind, (LOOPBACK, plain),
                 what="bind to an address in TIME_WAIT without SO_REUSEADDR")
    expect.observe("bind with SO_REUSEADDR on the new socket only", _try_bind(plain, True))
    expect.observe("bind with SO_REUSEADDR on the closed socket only", _try_bind(_active_close(server, True), False))
    both = _active_close(server, reuse=True)
    again = inet(STREAM)
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    expect.succeeds(again.bind, (LOOPBACK, both), what="bind to an address in TIME_WAIT with SO_REUSEADDR")
    bound_only = inet(STREAM)
    bound_only.bind((LOOPBACK, 0))
    port = bound_only.getsockname()[1]
    bound_only.close()
    expect.succeeds(inet(STREAM).bind, (LOOPBACK, port), what="bind to the address of a bound-only, closed socket")


# ------------------------------------------------------------------- unicast only

# destination, SO_BROADCAST needed by the UDP control
NON_UNICAST = [
    pytest.param("224.0.0.1", False, id="multicast-all-hosts"),
    pytest.param("239.1.2.3", False, id="multicast-admin-scoped"),
    pytest.param("10.0.1.255", True, id="subnet-broadcast"),     # second_interface's subnet
    pytest.param("255.255.255.255", True, id="limited-broadcast"),
]
# The page names no errno; these are the ones that say "not a destination you may use".
REFUSALS = ("ENETUNREACH", "EINVAL", "EADDRNOTAVAIL", "EACCES", "EOPNOTSUPP", "EAFNOSUPPORT",
            "EHOSTUNREACH")


@pytest.mark.clause("ip.7/address-format/connection-oriented-unicast-only")
@pytest.mark.fault("connect")
@pytest.mark.parametrize("dest,broadcast", NON_UNICAST)
def test_tcp_connect_to_non_unicast_fails(dest, broadcast):
    """"In the current implementation, connection-oriented sockets are allowed to use only
    unicast addresses."

    With an interface and a default route, a UDP socket can connect(2) to the multicast
    or broadcast address (the route exists; SO_BROADCAST for broadcast), but a TCP
    connect(2) to it fails.  The page names no errno: any errno that refuses the
    destination is accepted (current kernels: ENETUNREACH), and the one seen is recorded.
    (The interface: a veth 10.0.1.1/24, default route via its peer 10.0.1.2.)"""
    _link = second_interface(default_route=True)    # kept while the test runs: it holds the link
    udp = inet(DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, int(broadcast))
    expect.succeeds(udp.connect, (dest, 80), what=f"UDP connect to {dest} (the route exists)")
    tcp = inet(STREAM)
    tcp.setblocking(False)
    expect.errno(REFUSALS, tcp.connect, (dest, 80), what=f"TCP connect to {dest}")


# ------------------------------------------------------------------- IP_BIND_ADDRESS_NO_PORT


@pytest.mark.clause("ip.7/ip-bind-address-no-port/no-port-at-bind",
                    "ip.7/ip-bind-address-no-port/port-chosen-at-connect")
@pytest.mark.fault("bind", "getsockname")
@over()
def test_bind_address_no_port_defers_the_port(kind):
    """"Inform the kernel to not reserve an ephemeral port when using bind(2) with a port
    number of 0.  The port will later be automatically chosen at connect(2) time"

    bind(127.0.0.1, 0) without the option reports a nonzero port; with it, getsockname
    reports 127.0.0.1 and port 0, and after connect(2) a nonzero port."""
    server = listener() if kind == STREAM else udp_receiver()
    plain = inet(kind)
    rawsock.bind(plain.fileno(), sockaddr.in4(LOOPBACK, 0))
    expect.true("port after bind without the option", _name(plain)[2] != 0, expected="nonzero", observed=0)
    s = inet(kind)
    s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    rawsock.bind(s.fileno(), sockaddr.in4(LOOPBACK, 0))
    expect.equal("name after bind with the option", _name(s), (socket.AF_INET, LOOPBACK, 0))
    s.connect(server.getsockname())
    family, addr, port = _name(s)
    expect.equal("address after connect", addr, LOOPBACK)
    expect.true("port after connect", port != 0, expected="nonzero", observed=port)


@pytest.mark.clause("ip.7/ip-bind-address-no-port/port-chosen-at-connect")
@pytest.mark.fault("connect", "bind")
def test_bind_address_no_port_shares_the_source_port():
    """"The port will later be automatically chosen at connect(2) time, in a way that
    allows sharing a source port as long as the 4-tuple is unique."

    With ip_local_port_range narrowed to one port: without the option a second
    bind(127.0.0.1, 0) fails with EADDRINUSE (the one port is reserved); with it, two
    sockets bound to 127.0.0.1 connect to two different listeners and share that port."""
    first, second = listener(), listener()
    _port_range(42000, 42000)
    held = inet(STREAM)
    held.bind((LOOPBACK, 0))
    expect.equal("port reserved by a plain bind", held.getsockname()[1], 42000)
    expect.errno("EADDRINUSE", inet(STREAM).bind, (LOOPBACK, 0),
                 what="second bind(127.0.0.1, 0) without IP_BIND_ADDRESS_NO_PORT")
    held.close()
    ports, connections = [], []
    for server in (first, second):
        s = inet(STREAM)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((LOOPBACK, 0))
        expect.succeeds(s.connect, server.getsockname(), what=f"connect to {server.getsockname()}")
        ports.append(_name(s)[2])
        connections.append(s)  # open until the end
    expect.equal("source ports of the two connections", ports, [42000, 42000])


# ------------------------------------------------------------------- nonlocal addresses


@pytest.mark.clause("ip.7/ip-freebind/listen-before-address-up")
@pytest.mark.fault("accept")
def test_freebind_listen_before_address_exists():
    """"This permits listening on a socket, without requiring the underlying network
    interface or the specified dynamic IP address to be up at the time that the
    application is trying to bind to it."

    With IP_FREEBIND a socket binds and listens on 192.0.2.9, which no interface has
    (connect to it fails: no route); once the address is added to lo, a connection to it
    is accepted by that socket, whose accepted end is named 192.0.2.9."""
    sysctl.write("net.ipv4.ip_nonlocal_bind", 0)
    server = inet(STREAM)
    server.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    server.bind((LATE_ADDR, 0))
    server.listen(1)
    port = server.getsockname()[1]
    expect.errno("ENETUNREACH", inet(STREAM).connect, (LATE_ADDR, port),
                 what=f"connect to {LATE_ADDR} before it is configured")
    topology.Topology().add_address("a", "lo", f"{LATE_ADDR}/32")
    client = inet(STREAM)
    expect.succeeds(client.connect, (LATE_ADDR, port), what=f"connect to {LATE_ADDR} once configured")
    fd, _ = rawsock.accept(server.fileno(), SIN)
    conn = socket.socket(fileno=fd)
    expect.equal("local address of the accepted connection", _name(conn)[1:], (LATE_ADDR, port))


def _route_foreign_net_here() -> None:
    """Policy routing of a TProxy box: packets for 192.0.2.0/24 are delivered locally
    (a local route in table 100, chosen by a rule), though no interface has the addresses."""
    topo = topology.Topology()
    topo.add_rule("a", dst=f"{FOREIGN_NET}/24", table=TPROXY_TABLE, priority=100)
    topo.add_route("a", f"{FOREIGN_NET}/24", kind="local", dev="lo", table=TPROXY_TABLE)


def _transparent() -> socket.socket:
    s = inet(STREAM)
    s.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)
    return s


@pytest.mark.clause("ip.7/ip-transparent/nonlocal-bind-client-server",
                    "ip.7/ip-transparent/enable-tproxy")
@pytest.mark.fault("accept", "getpeername")
def test_transparent_client_and_server_on_foreign_address():
    """"This socket option allows the calling application to bind to a nonlocal IP
    address and operate both as a client and a server with the foreign address as the
    local endpoint."

    Without the option, bind(2) to the foreign 192.0.2.7 fails with EADDRNOTAVAIL.
    With it (and the TProxy routing): as a client bound to 192.0.2.7, the socket connects
    to a server on 127.0.0.1, which sees 192.0.2.7 as the peer; as a server listening on
    the foreign 192.0.2.8, it accepts a connection whose local end is 192.0.2.8."""
    sysctl.write("net.ipv4.ip_nonlocal_bind", 0)
    _route_foreign_net_here()
    expect.errno("EADDRNOTAVAIL", inet(STREAM).bind, (FOREIGN_CLIENT, 0),
                 what=f"bind to {FOREIGN_CLIENT} without IP_TRANSPARENT")
    server = listener()
    client = _transparent()
    client.bind((FOREIGN_CLIENT, 0))
    client.settimeout(1.0)
    expect.succeeds(client.connect, server.getsockname(), what="connect from the foreign address")
    fd, _ = rawsock.accept(server.fileno(), SIN)
    conn = socket.socket(fileno=fd)
    peer = rawsock.getpeername(conn.fileno(), SIN)
    expect.equal("peer of the server's connection", sockaddr.parse_in4(peer.raw)[1:], _name(client)[1:])
    expect.equal("client's local address", _name(client)[1], FOREIGN_CLIENT)
    foreign_server = _transparent()
    foreign_server.bind((FOREIGN_SERVER, 0))
    foreign_server.listen(1)
    port = foreign_server.getsockname()[1]
    outsider = inet(STREAM)
    outsider.bind((LOOPBACK, 0))
    outsider.settimeout(1.0)
    expect.succeeds(outsider.connect, (FOREIGN_SERVER, port), what=f"connect to {FOREIGN_SERVER}:{port}")
    fd, _ = rawsock.accept(foreign_server.fileno(), SIN)
    accepted = socket.socket(fileno=fd)
    expect.equal("local end of the accepted connection", _name(accepted)[1:], (FOREIGN_SERVER, port))
    peer = rawsock.getpeername(accepted.fileno(), SIN)
    expect.equal("peer of the accepted connection", sockaddr.parse_in4(peer.raw)[1:], _name(outsider)[1:])


def _handshake_completes(client: socket.socket, dest: tuple[str, int]) -> bool:
    """Start a non-blocking connect to ``dest``; whether it completes within
    NO_HANDSHAKE_WAIT (a loopback handshake takes microseconds)."""
    client.setblocking(False)
    err = client.connect_ex(dest)
    expect.true("non-blocking connect", err in (0, errno.EINPROGRESS), expected="EINPROGRESS",
                observed=expect.errno_name(err))
    _, writable, _ = select.select([], [client], [], NO_HANDSHAKE_WAIT)
    return bool(writable) and client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


@pytest.mark.clause("ip.7/ip-transparent/routing-through-tproxy-box")
@pytest.mark.fault("connect")
def test_transparent_needs_routing_through_this_host():
    """"NOTE: this requires that routing be set up in a way that packets going to the
    foreign address are routed through the TProxy box (i.e., the system hosting the
    application that employs the IP_TRANSPARENT socket option)."

    A transparent client bound to the foreign 192.0.2.7 connects to 127.0.0.1: while no
    route brings 192.0.2.7 back to this host, the handshake does not complete (the SYN-ACK
    has nowhere to go); once a policy route delivers 192.0.2.0/24 here, it completes."""
    server = listener()
    lost = _transparent()
    lost.bind((FOREIGN_CLIENT, 0))
    expect.equal("handshake completes without the route back", _handshake_completes(lost, server.getsockname()), False)
    _route_foreign_net_here()
    routed = _transparent()
    routed.bind((FOREIGN_CLIENT, 0))
    expect.equal("handshake completes with the route through this host",
                 _handshake_completes(routed, server.getsockname()), True)


# The iptables mangle table written directly (IPT_SO_SET_REPLACE, as iptables-legacy does):
# struct ipt_replace / ipt_entry / xt_entry_target of <linux/netfilter_ipv4/ip_tables.h>.
IPT_SO_GET_INFO = IPT_SO_SET_REPLACE = 64
NF_IP_NUMHOOKS = 5                 # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
IPT_ENTRY = 112                    # sizeof(struct ipt_entry)
NF_ACCEPT_VERDICT = -1 - 1         # -NF_ACCEPT - 1: the standard target's "ACCEPT"
TPROXY_MARK = 1
REDIRECTED_DST = "192.0.2.50"


def _xt_target(name: str, data: bytes, revision: int = 0) -> bytes:
    size = (32 + len(data) + 7) & ~7                   # XT_ALIGN
    head = struct.pack("=H", size) + name.encode().ljust(29, b"\0") + bytes([revision])
    return (head + data).ljust(size, b"\0")


def _ipt_entry(target: bytes, dst: str = ANY, dst_mask: str = ANY, proto: int = 0) -> bytes:
    ip = (bytes(4) + socket.inet_aton(dst) + bytes(4) + socket.inet_aton(dst_mask) + bytes(64)
          + struct.pack("=HBB", proto, 0, 0))           # struct ipt_ip, 84 bytes
    return ip + struct.pack("=IHHI", 0, IPT_ENTRY, IPT_ENTRY + len(target), 0) + bytes(16) + target


def _iptables_mangle_tproxy(dst: str, on_port: int) -> None:
    """iptables -t mangle -A PREROUTING -p tcp -d DST -j TPROXY --on-ip 127.0.0.1
    --on-port ON_PORT --tproxy-mark 1/1, in the test's namespace."""
    s = inet(socket.SOCK_RAW, socket.IPPROTO_RAW)
    info = getsockopt_in(s, socket.IPPROTO_IP, IPT_SO_GET_INFO, b"mangle", 84)   # struct ipt_getinfo
    valid_hooks, *_, num_entries, _size = struct.unpack_from("=I5I5III", info, 32)
    tproxy = (struct.pack("=II", TPROXY_MARK, TPROXY_MARK) + socket.inet_aton(LOOPBACK) + bytes(12)
              + struct.pack("!H", on_port))             # struct xt_tproxy_target_info_v1
    accept = _ipt_entry(_xt_target("", struct.pack("=i", NF_ACCEPT_VERDICT)))
    rule = _ipt_entry(_xt_target("TPROXY", tproxy, revision=1), dst, "255.255.255.255", socket.IPPROTO_TCP)
    blob, hook_entry, underflow = b"", [], []
    for hook in range(NF_IP_NUMHOOKS):
        hook_entry.append(len(blob))
        blob += rule if hook == 0 else b""
        underflow.append(len(blob))
        blob += accept
    blob += _ipt_entry(_xt_target("ERROR", b"ERROR".ljust(30, b"\0")))
    counters = ctypes.create_string_buffer(16 * num_entries)
    replace = (b"mangle".ljust(32, b"\0")
               + struct.pack("=III5I5II", valid_hooks, NF_IP_NUMHOOKS + 2, len(blob), *hook_entry,
                             *underflow, num_entries)
               + struct.pack("=Q", ctypes.addressof(counters)))
    s.setsockopt(socket.IPPROTO_IP, IPT_SO_SET_REPLACE, replace + blob)


def _route_marked_here(foreign: str) -> None:
    """TPROXY's routing: packets marked 1 are delivered locally (table 100), and FOREIGN's
    network is reached through lo so that the client's packets pass PREROUTING."""
    topo = topology.Topology()
    topo.add_rule("a", fwmark=TPROXY_MARK, fwmask=TPROXY_MARK, table=TPROXY_TABLE, priority=100)
    topo.add_route("a", "default", kind="local", dev="lo", table=TPROXY_TABLE)
    topo.add_route("a", f"{foreign}/32", dev="lo")


@pytest.mark.clause("ip.7/ip-transparent/tproxy-target-requires-option")
@pytest.mark.fault("accept")
def test_tproxy_target_needs_transparent_listener():
    """"TProxy redirection with the iptables TPROXY target also requires that this option
    be set on the redirected [socket]."  (The last word was lost from this copy.)

    A mangle PREROUTING rule sends TCP for 192.0.2.50 to TPROXY on 127.0.0.1:P (mark 1,
    routed locally).  A listener on P without IP_TRANSPARENT does not get the connection
    (the handshake does not complete); a listener on P with IP_TRANSPARENT accepts it,
    with 192.0.2.50:80 -- the original destination -- as its local end."""
    if kernel.config_enabled("CONFIG_IP_NF_MANGLE") is False:
        expect.skip("the kernel lacks the iptables mangle table (CONFIG_IP_NF_MANGLE unset)")
    plain = listener()
    port = plain.getsockname()[1]
    _iptables_mangle_tproxy(REDIRECTED_DST, port)
    _route_marked_here(REDIRECTED_DST)
    client = inet(STREAM)
    client.bind((LOOPBACK, 0))
    client.setblocking(False)
    expect.equal("handshake completes with a listener without IP_TRANSPARENT",
                 _handshake_completes(client, (REDIRECTED_DST, 80)), False)
    plain.close()
    transparent = _transparent()
    transparent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    transparent.bind((LOOPBACK, port))
    transparent.listen(1)
    client = inet(STREAM)
    client.bind((LOOPBACK, 0))
    client.settimeout(1.0)
    expect.succeeds(client.connect, (REDIRECTED_DST, 80), what=f"connect to {REDIRECTED_DST}:80")
    fd, _ = rawsock.accept(transparent.fileno(), SIN)
    conn = socket.socket(fileno=fd)
    expect.equal("local end of the redirected connection", _name(conn)[1:], (REDIRECTED_DST, 80))
