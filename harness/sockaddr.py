"""The one sockaddr packer: exact bytes in, exact bytes out.

Python's socket module normalises addresses (it appends or strips null bytes, and it
computes addrlen itself).  Conformance tests need the bytes the kernel saw and returned,
so addresses are built and read here as raw ``bytes`` and handed to :mod:`harness.rawsock`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

SA_FAMILY_T = 2                        # sizeof(sa_family_t)
SUN_PATH = 108                         # sizeof(((struct sockaddr_un *)0)->sun_path)
SOCKADDR_UN = SA_FAMILY_T + SUN_PATH   # sizeof(struct sockaddr_un) == 110
SOCKADDR_IN = 16                       # sizeof(struct sockaddr_in)
SUN_PATH_OFFSET = SA_FAMILY_T          # offsetof(struct sockaddr_un, sun_path)


def family_bytes(family: int = socket.AF_UNIX) -> bytes:
    return struct.pack("=H", family)


def un(path: bytes | str = b"", *, family: int = socket.AF_UNIX, pad_to: int | None = None) -> bytes:
    """A sockaddr_un: the family followed by exactly ``path`` (no null is added).

    ``pad_to`` pads with null bytes to that total size, e.g. ``pad_to=SOCKADDR_UN`` for the
    full structure.  The addrlen passed to the kernel is chosen separately by the caller.
    """
    if isinstance(path, str):
        path = path.encode()
    raw = family_bytes(family) + path
    if pad_to is not None:
        if len(raw) > pad_to:
            raise ValueError(f"address of {len(raw)} bytes does not fit in {pad_to}")
        raw = raw.ljust(pad_to, b"\0")
    return raw


def pathname(path: bytes | str) -> bytes:
    """A pathname address with its terminating null, as the page recommends."""
    if isinstance(path, str):
        path = path.encode()
    return un(path + b"\0")


def abstract(name: bytes | str) -> bytes:
    """An abstract address: a leading null byte then ``name``; length covers exactly these."""
    if isinstance(name, str):
        name = name.encode()
    return un(b"\0" + name)


@dataclass(frozen=True)
class Unpacked:
    """A returned sockaddr as the kernel filled it in."""

    raw: bytes          # the bytes the kernel wrote (up to min(returned, buffer) length)
    addrlen: int        # the length the kernel reported
    buffer: bytes = b""  # the whole caller buffer after the call (bytes past raw included)

    @property
    def family(self) -> int | None:
        return struct.unpack("=H", self.raw[:2])[0] if len(self.raw) >= 2 else None

    @property
    def sun_path(self) -> bytes:
        return self.raw[SUN_PATH_OFFSET:]

    @property
    def kind(self) -> str:
        """'unnamed', 'abstract' or 'pathname', by the page's rules."""
        if self.addrlen == SA_FAMILY_T:
            return "unnamed"
        if self.sun_path[:1] == b"\0":
            return "abstract"
        return "pathname"

    @property
    def abstract_name(self) -> bytes:
        """The first (addrlen - sizeof(sa_family_t)) bytes of sun_path, less the leading null."""
        return self.sun_path[: self.addrlen - SA_FAMILY_T][1:]


def in4(addr: str, port: int, *, family: int = socket.AF_INET) -> bytes:
    """A sockaddr_in (16 bytes): family, port and address in network byte order."""
    return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(addr) + bytes(8)


def parse_in4(raw: bytes) -> tuple[int, str, int]:
    family = struct.unpack("=H", raw[:2])[0]
    port = struct.unpack("!H", raw[2:4])[0]
    return family, socket.inet_ntoa(raw[4:8]), port
