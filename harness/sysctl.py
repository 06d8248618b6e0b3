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

from harness import expect, sandbox

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
        if sandbox.shares_container_namespace():
            expect.skip(f"cannot set {name}: this container refuses new namespaces, so the "
                        "test shares the container's network namespace with the whole run")
        raise HostSysctlRefused(f"refusing to set {name} in the namespace the run started in")
    old = read(name)
    try:
        path(name).write_text(f"{value}\n")
    except OSError as exc:
        skip_if_unwritable(name, exc)
        raise
    return old


def skip_if_unwritable(name: str, exc: OSError) -> None:
    """Where the environment, not the kernel under test, keeps a test from setting a sysctl
    of its own namespace, the test cannot set itself up: it skips with the reason.

    - a read-only /proc/sys: Docker mounts it so (unless ``systempaths=unconfined``);
    - a non-root run: the test child's user namespace maps only the caller's uid, so the
      namespace's /proc/sys/net files belong to an unmapped root."""
    if exc.errno == errno.EROFS:
        expect.skip(f"cannot set {name}: /proc/sys is mounted read-only here "
                    "(a container's default)")
    if exc.errno == errno.EACCES and os.geteuid() != 0:
        expect.skip(f"cannot set {name} as uid {os.geteuid()}: the test's user namespace maps "
                    "only this uid, and its network namespace's /proc/sys/net files belong "
                    "to root")
