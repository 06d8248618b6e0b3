"""unix(7) ERRORS that are not about the filesystem, SCM_RIGHTS or socket options:
EINVAL, EISCONN, ENOTCONN, ECONNRESET, EPIPE (and SIGPIPE), EFAULT, EPROTONOSUPPORT,
EPROTOTYPE and ESOCKTNOSUPPORT.  (EPERM and ESRCH, the SCM_CREDENTIALS checks, are in
test_scm_credentials.py.)

Most entries are tables: a case id, a small setup that makes the sockets and returns the
call under test, and the errno the page names.  The setup's own calls are ordinary ones
that must succeed; only the returned call is judged.
"""

from __future__ import annotations

import signal
import socket
from dataclasses import dataclass
from typing import Callable

import pytest

from harness import expect, rawsock, sockaddr
from suites.unix7.kinds import ALL, CONNECTION_ORIENTED, DGRAM, NAMES, STREAM, over, pair, unix

E = "unix.7/errors/"
_held: list = []   # sockets a setup made that must stay open until its call has run


def _hold(*objs):
    _held.extend(objs)
    return objs[0] if len(objs) == 1 else objs


@dataclass(frozen=True)
class Case:
    what: str                              # the call, as the report shows it
    errno: str | tuple[str, ...]           # the errno the page names (a tuple: any of them)
    setup: Callable[[], Callable[[], object]]


def _case(case_id: str, errno, faults: tuple[str, ...], setup, *args, what: str | None = None):
    """A table row: ``setup(*args)`` prepares the sockets and returns the call to judge."""
    return pytest.param(Case(what or case_id, errno, lambda: setup(*args)), id=case_id,
                        marks=pytest.mark.fault(*faults))


def _judge(case: Case) -> None:
    call = case.setup()
    expect.errno(case.errno, call, what=case.what)


def _listener(kind: int, name: str | bytes = "srv.sock") -> socket.socket:
    """A socket of ``kind`` bound to ``name``; listening unless it is a datagram socket."""
    s = unix(kind)
    s.bind(name)
    if kind != DGRAM:
        s.listen(8)
    return _hold(s)


def _connected_client(kind: int) -> socket.socket:
    """A stream/seqpacket socket connected to a listener at "srv.sock" that stays alive."""
    _listener(kind)
    c = unix(kind)
    c.connect("srv.sock")
    return _hold(c)


def _accepted(kind: int) -> socket.socket:
    """The accepted end of a pathname connection: bound (the listener's name), connected."""
    a, b = pair(kind, "pathname")
    _hold(a, b)
    return b


# ------------------------------------------------------------------- EINVAL: sun_family

FOREIGN_FAMILY = socket.AF_INET


def _bind_foreign_family(kind):
    s = _hold(unix(kind))
    return lambda: rawsock.bind(s.fileno(), sockaddr.un(b"fresh.sock\0", family=FOREIGN_FAMILY))


def _connect_foreign_family(kind):
    _listener(kind)
    s = _hold(unix(kind))
    return lambda: rawsock.connect(s.fileno(), sockaddr.un(b"srv.sock\0", family=FOREIGN_FAMILY))


def _sendto_foreign_family(kind):
    _listener(kind)
    s = _hold(unix(kind))
    return lambda: rawsock.sendto(s.fileno(), b"x", sockaddr.un(b"srv.sock\0", family=FOREIGN_FAMILY))


FAMILY_CASES = [
    *(_case(f"bind-{NAMES[k]}", "EINVAL", ("bind",), _bind_foreign_family, k,
            what=f"bind {NAMES[k]} socket to 'fresh.sock' with sun_family AF_INET") for k in ALL),
    *(_case(f"connect-{NAMES[k]}", "EINVAL", ("connect",), _connect_foreign_family, k,
            what=f"connect {NAMES[k]} socket to live 'srv.sock' with sun_family AF_INET") for k in ALL),
    _case("sendto-dgram", "EINVAL", ("sendto",), _sendto_foreign_family, DGRAM,
          what="sendto a datagram to live 'srv.sock' with sun_family AF_INET"),
]


@pytest.mark.clause(E + "einval")
@pytest.mark.parametrize("case", FAMILY_CASES)
def test_einval_sun_family_not_af_unix(case):
    """"EINVAL Invalid argument passed.  A common cause is that the value AF_UNIX was not
    specified in the sun_type field of passed addresses".  (sun_type is sun_family.)  The
    address is otherwise the one that works: a fresh path for bind(2), the path of a live
    socket of the same type for connect(2) and sendto(2)."""
    _judge(case)


# ------------------------------------------------------------- EINVAL: invalid state

def _accept_unbound(kind):
    s = _hold(unix(kind))
    return s.accept


def _accept_bound_not_listening(kind):
    s = _hold(unix(kind))
    s.bind("s.sock")
    return s.accept


def _accept_connected(kind):
    return _accepted(kind).accept


def _listen_unbound(kind):
    s = _hold(unix(kind))
    return lambda: s.listen(1)


def _listen_connected(kind):
    b = _accepted(kind)
    return lambda: b.listen(1)


def _connect_listening(kind):
    _listener(kind, "other.sock")
    s = _listener(kind, "self.sock")
    return lambda: s.connect("other.sock")


STATE_CASES = [
    row
    for k in CONNECTION_ORIENTED
    for row in (
        _case(f"accept-unbound-{NAMES[k]}", "EINVAL", ("accept",), _accept_unbound, k,
              what=f"accept on an unbound {NAMES[k]} socket"),
        _case(f"accept-not-listening-{NAMES[k]}", "EINVAL", ("accept",), _accept_bound_not_listening, k,
              what=f"accept on a bound, not listening {NAMES[k]} socket"),
        _case(f"accept-connected-{NAMES[k]}", "EINVAL", ("accept",), _accept_connected, k,
              what=f"accept on a connected {NAMES[k]} socket"),
        _case(f"listen-unbound-{NAMES[k]}", "EINVAL", ("listen",), _listen_unbound, k,
              what=f"listen on an unbound {NAMES[k]} socket"),
        _case(f"listen-connected-{NAMES[k]}", "EINVAL", ("listen",), _listen_connected, k,
              what=f"listen on a connected (accepted, bound) {NAMES[k]} socket"),
        _case(f"connect-listening-{NAMES[k]}", "EINVAL", ("connect",), _connect_listening, k,
              what=f"connect a listening {NAMES[k]} socket to another live listener"),
    )
]


@pytest.mark.clause(E + "einval-invalid-state")
@pytest.mark.parametrize("case", STATE_CASES)
def test_einval_invalid_state(case):
    """"EINVAL Invalid argument passed. ... or the socket was in an invalid state for the
    applied operation."  accept(2) on a socket that is not listening (unbound, bound, or
    connected), listen(2) on a socket that is unbound or already connected, connect(2) on
    a listening socket: each operation's arguments are valid, only the state is not."""
    _judge(case)


# ------------------------------------------------------------------------- EISCONN

def _connect_again(kind):
    c = _connected_client(kind)
    return lambda: c.connect("srv.sock")


def _connect_socketpair(kind):
    _listener(kind)
    a, _ = _hold(*socket.socketpair(socket.AF_UNIX, kind))
    return lambda: a.connect("srv.sock")


def _connect_accepted(kind):
    b = _accepted(kind)
    _listener(kind)
    return lambda: b.connect("srv.sock")


ISCONN_CASES = [
    row
    for k in CONNECTION_ORIENTED
    for row in (
        _case(f"connect-again-{NAMES[k]}", "EISCONN", ("connect",), _connect_again, k,
              what=f"connect a connected {NAMES[k]} client again to its live listener"),
        _case(f"connect-socketpair-{NAMES[k]}", "EISCONN", ("connect",), _connect_socketpair, k,
              what=f"connect a socketpair {NAMES[k]} socket to a live listener"),
        _case(f"connect-accepted-{NAMES[k]}", "EISCONN", ("connect",), _connect_accepted, k,
              what=f"connect an accepted {NAMES[k]} socket to a live listener"),
    )
]


@pytest.mark.clause(E + "eisconn")
@pytest.mark.parametrize("case", ISCONN_CASES)
def test_eisconn_connect_on_connected_socket(case):
    """"EISCONN connect(2) called on an already connected socket".  Stream and seqpacket
    sockets connected in each way (connect(2), socketpair(2), accept(2)) are connected to
    a live listener, so only their being connected can fail the call.  (A datagram socket
    may be reconnected; the page's EISCONN is about connection-mode sockets.)"""
    _judge(case)


def _sendto_connected(kind):
    c = _connected_client(kind)
    return lambda: c.sendto(b"x", "srv.sock")


def _sendto_socketpair(kind):
    _listener(kind)
    a, _ = _hold(*socket.socketpair(socket.AF_UNIX, kind))
    return lambda: a.sendto(b"x", "srv.sock")


def _sendmsg_name_socketpair(kind):
    _listener(kind)
    a, _ = _hold(*socket.socketpair(socket.AF_UNIX, kind))
    return lambda: rawsock.sendmsg(a.fileno(), b"x", name=sockaddr.pathname("srv.sock"))


TARGET_CASES = [
    row
    for k in CONNECTION_ORIENTED
    for row in (
        _case(f"sendto-client-{NAMES[k]}", "EISCONN", ("sendto",), _sendto_connected, k,
              what=f"sendto its listener's address on a connected {NAMES[k]} client"),
        _case(f"sendto-socketpair-{NAMES[k]}", "EISCONN", ("sendto",), _sendto_socketpair, k,
              what=f"sendto a live listener's address on a socketpair {NAMES[k]} socket"),
        _case(f"sendmsg-socketpair-{NAMES[k]}", "EISCONN", ("sendmsg",), _sendmsg_name_socketpair, k,
              what=f"sendmsg with msg_name on a socketpair {NAMES[k]} socket"),
    )
]


@pytest.mark.clause(E + "eisconn-target-address")
@pytest.mark.parametrize("case", TARGET_CASES)
def test_eisconn_target_address_on_connected_socket(case):
    """"EISCONN ... or a target address was specified on a connected socket."  Read for
    the connection-mode types (stream and seqpacket): a connected datagram socket may send
    to an explicit destination (see sendto(2)).  The address is that of a live listener
    of the same type."""
    _judge(case)


# ------------------------------------------------------------------------ ENOTCONN

def _send_fresh(kind):
    s = _hold(unix(kind))
    return lambda: s.send(b"x")


def _sendmsg_fresh(kind):
    s = _hold(unix(kind))
    return lambda: rawsock.sendmsg(s.fileno(), b"x")


def _send_bound(kind):
    s = _hold(unix(kind))
    s.bind("s.sock")
    return lambda: s.send(b"x")


def _send_listening(kind):
    s = _listener(kind)
    return lambda: s.send(b"x")


NOTCONN_CASES = [
    *(row for k in ALL for row in (
        _case(f"send-unbound-{NAMES[k]}", "ENOTCONN", ("sendto",), _send_fresh, k,
              what=f"send without an address on an unconnected, unbound {NAMES[k]} socket"),
        _case(f"sendmsg-unbound-{NAMES[k]}", "ENOTCONN", ("sendmsg",), _sendmsg_fresh, k,
              what=f"sendmsg without msg_name on an unconnected, unbound {NAMES[k]} socket"),
        _case(f"send-bound-{NAMES[k]}", "ENOTCONN", ("sendto",), _send_bound, k,
              what=f"send without an address on an unconnected, bound {NAMES[k]} socket"),
    )),
    *(_case(f"send-listening-{NAMES[k]}", "ENOTCONN", ("sendto",), _send_listening, k,
            what=f"send on a listening {NAMES[k]} socket") for k in CONNECTION_ORIENTED),
]


@pytest.mark.clause(E + "enotconn")
@pytest.mark.parametrize("case", NOTCONN_CASES)
def test_enotconn_send_needs_target(case):
    """"ENOTCONN Socket operation needs a target address, but the socket is not
    connected."  Sending without a destination needs one: on a datagram socket that has
    no peer, and on a stream or seqpacket socket that is not connected (unbound, bound, or
    listening)."""
    _judge(case)


# ----------------------------------------------------------------------- ECONNRESET

@pytest.mark.clause(E + "econnreset")
@pytest.mark.fault("recvfrom")
@over(*CONNECTION_ORIENTED)
def test_econnreset_peer_closed_with_unread_data(kind):
    """"ECONNRESET Remote socket was unexpectedly closed."  The peer closes while a byte
    it never read is still queued to it: the next recv(2) on this end fails ECONNRESET."""
    a, b = pair(kind)
    a.send(b"x")
    b.close()
    expect.errno("ECONNRESET", a.recv, 1, socket.MSG_DONTWAIT,
                 what=f"recv on a {NAMES[kind]} socket whose peer closed with unread data")


# --------------------------------------------------------------------- EPIPE, SIGPIPE

SENDERS = {   # the two calls the page names; send(2) is the sendto syscall
    "send": lambda s, flags: s.send(b"x", flags),
    "sendmsg": lambda s, flags: rawsock.sendmsg(s.fileno(), b"x", flags=flags),
}


def _closed_peer(kind):
    """A connected socket whose peer has closed, with SIGPIPE blocked so that a signal the
    kernel raises stays pending where the test can see it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    a, b = pair(kind)
    b.close()
    return a


def _sigpipe_pending() -> bool:
    return signal.SIGPIPE in signal.sigpending()


@pytest.mark.clause(E + "epipe", E + "epipe-sigpipe")
@pytest.mark.fault("sendto", "sendmsg")
@pytest.mark.parametrize("call", list(SENDERS))
@over(STREAM)   # the page: "Remote socket was closed on a stream socket"
def test_epipe_and_sigpipe_after_peer_closed(kind, call):
    """"EPIPE Remote socket was closed on a stream socket.  If enabled, a SIGPIPE is sent
    as well."  "Stream socket" is read as a connection-mode socket (stream and seqpacket),
    as POSIX send(2) does for EPIPE and SIGPIPE.  "If enabled" is read as: unless SIGPIPE
    is ignored.  SIGPIPE is blocked (not ignored), so the signal the kernel sends stays
    pending and the test checks it without racing a handler."""
    a = _closed_peer(kind)
    send = SENDERS[call]
    expect.errno("EPIPE", send, a, 0, what=f"{call} on a {NAMES[kind]} socket whose peer closed")
    expect.equal("SIGPIPE pending after the failed send", _sigpipe_pending(), True)


@pytest.mark.clause(E + "epipe", E + "epipe-msg-nosignal")
@pytest.mark.fault("sendto", "sendmsg")
@pytest.mark.parametrize("call", list(SENDERS))
@over(STREAM)   # the page: "Remote socket was closed on a stream socket"
def test_msg_nosignal_suppresses_sigpipe(kind, call):
    """"This can be avoided by passing the MSG_NOSIGNAL flag to send(2) or sendmsg(2)."
    With MSG_NOSIGNAL the send still fails EPIPE, and no SIGPIPE is raised (none is
    pending, SIGPIPE being blocked)."""
    a = _closed_peer(kind)
    send = SENDERS[call]
    expect.errno("EPIPE", send, a, socket.MSG_NOSIGNAL,
                 what=f"{call} with MSG_NOSIGNAL on a {NAMES[kind]} socket whose peer closed")
    expect.equal("SIGPIPE pending after the failed MSG_NOSIGNAL send", _sigpipe_pending(), False)


# ------------------------------------------------------------------------- EFAULT

def _getsockname_bad_buffer(kind):
    s = _listener(kind)
    return lambda: rawsock.getsockname(s.fileno(), sockaddr.SOCKADDR_UN, rawsock.FAULT)


def _bind_bad_address(kind):
    s = _hold(unix(kind))
    return lambda: rawsock.bind(s.fileno(), rawsock.FAULT, sockaddr.SOCKADDR_UN)


def _connect_bad_address(kind):
    s = _hold(unix(kind))
    return lambda: rawsock.connect(s.fileno(), rawsock.FAULT, sockaddr.SOCKADDR_UN)


def _sendto_bad_address(kind):
    s = _hold(unix(kind))
    return lambda: rawsock.sendto(s.fileno(), b"x", rawsock.FAULT, sockaddr.SOCKADDR_UN)


def _send_bad_buffer(kind):
    a, _ = _hold(*pair(kind))
    return lambda: rawsock.sendto(a.fileno(), rawsock.FAULT, None, flags=socket.MSG_DONTWAIT, nbytes=16)


def _recv_bad_buffer(kind):
    a, b = _hold(*pair(kind))
    a.send(b"sockspec")
    return lambda: rawsock.recvfrom(b.fileno(), 16, flags=socket.MSG_DONTWAIT, data=rawsock.FAULT)


FAULT_CASES = [
    row
    for k in ALL
    for row in (
        _case(f"bind-address-{NAMES[k]}", "EFAULT", ("bind",), _bind_bad_address, k,
              what=f"bind {NAMES[k]} socket with an unmapped address pointer"),
        _case(f"connect-address-{NAMES[k]}", "EFAULT", ("connect",), _connect_bad_address, k,
              what=f"connect {NAMES[k]} socket with an unmapped address pointer"),
        _case(f"sendto-address-{NAMES[k]}", "EFAULT", ("sendto",), _sendto_bad_address, k,
              what=f"sendto on a {NAMES[k]} socket with an unmapped address pointer"),
        _case(f"getsockname-buffer-{NAMES[k]}", "EFAULT", ("getsockname",), _getsockname_bad_buffer, k,
              what=f"getsockname of a bound {NAMES[k]} socket into an unmapped buffer"),
        _case(f"send-buffer-{NAMES[k]}", "EFAULT", ("sendto",), _send_bad_buffer, k,
              what=f"send 16 bytes from an unmapped buffer on a connected {NAMES[k]} socket"),
        _case(f"recv-buffer-{NAMES[k]}", "EFAULT", ("recvfrom",), _recv_bad_buffer, k,
              what=f"recv queued data into an unmapped buffer on a connected {NAMES[k]} socket"),
    )
]


@pytest.mark.clause(E + "efault")
@pytest.mark.parametrize("case", FAULT_CASES)
def test_efault_invalid_user_address(case):
    """"EFAULT User memory address was not valid."  An unmapped pointer as the address
    given to bind(2), connect(2) and sendto(2) (with a full sockaddr_un length), as the
    buffer getsockname(2) writes the address to, and as the data buffer of send(2) and
    recv(2)."""
    _judge(case)


# ---------------------------------------------------------------- EPROTONOSUPPORT

def _socket_with_protocol(kind, protocol):
    return lambda: socket.socket(socket.AF_UNIX, kind, protocol)


def _socketpair_with_protocol(kind, protocol):
    return lambda: socket.socketpair(socket.AF_UNIX, kind, protocol)


PROTOCOLS = {"2": 2, "tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "255": 255, "int-max": 2**31 - 1}

PROTOCOL_CASES = [
    *(_case(f"socket-{NAMES[k]}-protocol-{p}", "EPROTONOSUPPORT", ("socket",), _socket_with_protocol, k, n,
            what=f"socket(AF_UNIX, {NAMES[k]}, {n})") for k in ALL for p, n in PROTOCOLS.items()),
    *(_case(f"socketpair-{NAMES[k]}-protocol-2", "EPROTONOSUPPORT", ("socketpair",),
            _socketpair_with_protocol, k, 2, what=f"socketpair(AF_UNIX, {NAMES[k]}, 2)") for k in ALL),
]


@pytest.mark.clause(E + "eprotonosupport")
@pytest.mark.parametrize("case", PROTOCOL_CASES)
def test_eprotonosupport_protocol_not_af_unix(case):
    """"EPROTONOSUPPORT Passed protocol is not AF_UNIX."  socket(2) and socketpair(2) with
    a protocol that is neither 0 (the synopsis) nor PF_UNIX (== AF_UNIX, 1)."""
    _judge(case)


# --------------------------------------------------------------------- EPROTOTYPE

def _connect_other_type(kind, remote, how):
    name = "remote.sock" if how == "pathname" else b"\0sockspec-remote"
    _listener(remote, name)
    s = _hold(unix(kind))
    return lambda: s.connect(name)


def _sendto_other_type(kind, remote, how):
    name = "remote.sock" if how == "pathname" else b"\0sockspec-remote"
    _listener(remote, name)
    s = _hold(unix(kind))
    return lambda: s.sendto(b"x", name)


PROTOTYPE_CASES = [
    *(_case(f"connect-{NAMES[k]}-to-{NAMES[r]}-{how}", "EPROTOTYPE", ("connect",),
            _connect_other_type, k, r, how,
            what=f"connect {NAMES[k]} socket to a live {NAMES[r]} socket's {how} address")
      for k in ALL for r in ALL if r != k for how in ("pathname", "abstract")),
    *(_case(f"sendto-dgram-to-{NAMES[r]}-{how}", "EPROTOTYPE", ("sendto",),
            _sendto_other_type, DGRAM, r, how,
            what=f"sendto from a dgram socket to a live {NAMES[r]} socket's {how} address")
      for r in CONNECTION_ORIENTED for how in ("pathname", "abstract")),
]


@pytest.mark.clause(E + "eprototype")
@pytest.mark.parametrize("case", PROTOTYPE_CASES)
def test_eprototype_remote_type_mismatch(case):
    """"EPROTOTYPE Remote socket does not match the local socket type (SOCK_DGRAM versus
    SOCK_STREAM)."  Every mismatched pair of the three types, by pathname and by abstract
    address; the remote socket is live (listening, for stream and seqpacket)."""
    _judge(case)


# ---------------------------------------------------------------- ESOCKTNOSUPPORT

SOCK_RDM, SOCK_DCCP, SOCK_PACKET, SOCK_MAX = 4, 6, 10, 11


def _socket_of_type(sock_type):
    """socket(AF_UNIX, sock_type, 0); on success, the SO_TYPE the kernel gave it."""
    def call():
        with socket.socket(socket.AF_UNIX, sock_type) as s:
            return f"SO_TYPE {s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)}"
    return call


def _socketpair_of_type(sock_type):
    return lambda: socket.socketpair(socket.AF_UNIX, sock_type)


TYPE_CASES = [
    # SOCK_RAW is not among the page's "Valid socket types in the UNIX domain" (stream,
    # dgram, seqpacket); the page says nothing of accepting it, so it is an unknown type.
    _case("socket-sock-raw", "ESOCKTNOSUPPORT", ("socket",), _socket_of_type, socket.SOCK_RAW,
          what="socket(AF_UNIX, SOCK_RAW, 0)"),
    _case("socket-sock-rdm", "ESOCKTNOSUPPORT", ("socket",), _socket_of_type, SOCK_RDM,
          what="socket(AF_UNIX, SOCK_RDM, 0)"),
    _case("socket-sock-dccp", "ESOCKTNOSUPPORT", ("socket",), _socket_of_type, SOCK_DCCP,
          what="socket(AF_UNIX, SOCK_DCCP, 0)"),
    *(_case(f"socket-type-{t}", "ESOCKTNOSUPPORT", ("socket",), _socket_of_type, t,
            what=f"socket(AF_UNIX, {t}, 0)") for t in (7, 8, 9)),
    _case("socket-sock-packet", "ESOCKTNOSUPPORT", ("socket",), _socket_of_type, SOCK_PACKET,
          what="socket(AF_UNIX, SOCK_PACKET, 0)"),
    _case("socketpair-sock-rdm", "ESOCKTNOSUPPORT", ("socketpair",), _socketpair_of_type, SOCK_RDM,
          what="socketpair(AF_UNIX, SOCK_RDM, 0)"),
    # At or above SOCK_MAX the generic socket layer rejects the type before AF_UNIX sees
    # it, with EINVAL; the page allows "Other errors ... generated by the generic socket
    # layer", so either errno is the page's.
    *(_case(f"socket-type-{t}", ("ESOCKTNOSUPPORT", "EINVAL"), ("socket",), _socket_of_type, t,
            what=f"socket(AF_UNIX, {t}, 0)") for t in (SOCK_MAX, 99)),
]


@pytest.mark.clause(E + "esocktnosupport")
@pytest.mark.parametrize("case", TYPE_CASES)
def test_esocktnosupport_unknown_type(case):
    """"ESOCKTNOSUPPORT Unknown socket type."  socket(2) and socketpair(2) with a type that
    is none of the page's "Valid socket types in the UNIX domain": SOCK_STREAM,
    SOCK_DGRAM, SOCK_SEQPACKET."""
    _judge(case)
