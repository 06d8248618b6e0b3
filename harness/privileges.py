"""Inside a test child: keep or drop capabilities, switch uid/gid, set rlimits.

All of these change only the calling (forked, throw-away) process.
"""

from __future__ import annotations

import ctypes
import os
import resource

from harness.libc import check, libc

CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBER = {name: i for i, name in enumerate(CAPS)}

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23

# An unprivileged identity for tests that must not be root.  Distinct per xdist worker and
# per run (SOCKSPEC_RUN_ID, set by the plugin) so that per-user kernel accounting (e.g. unix
# in-flight descriptors) never mixes tests, even when two runs share a machine.  Tests
# offset it by up to 3100 for further identities; everything stays below 65534, inside
# the 65536 ids a user-namespaced container maps.
NOBODY_BASE = 20000
RUN_SLOTS = 2000
RUN_STRIDE = 16        # xdist workers per run


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _mask(names) -> int:
    mask = 0
    for n in names:
        mask |= 1 << CAP_NUMBER[n]
    return mask


def _names(mask: int) -> set[str]:
    return {name for i, name in enumerate(CAPS) if mask >> i & 1}


def get_caps() -> dict[str, set[str]]:
    """The calling thread's effective, permitted and inheritable sets, by name."""
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    check(libc.capget(ctypes.byref(hdr), data), "capget")
    out = {}
    for field in ("effective", "permitted", "inheritable"):
        out[field] = _names(getattr(data[0], field) | getattr(data[1], field) << 32)
    return out


def effective() -> set[str]:
    return get_caps()["effective"]


def has(cap: str) -> bool:
    return cap in effective()


def in_bounding_set(cap: str) -> bool:
    return libc.prctl(PR_CAPBSET_READ, CAP_NUMBER[cap], 0, 0, 0) == 1


def set_caps(keep) -> None:
    """Make ``keep`` the effective and permitted sets (everything else is dropped)."""
    mask = _mask(keep)
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    data[0].effective = data[0].permitted = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = mask >> 32
    check(libc.capset(ctypes.byref(hdr), data), "capset")


def drop_caps(*names: str) -> None:
    """Drop the named capabilities from the effective and permitted sets."""
    set_caps(effective() - set(names))


def drop_all_caps() -> None:
    set_caps(())


def nobody_uid() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = "".join(ch for ch in worker if ch.isdigit()) or "0"
    run = int(os.environ.get("SOCKSPEC_RUN_ID", "0")) % RUN_SLOTS
    return NOBODY_BASE + run * RUN_STRIDE + int(digits) % RUN_STRIDE


def become(uid, gid=None, keep=()) -> None:
    """Switch uid and gid (and drop supplementary groups), keeping only the capabilities
    named in ``keep``.  ``uid`` and ``gid`` are one id for real, effective and saved alike,
    or a (real, effective, saved) tuple; ``gid`` defaults to ``uid``."""
    gid = uid if gid is None else gid
    uids = uid if isinstance(uid, tuple) else (uid,) * 3
    gids = gid if isinstance(gid, tuple) else (gid,) * 3
    if keep:
        check(libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setresgid(*gids)
    os.setresuid(*uids)
    set_caps(keep)


def set_rlimit(which: int, soft: int, hard: int | None = None) -> None:
    resource.setrlimit(which, (soft, soft if hard is None else hard))
