"""unix(7) "Ioctls": SIOCINQ (and its synonym FIONREAD) on stream, datagram and listening
sockets."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios

import pytest

from harness import expect, rawsock
from suites.unix7.kinds import CONNECTION_ORIENTED, DGRAM, STREAM, over, unix

SIOCINQ = 0x541B              # <linux/sockios.h>: #define SIOCINQ FIONREAD
FIONREAD = termios.FIONREAD   # <sys/ioctl.h>, as the C library defines it


def _inq(sock: socket.socket, request: int = SIOCINQ) -> int:
    return rawsock.ioctl_int(sock.fileno(), request)


@pytest.mark.clause("unix.7/ioctls/int-value")
@pytest.mark.fault("ioctl")
@over()
def test_siocinq_writes_an_int_through_the_pointer(kind):
    """"The following ioctl(2) calls return information in value. The correct syntax is:
    int value; error = ioctl(unix_socket, ioctl_type, &value);"

    With 7 bytes queued, SIOCINQ into an 8-byte buffer filled with 0xff writes exactly
    sizeof(int) bytes, the native-endian int 7, and leaves the bytes after it alone.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    a.send(b"x" * 7)
    buf = bytearray(b"\xff" * 8)
    ret = expect.succeeds(fcntl.ioctl, b.fileno(), SIOCINQ, buf, True, what="ioctl(SIOCINQ, &value)")
    expect.equal("ioctl return value", ret, 0)
    expect.equal("value (int)", struct.unpack_from("=i", buf)[0], 7)
    expect.equal("bytes after the int", bytes(buf[4:]), b"\xff" * 4)


@pytest.mark.clause("unix.7/ioctls/siocinq-stream")
@pytest.mark.fault("ioctl")
def test_siocinq_stream_counts_unread_bytes():
    """"For SOCK_STREAM sockets, this call returns the number of unread bytes in the
    receive buffer."

    0 with nothing queued, 7 after one write of 7, 12 after another of 5 (bytes of several
    writes add up), 9 after reading 3.
    """
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    expect.equal("SIOCINQ with nothing queued", _inq(b), 0)
    a.send(b"x" * 7)
    expect.equal("SIOCINQ after 7 bytes", _inq(b), 7)
    a.send(b"y" * 5)
    expect.equal("SIOCINQ after 7 + 5 bytes", _inq(b), 12)
    b.recv(3)
    expect.equal("SIOCINQ after reading 3", _inq(b), 9)


@pytest.mark.clause("unix.7/ioctls/siocinq-listen-einval")
@pytest.mark.fault("ioctl")
@pytest.mark.parametrize("ioctl_type", [SIOCINQ, FIONREAD], ids=["SIOCINQ", "FIONREAD"])
@over(*CONNECTION_ORIENTED)
def test_siocinq_on_listening_socket_einval(kind, ioctl_type):
    """"The socket must not be in LISTEN state, otherwise an error (EINVAL) is returned.\""""
    s = unix(kind)
    s.bind(b"\0sockspec-inq-listen")
    s.listen(1)
    expect.errno("EINVAL", _inq, s, ioctl_type, what="ioctl(SIOCINQ) on a listening socket")


@pytest.mark.clause("unix.7/ioctls/fionread-synonym")
@pytest.mark.fault("ioctl")
@over()
def test_fionread_is_siocinq(kind):
    """"SIOCINQ is defined in <linux/sockios.h>. Alternatively, you can use the synonymous
    FIONREAD, defined in <sys/ioctl.h>."

    The two request numbers are the same (0x541B) and give the same value on an empty and
    on a non-empty receive queue.
    """
    expect.equal("FIONREAD", FIONREAD, SIOCINQ)
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    for label, data in (("empty queue", b""), ("after 6 bytes", b"abcdef")):
        if data:
            a.send(data)
        expect.equal(f"FIONREAD vs SIOCINQ ({label})", _inq(b, FIONREAD), _inq(b, SIOCINQ))
    expect.equal("FIONREAD after 6 bytes", _inq(b, FIONREAD), 6)


@pytest.mark.clause("unix.7/ioctls/siocinq-dgram-as-udp")
@pytest.mark.fault("ioctl")
def test_siocinq_dgram_is_next_datagram_size():
    """"For SOCK_DGRAM sockets, the returned value is the same as for Internet domain
    datagram sockets; see udp(7)."

    udp(7): "Returns the size of the next pending datagram in the integer in bytes, or 0
    when no datagram is pending."  Datagrams of 10 then 20 bytes: 10, then 20 after one is
    read, then 0.
    """
    a, b = socket.socketpair(socket.AF_UNIX, DGRAM)
    expect.equal("SIOCINQ with no datagram pending", _inq(b), 0)
    a.send(b"x" * 10)
    a.send(b"y" * 20)
    expect.equal("SIOCINQ with 10- and 20-byte datagrams queued", _inq(b), 10)
    b.recv(64)
    expect.equal("SIOCINQ after reading the first", _inq(b), 20)
    b.recv(64)
    expect.equal("SIOCINQ after reading both", _inq(b), 0)
