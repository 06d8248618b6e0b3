"""Shared by the permission, abstract-socket and filesystem tests of unix(7).

``serve`` binds a socket that can be reached (listening, for stream and seqpacket);
``reach`` reaches it the way the page's permission rules speak of: connect(2) for the
connection-oriented kinds, a datagram sent with sendto(2) for dgram, and confirms that the
bound socket got the connection or the datagram.  ``own_dir`` prepares a directory for the
unprivileged uid before the test switches to it; ``table`` turns a case table into
parametrize arguments.
"""

from __future__ import annotations

import os
import socket

from harness import expect
from suites.unix7.kinds import DGRAM, unix

PAYLOAD = b"sockspec-reach"


def serve(kind: int, addr: str | bytes) -> socket.socket:
    """A socket of ``kind`` bound to ``addr``, listening unless it is a datagram socket,
    non-blocking so that a missing connection or datagram shows as an error, not a hang."""
    s = unix(kind)
    s.bind(addr)
    if kind != DGRAM:
        s.listen(8)
    s.setblocking(False)
    return s


def reach(kind: int, addr: str | bytes, server: socket.socket) -> str:
    """From a new unbound socket: connect(2) to ``addr`` (stream, seqpacket) or sendto(2) a
    datagram to it (dgram).  Raises the OSError of that call; when it succeeds, ``server``
    must have the connection or the datagram (a deviation otherwise)."""
    client = unix(kind)
    try:
        if kind == DGRAM:
            client.sendto(PAYLOAD, addr)
            got = expect.succeeds(server.recv, 64, what="recv on the bound socket")
            expect.equal("datagram received by the bound socket", got, PAYLOAD)
        else:
            client.connect(addr)
            conn, _ = expect.succeeds(server.accept, what="accept on the listening socket")
            conn.close()
    finally:
        client.close()
    return "reached"


def table(cases) -> dict:
    """pytest.mark.parametrize keyword arguments (argvalues, ids) from a case table: a list
    of tuples whose first column is the readable id and the rest the arguments."""
    values = [c[1] if len(c) == 2 else c[1:] for c in cases]
    return {"argvalues": values, "ids": [c[0] for c in cases]}


def own_dir(path: str, mode: int, uid: int, gid: int | None = None) -> None:
    """mkdir ``path`` owned by ``uid``:``gid`` (gid defaults to uid) with exactly ``mode``."""
    os.mkdir(path)
    os.chown(path, uid, uid if gid is None else gid)
    os.chmod(path, mode)
