"""Exact-bytes socket calls through libc, for what Python's socket module cannot express.

Every function takes a file descriptor (``sock.fileno()``) and raw bytes, calls the libc
wrapper of the syscall of the same name, and raises ``OSError`` with the kernel's errno on
failure.  Addresses are built with :mod:`harness.sockaddr`, control data with
:mod:`harness.cmsg`.  Pass :data:`FAULT` instead of a buffer to hand the kernel an invalid
user pointer (for EFAULT).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from harness.libc import check as _check
from harness.libc import libc
from harness.sockaddr import SOCKADDR_UN, Unpacked

FAULT = object()                       # stands for an invalid user-space pointer
_FAULT_PTR = ctypes.c_void_p(0x10)     # never mapped: the first page is reserved
socklen_t = ctypes.c_uint32


def _in(buf, length: int | None = None):
    """A (pointer, length) pair for input bytes, or the invalid pointer with ``length``
    (the kernel reports EFAULT only when it has bytes to copy, so FAULT needs a length)."""
    if buf is FAULT:
        if length is None:
            raise ValueError("rawsock.FAULT needs an explicit length (addrlen or nbytes)")
        return _FAULT_PTR, length
    if buf is None:
        return None, 0
    cbuf = ctypes.create_string_buffer(bytes(buf), max(len(buf), 1))
    return cbuf, len(buf)


def bind(fd: int, addr: bytes, addrlen: int | None = None) -> None:
    ptr, n = _in(addr, addrlen)
    _check(libc.bind(fd, ptr, socklen_t(n if addrlen is None else addrlen)), "bind")


def connect(fd: int, addr: bytes, addrlen: int | None = None) -> None:
    ptr, n = _in(addr, addrlen)
    _check(libc.connect(fd, ptr, socklen_t(n if addrlen is None else addrlen)), "connect")


def _name_buffer(bufsize: int, fill):
    if fill is FAULT:
        return _FAULT_PTR
    return ctypes.create_string_buffer(fill.ljust(bufsize, b"\0")[:bufsize] or b"\0", max(bufsize, 1))


def _returned(buf, bufsize: int, length) -> Unpacked:
    if buf is _FAULT_PTR:  # the kernel accepted an invalid buffer: nothing to read back
        return Unpacked(b"", length.value, b"")
    whole = buf.raw[:bufsize]
    return Unpacked(whole[: min(length.value, bufsize)], length.value, whole)


def _name_call(fn, call: str, fd: int, bufsize: int, fill: bytes, addrlen: int | None) -> Unpacked:
    buf = _name_buffer(bufsize, fill)
    length = socklen_t(bufsize if addrlen is None else addrlen)
    _check(fn(fd, buf, ctypes.byref(length)), call)
    return _returned(buf, bufsize, length)


# The calls that return an address take a buffer of ``bufsize`` bytes pre-filled with
# ``fill`` (``FAULT``: an invalid pointer instead of a buffer) and tell the kernel it is
# ``addrlen`` bytes long (default: ``bufsize``).  The
# page's zeroed sizeof+1 idiom is ``bufsize=SOCKADDR_UN + 1, addrlen=SOCKADDR_UN``.  The
# result holds the bytes written, the returned addrlen and the whole buffer afterwards.

def getsockname(fd: int, bufsize: int = SOCKADDR_UN, fill: bytes = b"", addrlen: int | None = None) -> Unpacked:
    return _name_call(libc.getsockname, "getsockname", fd, bufsize, fill, addrlen)


def getpeername(fd: int, bufsize: int = SOCKADDR_UN, fill: bytes = b"", addrlen: int | None = None) -> Unpacked:
    return _name_call(libc.getpeername, "getpeername", fd, bufsize, fill, addrlen)


def accept(fd: int, bufsize: int = SOCKADDR_UN, fill: bytes = b"", flags: int = 0,
           addrlen: int | None = None) -> tuple[int, Unpacked]:
    buf = _name_buffer(bufsize, fill)
    length = socklen_t(bufsize if addrlen is None else addrlen)
    newfd = _check(libc.accept4(fd, buf, ctypes.byref(length), flags), "accept")
    return newfd, _returned(buf, bufsize, length)


def recvfrom(fd: int, nbytes: int = 4096, bufsize: int = SOCKADDR_UN, fill: bytes = b"",
             flags: int = 0, addrlen: int | None = None, data=None) -> tuple[bytes, Unpacked]:
    """recvfrom(2) itself (not recvmsg) of up to ``nbytes`` data bytes; the address as
    above.  ``data=FAULT`` hands the kernel an invalid data buffer."""
    if data is FAULT:
        length = socklen_t(bufsize if addrlen is None else addrlen)
        _check(libc.recvfrom(fd, _FAULT_PTR, ctypes.c_size_t(nbytes), flags, None, None), "recvfrom")
        return b"", Unpacked(b"", length.value, b"")
    data = ctypes.create_string_buffer(max(nbytes, 1))
    buf = _name_buffer(bufsize, fill)
    length = socklen_t(bufsize if addrlen is None else addrlen)
    n = _check(libc.recvfrom(fd, data, ctypes.c_size_t(nbytes), flags, buf, ctypes.byref(length)),
               "recvfrom")
    return data.raw[: min(n, nbytes)], _returned(buf, bufsize, length)


def sendto(fd: int, data: bytes, addr, addrlen: int | None = None, flags: int = 0,
           nbytes: int | None = None) -> int:
    """sendto(2); ``addr=None`` sends to no address (like send), ``data=FAULT`` with
    ``nbytes`` hands the kernel an invalid data buffer.  With real ``data``, ``nbytes``
    (at most ``len(data)``) is the length passed, so the kernel sends that prefix."""
    dptr, dn = _in(data, nbytes)
    if nbytes is not None and data is not FAULT:
        if not 0 <= nbytes <= len(data):
            raise ValueError(f"nbytes {nbytes} outside the {len(data)}-byte buffer")
        dn = nbytes
    aptr, an = _in(addr, addrlen)
    return _check(
        libc.sendto(fd, dptr, ctypes.c_size_t(dn), flags, aptr, socklen_t(an if addrlen is None else addrlen)),
        "sendto",
    )


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", socklen_t),
        ("msg_iov", ctypes.POINTER(iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


def sendmsg(fd: int, data: bytes = b"", control: bytes = b"", name: bytes | None = None,
            flags: int = 0, namelen: int | None = None) -> int:
    """sendmsg(2) with one iovec holding ``data`` (empty means no iovec at all)."""
    keep = []
    msg = msghdr()
    if data:
        dbuf = ctypes.create_string_buffer(data, len(data))
        iov = iovec(ctypes.cast(dbuf, ctypes.c_void_p), len(data))
        keep += [dbuf, iov]
        msg.msg_iov = ctypes.pointer(iov)
        msg.msg_iovlen = 1
    if control:
        cbuf = ctypes.create_string_buffer(control, len(control))
        keep.append(cbuf)
        msg.msg_control = ctypes.cast(cbuf, ctypes.c_void_p)
        msg.msg_controllen = len(control)
    if name is not None:
        nbuf = ctypes.create_string_buffer(name, max(len(name), 1))
        keep.append(nbuf)
        msg.msg_name = ctypes.cast(nbuf, ctypes.c_void_p)
        msg.msg_namelen = len(name) if namelen is None else namelen
    return _check(libc.sendmsg(fd, ctypes.byref(msg), flags), "sendmsg")


@dataclass(frozen=True)
class Received:
    data: bytes          # the bytes placed in the buffer
    nbytes: int          # recvmsg's return value (with MSG_TRUNC, the real datagram length)
    control: bytes       # msg_controllen bytes of msg_control, for harness.cmsg.decode
    flags: int           # msg_flags
    name: Unpacked | None


def recvmsg(fd: int, bufsize: int = 4096, controllen: int = 0, flags: int = 0,
            namelen: int = 0) -> Received:
    """recvmsg(2) with a ``bufsize`` data buffer and a ``controllen`` control buffer.

    ``controllen=0`` passes msg_control = NULL, the page's "no buffer is provided" case.
    """
    dbuf = ctypes.create_string_buffer(max(bufsize, 1))
    iov = iovec(ctypes.cast(dbuf, ctypes.c_void_p), bufsize)
    msg = msghdr()
    msg.msg_iov = ctypes.pointer(iov)
    msg.msg_iovlen = 1
    cbuf = ctypes.create_string_buffer(max(controllen, 1))
    if controllen:
        msg.msg_control = ctypes.cast(cbuf, ctypes.c_void_p)
        msg.msg_controllen = controllen
    nbuf = ctypes.create_string_buffer(max(namelen, 1))
    if namelen:
        msg.msg_name = ctypes.cast(nbuf, ctypes.c_void_p)
        msg.msg_namelen = namelen
    n = _check(libc.recvmsg(fd, ctypes.byref(msg), flags), "recvmsg")
    name = None
    if namelen:
        whole = nbuf.raw[:namelen]
        name = Unpacked(whole[: min(msg.msg_namelen, namelen)], msg.msg_namelen, whole)
    return Received(
        data=dbuf.raw[: min(n, bufsize)],
        nbytes=n,
        control=cbuf.raw[: msg.msg_controllen] if controllen else b"",
        flags=msg.msg_flags,
        name=name,
    )


def getsockopt(fd: int, level: int, option: int, buflen: int, fill: bytes = b"") -> tuple[bytes, int]:
    """getsockopt(2) into ``buflen`` bytes: the bytes written and the returned optlen.

    ``fill`` pre-loads the buffer, for options that read input from it (IP_MSFILTER takes
    the group and interface there).  On failure the OSError carries ``.optlen``, the
    optlen the kernel left (ERANGE callers read the required length from it).
    """
    buf = ctypes.create_string_buffer(fill.ljust(buflen, b"\0")[:buflen] or b"\0", max(buflen, 1))
    length = socklen_t(buflen)
    ret = libc.getsockopt(fd, level, option, buf, ctypes.byref(length))
    if ret < 0:
        err = ctypes.get_errno()
        exc = OSError(err, f"getsockopt: {os.strerror(err)}")
        exc.optlen = length.value
        raise exc
    return buf.raw[: min(length.value, buflen)], length.value


def ioctl_int(fd: int, request: int) -> int:
    """ioctl(fd, request, &value) for an int-valued request (SIOCINQ, SIOCOUTQ, ...)."""
    value = ctypes.c_int(-1)
    _check(libc.ioctl(fd, ctypes.c_ulong(request), ctypes.byref(value)), "ioctl")
    return value.value
