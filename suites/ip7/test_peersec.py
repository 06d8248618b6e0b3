"""ip(7) labeled networking: IP_PASSSEC (SCM_SECURITY with UDP datagrams) and SO_PEERSEC
(the peer's security context of a stream connection), over loopback.

Most of these run only where an LSM labels the traffic (the catalogue requires an active
SELinux and the VM environment).  The SELinux VM provides, for the whole run (NetLabel is
not per network namespace, so its mappings reach every test's own loopback):

- an MLS policy, selinuxfs at /sys/fs/selinux, the test process in a context whose
  user:role:type differs from those of the policy's netmsg and unlabeled initial SIDs;
- NetLabel mappings in the default domain by address:
  127.0.0.1 to protocol "local" (full contexts over loopback),
  127.0.0.2 to CIPSO (pass-through DOI, e.g. ``netlabelctl cipsov4 add pass doi:16
  tags:1``; ``netlabelctl map add default address:127.0.0.2 protocol:cipsov4,16``),
  everything else unlabeled (``address:0.0.0.0/0 protocol:unlbl``);
- ESP (esp4 and the null cipher) loadable.  Labeled IPsec is configured by the test
  itself in its own namespace (xfrm state and policy are per namespace), on 127.0.0.3.

A test whose fixture is missing skips and says which part is missing; it does not pass.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest

from harness import cmsg, expect, kernel, rawsock, sockaddr, sysctl, topology
from suites.ip7._ip import (DGRAM, IP_HDRINCL, IP_OPTIONS, IP_PASSSEC, IP_PKTINFO, IP_RECVOPTS,
                            IP_RECVORIGDSTADDR, IP_RECVTOS, IP_RECVTTL, IP_RETOPTS, LOOPBACK, SOL_IP,
                            WAIT, inet, ip_cmsgs, over, recv_control, stream_pair, udp_receiver)

SO_PEERSEC = 31
SCM_SECURITY = cmsg.SCM_SECURITY
CIPSO_ADDR = "127.0.0.2"        # mapped to NetLabel CIPSO by the VM fixture
IPSEC_ADDR = "127.0.0.3"        # no NetLabel labeling: only labeled IPsec labels it
IPOPT_CIPSO = 134               # the CIPSO IP option type (RFC draft, FIPS 188)
ESP_SPI = 0x5EC


def _context(data: bytes) -> bytes:
    """A security context string less its optional terminating null."""
    return data[:-1] if data.endswith(b"\0") else data


def _own_context() -> bytes:
    """This process's security context, the default context of the sockets it creates."""
    with open("/proc/self/attr/current", "rb") as f:
        return f.read().rstrip(b"\0\n")


def _peersec(sock: socket.socket, buflen: int = 4096) -> tuple[bytes, int]:
    return rawsock.getsockopt(sock.fileno(), socket.SOL_SOCKET, SO_PEERSEC, buflen)


def _scm_security_datagram() -> list[cmsg.Cmsg]:
    """The control messages of one loopback datagram to a receiver with IP_PASSSEC on."""
    receiver = udp_receiver()
    receiver.setsockopt(SOL_IP, IP_PASSSEC, 1)
    inet(DGRAM).sendto(b"labelled", receiver.getsockname())
    return recv_control(receiver, "datagram to the IP_PASSSEC receiver")[1]


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
    expect.equal("IP_HDRINCL", IP_HDRINCL, 3)
    receiver = udp_receiver()
    for option in (IP_RECVOPTS, IP_RETOPTS, IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVORIGDSTADDR):
        receiver.setsockopt(SOL_IP, option, 1)
    sender = inet(DGRAM)
    sender.sendto(b"all-flags", receiver.getsockname())
    _, items = recv_control(receiver, "datagram with every IP_RECV* flag on", controllen=1024)
    expect.observe("SOL_IP control message types received", sorted(c.type for c in items if c.level == SOL_IP))
    expect.equal("SOL_IP control messages of type 3", ip_cmsgs(items, 3), [])
    control = cmsg.encode([cmsg.Cmsg(SOL_IP, IP_HDRINCL, struct.pack("=i", 1))])
    expect.errno("EINVAL", rawsock.sendmsg, sender.fileno(), b"x", control,
                 name=sockaddr.in4(LOOPBACK, receiver.getsockname()[1]),
                 what="sendmsg with a SOL_IP control message of type 3")


@pytest.mark.clause("ip.7/ip-passsec/scm-security", "ip.7/ip-passsec/scm-security-type-reuse")
@pytest.mark.fault("recvmsg")
def test_passsec_passes_scm_security():
    """"If labeled IPSEC or NetLabel is configured on the sending and receiving hosts,
    this option enables receiving of the security context of the peer socket in an
    ancillary message of type SCM_SECURITY retrieved using recvmsg(2)."  "Note: the reuse
    of the SCM_SECURITY message type for the IP_PASSSEC socket option ..."

    Runs where the environment labels loopback traffic (SELinux with a NetLabel mapping
    or labeled IPsec).  The datagram comes with one SOL_IP control message of type
    SCM_SECURITY (3), none of type IP_PASSSEC (18), holding a nonempty context."""
    items = _scm_security_datagram()
    found = ip_cmsgs(items, SCM_SECURITY)
    expect.equal("SOL_IP control messages of type SCM_SECURITY (3)", len(found), 1)
    expect.equal("SOL_IP control messages of type IP_PASSSEC (18)", ip_cmsgs(items, IP_PASSSEC), [])
    context = expect.observe("security context", _context(found[0].data))
    expect.true("security context is nonempty", len(context) > 0, expected="a context", observed=context)


@pytest.mark.clause("ip.7/ip-passsec/udp-only")
@pytest.mark.fault("recvmsg")
def test_passsec_udp_only():
    """"This option is supported only for UDP sockets; for TCP or SCTP sockets, see the
    description of the SO_PEERSEC option below."

    On a labeled host: a UDP datagram to an IP_PASSSEC receiver comes with SCM_SECURITY;
    TCP data read by recvmsg from a socket with IP_PASSSEC set never does."""
    expect.equal("SCM_SECURITY messages with a UDP datagram",
                 len(ip_cmsgs(_scm_security_datagram(), SCM_SECURITY)), 1)
    client, conn = stream_pair()
    conn.setsockopt(SOL_IP, IP_PASSSEC, 1)
    client.sendall(b"stream")
    data, items = recv_control(conn, "TCP data")
    expect.equal("TCP data", data, b"stream")
    expect.equal("SCM_SECURITY messages with TCP data", ip_cmsgs(items, SCM_SECURITY), [])


@pytest.mark.clause("ip.7/ip-passsec/format-as-so-peersec")
@pytest.mark.fault("recvmsg", "getsockopt")
def test_passsec_context_formatted_as_so_peersec():
    """"The security context returned in the SCM_SECURITY ancillary message is of the
    same format as the one described under the SO_PEERSEC option below."

    On a labeled host, from the same peer process: the SCM_SECURITY context of a UDP
    datagram and SO_PEERSEC of a TCP connection are the same string (a terminating null
    is optional in both), printable, without inner nulls."""
    items = _scm_security_datagram()
    found = ip_cmsgs(items, SCM_SECURITY)
    expect.equal("SCM_SECURITY messages", len(found), 1)
    _, conn = stream_pair()
    peersec, _ = _peersec(conn)
    expect.equal("SCM_SECURITY context vs SO_PEERSEC", _context(found[0].data), _context(peersec))
    expect.equal("nulls inside the SCM_SECURITY context", _context(found[0].data).count(b"\0"), 0)


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
def test_so_peersec_returns_the_peer_context():
    """"If labeled IPSEC or NetLabel is configured on both the sending and receiving
    hosts, this read-only socket option returns the security context of the peer socket
    connected to this socket.  By default, this will be the same as the security context
    of the process that created the peer socket"  "The argument to getsockopt(2) is a
    pointer to a buffer of the specified length in bytes into which the security context
    string will be copied."  "NetLabel can be configured to pass full security contexts
    over loopback."

    Fixture: 127.0.0.1 mapped to NetLabel's "local" protocol (module docstring).  On both
    ends of a TCP connection over 127.0.0.1, getsockopt(SO_PEERSEC) into a 4096-byte
    buffer returns optlen bytes holding the context of this process, which created both
    sockets."""
    own = _own_context()
    for side, sock in zip(("connecting", "accepted"), stream_pair()):
        data, optlen = _peersec(sock)
        expect.equal(f"optlen vs bytes copied ({side} side)", len(data), optlen)
        expect.equal(f"SO_PEERSEC of the {side} socket", _context(data), own)


@pytest.mark.clause("ip.7/so-peersec/erange", "ip.7/so-peersec/retry-with-returned-length",
                    "ip.7/so-peersec/buffer-argument")
@pytest.mark.fault("getsockopt")
def test_so_peersec_short_buffer_erange_then_retry():
    """"If the buffer length is less than the length of the security context string,
    then getsockopt(2) returns -1, sets errno to ERANGE, and returns the required length
    via optlen."  "Resizing the buffer to the returned length and retrying may be
    necessary."

    A 1-byte buffer fails with ERANGE and optlen set to the context's length; a retry
    with exactly that length returns that many bytes, the same as a large buffer."""
    _, conn = stream_pair()
    full, full_len = _peersec(conn)
    exc = expect.errno("ERANGE", _peersec, conn, 1, what="getsockopt(SO_PEERSEC) into 1 byte")
    expect.equal("optlen returned with ERANGE", exc.optlen, full_len)
    expect.equal("retry with the returned length", _peersec(conn, exc.optlen), (full, full_len))


@pytest.mark.clause("ip.7/so-peersec/optional-terminating-null",
                    "ip.7/so-peersec/printable-no-inner-null")
@pytest.mark.fault("getsockopt")
def test_so_peersec_string_form():
    """"The security context string may include a terminating null character in the
    returned length, but is not guaranteed to do so"  "The string is printable, does not
    contain non-terminating null characters, and is in an unspecified encoding"

    Either form is accepted; a null byte may only be the last byte counted in optlen;
    no byte is a control character (the encoding is not checked)."""
    _, conn = stream_pair()
    data, optlen = _peersec(conn)
    expect.observe("terminating null included", data.endswith(b"\0"))
    expect.equal("null bytes before the last byte", data[:-1].count(b"\0"), 0)
    text = _context(data)
    controls = [b for b in text if b < 0x20 or b == 0x7F]
    expect.equal("control characters in the context", controls, [])
    expect.true("context is nonempty", len(text) > 0, expected="a context", observed=data)


@pytest.mark.clause("ip.7/so-peersec/sctp-since-4-17")
@pytest.mark.fault("getsockopt")
def test_so_peersec_sctp():
    """"The use of this option for sockets in the AF_INET address family is supported
    since Linux 2.6.17 for TCP sockets, and since Linux 4.17 for SCTP sockets."

    The SCTP half: on a labeled host, SO_PEERSEC of an SCTP stream connection over
    loopback returns this process's context."""
    _, conn = stream_pair(proto=socket.IPPROTO_SCTP)
    data, _ = _peersec(conn)
    expect.equal("SO_PEERSEC of the SCTP connection", _context(data), _own_context())


# ------------------------------------------------------------------- what each mechanism conveys


def _initial_context(name: str) -> bytes:
    """The context the loaded policy gives initial SID ``name`` (selinuxfs)."""
    path = f"/sys/fs/selinux/initial_contexts/{name}"
    if not os.path.exists(path):
        expect.skip(f"no {path}: selinuxfs is not mounted, the initial SIDs' contexts cannot be read")
    with open(path, "rb") as f:
        return f.read().rstrip(b"\0\n")


def _user_role_type(context: bytes) -> bytes:
    return b":".join(context.split(b":")[:3])


def _mls_part(context: bytes) -> bytes | None:
    fields = context.split(b":", 3)
    return fields[3] if len(fields) == 4 else None


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
    own = _own_context()
    if _mls_part(own) is None:
        expect.skip(f"the loaded policy is not MLS: this process's context {own!r} has no level")
    for sid in ("netmsg", "unlabeled"):
        if _user_role_type(_initial_context(sid)) == _user_role_type(own):
            expect.skip(f"this process's user:role:type is the {sid} initial SID's "
                        f"({_user_role_type(own)!r}): a full and a defaulted context look alike")
    return own


@pytest.mark.clause("ip.7/so-peersec/netlabel-mls-only")
@pytest.mark.fault("getsockopt")
def test_so_peersec_netlabel_conveys_only_the_mls_part():
    """"For SELinux, NetLabel conveys only the MLS portion of the security context of the
    peer across the wire, defaulting the rest of the security context to the values
    defined in the policy for the netmsg initial security identifier (SID)."

    Fixture (the SELinux VM, see the module docstring): an MLS policy, selinuxfs mounted,
    and NetLabel CIPSO for 127.0.0.2.  Checked first: the connecting socket's IP options
    (getsockopt IP_OPTIONS) carry a CIPSO option (type 134), or the test skips: no CIPSO
    mapping, nothing crosses "the wire" labeled.

    A TCP connection on 127.0.0.2 from a socket of this process.  SO_PEERSEC of the
    accepted socket: user:role:type are those of the netmsg initial SID
    (/sys/fs/selinux/initial_contexts/netmsg), and the MLS part is the sender's.  Reading:
    CIPSO carries one level, the sender's effective (low) level, so "the MLS portion" is
    compared with the low level of this process's range (the whole range when it is a
    single level)."""
    own = _own_mls_context()
    netmsg = _initial_context("netmsg")
    client, conn = stream_pair(CIPSO_ADDR, timeout=WAIT)
    options = client.getsockopt(SOL_IP, IP_OPTIONS, 40)
    if IPOPT_CIPSO not in _ip_option_types(options):
        expect.skip(f"no NetLabel CIPSO mapping for {CIPSO_ADDR}: the connection carries no CIPSO "
                    f"option (IP options {options.hex() or 'none'}); the SELinux VM fixture "
                    f"configures one")
    data, _ = expect.succeeds(_peersec, conn, what="getsockopt(SO_PEERSEC) of the accepted socket")
    peer = expect.observe("SO_PEERSEC of the accepted socket", _context(data))
    expect.equal("user:role:type of the peer's context (netmsg's)", _user_role_type(peer),
                 _user_role_type(netmsg))
    expect.equal("MLS part of the peer's context (the sender's level)", _mls_part(peer),
                 _mls_part(own).split(b"-")[0])


@pytest.mark.clause("ip.7/so-peersec/labeled-ipsec-full-context")
@pytest.mark.fault("getsockopt")
def test_so_peersec_labeled_ipsec_passes_the_full_context():
    """"Labeled IPSEC always passes full security contexts as part of establishing the
    security association (SA) and looks them up based on the association for each
    packet."

    Fixture (the SELinux VM, see the module docstring): an MLS policy, ESP available, no
    NetLabel labeling for 127.0.0.3, and a policy that lets this process's context match
    xfrm policies and use SAs of its own context (association polmatch, sendto,
    recvfrom; handleunknown allow suffices).  The test configures, in its own namespace:
    lo with disable_xfrm=0 and disable_policy=0, an ESP transport SA 127.0.0.3 to
    127.0.0.3 (null cipher, hmac(sha256)) whose context is this process's (the context of
    both sending sockets), and an output policy for TCP 127.0.0.3 to 127.0.0.3 with that
    context.

    Checked first: the kernel holds the SA with that context.  A TCP connection on
    127.0.0.3 between two sockets of this process passes data both ways; then the SA has
    carried packets, and SO_PEERSEC on both ends is the full context of this process --
    user, role and type included, not defaulted as NetLabel does."""
    if kernel.config_enabled("CONFIG_INET_ESP") is False:
        expect.skip("the kernel was built without ESP (CONFIG_INET_ESP unset)")
    own = _own_mls_context()
    for knob in ("net.ipv4.conf.lo.disable_xfrm", "net.ipv4.conf.lo.disable_policy"):
        sysctl.write(knob, 0)
    topo = topology.Topology()
    topo.add_sa("a", src=IPSEC_ADDR, dst=IPSEC_ADDR, spi=ESP_SPI, ctx=own)
    topo.add_policy("a", direction="out", src=IPSEC_ADDR, dst=IPSEC_ADDR, proto=socket.IPPROTO_TCP, ctx=own)
    held = topo.sa("a", dst=IPSEC_ADDR, spi=ESP_SPI).ctx    # may end in a null, like any context
    expect.equal("security context of the SA, as the kernel holds it",
                 held if held is None else _context(held), own)
    client, conn = stream_pair(IPSEC_ADDR, timeout=WAIT)
    client.sendall(b"to server")
    expect.equal("data at the server", recv_control(conn, "data at the server")[0], b"to server")
    conn.sendall(b"to client")
    expect.equal("data at the client", recv_control(client, "data at the client")[0], b"to client")
    packets = expect.observe("packets the SA carried", topo.sa("a", dst=IPSEC_ADDR, spi=ESP_SPI).packets)
    expect.true("the connection's packets went through the labeled SA", packets > 0,
                expected="packets > 0", observed=packets)
    for side, sock in (("accepted", conn), ("connecting", client)):
        data, _ = expect.succeeds(_peersec, sock, what=f"getsockopt(SO_PEERSEC) of the {side} socket")
        expect.equal(f"SO_PEERSEC of the {side} socket (the sender's full context)", _context(data), own)
