"""unix(7) "Socket options": SOL_SOCKET level, SO_PASSCRED, SO_PASSSEC (the flag),
SO_PEEK_OFF and SO_PEERCRED.

The SELinux half of SO_PASSSEC (receiving SCM_SECURITY) and SO_PEERSEC are in
test_peersec.py.
"""

from __future__ import annotations

import os
import select
import socket
import struct

import pytest

from harness import cmsg, expect, privileges, rawsock
from suites.unix7.kinds import ALL, DGRAM, NAMES, SEQPACKET, STREAM, over, unix

SOL_SOCKET = socket.SOL_SOCKET
SO_PASSCRED = socket.SO_PASSCRED
SO_PASSSEC = socket.SO_PASSSEC
SO_PEERCRED = socket.SO_PEERCRED
SO_PEEK_OFF = 42                      # asm-generic/socket.h; not in Python's socket module
INT = struct.Struct("=i")
UCRED = struct.Struct("=iII")         # struct ucred: pid_t pid; uid_t uid; gid_t gid
NO_UID = 0xFFFFFFFF                   # (uid_t) -1
WAIT = 5.0                            # seconds to wait for a message from a forked peer


# --------------------------------------------------------------------------- helpers

def _get_int(sock: socket.socket, option: int) -> tuple[int, int]:
    """getsockopt(SOL_SOCKET, option) into an int: (value, returned optlen)."""
    raw, optlen = rawsock.getsockopt(sock.fileno(), SOL_SOCKET, option, INT.size)
    return INT.unpack(raw.ljust(INT.size, b"\0"))[0], optlen


def _peercred(sock: socket.socket, buflen: int = UCRED.size) -> tuple[tuple[int, int, int], int]:
    """getsockopt(SO_PEERCRED): ((pid, uid, gid), returned optlen)."""
    raw, optlen = rawsock.getsockopt(sock.fileno(), SOL_SOCKET, SO_PEERCRED, buflen)
    return UCRED.unpack(raw[: UCRED.size]), optlen


def _in_child(body) -> int:
    """Run ``body()`` in a forked process, wait for it, and return its pid.  A failure in
    the child is a deviation here, named after what failed."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            body()
            report = "ok"
        except OSError as exc:
            report = f"{exc.strerror or exc} ({expect.errno_name(exc.errno)})"
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
            report = f"{type(exc).__name__}: {exc}"
        os.write(wfd, report.encode())
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        report = f.read().decode()
    os.waitpid(pid, 0)
    if report != "ok":
        raise expect.Deviation("forked peer", "success", report)
    return pid


def _recv_creds(sock: socket.socket, bufsize: int) -> tuple[bytes, list[tuple[int, int, int]]]:
    """Wait for one message; its data and the ucreds of its SCM_CREDENTIALS messages."""
    ready, _, _ = select.select([sock], [], [], WAIT)
    expect.true("message from the sender", bool(ready), "a message", "nothing within 5 s")
    got = rawsock.recvmsg(sock.fileno(), bufsize, cmsg.cmsg_space(UCRED.size) * 2,
                          flags=socket.MSG_DONTWAIT)
    creds = [c.ucred for c in cmsg.find(cmsg.decode(got.control), SOL_SOCKET, cmsg.SCM_CREDENTIALS)]
    return got.data, creds


def _other_ids() -> tuple[int, int, int, int]:
    """Four distinct non-root ids for this xdist worker: (uid A, gid A, uid B, gid B)."""
    base = privileges.nobody_uid()
    return base, base + 100, base + 200, base + 300


# ----------------------------------------------------------------- the option level

SETTABLE = [  # (option name, number, value set, value getsockopt must return)
    ("SO_PASSCRED", SO_PASSCRED, 1, 1),
    ("SO_PASSSEC", SO_PASSSEC, 1, 1),
    ("SO_PEEK_OFF", SO_PEEK_OFF, 5, 5),
]


@pytest.mark.clause("unix.7/socket-options/sol-socket-level", "unix.7/socket-options/set-and-get")
@pytest.mark.fault("setsockopt", "getsockopt")
@pytest.mark.parametrize("name,option,value,readback", SETTABLE, ids=[c[0] for c in SETTABLE])
@over()
def test_options_set_and_get_at_sol_socket(kind, name, option, value, readback):
    """"these socket options are specified with a SOL_SOCKET type even though they are
    AF_UNIX specific. They can be set with setsockopt(2) and read with getsockopt(2) by
    specifying SOL_SOCKET as the socket family."

    Each settable AF_UNIX option is set at level SOL_SOCKET and read back at that level.
    """
    s = unix(kind)
    expect.succeeds(s.setsockopt, SOL_SOCKET, option, value, what=f"setsockopt(SOL_SOCKET, {name})")
    got, optlen = _get_int(s, option)
    expect.equal(f"getsockopt(SOL_SOCKET, {name})", got, readback)
    expect.equal(f"{name} optlen", optlen, INT.size)


# ----------------------------------------------------------------------- SO_PASSCRED

FLAG_CASES = [  # (value given to setsockopt, value getsockopt must return)
    pytest.param(1, 1, id="set-1"),
    pytest.param(0, 0, id="set-0"),
    pytest.param(5, 1, id="set-5"),
    pytest.param(-1, 1, id="set-minus-1"),
]
FLAG_OPTIONS = [
    pytest.param(SO_PASSCRED, id="SO_PASSCRED",
                 marks=pytest.mark.clause("unix.7/socket-options/so-passcred-int-flag")),
    pytest.param(SO_PASSSEC, id="SO_PASSSEC",
                 marks=pytest.mark.clause("unix.7/socket-options/so-passsec-int-flag")),
]


@pytest.mark.fault("setsockopt", "getsockopt")
@pytest.mark.parametrize("value,expected", FLAG_CASES)
@pytest.mark.parametrize("option", FLAG_OPTIONS)
@over()
def test_flag_option_is_integer_boolean(kind, option, value, expected):
    """"The value given as an argument to setsockopt(2) and returned as the result of
    getsockopt(2) is an integer boolean flag."  (SO_PASSCRED and SO_PASSSEC)

    Any nonzero int enables the option and 0 disables it; getsockopt returns an int that
    is 1 or 0.  The socket is first set to the opposite state, so each case shows a change.
    """
    s = unix(kind)
    s.setsockopt(SOL_SOCKET, option, 0 if expected else 1)
    expect.succeeds(s.setsockopt, SOL_SOCKET, option, value, what=f"setsockopt({value})")
    got, optlen = _get_int(s, option)
    expect.equal(f"getsockopt after setting {value}", got, expected)
    expect.equal("optlen (sizeof(int))", optlen, INT.size)


@pytest.mark.clause("unix.7/socket-options/so-passcred-receipt")
@pytest.mark.fault("recvmsg")
@over()
def test_passcred_credentials_in_each_message(kind):
    """"Enabling this socket option causes receipt of the credentials of the sending
    process in an SCM_CREDENTIALS ancillary message in each subsequently received message."

    The sender sends plain data (no ancillary data).  Before SO_PASSCRED is set, and
    after it is cleared again, no SCM_CREDENTIALS arrives; while it is set, every message
    carries exactly one, holding the sender's pid, uid and gid.
    """
    sender, receiver = socket.socketpair(socket.AF_UNIX, kind)
    me = (os.getpid(), os.getuid(), os.getgid())
    sender.send(b"m0")
    expect.equal("SCM_CREDENTIALS before SO_PASSCRED is set", _recv_creds(receiver, 2), (b"m0", []))
    receiver.setsockopt(SOL_SOCKET, SO_PASSCRED, 1)
    for data in (b"m1", b"m2", b"m3"):
        sender.send(data)
    for data in (b"m1", b"m2", b"m3"):
        expect.equal(f"message {data!r} with SO_PASSCRED set", _recv_creds(receiver, 2), (data, [me]))
    receiver.setsockopt(SOL_SOCKET, SO_PASSCRED, 0)
    sender.send(b"m4")
    expect.equal("SCM_CREDENTIALS after SO_PASSCRED is cleared", _recv_creds(receiver, 2), (b"m4", []))


@pytest.mark.clause("unix.7/socket-options/so-passcred-receipt")
@pytest.mark.fault("recvmsg")
@over()
def test_passcred_message_queued_before_enabling(kind):
    """"Enabling this socket option causes receipt of the credentials of the sending
    process in an SCM_CREDENTIALS ancillary message in each subsequently received message."

    Read literally: "subsequently received", so a message that was already queued when
    the option was enabled, and is received afterwards, carries the sending process's
    credentials too.
    """
    sender, receiver = socket.socketpair(socket.AF_UNIX, kind)
    sender.send(b"early")
    receiver.setsockopt(SOL_SOCKET, SO_PASSCRED, 1)
    expect.equal("message queued before SO_PASSCRED was set, received after",
                 _recv_creds(receiver, 5), (b"early", [(os.getpid(), os.getuid(), os.getgid())]))


@pytest.mark.clause("unix.7/socket-options/so-passcred-default")
@pytest.mark.fault("recvmsg")
@over()
def test_passcred_default_is_pid_and_real_ids(kind):
    """"or a default that includes the sender's PID, real user ID, and real group ID, if
    the sender did not specify SCM_CREDENTIALS ancillary data."

    A forked sender whose real, effective and saved ids all differ sends plain data; the
    receiver gets the sender's pid and its real uid and gid.
    """
    real_uid, real_gid, eff_uid, eff_gid = _other_ids()
    sender, receiver = socket.socketpair(socket.AF_UNIX, kind)
    receiver.setsockopt(SOL_SOCKET, SO_PASSCRED, 1)

    def send_as_other_ids():
        os.setgroups([])
        os.setresgid(real_gid, eff_gid, eff_gid + 1)
        os.setresuid(real_uid, eff_uid, eff_uid + 1)
        sender.send(b"x")

    pid = _in_child(send_as_other_ids)
    expect.equal("SCM_CREDENTIALS (pid, uid, gid)", _recv_creds(receiver, 1), (b"x", [(pid, real_uid, real_gid)]))


SPECIFIED = [  # who the sender is when it specifies credentials
    pytest.param("privileged", id="privileged-other-process-and-ids"),
    pytest.param("effective", id="unprivileged-own-effective-ids"),
]


@pytest.mark.clause("unix.7/socket-options/so-passcred-sender-specified")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("how", SPECIFIED)
@over()
def test_passcred_sender_specified_delivered_as_given(kind, how):
    """"The returned credentials are those specified by the sender using SCM_CREDENTIALS"

    The sender specifies credentials other than its default (pid, real uid, real gid):
    as root (CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID) another existing process and ids it
    does not have; unprivileged, its own effective ids while its real ids differ.  The
    receiver gets exactly what was specified.
    """
    sender, receiver = socket.socketpair(socket.AF_UNIX, kind)
    receiver.setsockopt(SOL_SOCKET, SO_PASSCRED, 1)
    uid_a, gid_a, uid_b, gid_b = _other_ids()
    if how == "privileged":
        for cap in ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID"):
            if not privileges.has(cap):
                expect.skip(f"{cap} is not in the effective set")
        given = (os.getppid(), uid_a, gid_a)
    else:
        os.setgroups([])
        os.setresgid(gid_a, gid_b, gid_b)
        os.setresuid(uid_a, uid_b, uid_b)
        given = (os.getpid(), uid_b, gid_b)
    control = cmsg.encode([cmsg.credentials(*given)])
    expect.succeeds(rawsock.sendmsg, sender.fileno(), b"x", control, what="sendmsg(SCM_CREDENTIALS)")
    expect.equal("received SCM_CREDENTIALS", _recv_creds(receiver, 1), (b"x", [given]))


AUTOBIND_CASES = [  # (id, kind, how the socket gets going: connect or sendto)
    pytest.param(STREAM, "connect", id="stream-connect"),
    pytest.param(SEQPACKET, "connect", id="seqpacket-connect"),
    pytest.param(DGRAM, "connect", id="dgram-connect"),
    pytest.param(DGRAM, "sendto", id="dgram-sendto"),
]


@pytest.mark.clause("unix.7/socket-options/so-passcred-autobind")
@pytest.mark.fault("getsockname")
@pytest.mark.parametrize("kind,how", AUTOBIND_CASES)
def test_passcred_autobinds_unconnected_socket(kind, how):
    """"When this option is set and the socket is not yet connected, a unique name in the
    abstract namespace will be generated automatically."

    The page does not say at which call the name appears.  Read as: an unbound,
    unconnected socket with SO_PASSCRED set has an abstract autobind name (a null byte and
    5 hex digits, addrlen 8) once it connects or sends.  The name right after setsockopt
    is recorded, not judged.
    """
    target = b"\0sockspec-passcred-target"
    server = unix(kind)
    server.bind(target)
    if kind != DGRAM:
        server.listen(1)
    s = unix(kind)
    s.setsockopt(SOL_SOCKET, SO_PASSCRED, 1)
    early = rawsock.getsockname(s.fileno())
    expect.observe("name after setsockopt alone", f"{early.kind} {early.raw!r}")
    if how == "connect":
        s.connect(target)
    else:
        s.sendto(b"x", target)
    name = rawsock.getsockname(s.fileno())
    expect.equal(f"address kind after {how}", name.kind, "abstract")
    expect.equal(f"addrlen after {how}", name.addrlen, 2 + 1 + 5)
    expect.true("autobind name is 5 bytes of [0-9a-f]",
                len(name.abstract_name) == 5 and all(chr(b) in "0123456789abcdef" for b in name.abstract_name),
                "5 bytes of [0-9a-f]", name.abstract_name)


# ----------------------------------------------------------------------- SO_PEEK_OFF

@pytest.mark.clause("unix.7/socket-options/so-peek-off")
@pytest.mark.fault("recvmsg")
def test_peek_off_stream_peeks_from_offset_and_advances():
    """"SO_PEEK_OFF See socket(7)."

    As socket(7) describes: new sockets have offset -1; with offset >= 0 a MSG_PEEK read
    starts at the offset and advances it by the bytes peeked; a normal read lowers it by
    the bytes removed, so the next peek continues where it would have.
    """
    a, b = socket.socketpair(socket.AF_UNIX, STREAM)
    expect.equal("initial SO_PEEK_OFF", _get_int(b, SO_PEEK_OFF)[0], -1)
    a.send(b"abcdefgh")
    a.send(b"ijkl")
    b.setsockopt(SOL_SOCKET, SO_PEEK_OFF, 0)
    fd = b.fileno()
    expect.equal("first peek", rawsock.recvmsg(fd, 3, flags=socket.MSG_PEEK).data, b"abc")
    expect.equal("offset after first peek", _get_int(b, SO_PEEK_OFF)[0], 3)
    expect.equal("second peek", rawsock.recvmsg(fd, 3, flags=socket.MSG_PEEK).data, b"def")
    expect.equal("offset after second peek", _get_int(b, SO_PEEK_OFF)[0], 6)
    expect.equal("normal read", rawsock.recvmsg(fd, 2).data, b"ab")
    expect.equal("offset after reading 2 bytes", _get_int(b, SO_PEEK_OFF)[0], 4)
    expect.equal("peek after the read", rawsock.recvmsg(fd, 3, flags=socket.MSG_PEEK).data, b"ghi")
    expect.equal("offset after third peek", _get_int(b, SO_PEEK_OFF)[0], 7)


@pytest.mark.clause("unix.7/socket-options/so-peek-off")
@pytest.mark.fault("recvmsg")
@over(DGRAM, SEQPACKET)
def test_peek_off_messages_peek_from_offset_and_advance(kind):
    """"SO_PEEK_OFF See socket(7)."

    On message sockets the offset counts bytes across the queued messages: peeking a
    whole message moves it to the next one; a peek at an offset inside a message returns
    the message from that byte.  Whether MSG_TRUNC marks such a peek (socket(7) says it
    does) is recorded, not judged: that sentence is socket(7)'s, not this page's.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    expect.equal("initial SO_PEEK_OFF", _get_int(b, SO_PEEK_OFF)[0], -1)
    for data in (b"abcdefgh", b"ijkl", b"mn"):
        a.send(data)
    fd = b.fileno()
    b.setsockopt(SOL_SOCKET, SO_PEEK_OFF, 0)
    expect.equal("peek at offset 0", rawsock.recvmsg(fd, 64, flags=socket.MSG_PEEK).data, b"abcdefgh")
    expect.equal("offset after peeking the first message", _get_int(b, SO_PEEK_OFF)[0], 8)
    expect.equal("peek at offset 8", rawsock.recvmsg(fd, 64, flags=socket.MSG_PEEK).data, b"ijkl")
    expect.equal("offset after peeking the second message", _get_int(b, SO_PEEK_OFF)[0], 12)
    b.setsockopt(SOL_SOCKET, SO_PEEK_OFF, 10)
    mid = rawsock.recvmsg(fd, 64, flags=socket.MSG_PEEK)
    expect.equal("peek at offset 10 (inside the second message)", mid.data, b"kl")
    expect.observe("MSG_TRUNC on the peek inside a message", bool(mid.flags & socket.MSG_TRUNC))
    expect.equal("offset after peeking 2 bytes", _get_int(b, SO_PEEK_OFF)[0], 12)
    expect.equal("normal read", rawsock.recvmsg(fd, 64).data, b"abcdefgh")
    expect.equal("offset after reading 8 bytes", _get_int(b, SO_PEEK_OFF)[0], 4)
    expect.equal("peek after the read", rawsock.recvmsg(fd, 64, flags=socket.MSG_PEEK).data, b"mn")


# ---------------------------------------------------------------------- SO_PEERCRED

@pytest.mark.clause("unix.7/socket-options/so-peercred-returns-peer", "unix.7/socket-options/so-peercred-ucred")
@pytest.mark.fault("getsockopt")
def test_peercred_of_connected_stream_is_connecting_process():
    """"This read-only socket option returns the credentials of the peer process
    connected to this socket."  "The argument to getsockopt(2) is a pointer to a ucred
    structure"

    A forked process connects to a listening stream socket; the accepted socket's
    SO_PEERCRED is that process's pid and effective uid/gid, in a 12-byte struct ucred.
    """
    server = unix(STREAM)
    server.bind("peercred.sock")
    server.listen(1)
    pid = _in_child(lambda: unix(STREAM).connect("peercred.sock"))
    conn, _ = server.accept()
    cred, optlen = _peercred(conn)
    expect.equal("SO_PEERCRED (pid, uid, gid)", cred, (pid, os.geteuid(), os.getegid()))
    expect.equal("optlen (sizeof(struct ucred))", optlen, UCRED.size)
    cred, optlen = _peercred(conn, 64)
    expect.equal("optlen with a 64-byte buffer", optlen, UCRED.size)


@pytest.mark.clause("unix.7/socket-options/so-peercred-returns-peer", "unix.7/socket-options/so-peercred-ucred")
@pytest.mark.fault("getsockopt")
@over(STREAM, DGRAM)
def test_peercred_of_socketpair_is_creator(kind):
    """"This read-only socket option returns the credentials of the peer process
    connected to this socket."  (socket pairs: both ends were created by this process)"""
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    me = (os.getpid(), os.geteuid(), os.getegid())
    for end, sock in (("first", a), ("second", b)):
        cred, optlen = _peercred(sock)
        expect.equal(f"SO_PEERCRED of the {end} end", cred, me)
        expect.equal(f"optlen of the {end} end", optlen, UCRED.size)


READ_ONLY_ERRNOS = ("ENOPROTOOPT", "EINVAL", "EPERM", "EACCES", "EOPNOTSUPP")


@pytest.mark.clause("unix.7/socket-options/so-peercred-returns-peer")
@pytest.mark.fault("setsockopt")
@over()
def test_peercred_is_read_only(kind):
    """"This read-only socket option returns the credentials of the peer process"

    setsockopt(SO_PEERCRED) with a struct ucred is refused.  The page names no errno; any
    refusal errno is accepted.
    """
    a, _ = socket.socketpair(socket.AF_UNIX, kind)
    expect.errno(READ_ONLY_ERRNOS, a.setsockopt, SOL_SOCKET, SO_PEERCRED,
                 UCRED.pack(1, 0, 0), what="setsockopt(SO_PEERCRED)")


@pytest.mark.clause("unix.7/socket-options/so-peercred-time-of-call")
@pytest.mark.fault("getsockopt")
def test_peercred_are_credentials_at_listen_connect_socketpair():
    """"The returned credentials are those that were in effect at the time of the call to
    connect(2), listen(2), or socketpair(2)."

    listen() runs as ids L, connect() and socketpair() as ids C, and SO_PEERCRED is read
    as root afterwards: the connecting side sees L, the accepted side and the pair see C.
    """
    uid_l, gid_l, uid_c, gid_c = _other_ids()
    keep = ["CAP_SETUID", "CAP_SETGID"]
    name = b"\0sockspec-peercred-time"
    server = unix(STREAM)
    server.bind(name)
    privileges.become(uid_l, gid_l, keep=keep)
    server.listen(1)
    privileges.become(uid_c, gid_c, keep=keep)
    client = unix(STREAM)
    client.connect(name)
    pa, pb = socket.socketpair(socket.AF_UNIX, STREAM)
    privileges.become(0, 0, keep=keep)
    conn, _ = server.accept()
    pid = os.getpid()
    expect.equal("connecting side: the listener's ids at listen()", _peercred(client)[0], (pid, uid_l, gid_l))
    expect.equal("accepted side: the connector's ids at connect()", _peercred(conn)[0], (pid, uid_c, gid_c))
    expect.equal("socket pair: the ids at socketpair()", _peercred(pa)[0], (pid, uid_c, gid_c))


NOT_POSSIBLE_ERRNOS = ("ENOTCONN", "EINVAL", "ENOPROTOOPT", "EOPNOTSUPP")
NOT_POSSIBLE_CRED = (0, NO_UID, NO_UID)


def _unconnected(kind):
    return unix(kind)


def _connected_dgram(_kind):
    server = unix(DGRAM)
    server.bind(b"\0sockspec-peercred-dgram")
    client = unix(DGRAM)
    client.connect(b"\0sockspec-peercred-dgram")
    return client


NOT_POSSIBLE_CASES = [pytest.param(_unconnected, k, id=f"unconnected-{NAMES[k]}") for k in ALL] + [
    pytest.param(_connected_dgram, DGRAM, id="connected-dgram-not-socketpair"),
]


@pytest.mark.clause("unix.7/socket-options/so-peercred-connected-only")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("make,kind", NOT_POSSIBLE_CASES)
def test_peercred_not_possible_elsewhere(make, kind):
    """"The use of this option is possible only for connected AF_UNIX stream sockets and
    for AF_UNIX stream and datagram socket pairs created using socketpair(2)."

    On an unconnected socket and on a datagram socket connected with connect(2), SO_PEERCRED
    yields no credentials: either getsockopt fails, or it returns the placeholder
    pid 0, uid -1, gid -1 (the catalogue's reading of "not possible").
    """
    sock = make(kind)
    try:
        cred, _ = _peercred(sock)
    except OSError as exc:
        got = expect.errno_name(exc.errno)
        expect.observe("getsockopt(SO_PEERCRED)", got)
        expect.true("getsockopt(SO_PEERCRED) error", got in NOT_POSSIBLE_ERRNOS,
                    " or ".join(NOT_POSSIBLE_ERRNOS) + " (or success with no credentials)", got)
        return
    expect.equal("SO_PEERCRED (pid, uid, gid)", cred, NOT_POSSIBLE_CRED)
