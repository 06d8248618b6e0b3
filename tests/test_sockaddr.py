"""The one sockaddr packer: exact bytes, and reading back what the kernel returned."""

import socket
import struct

import pytest

from harness import sockaddr


def test_sizes_match_struct_sockaddr_un():
    assert sockaddr.SA_FAMILY_T == 2
    assert sockaddr.SUN_PATH == 108
    assert sockaddr.SOCKADDR_UN == 110


def test_un_adds_nothing():
    assert sockaddr.un(b"abc") == struct.pack("=H", socket.AF_UNIX) + b"abc"
    assert sockaddr.un() == struct.pack("=H", socket.AF_UNIX)


def test_un_pads_and_refuses_overflow():
    raw = sockaddr.un(b"a", pad_to=sockaddr.SOCKADDR_UN)
    assert len(raw) == 110 and raw[3:] == bytes(107)
    with pytest.raises(ValueError):
        sockaddr.un(b"x" * 109, pad_to=sockaddr.SOCKADDR_UN)


def test_pathname_and_abstract():
    assert sockaddr.pathname("p")[2:] == b"p\0"
    assert sockaddr.abstract("n")[2:] == b"\0n"


def test_other_family():
    assert struct.unpack("=H", sockaddr.un(b"x", family=socket.AF_INET)[:2])[0] == socket.AF_INET


@pytest.mark.parametrize("addrlen,raw,kind", [
    (2, sockaddr.un(), "unnamed"),
    (8, sockaddr.abstract(b"0a1b2"), "abstract"),
    (5, sockaddr.pathname("ab"), "pathname"),
])
def test_unpacked_kind(addrlen, raw, kind):
    u = sockaddr.Unpacked(raw[:addrlen], addrlen, raw)
    assert u.kind == kind
    assert u.family == socket.AF_UNIX


def test_abstract_name_is_covered_bytes_less_leading_null():
    raw = sockaddr.abstract(b"a\0b")
    u = sockaddr.Unpacked(raw, len(raw), raw)
    assert u.abstract_name == b"a\0b"


def test_in4_round_trip():
    raw = sockaddr.in4("127.0.0.1", 8080)
    assert len(raw) == sockaddr.SOCKADDR_IN
    assert raw[2:4] == b"\x1f\x90"          # network byte order
    assert sockaddr.parse_in4(raw) == (socket.AF_INET, "127.0.0.1", 8080)
