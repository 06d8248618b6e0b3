"""ip(7) multicast and broadcast, across hosts: group membership (any-source and
source-specific), source filters, IP_MULTICAST_ALL/IF/LOOP/TTL, and the address classes.

Host ``a`` sends and host ``b`` receives over a veth pair (harness.topology).  That a
datagram is *not* delivered is shown by order, never by waiting: the unwanted datagram is
sent first, a wanted one after it on the same path, and the wanted one must be the first
to arrive.
"""

from __future__ import annotations

import socket
import struct

import pytest

from harness import cmsg, expect, rawsock, topology
from suites.ip7._ip import (
    IP_ADD_MEMBERSHIP, IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE, IP_DROP_MEMBERSHIP,
    IP_DROP_SOURCE_MEMBERSHIP, IP_MSFILTER, IP_MULTICAST_ALL, IP_MULTICAST_IF,
    IP_MULTICAST_LOOP, IP_MULTICAST_TTL, IP_PKTINFO, IP_UNBLOCK_SOURCE, MCAST_EXCLUDE,
    MCAST_INCLUDE, SOL_IP, Capture, int_opt, ip_mreq, ip_mreq_source, ip_mreqn, ip_msfilter,
    getsockopt_in, igmp_groups, parse_msfilter, parse_pktinfo, pending, recv_within, udp_to,
    wait_readable)

G, G2 = "239.1.2.3", "239.1.2.4"
PORT = 4321
S1, S2, S3 = "10.0.1.1", "10.0.1.3", "10.0.1.4"     # source addresses of host a


# ---------------------------------------------------------------------- helpers

def _hosts(*extra_sources: str) -> topology.Topology:
    """a - b, with ``extra_sources`` added to a's link (S1 is a's own address)."""
    topo = topology.two_hosts()
    for src in extra_sources:
        topo.add_address("a", "to-b", src)
    return topo


def _two_links(count: int = 2) -> topology.Topology:
    """a and b joined by ``count`` veth pairs: link n is 10.0.<2n-1>.0/24 (n=1: the
    two_hosts link, n=2: 10.0.3.0/24, n=3: 10.0.5.0/24)."""
    topo = topology.two_hosts()
    for n in range(2, count + 1):
        net = 2 * n - 1
        topo.connect("a", "b", f"10.0.{net}.1/24", f"10.0.{net}.2/24")
    return topo


def _receiver(topo, port: int = PORT, host: str = "b") -> socket.socket:
    sock = topo.socket(host)
    sock.bind(("0.0.0.0", port))
    return sock


def _send(topo, data: bytes, group: str = G, *, source: str | None = None, port: int = PORT) -> None:
    """Send ``data`` from host a (from ``source`` when given: binding to a local address
    also picks its link for multicast) to group:port."""
    sock = topo.socket("a")
    if source:
        sock.bind((source, 0))
    sock.sendto(data, (group, port))


def _first(sock: socket.socket, what: str) -> tuple[bytes, str]:
    data, (src, _) = recv_within(sock, what)
    return data, src


def _nothing_more(sock: socket.socket, what: str) -> None:
    expect.equal(what, pending(sock), False)


def _igmp(topo, host: str = "b") -> dict[str, set[str]]:
    """/proc/net/igmp of ``host``: device name -> joined groups."""
    with topo.inside(host):
        return igmp_groups()


def _groups_on(topo, device: str, host: str = "b") -> set[str]:
    return {g for g in _igmp(topo, host).get(device, set()) if g != "224.0.0.1"}


# ---------------------------------------------------------------------- address classes

@pytest.mark.clause("ip.7/address-format/address-classes")
@pytest.mark.fault("sendto", "recvfrom")
def test_unicast_broadcast_multicast_reach():
    """"IPv4 addresses are divided into unicast, broadcast, and multicast addresses.
    Unicast addresses specify a single interface of a host, broadcast addresses specify
    all hosts on a network, and multicast addresses address all hosts in a multicast
    group."

    Three hosts on one bridge (10.0.1.1-3).  From a: a datagram to b's unicast address
    reaches b only, one to the subnet broadcast 10.0.1.255 reaches b and c, one to a group
    that only c joined reaches c only.  A last datagram to the broadcast address marks the
    end: it must be the next one each host receives after the ones meant for it."""
    topo = topology.lan(("a", "b", "c"))
    rx = {h: _receiver(topo, host=h) for h in ("b", "c")}
    rx["c"].setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", topo["c"].ifindex))
    tx = topo.socket("a")
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    for data, dst in ((b"unicast", "10.0.1.2"), (b"broadcast", "10.0.1.255"), (b"group", G),
                      (b"end", "10.0.1.255")):
        tx.sendto(data, (dst, PORT))
    expect.equal("datagrams received by b (10.0.1.2, not a member)",
                 [_first(rx["b"], "b")[0] for _ in range(3)], [b"unicast", b"broadcast", b"end"])
    expect.equal("datagrams received by c (10.0.1.3, member of the group)",
                 [_first(rx["c"], "c")[0] for _ in range(3)], [b"broadcast", b"group", b"end"])


@pytest.mark.clause("ip.7/address-format/so-broadcast-required")
@pytest.mark.fault("sendto", "connect")
def test_sending_to_broadcast_needs_so_broadcast():
    """"Datagrams to broadcast addresses can be sent or received only when the
    SO_BROADCAST socket flag is set."

    The sending side: sendto() and connect() to the subnet broadcast address fail (EACCES)
    without SO_BROADCAST, and sendto() succeeds with it; the datagram reaches b."""
    topo = _hosts()
    rx = _receiver(topo)
    tx = topo.socket("a")
    expect.errno("EACCES", tx.sendto, b"no flag", ("10.0.1.255", PORT), what="sendto(broadcast) without SO_BROADCAST")
    expect.errno("EACCES", topo.socket("a").connect, ("10.0.1.255", PORT),
                 what="connect(broadcast) without SO_BROADCAST")
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.sendto(b"with flag", ("10.0.1.255", PORT))
    expect.equal("datagram received by b", _first(rx, "b")[0], b"with flag")


@pytest.mark.clause("ip.7/address-format/so-broadcast-required")
@pytest.mark.fault("recvfrom")
def test_receiving_broadcast_needs_so_broadcast():
    """"Datagrams to broadcast addresses can be sent or received only when the
    SO_BROADCAST socket flag is set."

    The receiving side: b's socket without SO_BROADCAST must not receive a datagram sent
    to the subnet broadcast address; a unicast datagram sent after it must be the first
    one it receives."""
    topo = _hosts()
    rx = _receiver(topo)
    expect.equal("SO_BROADCAST of the receiving socket", rx.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST), 0)
    tx = topo.socket("a")
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.sendto(b"broadcast", ("10.0.1.255", PORT))
    tx.sendto(b"unicast", ("10.0.1.2", PORT))
    expect.equal("first datagram received without SO_BROADCAST", _first(rx, "b")[0], b"unicast")


@pytest.mark.clause("ip.7/address-format/inaddr-broadcast-bind")
@pytest.mark.fault("bind", "recvfrom")
def test_bind_inaddr_broadcast_is_like_any():
    """"INADDR_BROADCAST ( means any host and has the same effect on bind as INADDR_ANY
    for historical rea-"

    bind() to 255.255.255.255 succeeds as bind() to INADDR_ANY does; a datagram sent from
    such a socket gets its source address from the route, as from an INADDR_ANY socket
    (b sees it come from 10.0.1.1); and such a socket receives what an INADDR_ANY socket
    on that port would: a unicast datagram to b's address."""
    topo = _hosts()
    rx = _receiver(topo)
    tx = topo.socket("a")
    tx.bind(("255.255.255.255", 0))
    tx.sendto(b"from broadcast-bound", ("10.0.1.2", PORT))
    data, src = _first(rx, "b")
    expect.equal("payload", data, b"from broadcast-bound")
    expect.equal("source address seen by b", src, "10.0.1.1")
    bound = topo.socket("b")
    bound.bind(("255.255.255.255", PORT + 1))
    topo.socket("a").sendto(b"unicast to b", ("10.0.1.2", PORT + 1))
    expect.equal("received by b's socket bound to 255.255.255.255",
                 _first(bound, "a unicast datagram on the broadcast-bound socket")[0], b"unicast to b")


# ---------------------------------------------------------------------- IP_ADD_MEMBERSHIP

@pytest.mark.clause("ip.7/ip-add-membership/join-group", "ip.7/ip-add-membership/argument-ip-mreqn",
                    "ip.7/ip-add-membership/imr-multiaddr-group", "ip.7/ip-add-membership/ip-mreqn-since-2-2")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_join_with_ip_mreqn():
    """"Join a multicast group." "Argument is an ip_mreqn struc-" "imr_multiaddr contains
    the address of the multicast group the application wants to join or leave." "The
    ip_mreqn structure is available only since Linux 2.2."

    b joins 239.1.2.3 with a 12-byte ip_mreqn naming its veth by index: the group shows
    on that veth in /proc/net/igmp, and a datagram a sends to the group reaches b."""
    topo = _hosts()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", topo["b"].ifindex))
    expect.equal("groups on b's veth (/proc/net/igmp)", _groups_on(topo, "to-a"), {G})
    _send(topo, b"to the group")
    expect.equal("datagram and source received by b", _first(rx, "b"), (b"to the group", S1))


@pytest.mark.clause("ip.7/ip-add-membership/ip-mreq-compat")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_join_with_old_ip_mreq():
    """"For compatibility, the old ip_mreq structure (present since Linux 1.2) is still
    supported;"

    An 8-byte ip_mreq whose imr_interface is b's address joins the group there."""
    topo = _hosts()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreq(G, "10.0.1.2"))
    expect.equal("groups on b's veth (/proc/net/igmp)", _groups_on(topo, "to-a"), {G})
    _send(topo, b"old struct")
    expect.equal("datagram received by b", _first(rx, "b")[0], b"old struct")


NOT_MULTICAST = ["10.0.1.99", "255.255.255.255", "0.0.0.0", "240.0.0.1", "127.0.0.1"]


@pytest.mark.clause("ip.7/ip-add-membership/einval-not-multicast")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("struct_kind", ["ip_mreqn", "ip_mreq"])
@pytest.mark.parametrize("group", NOT_MULTICAST)
def test_join_non_multicast_group_is_einval(group, struct_kind):
    """"It must be a valid multicast address (or setsockopt(2) fails with the error
    EINVAL)." """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    arg = ip_mreqn(group) if struct_kind == "ip_mreqn" else ip_mreq(group)
    expect.errno("EINVAL", sock.setsockopt, SOL_IP, IP_ADD_MEMBERSHIP, arg,
                 what=f"IP_ADD_MEMBERSHIP({group}) with {struct_kind}")


@pytest.mark.clause("ip.7/ip-add-membership/imr-address-interface")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_join_on_interface_named_by_address():
    """"imr_address is the address of the local interface with which the system should
    join the multicast group;"

    b has two links to a.  Joined with imr_address = its second link's address (and
    imr_ifindex 0), b is a member there only: a datagram a sends to the group over the
    first link is not delivered, the one over the second is."""
    topo = _two_links()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.3.2", 0))
    expect.equal("groups per b's link (/proc/net/igmp)",
                 (_groups_on(topo, "to-a"), _groups_on(topo, "to-a2")), (set(), {G}))
    _send(topo, b"over link 1", source="10.0.1.1")
    _send(topo, b"over link 2", source="10.0.3.1")
    expect.equal("first datagram received by b", _first(rx, "b")[0], b"over link 2")


@pytest.mark.clause("ip.7/ip-add-membership/imr-address-any")
@pytest.mark.fault("setsockopt")
def test_join_on_any_interface_follows_the_route():
    """"if it is equal to INADDR_ANY, an appropriate interface is chosen by the system."

    b's route for 224.0.0.0/4 goes over its second link; a join with INADDR_ANY and
    imr_ifindex 0 lands there."""
    topo = _two_links()
    topo.add_route("b", topology.MULTICAST, dev="to-a2")
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", 0))
    expect.equal("groups per b's link (/proc/net/igmp)",
                 (_groups_on(topo, "to-a"), _groups_on(topo, "to-a2")), (set(), {G}))


@pytest.mark.clause("ip.7/ip-add-membership/imr-ifindex")
@pytest.mark.fault("setsockopt")
def test_join_ifindex_wins_over_address():
    """"imr_ifindex is the interface index of the interface that should join/leave the
    imr_multiaddr group, or 0 to indicate any interface."

    imr_address names b's first link and imr_ifindex its second: the second joins."""
    topo = _two_links()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2", topo["b"].links["to-a2"].ifindex))
    expect.equal("groups per b's link (/proc/net/igmp)",
                 (_groups_on(topo, "to-a"), _groups_on(topo, "to-a2")), (set(), {G}))


@pytest.mark.clause("ip.7/ip-add-membership/struct-by-optlen")
@pytest.mark.fault("setsockopt")
def test_join_struct_chosen_by_optlen():
    """"(The kernel determines which struc-ture is being passed based on the size passed
    in"

    One 12-byte buffer {group, first link's address, second link's index}: passed with
    optlen 8 it is an ip_mreq and the first link joins; with optlen 12 it is an ip_mreqn
    and the second link (by index) joins."""
    topo = _two_links()
    arg = ip_mreqn(G, "10.0.1.2", topo["b"].links["to-a2"].ifindex)
    first, second = _receiver(topo), _receiver(topo, PORT + 1)   # a closed socket leaves
    first.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, arg[:8])
    expect.equal("groups per b's link after optlen 8", (_groups_on(topo, "to-a"), _groups_on(topo, "to-a2")),
                 ({G}, set()))
    second.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, arg)
    expect.equal("groups per b's link after optlen 12", (_groups_on(topo, "to-a"), _groups_on(topo, "to-a2")),
                 ({G}, {G}))


@pytest.mark.clause("ip.7/ip-add-membership/setsockopt-only")
@pytest.mark.fault("getsockopt")
def test_add_membership_is_not_for_getsockopt():
    """"IP_ADD_MEMBERSHIP is valid only for setsockopt(2)."

    getsockopt(IP_ADD_MEMBERSHIP) fails (as an option the level does not know:
    ENOPROTOOPT, or EINVAL)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expect.errno(("ENOPROTOOPT", "EINVAL"), rawsock.getsockopt, sock.fileno(), SOL_IP, IP_ADD_MEMBERSHIP, 12,
                 what="getsockopt(IP_ADD_MEMBERSHIP)")


SHORT_OPTLEN = [
    pytest.param(IP_ADD_MEMBERSHIP, 7, id="IP_ADD_MEMBERSHIP-7",
                 marks=pytest.mark.clause("ip.7/ip-add-membership/struct-by-optlen")),
    pytest.param(IP_DROP_MEMBERSHIP, 7, id="IP_DROP_MEMBERSHIP-7",
                 marks=pytest.mark.clause("ip.7/ip-drop-membership/argument")),
    pytest.param(IP_ADD_SOURCE_MEMBERSHIP, 8, id="IP_ADD_SOURCE_MEMBERSHIP-8",
                 marks=pytest.mark.clause("ip.7/ip-add-source-membership/argument-ip-mreq-source")),
    pytest.param(IP_DROP_SOURCE_MEMBERSHIP, 8, id="IP_DROP_SOURCE_MEMBERSHIP-8",
                 marks=pytest.mark.clause("ip.7/ip-drop-source-membership/argument")),
    pytest.param(IP_BLOCK_SOURCE, 8, id="IP_BLOCK_SOURCE-8",
                 marks=pytest.mark.clause("ip.7/ip-block-source/argument")),
    pytest.param(IP_UNBLOCK_SOURCE, 8, id="IP_UNBLOCK_SOURCE-8",
                 marks=pytest.mark.clause("ip.7/ip-unblock-source/argument")),
    pytest.param(IP_MSFILTER, 12, id="IP_MSFILTER-12",
                 marks=pytest.mark.clause("ip.7/ip-msfilter/argument")),
]


@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("option, optlen", SHORT_OPTLEN)
def test_argument_shorter_than_its_structure_is_einval(option, optlen):
    """"Argument is an ip_mreqn struc-" / "Argument is an ip_mreq_source" / "Argument is an
    ip_msfilter structure." (and the same for the drop, block and unblock options)

    An optlen too short for the smallest structure the option takes (ip_mreq: 8,
    ip_mreq_source: 12, ip_msfilter with no source: 16) fails with EINVAL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    arg = ip_msfilter(G, "0.0.0.0", MCAST_INCLUDE, ["10.0.1.1"])
    expect.errno("EINVAL", sock.setsockopt, SOL_IP, option, arg[:optlen], what=f"setsockopt with optlen {optlen}")


# ---------------------------------------------------------------------- source-specific

@pytest.mark.clause("ip.7/ip-add-source-membership/join-source",
                    "ip.7/ip-add-source-membership/argument-ip-mreq-source",
                    "ip.7/ip-add-source-membership/imr-multiaddr",
                    "ip.7/ip-add-source-membership/imr-interface",
                    "ip.7/ip-add-source-membership/imr-sourceaddr")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_source_membership_receives_only_that_source():
    """"Join a multicast group and allow receiving data only from a specified source."
    "imr_multiaddr contains the address of the multicast group ..." "The imr_interface
    field is the address of the local interface ..." "... the imr_sourceaddr field contains
    the address of the source the application wants to receive data from."

    b joins (239.1.2.3, its address, source 10.0.1.1).  a sends to the group from
    10.0.1.3 and then from 10.0.1.1: only the second is delivered."""
    topo = _hosts(S2)
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, ip_mreq_source(G, "10.0.1.2", S1))
    expect.equal("groups on b's veth (/proc/net/igmp)", _groups_on(topo, "to-a"), {G})
    _send(topo, b"other source", source=S2)
    _send(topo, b"chosen source", source=S1)
    expect.equal("first datagram and its source", _first(rx, "b"), (b"chosen source", S1))
    _nothing_more(rx, "anything else queued")


@pytest.mark.clause("ip.7/ip-add-source-membership/multiple-sources")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_source_membership_several_sources():
    """"This option can be used multiple times to allow receiv-ing data from more than one
    source."

    Joined for sources 10.0.1.1 and 10.0.1.3: datagrams from 10.0.1.4, 10.0.1.1 and
    10.0.1.3 (in that order) give the last two."""
    topo = _hosts(S2, S3)
    rx = _receiver(topo)
    for src in (S1, S2):
        rx.setsockopt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, ip_mreq_source(G, "10.0.1.2", src))
    for src in (S3, S1, S2):
        _send(topo, src.encode(), source=src)
    expect.equal("sources of the first two datagrams", [_first(rx, "b")[1] for _ in range(2)], [S1, S2])
    _nothing_more(rx, "anything else queued")


@pytest.mark.clause("ip.7/ip-block-source/block-source", "ip.7/ip-block-source/argument")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_block_source():
    """"Stop receiving multicast data from a specific source in a given group." "Argument
    is an ip_mreq_source structure as described under IP_ADD_SOURCE_MEMBERSHIP."

    After IP_ADD_MEMBERSHIP and IP_BLOCK_SOURCE(10.0.1.1): of datagrams from 10.0.1.1 then
    10.0.1.3, only the second is delivered."""
    topo = _hosts(S2)
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    rx.setsockopt(SOL_IP, IP_BLOCK_SOURCE, ip_mreq_source(G, "10.0.1.2", S1))
    _send(topo, b"blocked", source=S1)
    _send(topo, b"allowed", source=S2)
    expect.equal("first datagram and its source", _first(rx, "b"), (b"allowed", S2))


@pytest.mark.clause("ip.7/ip-block-source/requires-membership")
@pytest.mark.fault("setsockopt")
def test_block_source_needs_a_membership():
    """"This is valid only after the applica-tion has subscribed to the multicast group
    using either"

    IP_BLOCK_SOURCE before any join fails (the page names no errno; EINVAL or
    EADDRNOTAVAIL are taken); after IP_ADD_MEMBERSHIP the same call succeeds, and so does
    it after IP_ADD_SOURCE_MEMBERSHIP: the sentence goes on "IP_ADD_MEMBERSHIP or
    IP_ADD_SOURCE_MEMBERSHIP." (that line is lost from this copy of the page)."""
    topo = _hosts()
    rx = _receiver(topo)
    arg = ip_mreq_source(G, "10.0.1.2", S1)
    expect.errno(("EINVAL", "EADDRNOTAVAIL"), rx.setsockopt, SOL_IP, IP_BLOCK_SOURCE, arg,
                 what="IP_BLOCK_SOURCE without a membership")
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    expect.succeeds(rx.setsockopt, SOL_IP, IP_BLOCK_SOURCE, arg, what="IP_BLOCK_SOURCE after IP_ADD_MEMBERSHIP")
    sourced = _receiver(topo, PORT + 1)
    sourced.setsockopt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, ip_mreq_source(G, "10.0.1.2", S2))
    expect.succeeds(sourced.setsockopt, SOL_IP, IP_BLOCK_SOURCE, arg,
                    what="IP_BLOCK_SOURCE after IP_ADD_SOURCE_MEMBERSHIP")


@pytest.mark.clause("ip.7/ip-unblock-source/unblock", "ip.7/ip-unblock-source/argument")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_unblock_source():
    """"Unblock previously blocked multicast source." "Argument is an ip_mreq_source
    structure as described under IP_ADD_SOURCE_MEMBERSHIP."

    Blocked, then unblocked: datagrams from 10.0.1.1 are delivered again."""
    topo = _hosts()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    rx.setsockopt(SOL_IP, IP_BLOCK_SOURCE, ip_mreq_source(G, "10.0.1.2", S1))
    rx.setsockopt(SOL_IP, IP_UNBLOCK_SOURCE, ip_mreq_source(G, "10.0.1.2", S1))
    _send(topo, b"unblocked", source=S1)
    expect.equal("datagram and source received by b", _first(rx, "b"), (b"unblocked", S1))


@pytest.mark.clause("ip.7/ip-unblock-source/eaddrnotavail")
@pytest.mark.fault("setsockopt")
def test_unblock_source_not_blocked_is_eaddrnotavail():
    """"Returns EADDRNOTAVAIL when given source is not being blocked."

    The group is joined, 10.0.1.3 is blocked, 10.0.1.1 never was."""
    topo = _hosts()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    rx.setsockopt(SOL_IP, IP_BLOCK_SOURCE, ip_mreq_source(G, "10.0.1.2", S2))
    expect.errno("EADDRNOTAVAIL", rx.setsockopt, SOL_IP, IP_UNBLOCK_SOURCE, ip_mreq_source(G, "10.0.1.2", S1),
                 what="IP_UNBLOCK_SOURCE of a source not blocked")


# ---------------------------------------------------------------------- leaving

@pytest.mark.clause("ip.7/ip-drop-membership/leave-group", "ip.7/ip-drop-membership/argument")
@pytest.mark.fault("setsockopt", "recvfrom")
@pytest.mark.parametrize("struct_kind", ["ip_mreqn", "ip_mreq"])
def test_drop_membership(struct_kind):
    """"Leave a multicast group." "Argument is an ip_mreqn or ip_mreq structure similar to
    IP_ADD_MEMBERSHIP."

    b joins 239.1.2.3 and 239.1.2.4 and drops the first (with either structure): the
    group leaves /proc/net/igmp, and of datagrams to the first group then the second, only
    the second is delivered."""
    topo = _hosts()
    rx = _receiver(topo)
    for group in (G, G2):
        rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(group, "10.0.1.2"))
    arg = ip_mreqn(G, "10.0.1.2") if struct_kind == "ip_mreqn" else ip_mreq(G, "10.0.1.2")
    rx.setsockopt(SOL_IP, IP_DROP_MEMBERSHIP, arg)
    expect.equal("groups on b's veth after the drop", _groups_on(topo, "to-a"), {G2})
    _send(topo, b"left group", G)
    _send(topo, b"still joined", G2)
    expect.equal("first datagram received", _first(rx, "b")[0], b"still joined")


@pytest.mark.clause("ip.7/ip-drop-source-membership/leave-source",
                    "ip.7/ip-drop-source-membership/remaining-sources-delivered",
                    "ip.7/ip-drop-source-membership/argument")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_drop_source_membership_keeps_the_other_sources():
    """"Leave a source-specific group-that is, stop receiving data from a given multicast
    group that come from a given source." "If the application has subscribed to multiple
    sources within the same group, data from the remaining sources will still be
    delivered."

    Joined for 10.0.1.1 and 10.0.1.3, then 10.0.1.1 dropped: of datagrams from 10.0.1.1
    then 10.0.1.3, only the second is delivered."""
    topo = _hosts(S2)
    rx = _receiver(topo)
    for src in (S1, S2):
        rx.setsockopt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, ip_mreq_source(G, "10.0.1.2", src))
    rx.setsockopt(SOL_IP, IP_DROP_SOURCE_MEMBERSHIP, ip_mreq_source(G, "10.0.1.2", S1))
    _send(topo, b"dropped source", source=S1)
    _send(topo, b"remaining source", source=S2)
    expect.equal("first datagram and its source", _first(rx, "b"), (b"remaining source", S2))


@pytest.mark.clause("ip.7/ip-drop-source-membership/drop-all-sources")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_drop_membership_leaves_all_sources():
    """"To stop receiving data from all sources at once, use"  (IP_DROP_MEMBERSHIP)

    Joined to 239.1.2.3 for 10.0.1.1 and 10.0.1.3 (and to 239.1.2.4 for any source), one
    IP_DROP_MEMBERSHIP of 239.1.2.3 stops both sources: after datagrams from each, the one
    to 239.1.2.4 is the first delivered."""
    topo = _hosts(S2)
    rx = _receiver(topo)
    for src in (S1, S2):
        rx.setsockopt(SOL_IP, IP_ADD_SOURCE_MEMBERSHIP, ip_mreq_source(G, "10.0.1.2", src))
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G2, "10.0.1.2"))
    rx.setsockopt(SOL_IP, IP_DROP_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    expect.equal("groups on b's veth after the drop", _groups_on(topo, "to-a"), {G2})
    _send(topo, b"source 1", G, source=S1)
    _send(topo, b"source 2", G, source=S2)
    _send(topo, b"other group", G2, source=S1)
    expect.equal("first datagram received", _first(rx, "b")[0], b"other group")


# ---------------------------------------------------------------------- IP_MSFILTER

@pytest.mark.clause("ip.7/ip-msfilter/full-state-filter", "ip.7/ip-msfilter/argument")
@pytest.mark.fault("setsockopt", "getsockopt")
def test_msfilter_set_and_read_back():
    """"This option provides access to the advanced full-state filtering API." "Argument
    is an ip_msfilter structure."

    After joining, setsockopt(IP_MSFILTER) with include mode and two sources; the
    getsockopt(IP_MSFILTER) filled in for the same group and interface returns that
    mode and those sources."""
    topo = _hosts()
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    rx.setsockopt(SOL_IP, IP_MSFILTER, ip_msfilter(G, "10.0.1.2", MCAST_INCLUDE, [S1, S2]))
    raw = getsockopt_in(rx, SOL_IP, IP_MSFILTER, ip_msfilter(G, "10.0.1.2", MCAST_INCLUDE, ["0.0.0.0"] * 4), 32)
    group, _, fmode, sources = parse_msfilter(raw)
    expect.equal("group, mode and sources read back", (group, fmode, sorted(sources)),
                 (G, MCAST_INCLUDE, sorted([S1, S2])))


@pytest.mark.clause("ip.7/ip-msfilter/include-exclude-modes")
@pytest.mark.fault("setsockopt", "recvfrom")
@pytest.mark.parametrize("mode", ["MCAST_INCLUDE", "MCAST_EXCLUDE"])
def test_msfilter_modes(mode):
    """"There are two macros, MCAST_INCLUDE and MCAST_EXCLUDE, which can be used to
    specify the filtering mode."

    Filter {10.0.1.1}: in include mode only 10.0.1.1 is delivered, in exclude mode every
    source but 10.0.1.1.  The unwanted source sends first."""
    topo = _hosts(S2)
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    fmode = MCAST_INCLUDE if mode == "MCAST_INCLUDE" else MCAST_EXCLUDE
    rx.setsockopt(SOL_IP, IP_MSFILTER, ip_msfilter(G, "10.0.1.2", fmode, [S1]))
    unwanted, wanted = (S2, S1) if fmode == MCAST_INCLUDE else (S1, S2)
    _send(topo, b"unwanted", source=unwanted)
    _send(topo, b"wanted", source=wanted)
    expect.equal(f"first datagram and its source ({mode} {{{S1}}})", _first(rx, "b"), (b"wanted", wanted))


# ---------------------------------------------------------------------- IP_MULTICAST_ALL

@pytest.mark.clause("ip.7/ip-multicast-all/boolean-default-one")
@pytest.mark.fault("getsockopt")
def test_multicast_all_defaults_to_one():
    """"The argument is a boolean integer (defaults to 1)."

    A new UDP socket reads 1; after setting 0 it reads 0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    expect.equal("IP_MULTICAST_ALL of a new socket", sock.getsockopt(SOL_IP, IP_MULTICAST_ALL), 1)
    sock.setsockopt(SOL_IP, IP_MULTICAST_ALL, 0)
    expect.equal("IP_MULTICAST_ALL after setting 0", sock.getsockopt(SOL_IP, IP_MULTICAST_ALL), 0)


@pytest.mark.clause("ip.7/ip-multicast-all/delivery-policy", "ip.7/ip-multicast-all/on-receives-all-joined")
@pytest.mark.fault("recvfrom")
def test_multicast_all_on_receives_groups_joined_elsewhere():
    """"This option can be used to modify the delivery policy of multicast messages to
    sockets bound to the wildcard INADDR_ANY address." "If set to 1, the socket will
    receive messages from all the groups that have been joined globally on the whole
    system."

    In b, socket X (0.0.0.0:4321, no join, option at its default 1) and socket Y (another
    port) that joins 239.1.2.3: a datagram to 239.1.2.3:4321 reaches X."""
    topo = _hosts()
    x = _receiver(topo)
    y = _receiver(topo, PORT + 1)
    y.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    _send(topo, b"joined by another socket")
    expect.equal("datagram received by the socket that did not join", _first(x, "X")[0],
                 b"joined by another socket")


@pytest.mark.clause("ip.7/ip-multicast-all/delivery-policy", "ip.7/ip-multicast-all/off-only-own-groups")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_multicast_all_off_only_own_groups():
    """"Otherwise, it will deliver messages only from the groups that have been explicitly
    joined (for example via the IP_ADD_MEMBERSHIP option) on this particular socket."

    X sets the option to 0 and joins 239.1.2.4; Y joins 239.1.2.3.  Of datagrams to
    239.1.2.3 and then 239.1.2.4 (port 4321), X's first is the one to its own group."""
    topo = _hosts()
    x = _receiver(topo)
    x.setsockopt(SOL_IP, IP_MULTICAST_ALL, 0)
    x.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G2, "10.0.1.2"))
    y = _receiver(topo, PORT + 1)
    y.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    _send(topo, b"other socket's group", G)
    _send(topo, b"own group", G2)
    expect.equal("first datagram received by X", _first(x, "X")[0], b"own group")


# ---------------------------------------------------------------------- IP_MULTICAST_IF

def _arrival_link(topo, rx: socket.socket) -> str:
    """The name of b's link a datagram arrived on (from its IP_PKTINFO)."""
    wait_readable(rx, "a datagram at b")
    got = rawsock.recvmsg(rx.fileno(), 2048, controllen=64, flags=socket.MSG_DONTWAIT)
    info = cmsg.find(cmsg.decode(got.control), SOL_IP, IP_PKTINFO)
    expect.true("IP_PKTINFO with the datagram", bool(info))
    ifindex = parse_pktinfo(info[0].data).ifindex
    names = {l.ifindex: l.name for l in topo["b"].links.values()}
    return names.get(ifindex, f"ifindex {ifindex}")


def _member_on_every_link(topo) -> socket.socket:
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_PKTINFO, 1)
    for link in topo["b"].links.values():
        rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", link.ifindex))
    return rx


MULTICAST_IF_FORMS = [
    pytest.param("in_addr", id="in_addr", marks=pytest.mark.clause("ip.7/ip-multicast-if/argument-mreqn-or-in-addr")),
    pytest.param("ip_mreqn", id="ip_mreqn", marks=pytest.mark.clause("ip.7/ip-multicast-if/argument-mreqn-or-in-addr")),
    pytest.param("ip_mreq", id="ip_mreq", marks=pytest.mark.clause("ip.7/ip-multicast-if/argument-ip-mreq")),
]


@pytest.mark.clause("ip.7/ip-multicast-if/set-device")
@pytest.mark.fault("setsockopt", "recvmsg")
@pytest.mark.parametrize("form", MULTICAST_IF_FORMS)
def test_multicast_if_selects_the_outgoing_device(form):
    """"Set the local device for a multicast socket." "The argu-ment for setsockopt(2) is
    an ip_mreqn or (since Linux 3.5) ip_mreq structure similar to IP_ADD_MEMBERSHIP, or an
    in_addr structure."

    a and b share two links; a's multicast route goes over the first.  IP_MULTICAST_IF
    naming the second link (by its address, or by index in an ip_mreqn) makes a's
    datagram arrive at b on the second link."""
    topo = _two_links()
    rx = _member_on_every_link(topo)
    tx = topo.socket("a")
    second = topo["a"].links["to-b2"]
    arg = {"in_addr": socket.inet_aton(second.address),
           "ip_mreqn": ip_mreqn("0.0.0.0", "0.0.0.0", second.ifindex),
           "ip_mreq": ip_mreq("0.0.0.0", second.address)}[form]
    tx.setsockopt(SOL_IP, IP_MULTICAST_IF, arg)
    tx.sendto(b"via the chosen device", (G, PORT))
    expect.equal("b's link the datagram arrived on", _arrival_link(topo, rx), "to-a2")


@pytest.mark.clause("ip.7/ip-multicast-if/struct-by-optlen")
@pytest.mark.fault("setsockopt", "recvmsg")
def test_multicast_if_struct_chosen_by_optlen():
    """"(The kernel determines which structure is being passed based on the size passed in
    optlen.)"

    Three links.  One 12-byte buffer {first link's address, second link's address, third
    link's index}: with optlen 4 it is an in_addr (first link), with 8 an ip_mreq whose
    imr_interface is the second field (second link), with 12 an ip_mreqn (third link, by
    index).  An in_addr of INADDR_ANY then resets the choice: the route's link again."""
    topo = _two_links(3)
    rx = _member_on_every_link(topo)
    links = [topo["a"].links[n] for n in ("to-b", "to-b2", "to-b3")]
    buf = socket.inet_aton(links[0].address) + socket.inet_aton(links[1].address) + struct.pack("=i", links[2].ifindex)
    tx = topo.socket("a")
    seen = {}
    for optlen in (4, 8, 12):
        tx.setsockopt(SOL_IP, IP_MULTICAST_IF, buf[:optlen])
        tx.sendto(b"x", (G, PORT))
        seen[optlen] = _arrival_link(topo, rx)
    tx.setsockopt(SOL_IP, IP_MULTICAST_IF, socket.inet_aton("0.0.0.0"))
    tx.sendto(b"x", (G, PORT))
    seen["INADDR_ANY"] = _arrival_link(topo, rx)
    expect.equal("b's arrival link per optlen", seen,
                 {4: "to-a", 8: "to-a2", 12: "to-a3", "INADDR_ANY": "to-a"})


@pytest.mark.clause("ip.7/ip-multicast-if/getsockopt-in-addr")
@pytest.mark.fault("getsockopt")
def test_multicast_if_getsockopt_returns_in_addr():
    """"For getsockopt(2), the argument is an in_addr"

    Set by address (127.0.0.1), getsockopt into a 12-byte buffer returns 4 bytes, that
    address; set by index only (ip_mreqn for lo), it returns 0.0.0.0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(SOL_IP, IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    got = rawsock.getsockopt(sock.fileno(), SOL_IP, IP_MULTICAST_IF, 12)
    expect.equal("bytes and optlen after setting an in_addr", got, (socket.inet_aton("127.0.0.1"), 4))
    sock.setsockopt(SOL_IP, IP_MULTICAST_IF, ip_mreqn("0.0.0.0", "0.0.0.0", 1))
    got = rawsock.getsockopt(sock.fileno(), SOL_IP, IP_MULTICAST_IF, 12)
    expect.equal("bytes and optlen after setting an index only", got, (bytes(4), 4))


# ---------------------------------------------------------------------- IP_MULTICAST_LOOP

@pytest.mark.clause("ip.7/ip-multicast-loop/loopback-flag")
@pytest.mark.fault("setsockopt", "recvfrom")
def test_multicast_loop():
    """"Set or read a boolean integer argument that determines whether sent multicast
    packets should be looped back to the local sockets."

    A member in the sending host a gets a's datagram only while the flag is 1; the
    member in b gets both.  The option reads back what was set."""
    topo = _hosts()
    local = _receiver(topo, host="a")
    local.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.1"))
    remote = _receiver(topo)
    remote.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "10.0.1.2"))
    tx = topo.socket("a")
    tx.setsockopt(SOL_IP, IP_MULTICAST_LOOP, 0)
    expect.equal("IP_MULTICAST_LOOP after setting 0", tx.getsockopt(SOL_IP, IP_MULTICAST_LOOP), 0)
    tx.sendto(b"loop off", (G, PORT))
    tx.setsockopt(SOL_IP, IP_MULTICAST_LOOP, 1)
    expect.equal("IP_MULTICAST_LOOP after setting 1", tx.getsockopt(SOL_IP, IP_MULTICAST_LOOP), 1)
    tx.sendto(b"loop on", (G, PORT))
    expect.equal("first datagram looped back to the member in a", _first(local, "a")[0], b"loop on")
    expect.equal("datagrams received by the member in b", [_first(remote, "b")[0] for _ in range(2)],
                 [b"loop off", b"loop on"])


# ---------------------------------------------------------------------- IP_MULTICAST_TTL

@pytest.mark.clause("ip.7/ip-multicast-ttl/default-one", "ip.7/ip-multicast-ttl/set-get")
@pytest.mark.fault("getsockopt", "setsockopt")
def test_multicast_ttl_on_the_wire():
    """"The default is 1 which means that multicast packets don't leave the local network
    unless the user program explicitly requests it." "Set or read the time-to-live value
    of outgoing multi-cast packets for this socket."

    A new socket reads 1 and its datagram arrives at b with TTL 1; after setting 7 it
    reads 7 and the next arrives with TTL 7 (headers captured in b)."""
    topo = _hosts()
    cap = Capture(topo, "b")
    tx = topo.socket("a")
    expect.equal("IP_MULTICAST_TTL of a new socket", tx.getsockopt(SOL_IP, IP_MULTICAST_TTL), 1)
    tx.sendto(b"default", (G, PORT))
    expect.equal("TTL of the packet arriving at b", cap.next("the group datagram", udp_to(PORT)).ttl, 1)
    tx.setsockopt(SOL_IP, IP_MULTICAST_TTL, 7)
    expect.equal("IP_MULTICAST_TTL after setting 7", tx.getsockopt(SOL_IP, IP_MULTICAST_TTL), 7)
    tx.sendto(b"seven", (G, PORT))
    expect.equal("TTL of the packet arriving at b", cap.next("the group datagram", udp_to(PORT)).ttl, 7)


MULTICAST_TTL_VALUES = [
    pytest.param(int_opt(0), 0, id="0"),
    pytest.param(int_opt(255), 255, id="255"),
    pytest.param(int_opt(-1), 1, id="-1-is-default"),
    pytest.param(b"\x05", 5, id="one-byte-5"),
    pytest.param(int_opt(256), "EINVAL", id="256"),
    pytest.param(int_opt(-2), "EINVAL", id="-2"),
]


@pytest.mark.clause("ip.7/ip-multicast-ttl/argument-integer")
@pytest.mark.fault("setsockopt")
@pytest.mark.parametrize("arg, result", MULTICAST_TTL_VALUES)
def test_multicast_ttl_argument(arg, result):
    """"Argument is an integer."

    0..255 are taken as given, -1 restores the default (1), values beyond fail with
    EINVAL; Linux also accepts a one-byte argument."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(SOL_IP, IP_MULTICAST_TTL, 9)
    if isinstance(result, str):
        expect.errno(result, sock.setsockopt, SOL_IP, IP_MULTICAST_TTL, arg, what=f"IP_MULTICAST_TTL={arg!r}")
    else:
        sock.setsockopt(SOL_IP, IP_MULTICAST_TTL, arg)
        expect.equal(f"IP_MULTICAST_TTL after setting {arg!r}", sock.getsockopt(SOL_IP, IP_MULTICAST_TTL), result)


MRT_INIT, MRT_ADD_VIF, MRT_ADD_MFC = 200, 202, 204
VIFF_USE_IFINDEX = 0x8


def _multicast_router(topo, source: str, group: str) -> socket.socket:
    """Make host r forward (source, group) from its a-side link to its b-side link (vif
    thresholds 1: a packet is forwarded only when its TTL is above 1)."""
    mroute = topo.socket("r", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
    mroute.setsockopt(SOL_IP, MRT_INIT, 1)
    for vif, link in enumerate(("to-a", "to-b")):
        vifctl = struct.pack("=HBBIi4s", vif, VIFF_USE_IFINDEX, 1, 0, topo["r"].links[link].ifindex, bytes(4))
        mroute.setsockopt(SOL_IP, MRT_ADD_VIF, vifctl)
    ttls = bytes([255, 1]).ljust(32, b"\xff")
    mfcctl = socket.inet_aton(source) + socket.inet_aton(group) + struct.pack("=H", 0) + ttls
    mroute.setsockopt(SOL_IP, MRT_ADD_MFC, mfcctl.ljust(60, b"\0"))
    return mroute


@pytest.mark.clause("ip.7/ip-multicast-ttl/default-one")
@pytest.mark.fault("sendto", "recvfrom")
def test_multicast_ttl_one_does_not_leave_the_network():
    """"The default is 1 which means that multicast packets don't leave the local network
    unless the user program explicitly requests it."

    a - r - b with multicast routing in r for (10.0.1.1, 239.1.2.3).  a's datagram at the
    default TTL is not forwarded to b's network; one sent after it with IP_MULTICAST_TTL 2
    is, and it is the first b receives."""
    topo = topology.routed(mtu=1500)
    mroute = _multicast_router(topo, S1, G)
    rx = _receiver(topo)
    rx.setsockopt(SOL_IP, IP_ADD_MEMBERSHIP, ip_mreqn(G, "0.0.0.0", topo["b"].ifindex))
    tx = topo.socket("a")
    tx.sendto(b"default ttl", (G, PORT))
    tx.setsockopt(SOL_IP, IP_MULTICAST_TTL, 2)
    tx.sendto(b"ttl 2", (G, PORT))
    expect.equal("first datagram forwarded to b's network", _first(rx, "b")[0], b"ttl 2")
    mroute.close()
