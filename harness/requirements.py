"""Whether this environment can check a clause: its ``requires`` list and ``since`` version.

Each unmet requirement gives the reason the report shows for the skip.
"""

from __future__ import annotations

import os

from harness import kernel, privileges, sandbox
from harness.catalogue import Clause


def unmet(clause: Clause) -> str | None:
    """The reason ``clause`` cannot be checked here, or None when it can."""
    if clause.since_tuple and kernel.version() < clause.since_tuple + (0,) * (3 - len(clause.since_tuple)):
        return (f"kernel {kernel.release()} is older than {clause.since}, "
                f"where the page says this behaviour begins")
    for req in clause.requires:
        reason = _unmet_requirement(req)
        if reason:
            return reason
    return None


def _unmet_requirement(req: str) -> str | None:
    kind, _, arg = req.partition(":")
    if kind == "root":
        if os.geteuid() != 0:
            return "needs root (to switch uid, gid and capabilities in the test child)"
        needed = {"CAP_SETUID", "CAP_SETGID"}
        if not sandbox.shares_container_namespace():
            # Without CAP_SYS_ADMIN the test child runs in a user namespace that maps
            # uid 0 only (harness.netns.enter_fresh_unprivileged): it cannot become another
            # uid.  (In a container's shared namespace it stays in the container's.)
            needed.add("CAP_SYS_ADMIN")
        missing = sorted(needed - privileges.effective())
        if missing:
            return ("needs root with CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID (to switch "
                    f"uid, gid and capabilities in the test child); this root lacks {', '.join(missing)}")
    elif kind == "nonroot":
        if os.geteuid() == 0:
            return "needs to run as a non-root user"
    elif kind == "cap":
        if arg not in privileges.effective():
            return f"needs {arg}, which this process does not have"
    elif kind == "lsm":
        lsms = kernel.active_lsms()
        if arg not in lsms:
            return (f"needs an active {arg} LSM; active here: {','.join(lsms) or 'unknown'} "
                    "(runs for real in the VM environment)")
        if arg == "selinux" and not kernel.selinux_state()["policy_loaded"]:
            return ("needs an SELinux policy: SELinux is active but no policy is loaded, so "
                    "nothing carries a real security context")
    elif kind == "config":
        enabled = kernel.config_enabled(arg)
        if enabled is False:
            return f"the kernel was built without {arg}"
    elif kind == "vm":
        if kernel.environment_kind() != "vm":
            return "runs in the VM environment (a kernel booted for it under QEMU)"
    return None
