"""ip(7) labeled networking: IP_PASSSEC (SCM_SECURITY with UDP datagrams) and SO_PEERSEC
(the peer's security context of a stream connection), over loopback.

Most of these run only where an LSM labels the traffic (the catalogue requires an active
SELinux and the VM environment: an MLS policy, selinuxfs at /sys/fs/selinux, the test
process in a context whose user:role:type differs from those of the policy's netmsg and
unlabeled initial SIDs, esp4 and the null cipher loadable).  The labeling itself is set up
by each test's fixtures and torn down after it (:mod:`harness.fixtures`,
:mod:`harness.labeling`), not expected from the environment:

- ``cipso_local``: NetLabel CIPSO "local" DOI for traffic from this process's type to
  127.0.0.1 (full contexts over loopback);
- ``cipso_pass``: a CIPSO pass-through DOI (tag 1) for traffic to 127.0.0.2 (the MLS part
  only);
- labeled IPsec on 127.0.0.3, configured in the test's own namespace
  (:func:`harness.labeling.labeled_ipsec`);
- everything else unlabeled.

NetLabel is global; the fixtures configure it from the pytest process, in the initial
network namespace, and check it is restored.  A fixture that does not take fails the
test, naming the missing part; it never skips or passes.  The IP_PASSSEC checks are shared
with the IP_PASSSEC(2const) suite (``suites/ip_passsec/_passsec.py``).
"""

from __future__ import annotations

import socket

import pytest

from harness import expect, labeling, topology
from harness.inet import IP_OPTIONS, IP_PASSSEC, SOL_IP, WAIT, inet, ip_cmsgs, recv_control, stream_pair
from harness.labeling import (SO_PEERSEC, FixtureError, context_type, initial_context, mls_part, own_context,
                              peersec, strip_nul, user_role_type)
from suites.ip7._ip import over
from suites.ip_passsec._passsec import (SCM_SECURITY, datagram_controls, expect_hdrincl_never_a_cmsg_type,
                                        expect_unlabeled_gets_nothing, one_context)

IPOPT_CIPSO = 134               # the CIPSO IP option type (RFC draft, FIPS 188)


# ------------------------------------------------------------------- IP_PASSSEC


@pytest.mark.clause("ip.7/ip-passsec/no-conflict-ip-hdrincl")
@pytest.mark.fault("recvmsg", "sendmsg")
def test_scm_security_value_is_ip_hdrincl_never_a_cmsg():
    """"There is no conflict currently since the IP option with the same value as
    SCM_SECURITY is IP_HDRINCL and this is never used for a control message type."

    SCM_SECURITY == IP_HDRINCL == 3.  With every IP_RECV* flag on (and IP_PASSSEC off),
    no SOL_IP control message of type 3 arrives; sendmsg(2) with a SOL_IP control message
    of type 3 is refused with EINVAL (not a control message IP knows)."""
    expect.equal("SCM_SECURITY", SCM_SECURITY, 3)
    expect_hdrincl_never_a_cmsg_type()


@pytest.mark.clause("ip.7/ip-passsec/scm-security", "ip.7/ip-passsec/scm-security-type-reuse")
@pytest.mark.fault("recvmsg")
def test_passsec_passes_scm_security(cipso_local):
    """"If labeled IPSEC or NetLabel is configured on the sending and receiving hosts,
    this option enables receiving of the security context of the peer socket in an
    ancillary message of type SCM_SECURITY retrieved using recvmsg(2)."  "Note: the reuse
    of the SCM_SECURITY message type for the IP_PASSSEC socket option ..."

    Fixture: NetLabel CIPSO local for 127.0.0.1.  The datagram comes with one SOL_IP
    control message of type SCM_SECURITY (3), none of type IP_PASSSEC (18), holding the
    sending socket's context (this process's); a datagram over an unlabeled address
    brings none."""
    items = datagram_controls(cipso_local.address)
    context = one_context(items, "a datagram over CIPSO local")
    expect.equal("SOL_IP control messages of type IP_PASSSEC (18)", ip_cmsgs(items, IP_PASSSEC), [])
    expect.equal("security context (without a terminating null)", strip_nul(context), own_context())
    expect_unlabeled_gets_nothing()


@pytest.mark.clause("ip.7/ip-passsec/udp-only")
@pytest.mark.fault("recvmsg")
def test_passsec_udp_only(cipso_local):
    """"This option is supported only for UDP sockets; for TCP or SCTP sockets, see the
    description of the SO_PEERSEC option below."

    Over CIPSO local: a UDP datagram to an IP_PASSSEC receiver comes with SCM_SECURITY;
    TCP data read by recvmsg from a socket with IP_PASSSEC set never does."""
    one_context(datagram_controls(cipso_local.address), "a UDP datagram")
    client, conn = stream_pair(cipso_local.address)
    conn.setsockopt(SOL_IP, IP_PASSSEC, 1)
    client.sendall(b"stream")
    data, items = recv_control(conn, "TCP data")
    expect.equal("TCP data", data, b"stream")
    expect.equal("SCM_SECURITY messages with TCP data", ip_cmsgs(items, SCM_SECURITY), [])


@pytest.mark.clause("ip.7/ip-passsec/format-as-so-peersec")
@pytest.mark.fault("recvmsg", "getsockopt")
def test_passsec_context_formatted_as_so_peersec(cipso_local):
    """"The security context returned in the SCM_SECURITY ancillary message is of the
    same format as the one described under the SO_PEERSEC option below."

    Over CIPSO local, from the same peer process: the SCM_SECURITY context of a UDP
    datagram and SO_PEERSEC of a TCP connection are the same string (a terminating null
    is optional in both), without inner nulls."""
    context = one_context(datagram_controls(cipso_local.address), "a UDP datagram")
    _, conn = stream_pair(cipso_local.address)
    value, _ = peersec(conn)
    expect.equal("SCM_SECURITY context vs SO_PEERSEC", strip_nul(context), strip_nul(value))
    expect.equal("nulls inside the SCM_SECURITY context", strip_nul(context).count(b"\0"), 0)


# ------------------------------------------------------------------- SO_PEERSEC


@pytest.mark.clause("ip.7/so-peersec/read-only")
@pytest.mark.fault("setsockopt")
@over()
def test_so_peersec_is_read_only(kind):
    """"this read-only socket option returns the security context of the peer socket"

    setsockopt(SOL_SOCKET, SO_PEERSEC) fails with ENOPROTOOPT (no such settable option),
    for an int and for a context-sized buffer alike."""
    s = inet(kind)
    for value in (1, b"system_u:object_r:unlabeled_t:s0\0"):
        expect.errno("ENOPROTOOPT", s.setsockopt, socket.SOL_SOCKET, SO_PEERSEC, value,
                     what=f"setsockopt(SO_PEERSEC, {value!r})")


@pytest.mark.clause("ip.7/so-peersec/peer-context", "ip.7/so-peersec/default-creator-context",
                    "ip.7/so-peersec/buffer-argument", "ip.7/so-peersec/tcp-since-2-6-17",
                    "ip.7/so-peersec/netlabel-full-context-loopback")
@pytest.mark.fault("getsockopt")
def test_so_peersec_returns_the_peer_context(cipso_local):
    """"If labeled IPSEC or NetLabel is configured on both the sending and receiving
    hosts, this read-only socket option returns the security context of the peer socket
    connected to this socket.  By default, this will be the same as the security context
    of the process that created the peer socket"  "The argument to getsockopt(2) is a
    pointer to a buffer of the specified length in bytes into which the security context
    string will be copied."  "NetLabel can be configured to pass full security contexts
    over loopback."

    Fixture: NetLabel CIPSO local for 127.0.0.1 (module docstring).  On both
    ends of a TCP connection over 127.0.0.1, getsockopt(SO_PEERSEC) into a 4096-byte
    buffer returns optlen bytes holding the context of this process, which created both
    sockets."""
    own = own_context()
    for side, sock in zip(("connecting", "accepted"), stream_pair(cipso_local.address)):
        data, optlen = peersec(sock)
        expect.equal(f"optlen vs bytes copied ({side} side)", len(data), optlen)
        expect.equal(f"SO_PEERSEC of the {side} socket", strip_nul(data), own)


@pytest.mark.clause("ip.7/so-peersec/erange", "ip.7/so-peersec/retry-with-returned-length",
                    "ip.7/so-peersec/buffer-argument")
@pytest.mark.fault("getsockopt")
def test_so_peersec_short_buffer_erange_then_retry(cipso_local):
    """"If the buffer length is less than the length of the security context string,
    then getsockopt(2) returns -1, sets errno to ERANGE, and returns the required length
    via optlen."  "Resizing the buffer to the returned length and retrying may be
    necessary."

    A 1-byte buffer fails with ERANGE and optlen set to the context's length; a retry
    with exactly that length returns that many bytes, the same as a large buffer."""
    _, conn = stream_pair(cipso_local.address)
    full, full_len = peersec(conn)
    exc = expect.errno("ERANGE", peersec, conn, 1, what="getsockopt(SO_PEERSEC) into 1 byte")
    expect.equal("optlen returned with ERANGE", exc.optlen, full_len)
    expect.equal("retry with the returned length", peersec(conn, exc.optlen), (full, full_len))


@pytest.mark.clause("ip.7/so-peersec/optional-terminating-null",
                    "ip.7/so-peersec/printable-no-inner-null")
@pytest.mark.fault("getsockopt")
def test_so_peersec_string_form(cipso_local):
    """"The security context string may include a terminating null character in the
    returned length, but is not guaranteed to do so"  "The string is printable, does not
    contain non-terminating null characters, and is in an unspecified encoding"

    Either form is accepted; a null byte may only be the last byte counted in optlen;
    no byte is a control character (the encoding is not checked)."""
    _, conn = stream_pair(cipso_local.address)
    data, optlen = peersec(conn)
    expect.observe("terminating null included", data.endswith(b"\0"))
    expect.equal("null bytes before the last byte", data[:-1].count(b"\0"), 0)
    text = strip_nul(data)
    controls = [b for b in text if b < 0x20 or b == 0x7F]
    expect.equal("control characters in the context", controls, [])
    expect.true("context is nonempty", len(text) > 0, expected="a context", observed=data)


@pytest.mark.clause("ip.7/so-peersec/sctp-since-4-17")
@pytest.mark.fault("getsockopt")
def test_so_peersec_sctp(cipso_local):
    """"The use of this option for sockets in the AF_INET address family is supported
    since Linux 2.6.17 for TCP sockets, and since Linux 4.17 for SCTP sockets."

    The SCTP half: over CIPSO local, SO_PEERSEC of an SCTP stream connection over
    loopback returns this process's context."""
    _, conn = stream_pair(cipso_local.address, proto=socket.IPPROTO_SCTP)
    data, _ = peersec(conn)
    expect.equal("SO_PEERSEC of the SCTP connection", strip_nul(data), own_context())


# ------------------------------------------------------------------- what each mechanism conveys


def _ip_option_types(options: bytes) -> list[int]:
    """The types of the IP options in an option area (NOPs skipped, EOL ends it)."""
    types, i = [], 0
    while i < len(options) and options[i] != 0:
        if options[i] == 1:
            i += 1
            continue
        types.append(options[i])
        i += max(options[i + 1] if i + 1 < len(options) else 1, 2)
    return types


def _own_mls_context() -> bytes:
    """This process's context, when the policy is MLS and the context can be told apart
    from the netmsg and unlabeled initial SIDs' (else the test cannot check what it must:
    a skip that names the missing part of the fixture)."""
    own = own_context()
    if mls_part(own) is None:
        expect.skip(f"the loaded policy is not MLS: this process's context {own!r} has no level")
    for sid in ("netmsg", "unlabeled"):
        if user_role_type(initial_context(sid)) == user_role_type(own):
            expect.skip(f"this process's user:role:type is the {sid} initial SID's "
                        f"({user_role_type(own)!r}): a full and a defaulted context look alike")
    return own


@pytest.mark.clause("ip.7/so-peersec/netlabel-mls-only")
@pytest.mark.fault("getsockopt")
def test_so_peersec_netlabel_conveys_only_the_mls_part(cipso_pass):
    """"For SELinux, NetLabel conveys only the MLS portion of the security context of the
    peer across the wire, defaulting the rest of the security context to the values
    defined in the policy for the netmsg initial security identifier (SID)."

    Fixture: an MLS policy, selinuxfs mounted (the SELinux VM), and NetLabel CIPSO
    pass-through for 127.0.0.2 (``cipso_pass``).  Checked first: the connecting socket's
    IP options (getsockopt IP_OPTIONS) carry a CIPSO option (type 134); if not, the
    fixture did not take and the test fails saying so.

    A TCP connection on 127.0.0.2 from a socket of this process.  SO_PEERSEC of the
    accepted socket: user:role:type are those of the netmsg initial SID
    (/sys/fs/selinux/initial_contexts/netmsg), and the MLS part is the sender's.  Reading:
    CIPSO carries one level, the sender's effective (low) level, so "the MLS portion" is
    compared with the low level of this process's range (the whole range when it is a
    single level)."""
    own = _own_mls_context()
    netmsg = initial_context("netmsg")
    client, conn = stream_pair(cipso_pass.address, timeout=WAIT)
    options = client.getsockopt(SOL_IP, IP_OPTIONS, 40)
    if IPOPT_CIPSO not in _ip_option_types(options):
        raise FixtureError(f"the NetLabel CIPSO mapping for {cipso_pass.address} (domain "
                           f"{context_type(own).decode()}) did not take: the connection carries no CIPSO "
                           f"option (IP options {options.hex() or 'none'})")
    data, _ = expect.succeeds(peersec, conn, what="getsockopt(SO_PEERSEC) of the accepted socket")
    peer = expect.observe("SO_PEERSEC of the accepted socket", strip_nul(data))
    expect.equal("user:role:type of the peer's context (netmsg's)", user_role_type(peer),
                 user_role_type(netmsg))
    expect.equal("MLS part of the peer's context (the sender's level)", mls_part(peer),
                 mls_part(own).split(b"-")[0])


@pytest.mark.clause("ip.7/so-peersec/labeled-ipsec-full-context")
@pytest.mark.fault("getsockopt")
def test_so_peersec_labeled_ipsec_passes_the_full_context():
    """"Labeled IPSEC always passes full security contexts as part of establishing the
    security association (SA) and looks them up based on the association for each
    packet."

    Fixture: an MLS policy and ESP available (the SELinux VM), no NetLabel labeling for
    127.0.0.3, and a policy that lets this process's context match xfrm policies and use
    SAs of its own context (association polmatch, sendto, recvfrom; handleunknown allow
    suffices).  :func:`harness.labeling.labeled_ipsec` configures, in the test's own
    namespace: lo with disable_xfrm=0 and disable_policy=0, an ESP transport SA 127.0.0.3
    to 127.0.0.3 (null cipher, hmac(sha256)) whose context is this process's (the context
    of both sending sockets), and an output policy for TCP with that context, and checks
    that the kernel holds the SA with that context.

    A TCP connection on 127.0.0.3 between two sockets of this process passes data both
    ways; then the SA has carried packets, and SO_PEERSEC on both ends is the full context
    of this process -- user, role and type included, not defaulted as NetLabel does."""
    own = _own_mls_context()
    topo = topology.Topology()
    with labeling.labeled_ipsec(topo, src=labeling.IPSEC_ADDR, dst=labeling.IPSEC_ADDR, contexts=[own],
                                proto=socket.IPPROTO_TCP) as ipsec:
        client, conn = stream_pair(labeling.IPSEC_ADDR, timeout=WAIT)
        client.sendall(b"to server")
        expect.equal("data at the server", recv_control(conn, "data at the server")[0], b"to server")
        conn.sendall(b"to client")
        expect.equal("data at the client", recv_control(client, "data at the client")[0], b"to client")
        packets = expect.observe("packets the SA carried", ipsec.packets())
        expect.true("the connection's packets went through the labeled SA", packets > 0,
                    expected="packets > 0", observed=packets)
        for side, sock in (("accepted", conn), ("connecting", client)):
            data, _ = expect.succeeds(peersec, sock, what=f"getsockopt(SO_PEERSEC) of the {side} socket")
            expect.equal(f"SO_PEERSEC of the {side} socket (the sender's full context)", strip_nul(data), own)
