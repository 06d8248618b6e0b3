"""unix(7) SCM_SECURITY: the peer socket's SELinux context, delivered to a receiver that
set SO_PASSSEC.

The sender's socket is made by the test process itself, so its label is the process's
context (/proc/self/attr/current, no socket-create context is set).  These tests need an
active SELinux (catalogue requirement lsm:selinux); elsewhere they are skipped before they
run.  SO_PASSSEC works on datagram sockets since Linux 2.6.18 and on stream sockets since
4.2 (the page); seqpacket receives through the datagram path.
"""

from __future__ import annotations

import socket

import pytest

from harness import cmsg, expect, kernel, rawsock
from harness.labeling import own_context
from suites.unix7.kinds import STREAM, over, pair

SO_PASSSEC = getattr(socket, "SO_PASSSEC", 34)
NAME_MAX = 255
A = "unix.7/ancillary/"


def _pair(kind: int, passsec: bool):
    if kind == STREAM and not kernel.at_least(4, 2):
        expect.skip("SO_PASSSEC on UNIX domain stream sockets arrived in Linux 4.2")
    sender, receiver = pair(kind)
    if passsec:
        receiver.setsockopt(socket.SOL_SOCKET, SO_PASSSEC, 1)
    return sender, receiver


def _receive(receiver, controllen: int):
    """The next byte on ``receiver`` and its SCM_SECURITY messages."""
    got = rawsock.recvmsg(receiver.fileno(), 1, controllen, socket.MSG_DONTWAIT)
    expect.equal("data received", got.data, b"x")
    return got, cmsg.find(cmsg.decode(got.control), cmsg.SOL_SOCKET, cmsg.SCM_SECURITY)


def _one_context(items) -> bytes:
    expect.equal("number of SCM_SECURITY messages received", len(items), 1)
    return items[0].context


@pytest.mark.clause(A + "scm-security-receive", A + "scm-security-null-terminated")
@pytest.mark.fault("recvmsg")
@over()
def test_scm_security_is_senders_context_null_terminated(kind):
    """"SCM_SECURITY Receive the SELinux security context (the security label) of the
    peer socket.  The received ancillary data is a null-terminated string containing the
    security context."  The data ends in its only null byte, and the string before it is
    the sending socket's context (the sending process's own)."""
    sender, receiver = _pair(kind, passsec=True)
    sender.send(b"x")
    _, items = _receive(receiver, cmsg.cmsg_space(4096))
    data = _one_context(items)
    expect.equal("last byte of the SCM_SECURITY data", data[-1:], b"\0", clause=A + "scm-security-null-terminated")
    expect.equal("null bytes in the SCM_SECURITY data", data.count(b"\0"), 1,
                 clause=A + "scm-security-null-terminated")
    expect.equal("security context received", data[:-1], own_context(), clause=A + "scm-security-receive")


@pytest.mark.clause(A + "scm-security-name-max")
@pytest.mark.fault("recvmsg")
@over()
def test_scm_security_fits_in_name_max(kind):
    """"The receiver should allocate at least NAME_MAX bytes in the data portion of the
    ancillary message for this data."  With a control buffer of CMSG_SPACE(NAME_MAX) the
    context arrives whole: no MSG_CTRUNC, the message is not cut, its data is at most
    NAME_MAX bytes."""
    sender, receiver = _pair(kind, passsec=True)
    sender.send(b"x")
    got, items = _receive(receiver, cmsg.cmsg_space(NAME_MAX))
    expect.equal("MSG_CTRUNC set in msg_flags", bool(got.flags & socket.MSG_CTRUNC), False)
    data = _one_context(items)
    expect.equal("SCM_SECURITY message cut short", items[0].truncated, False)
    expect.true("SCM_SECURITY data fits in NAME_MAX bytes", len(data) <= NAME_MAX,
                f"<= {NAME_MAX} bytes", f"{len(data)} bytes")


@pytest.mark.clause(A + "scm-security-needs-so-passsec")
@pytest.mark.fault("recvmsg")
@over()
def test_scm_security_needs_so_passsec(kind):
    """"To receive the security context, the SO_PASSSEC option must be enabled on the
    socket."  Without SO_PASSSEC on the receiving socket (the sender has it set on its own)
    no SCM_SECURITY arrives; once the receiver enables it, the next byte brings it."""
    sender, receiver = _pair(kind, passsec=False)
    sender.setsockopt(socket.SOL_SOCKET, SO_PASSSEC, 1)
    sender.send(b"x")
    _, items = _receive(receiver, cmsg.cmsg_space(4096))
    expect.equal("SCM_SECURITY messages received without SO_PASSSEC", len(items), 0)
    receiver.setsockopt(socket.SOL_SOCKET, SO_PASSSEC, 1)
    sender.send(b"x")
    _, items = _receive(receiver, cmsg.cmsg_space(4096))
    expect.equal("security context received with SO_PASSSEC", _one_context(items).rstrip(b"\0"),
                 own_context())
