"""unix(7) ETOOMANYREFS: the in-flight file descriptor limit of SCM_RIGHTS senders.

The in-flight count is kept per user, so every test switches to its own unprivileged uid
(privileges.nobody_uid(), distinct per xdist worker), never root's, and lowers its soft
RLIMIT_NOFILE to LIMIT.  It then sends one descriptor per sendmsg (one data byte each) over
a stream socketpair whose peer does not read, so each sent descriptor stays in flight.  A
stream pair is used because a datagram queue would stop at max_dgram_qlen (10) first.

Where the page's "exceeds" falls: sends that leave at most LIMIT descriptors in flight
must succeed; once more than LIMIT are in flight, the next send must fail.  Whether the
send that would make LIMIT + 1 is refused or is the last one accepted is the one-off the
word leaves open, so LIMIT or LIMIT + 1 successful sends both conform.  (Linux checks the
count before adding the new descriptors: LIMIT + 1 sends succeed.)

Each test closes both sockets before it ends: that releases the in-flight descriptors at
once, so the next test of the same worker (same uid) starts from zero.
"""

from __future__ import annotations

import os
import resource
import socket

import pytest

from harness import cmsg, expect, privileges, rawsock

LIMIT = 64   # the sender's soft RLIMIT_NOFILE: above the test child's own descriptor numbers


def _as_nobody(keep=()) -> None:
    privileges.become(privileges.nobody_uid(), keep=keep)
    privileges.set_rlimit(resource.RLIMIT_NOFILE, LIMIT, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def _send_fd(sock: socket.socket, fd: int) -> int:
    return rawsock.sendmsg(sock.fileno(), b"x", cmsg.encode([cmsg.rights(fd)]), flags=socket.MSG_DONTWAIT)


def _fill(sock: socket.socket, attempts: int, fd: int | None = None) -> tuple[int, str | None]:
    """Send one fd per sendmsg until one fails or ``attempts`` were made: (sends that
    succeeded, errno of the failure or None).  With ``fd`` None each send passes a fresh
    descriptor of /dev/null, closed right after the sendmsg."""
    for i in range(attempts):
        mine = os.open("/dev/null", os.O_RDONLY) if fd is None else fd
        try:
            _send_fd(sock, mine)
        except OSError as exc:
            return i, expect.errno_name(exc.errno)
        finally:
            if fd is None:
                os.close(mine)
    return attempts, None


def _expect_refused_past_limit(sent: int, err: str | None, what: str = "",
                               clause: str | None = None) -> None:
    expect.observe(f"{what}sends that succeeded (LIMIT = {LIMIT})", sent)
    expect.equal(f"{what}errno of the first failing sendmsg", err or f"no error ({sent} sends succeeded)",
                 "ETOOMANYREFS", clause=clause)
    expect.true(f"{what}sendmsg calls that succeeded before ETOOMANYREFS", sent in (LIMIT, LIMIT + 1),
                expected=f"{LIMIT} or {LIMIT + 1} (RLIMIT_NOFILE {LIMIT})", observed=sent, clause=clause)


E = "unix.7/errors/"
# (id, capabilities kept by the sender, whether the page promises ETOOMANYREFS, the clause
# a deviation of this variant is about)
CAPABILITY_CASES = [
    ("no-capabilities", (), True, E + "etoomanyrefs"),
    ("cap-sys-admin-only", ("CAP_SYS_ADMIN",), True, E + "etoomanyrefs-cap-sys-resource"),
    ("cap-sys-resource", ("CAP_SYS_RESOURCE",), False, E + "etoomanyrefs-cap-sys-resource"),
]


@pytest.mark.clause("unix.7/errors/etoomanyrefs", "unix.7/errors/etoomanyrefs-cap-sys-resource")
@pytest.mark.fault("sendmsg")
@pytest.mark.parametrize("keep,limited,about", [c[1:] for c in CAPABILITY_CASES],
                         ids=[c[0] for c in CAPABILITY_CASES])
def test_in_flight_fds_beyond_rlimit_nofile(keep, limited, about):
    """"ETOOMANYREFS This error can occur for sendmsg(2) when sending a file descriptor as
    ancillary data over a UNIX domain socket ...  It occurs if the number of "in-flight"
    file descriptors exceeds the RLIMIT_NOFILE resource limit and the caller does not have
    the CAP_SYS_RESOURCE capability."

    The sender (its own uid, RLIMIT_NOFILE LIMIT) keeps one /dev/null descriptor open and
    sends it once per sendmsg.  Without CAP_SYS_RESOURCE, whatever else it holds (no
    capability at all, or CAP_SYS_ADMIN alone: the page names only CAP_SYS_RESOURCE), the
    send after more than LIMIT are in flight fails with ETOOMANYREFS.  With
    CAP_SYS_RESOURCE, LIMIT + 4 sends all succeed (skipped where the bounding set lacks it).
    """
    if "CAP_SYS_RESOURCE" in keep and not privileges.in_bounding_set("CAP_SYS_RESOURCE"):
        expect.skip("CAP_SYS_RESOURCE is not in the bounding set")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        fd = os.open("/dev/null", os.O_RDONLY)
        _as_nobody(keep)
        expect.observe("effective capabilities", sorted(privileges.effective()))
        if limited:
            _expect_refused_past_limit(*_fill(a, LIMIT + 2, fd), clause=about)
        else:
            sent, err = _fill(a, LIMIT + 4, fd)
            expect.equal(f"sends that succeeded out of {LIMIT + 4} (RLIMIT_NOFILE {LIMIT})",
                         (sent, err), (LIMIT + 4, None), clause=about)


@pytest.mark.clause("unix.7/errors/etoomanyrefs-closed-fds-counted", "unix.7/errors/etoomanyrefs")
@pytest.mark.fault("sendmsg")
def test_fds_closed_by_the_sender_still_count_in_flight():
    """"In earlier kernel versions, it was possible to place an unlimited number of file
    descriptors in flight, by sending each file descriptor with sendmsg(2) and then closing
    the file descriptor so that it was not accounted against the RLIMIT_NOFILE resource
    limit."  (diagnosed "since mainline Linux 4.5")

    Each sendmsg passes a freshly opened descriptor which the sender closes at once, so the
    sender never holds more than one.  The descriptors still count in flight: the send
    after more than LIMIT are in flight fails with ETOOMANYREFS.
    """
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        _as_nobody()
        _expect_refused_past_limit(*_fill(a, LIMIT + 2))


@pytest.mark.clause("unix.7/errors/etoomanyrefs-in-flight")
@pytest.mark.fault("sendmsg", "recvmsg")
def test_recvmsg_takes_fds_out_of_flight():
    """"An in-flight file descriptor is one that has been sent using sendmsg(2) but has not
    yet been accepted in the recipient process using recvmsg(2)."

    After the sender has hit ETOOMANYREFS, the receiver accepts one descriptor with
    recvmsg: exactly one more send succeeds, and the one after it fails with ETOOMANYREFS
    again.
    """
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        fd = os.open("/dev/null", os.O_RDONLY)
        _as_nobody()
        _expect_refused_past_limit(*_fill(a, LIMIT + 2, fd), what="before recvmsg: ")
        r = expect.succeeds(rawsock.recvmsg, b.fileno(), 1, cmsg.cmsg_space(4), socket.MSG_DONTWAIT,
                            what="recvmsg")
        got = [fd for c in cmsg.find(cmsg.decode(r.control), cmsg.SOL_SOCKET, cmsg.SCM_RIGHTS)
               for fd in c.fds]
        expect.equal("fds accepted by recvmsg", len(got), 1)
        os.close(got[0])
        expect.equal("after recvmsg took one fd: (sends that succeeded, errno)", _fill(a, 2, fd),
                     (1, "ETOOMANYREFS"))
