"""unix(7) ancillary messages in general: fds and credentials in one message, one item of
each type, the data byte a stream needs, the empty datagram that needs none, and the
barrier ancillary data forms in a stream.

Messages are built with harness.cmsg and go through harness.rawsock.sendmsg/recvmsg.  A
passed descriptor is identified on arrival by the file it refers to (st_dev, st_ino).
"""

from __future__ import annotations

import os
import select
import socket

import pytest

from harness import cmsg, expect, privileges, rawsock
from suites.unix7.kinds import DGRAM, STREAM, over


def _file(name: str) -> int:
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, name.encode())
    return fd


def _files_of(received: rawsock.Received) -> list[str]:
    """The names (in this directory) of the files the received SCM_RIGHTS fds refer to."""
    names = {(os.stat(n).st_dev, os.stat(n).st_ino): n for n in os.listdir(".")}
    out = []
    for item in cmsg.find(cmsg.decode(received.control), cmsg.SOL_SOCKET, cmsg.SCM_RIGHTS):
        for fd in item.fds:
            st = os.fstat(fd)
            out.append(names.get((st.st_dev, st.st_ino), f"fd {fd}: not a file sent"))
    return out


def _send(sock: socket.socket, data: bytes, *items: cmsg.Cmsg) -> int:
    return expect.succeeds(rawsock.sendmsg, sock.fileno(), data, cmsg.encode(items), what="sendmsg")


def _recv(sock: socket.socket, bufsize: int = 20, controllen: int = 256) -> rawsock.Received:
    """One recvmsg once ``sock`` is readable (1 s at most), never blocking."""
    select.select([sock], [], [], 1.0)
    return expect.succeeds(rawsock.recvmsg, sock.fileno(), bufsize, controllen, socket.MSG_DONTWAIT,
                           what="recvmsg")


def _nothing_left(sock: socket.socket) -> None:
    expect.errno("EAGAIN", sock.recv, 64, socket.MSG_DONTWAIT, what="recv when all was read")


@pytest.mark.clause(
    "unix.7/description/ancillary-fds-and-credentials",
    "unix.7/ancillary/sendmsg-recvmsg",
    "unix.7/ancillary/sol-socket-level",
)
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_fds_and_credentials_travel_as_sol_socket_ancillary_data(kind):
    """"UNIX domain sockets support passing file descriptors or process credentials to
    other processes using ancillary data."  "Ancillary data is sent and received using
    sendmsg(2) and recvmsg(2) ... specified with a SOL_SOCKET type even though they are
    AF_UNIX specific.  To send them, set the cmsg_level field of the struct cmsghdr to
    SOL_SOCKET and the cmsg_type field to the type."

    Another process (forked) sends one message: a byte, SCM_RIGHTS (a file it opened
    itself) and SCM_CREDENTIALS (its own pid, uid, gid), then exits; the receiver has
    SO_PASSCRED.  recvmsg must return both, each at cmsg_level SOL_SOCKET, the credentials
    as sent and an fd referring to that file.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    os.close(_file("passed"))
    sender = os.fork()
    if sender == 0:
        code = 0
        try:
            fd = os.open("passed", os.O_RDONLY)
            cred = cmsg.credentials(os.getpid(), os.getuid(), os.getgid())
            rawsock.sendmsg(a.fileno(), b"x", cmsg.encode([cmsg.rights(fd), cred]))
        except OSError as exc:
            code = exc.errno or 1
        finally:
            os._exit(code)
    _, status = os.waitpid(sender, 0)
    code = os.waitstatus_to_exitcode(status)
    expect.equal("sendmsg in the sending process", expect.errno_name(code) if code else "success",
                 "success")
    cred = (sender, os.getuid(), os.getgid())
    r = _recv(b)
    items = cmsg.decode(r.control)
    expect.equal("data", r.data, b"x")
    expect.equal("control messages (level, type)", sorted((c.level, c.type) for c in items),
                 [(socket.SOL_SOCKET, cmsg.SCM_RIGHTS), (socket.SOL_SOCKET, cmsg.SCM_CREDENTIALS)])
    expect.equal("credentials", cmsg.find(items, socket.SOL_SOCKET, cmsg.SCM_CREDENTIALS)[0].ucred, cred)
    expect.equal("files the received fds refer to", _files_of(r), ["passed"])


@pytest.mark.clause("unix.7/ancillary/one-item-per-type")
@pytest.mark.fault("sendmsg", "recvmsg")
@pytest.mark.parametrize("typ", [cmsg.SCM_RIGHTS, cmsg.SCM_CREDENTIALS], ids=["rights", "credentials"])
@over()
def test_one_item_of_each_type_per_message(kind, typ):
    """"When sending ancillary data with sendmsg(2), only one item of each of the above
    types may be included in the sent message."

    The page states a rule for senders and not what the kernel does with a message that
    breaks it.  Reading chosen (as a kernel QA engineer would): a message with two items
    of one type is not carried as such: sendmsg fails with EINVAL (the errno sendmsg gives
    for invalid control data), or, if it is accepted, the receiver gets the contents of
    one item only.  Two SCM_RIGHTS items (file A, then file B): not both A and B may
    arrive.  Two SCM_CREDENTIALS items (uid/gid 0, then 1; the sender is root): at most
    one SCM_CREDENTIALS, equal to one of those sent.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    pid = os.getpid()
    if typ == cmsg.SCM_RIGHTS:
        items = [cmsg.rights(_file("A")), cmsg.rights(_file("B"))]
    else:
        if not (privileges.has("CAP_SETUID") and privileges.has("CAP_SETGID")):
            expect.skip("two distinct SCM_CREDENTIALS items (uid/gid 0 and 1) need CAP_SETUID "
                        "and CAP_SETGID, which this process does not have")
        b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        items = [cmsg.credentials(pid, 0, 0), cmsg.credentials(pid, 1, 1)]
    try:
        rawsock.sendmsg(a.fileno(), b"x", cmsg.encode(items))
    except OSError as exc:
        expect.equal("sendmsg errno", expect.errno_name(exc.errno), "EINVAL")
        return
    expect.observe("sendmsg", "accepted a message with two items of one type")
    r = _recv(b)
    if typ == cmsg.SCM_RIGHTS:
        files = expect.observe("files delivered", _files_of(r))
        expect.true("files delivered from the two SCM_RIGHTS items", files in (["A"], ["B"], []),
                    expected="the fds of one item only (or sendmsg failing with EINVAL)",
                    observed=f"{files} in {len(cmsg.decode(r.control))} control message(s)")
    else:
        creds = [c.ucred for c in cmsg.find(cmsg.decode(r.control), socket.SOL_SOCKET, cmsg.SCM_CREDENTIALS)]
        expect.observe("credentials delivered", creds)
        expect.true("credentials delivered from the two SCM_CREDENTIALS items",
                    creds in ([(pid, 0, 0)], [(pid, 1, 1)]),
                    expected="one of the two items (or sendmsg failing with EINVAL)", observed=creds)


@pytest.mark.clause("unix.7/ancillary/stream-one-byte-required",
                    "unix.7/notes/stream-one-byte-nonancillary")
@pytest.mark.fault("sendmsg", "recvmsg")
def test_stream_ancillary_data_needs_a_byte_of_real_data():
    """"At least one byte of real data should be sent when sending ancillary data.  On
    Linux, this is required to successfully send ancillary data over a UNIX domain stream
    socket."  NOTES: "To pass file descriptors or credentials over a SOCK_STREAM socket,
    you must send or receive at least one byte of nonancillary data in the same sendmsg(2)
    or recvmsg(2) call."

    On a stream socketpair: sendmsg of SCM_RIGHTS(file A) with no data is not a successful
    send of ancillary data (whether sendmsg returns 0 or fails is recorded); then sendmsg
    of one byte with SCM_RIGHTS(file B) is.  The receiver must get the byte with file B
    only, and nothing else.  The receive side of the NOTES sentence (a recvmsg with a
    zero-length buffer while a byte and a fd are pending) is recorded, not asserted: the
    page states what an application must do, not what the kernel does otherwise.
    """
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    try:
        expect.observe("zero-length sendmsg with SCM_RIGHTS returned",
                       rawsock.sendmsg(a.fileno(), b"", cmsg.encode([cmsg.rights(_file("A"))])))
    except OSError as exc:
        expect.observe("zero-length sendmsg with SCM_RIGHTS failed", expect.errno_name(exc.errno))
    expect.equal("one-byte sendmsg with SCM_RIGHTS returned", _send(a, b"x", cmsg.rights(_file("B"))), 1)
    r = _recv(b)
    expect.equal("data", r.data, b"x")
    expect.equal("files the received fds refer to", _files_of(r), ["B"])
    _nothing_left(b)

    _send(a, b"y", cmsg.rights(_file("C")))
    r0 = _recv(b, bufsize=0)
    expect.observe("zero-length recvmsg: (bytes, files received)", (r0.nbytes, _files_of(r0)))


@pytest.mark.clause("unix.7/ancillary/dgram-no-data-needed")
@pytest.mark.fault("sendmsg", "recvmsg")
def test_dgram_ancillary_data_needs_no_real_data():
    """"When sending ancillary data over a UNIX domain datagram socket, it is not necessary
    on Linux to send any accompanying real data."

    sendmsg with no data at all (no iovec) and SCM_RIGHTS(file) on a datagram socketpair
    returns 0, and the receiver gets a zero-length datagram carrying the fd.
    """
    a, b = socket.socketpair(socket.AF_UNIX, DGRAM)
    expect.equal("sendmsg return", _send(a, b"", cmsg.rights(_file("passed"))), 0)
    r = _recv(b)
    expect.equal("datagram length", r.nbytes, 0)
    expect.equal("files the received fds refer to", _files_of(r), ["passed"])
    _nothing_left(b)


@pytest.mark.clause("unix.7/ancillary/stream-barrier-example", "unix.7/ancillary/stream-barrier")
@pytest.mark.fault("sendmsg", "recvmsg")
def test_stream_barrier_example():
    """"suppose that the sender transmits as follows: (1) sendmsg(2) of four bytes, with no
    ancillary data.  (2) sendmsg(2) of one byte, with ancillary data.  (3) sendmsg(2) of
    four bytes, with no ancillary data.  Suppose that the receiver now performs recvmsg(2)
    calls each with a buffer size of 20 bytes.  The first call will receive five bytes of
    data, along with the ancillary data sent by the second sendmsg(2) call.  The next call
    will receive the remaining four bytes of data."

    Exactly that on a stream socketpair, with SCM_RIGHTS as the ancillary data; all three
    sendmsg calls return before the first recvmsg.
    """
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    _send(a, b"abcd")
    _send(a, b"e", cmsg.rights(_file("passed")))
    _send(a, b"fghi")
    first = _recv(b, 20)
    expect.equal("first recvmsg: data", first.data, b"abcde")
    expect.equal("first recvmsg: files the received fds refer to", _files_of(first), ["passed"])
    second = _recv(b, 20)
    expect.equal("second recvmsg: data", second.data, b"fghi")
    expect.equal("second recvmsg: control messages", cmsg.decode(second.control), [])
    _nothing_left(b)


@pytest.mark.clause("unix.7/ancillary/stream-barrier")
@pytest.mark.fault("sendmsg", "recvmsg")
def test_stream_ancillary_data_is_a_barrier():
    """"When receiving from a stream socket, ancillary data forms a kind of barrier for the
    received data."

    Read as in the page's example: a recvmsg may take the data queued before an ancillary
    message together with that message's byte, but stops after it.  Sent: "ab"+fd A, "cd",
    "ef"+fd B, "gh".  Reads of 20 bytes: "ab" with A; "cdef" with B; "gh" with nothing.
    The two fds never arrive in one recvmsg.
    """
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    _send(a, b"ab", cmsg.rights(_file("A")))
    _send(a, b"cd")
    _send(a, b"ef", cmsg.rights(_file("B")))
    _send(a, b"gh")
    reads = []
    for _ in range(3):
        r = _recv(b, 20)
        reads.append((r.data, _files_of(r)))
    expect.equal("recvmsg results (data, files)", reads,
                 [(b"ab", ["A"]), (b"cdef", ["B"]), (b"gh", [])])
    _nothing_left(b)
