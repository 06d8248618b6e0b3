"""t6sendto(3N)'s security attributes, mapped onto SELinux labeled networking.

Through :func:`harness.t6sendto.t6sendto`: ``attrs`` is a complete SELinux context; the
data leaves from a socket labeled with it (setsockcreatecon(3) before socket(2)), and the
receiver reads it as SCM_SECURITY -- SO_PASSSEC over AF_UNIX (no network labeling needed),
IP_PASSSEC over UDP with NetLabel's CIPSO "local" DOI (full contexts over loopback).  The
privileges are the policy's: process setsockcreate, socket create and write for the
requested context; the error without them EACCES; a context the policy does not know
EINVAL.  The module docstring of :mod:`harness.t6sendto` lists the limits of the mapping.

These need an active SELinux in the VM environment (catalogue ``requires``).  Which
contexts to use is read from the loaded policy (selinuxfs ``access`` and ``context``): a
context this process may label sockets with other than its own, and contexts it may not.
When the policy offers none, the test fails naming what the policy lacks; SELinux in
permissive mode denies nothing, and the tests that need a denial fail saying so.

What the privilege tests need from the VM's policy (harness/vm/policy/sockspec.cil, which
today declares only the process class and allows every unknown class, so nothing about
sockets is ever denied): udp_socket declared, with create denied to the test domain for
one valid context that differs from its own only in the type and one that differs only in
the level (an mlsconstrain on create), and a domain the test domain may dyntransition to
that lacks udp_socket write on the test domain's sockets.
"""

from __future__ import annotations

import errno as errno_mod
import select
import socket

import pytest

from harness import cmsg, expect, labeling, privileges, sockaddr
from harness.inet import DGRAM, IP_PASSSEC, SOL_IP, inet, ip_cmsgs, recv_control, udp_receiver
from harness.t6sendto import t6sendto

D = "t6sendto.3N/description/"
SO_PASSSEC = 34
UNIX_DGRAM = "unix_dgram_socket"
UDP = "udp_socket"


# ---------------------------------------------------------------------- contexts from the policy

def _other_context(*classes: str) -> bytes:
    """A context other than this process's own that it may label sockets of every class in
    ``classes`` with (a different level first: the same NetLabel domain)."""
    own = labeling.own_context()
    variants = labeling.context_variants(own)
    tried = variants["level"] + variants["type"]
    for ctx in tried:
        if all(labeling.may_label_sockets(ctx, c) for c in classes):
            return ctx
    raise labeling.FixtureError(
        f"the loaded policy lets this process ({own!r}) label {'/'.join(classes)} sockets with no context "
        f"but its own (tried {[c.decode() for c in tried]}): the VM policy must allow process setsockcreate "
        "and create/write on another context")


def _denied_context(kind: str, tclass: str) -> bytes:
    """A valid context differing from this process's own only in ``kind`` ("level" or
    "type") that this process may ask for (setsockcreate) but may not create ``tclass``
    sockets in."""
    own = labeling.own_context()
    if not labeling.enforcing():
        raise labeling.FixtureError("SELinux is permissive (/sys/fs/selinux/enforce is 0): nothing is ever "
                                    "denied, so no missing privilege can be observed")
    if not labeling.permitted(own, own, "process", "setsockcreate"):
        raise labeling.FixtureError(f"the loaded policy denies this process ({own!r}) process setsockcreate")
    candidates = labeling.context_variants(own)[kind]
    for ctx in candidates:
        if not labeling.permitted(own, ctx, tclass, "create"):
            return ctx
    raise labeling.FixtureError(
        f"the loaded policy denies this process ({own!r}) {tclass} create in no valid context that differs "
        f"only in its {kind} (tried {[c.decode() for c in candidates]}): the VM policy must leave one out")


@pytest.fixture
def other_context():
    """Computed in the pytest process: the NetLabel fixture must know its type."""
    return _other_context(UNIX_DGRAM, UDP)


@pytest.fixture
def family(request):
    """The path a test sends over (indirect parameter): "unix-dgram" needs no network
    labeling; "udp" gets NetLabel CIPSO local on 127.0.0.1 for this process's type and,
    when the test also uses ``other_context``, for that context's type too.  Set up in
    the pytest process, before the test child forks."""
    if request.param != "udp":
        yield request.param
        return
    own = labeling.own_context()
    domains = [labeling.context_type(own)]
    if "other_context" in request.fixturenames:
        domains.append(labeling.context_type(request.getfixturevalue("other_context")))
    with labeling.netlabel_cipso(labeling.CIPSO_LOCAL_ADDR, local=True, domains=domains):
        yield request.param


# ---------------------------------------------------------------------- receivers

class UnixReceiver:
    """An AF_UNIX datagram receiver with SO_PASSSEC: SCM_SECURITY at SOL_SOCKET."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, DGRAM)
        self.sock.bind("rx.sock")
        self.sock.setsockopt(socket.SOL_SOCKET, SO_PASSSEC, 1)
        self.to = sockaddr.pathname("rx.sock")
        self.sender = socket.socket(socket.AF_UNIX, DGRAM)

    def context(self, what: str) -> bytes:
        _, items = recv_control(self.sock, what)
        found = cmsg.find(items, socket.SOL_SOCKET, cmsg.SCM_SECURITY)
        expect.equal(f"SCM_SECURITY messages with {what}", len(found), 1)
        return labeling.strip_nul(found[0].data)


class UdpReceiver:
    """A UDP receiver with IP_PASSSEC on the CIPSO-local address: SCM_SECURITY at SOL_IP."""

    def __init__(self):
        self.sock = udp_receiver(labeling.CIPSO_LOCAL_ADDR)
        self.sock.setsockopt(SOL_IP, IP_PASSSEC, 1)
        addr, port = self.sock.getsockname()
        self.to = sockaddr.in4(addr, port)
        self.sender = inet(DGRAM)

    def context(self, what: str) -> bytes:
        _, items = recv_control(self.sock, what)
        found = ip_cmsgs(items, cmsg.SCM_SECURITY)
        expect.equal(f"SCM_SECURITY messages with {what}", len(found), 1)
        return labeling.strip_nul(found[0].data)


def _receiver(family: str):
    return UnixReceiver() if family == "unix-dgram" else UdpReceiver()


# ---------------------------------------------------------------------- specifying attributes

@pytest.mark.clause(D + "privileged-process-sets-attributes", D + "attr-ptr-specifies-attributes")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("family", ["unix-dgram", "udp"], indirect=True)
def test_specified_attributes_reach_the_receiver(other_context, family):
    """"t6sendto() allows a privileged process to specify the security attributes to send
    with an IPC message."  "The security attributes are specified by the attr_ptr
    parameter."

    From one sending socket (labeled with this process's context), t6sendto with attrs =
    another context this process may use delivers a message whose SCM_SECURITY is that
    context; the next call with attrs = this process's context delivers that one: the
    attributes come from the argument, call by call.  AF_UNIX datagrams (SO_PASSSEC) and
    UDP over NetLabel CIPSO local (IP_PASSSEC)."""
    own = labeling.own_context()
    rx = _receiver(family)
    for label, attrs in (("another context", other_context), ("this process's context", own)):
        expect.equal(f"t6sendto with attrs = {label}", t6sendto(rx.sender.fileno(), b"m", 0, rx.to, len(rx.to),
                                                               attrs=attrs), 1)
        expect.equal(f"context the receiver sees (attrs = {label})", rx.context(f"the message with {label}"), attrs)


@pytest.mark.clause(D + "unspecified-supplied-by-kernel")
@pytest.mark.fault("recvmsg")
@pytest.mark.parametrize("family", ["unix-dgram", "udp"], indirect=True)
def test_unspecified_attributes_supplied_by_the_kernel(family):
    """"Any unspecified attributes are supplied by the kernel."

    t6sendto without attrs from a socket this process made without a socket-create
    context: the kernel labeled that socket with this process's context, and that is what
    the receiver sees."""
    rx = _receiver(family)
    expect.equal("sending socket's label (kernel-supplied)", labeling.socket_context(rx.sender.fileno()),
                 labeling.own_context())
    t6sendto(rx.sender.fileno(), b"m", 0, rx.to, len(rx.to))
    expect.equal("context the receiver sees", rx.context("the message"), labeling.own_context())


@pytest.mark.clause(D + "einval-forbidden-attributes")
@pytest.mark.fault("write")
def test_attributes_that_may_not_be_specified_einval():
    """"t6sendto() will return -1 and set errno to EINVAL if any attempt is made to specify
    a t6attr_t with any of these attributes: T6_NAT_CAVEATS, T6_ACL, T6_IL, T6_PID,
    T6_RESV10, T6_AUDIT_INFO."

    The shape on Linux: attributes the system will not take are refused with EINVAL.
    attrs naming a user, role and type the loaded policy does not define fails with
    EINVAL (from setsockcreatecon(3)), and nothing is sent."""
    receiver = udp_receiver(labeling.UNLABELED_ADDR)
    addr, port = receiver.getsockname()
    to = sockaddr.in4(addr, port)
    bogus = b"sockspec_no_u:sockspec_no_r:sockspec_no_t:s0"
    sender = inet(DGRAM)
    expect.errno("EINVAL", t6sendto, sender.fileno(), b"m", 0, to, len(to), attrs=bogus,
                 what=f"t6sendto with attrs {bogus.decode()}")
    expect.equal("anything received", bool(select.select([receiver], [], [], 0.2)[0]), False)


# ---------------------------------------------------------------------- privileges

@pytest.mark.clause(D + "only-privileged-attributes", D + "only-privileged-may-specify")
@pytest.mark.fault("socket", "sendto")
def test_attributes_without_the_privilege_eacces():
    """"A process may only specify those attributes for which it possesses the
    appropriate override privilege"  "Only a process with the appropriate override
    privileges can specify the security attributes associated with the data it sends."

    With SELinux enforcing: t6sendto with attrs = a context this process may use succeeds;
    with attrs = a valid context the policy does not let it create UDP sockets in, it
    fails with EACCES."""
    receiver = udp_receiver(labeling.UNLABELED_ADDR)
    addr, port = receiver.getsockname()
    to = sockaddr.in4(addr, port)
    allowed = expect.observe("a context this process may use", _other_context(UDP))
    try:
        denied = _denied_context("type", UDP)
    except labeling.FixtureError:
        denied = _denied_context("level", UDP)
    expect.observe("a context it may not use", denied)
    sender = inet(DGRAM)
    expect.equal("t6sendto with the permitted attrs", t6sendto(sender.fileno(), b"m", 0, to, len(to), attrs=allowed), 1)
    expect.errno("EACCES", t6sendto, sender.fileno(), b"m", 0, to, len(to), attrs=denied,
                 what="t6sendto with attrs it has no privilege for")


@pytest.mark.clause(D + "only-privileged-may-specify")
@pytest.mark.fault("sendmsg")
def test_netlabel_attributes_need_cap_net_admin():
    """"Only a process with the appropriate override privileges can specify the security
    attributes associated with the data it sends."

    The NetLabel half: which labels (CIPSO options) traffic carries is configured through
    NetLabel, and that needs CAP_NET_ADMIN.  As an unprivileged uid without capabilities,
    ``netlabelctl cipsov4 add pass doi:3919 tags:1`` (in the network namespace the run
    started in, where NetLabel answers) fails with EPERM (netlabelctl exits with the
    errno).  Should it succeed, the DOI is removed again at once."""
    uid = privileges.nobody_uid()
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
           "netlabelctl", "cipsov4", "add", "pass", "doi:3919", "tags:1"]
    r = labeling.run_in_start_netns(cmd)
    expect.observe("netlabelctl output", (r.stdout + r.stderr).strip())
    if r.returncode == 0:
        labeling.netlabelctl("cipsov4", "del", "doi:3919", check=False)
    expect.equal("netlabelctl exit status (the errno) without CAP_NET_ADMIN", r.returncode, errno_mod.EPERM)


@pytest.mark.clause(D + "privilege-per-attribute")
@pytest.mark.fault("socket")
@pytest.mark.parametrize("kind", ["type", "level"])
def test_each_attribute_needs_its_own_privilege(kind):
    """"To specify an attribute, a process must have the override privilege corresponding
    to the attribute."

    Each part of the context is checked on its own: asking for a context that differs
    from this process's only in its type (type enforcement: create on that type), or only
    in its MLS level (the policy's MLS constraints), fails with EACCES when the policy
    does not grant that part, though the rest of the context is this process's own."""
    receiver = udp_receiver(labeling.UNLABELED_ADDR)
    addr, port = receiver.getsockname()
    to = sockaddr.in4(addr, port)
    denied = expect.observe(f"a context differing only in its {kind}, not granted", _denied_context(kind, UDP))
    sender = inet(DGRAM)
    expect.errno("EACCES", t6sendto, sender.fileno(), b"m", 0, to, len(to), attrs=denied,
                 what=f"t6sendto with attrs differing only in the {kind}")


@pytest.mark.clause(D + "access-may-be-revoked")
@pytest.mark.fault("sendto")
def test_access_to_an_open_endpoint_revoked():
    """"It is critical that the return value always be checked, for the addition of
    security means that access to an endpoint may be revoked in response to a security
    violation."

    A UDP socket of this process sends fine; the process then moves (setcon(3)) to a
    domain the policy allows it to move to but does not allow to write to that socket's
    context: the next t6sendto on the same, still open socket fails with EACCES."""
    own = labeling.own_context()
    if not labeling.enforcing():
        raise labeling.FixtureError("SELinux is permissive: no access is ever revoked")
    candidates = labeling.context_variants(own)["type"]
    target = next((c for c in candidates
                   if labeling.permitted(own, c, "process", "dyntransition")
                   and labeling.permitted(own, own, "process", "setcurrent")
                   and not labeling.permitted(c, own, UDP, "write")), None)
    if target is None:
        raise labeling.FixtureError(
            f"the loaded policy offers this process ({own!r}) no domain to move to (dyntransition, setcurrent) "
            f"that lacks udp_socket write on its sockets (tried {[c.decode() for c in candidates]})")
    receiver = udp_receiver(labeling.UNLABELED_ADDR)
    addr, port = receiver.getsockname()
    to = sockaddr.in4(addr, port)
    sender = inet(DGRAM)
    expect.equal("t6sendto before the change", t6sendto(sender.fileno(), b"m", 0, to, len(to)), 1)
    labeling.set_current(expect.observe("domain moved to", target))
    expect.errno("EACCES", t6sendto, sender.fileno(), b"m", 0, to, len(to),
                 what="t6sendto on the same socket after access was revoked")
