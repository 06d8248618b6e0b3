"""Labeled networking for the tests that need it: SELinux contexts, NetLabel (static
unlabeled labels, CIPSO) and labeled IPsec, each set up by a context manager that always
tears down what it made.

Contexts
    :func:`own_context`, :func:`strip_nul`, :func:`socket_context`, the parts of a context
    (:func:`user_role_type`, :func:`context_type`, :func:`mls_part`), the policy's
    :func:`initial_context`, :func:`set_sockcreate` / :func:`sockcreate` (the context of
    the sockets this thread creates next, setsockcreatecon(3)), :func:`set_current`
    (setcon(3)), and what the loaded policy decides: :func:`permitted` (selinuxfs
    ``access``), :func:`valid_context`, :func:`enforcing`.

NetLabel (:func:`netlabel_cipso`, :func:`netlabel_static`)
    NetLabel is global: one configuration for the whole kernel, not one per network
    namespace, and its generic-netlink families (NLBL_MGMT, NLBL_CIPSOv4, NLBL_UNLBL) do not
    set ``netnsok``, so they answer only in the initial network namespace (from a fresh
    namespace netlabelctl fails: "failed to initialize the NetLabel library").  Its
    mappings do reach every namespace's loopback: domain mappings match a socket's LSM
    domain and a destination address, and a static label's interface is stored by ifindex
    (``lo`` is 1 in every namespace).  So these fixtures run in the pytest process, before
    the test child forks (use them from pytest fixtures, never inside the test body): they
    run ``netlabelctl`` (Debian's netlabel-tools) in the namespace the run started in,
    which must be the initial one (reached through the pytest process, so a caller in
    another namespace gets there too; /proc/1/ns/net is not always readable), hold a lock so that two
    pytest-xdist workers never configure NetLabel at once, check that what they configured
    is what the kernel lists, and on the way out remove it and check that NetLabel is back
    to what it was before.  Mappings are made for named LSM domains (for SELinux, the type
    of the sending socket's context) with an address selector, so the default mapping and
    every other domain stay as the environment set them.

Labeled IPsec (:func:`labeled_ipsec`)
    xfrm state is per network namespace, so this one runs inside the test child, in its
    own namespace: lo with disable_xfrm=0 and disable_policy=0, one ESP transport SA per
    sending context (an SA's context must equal the sending socket's, SELinux matches
    them), an output policy for the selector; checks that the kernel holds each SA with its
    context (a kernel without an LSM taking xfrm contexts drops them silently), and deletes
    them on the way out.

A fixture that cannot be established raises :class:`FixtureError` naming the missing part:
the test fails, it does not skip.  Environment limits (no SELinux, a kernel without
CONFIG_NETLABEL or CONFIG_INET_ESP) are the catalogue's ``requires``, checked before.

For proving that a labeled test depends on its labeling, ``SOCKSPEC_LABELING`` (or
``--sockspec-labeling``) misconfigures every fixture on purpose: ``off`` sets nothing up,
``wrong-context`` labels with a context other than the sender's (NetLabel CIPSO: maps a
different domain; static labels and IPsec SAs: another valid context).  Default ``on``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno as errno_mod
import fcntl
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

SELINUXFS = Path("/sys/fs/selinux")
XATTR_SELINUX = "security.selinux"
SO_PEERSEC = 31                   # <asm-generic/socket.h>
SO_PASSSEC = 34
MODES = ("on", "off", "wrong-context")
DOI_PASS = 3917           # the CIPSO DOIs these fixtures own (any unused number would do)
DOI_LOCAL = 3918
# The loopback addresses the suites label, one mechanism each (all on lo, in every
# namespace; everything else is left unlabeled).
CIPSO_LOCAL_ADDR = "127.0.0.1"    # NetLabel CIPSO "local" DOI: full contexts
CIPSO_PASS_ADDR = "127.0.0.2"     # NetLabel CIPSO pass-through DOI: the MLS part only
IPSEC_ADDR = "127.0.0.3"          # labeled IPsec, configured in the test's own namespace
STATIC_ADDR = "127.0.0.4"         # NetLabel static (fallback) label for this source
UNLABELED_ADDR = "127.0.0.9"      # no labeling at all
_LOCK_PATH = Path("/run/lock") if Path("/run/lock").is_dir() else Path(tempfile.gettempdir())


class FixtureError(RuntimeError):
    """Labeling the test needs could not be set up (or torn down); the message names the
    missing part.  The test fails with it: a missing fixture never passes or skips."""


def mode() -> str:
    """The labeling mode of this run: on, off or wrong-context (see the module docstring)."""
    value = os.environ.get("SOCKSPEC_LABELING", "on") or "on"
    if value not in MODES:
        raise FixtureError(f"SOCKSPEC_LABELING={value!r}; one of {', '.join(MODES)}")
    return value


# ---------------------------------------------------------------------- contexts

def strip_nul(data: bytes) -> bytes:
    """A security context string less its optional terminating null (SO_PEERSEC and
    SCM_SECURITY may or may not count one)."""
    return data[:-1] if data.endswith(b"\0") else data


def _read_attr(name: str) -> bytes:
    with open(f"/proc/thread-self/attr/{name}", "rb") as f:
        return f.read().rstrip(b"\0\n")


def own_context() -> bytes:
    """This process's security context (/proc/self/attr/current), without a trailing null
    or newline: the default context of the sockets it creates."""
    return _read_attr("current")


def socket_context(fd: int) -> bytes:
    """The SELinux context of socket ``fd`` (its inode's security.selinux attribute)."""
    return strip_nul(os.getxattr(fd, XATTR_SELINUX))


def peersec(sock: socket.socket, buflen: int = 4096) -> tuple[bytes, int]:
    """getsockopt(SOL_SOCKET, SO_PEERSEC) into ``buflen`` bytes: (the bytes, the returned
    optlen); on failure the OSError carries ``.optlen`` (ERANGE: the length needed)."""
    from harness import rawsock

    return rawsock.getsockopt(sock.fileno(), socket.SOL_SOCKET, SO_PEERSEC, buflen)


def user_role_type(context: bytes) -> bytes:
    return b":".join(context.split(b":")[:3])


def context_type(context: bytes) -> bytes:
    """The type of a context: for SELinux also the NetLabel LSM domain of its sockets."""
    return context.split(b":")[2]


def mls_part(context: bytes) -> bytes | None:
    fields = context.split(b":", 3)
    return fields[3] if len(fields) == 4 else None


def with_level(context: bytes, level: bytes) -> bytes:
    """``context`` with its MLS part replaced by ``level``."""
    return user_role_type(context) + b":" + level


def initial_context(name: str) -> bytes:
    """The context the loaded policy gives initial SID ``name`` (selinuxfs)."""
    path = SELINUXFS / "initial_contexts" / name
    try:
        return path.read_bytes().rstrip(b"\0\n")
    except OSError as exc:
        raise FixtureError(f"cannot read {path} ({os.strerror(exc.errno)}): selinuxfs is not mounted "
                           f"or the policy has no {name} initial SID") from None


def set_sockcreate(context: bytes | None) -> None:
    """setsockcreatecon(3): the context of the sockets this thread creates from now on
    (``None``: the default again, the creating process's own)."""
    fd = os.open("/proc/thread-self/attr/sockcreate", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"\n" if context is None else context)
    finally:
        os.close(fd)


def get_sockcreate() -> bytes | None:
    value = _read_attr("sockcreate")
    return value or None


@contextlib.contextmanager
def sockcreate(context: bytes | None) -> Iterator[None]:
    """Sockets made in the block get ``context``; the previous setting comes back after."""
    previous = get_sockcreate()
    set_sockcreate(context)
    try:
        yield
    finally:
        set_sockcreate(previous)


def socket_with_context(context: bytes | None, family: int, kind: int, proto: int = 0) -> socket.socket:
    """socket(2) made under ``context`` (None: the kernel's default, the process's own)."""
    with sockcreate(context):
        return socket.socket(family, kind, proto)


def set_current(context: bytes) -> None:
    """setcon(3): move this (single-threaded) process to ``context``."""
    fd = os.open("/proc/thread-self/attr/current", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, context)
    finally:
        os.close(fd)


def enforcing() -> bool:
    try:
        return (SELINUXFS / "enforce").read_text().strip() == "1"
    except OSError:
        raise FixtureError(f"cannot read {SELINUXFS}/enforce: selinuxfs is not mounted") from None


def valid_context(context: bytes) -> bool:
    """Whether the loaded policy accepts ``context`` (selinuxfs ``context``)."""
    fd = os.open(SELINUXFS / "context", os.O_RDWR | os.O_CLOEXEC)
    try:
        os.write(fd, context)
        return True
    except OSError as exc:
        if exc.errno == errno_mod.EINVAL:
            return False
        raise FixtureError(f"{SELINUXFS}/context: {os.strerror(exc.errno)}") from None
    finally:
        os.close(fd)


def permitted(scontext: bytes, tcontext: bytes, tclass: str, perm: str) -> bool:
    """Whether the loaded policy allows ``scontext`` ``perm`` on ``tcontext`` of class
    ``tclass`` (security_compute_av through selinuxfs ``access``; constraints, MLS ones
    included, count).  A class or permission the policy does not define is allowed or
    denied as its handle_unknown says."""
    cls_dir = SELINUXFS / "class" / tclass
    try:
        index = int((cls_dir / "index").read_text())
        bit = int((cls_dir / "perms" / perm).read_text())
    except OSError:
        return (SELINUXFS / "deny_unknown").read_text().strip() == "0"
    fd = os.open(SELINUXFS / "access", os.O_RDWR | os.O_CLOEXEC)
    try:
        os.write(fd, scontext + b" " + tcontext + b" " + str(index).encode())
        reply = os.read(fd, 256).split()
    except OSError as exc:
        raise FixtureError(f"{SELINUXFS}/access (computing a policy decision): {os.strerror(exc.errno)}") from None
    finally:
        os.close(fd)
    return bool(int(reply[0], 16) & (1 << (bit - 1)))


SOCKET_CLASSES = {(socket.AF_UNIX, socket.SOCK_DGRAM): "unix_dgram_socket",
                  (socket.AF_UNIX, socket.SOCK_STREAM): "unix_stream_socket",
                  (socket.AF_INET, socket.SOCK_DGRAM): "udp_socket",
                  (socket.AF_INET, socket.SOCK_STREAM): "tcp_socket"}
_LEVELS = (b"s0", b"s0:c0", b"s0:c1", b"s1", b"s1:c0", b"s15", b"s15:c0.c1023")


def context_variants(context: bytes) -> dict[str, list[bytes]]:
    """Valid contexts (by the loaded policy) that differ from ``context`` in one part:
    "level" -- the same user:role:type with another MLS level (the levels of ``context``'s
    own range first, then a few common ones); "type" -- the same user, role and MLS part
    with another type (the types of the policy's initial SIDs)."""
    out: dict[str, list[bytes]] = {"level": [], "type": []}
    mls = mls_part(context)
    if mls is not None:
        own_levels = tuple(mls.split(b"-"))
        for level in dict.fromkeys(own_levels + _LEVELS):
            candidate = with_level(context, level)
            if candidate != context and valid_context(candidate):
                out["level"].append(candidate)
    user, role, own_type = context.split(b":")[:3]
    try:
        names = sorted(os.listdir(SELINUXFS / "initial_contexts"))
    except OSError:
        raise FixtureError(f"cannot list {SELINUXFS}/initial_contexts: selinuxfs is not mounted") from None
    types = dict.fromkeys(context_type(initial_context(n)) for n in names)
    for t in types:
        if t == own_type:
            continue
        candidate = b":".join((user, role, t)) + (b":" + mls if mls is not None else b"")
        if valid_context(candidate):
            out["type"].append(candidate)
    return out


def may_label_sockets(context: bytes, tclass: str, process: bytes | None = None) -> bool:
    """Whether ``process`` (default: this process) may create and write to sockets of
    class ``tclass`` labeled ``context`` (setsockcreate on itself, create and write on the
    context), by the loaded policy."""
    process = process or own_context()
    return (permitted(process, process, "process", "setsockcreate")
            and permitted(process, context, tclass, "create")
            and permitted(process, context, tclass, "write"))


# ---------------------------------------------------------------------- NetLabel

# The network namespace the run started in: the pytest process's (this module is imported
# there, before any test child forks).  NetLabel answers there when the run starts in the
# initial namespace, as it does on a host or in the VM.
_START_PID = os.getpid()
_START_NETNS_INODE = os.stat("/proc/self/ns/net").st_ino


@contextlib.contextmanager
def start_netns_fd() -> Iterator[int]:
    """A descriptor of the namespace the run started in, reached through the process that
    imported this module (which stays there); /proc/1/ns/net is not always readable."""
    try:
        fd = os.open(f"/proc/{_START_PID}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise FixtureError(f"cannot reach the network namespace the run started in (/proc/{_START_PID}/ns/net: "
                           f"{os.strerror(exc.errno)})") from None
    try:
        if os.fstat(fd).st_ino != _START_NETNS_INODE:
            raise FixtureError(f"process {_START_PID} left the network namespace the run started in")
        yield fd
    finally:
        os.close(fd)


def run_in_start_netns(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` in the namespace the run started in, from wherever the caller is."""
    from harness import netns

    if os.stat("/proc/self/ns/net").st_ino == _START_NETNS_INODE:
        return subprocess.run(cmd, capture_output=True, text=True)
    with start_netns_fd() as fd:
        return subprocess.run(cmd, capture_output=True, text=True, pass_fds=(fd,),
                              preexec_fn=lambda: netns.enter(fd))


def netlabelctl(*args: str, check: bool = True) -> str:
    """Run ``netlabelctl ARGS`` in the network namespace the run started in (NetLabel
    answers only in the initial one), from wherever the caller is; its standard output.
    Installs netlabel-tools when missing."""
    from harness import debian

    if shutil.which("netlabelctl") is None:
        try:
            debian.ensure("netlabel-tools")
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            raise FixtureError(f"netlabelctl (Debian netlabel-tools) is missing and could not be installed: {exc}")
    cmd = ["netlabelctl", *args]
    r = run_in_start_netns(cmd)
    if check and r.returncode != 0:
        message = (r.stderr or r.stdout).strip() or "no message"
        if "failed to initialize the NetLabel library" in message:
            message += (" (NetLabel's generic netlink families answer only in the initial network namespace: "
                        "the run must start there)")
        raise FixtureError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {message}")
    return r.stdout


def netlabel_state() -> dict[str, str]:
    """What NetLabel holds now: the domain mappings, the CIPSO DOIs, the unlabeled
    accept flag and static labels (netlabelctl's listings)."""
    return {"map": netlabelctl("map", "list").strip(),
            "cipsov4": netlabelctl("cipsov4", "list").strip(),
            "unlbl": netlabelctl("-p", "unlbl", "list").strip()}


_lock_depth = 0


@contextlib.contextmanager
def _netlabel_lock() -> Iterator[None]:
    """One NetLabel configuration at a time, across pytest-xdist workers (a POSIX record
    lock on a file: held by this process only -- a test child or the namespace producer
    forked while it is held does not inherit it, as it would an flock; nested fixtures of
    one process share it)."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    fd = os.open(_LOCK_PATH / "sockspec-netlabel.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
    finally:
        os.close(fd)


@contextlib.contextmanager
def _restored(what: str) -> Iterator[dict[str, str]]:
    """Run the block and then check that NetLabel is as it was before it."""
    before = netlabel_state()
    failure: BaseException | None = None
    try:
        yield before
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the check
        failure = exc
    after = netlabel_state()
    if after != before:
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        msg = f"{what}: NetLabel was not restored after the test: {changed}"
        if failure is not None:
            raise FixtureError(msg) from failure
        raise FixtureError(msg)
    if failure is not None:
        raise failure


def _domain_mapping_text(domain: str) -> str | None:
    """The `map list` entries of ``domain`` (None when it has none)."""
    entries = [e for e in netlabelctl("map", "list").split() if e.startswith(f'domain:"{domain}"')]
    return " ".join(entries) or None


@dataclasses.dataclass
class NetLabelSetup:
    """What a NetLabel fixture configured: the labeled address and how."""
    kind: str                     # "cipso-pass" | "cipso-local" | "static"
    address: str
    domains: tuple[str, ...] = ()
    doi: int | None = None
    label: bytes | None = None
    mode: str = "on"


def _domains(domains: Iterable[bytes | str] | None) -> tuple[str, ...]:
    if domains is None:
        domains = [context_type(own_context())]
    out = tuple(d.decode() if isinstance(d, bytes) else d for d in domains)
    for d in out:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", d):
            raise FixtureError(f"{d!r} is not an SELinux type name (a NetLabel LSM domain)")
    return tuple(dict.fromkeys(out))


@contextlib.contextmanager
def netlabel_cipso(address: str, *, local: bool = False,
                   domains: Iterable[bytes | str] | None = None) -> Iterator[NetLabelSetup]:
    """CIPSO/IPv4 labeling of the traffic that sockets of the SELinux types ``domains``
    (default: this process's type) send to ``address``; their traffic to every other
    address stays unlabeled.

    ``local=False``: a pass-through DOI with tag 1 (``cipsov4 add pass doi:3917 tags:1``):
    the packets carry the sender's MLS level and categories, and the receiver's peer
    context is the policy's netmsg user:role:type with that level.  ``local=True``: the
    "local" DOI (``cipsov4 add local doi:3918``), which conveys the sender's full context
    over loopback.  Then, for each domain, ``map add domain:TYPE address:ADDRESS
    protocol:cipsov4,DOI`` and 0.0.0.0/0 and ::/0 to unlbl."""
    doi = DOI_LOCAL if local else DOI_PASS
    kind = "cipso-local" if local else "cipso-pass"
    setup = NetLabelSetup(kind, address, _domains(domains), doi=doi, mode=mode())
    if setup.mode == "off":
        yield setup
        return
    mapped = setup.domains if setup.mode == "on" else ("sockspec_not_the_sender_t",)
    with _netlabel_lock(), _restored(f"NetLabel CIPSO for {address}") as before:
        if re.search(rf"(^|\s){doi},", before["cipsov4"]):
            raise FixtureError(f"CIPSO DOI {doi} exists already ({before['cipsov4']}): left by an earlier run? "
                               f"remove it with `netlabelctl cipsov4 del doi:{doi}`")
        for d in mapped:
            if _domain_mapping_text(d):
                raise FixtureError(f"NetLabel already maps LSM domain {d!r} ({_domain_mapping_text(d)}): the "
                                   f"fixture would change someone else's mapping")
        try:
            if local:
                netlabelctl("cipsov4", "add", "local", f"doi:{doi}")
            else:
                netlabelctl("cipsov4", "add", "pass", f"doi:{doi}", "tags:1")
            for d in mapped:
                netlabelctl("map", "add", f"domain:{d}", f"address:{address}", f"protocol:cipsov4,{doi}")
                netlabelctl("map", "add", f"domain:{d}", "address:0.0.0.0/0", "protocol:unlbl")
                netlabelctl("map", "add", f"domain:{d}", "address:::/0", "protocol:unlbl")
            for d in mapped:
                listed = _domain_mapping_text(d) or ""
                if f"address:{address}/32,protocol:CIPSOv4,{doi}" not in listed:
                    raise FixtureError(f"NetLabel does not list the CIPSO mapping it was given for domain {d} "
                                       f"and {address}: `map list` shows {listed or 'nothing'}")
            yield setup
        finally:
            for d in mapped:
                if _domain_mapping_text(d):
                    netlabelctl("map", "del", f"domain:{d}", check=False)
            netlabelctl("cipsov4", "del", f"doi:{doi}", check=False)


def _accept_flag(text: str) -> str:
    m = re.search(r"Accept unlabeled packets\s*:\s*(on|off)", text)
    return m.group(1) if m else "on"


def _other_valid_context(context: bytes) -> bytes:
    """A valid context other than ``context``: the policy's unlabeled or kernel initial
    SID's (for the wrong-context misconfiguration)."""
    for sid in ("unlabeled", "kernel", "netmsg"):
        candidate = initial_context(sid)
        if candidate != context:
            return candidate
    raise FixtureError(f"the policy's initial SIDs all have the context {context!r}")


@contextlib.contextmanager
def netlabel_static(address: str, label: bytes, *, interface: str = "lo") -> Iterator[NetLabelSetup]:
    """A NetLabel static (fallback) label: unlabeled packets that arrive on ``interface``
    from ``address`` get the peer context ``label``
    (``netlabelctl unlbl add interface:lo address:ADDRESS label:LABEL``), with the
    unlabeled-accept flag on (``unlbl accept on``; restored after).  The packets must
    leave their sender unlabeled (its domain mapped to unlbl, the default)."""
    setup = NetLabelSetup("static", address, label=label, mode=mode())
    if setup.mode == "off":
        yield setup
        return
    if setup.mode == "wrong-context":
        label = _other_valid_context(label)
    with _netlabel_lock(), _restored(f"NetLabel static label for {address}") as before:
        accept = _accept_flag(before["unlbl"])
        if re.search(rf"address:\s*{re.escape(address)}/32", before["unlbl"]):
            raise FixtureError(f"NetLabel already has a static label for {address}: {before['unlbl']}")
        try:
            netlabelctl("unlbl", "accept", "on")
            netlabelctl("unlbl", "add", f"interface:{interface}", f"address:{address}", f"label:{label.decode()}")
            listed = netlabelctl("-p", "unlbl", "list")
            if f"{address}/32" not in listed or label.decode() not in listed:
                raise FixtureError(f"NetLabel does not list the static label it was given for {interface} "
                                   f"{address} ({label!r}): `unlbl list` shows {listed.strip()}")
            yield setup
        finally:
            netlabelctl("unlbl", "del", f"interface:{interface}", f"address:{address}", check=False)
            netlabelctl("unlbl", "accept", accept, check=False)


# ---------------------------------------------------------------------- labeled IPsec

ESP_SPI = 0x5EC0


@dataclasses.dataclass
class IpsecSetup:
    """The labeled SAs a :func:`labeled_ipsec` block holds, and what they carried."""
    topo: object
    src: str
    dst: str
    contexts: tuple[bytes, ...]
    spis: tuple[int, ...]
    mode: str = "on"

    def packets(self) -> int:
        """Packets carried by all of this fixture's SAs so far (0 with labeling off)."""
        if self.mode == "off":
            return 0
        return sum(self.topo.sa("a", dst=self.dst, spi=spi).packets for spi in self.spis)


@contextlib.contextmanager
def labeled_ipsec(topo, *, src: str, dst: str, contexts: Iterable[bytes], proto: int = 0,
                  spi: int = ESP_SPI) -> Iterator[IpsecSetup]:
    """Labeled IPsec from ``src`` to ``dst`` in the test child's namespace (host ``a`` of
    ``topo``, a :class:`harness.topology.Topology`): lo with disable_xfrm=0 and
    disable_policy=0, one ESP transport SA (null cipher, hmac(sha256)) per context in
    ``contexts`` -- each the context of a socket that will send over it, since SELinux
    uses an SA only for a flow of the SA's own context -- with SPIs ``spi``, ``spi + 1``,
    ..., and an output policy for ``proto`` (0: any) from ``src`` to ``dst`` carrying the
    first context.  With src == dst one set of SAs serves both directions; otherwise call
    it again for the way back.  The kernel must hold every SA with its context."""
    from harness import sysctl

    contexts = tuple(contexts)
    spis = tuple(spi + i for i in range(len(contexts)))
    setup = IpsecSetup(topo, src, dst, contexts, spis, mode=mode())
    if setup.mode == "off":
        yield setup
        return
    given = contexts if setup.mode == "on" else tuple(_other_valid_context(c) for c in contexts)
    for knob in ("net.ipv4.conf.lo.disable_xfrm", "net.ipv4.conf.lo.disable_policy"):
        sysctl.write(knob, 0)
    made_sas: list[int] = []
    policy = False
    try:
        for ctx, n in zip(given, spis):
            try:
                topo.add_sa("a", src=src, dst=dst, spi=n, ctx=ctx)
            except OSError as exc:
                raise FixtureError(f"cannot add the ESP SA {src} -> {dst} spi {n:#x} ctx {ctx!r}: "
                                   f"{os.strerror(exc.errno)} (esp4 and the null cipher must be available)") from None
            made_sas.append(n)
            held = topo.sa("a", dst=dst, spi=n).ctx
            if held is None or strip_nul(held) != ctx:       # SELinux keeps a terminating null
                raise FixtureError(f"the kernel holds the SA spi {n:#x} with context {held!r}, not {ctx!r}: "
                                   "no LSM takes xfrm contexts here")
        try:
            topo.add_policy("a", direction="out", src=src, dst=dst, proto=proto, ctx=given[0])
        except OSError as exc:
            raise FixtureError(f"cannot add the output policy {src} -> {dst} ctx {given[0]!r}: "
                               f"{os.strerror(exc.errno)}") from None
        policy = True
        yield setup
    finally:
        if policy:
            topo.del_policy("a", direction="out", src=src, dst=dst, proto=proto, ctx=given[0])
        for n in made_sas:
            topo.del_sa("a", dst=dst, spi=n)
