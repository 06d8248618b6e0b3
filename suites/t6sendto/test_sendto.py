"""t6sendto(3N) without security attributes: what the TSIX call shares with sendto(2).

Every test calls :func:`harness.t6sendto.t6sendto`, the compatibility function that maps the
TSIX call onto Linux (module docstring there); with ``attrs=None`` it is sendto(2) with the
exact bytes given (``to`` a packed sockaddr, ``tolen`` the addrlen the kernel sees).  The
page is the oracle; each clause's ``linux`` field in the catalogue says what plays its role
here.  The ERRORS entries are a table at the end.
"""

from __future__ import annotations

import os
import select
import signal
import socket
from dataclasses import dataclass
from typing import Callable

import pytest

from harness import expect, rawsock, sockaddr, topology
from harness.inet import DGRAM, LOOPBACK, STREAM, WAIT, inet, pending, recv_within, stream_pair, udp_receiver
from harness.t6sendto import t6sendto

D = "t6sendto.3N/description/"
E = "t6sendto.3N/errors/"
SIOCOUTQ = 0x5411
RTAX_RTO_MIN = 13                      # <linux/rtnetlink.h>
UDP_MAX = 65507                        # 65535 - 20 (IPv4 header) - 8 (UDP header)
_held: list = []                       # what a table setup made that must outlive it


def _to(sock: socket.socket) -> bytes:
    """The sockaddr_in of a bound IPv4 socket, as exact bytes."""
    addr, port = sock.getsockname()
    return sockaddr.in4(addr, port)


def _udp_pair() -> tuple[socket.socket, socket.socket, bytes]:
    """An unconnected UDP sender, a receiver on 127.0.0.1 and the receiver's address."""
    receiver = udp_receiver()
    return inet(DGRAM), receiver, _to(receiver)


# ---------------------------------------------------------------------- the arguments

@pytest.mark.clause(D + "fd-is-socket")
@pytest.mark.fault("sendto")
def test_fd_is_a_socket_from_socket():
    """"fd is a socket created with socket(3N)."  t6sendto on a descriptor socket(2)
    returned works: it returns the length and the receiver gets the message."""
    sender, receiver, to = _udp_pair()
    expect.equal("t6sendto on a socket(2) descriptor", t6sendto(sender.fileno(), b"hello", 0, to, len(to)), 5)
    expect.equal("message received", recv_within(receiver, "the message")[0], b"hello")


@pytest.mark.clause(D + "to-and-tolen-give-target")
@pytest.mark.fault("sendto")
def test_target_is_to_with_tolen():
    """"The address of the target is given by to with tolen specifying its size."

    From one unconnected UDP socket: a message to receiver A (tolen 16) reaches A and not
    B, the next one to B reaches B and not A."""
    sender = inet(DGRAM)
    a, b = udp_receiver(), udp_receiver()
    for name, target, other in (("A", a, b), ("B", b, a)):
        to = _to(target)
        t6sendto(sender.fileno(), f"to {name}".encode(), 0, to, sockaddr.SOCKADDR_IN)
        expect.equal(f"message at receiver {name}", recv_within(target, f"the message to {name}")[0],
                     f"to {name}".encode())
        expect.equal(f"anything at the other receiver after the message to {name}", pending(other), False)


@pytest.mark.clause(D + "len-gives-length")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("length", [0, 1, 4, 10])
def test_length_is_len(length):
    """"The length of the message is given by len."  From a 10-byte buffer, t6sendto with
    len N returns N and the receiver gets a datagram of exactly the first N bytes."""
    sender, receiver, to = _udp_pair()
    buf = b"0123456789"
    expect.equal(f"t6sendto with len {length}", t6sendto(sender.fileno(), buf, 0, to, len(to), length=length),
                 length)
    expect.equal("datagram received", recv_within(receiver, "the datagram")[0], buf[:length])


@pytest.mark.clause(D + "to-zero-when-not-used")
@pytest.mark.fault("sendto")
def test_no_destination_when_to_is_zero():
    """"The to pointer and to_len parameters are only used if you are specifying the
    destination address, otherwise they should be set to 0."  On a connected UDP socket,
    to = NULL and tolen = 0 send to the connected peer."""
    sender, receiver, _ = _udp_pair()
    sender.connect(receiver.getsockname())
    expect.equal("t6sendto with to NULL, tolen 0", t6sendto(sender.fileno(), b"peer", 0, None, 0), 4)
    expect.equal("message at the connected peer", recv_within(receiver, "the message")[0], b"peer")


def _connected(family: str):
    """A connected connection-oriented socket and a valid address to name (the peer's)."""
    if family == "tcp":
        client, conn = stream_pair()
        _held.append(conn)
        return client, _to(conn)
    kind = STREAM if family == "unix-stream" else socket.SOCK_SEQPACKET
    server = socket.socket(socket.AF_UNIX, kind)
    server.bind("peer.sock")
    server.listen(1)
    client = socket.socket(socket.AF_UNIX, kind)
    client.connect("peer.sock")
    _held.append((server, server.accept()[0]))
    return client, sockaddr.pathname("peer.sock")


@pytest.mark.clause(D + "no-address-connection-oriented")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("family", ["tcp", "unix-stream", "unix-seqpacket"])
def test_no_address_on_connection_oriented_endpoint(family):
    """"You may not specify the address if the trusted endpoint was created for a
    connection oriented protocol, such as TCP."

    On a connected TCP, AF_UNIX stream or AF_UNIX seqpacket socket, t6sendto naming a
    destination (the peer's own address) is refused: -1 with EISCONN, the errno POSIX
    sendto() gives for a destination on a connected socket."""
    sock, to = _connected(family)
    expect.errno("EISCONN", t6sendto, sock.fileno(), b"x", 0, to, len(to),
                 what=f"t6sendto with a destination on a connected {family} socket")


@pytest.mark.clause(D + "emsgsize-not-transmitted", E + "emsgsize")
@pytest.mark.fault("sendto")
def test_too_long_for_udp_is_emsgsize_and_not_sent():
    """"If the message is too long to pass atomically through the underlying protocol,
    then the error EMSGSIZE is returned, and the message is not transmitted."
    "[EMSGSIZE] The socket requires that message be sent atomically, and the message was
    too long."

    UDP over IPv4 is atomic and carries at most 65507 bytes: 65508 bytes fail with
    EMSGSIZE; then a 65507-byte datagram succeeds and is the first (and only) thing the
    receiver gets."""
    sender, receiver, to = _udp_pair()
    expect.errno("EMSGSIZE", t6sendto, sender.fileno(), bytes(UDP_MAX + 1), 0, to, len(to),
                 what=f"t6sendto of {UDP_MAX + 1} bytes over UDP", clause=E + "emsgsize")
    expect.equal(f"t6sendto of {UDP_MAX} bytes", t6sendto(sender.fileno(), b"\1" * UDP_MAX, 0, to, len(to)),
                 UDP_MAX, clause=D + "emsgsize-not-transmitted")
    data, _ = recv_within(receiver, "the datagram", bufsize=UDP_MAX + 2)
    expect.equal("length of the first datagram received (the too-long one must not be)", len(data), UDP_MAX,
                 clause=D + "emsgsize-not-transmitted")
    expect.equal("anything else received", pending(receiver), False, clause=D + "emsgsize-not-transmitted")


@pytest.mark.clause(D + "minus-one-local-errors-only")
@pytest.mark.fault("sendto")
def test_remote_error_is_not_a_failed_call():
    """"A return value of -1 indicates locally detected errors only."

    UDP to a loopback port where nothing listens: the remote side answers with an ICMP
    port unreachable, but that is not a locally detected error: t6sendto returns the
    length, the first time and the next."""
    gone = udp_receiver()
    to = _to(gone)
    gone.close()
    sender = inet(DGRAM)
    for attempt in ("first", "second"):
        expect.equal(f"{attempt} t6sendto to a port nobody listens on",
                     t6sendto(sender.fileno(), b"anyone?", 0, to, len(to)), 7)


# ---------------------------------------------------------------------- flags

def _recv_oob(sock: socket.socket, what: str) -> bytes:
    """The urgent byte, once the socket reports an exceptional condition."""
    _, _, urgent = select.select([], [], [sock], WAIT)
    if not urgent:
        raise expect.Deviation(what, "urgent data (an exceptional condition)", f"none within {WAIT:g} s")
    return sock.recv(1, socket.MSG_OOB)


def _recv_exactly(sock: socket.socket, n: int, what: str) -> bytes:
    out = b""
    while len(out) < n:
        data, _ = recv_within(sock, what, bufsize=n - len(out))
        if not data:
            break
        out += data
    return out


@pytest.mark.clause(D + "flags-bitwise-or")
@pytest.mark.fault("sendto")
def test_flags_are_a_bitwise_or():
    """"The flags parameter is formed from the bitwise OR of zero or more of the
    following:"  On a connected TCP socket: flags 0 sends plain data; MSG_OOB |
    MSG_DONTROUTE (the loopback peer is directly reachable) sends "abc" with "c" as the
    urgent byte -- both flags took effect together."""
    client, conn = stream_pair()
    expect.equal("t6sendto with flags 0", t6sendto(client.fileno(), b"plain", 0, None, 0), 5)
    expect.equal("plain data", _recv_exactly(conn, 5, "plain data"), b"plain")
    flags = socket.MSG_OOB | socket.MSG_DONTROUTE
    expect.equal("t6sendto with MSG_OOB | MSG_DONTROUTE", t6sendto(client.fileno(), b"abc", flags, None, 0), 3)
    expect.equal("urgent byte", _recv_oob(conn, "the urgent byte"), b"c")
    expect.equal("in-band data", _recv_exactly(conn, 2, "in-band data"), b"ab")


@pytest.mark.clause(D + "msg-oob-sends-oob")
@pytest.mark.fault("sendto")
def test_msg_oob_sends_out_of_band_data():
    """"MSG_OOB Send out-of-band data ... on sockets that support this notion."  TCP
    supports it: t6sendto of "urgent!" with MSG_OOB makes its last byte urgent; the peer
    reads "!" with recv(MSG_OOB) and "urgent" in band."""
    client, conn = stream_pair()
    expect.equal("t6sendto with MSG_OOB", t6sendto(client.fileno(), b"urgent!", socket.MSG_OOB, None, 0), 7)
    expect.equal("urgent byte", _recv_oob(conn, "the urgent byte"), b"!")
    expect.equal("in-band data", _recv_exactly(conn, 6, "in-band data"), b"urgent")


@pytest.mark.clause(D + "msg-oob-protocol-support")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("family", ["udp", "unix-dgram"])
def test_msg_oob_needs_a_protocol_with_oob(family):
    """"The underlying protocol must also support out-of-band data."  UDP and AF_UNIX
    datagram sockets have none: t6sendto with MSG_OOB fails with EOPNOTSUPP."""
    if family == "udp":
        sender, _receiver, to = _udp_pair()
        _held.append(_receiver)
    else:
        receiver = socket.socket(socket.AF_UNIX, DGRAM)
        receiver.bind("rx.sock")
        _held.append(receiver)
        sender, to = socket.socket(socket.AF_UNIX, DGRAM), sockaddr.pathname("rx.sock")
    expect.errno("EOPNOTSUPP", t6sendto, sender.fileno(), b"x", socket.MSG_OOB, to, len(to),
                 what=f"t6sendto with MSG_OOB on {family}")


@pytest.mark.clause(D + "msg-oob-not-buffered")
@pytest.mark.fault("sendto")
def test_msg_oob_skips_nagle_buffering():
    """"Data and attributes sent with this flag are typically not subject to the internal
    buffering normally applied by the network to improve network efficiency."

    The buffering is Nagle's algorithm: a small segment waits while earlier data is
    unacknowledged.  Hosts a and b on a veth pair; once a's TCP connection to b is up, b
    drops every TCP packet it would send (so nothing a sends is ever acknowledged); a's
    route to b locks the minimum retransmission timeout at 3 s and a has tail loss probes
    off (net.ipv4.tcp_early_retrans=0, its own namespace), so no retransmission or probe
    sends held data during the test.  a sends one byte: it reaches b (nothing was
    unacknowledged).  The control: a second ordinary byte does not reach b within 300 ms
    (Nagle holds it).  Then one byte with MSG_OOB: the urgent byte reaches b within 300 ms."""
    topo = topology.two_hosts()
    topo.sysctl("a", "net/ipv4/tcp_early_retrans", 0)
    topo.add_route("a", "10.0.1.2/32", dev="to-b", metrics={"RTAX_RTO_MIN": 3000, "RTAX_LOCK": 1 << RTAX_RTO_MIN})
    with topo.inside("b"):
        server = socket.socket(socket.AF_INET, STREAM)
    server.bind(("10.0.1.2", 0))
    server.listen(1)
    client = socket.socket(socket.AF_INET, STREAM)
    client.connect(server.getsockname())
    conn, _ = server.accept()
    topo.nft_chain("b", "no-acks", "output",
                   topology.nft_match("network", 9, bytes([socket.IPPROTO_TCP])) + topology.nft_verdict("drop"))
    window = 0.3
    t6sendto(client.fileno(), b"1", 0, None, 0)
    expect.equal("first byte at b", _recv_exactly(conn, 1, "the first byte"), b"1")
    t6sendto(client.fileno(), b"2", 0, None, 0)
    held = not select.select([conn], [], [], window)[0]
    expect.equal(f"second ordinary byte held back for {window:g} s (Nagle: the control)", held, True)
    t6sendto(client.fileno(), b"!", socket.MSG_OOB, None, 0)
    _, _, urgent = select.select([], [], [conn], window)
    expect.equal(f"urgent byte at b within {window:g} s", bool(urgent), True)
    expect.equal("urgent byte", conn.recv(1, socket.MSG_OOB), b"!")


@pytest.mark.clause(D + "msg-dontroute")
@pytest.mark.fault("sendto", "getsockopt")
def test_msg_dontroute_is_so_dontroute_for_one_call():
    """"MSG_DONTROUTE The SO_DONTROUTE option is turned on for the duration of the
    operation."

    Host a: 10.0.1.0/24 on its veth to b, and 10.9.9.0/24 only through the gateway b.
    With MSG_DONTROUTE, t6sendto to 10.9.9.9 fails with ENETUNREACH (no gateways, as
    with SO_DONTROUTE set) while a directly connected 10.0.1.2 is reached; without the
    flag 10.9.9.9 is sent to; SO_DONTROUTE still reads 0 afterwards."""
    topo = topology.two_hosts()
    topo.add_route("a", "10.9.9.0/24", via=topo["b"].address)
    s = inet(DGRAM)
    far, near = sockaddr.in4("10.9.9.9", 9), sockaddr.in4("10.0.1.2", 9)
    expect.errno("ENETUNREACH", t6sendto, s.fileno(), b"x", socket.MSG_DONTROUTE, far, len(far),
                 what="t6sendto with MSG_DONTROUTE to a destination behind a gateway")
    expect.equal("t6sendto with MSG_DONTROUTE to a directly connected host",
                 t6sendto(s.fileno(), b"x", socket.MSG_DONTROUTE, near, len(near)), 1)
    expect.equal("SO_DONTROUTE after the call", s.getsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE), 0)
    expect.equal("t6sendto without the flag to the destination behind the gateway",
                 t6sendto(s.fileno(), b"x", 0, far, len(far)), 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_DONTROUTE, 1)
    expect.errno("ENETUNREACH", t6sendto, s.fileno(), b"x", 0, far, len(far),
                 what="t6sendto with SO_DONTROUTE set, to the destination behind the gateway (the reference)")


# ---------------------------------------------------------------------- the return value

@pytest.mark.clause(D + "returns-bytes-sent")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("size", [1, 1000, UDP_MAX])
def test_returns_bytes_sent_udp(size):
    """"The return value is the number of bytes actually sent, or the appropriate error."
    A UDP datagram of N bytes: t6sendto returns N and N bytes arrive."""
    sender, receiver, to = _udp_pair()
    sent = expect.equal(f"t6sendto of {size} bytes", t6sendto(sender.fileno(), b"\7" * size, 0, to, len(to)), size)
    expect.equal("bytes received", len(recv_within(receiver, "the datagram", bufsize=UDP_MAX + 1)[0]), sent)


@pytest.mark.clause(D + "returns-bytes-sent")
@pytest.mark.fault("sendto")
def test_returns_bytes_actually_sent_partial_stream():
    """"The return value is the number of bytes actually sent"  A non-blocking AF_UNIX
    stream send of 4 MiB into a small send buffer sends part of it: t6sendto returns a
    count below 4 MiB, and the peer receives exactly that many bytes."""
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    big = os.urandom(1 << 22)
    n = t6sendto(a.fileno(), big, socket.MSG_DONTWAIT, None, 0)
    expect.observe("bytes sent", n)
    expect.true("a partial send (the check needs one)", 0 < n < len(big), f"0 < n < {len(big)}", n)
    a.close()
    got = b""
    while True:
        chunk = b.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    expect.equal("bytes the peer received", len(got), n)
    expect.equal("the bytes the peer received are the first n of the message", got == big[:n], True)


# ---------------------------------------------------------------------- EINTR

def _fill(sock: socket.socket) -> int:
    """Send without blocking until the socket takes nothing more, and once more after
    any acknowledgements in flight have landed: the bytes sent."""
    total = 0
    chunk = bytes(16384)
    for _ in range(3):
        while True:
            try:
                total += sock.send(chunk, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        select.select([], [sock], [], 0.05)       # let late acknowledgements land
    return total


@pytest.mark.clause(E + "eintr")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("family", ["unix-stream", "tcp"])
def test_eintr_before_anything_buffered(family):
    """"[EINTR] The operation was interrupted by delivery of a signal before any data
    could be buffered to be sent."

    A stream socket whose peer does not read is filled until it takes nothing more.  A
    blocking t6sendto of 64 KiB then waits; SIGALRM (handler installed without
    SA_RESTART) arrives after 0.2 s: the call fails with EINTR, the send queue holds what
    it held before, and the peer finally reads exactly the bytes sent before the call."""
    if family == "tcp":
        server = socket.socket(socket.AF_INET, STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.bind((LOOPBACK, 0))
        server.listen(1)
        a = socket.socket(socket.AF_INET, STREAM)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        a.connect(server.getsockname())
        b, _ = server.accept()
    else:
        a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    filled = expect.observe("bytes queued before the call", _fill(a))
    queued = rawsock.ioctl_int(a.fileno(), SIOCOUTQ)
    fired = []
    signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    signal.siginterrupt(signal.SIGALRM, True)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        expect.errno("EINTR", t6sendto, a.fileno(), bytes(65536), 0, None, 0,
                     what="blocking t6sendto on a full socket, interrupted by SIGALRM")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    expect.equal("signal delivered", bool(fired), True)
    expect.equal("send queue (SIOCOUTQ) after the interrupted call", rawsock.ioctl_int(a.fileno(), SIOCOUTQ), queued)
    a.shutdown(socket.SHUT_WR)
    received = 0
    while True:
        ready = select.select([b], [], [], WAIT)[0]
        if not ready:
            raise expect.Deviation("draining the peer", "end of stream", f"nothing within {WAIT:g} s")
        chunk = b.recv(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    expect.equal("bytes the peer received (those queued before the interrupted call)", received, filled)


# ---------------------------------------------------------------------- ERRORS (a table)

@dataclass(frozen=True)
class Case:
    what: str
    errno: str
    setup: Callable[[], tuple]          # -> the t6sendto arguments (fd, msg, flags, to, tolen)


def _closed_fd():
    s = inet(DGRAM)
    fd = s.detach()
    os.close(fd)
    return fd, b"x", 0, sockaddr.in4(LOOPBACK, 9), sockaddr.SOCKADDR_IN


def _file_fd():
    fd = os.open("a-file", os.O_RDWR | os.O_CREAT, 0o600)
    _held.append(fd)
    return fd, b"x", 0, sockaddr.in4(LOOPBACK, 9), sockaddr.SOCKADDR_IN


def _pipe_fd():
    r, w = os.pipe()
    _held.extend((r, w))
    return w, b"x", 0, None, 0


def _inet_tolen(tolen: int, buflen: int = 128):
    """An unconnected UDP socket, a receiver's sockaddr_in padded to ``buflen`` bytes, and
    ``tolen`` as the size passed."""
    sender, receiver, to = _udp_pair()
    _held.extend((sender, receiver))
    return sender.fileno(), b"x", 0, to.ljust(buflen, b"\0"), tolen


def _unix_tolen(tolen: int):
    receiver = socket.socket(socket.AF_UNIX, DGRAM)
    receiver.bind("rx.sock")
    sender = socket.socket(socket.AF_UNIX, DGRAM)
    _held.extend((sender, receiver))
    return sender.fileno(), b"x", 0, sockaddr.pathname("rx.sock").ljust(128, b"\0"), tolen


def _case(case_id: str, clause: str, errno: str, setup, what: str):
    return pytest.param(Case(what, errno, setup), id=case_id, marks=pytest.mark.clause(E + clause))


ERRORS = [
    _case("ebadf-closed", "ebadf", "EBADF", _closed_fd, "t6sendto on a descriptor just closed"),
    _case("ebadf-negative", "ebadf", "EBADF", lambda: (-1, b"x", 0, None, 0), "t6sendto on descriptor -1"),
    _case("enotsock-file", "enotsock", "ENOTSOCK", _file_fd, "t6sendto on a regular file"),
    _case("enotsock-pipe", "enotsock", "ENOTSOCK", _pipe_fd, "t6sendto on a pipe"),
    _case("einval-inet-1", "einval-tolen", "EINVAL", lambda: _inet_tolen(1),
          "AF_INET destination with tolen 1"),
    _case("einval-inet-15", "einval-tolen", "EINVAL", lambda: _inet_tolen(15),
          "AF_INET destination with tolen 15 (sizeof(struct sockaddr_in) - 1)"),
    _case("einval-inet-17", "einval-tolen", "EINVAL", lambda: _inet_tolen(17),
          "AF_INET destination with tolen 17 (sizeof(struct sockaddr_in) + 1)"),
    _case("einval-inet-129", "einval-tolen", "EINVAL", lambda: _inet_tolen(129, 129),
          "AF_INET destination with tolen 129 (beyond struct sockaddr_storage)"),
    _case("einval-inet-negative", "einval-tolen", "EINVAL", lambda: _inet_tolen(-1),
          "AF_INET destination with tolen -1"),
    _case("einval-unix-1", "einval-tolen", "EINVAL", lambda: _unix_tolen(1),
          "AF_UNIX destination with tolen 1 (less than sa_family_t)"),
    _case("einval-unix-111", "einval-tolen", "EINVAL", lambda: _unix_tolen(111),
          "AF_UNIX destination with tolen 111 (sizeof(struct sockaddr_un) + 1)"),
]


@pytest.mark.fault("sendto")
@pytest.mark.parametrize("case", ERRORS)
def test_errors(case):
    """"[EBADF] fd is an invalid file descriptor."  "[ENOTSOCK] fd is not a socket."
    "[EINVAL] tolen is not the size of a valid address for the specified address family."

    Each row makes a descriptor and arguments; t6sendto with them must fail with the
    errno the page names.  For AF_INET the valid size is sizeof(struct sockaddr_in), 16:
    shorter and longer sizes alike are "not the size of a valid address"."""
    args = case.setup()
    expect.errno(case.errno, t6sendto, *args, what=case.what)
