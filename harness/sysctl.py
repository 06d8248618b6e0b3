"""Per-network-namespace sysctls, for test children only.

``write("net.ipv4.ip_default_ttl", 64)`` sets a ``net.*`` sysctl of the calling process's
network namespace (the /proc/sys/net view follows the namespace of the process that opens
it).  It refuses to touch the namespace the run started in, so a test can never change the
host's settings, and it refuses sysctls outside ``net.`` (those are host-global).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from harness import expect

_START_NETNS = os.stat("/proc/self/ns/net").st_ino   # the namespace the run started in


class HostSysctlRefused(RuntimeError):
    pass


def path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read(name: str) -> str:
    return path(name).read_text().strip()


def write(name: str, value) -> str:
    """Set ``name`` in this namespace; returns the previous value."""
    if not name.startswith("net."):
        raise HostSysctlRefused(f"{name} is not a per-namespace net.* sysctl")
    if os.stat("/proc/self/ns/net").st_ino == _START_NETNS:
        raise HostSysctlRefused(f"refusing to set {name} in the namespace the run started in")
    old = read(name)
    try:
        path(name).write_text(f"{value}\n")
    except OSError as exc:
        skip_if_read_only(name, exc)
        raise
    return old


def skip_if_read_only(name: str, exc: OSError) -> None:
    """A read-only /proc/sys (Docker mounts it so unless ``systempaths=unconfined``) is the
    environment's limit, not the kernel's: the test cannot set itself up, so it skips."""
    if exc.errno == errno.EROFS:
        expect.skip(f"cannot set {name}: /proc/sys is mounted read-only here "
                    "(a container's default)")
