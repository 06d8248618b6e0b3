"""unix(7) Address format and Pathname sockets: the three kinds of address (pathname,
unnamed, abstract), the bytes and lengths that bind/connect/sendto take and that
getsockname/getpeername/accept/recvfrom return for each.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from harness import expect, rawsock, sockaddr
from harness.sockaddr import SA_FAMILY_T, SOCKADDR_UN, SUN_PATH_OFFSET, Unpacked
from suites.unix7.kinds import ALL, CONNECTION_ORIENTED, DGRAM, NAMES, SEQPACKET, STREAM, over, unix

AF_UNIX_BYTES = sockaddr.family_bytes(socket.AF_UNIX)
PATH = b"subject.sock"
ABSTRACT = b"\0subject\0with nulls"     # sun_path bytes: leading null, then the name


# ---------------------------------------------------------------- who returns what
#
# The "subject" is the socket whose address a call returns.  It is bound to a pathname,
# to an abstract name, or left unbound (unnamed); the other socket of the scenario is
# bound to the pathname "other.sock" where it needs a name.


def _bind_subject(sock: socket.socket, addr_kind: str) -> None:
    if addr_kind == "pathname":
        rawsock.bind(sock.fileno(), sockaddr.pathname(PATH))
    elif addr_kind == "abstract":
        rawsock.bind(sock.fileno(), sockaddr.un(ABSTRACT))


def _subject_connected_to_other(kind: int, addr_kind: str):
    """(subject, other-side socket that sees the subject as its peer)."""
    subject = unix(kind)
    _bind_subject(subject, addr_kind)
    if kind == DGRAM:
        if addr_kind == "unnamed":
            return socket.socketpair(socket.AF_UNIX, DGRAM)
        other = unix(DGRAM)
        other.bind("other.sock")
        rawsock.connect(subject.fileno(), sockaddr.pathname("other.sock"))
        other.connect(subject.getsockname())
        return subject, other
    listener = unix(kind)
    listener.bind("other.sock")
    listener.listen(1)
    rawsock.connect(subject.fileno(), sockaddr.pathname("other.sock"))
    conn, _ = listener.accept()
    return subject, conn


def _by_getsockname(kind, addr_kind, **buf) -> Unpacked:
    subject = unix(kind)
    _bind_subject(subject, addr_kind)
    return rawsock.getsockname(subject.fileno(), **buf)


def _by_getsockname_of_accepted(kind, addr_kind, **buf) -> Unpacked:
    """An accepted socket's own name is its listener's: the listener is the subject."""
    subject = unix(kind)
    _bind_subject(subject, addr_kind)
    subject.listen(1)
    client = unix(kind)
    client.connect(subject.getsockname())
    conn, _ = subject.accept()
    return rawsock.getsockname(conn.fileno(), **buf)


def _by_getpeername(kind, addr_kind, **buf) -> Unpacked:
    _, observer = _subject_connected_to_other(kind, addr_kind)
    return rawsock.getpeername(observer.fileno(), **buf)


def _by_accept(kind, addr_kind, **buf) -> Unpacked:
    listener = unix(kind)
    listener.bind("other.sock")
    listener.listen(1)
    subject = unix(kind)
    _bind_subject(subject, addr_kind)
    rawsock.connect(subject.fileno(), sockaddr.pathname("other.sock"))
    _, name = rawsock.accept(listener.fileno(), **buf)
    return name


def _by_recvfrom(kind, addr_kind, **buf) -> Unpacked:
    if kind == DGRAM:
        receiver = unix(DGRAM)
        receiver.bind("other.sock")
        subject = unix(DGRAM)
        _bind_subject(subject, addr_kind)
        rawsock.sendto(subject.fileno(), b"hello", sockaddr.pathname("other.sock"))
    else:
        subject, receiver = _subject_connected_to_other(kind, addr_kind)
        subject.send(b"hello")
    data, name = rawsock.recvfrom(receiver.fileno(), 256, flags=socket.MSG_DONTWAIT, **buf)
    expect.equal("data received with the address", data, b"hello")
    return name


CALLS = {  # name: (how, syscall whose result is observed, kinds it applies to)
    "getsockname": (_by_getsockname, "getsockname", ALL),
    "getsockname-of-accepted": (_by_getsockname_of_accepted, "getsockname", CONNECTION_ORIENTED),
    "getpeername": (_by_getpeername, "getpeername", ALL),
    "accept": (_by_accept, "accept", CONNECTION_ORIENTED),
    "recvfrom": (_by_recvfrom, "recvfrom", ALL),
}


def _cases(*calls: str):
    return [pytest.param(kind, call, id=f"{NAMES[kind]}-{call}", marks=pytest.mark.fault(CALLS[call][1]))
            for call in calls for kind in CALLS[call][2]]


NAMED_CALLS = ("getsockname", "getsockname-of-accepted", "getpeername", "accept", "recvfrom")
UNNAMED_CALLS = ("getsockname", "getpeername", "accept", "recvfrom")


@pytest.mark.clause("unix.7/address-format/pathname-returned-length",
                    "unix.7/address-format/output-syscalls",
                    "unix.7/address-format/sun-family-af-unix",
                    "unix.7/pathname-sockets/returned-addrlen-actual-size")
@pytest.mark.parametrize("kind,call", _cases(*NAMED_CALLS))
def test_pathname_address_returned(kind, call):
    """"When the address of a pathname socket is returned (by one of the system calls
    noted above), its length is offsetof(struct sockaddr_un, sun_path) + strlen(sun_path)
    + 1 and sun_path contains the null-terminated pathname."

    Also: "The sun_family field always contains AF_UNIX." and "Upon return, the argument
    is set to indicate the actual size of the address structure.\""""
    name = CALLS[call][0](kind, "pathname")
    expect.equal("sun_family", name.family, socket.AF_UNIX)
    expect.equal("returned addrlen", name.addrlen, SUN_PATH_OFFSET + len(PATH) + 1)
    expect.equal("returned address bytes", name.raw, AF_UNIX_BYTES + PATH + b"\0")


@pytest.mark.clause("unix.7/address-format/abstract-returned-length",
                    "unix.7/address-format/abstract-leading-null",
                    "unix.7/address-format/output-syscalls",
                    "unix.7/address-format/sun-family-af-unix",
                    "unix.7/pathname-sockets/returned-addrlen-actual-size")
@pytest.mark.parametrize("kind,call", _cases(*NAMED_CALLS))
def test_abstract_address_returned(kind, call):
    """"When the address of an abstract socket is returned, the returned addrlen is
    greater than sizeof(sa_family_t) (i.e., greater than 2), and the name of the socket is
    contained in the first (addrlen - sizeof(sa_family_t)) bytes of sun_path."

    The name was bound with embedded nulls and no trailing null; the returned address is
    exactly those bytes, sun_path[0] is the null that marks it abstract."""
    name = CALLS[call][0](kind, "abstract")
    expect.equal("sun_family", name.family, socket.AF_UNIX)
    expect.true("returned addrlen > sizeof(sa_family_t)", name.addrlen > SA_FAMILY_T,
                "> 2", name.addrlen)
    expect.equal("returned addrlen", name.addrlen, SA_FAMILY_T + len(ABSTRACT))
    expect.equal("sun_path[0]", name.sun_path[:1], b"\0")
    expect.equal("first addrlen - 2 bytes of sun_path", name.sun_path[: name.addrlen - SA_FAMILY_T], ABSTRACT)


@pytest.mark.clause("unix.7/address-format/unnamed-returned-length",
                    "unix.7/address-format/sun-family-af-unix")
@pytest.mark.parametrize("kind,call", _cases(*UNNAMED_CALLS))
def test_unnamed_address_returned(kind, call):
    """"When the address of an unnamed socket is returned, its length is
    sizeof(sa_family_t), and sun_path should not be inspected."

    The subject socket is never bound (for SOCK_DGRAM getpeername: a socketpair end).
    The page lists recvfrom(2) among the calls that return this structure and makes no
    exception for it, so recvfrom of a message from an unnamed sender must return
    sizeof(sa_family_t) too (recvfrom(2)'s "if the underlying protocol provides the source
    address" is not this page's wording).  sun_path is not inspected."""
    name = CALLS[call][0](kind, "unnamed")
    expect.equal("returned addrlen", name.addrlen, SA_FAMILY_T,
                 clause="unix.7/address-format/unnamed-returned-length")
    expect.equal("sun_family", name.family, socket.AF_UNIX,
                 clause="unix.7/address-format/sun-family-af-unix")


# ---------------------------------------------------------------- the structure


@pytest.mark.clause("unix.7/address-format/sockaddr-un",
                    "unix.7/address-format/offsetof-equals-family-size")
@pytest.mark.fault("bind", "getsockname")
def test_sockaddr_un_layout():
    """"struct sockaddr_un { sa_family_t sun_family; /* AF_UNIX */ char sun_path[108];
    /* Pathname */ };" and "On Linux, the above offsetof() expression equates to the same
    value as sizeof(sa_family_t)"

    The kernel reads and writes sun_family as 2 bytes at offset 0 and sun_path from offset
    2 up to the 110-byte size of the structure: a full structure whose sun_path is 108
    name bytes (abstract, so no terminator is needed) binds, and getsockname returns
    family bytes then those 108 bytes, addrlen 110.  The unnamed length (sizeof
    (sa_family_t)) and the pathname length less strlen + 1 (offsetof(sun_path)) are both
    2."""
    full = b"\0" + bytes(range(1, 108))
    s = unix(STREAM)
    rawsock.bind(s.fileno(), sockaddr.un(full), SOCKADDR_UN)
    name = rawsock.getsockname(s.fileno())
    expect.equal("returned addrlen (sizeof(struct sockaddr_un))", name.addrlen, SOCKADDR_UN)
    expect.equal("bytes 0-1 (sun_family)", name.raw[:2], AF_UNIX_BYTES)
    expect.equal("bytes 2-109 (sun_path)", name.raw[2:], full)

    fresh = unix(STREAM)
    unnamed = rawsock.getsockname(fresh.fileno())
    p = unix(STREAM)
    p.bind("layout.sock")
    path = rawsock.getsockname(p.fileno())
    expect.equal("unnamed addrlen = sizeof(sa_family_t)", unnamed.addrlen, 2)
    expect.equal("pathname addrlen - strlen - 1 = offsetof(sun_path)",
                 path.addrlen - len(b"layout.sock") - 1, unnamed.addrlen)
    expect.equal("sun_path offset in the returned pathname", path.raw.find(b"layout.sock"), 2)


@pytest.mark.clause("unix.7/address-format/input-syscalls",
                    "unix.7/address-format/pathname-bind")
@pytest.mark.parametrize("addr_kind", ["pathname", "abstract"])
@pytest.mark.parametrize("kind,call", [
    pytest.param(STREAM, "connect", id="stream-connect", marks=pytest.mark.fault("bind", "connect")),
    pytest.param(SEQPACKET, "connect", id="seqpacket-connect",
                 marks=pytest.mark.fault("bind", "connect")),
    pytest.param(DGRAM, "connect", id="dgram-connect", marks=pytest.mark.fault("bind", "connect")),
    pytest.param(DGRAM, "sendto", id="dgram-sendto", marks=pytest.mark.fault("bind", "sendto")),
])
def test_sockaddr_un_as_input(kind, call, addr_kind):
    """"Various system calls (for example, bind(2), connect(2), and sendto(2)) take a
    sockaddr_un argument as input." / "a UNIX domain socket can be bound to a
    null-terminated filesystem pathname using bind(2)."

    bind takes the raw structure (a pathname with its null, addrlen 2 + strlen + 1, or an
    abstract name); connect or sendto given the same bytes reaches that socket."""
    addr = sockaddr.pathname("in.sock") if addr_kind == "pathname" else sockaddr.abstract("in")
    server = unix(kind)
    rawsock.bind(server.fileno(), addr)
    if addr_kind == "pathname":
        expect.equal("bound pathname's file type", stat.S_IFMT(os.lstat("in.sock").st_mode), stat.S_IFSOCK)
    if kind != DGRAM:
        server.listen(1)
    client = unix(kind)
    if call == "connect":
        rawsock.connect(client.fileno(), addr)
        expect.equal("peer address after connect", rawsock.getpeername(client.fileno()).raw, addr)
        if kind == DGRAM:
            client.send(b"via connect")
    else:
        rawsock.sendto(client.fileno(), b"via sendto", addr)
    if kind == DGRAM:
        expect.true("datagram arrived at the bound socket",
                    server.recv(32, socket.MSG_DONTWAIT).startswith(b"via "))
    else:
        conn, _ = server.accept()
        client.send(b"x")
        expect.equal("data over the connection", conn.recv(8, socket.MSG_DONTWAIT), b"x")


# ---------------------------------------------------------------- unnamed


@pytest.mark.clause("unix.7/address-format/unbound-stream-unnamed",
                    "unix.7/address-format/unnamed-returned-length")
@pytest.mark.fault("getsockname")
def test_unbound_stream_socket_has_no_name():
    """"A stream socket that has not been bound to a pathname using bind(2) has no name."

    getsockname returns addrlen sizeof(sa_family_t) for a fresh stream socket, for one
    that has connected (connect does not name it), and after data has flowed."""
    fresh = unix(STREAM)
    expect.equal("fresh socket: addrlen", rawsock.getsockname(fresh.fileno()).addrlen, SA_FAMILY_T)
    listener = unix(STREAM)
    listener.bind("srv.sock")
    listener.listen(1)
    client = unix(STREAM)
    client.connect("srv.sock")
    expect.equal("connected socket: addrlen", rawsock.getsockname(client.fileno()).addrlen, SA_FAMILY_T)
    conn, _ = listener.accept()
    client.send(b"x")
    conn.recv(1)
    conn.send(b"y")
    client.recv(1)
    got = rawsock.getsockname(client.fileno())
    expect.equal("after data: addrlen", got.addrlen, SA_FAMILY_T)
    expect.equal("after data: sun_family", got.family, socket.AF_UNIX)


@pytest.mark.clause("unix.7/address-format/socketpair-unnamed",
                    "unix.7/address-format/unnamed-returned-length")
@pytest.mark.fault("getsockname", "getpeername")
@over()
def test_socketpair_sockets_are_unnamed(kind):
    """"Likewise, the two sockets created by socketpair(2) are unnamed."

    getsockname and getpeername of both ends: addrlen sizeof(sa_family_t), family
    AF_UNIX."""
    ends = socket.socketpair(socket.AF_UNIX, kind)
    for i, end in enumerate(ends):
        for call in (rawsock.getsockname, rawsock.getpeername):
            got = call(end.fileno())
            expect.equal(f"end {i} {call.__name__}: addrlen", got.addrlen, SA_FAMILY_T)
            expect.equal(f"end {i} {call.__name__}: sun_family", got.family, socket.AF_UNIX)


# ---------------------------------------------------------------- pathname addrlen


@pytest.mark.clause("unix.7/pathname-sockets/addrlen-forms")
@pytest.mark.parametrize("bind_form,connect_form", [
    pytest.param(b, c, id=f"bind-{b}-connect-{c}", marks=pytest.mark.fault("bind", "getsockname", "connect"))
    for b, c in (("exact", "sizeof"), ("sizeof", "exact"), ("sizeof", "sizeof"))])
@over()
def test_pathname_addrlen_forms(kind, bind_form, connect_form):
    """"The addrlen argument that describes the enclosing sockaddr_un structure should
    have a value of at least: offsetof(struct sockaddr_un, sun_path)+strlen(addr.sun_path)
    +1 or, more simply, addrlen can be specified as sizeof(struct sockaddr_un)."

    Both forms name the same socket.  With sizeof(struct sockaddr_un) the bytes after the
    terminating null are garbage ('X'), and they are not part of the name."""
    path = b"forms.sock"

    def form(which: str) -> tuple[bytes, int]:
        if which == "exact":
            return sockaddr.pathname(path), SUN_PATH_OFFSET + len(path) + 1
        return sockaddr.un(path + b"\0").ljust(SOCKADDR_UN, b"X"), SOCKADDR_UN

    server = unix(kind)
    rawsock.bind(server.fileno(), *form(bind_form))
    expect.equal("name after bind", rawsock.getsockname(server.fileno()).raw, sockaddr.pathname(path))
    expect.equal("files in the directory", sorted(os.listdir(".")), [path.decode()])
    if kind != DGRAM:
        server.listen(1)
    client = unix(kind)
    rawsock.connect(client.fileno(), *form(connect_form))


@pytest.mark.clause("unix.7/pathname-sockets/returned-addrlen-actual-size",
                    "unix.7/pathname-sockets/output-exceeds-input")
@pytest.mark.parametrize("kind,call", _cases("getsockname", "getpeername", "accept", "recvfrom"))
@pytest.mark.parametrize("bufsize", [SA_FAMILY_T + 3, SA_FAMILY_T + len(PATH)])
def test_short_buffer_gets_actual_size(kind, call, bufsize):
    """"Upon return, the argument is set to indicate the actual size of the address
    structure. The caller should check the value returned in this argument: if the output
    value exceeds the input value, then there is no guarantee that a null terminator is
    present in sun_path."

    With an input addrlen too small for the pathname address, the returned addrlen is the
    full size 2 + strlen + 1 (greater than the input), the input number of bytes of the
    address were stored, and they hold no null terminator."""
    name = CALLS[call][0](kind, "pathname", bufsize=bufsize, fill=b"\xa5" * bufsize)
    expect.equal("returned addrlen", name.addrlen, SUN_PATH_OFFSET + len(PATH) + 1)
    expect.true("output value exceeds the input value", name.addrlen > bufsize, f"> {bufsize}", name.addrlen)
    expect.equal("stored bytes", name.raw, (AF_UNIX_BYTES + PATH)[:bufsize])


# ---------------------------------------------------------------- abstract names


@pytest.mark.clause("unix.7/description/abstract-namespace",
                    "unix.7/address-format/abstract-leading-null",
                    "unix.7/address-format/abstract-no-filesystem")
@pytest.mark.fault("bind", "connect")
@over()
def test_abstract_name_is_not_in_the_filesystem(kind):
    """"Linux also supports an abstract namespace which is independent of the
    filesystem." / "an abstract socket address is distinguished (from a pathname socket)
    by the fact that sun_path[0] is a null byte" / "The name has no connection with
    filesystem pathnames."

    Binding \\0name creates no file; a regular file "name" can then be created beside it;
    a pathname socket "both" and an abstract socket \\0both are bound together without
    conflict; \\0name is reached from another working directory."""
    before = sorted(os.listdir("."))
    server = unix(kind)
    rawsock.bind(server.fileno(), sockaddr.abstract("name"))
    expect.equal("directory after binding \\0name", sorted(os.listdir(".")), before)
    with open("name", "w"):
        pass
    by_path = unix(kind)
    rawsock.bind(by_path.fileno(), sockaddr.pathname("both"))
    by_name = unix(kind)
    rawsock.bind(by_name.fileno(), sockaddr.abstract("both"))
    os.mkdir("elsewhere")
    if kind != DGRAM:
        server.listen(1)
    os.chdir("elsewhere")
    client = unix(kind)
    rawsock.connect(client.fileno(), sockaddr.abstract("name"))
    expect.equal("peer reached from another directory", rawsock.getpeername(client.fileno()).raw,
                 sockaddr.abstract("name"))


def _connectable_server(kind: int, addr: bytes, addrlen: int) -> socket.socket:
    server = unix(kind)
    rawsock.bind(server.fileno(), addr, addrlen)
    if kind != DGRAM:
        server.listen(4)
    return server


# (id, sun_path given to connect, addrlen of connect, expected) against a server bound to
# sun_path b"\0abc" + garbage, addrlen 2 + 4.
BY_LENGTH = [
    ("same-bytes-other-garbage", b"\0abcYYYY", 6, None),
    ("same-bytes-exact", b"\0abc", 6, None),
    ("plus-trailing-null", b"\0abc\0", 7, "ECONNREFUSED"),
    ("plus-garbage-byte", b"\0abcX", 7, "ECONNREFUSED"),
    ("one-byte-shorter", b"\0abc", 5, "ECONNREFUSED"),
]


@pytest.mark.clause("unix.7/address-format/abstract-name-by-length")
@pytest.mark.parametrize("path,addrlen,error", [
    pytest.param(p, n, e, id=i, marks=pytest.mark.fault("connect")) for i, p, n, e in BY_LENGTH])
@over()
def test_abstract_name_is_the_bytes_covered_by_addrlen(kind, path, addrlen, error):
    """"The socket's address in this namespace is given by the additional bytes in
    sun_path that are covered by the specified length of the address structure."

    Bound as \\0abc with garbage after it, addrlen 6: the name is the 3 bytes abc.  A
    connect covering the same bytes reaches it whatever follows; one covering a byte more
    or less names another (non-existent) socket: ECONNREFUSED."""
    server = _connectable_server(kind, sockaddr.un(b"\0abcXXXX"), 6)
    expect.equal("bound name", rawsock.getsockname(server.fileno()).raw, sockaddr.abstract("abc"))
    client = unix(kind)
    if error is None:
        rawsock.connect(client.fileno(), sockaddr.un(path), addrlen)
        expect.equal("peer", rawsock.getpeername(client.fileno()).raw, sockaddr.abstract("abc"))
    else:
        expect.errno(error, rawsock.connect, client.fileno(), sockaddr.un(path), addrlen)


NULL_NAMES = [b"\0a\0b", b"\0a\0c", b"\0a", b"\0a\0", b"\0a\0\0", b"\0\0", b"\0\0\0"]


@pytest.mark.clause("unix.7/address-format/abstract-embedded-nulls",
                    "unix.7/address-format/abstract-name-by-length")
@pytest.mark.fault("bind", "connect")
@over()
def test_abstract_names_with_nulls_are_distinct(kind):
    """"Null bytes in the name have no special significance."

    \\0a\\0b, \\0a\\0c, \\0a, \\0a\\0, \\0a\\0\\0, \\0\\0 and \\0\\0\\0 are seven distinct
    names: all bind at once (no EADDRINUSE), each connect reaches the socket bound to
    exactly those bytes."""
    servers = {p: _connectable_server(kind, sockaddr.un(p), SA_FAMILY_T + len(p)) for p in NULL_NAMES}
    for p, server in servers.items():
        expect.equal(f"name of the socket bound to {p!r}", rawsock.getsockname(server.fileno()).raw,
                     sockaddr.un(p))
        client = unix(kind)
        rawsock.connect(client.fileno(), sockaddr.un(p))
        expect.equal(f"peer reached by connect({p!r})", rawsock.getpeername(client.fileno()).raw,
                     sockaddr.un(p))
    dup = unix(kind)
    expect.errno("EADDRINUSE", rawsock.bind, dup.fileno(), sockaddr.un(b"\0a\0"),
                 what="bind of \\0a\\0 a second time")
