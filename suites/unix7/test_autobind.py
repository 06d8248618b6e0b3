"""unix(7) Autobind feature: bind with addrlen == sizeof(sa_family_t), or SO_PASSCRED on
a socket not explicitly bound, gives the socket an abstract name of a null byte and 5
hex digits.
"""

from __future__ import annotations

import os
import re
import socket

import pytest

from harness import expect, rawsock, sockaddr
from harness.sockaddr import SA_FAMILY_T, Unpacked
from suites.unix7.kinds import CONNECTION_ORIENTED, DGRAM, over, unix

AUTOBIND_ADDRLEN = SA_FAMILY_T + 1 + 5
AUTOBIND_SUN_PATH = re.compile(rb"\x00[0-9a-f]{5}\Z")


def _expect_autobound(what: str, name: Unpacked) -> bytes:
    """The page's autobind name: addrlen 8, sun_path = \\0 + 5 bytes of [0-9a-f]."""
    expect.equal(f"{what}: sun_family", name.family, socket.AF_UNIX)
    expect.equal(f"{what}: addrlen", name.addrlen, AUTOBIND_ADDRLEN)
    path = name.sun_path[: name.addrlen - SA_FAMILY_T]
    expect.true(f"{what}: sun_path is a null byte and 5 bytes of [0-9a-f]",
                AUTOBIND_SUN_PATH.match(path) is not None, r"\0 + [0-9a-f]{5}", path)
    return path


def _set_passcred(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)


# ------------------------------------------------------------------ by addrlen


@pytest.mark.clause("unix.7/autobind/addrlen-family-only", "unix.7/autobind/name-format")
@pytest.mark.fault("bind", "getsockname")
@over()
def test_autobind_by_addrlen(kind):
    """"If a bind(2) call specifies addrlen as sizeof(sa_family_t) ... then the socket is
    autobound to an abstract address. The address consists of a null byte followed by 5
    bytes in the character set [0-9a-f]."

    bind(addrlen 2) succeeds and getsockname returns addrlen 8, sun_path \\0 + 5 hex
    digits.  Bytes in the buffer past sun_family (here a would-be pathname) are ignored."""
    s = unix(kind)
    rawsock.bind(s.fileno(), sockaddr.pathname("ignored.sock"), SA_FAMILY_T)
    _expect_autobound("getsockname after bind(addrlen 2)", rawsock.getsockname(s.fileno()))
    expect.equal("files created", os.listdir("."), [])


@pytest.mark.clause("unix.7/autobind/addrlen-family-only")
@pytest.mark.fault("bind", "connect")
@over()
def test_autobound_name_is_an_abstract_address(kind):
    """"then the socket is autobound to an abstract address."

    The returned name works as an abstract address: connect with exactly those bytes
    reaches the autobound socket, and its peer name is that address."""
    server = unix(kind)
    rawsock.bind(server.fileno(), sockaddr.un(), SA_FAMILY_T)
    name = rawsock.getsockname(server.fileno())
    if kind != DGRAM:
        server.listen(1)
    client = unix(kind)
    rawsock.connect(client.fileno(), name.raw)
    expect.equal("peer of the connected client", rawsock.getpeername(client.fileno()).raw, name.raw)


@pytest.mark.clause("unix.7/autobind/name-format")
@pytest.mark.fault("bind", "getsockname")
@over()
def test_autobind_names_are_distinct(kind):
    """"The address consists of a null byte followed by 5 bytes in the character set
    [0-9a-f]."

    Many sockets autobound at once: every name has the format, and no two are alike (the
    name is a socket's address)."""
    socks = [unix(kind) for _ in range(64)]
    names = []
    for s in socks:
        rawsock.bind(s.fileno(), sockaddr.un(), SA_FAMILY_T)
        names.append(_expect_autobound(f"socket {len(names)}", rawsock.getsockname(s.fileno())))
    expect.equal("distinct names among 64 autobound sockets", len(set(names)), len(names))


# ------------------------------------------------------------------ by SO_PASSCRED
#
# The page does not say when the name is given; the catalogue reads it as "when the
# socket connects or sends" (the SO_PASSCRED entry: "When this option is set and the
# socket is not yet connected, a unique name in the abstract namespace will be generated
# automatically").  The name right after setsockopt is recorded, not asserted.


def _record_after_setsockopt(sock: socket.socket) -> None:
    got = rawsock.getsockname(sock.fileno())
    expect.observe("addrlen after setsockopt(SO_PASSCRED) alone", got.addrlen)


@pytest.mark.clause("unix.7/autobind/so-passcred", "unix.7/autobind/name-format")
@pytest.mark.fault("connect", "getsockname", "accept")
@over(*CONNECTION_ORIENTED)
def test_so_passcred_autobinds_on_connect(kind):
    """"or the SO_PASSCRED socket option was specified for a socket that was not
    explicitly bound to an address, then the socket is autobound to an abstract address."

    An unbound client with SO_PASSCRED connects: it now has an autobind name, and accept
    on the listener returns that same name as the client's address."""
    listener = unix(kind)
    listener.bind("listener.sock")
    listener.listen(1)
    client = unix(kind)
    _set_passcred(client)
    _record_after_setsockopt(client)
    client.connect("listener.sock")
    own = _expect_autobound("client getsockname after connect", rawsock.getsockname(client.fileno()))
    _, peer = rawsock.accept(listener.fileno())
    expect.equal("address returned by accept", peer.raw, sockaddr.un(own))


@pytest.mark.clause("unix.7/autobind/so-passcred", "unix.7/autobind/name-format")
@pytest.mark.fault("connect", "getsockname", "recvmsg")
def test_so_passcred_autobinds_dgram_on_connect():
    """"or the SO_PASSCRED socket option was specified for a socket that was not
    explicitly bound to an address, then the socket is autobound to an abstract address."

    An unbound SOCK_DGRAM socket with SO_PASSCRED connects: it now has an autobind name,
    and datagrams it sends come from that name."""
    receiver = unix(DGRAM)
    receiver.bind("rx.sock")
    sender = unix(DGRAM)
    _set_passcred(sender)
    _record_after_setsockopt(sender)
    sender.connect("rx.sock")
    own = _expect_autobound("getsockname after connect", rawsock.getsockname(sender.fileno()))
    sender.send(b"d")
    got = rawsock.recvmsg(receiver.fileno(), flags=socket.MSG_DONTWAIT, namelen=sockaddr.SOCKADDR_UN)
    expect.equal("sender address of the datagram", got.name.raw, sockaddr.un(own))


@pytest.mark.clause("unix.7/autobind/so-passcred", "unix.7/autobind/name-format")
@pytest.mark.fault("sendto", "getsockname")
def test_so_passcred_autobinds_dgram_on_sendto():
    """"or the SO_PASSCRED socket option was specified for a socket that was not
    explicitly bound to an address, then the socket is autobound to an abstract address."

    An unbound, unconnected SOCK_DGRAM socket with SO_PASSCRED sends with sendto: it now
    has an autobind name, and the receiver sees the datagram come from it."""
    receiver = unix(DGRAM)
    receiver.bind("rx.sock")
    sender = unix(DGRAM)
    _set_passcred(sender)
    _record_after_setsockopt(sender)
    sender.sendto(b"d", "rx.sock")
    own = _expect_autobound("getsockname after sendto", rawsock.getsockname(sender.fileno()))
    _, source = receiver.recvfrom(8, socket.MSG_DONTWAIT)
    expect.equal("sender address of the datagram", source, own)


@pytest.mark.clause("unix.7/autobind/so-passcred")
@pytest.mark.fault("connect", "getsockname")
@pytest.mark.parametrize("bound", ["pathname", "abstract"])
@over()
def test_so_passcred_keeps_an_explicit_name(kind, bound):
    """"or the SO_PASSCRED socket option was specified for a socket that was not
    explicitly bound to an address"

    A socket explicitly bound before setting SO_PASSCRED keeps its own name through
    connect: it is not autobound."""
    name = sockaddr.pathname("mine.sock") if bound == "pathname" else sockaddr.abstract("mine")
    server = unix(kind)
    server.bind("server.sock")
    if kind != DGRAM:
        server.listen(1)
    s = unix(kind)
    rawsock.bind(s.fileno(), name)
    _set_passcred(s)
    rawsock.connect(s.fileno(), sockaddr.pathname("server.sock"))
    expect.equal("name after connect", rawsock.getsockname(s.fileno()).raw, name)
