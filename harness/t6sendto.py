"""``t6sendto()``: the Trusted IRIX / TSIX call of t6sendto(3N), as a compatibility
function over what Linux has.

    t6sendto(fd, msg, flags, to, tolen, attrs=None, *, length=None) -> bytes sent

TSIX sends one message with security attributes of the caller's choosing.  Linux has no
such call and no per-message label: SELinux labels a *socket*, with the context the
creating thread asked for through setsockcreatecon(3) (/proc/self/attr/sockcreate) or, when
it asked for none, with the creating process's own context; NetLabel or labeled IPsec
carry that context with the data, and the receiver reads it as SCM_SECURITY
(IP_PASSSEC / SO_PASSSEC) or SO_PEERSEC.  So the mapping is:

``fd, msg, length, flags, to, tolen``
    passed to sendto(2) as they are, through :mod:`harness.rawsock` (exact bytes:
    ``to`` is a packed sockaddr from :mod:`harness.sockaddr` or None for no address,
    ``tolen`` the addrlen the kernel sees, ``length`` the TSIX ``len``, default
    ``len(msg)``).  The return value is sendto(2)'s: the number of bytes sent.  A
    failure raises ``OSError`` with the kernel's errno (TSIX: -1 and errno).

``attrs=None`` (no attributes specified)
    the kernel supplies them: the data leaves with ``fd``'s own label, the context the
    kernel gave the socket when it was created.

``attrs=CONTEXT`` (a complete SELinux context, bytes)
    the data must leave from a socket labeled CONTEXT.  When ``fd`` carries CONTEXT
    already, from ``fd``.  Otherwise, for a connectionless ``fd`` (SOCK_DGRAM), from a
    new socket of ``fd``'s family, type and protocol created under CONTEXT (sockcreate
    set for that socket(2) call only, and the previous setting restored), sent to ``to``
    or, when ``to`` is None, to ``fd``'s connected peer, and closed after the call.  The
    privilege checks are the kernel's: writing sockcreate needs SELinux's
    process:setsockcreate (EACCES without it); a CONTEXT the policy does not know fails
    there with EINVAL; socket(2) needs create permission for the class in CONTEXT
    (EACCES).  These errors come back as ``OSError`` like sendto(2)'s.

Limits of the mapping (documented, not hidden):

- Attributes are per socket, never per message: a message sent with other attributes
  leaves from a different socket, so the receiver sees another source address (an
  ephemeral port, an unbound AF_UNIX socket) and nothing orders it with ``fd``'s own
  messages.
- A connection-oriented ``fd`` (SOCK_STREAM, SOCK_SEQPACKET) keeps its creation label for
  the life of the connection: ``attrs`` other than that label raise
  :class:`AttributesNotApplicable` (no Linux counterpart; not an errno).
- TSIX lets a caller give a partial set of attributes, the kernel supplying the rest;
  an SELinux context is always complete, so there is no partial ``attrs``.
- TSIX's attribute kinds (T6_SL, T6_IL, T6_ACL, ...) do not exist: the MLS part of the
  context plays the sensitivity label, the rest of the context the other attributes.
"""

from __future__ import annotations

import socket

from harness import labeling, rawsock

SO_TYPE, SO_PROTOCOL, SO_DOMAIN = 3, 38, 39
_CONNECTIONLESS = (socket.SOCK_DGRAM,)


class AttributesNotApplicable(Exception):
    """``attrs`` cannot be applied on Linux: the socket is connection-oriented and its
    label was fixed when it was created (see the module docstring)."""


def _int_opt(fd: int, option: int) -> int:
    data, _ = rawsock.getsockopt(fd, socket.SOL_SOCKET, option, 4)
    return int.from_bytes(data, "little", signed=True)


def t6sendto(fd: int, msg: bytes, flags: int, to: bytes | None, tolen: int,
             attrs: bytes | None = None, *, length: int | None = None) -> int:
    """Send ``msg`` (its first ``length`` bytes) on ``fd`` to ``to`` (``tolen`` bytes of
    address), with ``flags``, labeled ``attrs`` (None: the kernel supplies the label).
    Returns the number of bytes sent; raises ``OSError`` with the errno of the call that
    failed (see the module docstring for which calls those are)."""
    if attrs is not None:
        kind = _int_opt(fd, SO_TYPE)
        if labeling.socket_context(fd) != attrs:
            if kind not in _CONNECTIONLESS:
                raise AttributesNotApplicable(
                    f"fd {fd} is a connection-oriented socket (type {kind}) labeled "
                    f"{labeling.socket_context(fd)!r}; Linux cannot send with {attrs!r} on it")
            family, proto = _int_opt(fd, SO_DOMAIN), _int_opt(fd, SO_PROTOCOL)
            if to is None:
                peer = rawsock.getpeername(fd, bufsize=128)
                to, tolen = peer.raw, peer.addrlen
            with labeling.socket_with_context(attrs, family, kind, proto) as labeled:
                return rawsock.sendto(labeled.fileno(), msg, to, tolen, flags, nbytes=length)
    return rawsock.sendto(fd, msg, to, tolen, flags, nbytes=length)
