"""The one cmsg codec: layout as cmsg(3) and the kernel use it, and truncated buffers."""

import socket
import struct

from harness import cmsg


def test_len_and_space_match_python():
    for n in (0, 1, 4, 12, 13, 1012):
        assert cmsg.cmsg_len(n) == socket.CMSG_LEN(n)
        assert cmsg.cmsg_space(n) == socket.CMSG_SPACE(n)


def test_encode_rights_layout():
    raw = cmsg.encode([cmsg.rights(3, 4, 5)])
    assert len(raw) == socket.CMSG_SPACE(12)
    length, level, typ = struct.unpack_from("=QiI", raw)
    assert (length, level, typ) == (socket.CMSG_LEN(12), socket.SOL_SOCKET, cmsg.SCM_RIGHTS)
    assert struct.unpack_from("=3i", raw, 16) == (3, 4, 5)


def test_round_trip_several():
    items = [cmsg.rights(7), cmsg.credentials(1, 2, 3)]
    out = cmsg.decode(cmsg.encode(items))
    assert [(c.level, c.type) for c in out] == [(socket.SOL_SOCKET, 1), (socket.SOL_SOCKET, 2)]
    assert out[0].fds == [7]
    assert out[1].ucred == (1, 2, 3)
    assert not any(c.truncated for c in out)


def test_decode_truncated_last():
    raw = cmsg.encode([cmsg.rights(1, 2, 3)])
    cut = raw[: socket.CMSG_LEN(4)]     # header says 12 bytes of data, 4 present
    (c,) = cmsg.decode(cut)
    assert c.truncated and c.fds == [1]


def test_decode_empty_and_garbage():
    assert cmsg.decode(b"") == []
    assert cmsg.decode(bytes(8)) == []
    assert cmsg.decode(bytes(16)) == []   # cmsg_len 0 stops decoding


def test_decode_matches_kernel():
    """What the kernel writes decodes to what was sent."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    r, w = __import__("os").pipe()
    try:
        a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", r))])
        from harness import rawsock
        got = rawsock.recvmsg(b.fileno(), 16, cmsg.cmsg_space(4))
        (c,) = cmsg.decode(got.control)
        assert c.type == cmsg.SCM_RIGHTS and len(c.fds) == 1
        __import__("os").close(c.fds[0])
    finally:
        for fd in (r, w):
            __import__("os").close(fd)
        a.close()
        b.close()
