"""The VM's SELinux policy: ``policy/*.cil`` compiled with ``secilc`` (Debian's secilc
package) into a binary policy the guest loads through /sys/fs/selinux/load.

Cached by the hash of the sources and the compiler's version: a second run compiles
nothing.  The contexts the suites run in are named here, next to the policy that defines
them.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import debian
from harness.vm import HERE, cache_dir, digest

NAME = "sockspec"
SOURCES = sorted((HERE / "policy").glob("*.cil"))
# The run's own context, and a second process type a test switches to (attr/current).
CONTEXT_A = "sockspec_u:sockspec_r:sockspec_a_t:s1:c1"
CONTEXT_B = "sockspec_u:sockspec_r:sockspec_b_t:s1:c1"


@dataclass
class Policy:
    name: str
    hash: str
    binary: Path
    context: str            # what the guest's test run switches to

    def describe(self) -> dict:
        return {"policy": self.name, "policy_hash": self.hash, "policy_mls": True,
                "context": self.context}


def build() -> Policy:
    debian.ensure("secilc")
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "secilc"],
                             capture_output=True, text=True).stdout
    key = digest(*SOURCES, version)
    target = cache_dir() / "policy" / f"{NAME}-{key}.bin"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / "policy"
            r = subprocess.run(["secilc", "-o", str(out), "-f", os.devnull, *map(str, SOURCES)],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"secilc failed on {', '.join(map(str, SOURCES))}:\n"
                                   f"{r.stdout}{r.stderr}")
            os.rename(out, target)
    return Policy(NAME, key, target, CONTEXT_A)
