"""ip(7) "Socket options" on one host: the IPPROTO_IP level, boolean flags, ENOPROTOOPT,
and IP_TTL, IP_TOS, IP_RECVTTL, IP_RECVTOS and IP_TRANSPARENT's privilege.  (IP_PASSSEC
and SO_PEERSEC are in test_peersec.py.)

What a socket sends is observed at a UDP receiver over loopback through the control
messages IP_RECVTTL and IP_RECVTOS pass (harness.rawsock.recvmsg + harness.cmsg).  Every
/proc knob an expectation depends on is set in the test's own namespace first.
"""

from __future__ import annotations

import socket
import struct

import pytest

from harness import cmsg, expect, privileges, rawsock, sysctl, topology
from suites.ip7._ip import (DGRAM, IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND, IP_PASSSEC, IP_RECVTOS,
                            IP_RECVTTL, IP_TOS, IP_TRANSPARENT, IP_TTL, KINDS, SOL_IP, STREAM, inet,
                            ip_cmsgs, over, recv_control, stream_pair, udp_receiver, wait_readable)

UNKNOWN_OPTION = 255            # no IPPROTO_IP option (nor netfilter range) has this number
DEFAULT_TTL = 77                # net.ipv4.ip_default_ttl, set in each TTL test's namespace

# <netinet/ip.h>
IPTOS_LOWDELAY = 0x10
IPTOS_THROUGHPUT = 0x08
IPTOS_RELIABILITY = 0x04
IPTOS_MINCOST = 0x02
TOS_FLAGS = {"IPTOS_LOWDELAY": IPTOS_LOWDELAY, "IPTOS_THROUGHPUT": IPTOS_THROUGHPUT,
             "IPTOS_RELIABILITY": IPTOS_RELIABILITY, "IPTOS_MINCOST": IPTOS_MINCOST}
IPTOS_PREC_NETCONTROL = 0xE0
IPTOS_PREC_INTERNETCONTROL = 0xC0
IPTOS_PREC_CRITIC_ECP = 0xA0
# <linux/pkt_sched.h>
TC_PRIO_BESTEFFORT = 0
TC_PRIO_BULK = 2
TC_PRIO_INTERACTIVE = 6


def _get(sock: socket.socket, option: int) -> int:
    return sock.getsockopt(SOL_IP, option)


def _sent_by(sender: socket.socket, what: str) -> list[cmsg.Cmsg]:
    """Send one datagram from ``sender`` to a fresh loopback receiver with IP_RECVTTL and
    IP_RECVTOS on; the control messages that came with it."""
    receiver = udp_receiver()
    receiver.setsockopt(SOL_IP, IP_RECVTTL, 1)
    receiver.setsockopt(SOL_IP, IP_RECVTOS, 1)
    sender.sendto(b"probe", receiver.getsockname())
    data, items = recv_control(receiver, what)
    expect.equal(f"{what}: data", data, b"probe")
    return items


def _one(items: list[cmsg.Cmsg], typ: int, name: str, size: int) -> bytes:
    """The data of the single SOL_IP control message of ``typ``, which must be ``size``
    bytes (cmsg_len == CMSG_LEN(size))."""
    found = ip_cmsgs(items, typ)
    expect.equal(f"number of {name} control messages", len(found), 1)
    expect.equal(f"{name} data length (cmsg_len - CMSG_LEN(0))", len(found[0].data), size)
    return found[0].data


def _ttl_sent(sender: socket.socket) -> int:
    data = _one(_sent_by(sender, "datagram for its TTL"), IP_TTL, "IP_TTL", 4)
    return struct.unpack("=i", data)[0]


def _tos_sent(sender: socket.socket) -> int:
    return _one(_sent_by(sender, "datagram for its TOS"), IP_TOS, "IP_TOS", 1)[0]


# ------------------------------------------------------------------- the level and errors


@pytest.mark.clause("ip.7/socket-options/level-ipproto-ip")
@pytest.mark.fault("setsockopt", "getsockopt")
@over()
def test_options_at_level_ipproto_ip(kind):
    """"IP supports some protocol-specific socket options that can be set with
    setsockopt(2) and read with getsockopt(2).  The socket option level for IP is
    IPPROTO_IP."

    IPPROTO_IP is 0 (SOL_IP); an IP option set at that level reads back at it."""
    expect.equal("IPPROTO_IP", int(socket.IPPROTO_IP), 0)
    s = inet(kind)
    s.setsockopt(socket.IPPROTO_IP, IP_TTL, 42)
    expect.equal("IP_TTL read back at IPPROTO_IP", s.getsockopt(socket.IPPROTO_IP, IP_TTL), 42)


ENOPROTOOPT_CASES = [
    pytest.param("setsockopt", id="setsockopt"),
    pytest.param("getsockopt", id="getsockopt"),
]


@pytest.mark.clause("ip.7/socket-options/enoprotoopt")
@pytest.mark.fault("setsockopt", "getsockopt")
@pytest.mark.parametrize("call", ENOPROTOOPT_CASES)
@over()
def test_invalid_option_enoprotoopt(kind, call):
    """"When an invalid socket option is specified, getsockopt(2) and setsockopt(2) fail
    with the error ENOPROTOOPT."

    Option 255 is defined at no IPPROTO_IP number (nor in a netfilter range)."""
    s = inet(kind)
    what = f"{call}(IPPROTO_IP, {UNKNOWN_OPTION})"
    if call == "setsockopt":
        expect.errno("ENOPROTOOPT", s.setsockopt, SOL_IP, UNKNOWN_OPTION, 1, what=what)
    else:
        expect.errno("ENOPROTOOPT", s.getsockopt, SOL_IP, UNKNOWN_OPTION, what=what)


# ------------------------------------------------------------------- boolean options

# name, number, socket kinds, clauses of the option (default: false on a new socket)
BOOLEANS = [
    ("IP_RECVTOS", IP_RECVTOS, ("tcp", "udp"), ("ip.7/ip-recvtos/boolean-argument",)),
    ("IP_RECVTTL", IP_RECVTTL, ("tcp", "udp"), ("ip.7/ip-recvttl/pass-ttl",)),
    ("IP_FREEBIND", IP_FREEBIND, ("tcp", "udp"), ("ip.7/ip-freebind/nonlocal-bind",)),
    ("IP_BIND_ADDRESS_NO_PORT", IP_BIND_ADDRESS_NO_PORT, ("tcp", "udp"),
     ("ip.7/ip-bind-address-no-port/no-port-at-bind",)),
    ("IP_PASSSEC", IP_PASSSEC, ("udp",), ("ip.7/ip-passsec/integer-boolean",)),
    ("IP_TRANSPARENT", IP_TRANSPARENT, ("tcp", "udp"), ("ip.7/ip-transparent/enable-tproxy",)),
]
BOOLEAN_CASES = [
    pytest.param(name, number, KINDS[k], id=f"{name}-{k}", marks=pytest.mark.clause(*clauses))
    for name, number, kinds, clauses in BOOLEANS for k in kinds
]


@pytest.mark.clause("ip.7/socket-options/boolean-flag", "ip.7/socket-options/level-ipproto-ip")
@pytest.mark.fault("setsockopt", "getsockopt")
@pytest.mark.parametrize("name,option,kind", BOOLEAN_CASES)
def test_boolean_option(name, option, kind):
    """"A boolean integer flag is zero when it is false, otherwise true."  (IP_RECVTOS:
    "Expects a boolean integer flag."  IP_PASSSEC: "The value given as an argument to
    setsockopt(2) and returned as the result of getsockopt(2) is an integer boolean
    flag."  IP_FREEBIND, IP_TRANSPARENT: "this boolean option")

    A new socket reads 0 (the options say "if enabled"); setting 1, 2 or -1 makes it
    true (getsockopt reads nonzero; Linux returns 1); setting 0 makes it false again."""
    s = inet(kind)
    expect.equal(f"{name} of a new socket", _get(s, option), 0)
    for value in (1, 2, -1):
        s.setsockopt(SOL_IP, option, value)
        got = expect.observe(f"{name} after setting {value}", _get(s, option))
        expect.true(f"{name} after setting {value} (nonzero: true)", got != 0,
                    expected="nonzero", observed=got)
        s.setsockopt(SOL_IP, option, 0)
        expect.equal(f"{name} after setting 0", _get(s, option), 0)


# ------------------------------------------------------------------- IP_TTL and IP_RECVTTL


@pytest.mark.clause("ip.7/ip-ttl/set-get-ttl")
@pytest.mark.fault("getsockopt", "recvmsg")
def test_ttl_retrieved_is_the_ttl_sent():
    """"Set or retrieve the current time-to-live field that is used in every packet sent
    from this socket."

    Before any IP_TTL is set, what getsockopt retrieves is the TTL the socket's packets
    carry: net.ipv4.ip_default_ttl, set to 77 in the test's namespace (seen at the
    receiver through IP_RECVTTL).  The same holds on TCP for the retrieved value."""
    sysctl.write("net.ipv4.ip_default_ttl", DEFAULT_TTL)
    s = inet(DGRAM)
    expect.equal("IP_TTL of a new UDP socket", _get(s, IP_TTL), DEFAULT_TTL)
    expect.equal("TTL of its datagram", _ttl_sent(s), DEFAULT_TTL)
    expect.equal("IP_TTL of a new TCP socket", _get(inet(STREAM), IP_TTL), DEFAULT_TTL)


TTL_VALUES = [pytest.param(v, id=f"ttl-{v}") for v in (1, 33, 255)]


@pytest.mark.clause("ip.7/ip-ttl/set-get-ttl", "ip.7/ip-recvttl/pass-ttl")
@pytest.mark.fault("setsockopt", "recvmsg")
@pytest.mark.parametrize("ttl", TTL_VALUES)
def test_ttl_set_is_sent_and_passed(ttl):
    """"Set or retrieve the current time-to-live field that is used in every packet sent
    from this socket."  IP_RECVTTL: "When this flag is set, pass a IP_TTL control message
    with the time-to-live field of the received packet as a 32 bit integer."

    IP_TTL set on the sender reads back, and the receiver's control message (level
    SOL_IP, type IP_TTL, 4 bytes) holds it (loopback: no hop decrements it).  A TCP
    socket reads back what it was set to."""
    s = inet(DGRAM)
    s.setsockopt(SOL_IP, IP_TTL, ttl)
    expect.equal("IP_TTL read back", _get(s, IP_TTL), ttl)
    expect.equal("TTL in the receiver's IP_TTL control message", _ttl_sent(s), ttl)
    t = inet(STREAM)
    t.setsockopt(SOL_IP, IP_TTL, ttl)
    expect.equal("IP_TTL read back (TCP)", _get(t, IP_TTL), ttl)


TTL_INVALID = [pytest.param(v, id=f"ttl-{v}") for v in (0, 256, -2)]


@pytest.mark.clause("ip.7/ip-ttl/set-get-ttl")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("value", TTL_INVALID)
@over()
def test_ttl_outside_the_field_rejected(kind, value):
    """"Set or retrieve the current time-to-live field that is used in every packet sent
    from this socket."

    Reading: the field is 8 bits and a host must not send TTL 0 (RFC 1122 3.2.1.7), so 0,
    256 and -2 cannot be "the time-to-live field": setsockopt fails with EINVAL (the
    invalid-value errno of setsockopt(2)) and the TTL stays as it was."""
    s = inet(kind)
    s.setsockopt(SOL_IP, IP_TTL, 9)
    expect.errno("EINVAL", s.setsockopt, SOL_IP, IP_TTL, value, what=f"setsockopt(IP_TTL, {value})")
    expect.equal("IP_TTL after the refused value", _get(s, IP_TTL), 9)


@pytest.mark.clause("ip.7/ip-ttl/set-get-ttl")
@pytest.mark.fault("setsockopt", "recvmsg")
def test_ttl_minus_one_restores_the_default():
    """"Set or retrieve the current time-to-live field that is used in every packet sent
    from this socket."

    Setting -1 after 5 is accepted, and then what getsockopt retrieves is again the TTL
    the packets carry, net.ipv4.ip_default_ttl (77 here)."""
    sysctl.write("net.ipv4.ip_default_ttl", DEFAULT_TTL)
    s = inet(DGRAM)
    s.setsockopt(SOL_IP, IP_TTL, 5)
    expect.succeeds(s.setsockopt, SOL_IP, IP_TTL, -1, what="setsockopt(IP_TTL, -1)")
    expect.equal("IP_TTL after -1", _get(s, IP_TTL), DEFAULT_TTL)
    expect.equal("TTL of the datagram after -1", _ttl_sent(s), DEFAULT_TTL)


@pytest.mark.clause("ip.7/ip-recvttl/not-sock-stream")
@pytest.mark.fault("recvmsg")
def test_recvttl_not_for_stream():
    """"Not supported for SOCK_STREAM sockets."

    Reading: "not supported" may show as setsockopt failing; if the kernel accepts the
    flag, a TCP recvmsg still never carries an IP_TTL control message."""
    client, conn = stream_pair()
    try:
        conn.setsockopt(SOL_IP, IP_RECVTTL, 1)
    except OSError as exc:
        expect.observe("setsockopt(IP_RECVTTL) on TCP", expect.errno_name(exc.errno))
        expect.true("errno of an unsupported option", expect.errno_name(exc.errno) in
                    ("ENOPROTOOPT", "EOPNOTSUPP"), expected="ENOPROTOOPT or EOPNOTSUPP",
                    observed=expect.errno_name(exc.errno))
        return
    client.sendall(b"stream-data")
    data, items = recv_control(conn, "TCP data")
    expect.equal("TCP data", data, b"stream-data")
    expect.equal("IP_TTL control messages on TCP", ip_cmsgs(items, IP_TTL), [])


# ------------------------------------------------------------------- IP_RECVTOS

RECVTOS_CASES = [pytest.param(on, id=f"IP_RECVTOS-{on}") for on in (1, 2, 0)]


@pytest.mark.clause("ip.7/ip-recvtos/pass-tos", "ip.7/ip-recvtos/tos-byte",
                    "ip.7/ip-recvtos/boolean-argument")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("on", RECVTOS_CASES)
def test_recvtos_passes_the_tos_byte(on):
    """"If enabled, the IP_TOS ancillary message is passed with incoming packets.  It
    contains a byte which specifies the Type of Service/Precedence field of the packet
    header.  Expects a boolean integer flag."

    With IP_RECVTOS 1 or 2 (true), each datagram comes with one SOL_IP/IP_TOS control
    message of exactly 1 byte (cmsg_len == CMSG_LEN(1)) equal to the sender's TOS byte
    (precedence and ECN bits included); with 0 there is none."""
    receiver = udp_receiver()
    receiver.setsockopt(SOL_IP, IP_RECVTOS, on)
    sender = inet(DGRAM)
    for tos in (0x00, IPTOS_LOWDELAY, 0xB8, 0xE3):
        sender.setsockopt(SOL_IP, IP_TOS, tos)
        sender.sendto(b"tos", receiver.getsockname())
        data, items = recv_control(receiver, f"datagram with TOS {tos:#04x}")
        if not on:
            expect.equal("IP_TOS control messages with IP_RECVTOS 0", ip_cmsgs(items, IP_TOS), [])
            continue
        expect.equal(f"IP_TOS control message for TOS {tos:#04x}", _one(items, IP_TOS, "IP_TOS", 1),
                     bytes([tos]))


# ------------------------------------------------------------------- IP_TOS

FLAG_CASES = [pytest.param(bit, id=name) for name, bit in TOS_FLAGS.items()]


@pytest.mark.clause("ip.7/ip-tos/set-get-tos", "ip.7/ip-tos/standard-flags")
@pytest.mark.fault("getsockopt", "recvmsg")
@pytest.mark.parametrize("flag", FLAG_CASES)
def test_tos_flag_set_is_sent(flag):
    """"Set or receive the Type-Of-Service (TOS) field that is sent with every IP packet
    originating from this socket."  "There are some standard TOS flags defined:
    IPTOS_LOWDELAY ..., IPTOS_THROUGHPUT ..., IPTOS_RELIABILITY ..., IPTOS_MINCOST ..."

    Each flag (0x10, 0x08, 0x04, 0x02 in <netinet/ip.h>) set with IP_TOS reads back and
    is the TOS byte of the datagrams the socket sends (seen with IP_RECVTOS); a new
    socket sends TOS 0."""
    s = inet(DGRAM)
    expect.equal("IP_TOS of a new socket", _get(s, IP_TOS), 0)
    expect.equal("TOS of its datagram", _tos_sent(s), 0)
    s.setsockopt(SOL_IP, IP_TOS, flag)
    expect.equal("IP_TOS read back", _get(s, IP_TOS), flag)
    expect.equal("TOS of the datagram", _tos_sent(s), flag)


@pytest.mark.clause("ip.7/ip-tos/tos-is-byte")
@pytest.mark.fault("setsockopt", "getsockopt")
def test_tos_is_a_byte():
    """"TOS is a byte."

    Every value 0..255 set as an int reads back as an int; a 1-byte option value is
    accepted; getsockopt into a 1-byte buffer returns that 1 byte."""
    s = inet(DGRAM)
    wrong = {}
    for value in range(256):
        s.setsockopt(SOL_IP, IP_TOS, value)
        got = _get(s, IP_TOS)
        if got != value:
            wrong[value] = got
    expect.equal("values 0..255 that did not read back", wrong, {})
    s.setsockopt(SOL_IP, IP_TOS, bytes([0x28]))
    expect.equal("IP_TOS after a 1-byte setsockopt of 0x28", _get(s, IP_TOS), 0x28)
    expect.equal("getsockopt(IP_TOS) into 1 byte: (bytes, optlen)",
                 rawsock.getsockopt(s.fileno(), SOL_IP, IP_TOS, 1), (bytes([0x28]), 1))


PRIORITY_CASES = [
    pytest.param(0, TC_PRIO_BESTEFFORT, id="0-besteffort"),
    pytest.param(IPTOS_LOWDELAY, TC_PRIO_INTERACTIVE, id="LOWDELAY-interactive"),
    pytest.param(IPTOS_THROUGHPUT, TC_PRIO_BULK, id="THROUGHPUT-bulk"),
]


@pytest.mark.clause("ip.7/ip-tos/prioritize")
@pytest.mark.fault("setsockopt", "getsockopt")
@pytest.mark.parametrize("tos,priority", PRIORITY_CASES)
@over()
def test_tos_sets_socket_priority(kind, tos, priority):
    """"It is used to prioritize packets on the network."

    The local part of that: IP_TOS sets the priority the socket's packets are queued with
    (SO_PRIORITY, the tc classes of <linux/pkt_sched.h>): IPTOS_LOWDELAY is interactive
    (6), IPTOS_THROUGHPUT bulk (2), 0 best effort (0)."""
    s = inet(kind)
    s.setsockopt(SOL_IP, IP_TOS, IPTOS_THROUGHPUT if tos == 0 else 0)  # start elsewhere
    s.setsockopt(SOL_IP, IP_TOS, tos)
    expect.equal(f"SO_PRIORITY after IP_TOS {tos:#04x}", s.getsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY),
                 priority)


TWO_FLAG_CASES = [
    pytest.param(IPTOS_LOWDELAY | IPTOS_THROUGHPUT, id="LOWDELAY+THROUGHPUT"),
    pytest.param(IPTOS_RELIABILITY | IPTOS_MINCOST, id="RELIABILITY+MINCOST"),
    pytest.param(IPTOS_LOWDELAY | IPTOS_THROUGHPUT | IPTOS_RELIABILITY | IPTOS_MINCOST, id="all-four"),
]


def _set_tos_or_einval(sock: socket.socket, value: int) -> bool:
    """setsockopt(IP_TOS, value): True when accepted, False when refused with EINVAL
    (any other errno is a deviation)."""
    try:
        sock.setsockopt(SOL_IP, IP_TOS, value)
    except OSError as exc:
        expect.equal(f"errno of setsockopt(IP_TOS, {value:#04x})", expect.errno_name(exc.errno), "EINVAL")
        return False
    return True


@pytest.mark.clause("ip.7/ip-tos/at-most-one-flag")
@pytest.mark.fault("setsockopt", "recvmsg")
@pytest.mark.parametrize("value", TWO_FLAG_CASES)
def test_tos_at_most_one_flag(value):
    """"At most one of these TOS values can be specified."

    Reading: a TOS with several of IPTOS_LOWDELAY/THROUGHPUT/RELIABILITY/MINCOST is
    either refused (setsockopt fails with EINVAL) or not sent as such: the datagrams
    carry at most one of the flags."""
    s = inet(DGRAM)
    if not _set_tos_or_einval(s, value):
        return
    sent = _tos_sent(s)
    flags = [name for name, bit in TOS_FLAGS.items() if sent & bit]
    expect.true(f"TOS flags sent after setsockopt(IP_TOS, {value:#04x})", len(flags) <= 1,
                expected="at most one IPTOS_* flag (or setsockopt fails with EINVAL)",
                observed=f"accepted; TOS sent {sent:#04x} = {'|'.join(flags)}")


@pytest.mark.clause("ip.7/ip-tos/other-bits-cleared")
@pytest.mark.fault("setsockopt", "getsockopt")
@over()
def test_tos_other_bits_cleared(kind):
    """"TOS is a byte.  There are some standard TOS flags defined: ...  Other bits are
    invalid and shall be cleared."

    Reading: the precedence bits (0xE0, the page's "Type of Service/Precedence field"
    and "high-priority levels") and the four flags (0x1E) are valid; the remaining bit
    0x01 (must-be-zero in RFC 1349) is "other" and is cleared: IPTOS_LOWDELAY|0x01 is
    either refused with EINVAL or reads back, and (UDP) is sent, as IPTOS_LOWDELAY."""
    s = inet(kind)
    if not _set_tos_or_einval(s, IPTOS_LOWDELAY | 0x01):
        return
    expect.equal("IP_TOS read back after setting 0x11", _get(s, IP_TOS), IPTOS_LOWDELAY)
    if kind == DGRAM:
        expect.equal("TOS sent after setting 0x11", _tos_sent(s), IPTOS_LOWDELAY)


@pytest.mark.clause("ip.7/ip-tos/high-priority-cap-net-admin")
@pytest.mark.fault("setsockopt")
def test_tos_high_priority_needs_cap_net_admin():
    """"Some high-priority levels may require superuser privileges (the CAP_NET_ADMIN
    capability)."

    Reading: at least one of the high precedence levels (network control 0xE0,
    internetwork control 0xC0, CRITIC/ECP 0xA0) is refused with EPERM to a process
    without CAP_NET_ADMIN, while a process with it sets all of them."""
    levels = {"IPTOS_PREC_NETCONTROL": IPTOS_PREC_NETCONTROL,
              "IPTOS_PREC_INTERNETCONTROL": IPTOS_PREC_INTERNETCONTROL,
              "IPTOS_PREC_CRITIC_ECP": IPTOS_PREC_CRITIC_ECP}
    for name, tos in levels.items():
        expect.succeeds(inet(DGRAM).setsockopt, SOL_IP, IP_TOS, tos, what=f"IP_TOS {name} with CAP_NET_ADMIN")
    privileges.drop_caps("CAP_NET_ADMIN")
    results = {}
    for name, tos in levels.items():
        try:
            inet(DGRAM).setsockopt(SOL_IP, IP_TOS, tos)
            results[name] = "success"
        except OSError as exc:
            results[name] = expect.errno_name(exc.errno)
    expect.observe("IP_TOS without CAP_NET_ADMIN", results)
    expect.true("some high-priority level refused without CAP_NET_ADMIN", "EPERM" in results.values(),
                expected="EPERM for at least one of " + ", ".join(levels), observed=results)


def _rate_limit_loopback() -> None:
    """Queue lo's output: a token bucket (8 Mbit/s) whose inner qdisc is pfifo_fast, the
    classic default qdisc with three priority bands chosen by the packet priority."""
    topo = topology.Topology()
    topo.add_qdisc("a", "lo", "tbf", handle="1:", rate="8mbit", burst=4000, latency="500ms")
    topo.add_qdisc("a", "lo", "pfifo_fast", handle="2:", parent="1:1")


@pytest.mark.clause("ip.7/ip-tos/lowdelay-first")
@pytest.mark.fault("recvmsg")
@pytest.mark.sandbox(timeout=5)
def test_lowdelay_datagrams_sent_first():
    """"Linux sends IPTOS_LOWDELAY datagrams first by default, but the exact behavior
    depends on the configured queueing discipline."

    With the default priority qdisc (pfifo_fast) behind a rate limit on lo, 30 bulk
    (IPTOS_THROUGHPUT) datagrams are queued and then 3 IPTOS_LOWDELAY ones: the
    LOWDELAY datagrams reach the receiver before the last of the bulk ones queued before
    them (first-in first-out would deliver them last)."""
    _rate_limit_loopback()
    receiver = udp_receiver()
    bulk, low = inet(DGRAM), inet(DGRAM)
    bulk.setsockopt(SOL_IP, IP_TOS, IPTOS_THROUGHPUT)
    low.setsockopt(SOL_IP, IP_TOS, IPTOS_LOWDELAY)
    payload = bytes(1000)
    for _ in range(30):
        bulk.sendto(b"B" + payload, receiver.getsockname())
    for _ in range(3):
        low.sendto(b"L" + payload, receiver.getsockname())
    order = ""
    for i in range(33):
        wait_readable(receiver, f"datagram #{i + 1} of 33")
        order += chr(rawsock.recvmsg(receiver.fileno(), 2048).data[0])
    expect.observe("arrival order (B bulk, L lowdelay)", order)
    expect.true("IPTOS_LOWDELAY datagrams arrived before the last bulk datagram",
                order.rindex("L") < order.rindex("B"), expected="L before the last B", observed=order)


# ------------------------------------------------------------------- IP_TRANSPARENT

TRANSPARENT_CASES = [
    # id, capabilities kept of (CAP_NET_ADMIN, CAP_NET_RAW), value, errno (None: success)
    pytest.param((), 1, "EPERM", id="enable-without-both"),
    pytest.param((), 0, None, id="disable-without-both"),
    pytest.param(("CAP_NET_ADMIN",), 1, None, id="enable-with-net-admin"),
]


@pytest.mark.clause("ip.7/ip-transparent/requires-cap-net-admin")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("keep,value,error", TRANSPARENT_CASES)
@over()
def test_transparent_needs_privilege(kind, keep, value, error):
    """"Enabling this socket option requires superuser privileges (the CAP_NET_ADMIN
    capability)."

    Without CAP_NET_ADMIN (and without CAP_NET_RAW, which current kernels also accept),
    setsockopt(IP_TRANSPARENT, 1) fails with EPERM; setting 0 (not enabling) needs no
    privilege; with CAP_NET_ADMIN alone enabling works and reads back."""
    privileges.drop_caps(*({"CAP_NET_ADMIN", "CAP_NET_RAW"} - set(keep)))
    s = inet(kind)
    what = f"setsockopt(IP_TRANSPARENT, {value}) with {list(keep) or 'neither capability'}"
    if error:
        expect.errno(error, s.setsockopt, SOL_IP, IP_TRANSPARENT, value, what=what)
        expect.equal("IP_TRANSPARENT after the refusal", _get(s, IP_TRANSPARENT), 0)
        return
    expect.succeeds(s.setsockopt, SOL_IP, IP_TRANSPARENT, value, what=what)
    expect.equal("IP_TRANSPARENT read back", _get(s, IP_TRANSPARENT), 1 if value else 0)
