"""unix(7) "Abstract sockets": no permissions (umask, fchmod, fchown change nothing about
who may reach the socket), and the name goes away with the last open reference.

Accessibility is observed from an unprivileged uid that is neither the binder nor the
owner the socket's inode was given.
"""

from __future__ import annotations

import os
import socket

import pytest

from harness import cmsg, expect, rawsock
from harness.privileges import become, has, nobody_uid
from suites.unix7._permissions_util import reach, serve, table
from suites.unix7.kinds import over, unique_abstract, unix


@pytest.mark.clause("unix.7/abstract-sockets/umask-no-effect")
@pytest.mark.fault("connect", "sendto")
@over()
def test_umask_does_not_restrict_abstract_socket(kind):
    """"Socket permissions have no meaning for abstract sockets: the process umask(2) has
    no effect when binding an abstract socket".  Root binds under umask 0777 (which would
    leave a pathname socket file mode 0000); a different, unprivileged uid still connects
    (stream, seqpacket) or sends a datagram (dgram) to it."""
    name = unique_abstract("umask")
    os.umask(0o777)
    server = serve(kind, name)
    expect.observe("socket inode mode (fstat)", oct(os.fstat(server.fileno()).st_mode))
    become(nobody_uid())
    expect.succeeds(reach, kind, name, server,
                    what="reach the abstract socket bound under umask 0777")


@pytest.mark.clause("unix.7/abstract-sockets/fchmod-fchown-no-effect")
@pytest.mark.fault("fchmod", "fchown", "connect", "sendto")
@over()
def test_fchmod_fchown_do_not_change_accessibility(kind):
    """"and changing the ownership and permissions of the object (via fchown(2) and
    fchmod(2)) has no effect on the accessibility of the socket."  Root makes the bound
    socket's inode mode 0000 and owned by another uid and group (fstat shows the change
    took); an unprivileged uid, neither owner nor group, still reaches the name."""
    uid = nobody_uid()
    owner = uid + 1000
    name = unique_abstract("fchmod")
    server = serve(kind, name)
    expect.succeeds(os.fchmod, server.fileno(), 0, what="fchmod(fd, 0)")
    expect.succeeds(os.fchown, server.fileno(), owner, owner,
                    what="fchown(fd, another uid and gid)")
    st = os.fstat(server.fileno())
    expect.equal("inode mode after fchmod", oct(st.st_mode & 0o7777), oct(0))
    expect.equal("inode owner after fchown", (st.st_uid, st.st_gid), (owner, owner))
    become(uid)
    expect.succeeds(reach, kind, name, server,
                    what="reach the abstract socket after fchmod 0 and fchown")


def _hold_by_dup(sock):
    fd = os.dup(sock.fileno())
    return lambda: os.close(fd)


def _hold_in_flight(sock):
    """Send the descriptor with SCM_RIGHTS and leave it unreceived; closing the receiving
    socket discards the message and the reference it carried."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rawsock.sendmsg(a.fileno(), b"x", cmsg.encode([cmsg.rights(sock.fileno())]))

    def release():
        a.close()
        b.close()
    return release


def _hold_in_child(sock):
    """A forked child inherits the descriptor and waits for the pipe to close."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wfd)
        os.read(rfd, 1)
        os._exit(0)
    os.close(rfd)

    def release():
        os.close(wfd)
        os.waitpid(pid, 0)
    return release


HOLDERS = [
    # id,                    keeps a reference after the binder closes its descriptor
    ("dup",                  _hold_by_dup),
    ("in-flight-scm-rights", _hold_in_flight),
    ("inherited-by-child",   _hold_in_child),
]


@pytest.mark.clause("unix.7/abstract-sockets/disappear-on-close")
@pytest.mark.fault("bind", "connect")
@pytest.mark.parametrize("hold", **table(HOLDERS))
@over()
def test_name_disappears_with_last_reference(kind, hold):
    """"Abstract sockets automatically disappear when all open references to the socket
    are closed."  While another reference remains (a dup, a descriptor in flight in an
    SCM_RIGHTS message, a child's inherited copy) the name stays: bind gives EADDRINUSE.
    After the last close the name is gone: connect gives ECONNREFUSED and bind succeeds."""
    if has("CAP_SETUID") and has("CAP_SETGID"):
        become(nobody_uid())   # in-flight descriptors are accounted to this uid, not root
    name = unique_abstract("gone")
    first = serve(kind, name)
    release = hold(first)
    first.close()
    expect.errno("EADDRINUSE", unix(kind).bind, name,
                 what="bind the name while another reference is open")
    release()
    expect.errno("ECONNREFUSED", unix(kind).connect, name,
                 what="connect to the name after the last reference closed")
    expect.succeeds(unix(kind).bind, name, what="bind the name after the last reference closed")
