"""The one control-message codec: SCM_RIGHTS, SCM_CREDENTIALS, SCM_SECURITY and any other.

Encodes a list of :class:`Cmsg` into the exact bytes of a msg_control buffer (CMSG_ALIGN'd
headers, as cmsg(3) lays them out) and decodes such a buffer back, tolerating the partial
last header the kernel leaves when it sets MSG_CTRUNC.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

SOL_SOCKET = socket.SOL_SOCKET
SOL_IP = socket.SOL_IP
SCM_RIGHTS = 0x01
SCM_CREDENTIALS = 0x02
SCM_SECURITY = 0x03          # at SOL_SOCKET for AF_UNIX; at SOL_IP it is IP_PASSSEC's type

_HDR = struct.Struct("=QiI")  # struct cmsghdr on LP64: size_t cmsg_len; int level; int type
_ALIGN = struct.calcsize("N")  # sizeof(size_t)
_UCRED = struct.Struct("=iII")  # pid_t pid; uid_t uid; gid_t gid


def align(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


def cmsg_len(datalen: int) -> int:
    """CMSG_LEN(datalen)."""
    return _HDR.size + datalen


def cmsg_space(datalen: int) -> int:
    """CMSG_SPACE(datalen)."""
    return _HDR.size + align(datalen)


@dataclass(frozen=True)
class Cmsg:
    level: int
    type: int
    data: bytes
    truncated: bool = False     # the header said more bytes than the buffer held

    @property
    def fds(self) -> list[int]:
        n = len(self.data) // 4
        return list(struct.unpack(f"={n}i", self.data[: 4 * n]))

    @property
    def ucred(self) -> tuple[int, int, int]:
        return _UCRED.unpack(self.data[: _UCRED.size])

    @property
    def context(self) -> bytes:
        return self.data


def rights(*fds: int) -> Cmsg:
    return Cmsg(SOL_SOCKET, SCM_RIGHTS, struct.pack(f"={len(fds)}i", *fds))


def credentials(pid: int, uid: int, gid: int) -> Cmsg:
    return Cmsg(SOL_SOCKET, SCM_CREDENTIALS, _UCRED.pack(pid, uid, gid))


def encode(items: list[Cmsg] | tuple[Cmsg, ...]) -> bytes:
    """The msg_control bytes for ``items``; each padded to CMSG_SPACE, as cmsg(3) does."""
    out = b""
    for c in items:
        hdr = _HDR.pack(cmsg_len(len(c.data)), c.level, c.type)
        out += (hdr + c.data).ljust(cmsg_space(len(c.data)), b"\0")
    return out


def decode(buf: bytes) -> list[Cmsg]:
    """The control messages in ``buf`` (the msg_controllen bytes the kernel returned)."""
    out = []
    off = 0
    while off + _HDR.size <= len(buf):
        length, level, typ = _HDR.unpack_from(buf, off)
        if length < _HDR.size:
            break
        end = off + length
        data = buf[off + _HDR.size : min(end, len(buf))]
        out.append(Cmsg(level, typ, data, truncated=end > len(buf)))
        off += align(length)
    return out


def find(items: list[Cmsg], level: int, typ: int) -> list[Cmsg]:
    return [c for c in items if c.level == level and c.type == typ]
