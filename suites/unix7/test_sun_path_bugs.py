"""unix(7) BUGS and the sun_path size: Linux appends a null terminator to a pathname
bound without one; a 108-byte pathname then does not fit in sun_path, and the page's two
idioms (strnlen, a zeroed sizeof + 1 buffer) for reading such an address.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from harness import expect, rawsock, sockaddr
from harness.sockaddr import SA_FAMILY_T, SOCKADDR_UN, SUN_PATH, SUN_PATH_OFFSET
from suites.unix7.kinds import ALL, DGRAM, NAMES, unix

AF_UNIX_BYTES = sockaddr.family_bytes(socket.AF_UNIX)
STORAGE = 128                          # sizeof(struct sockaddr_storage): room for anything
NAME_108 = (b"0123456789abcdef" * 7)[:SUN_PATH]


def _name(length: int) -> bytes:
    """A relative pathname of ``length`` non-null bytes (a filename may be 255 bytes)."""
    return (b"p" + b"0123456789" * 11)[:length]


def _retrieve(call: str, fd: int, addrlen: int, bufsize: int, fill: bytes) -> tuple[bytes, int]:
    """``call`` into a buffer of ``bufsize`` bytes pre-filled with ``fill``, telling the
    kernel it is ``addrlen`` bytes (the page's sizeof+1 idiom needs the two to differ).
    Returns (whole buffer, returned addrlen)."""
    if call == "accept":
        _, got = rawsock.accept(fd, bufsize, fill, addrlen=addrlen)
    elif call == "recvfrom":
        _, got = rawsock.recvfrom(fd, 16, bufsize, fill, flags=socket.MSG_DONTWAIT, addrlen=addrlen)
    else:
        fn = rawsock.getpeername if call == "getpeername" else rawsock.getsockname
        got = fn(fd, bufsize, fill, addrlen=addrlen)
    return got.buffer, got.addrlen


def _setup(kind: int, call: str, addr: bytes, addrlen: int) -> tuple[int, list]:
    """Bind a "subject" socket to (addr, addrlen) and arrange for ``call`` to return its
    address.  Returns (the descriptor to call it on, the sockets to keep open)."""
    subject = unix(kind)
    rawsock.bind(subject.fileno(), addr, addrlen)
    keep = [subject]
    if call == "getsockname":
        return subject.fileno(), keep
    if call in ("getpeername", "getsockname-of-accepted"):
        if kind != DGRAM:
            subject.listen(1)
        peer = unix(kind)
        keep.append(peer)
        rawsock.connect(peer.fileno(), addr, addrlen)
        if call == "getpeername":
            return peer.fileno(), keep
        conn, _ = subject.accept()
        keep.append(conn)
        return conn.fileno(), keep
    other = unix(kind)
    keep.append(other)
    other.bind("other.sock")
    if kind == DGRAM:                  # recvfrom of a datagram the subject sent
        subject.sendto(b"x", "other.sock")
        return other.fileno(), keep
    other.listen(1)
    subject.connect("other.sock")
    if call == "accept":
        return other.fileno(), keep
    conn, _ = other.accept()
    keep.append(conn)
    subject.send(b"x")
    return conn.fileno(), keep


SYSCALL = {"getsockname": "getsockname", "getsockname-of-accepted": "getsockname",
           "getpeername": "getpeername", "accept": "accept", "recvfrom": "recvfrom"}
CONNECTED_ONLY = {"getsockname-of-accepted", "accept"}
CALL_CASES = [
    pytest.param(kind, call, id=f"{NAMES[kind]}-{call}", marks=pytest.mark.fault(SYSCALL[call]))
    for call in SYSCALL for kind in ALL if not (kind == DGRAM and call in CONNECTED_ONLY)]


def _unterminated(name: bytes) -> tuple[bytes, int]:
    return sockaddr.un(name), SUN_PATH_OFFSET + len(name)


# ------------------------------------------------------------------ Linux appends a null


@pytest.mark.clause("unix.7/bugs/linux-appends-null", "unix.7/bugs/retrieved-one-byte-longer",
                    "unix.7/bugs/108-bytes-beyond-sun-path", "unix.7/address-format/sun-path-108")
@pytest.mark.parametrize("length", [9, 107, 108])
@pytest.mark.parametrize("kind,call", CALL_CASES)
def test_unterminated_name_retrieved_one_byte_longer(kind, call, length):
    """"When binding a socket to an address, Linux is one of the implementations that
    append a null terminator if none is supplied in sun_path. In most cases this is
    unproblematic: when the socket address is retrieved, it will be one byte longer than
    that supplied when the socket was bound."  With 108 bytes: "if 108 non-null bytes are
    supplied when a socket is bound, then the addition of the null terminator takes the
    length of the pathname beyond sizeof(sun_path)."

    Bound with addrlen 2 + length (no null; for 108 bytes that is sizeof(struct
    sockaddr_un)): the bind succeeds, the file is named by exactly those bytes, and the
    address retrieved into a large buffer is addrlen 2 + length + 1 with a null after the
    name (111 for 108 bytes)."""
    name = _name(length)
    fd, _keep = _setup(kind, call, *_unterminated(name))
    expect.equal("file type of the bound name", stat.S_IFMT(os.lstat(name).st_mode), stat.S_IFSOCK)
    buf, addrlen = _retrieve(call, fd, STORAGE, STORAGE, b"\xa5" * STORAGE)
    expect.equal("returned addrlen (supplied + 1)", addrlen, SUN_PATH_OFFSET + length + 1)
    expect.equal("returned address", buf[:addrlen], AF_UNIX_BYTES + name + b"\0")


# (id, sun_path, addrlen): a sun_path longer than the 108 bytes of the structure.
BEYOND_SOCKADDR_UN = [
    ("108-bytes-plus-null", NAME_108 + b"\0", SOCKADDR_UN + 1),
    ("109-bytes", NAME_108 + b"x", SOCKADDR_UN + 1),
    ("108-bytes-plus-null-in-storage", NAME_108 + b"\0", STORAGE),
]


def _bind(kind, addr, addrlen):
    sock = unix(kind)
    return rawsock.bind(sock.fileno(), addr, addrlen)


def _connect(kind, addr, addrlen):
    server = unix(kind)
    rawsock.bind(server.fileno(), sockaddr.un(NAME_108), SOCKADDR_UN)
    if kind != DGRAM:
        server.listen(1)
    client = unix(kind)
    return rawsock.connect(client.fileno(), addr, addrlen)


def _sendto(kind, addr, addrlen):
    server = unix(kind)
    rawsock.bind(server.fileno(), sockaddr.un(NAME_108), SOCKADDR_UN)
    client = unix(kind)
    return rawsock.sendto(client.fileno(), b"x", addr, addrlen)


INPUT_CALLS = [pytest.param(kind, fn, id=f"{NAMES[kind]}-{fn.__name__[1:]}",
                            marks=pytest.mark.fault(fn.__name__[1:]))
               for fn in (_bind, _connect) for kind in ALL] + [
    pytest.param(DGRAM, _sendto, id="dgram-sendto", marks=pytest.mark.fault("sendto"))]


@pytest.mark.clause("unix.7/address-format/sun-path-108")
@pytest.mark.parametrize("path,addrlen", [pytest.param(p, n, id=i) for i, p, n in BEYOND_SOCKADDR_UN])
@pytest.mark.parametrize("kind,fn", INPUT_CALLS)
def test_addrlen_beyond_sockaddr_un_is_invalid(kind, fn, path, addrlen):
    """"On Linux, sun_path is 108 bytes in size; see also BUGS, below."

    An address whose addrlen exceeds sizeof(struct sockaddr_un) (110) — a 108-byte
    pathname with its null, or 109 bytes — is an invalid argument for bind, connect and
    sendto: EINVAL ("Invalid argument passed").  The same 108 bytes without the null
    (addrlen 110) name a socket that exists here."""
    addr = sockaddr.un(path, pad_to=addrlen)
    expect.errno("EINVAL", fn, kind, addr, addrlen, what=f"{fn.__name__[1:]} (addrlen {addrlen})")


# ------------------------------------------------------------------ 108 bytes retrieved


@pytest.mark.clause("unix.7/bugs/108-bytes-no-null-terminator",
                    "unix.7/pathname-sockets/output-exceeds-input",
                    "unix.7/pathname-sockets/returned-addrlen-actual-size")
@pytest.mark.parametrize("kind,call", CALL_CASES)
def test_108_byte_name_has_no_null_in_sockaddr_un(kind, call):
    """"Consequently, when retrieving the socket address (for example, via accept(2)), if
    the input addrlen argument for the retrieving call is specified as sizeof(struct
    sockaddr_un), then the returned address structure won't have a null terminator in
    sun_path."

    Input addrlen 110: the returned addrlen is 111 (the actual size, exceeding the input),
    and the 110 bytes returned are the family and the 108 non-null name bytes."""
    fd, _keep = _setup(kind, call, *_unterminated(NAME_108))
    buf, addrlen = _retrieve(call, fd, SOCKADDR_UN, SOCKADDR_UN, b"")
    expect.equal("returned addrlen", addrlen, SOCKADDR_UN + 1)
    expect.equal("returned structure", buf, AF_UNIX_BYTES + NAME_108)
    expect.equal("null bytes in sun_path", buf[SUN_PATH_OFFSET:].count(b"\0"), 0)


@pytest.mark.clause("unix.7/bugs/zeroed-buffer-idiom")
@pytest.mark.parametrize("kind,call", CALL_CASES)
def test_zeroed_sizeof_plus_one_buffer_terminates_sun_path(kind, call):
    """"Alternatively, an application can retrieve the socket address by allocating a
    buffer of size sizeof(struct sockaddr_un)+1 that is zeroed out before the retrieval.
    The retrieving call can specify addrlen as sizeof(struct sockaddr_un), and the extra
    zero byte ensures that there will be a null terminator for the string returned in
    sun_path"

    Buffer of 111 zero bytes, addrlen 110, 108-byte name: sun_path read as a C string is
    the 108-byte name.  The idiom holds because the kernel writes no more than addrlen
    bytes: with the extra byte set to 0xa5 beforehand, it is still 0xa5 afterwards."""
    fd, _keep = _setup(kind, call, *_unterminated(NAME_108))
    buf, addrlen = _retrieve(call, fd, SOCKADDR_UN, SOCKADDR_UN + 1, b"")
    expect.equal("returned addrlen", addrlen, SOCKADDR_UN + 1)
    expect.equal("extra byte", buf[SOCKADDR_UN:], b"\0")
    expect.equal("sun_path as a C string", buf[SUN_PATH_OFFSET:].split(b"\0")[0], NAME_108)
    if call not in ("accept", "recvfrom"):      # those consume the connection / datagram
        buf, _ = _retrieve(call, fd, SOCKADDR_UN, SOCKADDR_UN + 1, b"\xa5" * (SOCKADDR_UN + 1))
        expect.equal("byte past addrlen after the call (set to 0xa5 before)", buf[SOCKADDR_UN:], b"\xa5")


@pytest.mark.clause("unix.7/bugs/strnlen-idiom")
@pytest.mark.parametrize("length", [1, 107, 108])
@pytest.mark.parametrize("kind,call", CALL_CASES)
def test_strnlen_idiom_gives_the_path_length(kind, call, length):
    """"the number of valid bytes in the pathname is: strnlen(addr.sun_path, addrlen -
    offsetof(sockaddr_un, sun_path))"

    Retrieved into a sizeof(struct sockaddr_un) buffer, with the returned addrlen capped
    at the buffer size (it is one past it for 108 bytes): the formula gives the length of
    the bound path, and those bytes are the path."""
    name = _name(length)
    addr = sockaddr.pathname(name) if length < SUN_PATH else sockaddr.un(name)
    fd, _keep = _setup(kind, call, addr, len(addr))
    buf, addrlen = _retrieve(call, fd, SOCKADDR_UN, SOCKADDR_UN, b"\xa5" * SOCKADDR_UN)
    sun_path = buf[SUN_PATH_OFFSET: min(addrlen, SOCKADDR_UN)]
    valid = len(sun_path.split(b"\0")[0])           # strnlen(sun_path, that many bytes)
    expect.equal("strnlen(sun_path, addrlen - offsetof)", valid, length)
    expect.equal("the valid bytes", sun_path[:valid], name)


@pytest.mark.clause("unix.7/bugs/follow-rules-avoids-messiness")
@pytest.mark.parametrize("form", ["strlen+1", "sizeof"])
@pytest.mark.parametrize("length", [1, 107])
@pytest.mark.parametrize("kind,call", CALL_CASES)
def test_rule_following_name_is_always_terminated(kind, call, length, form):
    """"This sort of messiness can be avoided if it is guaranteed that the applications
    that create pathname sockets follow the rules outlined above under Pathname sockets."

    A null-terminated path of at most 107 bytes, bound with addrlen 2 + strlen + 1 or
    sizeof(struct sockaddr_un): retrieved with input addrlen sizeof(struct sockaddr_un)
    into a buffer pre-filled with 0xa5, the returned addrlen does not exceed the input and
    sun_path holds the path and its terminating null."""
    name = _name(length)
    addr = sockaddr.pathname(name)
    if form == "sizeof":
        addr = addr.ljust(SOCKADDR_UN, b"\0")
    fd, _keep = _setup(kind, call, addr, len(addr))
    buf, addrlen = _retrieve(call, fd, SOCKADDR_UN, SOCKADDR_UN, b"\xa5" * SOCKADDR_UN)
    expect.true("returned addrlen <= input addrlen", addrlen <= SOCKADDR_UN, f"<= {SOCKADDR_UN}", addrlen)
    expect.equal("returned addrlen", addrlen, SA_FAMILY_T + length + 1)
    expect.equal("sun_path up to addrlen", buf[SUN_PATH_OFFSET:addrlen], name + b"\0")
