"""Network namespaces: a fresh one for each test child, with loopback up.

The sandbox calls :func:`enter_fresh` in the forked child.  Topologies of several
namespaces joined by veth pairs (ip(7) suite) are built with pyroute2 in
:mod:`harness.topology`.
"""

from __future__ import annotations

import fcntl
import functools
import os
import queue
import socket
import struct
import threading

from harness.libc import check, libc

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
PR_SET_DUMPABLE = 4


def unshare(flags: int) -> None:
    check(libc.unshare(flags), "unshare")


def set_link_up(name: str = "lo") -> None:
    """Bring an interface of the current namespace up (SIOCSIFFLAGS: one syscall, no netlink
    round trip; this runs once per test and is the cheapest way to do it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


def enter_fresh() -> None:
    """Move the calling process into a new network namespace with loopback up.

    The abstract socket namespace is per network namespace, so abstract names chosen by
    one test never collide with another's, also under pytest-xdist.
    """
    unshare(CLONE_NEWNET)
    set_link_up("lo")


def enter_fresh_unprivileged() -> None:
    """For a caller without CAP_SYS_ADMIN: a new user namespace mapping only the caller's
    own uid and gid, and in it a new network namespace with loopback up.  The caller must
    drop the capabilities the user namespace gave it before running a test body."""
    uid, gid = os.getuid(), os.getgid()
    # A process that changed its uids is not dumpable, which makes /proc/self/*_map root's.
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    unshare(CLONE_NEWUSER | CLONE_NEWNET)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")
    set_link_up("lo")


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
    """Fresh network namespaces (loopback up), made ahead of time on a background thread.

    Creating a namespace costs the kernel about a millisecond; the pool pays it while the
    previous test runs.  Each namespace is handed out once and never reused: the caller
    forks, the child joins it with :func:`enter`, and the parent closes its descriptor, so
    the namespace dies with the child.  Only the producer thread ever lives in these
    namespaces; the rest of the process stays where it was.
    """

    def __init__(self, depth: int = 4, batch: int = 64):
        self.batch = batch
        self._retired: list[int] = []
        self._queue: queue.Queue[int] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def _produce(self) -> None:
        while True:
            try:
                unshare(CLONE_NEWNET)
                set_link_up("lo")
                fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                self._queue.put(-exc.errno)
                return
            self._queue.put(fd)

    def take(self) -> int:
        """A descriptor of a fresh namespace; the caller owns (and must close) it."""
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._produce, name="netns-pool", daemon=True)
            self._thread.start()
        fd = self._queue.get()
        if fd < 0:
            raise OSError(-fd, f"cannot create a network namespace: {os.strerror(-fd)}")
        return fd

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
        self.release()
        while True:
            try:
                fd = self._queue.get_nowait()
            except queue.Empty:
                return
            if fd >= 0:
                os.close(fd)


POOL = FreshPool()
