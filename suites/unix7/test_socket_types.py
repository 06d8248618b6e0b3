"""unix(7) DESCRIPTION: the AF_UNIX family and its three socket types.

SOCK_STREAM is a byte stream, SOCK_DGRAM keeps message boundaries and is reliable and
in order, SOCK_SEQPACKET keeps boundaries and order and needs a connection.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import struct
import threading
import time

import pytest

from harness import expect
from suites.unix7.kinds import DGRAM, SEQPACKET, STREAM, over, pair, unix

AF_LOCAL = 1            # <bits/socket.h>: #define PF_LOCAL 1, AF_LOCAL PF_LOCAL (Python lacks it)
SO_DOMAIN = socket.SO_DOMAIN
VOLUME = 5000           # messages in the reliability and ordering runs
SEQ = struct.Struct("=I")


def _int_opt(sock: socket.socket, option: int) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, option)


def _stream_in_order(sender: socket.socket, receiver: socket.socket, count: int, *, to=None) -> list[int]:
    """Send ``count`` numbered messages (blocking) from a thread while this thread receives
    them; return the sequence numbers in arrival order.  A sender error is raised here."""
    failure: list[BaseException] = []

    def send_all():
        try:
            for i in range(count):
                if to is None:
                    sender.send(SEQ.pack(i))
                else:
                    sender.sendto(SEQ.pack(i), to)
        except BaseException as exc:  # noqa: BLE001 - reported by the receiving thread
            failure.append(exc)

    writer = threading.Thread(target=send_all, daemon=True)
    writer.start()
    seen: list[int] = []
    deadline = time.monotonic() + 5
    while len(seen) < count and time.monotonic() < deadline:
        if not select.select([receiver], [], [], 0.05)[0]:
            if failure or not writer.is_alive():
                break
            continue
        data = receiver.recv(64, socket.MSG_DONTWAIT)
        expect.equal("received message size", len(data), SEQ.size)
        seen.append(SEQ.unpack(data)[0])
    writer.join(5)
    if failure:
        raise failure[0]
    return seen


def _first_disorder(seen: list[int]) -> str | None:
    for pos, number in enumerate(seen):
        if number != pos:
            return f"message #{pos} was number {number}"
    return None


# ------------------------------------------------------------------- the family


@pytest.mark.clause("unix.7/description/af-local-same-machine")
@pytest.mark.fault("socket", "getsockopt", "getsockname")
@over()
def test_af_local_is_af_unix(kind):
    """"The AF_UNIX (also known as AF_LOCAL) socket family is used to communicate between
    processes on the same machine efficiently."

    AF_LOCAL (1 in <sys/socket.h>) is the same family: socket(AF_LOCAL, type, 0) makes a
    socket whose SO_DOMAIN and address family are AF_UNIX, and it carries data."""
    expect.equal("AF_UNIX", int(socket.AF_UNIX), AF_LOCAL)
    sock = socket.socket(AF_LOCAL, kind)
    expect.equal("SO_DOMAIN of socket(AF_LOCAL)", _int_opt(sock, SO_DOMAIN), int(socket.AF_UNIX))
    expect.equal("SO_TYPE of socket(AF_LOCAL)", _int_opt(sock, socket.SO_TYPE), int(kind))
    sock.bind(b"\0af-local")
    expect.equal("getsockname of the AF_LOCAL socket", sock.getsockname(), b"\0af-local")
    a, b = socket.socketpair(AF_LOCAL, kind)
    a.send(b"local")
    expect.equal("received over an AF_LOCAL pair", b.recv(16, socket.MSG_DONTWAIT), b"local")


@pytest.mark.clause("unix.7/description/unnamed-or-pathname")
@pytest.mark.fault("bind")
@over()
def test_pathname_socket_is_a_socket_file(kind):
    """"Traditionally, UNIX domain sockets can be either unnamed, or bound to a filesystem
    pathname (marked as being of type socket)."

    A bound pathname shows as S_IFSOCK in stat(2)."""
    sock = unix(kind)
    sock.bind("typed.sock")
    mode = os.lstat("typed.sock").st_mode
    expect.equal("file type of the bound pathname", stat.S_IFMT(mode), stat.S_IFSOCK)


# ------------------------------------------------------------------- SOCK_STREAM


@pytest.mark.clause("unix.7/description/sock-stream")
@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.parametrize("how", ["socketpair", "pathname"])
def test_stream_has_no_message_boundaries(how):
    """"Valid socket types in the UNIX domain are: SOCK_STREAM, for a stream-oriented
    socket"

    A byte stream: a read may take part of a write without losing the rest, and one read
    returns bytes of several writes (read as: with all of it queued, a large enough read
    returns all queued bytes)."""
    a, b = pair(STREAM, how)
    a.send(b"abc")
    a.send(b"def")
    expect.equal("read of 2 bytes", b.recv(2, socket.MSG_DONTWAIT), b"ab")
    a.send(b"ghi")
    expect.equal("read across write boundaries", b.recv(100, socket.MSG_DONTWAIT), b"cdefghi")


# ------------------------------------------------------------------- SOCK_DGRAM


@pytest.mark.clause("unix.7/description/sock-dgram-boundaries")
@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.parametrize("how", ["socketpair", "pathname", "abstract"])
def test_dgram_preserves_message_boundaries(how):
    """"SOCK_DGRAM, for a datagram-oriented socket that preserves message boundaries"

    Each read returns exactly one datagram; a short read takes part of one datagram and
    the rest of that datagram is discarded, never joined to the next."""
    a, b = pair(DGRAM, how)
    for msg in (b"one", b"two!", b"", b"three"):
        a.send(msg)
    expect.equal("1st datagram", b.recv(100, socket.MSG_DONTWAIT), b"one")
    expect.equal("2nd datagram", b.recv(100, socket.MSG_DONTWAIT), b"two!")
    expect.equal("3rd (empty) datagram", b.recv(100, socket.MSG_DONTWAIT), b"")
    expect.equal("short read of 4th datagram", b.recv(2, socket.MSG_DONTWAIT), b"th")
    a.send(b"six")
    expect.equal("next read after the short read", b.recv(100, socket.MSG_DONTWAIT), b"six")


@pytest.mark.clause("unix.7/description/dgram-reliable", "unix.7/description/dgram-no-reorder")
@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.parametrize("how", ["socketpair", "sendto"])
def test_dgram_full_queue_refuses_instead_of_dropping(how):
    """"UNIX domain datagram sockets are always reliable" / "always reliable and don't
    reorder datagrams"

    A nonblocking sender fills the receiver's queue until EAGAIN; every datagram that was
    accepted (send returned its length) is then received, once, in the order sent, and
    the one refused with EAGAIN is not."""
    if how == "socketpair":
        a, b = socket.socketpair(socket.AF_UNIX, DGRAM)
        target = None
    else:
        b = unix(DGRAM)
        b.bind("rx.sock")
        a = unix(DGRAM)
        target = "rx.sock"
    accepted = 0
    while accepted < 100_000:
        msg = SEQ.pack(accepted)
        try:
            sent = a.send(msg, socket.MSG_DONTWAIT) if target is None else a.sendto(
                msg, socket.MSG_DONTWAIT, target)
        except BlockingIOError:
            break
        expect.equal("bytes accepted by send", sent, SEQ.size)
        accepted += 1
    expect.observe("datagrams queued before EAGAIN", accepted)
    expect.true("the queue filled up (EAGAIN) instead of accepting without limit",
                accepted < 100_000, "EAGAIN", f"{accepted} datagrams accepted")
    seen = []
    while True:
        try:
            data = b.recv(64, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        seen.append(SEQ.unpack(data)[0])
    expect.equal("datagrams received", len(seen), accepted)
    expect.equal("first out-of-order datagram", _first_disorder(seen), None)


@pytest.mark.clause("unix.7/description/dgram-reliable", "unix.7/description/dgram-no-reorder")
@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.sandbox(timeout=30)
@pytest.mark.parametrize("how", ["socketpair", "sendto"])
def test_dgram_volume_all_arrive_in_order(how):
    """"UNIX domain datagram sockets are always reliable and don't reorder datagrams"

    A blocking sender sends many numbered datagrams while the receiver reads them: all
    arrive, none twice, in the order sent."""
    if how == "socketpair":
        a, b = socket.socketpair(socket.AF_UNIX, DGRAM)
        seen = _stream_in_order(a, b, VOLUME)
    else:
        b = unix(DGRAM)
        b.bind("rx.sock")
        seen = _stream_in_order(unix(DGRAM), b, VOLUME, to="rx.sock")
    expect.equal("datagrams received", len(seen), VOLUME)
    expect.equal("first out-of-order datagram", _first_disorder(seen), None)


# ------------------------------------------------------------------- SOCK_SEQPACKET


def _send_unconnected(s, _):
    return s.send(b"x", socket.MSG_DONTWAIT)


def _sendto_listener(s, listener_name):
    return s.sendto(b"x", socket.MSG_DONTWAIT, listener_name)


def _recv_unconnected(s, _):
    return s.recv(16, socket.MSG_DONTWAIT)


def _connect_not_listening(s, _):
    idle = unix(SEQPACKET)
    idle.bind("idle.sock")
    return s.connect("idle.sock")


# (id, call, errnos the page allows, syscall observed).  ENOTCONN: "Socket operation needs
# a target address, but the socket is not connected"; ECONNREFUSED: "The remote address
# specified by connect(2) was not a listening socket".  The page names no errno for
# sendto-with-address on an unconnected connection-oriented socket: ENOTCONN or the
# EOPNOTSUPP of a stream socket are both read as "refused for want of a connection".
SEQPACKET_NEEDS_CONNECTION = [
    ("send-unconnected", _send_unconnected, "ENOTCONN", "sendto"),
    ("sendto-listener-unconnected", _sendto_listener, ("ENOTCONN", "EOPNOTSUPP"), "sendto"),
    ("recv-unconnected", _recv_unconnected, "ENOTCONN", "recvfrom"),
    ("connect-to-non-listening", _connect_not_listening, "ECONNREFUSED", "connect"),
]


@pytest.mark.clause("unix.7/description/seqpacket-connection-oriented")
@pytest.mark.parametrize("call,errnos", [
    pytest.param(call, errnos, id=case, marks=pytest.mark.fault(syscall))
    for case, call, errnos, syscall in SEQPACKET_NEEDS_CONNECTION])
def test_seqpacket_needs_a_connection(call, errnos):
    """"(since Linux 2.6.4) SOCK_SEQPACKET, for a sequenced-packet socket that is
    connection-oriented"

    Without a connection nothing is sent or received, even to a listening socket's
    address, and connect needs a listening peer."""
    listener = unix(SEQPACKET)
    listener.bind("listener.sock")
    listener.listen(1)
    expect.errno(errnos, call, unix(SEQPACKET), "listener.sock", what=call.__name__.strip("_"))


@pytest.mark.clause("unix.7/description/seqpacket-connection-oriented")
@pytest.mark.fault("listen", "connect", "accept")
@pytest.mark.parametrize("how", ["pathname", "abstract"])
def test_seqpacket_listen_connect_accept(how):
    """"SOCK_SEQPACKET, for a sequenced-packet socket that is connection-oriented"

    Like a stream socket: listen, connect and accept make a connection that carries
    messages both ways."""
    name = "sp.sock" if how == "pathname" else b"\0sp"
    listener = unix(SEQPACKET)
    listener.bind(name)
    listener.listen(1)
    client = unix(SEQPACKET)
    client.connect(name)
    conn, _ = listener.accept()
    client.send(b"ping")
    expect.equal("client -> accepted", conn.recv(16, socket.MSG_DONTWAIT), b"ping")
    conn.send(b"pong")
    expect.equal("accepted -> client", client.recv(16, socket.MSG_DONTWAIT), b"pong")


@pytest.mark.clause("unix.7/description/seqpacket-boundaries")
@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.parametrize("how", ["socketpair", "pathname"])
def test_seqpacket_preserves_message_boundaries(how):
    """"SOCK_SEQPACKET, for a sequenced-packet socket that is connection-oriented,
    preserves message boundaries"

    Each read returns exactly one message; a short read discards the rest of that message
    (MSG_TRUNC with recvmsg is not needed to see it: the next read is the next message)."""
    a, b = pair(SEQPACKET, how)
    for msg in (b"one", b"two!", b"three"):
        a.send(msg)
    expect.equal("1st message", b.recv(100, socket.MSG_DONTWAIT), b"one")
    expect.equal("2nd message", b.recv(100, socket.MSG_DONTWAIT), b"two!")
    expect.equal("short read of 3rd message", b.recv(2, socket.MSG_DONTWAIT), b"th")
    a.send(b"four")
    expect.equal("next read after the short read", b.recv(100, socket.MSG_DONTWAIT), b"four")


@pytest.mark.clause("unix.7/description/seqpacket-order")
@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.sandbox(timeout=30)
@pytest.mark.parametrize("how", ["socketpair", "pathname"])
def test_seqpacket_delivers_in_order(how):
    """"and delivers messages in the order that they were sent."

    Many numbered messages from a blocking sender arrive complete and in order."""
    a, b = pair(SEQPACKET, how)
    seen = _stream_in_order(a, b, VOLUME)
    expect.equal("messages received", len(seen), VOLUME)
    expect.equal("first out-of-order message", _first_disorder(seen), None)
