"""unix(7) SCM_RIGHTS: passing open file descriptions, the int array, what the receiver
gets when its control buffer or RLIMIT_NOFILE is too small, SCM_MAX_FD, and EBADF.

Every message is built with harness.cmsg and sent/received with harness.rawsock, so the
control buffers have exact sizes.  Descriptors whose fate the test must see are pipe
write ends: once the sender has closed its own copies, the pipe's read end reports end of
file exactly when no process holds a write end any more, i.e. when the receiving process
closed (or never got) the passed descriptor.
"""

from __future__ import annotations

import fcntl
import os
import resource
import socket

import pytest

from harness import cmsg, expect, kernel, privileges, rawsock
from suites.unix7.kinds import over

SCM_MAX_FD = 253 if kernel.at_least(2, 6, 38) else 255   # the page: 255 before 2.6.38


def _send_fds(sock: socket.socket, fds, data: bytes = b"x") -> int:
    return rawsock.sendmsg(sock.fileno(), data, cmsg.encode([cmsg.rights(*fds)]))


def _recv(sock: socket.socket, controllen: int) -> rawsock.Received:
    """One nonblocking recvmsg with a 16-byte data buffer and ``controllen`` bytes of
    control buffer (0: msg_control NULL)."""
    return expect.succeeds(rawsock.recvmsg, sock.fileno(), 16, controllen, socket.MSG_DONTWAIT,
                           what="recvmsg")


def _rights(received: rawsock.Received) -> list[cmsg.Cmsg]:
    return cmsg.find(cmsg.decode(received.control), cmsg.SOL_SOCKET, cmsg.SCM_RIGHTS)


def _received_fds(received: rawsock.Received) -> list[int]:
    return [fd for item in _rights(received) for fd in item.fds]


def _file_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _files(n: int) -> list[int]:
    """``n`` regular files in the test's directory, each holding different bytes."""
    fds = []
    for i in range(n):
        fd = os.open(f"file{i}", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f"file {i} contents".encode())
        fds.append(fd)
    return fds


def _pipes(n: int) -> list[tuple[int, int]]:
    """``n`` pipes as (read end, write end); the read ends are nonblocking."""
    out = []
    for _ in range(n):
        r, w = os.pipe()
        os.set_blocking(r, False)
        out.append((r, w))
    return out


def _writer_open(read_end: int) -> bool:
    """Whether some process still holds a write end of this (empty) pipe."""
    try:
        return os.read(read_end, 1) != b""
    except BlockingIOError:
        return True


def _open_fds() -> set[int]:
    """The descriptors open in this process (the listing's own descriptor left out)."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:       # the directory descriptor listdir used, now closed
            continue
        out.add(int(name))
    return out


def _ctrunc(received: rawsock.Received) -> bool:
    return bool(received.flags & socket.MSG_CTRUNC)


def _three_write_ends_in_flight(kind):
    """Three pipes' write ends sent in one SCM_RIGHTS message and closed by the sender:
    (both sockets -- the sender must stay open --, the pipes, the open fds before receiving)."""
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    pipes = _pipes(3)
    expect.succeeds(_send_fds, a, [w for _, w in pipes], what="sendmsg")
    for _, w in pipes:
        os.close(w)
    return a, b, pipes, _open_fds()


@pytest.mark.clause(
    "unix.7/description/ancillary-fds-and-credentials",
    "unix.7/ancillary/sendmsg-recvmsg",
    "unix.7/ancillary/sol-socket-level",
    "unix.7/ancillary/scm-rights-send-receive",
    "unix.7/ancillary/scm-rights-int-array",
)
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_scm_rights_passes_an_int_array_of_fds(kind):
    """"UNIX domain sockets support passing file descriptors ... using ancillary data."
    "Ancillary data is sent and received using sendmsg(2) and recvmsg(2)." "To send them,
    set the cmsg_level field of the struct cmsghdr to SOL_SOCKET and the cmsg_type field
    to the type."  SCM_RIGHTS: "Send or receive a set of open file descriptors from another
    process.  The data portion contains an integer array of the file descriptors."

    Three files go in one SCM_RIGHTS message; the receiver's buffer has exactly
    CMSG_SPACE(3 * sizeof(int)).  It must get one SOL_SOCKET/SCM_RIGHTS message whose data
    is three ints (cmsg_len == CMSG_LEN(12)), naming the same three files in order.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    sent = _files(3)
    expect.equal("sendmsg return", expect.succeeds(_send_fds, a, sent, what="sendmsg"), 1)
    r = _recv(b, cmsg.cmsg_space(12))
    expect.equal("data", r.data, b"x")
    expect.equal("MSG_CTRUNC set", _ctrunc(r), False)
    items = cmsg.decode(r.control)
    expect.equal("control messages (level, type, data bytes, truncated)",
                 [(c.level, c.type, len(c.data), c.truncated) for c in items],
                 [(socket.SOL_SOCKET, cmsg.SCM_RIGHTS, 12, False)])
    expect.equal("msg_controllen", len(r.control), cmsg.cmsg_space(12))
    got = items[0].fds
    expect.observe("sent fd numbers", sent)
    expect.equal("files the received fds refer to (st_dev, st_ino)",
                 [_file_id(fd) for fd in got], [_file_id(fd) for fd in sent])


@pytest.mark.clause("unix.7/ancillary/scm-rights-open-file-description")
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_received_fd_shares_the_open_file_description(kind):
    """"what is being passed is a reference to an open file description (see open(2)), and
    in the receiving process it is likely that a different file descriptor number will be
    used."

    Checked: the received descriptor and the sender's share the file offset (an lseek on
    either is seen on the other) and the file status flags (O_APPEND set with F_SETFL on
    the received one shows on the sender's).  The numbers are recorded, not compared: the
    page says only "likely".
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    (mine,) = _files(1)
    os.lseek(mine, 3, os.SEEK_SET)
    expect.succeeds(_send_fds, a, [mine], what="sendmsg")
    r = _recv(b, cmsg.cmsg_space(4))
    got = _received_fds(r)
    expect.equal("received fds", len(got), 1)
    theirs = got[0]
    expect.observe("fd numbers (sent, received)", (mine, theirs))
    expect.equal("same file (st_dev, st_ino)", _file_id(theirs), _file_id(mine))
    expect.equal("offset seen by the receiver after the sender's lseek to 3",
                 os.lseek(theirs, 0, os.SEEK_CUR), 3)
    os.lseek(theirs, 7, os.SEEK_SET)
    expect.equal("offset seen by the sender after the receiver's lseek to 7",
                 os.lseek(mine, 0, os.SEEK_CUR), 7)
    fcntl.fcntl(theirs, fcntl.F_SETFL, fcntl.fcntl(theirs, fcntl.F_GETFL) | os.O_APPEND)
    expect.equal("O_APPEND seen by the sender after the receiver's F_SETFL",
                 bool(fcntl.fcntl(mine, fcntl.F_GETFL) & os.O_APPEND), True)


@pytest.mark.clause("unix.7/ancillary/scm-rights-dup-semantics")
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_received_fd_behaves_like_a_dup(kind):
    """"Semantically, this operation is equivalent to duplicating (dup(2)) a file
    descriptor into the file descriptor table of another process."

    Like dup(2): the new descriptor's close-on-exec flag is off even though the sender's
    has it on (recvmsg is called without MSG_CMSG_CLOEXEC), and it stays usable after the
    sender closes its own descriptor: the passed pipe write end keeps the pipe open and
    carries bytes to the read end.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    ((rd, wr),) = _pipes(1)
    fcntl.fcntl(wr, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
    expect.succeeds(_send_fds, a, [wr], what="sendmsg")
    os.close(wr)
    r = _recv(b, cmsg.cmsg_space(4))
    got = _received_fds(r)
    expect.equal("received fds", len(got), 1)
    expect.equal("FD_CLOEXEC on the received fd", fcntl.fcntl(got[0], fcntl.F_GETFD) & fcntl.FD_CLOEXEC, 0)
    expect.equal("pipe still has a writer after the sender closed its fd", _writer_open(rd), True)
    os.write(got[0], b"dup")
    expect.equal("bytes written through the received fd", os.read(rd, 16), b"dup")


_TRUNCATED = pytest.mark.clause("unix.7/ancillary/control-truncated")
_DISCARDED = pytest.mark.clause("unix.7/ancillary/control-null-discarded")
# msg_controllen, how many of the 3 sent fds fit in it; 0 passes msg_control NULL
SMALL_BUFFERS = [
    pytest.param(cmsg.cmsg_len(4), 1, id="room-for-1-of-3", marks=_TRUNCATED),
    pytest.param(cmsg.cmsg_len(8), 2, id="room-for-2-of-3", marks=_TRUNCATED),
    pytest.param(cmsg.cmsg_len(0), 0, id="header-only", marks=_TRUNCATED),
    pytest.param(0, 0, id="absent", marks=_DISCARDED),
]


@pytest.mark.clause("unix.7/ancillary/scm-rights-small-buffer-closes", "unix.7/ancillary/msg-ctrunc")
@pytest.mark.fault("sendmsg", "recvmsg")
@pytest.mark.parametrize("controllen,fit", SMALL_BUFFERS)
@over()
def test_small_control_buffer_closes_excess_fds(kind, controllen, fit):
    """"If the buffer used to receive the ancillary data containing file descriptors is
    too small (or is absent), then the ancillary data is truncated (or discarded) and the
    excess file descriptors are automatically closed in the receiving process."  "(or, in
    the case of an SCM_RIGHTS file descriptor list, the list of file descriptors may be
    truncated)"  "If no buffer is provided ... (msg_control ... is NULL), then the incoming
    ancillary data is discarded.  In both of these cases, the MSG_CTRUNC flag will be set".

    Three pipe write ends are sent (the sender then closes its copies).  The receiver's
    control buffer holds ``fit`` ints (``absent``: msg_control NULL).  Expected: the data
    byte arrives, MSG_CTRUNC is set, the fd list is the first ``fit`` fds sent, the
    receiver's fd table gains exactly those, and the other pipes have no writer left.
    """
    a, b, pipes, before = _three_write_ends_in_flight(kind)
    r = _recv(b, controllen)
    new = _open_fds() - before
    got = _received_fds(r)
    expect.equal("data", r.data, b"x")
    expect.equal("MSG_CTRUNC set", _ctrunc(r), True)
    expect.equal("pipes the delivered fds write to",
                 [_file_id(fd) for fd in got], [_file_id(rd) for rd, _ in pipes[:fit]])
    expect.equal("fds new in the receiver's table", sorted(new), sorted(got))
    expect.equal("pipes that still have a writer", [_writer_open(rd) for rd, _ in pipes],
                 [i < fit for i in range(3)])


@pytest.mark.clause("unix.7/ancillary/scm-rights-rlimit-nofile-closes")
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_rlimit_nofile_closes_excess_fds(kind):
    """"If the number of file descriptors received in the ancillary data would cause the
    process to exceed its RLIMIT_NOFILE resource limit (see getrlimit(2)), the excess file
    descriptors are automatically closed in the receiving process."

    Three pipe write ends are sent with ample control space; the receiver first lowers its
    soft RLIMIT_NOFILE so that exactly one more descriptor number is free.  Expected: the
    first fd is delivered, the fd table gains only it, the other two pipes have no writer
    left.  Whether MSG_CTRUNC is set is recorded: the page does not say for this case.
    """
    a, b, pipes, before = _three_write_ends_in_flight(kind)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = _limit_leaving(before, 1)
    expect.observe("receiver's RLIMIT_NOFILE soft limit", limit)
    privileges.set_rlimit(resource.RLIMIT_NOFILE, limit, hard)
    try:
        r = _recv(b, cmsg.cmsg_space(12))
    finally:
        privileges.set_rlimit(resource.RLIMIT_NOFILE, soft, hard)
    new = _open_fds() - before
    got = _received_fds(r)
    expect.observe("MSG_CTRUNC set (the page does not say)", _ctrunc(r))
    expect.equal("data", r.data, b"x")
    expect.equal("pipes the delivered fds write to",
                 [_file_id(fd) for fd in got], [_file_id(pipes[0][0])])
    expect.equal("fds new in the receiver's table", sorted(new), sorted(got))
    expect.equal("pipes that still have a writer", [_writer_open(rd) for rd, _ in pipes],
                 [True, False, False])


def _limit_leaving(used: set[int], free: int) -> int:
    """The RLIMIT_NOFILE under which exactly ``free`` descriptor numbers are unused."""
    limit = unused = 0
    while unused < free:
        unused += limit not in used
        limit += 1
    return limit


@pytest.mark.clause("unix.7/ancillary/scm-max-fd-253", "unix.7/ancillary/scm-max-fd-einval")
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_scm_max_fd_fds_are_accepted(kind):
    """"SCM_MAX_FD has the value 253 (or 255 before Linux 2.6.38)."  "The kernel constant
    SCM_MAX_FD defines a limit on the number of file descriptors in the array."

    An array of exactly SCM_MAX_FD descriptors (for the kernel under test) is not over the
    limit: sendmsg succeeds and the receiver gets all SCM_MAX_FD of them.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    (f,) = _files(1)
    expect.succeeds(_send_fds, a, [f] * SCM_MAX_FD, what=f"sendmsg of {SCM_MAX_FD} fds")
    r = _recv(b, cmsg.cmsg_space(4 * SCM_MAX_FD))
    got = _received_fds(r)
    expect.equal("MSG_CTRUNC set", _ctrunc(r), False)
    expect.equal("fds received", len(got), SCM_MAX_FD)
    expect.equal("all refer to the sent file", {_file_id(fd) for fd in got}, {_file_id(f)})


@pytest.mark.clause("unix.7/ancillary/scm-max-fd-einval", "unix.7/ancillary/scm-max-fd-253")
@pytest.mark.fault("sendmsg")
@over()
def test_more_than_scm_max_fd_is_einval(kind):
    """"Attempting to send an array larger than this limit causes sendmsg(2) to fail with
    the error EINVAL."  "SCM_MAX_FD has the value 253 (or 255 before Linux 2.6.38)."

    SCM_MAX_FD + 1 descriptors in one SCM_RIGHTS message: EINVAL, and nothing is queued.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    (f,) = _files(1)
    expect.errno("EINVAL", _send_fds, a, [f] * (SCM_MAX_FD + 1),
                 what=f"sendmsg of {SCM_MAX_FD + 1} fds")
    expect.errno("EAGAIN", b.recv, 16, socket.MSG_DONTWAIT, what="recv after the failed send")


def _closed_fd() -> int:
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    return fd


# (id, the fds to send: a function of one open fd)
BAD_FDS = [
    ("closed", lambda ok: [_closed_fd()]),
    ("negative", lambda ok: [-1]),
    ("beyond-fd-table", lambda ok: [resource.getrlimit(resource.RLIMIT_NOFILE)[1] + 1000]),
    ("valid-then-closed", lambda ok: [ok, _closed_fd()]),
]


@pytest.mark.clause("unix.7/errors/ebadf")
@pytest.mark.fault("sendmsg")
@pytest.mark.parametrize("make_fds", [c[1] for c in BAD_FDS], ids=[c[0] for c in BAD_FDS])
@over()
def test_sending_a_fd_that_is_not_open_is_ebadf(kind, make_fds):
    """"EBADF This error can occur for sendmsg(2) when sending a file descriptor as
    ancillary data over a UNIX domain socket ..., and indicates that the file descriptor
    number that is being sent is not valid (e.g., it is not an open file descriptor)."

    SCM_RIGHTS naming a descriptor number that is not open (alone, or after a valid one):
    sendmsg fails with EBADF and nothing reaches the peer.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    (ok,) = _files(1)
    fds = make_fds(ok)
    expect.observe("fds sent", fds)
    expect.errno("EBADF", _send_fds, a, fds, what="sendmsg")
    expect.errno("EAGAIN", b.recv, 16, socket.MSG_DONTWAIT, what="recv after the failed send")


@pytest.mark.clause("unix.7/ancillary/control-truncated", "unix.7/ancillary/msg-ctrunc")
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_control_truncated_to_the_headers_that_fit(kind):
    """"If the space allocated for receiving incoming ancillary data is too small then the
    ancillary data is truncated to the number of headers that will fit in the supplied
    buffer"  "the MSG_CTRUNC flag will be set in the msg.msg_flags value returned".

    Two control messages are pending: SCM_CREDENTIALS (the receiver has SO_PASSCRED) and
    SCM_RIGHTS with one pipe write end.  The buffer is CMSG_SPACE(sizeof(struct ucred)),
    room for either one of them whole but not for both.  Expected: exactly one complete
    control message, MSG_CTRUNC set, and if the SCM_RIGHTS message is the one dropped its
    fd is not left in the receiver (fd table unchanged, pipe has no writer).  Which of the
    two comes first is the kernel's choice and is recorded.
    """
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    ((rd, wr),) = _pipes(1)
    expect.succeeds(_send_fds, a, [wr], what="sendmsg")
    os.close(wr)
    before = _open_fds()
    r = _recv(b, cmsg.cmsg_space(12))
    new = _open_fds() - before
    items = cmsg.decode(r.control)
    expect.observe("control messages received (level, type)", [(c.level, c.type) for c in items])
    expect.equal("MSG_CTRUNC set", _ctrunc(r), True)
    expect.equal("control messages received", len(items), 1)
    expect.equal("the control message is cut short", items[0].truncated, False)
    got = _received_fds(r)
    expect.equal("fds new in the receiver's table", sorted(new), sorted(got))
    expect.equal("pipe still has a writer", _writer_open(rd), bool(got))
    if items[0].type == cmsg.SCM_CREDENTIALS:
        expect.equal("credentials", items[0].ucred, (os.getpid(), os.getuid(), os.getgid()))
