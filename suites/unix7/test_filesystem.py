"""unix(7) pathname sockets in the filesystem: the socket file outlives the socket until
unlinked (NOTES), close-behind after unlink (NOTES), and the ERRORS of binding and
connecting by name: EADDRINUSE, ENOENT, ECONNREFUSED, and errors the filesystem or the
generic socket layer generate.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from harness import expect, privileges, rawsock, sockaddr
from harness.libc import check, libc
from suites.unix7._permissions_util import serve, table
from suites.unix7.kinds import ALL, CONNECTION_ORIENTED, DGRAM, NAMES, over, unique_abstract, unix


@pytest.mark.clause("unix.7/notes/unlink-needed", "unix.7/errors/eaddrinuse-file-exists")
@pytest.mark.fault("bind", "unlink")
@over()
def test_socket_file_stays_after_close_until_unlinked(kind):
    """"Binding to a socket with a filename creates a socket in the filesystem that must be
    deleted by the caller when it is no longer needed (using unlink(2))."  After close(2)
    the socket file is still there and binding its name gives EADDRINUSE ("the filesystem
    socket object already exists"); after unlink(2) the name can be bound again."""
    s = unix(kind)
    expect.succeeds(s.bind, "s", what="bind 's'")
    s.close()
    st = expect.succeeds(os.lstat, "s", what="lstat 's' after close")
    expect.equal("file type of 's' after close", stat.S_IFMT(st.st_mode), stat.S_IFSOCK)
    expect.errno("EADDRINUSE", unix(kind).bind, "s", what="bind 's' again before unlink")
    expect.succeeds(os.unlink, "s", what="unlink 's'")
    expect.succeeds(unix(kind).bind, "s", what="bind 's' after unlink")


def _send_both_ways(a: socket.socket, b: socket.socket) -> None:
    for src, dst, data in ((a, b, b"to-bound"), (b, a, b"to-peer")):
        expect.equal("bytes sent", expect.succeeds(src.send, data, what="send"), len(data))
        got = expect.succeeds(dst.recv, 64, socket.MSG_DONTWAIT, what="recv")
        expect.equal("bytes received", got, data)


@pytest.mark.clause("unix.7/notes/close-behind")
@pytest.mark.fault("unlink", "connect", "sendto", "recvfrom")
@over()
def test_unlink_while_bound_close_behind(kind):
    """"The usual UNIX close-behind semantics apply; the socket can be unlinked at any time
    and will be finally removed from the filesystem when the last reference to it is
    closed."  unlink(2) of a bound socket's file succeeds at once and removes the name (a
    new connect gives ENOENT); the socket itself lives on: an existing peer still
    exchanges data with it both ways, and a listening socket still accepts the connection
    that was pending when the name went.  (When the inode is finally freed is not
    observable from user space.)"""
    server = serve(kind, "s")
    peer = unix(kind)
    if kind == DGRAM:
        peer.bind("peer")
        peer.connect("s")
        server.connect("peer")
        bound, pending = server, None
    else:
        peer.connect("s")
        pending = unix(kind)
        pending.connect("s")
        bound, _ = server.accept()
    expect.succeeds(os.unlink, "s", what="unlink 's' while bound")
    expect.errno("ENOENT", os.lstat, "s", what="lstat 's' after unlink")
    expect.errno("ENOENT", unix(kind).connect, "s", what="connect to 's' after unlink")
    _send_both_ways(peer, bound)
    if pending is not None:
        conn, _ = expect.succeeds(server.accept, what="accept the connection pending at unlink")
        _send_both_ways(pending, conn)


# Each holder binds a live socket of the kind under test (kept open by the test body).
IN_USE_CASES = [
    ("abstract-live", lambda kind: serve(kind, unique_abstract("inuse"))),
    ("pathname-live", lambda kind: serve(kind, "x")),
]


@pytest.mark.clause("unix.7/errors/eaddrinuse")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("holder", **table(IN_USE_CASES))
@over()
def test_bind_address_in_use(kind, holder):
    """"EADDRINUSE The specified local address is already in use".  bind(2) to an abstract
    name or a pathname held by a live socket of the same type."""
    live = holder(kind)
    addr = live.getsockname()
    expect.errno("EADDRINUSE", unix(kind).bind, addr, what=f"bind {addr!r} held by a live socket")


def _stale_socket(kind):
    s = unix(kind)
    s.bind("x")
    s.close()


def _regular_file(_kind=None):
    with open("x", "w"):
        pass


EXISTS_CASES = [
    # id,                 creates "x",                               its file type
    ("stale-socket",      _stale_socket,                            stat.S_IFSOCK),
    ("regular-file",      _regular_file,                            stat.S_IFREG),
    ("directory",         lambda kind: os.mkdir("x"),               stat.S_IFDIR),
    ("fifo",              lambda kind: os.mkfifo("x"),              stat.S_IFIFO),
    ("dangling-symlink",  lambda kind: os.symlink("nowhere", "x"),  stat.S_IFLNK),
]


@pytest.mark.clause("unix.7/errors/eaddrinuse-file-exists")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("create,ftype", **table(EXISTS_CASES))
@over()
def test_bind_where_filesystem_object_exists(kind, create, ftype):
    """"or the filesystem socket object already exists."  bind(2) to a pathname where a
    filesystem object exists (a stale socket file, or any other file type, even a dangling
    symlink, which bind does not follow) gives EADDRINUSE and leaves the object as it was."""
    create(kind)
    expect.errno("EADDRINUSE", unix(kind).bind, "x", what="bind 'x' where it exists")
    expect.equal("file type of 'x' after the failed bind",
                 stat.S_IFMT(os.lstat("x").st_mode), ftype)


_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REC, _MS_PRIVATE = 0x1, 0x4000, 1 << 18


def _read_only_mount(path: str) -> None:
    """A read-only tmpfs on ``path``, in a mount namespace of this (throw-away) child only."""
    if not privileges.has("CAP_SYS_ADMIN"):
        expect.skip("CAP_SYS_ADMIN is needed to mount a read-only filesystem for EROFS")
    os.mkdir(path)
    check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "mount(/, MS_REC|MS_PRIVATE)")
    check(libc.mount(b"sockspec", path.encode(), b"tmpfs", _MS_RDONLY, None),
          "mount(tmpfs, MS_RDONLY)")


def _symlink_loop(path: str) -> None:
    os.symlink(path, path)


OTHER_BIND_CASES = [
    # id,                        setup,                                 path,     errno
    ("missing-directory",        lambda: None,                          "no/s",  "ENOENT"),
    ("dangling-symlink-dir",     lambda: os.symlink("nowhere", "dl"),  "dl/s",  "ENOENT"),
    ("under-regular-file",       lambda: _regular_file(),           "x/s",   "ENOTDIR"),
    ("symlink-loop",             lambda: _symlink_loop("loop"),         "loop/s", "ELOOP"),
    ("read-only-filesystem",     lambda: _read_only_mount("ro"),        "ro/s",  "EROFS"),
]


@pytest.mark.clause("unix.7/errors/other-errors")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("setup,path,error", **table(OTHER_BIND_CASES))
@over()
def test_bind_filesystem_errors(kind, setup, path, error):
    """"Other errors can be generated by the generic socket layer or by the filesystem
    while generating a filesystem socket object."  By example, the filesystem's errors for
    the path of a new socket file: ENOENT (missing directory, dangling symlink as a
    directory), ENOTDIR (a regular file as a directory), ELOOP (a symlink loop), EROFS (a
    read-only filesystem)."""
    setup()
    expect.errno(error, unix(kind).bind, path, what=f"bind {path!r}")


@pytest.mark.clause("unix.7/errors/other-errors")
@pytest.mark.fault("bind")
def test_bind_on_non_socket_descriptor_generic_layer_error():
    """"Other errors can be generated by the generic socket layer".  By example: bind(2) on
    a descriptor that is a regular file, not a socket, fails in the generic socket layer
    (before any AF_UNIX code) with ENOTSOCK."""
    _regular_file()
    fd = os.open("x", os.O_RDONLY)
    expect.errno("ENOTSOCK", rawsock.bind, fd, sockaddr.pathname("s"),
                 what="bind on a regular file's descriptor")


CONNECT_ENOENT_CASES = [
    # id,                       setup,                                 path
    ("missing-file",            lambda: None,                          "nope"),
    ("missing-directory",       lambda: None,                          "no/s"),
    ("dangling-symlink",        lambda: os.symlink("nope", "x"),       "x"),
]


@pytest.mark.clause("unix.7/errors/enoent")
@pytest.mark.fault("connect")
@pytest.mark.parametrize("setup,path", **table(CONNECT_ENOENT_CASES))
@over()
def test_connect_to_missing_pathname(kind, setup, path):
    """"ENOENT The pathname in the remote address specified to connect(2) did not exist."
    connect(2) to a pathname naming nothing, through a missing directory, or through a
    dangling symlink gives ENOENT."""
    setup()
    expect.errno("ENOENT", unix(kind).connect, path, what=f"connect to {path!r}")


# Each target returns the address to connect to and the socket to keep open (or None).
def _bound_not_listening(kind):
    s = unix(kind)
    s.bind("x")
    return "x", s


def _closed_pathname(kind):
    _stale_socket(kind)
    return "x", None


def _closed_abstract(kind):
    name = unique_abstract("closed")
    s = unix(kind)
    s.bind(name)
    s.close()
    return name, None


def _by_kind(cases):
    """parametrize arguments (kind, *rest) from a case table (id, kinds, *rest): one case
    per kind it applies to, with ids like 'stream-bound-not-listening'."""
    return {"argvalues": [pytest.param(kind, *rest, id=f"{NAMES[kind]}-{cid}")
                          for cid, kinds, *rest in cases for kind in kinds]}


NOT_LISTENING_CASES = [
    # id,                      kinds,                makes the target address
    ("bound-not-listening",    CONNECTION_ORIENTED,  _bound_not_listening),
    ("closed-pathname-socket", ALL,                  _closed_pathname),
    ("closed-abstract-socket", ALL,                  _closed_abstract),
]


@pytest.mark.clause("unix.7/errors/econnrefused")
@pytest.mark.fault("connect")
@pytest.mark.parametrize("kind,target", **_by_kind(NOT_LISTENING_CASES))
def test_connect_to_non_listening_socket(kind, target):
    """"ECONNREFUSED The remote address specified by connect(2) was not a listening
    socket."  connect(2) to a stream or seqpacket socket that is bound but not listening,
    and (any type) to a pathname or abstract name whose socket has closed."""
    addr, _live = target(kind)
    expect.errno("ECONNREFUSED", unix(kind).connect, addr, what=f"connect to {addr!r}")


NOT_A_SOCKET_CASES = [
    # id,              creates "x"
    ("regular-file",   _regular_file),
    ("directory",      lambda kind: os.mkdir("x")),
    ("fifo",           lambda kind: os.mkfifo("x")),
]


@pytest.mark.clause("unix.7/errors/econnrefused-not-a-socket")
@pytest.mark.fault("connect")
@pytest.mark.parametrize("create", **table(NOT_A_SOCKET_CASES))
@over()
def test_connect_to_pathname_that_is_not_a_socket(kind, create):
    """"This error can also occur if the target pathname is not a socket."  connect(2) to a
    regular file, a directory or a FIFO gives ECONNREFUSED."""
    create(kind)
    expect.errno("ECONNREFUSED", unix(kind).connect, "x", what="connect to 'x', not a socket")
