"""IP_PASSSEC(2const) with labeled networking: SCM_SECURITY on UDP over NetLabel (CIPSO
"local", a static label) and over labeled IPsec, the same format as SO_PEERSEC, "only UDP"
against TCP and SCTP, and the SCM_SECURITY numbering at level SOL_IP.

These need an active SELinux in the VM environment (catalogue ``requires``); elsewhere they
are skipped before anything is set up.  The labeling itself is set up by the fixtures of
:mod:`harness.fixtures` / :mod:`harness.labeling` for each test and torn down after it:
NetLabel (global, configured from the pytest process in the initial namespace) for traffic
from this process's type to 127.0.0.1 (CIPSO local DOI) or from 127.0.0.4 (static label);
labeled IPsec inside the test's own namespace on 127.0.0.3.  A fixture that does not take
fails the test, naming what is missing.  Every test also checks the control case: a
datagram over 127.0.0.9, which nothing labels, brings no SCM_SECURITY.

The sending sockets are made by this process without a socket-create context, so their
context -- the "security context of the peer socket" the receiver must see -- is this
process's own (:func:`harness.labeling.own_context`).
"""

from __future__ import annotations

import socket

import pytest

from harness import cmsg, expect, labeling, topology
from harness.inet import IP_PASSSEC, IPPROTO_SCTP, SOL_IP, ip_cmsgs, recv_control, stream_pair
from harness.labeling import peersec
from suites.ip_passsec._passsec import (SCM_SECURITY, datagram_controls, expect_unlabeled_gets_nothing,
                                        one_context)

P = "ip_passsec.2const/description/"
C = "ip_passsec.2const/caveats/"

@pytest.mark.clause(P + "scm-security-netlabel")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("netlabel", ["cipso-local", "static-label"], indirect=True)
def test_scm_security_over_netlabel(netlabel):
    """"If labeled IPSEC or NetLabel is configured on the sending and receiving hosts,
    this option enables receiving of the security context of the peer socket in an
    ancillary message of type SCM_SECURITY retrieved using recvmsg(2)."  (NetLabel.)

    cipso-local: the CIPSO local DOI carries the sending socket's full context over
    loopback.  static-label: packets from 127.0.0.4 arrive unlabeled and NetLabel gives
    them the static label configured for that source, here the context of the sockets
    this process makes.  Either way one SOL_IP SCM_SECURITY message arrives with the
    datagram and holds the sending socket's context; over the unlabeled address none."""
    own = labeling.own_context()
    items = datagram_controls(netlabel.address)
    context = one_context(items, f"a datagram over {netlabel.kind} ({netlabel.address})")
    expect.equal("SCM_SECURITY context (without a terminating null)", labeling.strip_nul(context), own)
    expect_unlabeled_gets_nothing()


@pytest.mark.clause(P + "scm-security-labeled-ipsec")
@pytest.mark.fault("recvmsg")
def test_scm_security_over_labeled_ipsec():
    """"If labeled IPSEC or NetLabel is configured on the sending and receiving hosts,
    this option enables receiving of the security context of the peer socket in an
    ancillary message of type SCM_SECURITY retrieved using recvmsg(2)."  (Labeled IPsec.)

    In the test's namespace: an ESP transport SA 127.0.0.3 -> 127.0.0.3 whose context is
    the sending socket's, and an output policy for UDP.  The datagram goes through the SA
    (its packet count rises) and arrives with one SOL_IP SCM_SECURITY holding the sending
    socket's context; over the unlabeled address none."""
    own = labeling.own_context()
    topo = topology.Topology()
    with labeling.labeled_ipsec(topo, src=labeling.IPSEC_ADDR, dst=labeling.IPSEC_ADDR, contexts=[own],
                                proto=socket.IPPROTO_UDP) as ipsec:
        items = datagram_controls(labeling.IPSEC_ADDR)
        packets = expect.observe("packets the labeled SA carried", ipsec.packets())
        context = one_context(items, "a datagram over labeled IPsec")
        expect.equal("SCM_SECURITY context (without a terminating null)", labeling.strip_nul(context), own)
        expect.true("the datagram went through the labeled SA", packets > 0, "packets > 0", packets)
        expect_unlabeled_gets_nothing()


def _stream_pair_or_skip(proto: int):
    """A connection over the CIPSO-local address; SCTP skips where the kernel has none."""
    try:
        return stream_pair(labeling.CIPSO_LOCAL_ADDR, proto)
    except OSError as exc:
        if proto == IPPROTO_SCTP and exc.errno in (93, 94, 97):  # EPROTONOSUPPORT, ESOCKTNOSUPPORT, EAFNOSUPPORT
            expect.skip(f"this kernel has no SCTP (socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP): {exc.strerror})")
        raise


STREAMS = [pytest.param(0, id="tcp"), pytest.param(IPPROTO_SCTP, id="sctp")]


@pytest.mark.clause(P + "udp-only")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("proto", STREAMS)
def test_only_udp_delivers_scm_security(proto, cipso_local):
    """"This option is supported only for UDP sockets;"

    Over the same labeled path (CIPSO local, 127.0.0.1): a UDP datagram to an IP_PASSSEC
    receiver arrives with SCM_SECURITY; data read with recvmsg(2) from a TCP (or SCTP)
    socket that set IP_PASSSEC never brings one.  Whether setsockopt(IP_PASSSEC) is
    accepted on the stream socket is recorded (the page does not say it is refused)."""
    one_context(datagram_controls(cipso_local.address), "a UDP datagram (the labeled path works)")
    client, conn = _stream_pair_or_skip(proto)
    try:
        conn.setsockopt(SOL_IP, IP_PASSSEC, 1)
        expect.observe("setsockopt(IP_PASSSEC) on the stream socket", "accepted")
    except OSError as exc:
        expect.observe("setsockopt(IP_PASSSEC) on the stream socket", f"refused: {exc.strerror}")
    client.sendall(b"stream data")
    data, items = recv_control(conn, "stream data")
    expect.equal("stream data received", data, b"stream data")
    expect.observe("control messages with stream data", [(c.level, c.type) for c in items])
    expect.equal("SCM_SECURITY messages with stream data", ip_cmsgs(items, SCM_SECURITY)
                 + cmsg.find(items, socket.SOL_SOCKET, SCM_SECURITY), [])


@pytest.mark.clause(P + "tcp-sctp-use-so-peersec")
@pytest.mark.fault("getsockopt")
@pytest.mark.parametrize("proto", STREAMS)
def test_stream_peer_context_through_so_peersec(proto, cipso_local):
    """"for TCP or SCTP sockets, see SO_PEERSEC(2const)."

    Over CIPSO local: getsockopt(SOL_SOCKET, SO_PEERSEC) on both ends of a TCP (or SCTP)
    connection made by this process returns this process's context."""
    own = labeling.own_context()
    for side, sock in zip(("connecting", "accepted"), _stream_pair_or_skip(proto)):
        data, optlen = expect.succeeds(peersec, sock, what=f"getsockopt(SO_PEERSEC) on the {side} socket")
        expect.equal(f"SO_PEERSEC of the {side} socket", labeling.strip_nul(data), own)


@pytest.mark.clause(P + "same-format-as-so-peersec")
@pytest.mark.fault("recvmsg", "getsockopt")
def test_scm_security_same_format_as_so_peersec(cipso_local):
    """"The security context returned in the SCM_SECURITY ancillary message is of the
    same format as the one described in SO_PEERSEC(2const)."

    From the same process, over the same labeling (CIPSO local): the SCM_SECURITY payload
    of a UDP datagram and the SO_PEERSEC value of a TCP connection are the same bytes,
    a terminating null included or not alike."""
    scm = one_context(datagram_controls(cipso_local.address), "a UDP datagram")
    _, conn = stream_pair(cipso_local.address)
    data, optlen = peersec(conn)
    expect.observe("SO_PEERSEC value", data)
    expect.equal("SCM_SECURITY payload vs SO_PEERSEC value, byte for byte", scm, data)


@pytest.mark.clause(C + "reuses-scm-security-type")
@pytest.mark.fault("recvmsg")
def test_delivered_as_scm_security_at_sol_ip(cipso_local):
    """"The reuse of the SCM_SECURITY message type for the IP_PASSSEC socket option was
    likely a mistake,"  The fact behind the judgement: the message IP_PASSSEC delivers
    has level IPPROTO_IP (SOL_IP) and type SCM_SECURITY (3) -- not IP_PASSSEC (18), and
    not level SOL_SOCKET."""
    items = datagram_controls(cipso_local.address)
    expect.observe("control messages (level, type)", [(c.level, c.type) for c in items])
    expect.equal("SOL_IP messages of type SCM_SECURITY (3)", len(ip_cmsgs(items, SCM_SECURITY)), 1)
    expect.equal("SOL_IP messages of type IP_PASSSEC (18)", ip_cmsgs(items, IP_PASSSEC), [])
    expect.equal("SOL_SOCKET messages of type SCM_SECURITY", cmsg.find(items, socket.SOL_SOCKET, SCM_SECURITY), [])
