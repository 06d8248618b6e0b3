"""unix(7) security labels: SO_PEERSEC, and receiving SCM_SECURITY with SO_PASSSEC.

Every clause here needs an active SELinux LSM (catalogue ``requires``); on a host without
it these tests are skipped before they run.  The SO_PASSSEC flag itself (set and read
back, no LSM needed) is checked in test_socket_options.py.
"""

from __future__ import annotations

import socket

import pytest

from harness import cmsg, expect, rawsock
from harness.labeling import own_context, peersec, strip_nul
from suites.unix7.kinds import DGRAM, STREAM, pair

SOL_SOCKET = socket.SOL_SOCKET
SO_PASSSEC = socket.SO_PASSSEC
NAME_MAX = 255


# The clause that says SO_PEERSEC works for this kind of connection at all: a first
# getsockopt that fails is a deviation from it, not from the clause the test goes on to check.
SUPPORT = {"pathname": "unix.7/socket-options/so-peersec-stream",
           "socketpair": "unix.7/socket-options/so-peersec-socketpair"}

PAIRS = [  # (kind, how the two sockets are connected, the clauses the case checks)
    pytest.param(STREAM, "pathname", id="stream-connected",
                 marks=pytest.mark.clause("unix.7/socket-options/so-peersec-stream")),
    pytest.param(STREAM, "socketpair", id="stream-socketpair",
                 marks=pytest.mark.clause("unix.7/socket-options/so-peersec-socketpair")),
    pytest.param(DGRAM, "socketpair", id="dgram-socketpair",
                 marks=pytest.mark.clause("unix.7/socket-options/so-peersec-socketpair")),
]


@pytest.mark.clause("unix.7/socket-options/so-peersec-returns-context", "unix.7/socket-options/so-peersec-buffer")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("kind,how", PAIRS)
def test_peersec_returns_peer_context(kind, how):
    """"This read-only socket option returns the security context of the peer socket
    connected to this socket."  "The argument to getsockopt(2) is a pointer to a buffer of
    the specified length in bytes into which the security context string will be copied."
    "supported since Linux 2.6.2 for connected stream sockets, and since Linux 4.18 also
    for stream and datagram socket pairs created using socketpair(2)."

    With a NAME_MAX buffer, getsockopt(SO_PEERSEC) succeeds on both ends, copies a
    non-empty context of optlen bytes, and both ends (made by this process) agree.
    """
    a, b = pair(kind, how)
    contexts = []
    for end, sock in (("connecting", a), ("accepted", b)):
        raw, optlen = expect.succeeds(peersec, sock, NAME_MAX, what=f"getsockopt(SO_PEERSEC) on the {end} end",
                                      clause=SUPPORT[how])
        expect.observe(f"context of the {end} end's peer", raw)
        expect.true(f"{end} end: optlen fits the buffer", 0 < optlen <= NAME_MAX, f"1..{NAME_MAX}", optlen)
        expect.equal(f"{end} end: bytes copied", len(raw), optlen)
        expect.true(f"{end} end: context is not empty", bool(strip_nul(raw)), "a context", raw)
        contexts.append(strip_nul(raw))
    expect.equal("the two ends' peer contexts", contexts[0], contexts[1])


@pytest.mark.clause("unix.7/socket-options/so-peersec-default-creator")
@pytest.mark.fault("getsockopt")
def test_peersec_default_is_creator_context():
    """"By default, this will be the same as the security context of the process that
    created the peer socket unless overridden by the policy or by a process with the
    required permissions."

    Only the default case: this process creates both sockets, so the peer's context is
    this process's own (/proc/self/attr/current).
    """
    a, b = pair(STREAM, "pathname")
    raw, _ = peersec(b, NAME_MAX)
    expect.equal("peer context (without a terminating null)", strip_nul(raw), own_context())


@pytest.mark.clause("unix.7/socket-options/so-peersec-erange", "unix.7/socket-options/so-peersec-retry")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("kind,how", PAIRS)
def test_peersec_short_buffer_erange_then_retry(kind, how):
    """"If the buffer length is less than the length of the security context string, then
    getsockopt(2) returns -1, sets errno to ERANGE, and returns the required length via
    optlen."  "Resizing the buffer to the returned length and retrying may be necessary."

    A 1-byte buffer fails with ERANGE and optlen set to the length a NAME_MAX buffer
    receives; a retry with that length succeeds with the same bytes.
    """
    a, _ = pair(kind, how)
    full, full_len = expect.succeeds(peersec, a, NAME_MAX, what="getsockopt(SO_PEERSEC) into NAME_MAX bytes",
                                     clause=SUPPORT[how])
    exc = expect.errno("ERANGE", peersec, a, 1, what="getsockopt(SO_PEERSEC) into 1 byte")
    expect.equal("required length returned in optlen", exc.optlen, full_len)
    raw, optlen = expect.succeeds(peersec, a, exc.optlen, what="retry with the returned length")
    expect.equal("retry: optlen", optlen, full_len)
    expect.equal("retry: context", raw, full)


@pytest.mark.clause("unix.7/socket-options/so-peersec-nul-optional", "unix.7/socket-options/so-peersec-printable")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("kind,how", PAIRS)
def test_peersec_string_form(kind, how):
    """"The security context string may include a terminating null character in the
    returned length, but is not guaranteed to do so"  "The string is printable, does not
    contain non-terminating null characters, and is in an unspecified encoding"

    Either form is accepted (length n or n + 1 with a final null); a null byte anywhere but
    last, or a control character, is a deviation.  The encoding is not checked.
    """
    a, _ = pair(kind, how)
    raw, optlen = expect.succeeds(peersec, a, NAME_MAX, what="getsockopt(SO_PEERSEC) into NAME_MAX bytes",
                                  clause=SUPPORT[how])
    expect.observe("terminating null included", raw.endswith(b"\0"))
    body = strip_nul(raw)
    expect.equal("non-terminating null bytes", body.count(b"\0"), 0)
    controls = [c for c in body if c < 0x20 or c == 0x7F]
    expect.equal("control characters in the context", controls, [])


PASSSEC_SUPPORT = {DGRAM: "unix.7/socket-options/so-passsec-dgram",
                   STREAM: "unix.7/socket-options/so-passsec-stream"}
PASSSEC_KINDS = [
    pytest.param(DGRAM, id="dgram", marks=pytest.mark.clause(PASSSEC_SUPPORT[DGRAM])),
    pytest.param(STREAM, id="stream", marks=pytest.mark.clause(PASSSEC_SUPPORT[STREAM])),
]


@pytest.mark.clause("unix.7/socket-options/so-passsec-receipt")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("kind", PASSSEC_KINDS)
def test_passsec_delivers_scm_security(kind):
    """"Enables receiving of the SELinux security label of the peer socket in an ancillary
    message of type SCM_SECURITY"  "The SO_PASSSEC option is supported for UNIX domain
    datagram sockets since Linux 2.6.18; support for UNIX domain stream sockets was added
    in Linux 4.2."

    With SO_PASSSEC set on the receiver, a plain message arrives with one SCM_SECURITY
    holding the sending socket's label.  This process created the sending socket, so with
    the policy's default labelling that is this process's own context.
    """
    sender, receiver = socket.socketpair(socket.AF_UNIX, kind)
    receiver.setsockopt(SOL_SOCKET, SO_PASSSEC, 1)
    sender.send(b"x")
    got = rawsock.recvmsg(receiver.fileno(), 1, cmsg.cmsg_space(NAME_MAX + 1) * 2, flags=socket.MSG_DONTWAIT)
    labels = [c.data for c in cmsg.find(cmsg.decode(got.control), SOL_SOCKET, cmsg.SCM_SECURITY)]
    expect.observe("SCM_SECURITY data", labels)
    expect.equal("SCM_SECURITY messages", len(labels), 1)
    expect.equal("SCM_SECURITY label (without a terminating null)", strip_nul(labels[0]), own_context(),
                 clause=PASSSEC_SUPPORT[kind])
