"""What the kernel under test is: release, version, active LSMs, config, capabilities.

Used for version-aware expectations (``at_least``), for skipping clauses whose
requirements this environment lacks, and for the environment block of the report.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import platform
import re
from functools import lru_cache

from harness import privileges
from harness.libc import libc

LSM_IDS = {100: "capability", 101: "selinux", 102: "smack", 103: "tomoyo", 104: "apparmor",
           105: "yama", 106: "loadpin", 107: "safesetid", 108: "lockdown", 109: "bpf",
           110: "landlock", 111: "ima", 112: "evm", 113: "ipe"}
SYS_LSM_LIST_MODULES = {"x86_64": 461, "aarch64": 461}


def release() -> str:
    return platform.release()


@lru_cache(maxsize=None)
def version() -> tuple[int, int, int]:
    nums = [int(n) for n in re.findall(r"\d+", release().split("-")[0])[:3]]
    return tuple(nums + [0] * (3 - len(nums)))  # type: ignore[return-value]


def at_least(*v: int) -> bool:
    return version() >= tuple(v) + (0,) * (3 - len(v))


def _lsms_by_syscall() -> list[str] | None:
    nr = SYS_LSM_LIST_MODULES.get(platform.machine())
    if nr is None:
        return None
    ids = (ctypes.c_uint64 * 32)()
    size = ctypes.c_uint32(ctypes.sizeof(ids))
    n = libc.syscall(nr, ids, ctypes.byref(size), 0)
    if n < 0:
        return None
    return [LSM_IDS.get(ids[i], str(ids[i])) for i in range(n)]


@lru_cache(maxsize=None)
def active_lsms() -> tuple[str, ...]:
    """The active LSMs, in the kernel's order (lsm_list_modules(2), else securityfs)."""
    names = _lsms_by_syscall()
    if names is None:
        try:
            with open("/sys/kernel/security/lsm") as f:
                names = f.read().strip().split(",")
        except OSError:
            names = []
    return tuple(names)


SELINUXFS = "/sys/fs/selinux"


def selinux_state() -> dict | None:
    """SELinux's state when it is an active LSM: whether a policy is loaded (before one
    is, contexts are bare initial SID names such as "kernel" and label nothing) and
    whether it is enforced; None when SELinux is not active."""
    if "selinux" not in active_lsms():
        return None
    try:
        loaded = bool(os.listdir(f"{SELINUXFS}/class"))     # filled in by the policy load
    except OSError:
        try:
            with open("/proc/self/attr/current", "rb") as f:
                loaded = b":" in f.read()
        except OSError:
            loaded = False
    try:
        with open(f"{SELINUXFS}/enforce") as f:
            enforcing = f.read().strip() == "1"
    except OSError:
        enforcing = None
    return {"policy_loaded": loaded, "enforcing": enforcing}


@lru_cache(maxsize=None)
def config() -> dict[str, str] | None:
    """The kernel's build configuration, or None when the kernel does not say."""
    for path in ("/proc/config.gz", f"/boot/config-{release()}"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                text = f.read()
        except OSError:
            continue
        out = {}
        for line in text.splitlines():
            m = re.match(r"^(CONFIG_[A-Z0-9_]+)=(.*)$", line)
            if m:
                out[m.group(1)] = m.group(2)
        return out
    return None


def config_enabled(option: str) -> bool | None:
    cfg = config()
    if cfg is None:
        return None
    return cfg.get(option) in ("y", "m")


def environment_name() -> str:
    """The column this run fills in a matrix report (set by the environment runner)."""
    return os.environ.get("SOCKSPEC_ENVIRONMENT", "host")


def environment_kind() -> str:
    """host, container or vm: what kind of place the suite runs in."""
    return os.environ.get("SOCKSPEC_ENVIRONMENT_KIND", "host")


def environment_details() -> dict:
    """What the environment runner says about itself (image, capability set, policy, ...)."""
    try:
        return json.loads(os.environ.get("SOCKSPEC_ENVIRONMENT_DETAILS", "{}"))
    except ValueError:
        return {}


def _isolation() -> str:
    from harness import sandbox   # (sandbox needs this module's environment_kind)

    return sandbox.isolation()


def describe() -> dict:
    """The environment block of results.json."""
    return {
        "name": environment_name(),
        "kind": environment_kind(),
        "details": environment_details(),
        "kernel_release": release(),
        "kernel_version": ".".join(map(str, version())),
        "machine": platform.machine(),
        "lsms": list(active_lsms()),
        "selinux": selinux_state(),
        "capabilities": sorted(privileges.effective()),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "python": platform.python_version(),
        "isolation": _isolation(),
    }
