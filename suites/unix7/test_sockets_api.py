"""unix(7) "Sockets API": MSG_OOB, MSG_MORE, MSG_TRUNC, SO_SNDBUF and SO_RCVBUF; and the
EOPNOTSUPP entries of ERRORS (stream operations on datagram sockets, out-of-band data)."""

from __future__ import annotations

import socket

import pytest

from harness import expect
from suites.unix7.kinds import ALL, DGRAM, NAMES, SEQPACKET, STREAM, over, unix

SOL_SOCKET = socket.SOL_SOCKET
OOB_CLAUSES = ("unix.7/sockets-api/msg-oob-unsupported", "unix.7/errors/eopnotsupp-oob")


def _fill(sock: socket.socket, chunk: int) -> int:
    """Send ``chunk``-byte messages with MSG_DONTWAIT until EAGAIN; the bytes queued."""
    total = 0
    while True:
        try:
            total += sock.send(b"x" * chunk, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return total


# ----------------------------------------------------------------------------- MSG_OOB

OOB_CALLS = {  # what is called, on which end of the pair (sender a, receiver b)
    "send": lambda a, b: a.send(b"!", socket.MSG_OOB),
    "recv": lambda a, b: b.recv(1, socket.MSG_OOB | socket.MSG_DONTWAIT),
}
OOB_CASES = [
    pytest.param(kind, call, id=f"{NAMES[kind]}-{call}",
                 marks=pytest.mark.clause(*OOB_CLAUSES, *(["unix.7/notes/stream-no-oob"] if kind == STREAM else [])))
    for kind in ALL for call in OOB_CALLS
]


@pytest.mark.fault("sendto", "recvfrom")
@pytest.mark.parametrize("kind,call", OOB_CASES)
def test_msg_oob_not_supported(kind, call):
    """"UNIX domain sockets do not support the transmission of out-of-band data (the
    MSG_OOB flag for send(2) and recv(2))."  "EOPNOTSUPP ... or tried to use the
    out-of-band data option."  (and NOTES: "UNIX domain stream sockets do not support the
    notion of out-of-band data.")

    send(MSG_OOB) and recv(MSG_OOB) on a connected socket of every type, with ordinary
    data queued, fail with EOPNOTSUPP.  The page makes no exception for kernels built with
    CONFIG_AF_UNIX_OOB.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    a.send(b"data")
    expect.errno("EOPNOTSUPP", OOB_CALLS[call], a, b, what=f"{call}(MSG_OOB)")


# ----------------------------------------------------------------- ERRORS: EOPNOTSUPP

def _listen(sock: socket.socket) -> None:
    sock.listen(1)


def _accept(sock: socket.socket):
    sock.setblocking(False)
    return sock.accept()


@pytest.mark.clause("unix.7/errors/eopnotsupp")
@pytest.mark.fault("listen", "accept")
@pytest.mark.parametrize("call", [_listen, _accept], ids=["listen", "accept"])
def test_stream_operation_on_dgram_eopnotsupp(call):
    """"EOPNOTSUPP Stream operation called on non-stream oriented socket"

    listen(2) and accept(2) on a bound SOCK_DGRAM socket fail with EOPNOTSUPP.
    """
    s = unix(DGRAM)
    s.bind(b"\0sockspec-dgram-listen")
    expect.errno("EOPNOTSUPP", call, s, what=f"{call.__name__.strip('_')}() on SOCK_DGRAM")


# ---------------------------------------------------------------------------- MSG_MORE

@pytest.mark.clause("unix.7/sockets-api/msg-more-unsupported")
@pytest.mark.fault("sendto", "recvfrom")
@over()
def test_msg_more_has_no_effect(kind):
    """"The send(2) MSG_MORE flag is not supported by UNIX domain sockets."

    Not supported, read as: send(MSG_MORE) is either refused (EOPNOTSUPP or EINVAL) or
    does not cork: the data is readable at once, with MSG_DONTWAIT, without a further send.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    try:
        sent = a.send(b"corked?", socket.MSG_MORE)
    except OSError as exc:
        expect.observe("send(MSG_MORE)", expect.errno_name(exc.errno))
        expect.true("send(MSG_MORE) refused with", expect.errno_name(exc.errno) in ("EOPNOTSUPP", "EINVAL"),
                    "EOPNOTSUPP or EINVAL, or success without corking", expect.errno_name(exc.errno))
        return
    expect.equal("send(MSG_MORE) return value", sent, 7)
    try:
        got = b.recv(64, socket.MSG_DONTWAIT)
    except BlockingIOError:
        got = "EAGAIN (the data was held back)"
    expect.equal("recv(MSG_DONTWAIT) right after send(MSG_MORE)", got, b"corked?")


# --------------------------------------------------------------------------- MSG_TRUNC

@pytest.mark.clause("unix.7/sockets-api/msg-trunc-recv")
@pytest.mark.fault("recvfrom")
@over(DGRAM, SEQPACKET)
def test_msg_trunc_returns_real_message_length(kind):
    """"Before Linux 3.4, the use of MSG_TRUNC in the flags argument of recv(2) was not
    supported by UNIX domain sockets."

    Since 3.4 it is, with the meaning recv(2) gives it for UNIX datagram and sequenced-
    packet sockets: the real length of the message, even when longer than the buffer.
    A 10-byte message into a 4-byte buffer: recv returns 10, the buffer holds the first 4
    bytes, and the message is consumed.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    a.send(b"0123456789")
    a.send(b"next")
    buf = bytearray(4)
    n = b.recv_into(buf, 4, socket.MSG_TRUNC)
    expect.equal("recv(MSG_TRUNC) return value", n, 10)
    expect.equal("bytes in the 4-byte buffer", bytes(buf), b"0123")
    expect.equal("next recv", b.recv(64, socket.MSG_DONTWAIT), b"next")


@pytest.mark.clause("unix.7/sockets-api/msg-trunc-recv")
@pytest.mark.fault("recvfrom")
def test_msg_trunc_accepted_on_stream():
    """"Before Linux 3.4, the use of MSG_TRUNC in the flags argument of recv(2) was not
    supported by UNIX domain sockets."

    recv(2) gives MSG_TRUNC no meaning for UNIX stream sockets; "supported" is read as:
    the flag is accepted.  What it does is recorded: the bytes returned and what is left.
    """
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    a.send(b"0123456789")
    buf = bytearray(4)
    n = expect.succeeds(b.recv_into, buf, 4, socket.MSG_TRUNC | socket.MSG_DONTWAIT, what="recv(MSG_TRUNC)")
    expect.observe("recv(MSG_TRUNC) return value", n)
    expect.observe("buffer after recv(MSG_TRUNC)", bytes(buf[: min(n, 4)]))
    expect.observe("left to read afterwards", b.recv(64, socket.MSG_DONTWAIT))
    expect.true("recv(MSG_TRUNC) return value", 0 < n <= 10, "1..10", n)


# ----------------------------------------------------------------- SO_SNDBUF / SO_RCVBUF

SNDBUF_CASES = [  # (value set, what getsockopt must report: the doubled value, or None)
    pytest.param(4096, 8192, id="4096"),
    pytest.param(16384, 32768, id="16384"),
    pytest.param(1, None, id="1-below-minimum"),
]


@pytest.mark.clause("unix.7/sockets-api/dgram-sndbuf-upper-limit", "unix.7/sockets-api/dgram-sndbuf-limit-formula",
                    "unix.7/sockets-api/so-sndbuf-effect")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("value,doubled", SNDBUF_CASES)
def test_dgram_size_limit_from_sndbuf(value, doubled):
    """"For datagram sockets, the SO_SNDBUF value imposes an upper limit on the size of
    outgoing datagrams. This limit is calculated as the doubled (see socket(7)) option value
    less 32 bytes used for overhead."

    The doubled value is the one getsockopt reports (socket(7): the kernel doubles the value
    set, within its minimum and maximum); for values inside the limits it is 2 * value.
    A datagram of (doubled - 32) bytes is sent; one byte more fails with EMSGSIZE.
    """
    a, b = socket.socketpair(socket.AF_UNIX, DGRAM)
    a.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, value)
    reported = a.getsockopt(SOL_SOCKET, socket.SO_SNDBUF)
    if doubled is not None:
        expect.equal(f"SO_SNDBUF reported after setting {value}", reported, doubled)
    else:
        expect.observe(f"SO_SNDBUF reported after setting {value}", reported)
    limit = reported - 32
    sent = expect.succeeds(a.send, b"x" * limit, socket.MSG_DONTWAIT, what=f"send of {limit} bytes (the limit)")
    expect.equal("bytes sent at the limit", sent, limit)
    expect.equal("datagram received at the limit", len(b.recv(limit + 64)), limit)
    expect.errno("EMSGSIZE", a.send, b"x" * (limit + 1), socket.MSG_DONTWAIT,
                 what=f"send of {limit + 1} bytes (the limit + 1)")


@pytest.mark.clause("unix.7/sockets-api/so-sndbuf-effect")
@pytest.mark.fault("sendto")
def test_stream_sndbuf_bounds_queued_bytes():
    """"The SO_SNDBUF socket option does have an effect for UNIX domain sockets"

    A nonblocking stream sender with SO_SNDBUF 4096 queues fewer bytes before EAGAIN than
    one with SO_SNDBUF 65536 (the receiver reads nothing in either case).
    """
    queued = {}
    for value in (4096, 65536):
        a, b = socket.socketpair(socket.AF_UNIX, STREAM)
        a.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, value)
        queued[value] = expect.observe(f"bytes queued with SO_SNDBUF {value}", _fill(a, 1024))
    expect.true("small SO_SNDBUF queues less", queued[4096] < queued[65536],
                f"fewer than {queued[65536]} bytes", queued[4096])


@pytest.mark.clause("unix.7/sockets-api/so-rcvbuf-no-effect")
@pytest.mark.fault("setsockopt", "sendto")
@over()
def test_rcvbuf_has_no_effect(kind):
    """"but the SO_RCVBUF option does not."

    The receiver's SO_RCVBUF is set to 1 (the kernel raises it to its minimum) or to
    262144; setsockopt succeeds either way.  A nonblocking sender (SO_SNDBUF 16384) queues
    the same number of bytes before EAGAIN in both cases, more than the tiny SO_RCVBUF.
    """
    queued, reported_rcvbuf = {}, {}
    for rcvbuf in (1, 262144):
        a, b = socket.socketpair(socket.AF_UNIX, kind)
        a.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 16384)
        b.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        reported = expect.observe(f"receiver SO_RCVBUF after setting {rcvbuf}",
                                  b.getsockopt(SOL_SOCKET, socket.SO_RCVBUF))
        queued[rcvbuf] = expect.observe(f"bytes queued with receiver SO_RCVBUF {rcvbuf}", _fill(a, 2048))
        reported_rcvbuf[rcvbuf] = reported
    expect.equal("bytes queued: tiny vs large receiver SO_RCVBUF", queued[1], queued[262144])
    tiny = reported_rcvbuf[1]
    expect.true("bytes queued exceed the tiny SO_RCVBUF", queued[1] > tiny, f"more than {tiny}", queued[1])
