"""Network namespaces: a fresh one for each test child, with loopback up.

The sandbox takes a namespace from :data:`POOL` and its forked child joins it with
:func:`enter` (a caller without CAP_SYS_ADMIN gets :func:`enter_fresh_unprivileged`
instead).  Topologies of several namespaces joined by veth pairs (ip(7) suite) are built
inside the test child by :mod:`harness.topology`.
"""

from __future__ import annotations

import fcntl
import functools
import os
import signal
import socket
import struct

from harness.libc import check, libc

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1


def unshare(flags: int) -> None:
    check(libc.unshare(flags), "unshare")


def set_link_up(name: str = "lo") -> None:
    """Bring an interface of the current namespace up (SIOCSIFFLAGS: one syscall, no netlink
    round trip; this runs once per test and is the cheapest way to do it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


def enter_fresh_unprivileged() -> None:
    """For a caller without CAP_SYS_ADMIN: a new user namespace mapping only the caller's
    own uid and gid, and in it a new network namespace with loopback up.  The caller must
    drop the capabilities the user namespace gave it before running a test body."""
    uid, gid = os.getuid(), os.getgid()
    # A process that changed its uids is not dumpable, which makes /proc/self/*_map root's.
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    unshare(CLONE_NEWUSER | CLONE_NEWNET)
    _write_proc("/proc/self/setgroups", "deny")
    _write_proc("/proc/self/uid_map", f"{uid} {uid} 1")
    _write_proc("/proc/self/gid_map", f"{gid} {gid} 1")
    set_link_up("lo")


def _write_proc(path: str, text: str) -> None:
    """Write a /proc file; an error names the file (the kernel refuses at write time)."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise OSError(exc.errno, f"writing {path}: {exc.strerror}", path) from None


@functools.lru_cache(maxsize=None)
def can_create() -> bool:
    """Whether this process may create network namespaces directly (CAP_SYS_ADMIN)."""
    from harness import privileges

    return privileges.has("CAP_SYS_ADMIN")


def current_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def enter(fd: int) -> None:
    """Join the network namespace ``fd`` refers to."""
    check(libc.setns(fd, CLONE_NEWNET), "setns")


class FreshPool:
    """Fresh network namespaces (loopback up), made ahead of time by a helper process.

    Creating a namespace costs the kernel about a millisecond; a small producer process
    pays it on the other core while the current test runs, and passes each namespace's
    descriptor over a unix socket (SCM_RIGHTS).  (A thread would do the same work but make
    the main thread wait for the GIL after every syscall.)  The producer works ``depth``
    namespaces ahead, on credit.  Each namespace is handed out once and never reused: the
    caller forks, the child joins it with :func:`enter`, and the parent lets go of its
    descriptor (:meth:`retire`), so the namespace dies with the child.  The producer dies
    with its parent (PR_SET_PDEATHSIG) or when the socket closes.
    """

    def __init__(self, depth: int = 4, batch: int = 64):
        self.depth = depth
        self.batch = batch
        self._retired: list[int] = []
        self._sock: socket.socket | None = None
        self._producer = 0
        self._pid = os.getpid()

    def _produce(self, sock: socket.socket) -> None:
        from harness import cmsg, rawsock

        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self._pid:
            os._exit(0)
        while sock.recv(1):                     # one credit per namespace
            try:
                unshare(CLONE_NEWNET)
                set_link_up("lo")
                fd = os.open("/proc/self/ns/net", os.O_RDONLY)
            except OSError as exc:
                sock.send(struct.pack("=i", exc.errno))
                break
            rawsock.sendmsg(sock.fileno(), struct.pack("=i", 0), cmsg.encode([cmsg.rights(fd)]))
            os.close(fd)
        os._exit(0)

    def _start(self) -> None:
        self._pid = os.getpid()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                parent.close()
                self._produce(child)
            finally:
                os._exit(0)
        child.close()
        self._sock, self._producer = parent, pid
        for _ in range(self.depth):
            parent.send(b"c")

    def take(self) -> int:
        """A descriptor of a fresh namespace; the caller owns it (see :meth:`retire`)."""
        from harness import cmsg, rawsock

        if self._sock is None or self._pid != os.getpid():
            self._start()
        got = rawsock.recvmsg(self._sock.fileno(), 4, cmsg.cmsg_space(4))
        fds = [fd for c in cmsg.decode(got.control) for fd in c.fds]
        if not fds:
            err = struct.unpack("=i", got.data)[0] if len(got.data) == 4 else 0
            raise OSError(err, f"cannot create a network namespace: {os.strerror(err)}")
        self._sock.send(b"c")
        return fds[0]

    def retire(self, fd: int) -> None:
        """Let go of a namespace the child has joined.  Its teardown in the kernel is
        serialized machine-wide (one cleanup worker, rtnl, RCU waits); namespaces released
        together are torn down in one batch, so they are released ``batch`` at a time."""
        self._retired.append(fd)
        if len(self._retired) >= self.batch:
            self.release()

    def release(self) -> None:
        while self._retired:
            os.close(self._retired.pop())

    def close(self) -> None:
        """Release everything and stop the producer (the namespaces it made ahead go too)."""
        self.release()
        if self._sock is not None and self._pid == os.getpid():
            self._sock.close()
            self._sock = None
            try:
                os.waitpid(self._producer, 0)
            except ChildProcessError:
                pass


POOL = FreshPool()
