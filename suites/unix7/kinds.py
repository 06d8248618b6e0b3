"""Socket kinds for unix(7) tests: one test body, run over every kind the page speaks of.

``@over(STREAM, DGRAM, SEQPACKET)`` parametrizes a test's ``kind`` argument with readable
ids (``[stream]``, ``[dgram]``, ``[seqpacket]``).  ``pair(kind, how)`` gives two connected
sockets made the way a test needs: by socketpair(2), or by bind/listen/connect on a
pathname or abstract address.
"""

from __future__ import annotations

import os
import socket

import pytest

STREAM = socket.SOCK_STREAM
DGRAM = socket.SOCK_DGRAM
SEQPACKET = socket.SOCK_SEQPACKET
ALL = (STREAM, DGRAM, SEQPACKET)
CONNECTION_ORIENTED = (STREAM, SEQPACKET)
NAMES = {STREAM: "stream", DGRAM: "dgram", SEQPACKET: "seqpacket"}


def over(*kinds: int):
    """Parametrize ``kind`` over ``kinds`` (default: all three)."""
    kinds = kinds or ALL
    return pytest.mark.parametrize("kind", kinds, ids=[NAMES[k] for k in kinds])


def unix(kind: int) -> socket.socket:
    return socket.socket(socket.AF_UNIX, kind)


def unique_abstract(tag: str = "sockspec") -> bytes:
    """An abstract name for this test (the namespace is the test's own network namespace)."""
    return b"\0" + f"{tag}-{os.getpid()}".encode()


def pair(kind: int, how: str = "socketpair", name: bytes | str | None = None):
    """Two connected AF_UNIX sockets of ``kind``: (a, b), where ``b`` is the side that was
    bound (or accepted) and ``a`` the side that connected.

    how: "socketpair" | "pathname" | "abstract".
    """
    if how == "socketpair":
        return socket.socketpair(socket.AF_UNIX, kind)
    if name is None:
        name = "peer.sock" if how == "pathname" else unique_abstract()
    server = unix(kind)
    server.bind(name)
    client = unix(kind)
    if kind == DGRAM:
        client.bind(name + (".c" if isinstance(name, str) else b".c"))
        client.connect(name)
        server.connect(client.getsockname())
        return client, server
    server.listen(8)
    client.connect(name)
    conn, _ = server.accept()
    server.close()
    return client, conn
