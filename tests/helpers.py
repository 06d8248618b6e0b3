"""Shared by the project's own tests: running pytest or the CLI in a subprocess, and
looking at what the host holds (namespaces, links, processes, temporary files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.procs import alive, descendants  # noqa: F401 - the tests' names

ROOT = Path(__file__).resolve().parent.parent


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("PYTEST_XDIST_WORKER", None)
    e.pop("PYTEST_CURRENT_TEST", None)
    return e


def run_pytest(*args, cwd=ROOT, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)],
                          cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def run_cli(*args, timeout=600, tmpdir=None) -> subprocess.CompletedProcess:
    e = env()
    if tmpdir is not None:
        e["TMPDIR"] = str(tmpdir)
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], cwd=ROOT,
                          env=e, capture_output=True, text=True, timeout=timeout)


def in_child_as(uid: int, fn):
    """Run ``fn`` in a forked child switched to ``uid`` (all of real, effective, saved;
    no supplementary groups), with the harness's privilege probes forgotten; its JSON-able
    result."""
    import json

    from harness import netns, sandbox

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            netns.can_create.cache_clear()
            sandbox._probe_isolation.cache_clear()
            sandbox.shares_container_namespace.cache_clear()
            os.write(w, json.dumps(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def host_state() -> dict:
    """What a conformance run must leave as it found it."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())
    sysctls = {}
    for name in ("net/unix/max_dgram_qlen", "net/core/somaxconn", "net/ipv4/ip_forward",
                 "net/ipv4/ip_unprivileged_port_start", "net/ipv4/ping_group_range"):
        try:
            sysctls[name] = Path("/proc/sys", name).read_text()
        except OSError:
            pass
    return {
        "named_netns": sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
        "links": links,
        "sysctls": sysctls,
        "descendants": descendants(os.getpid()),
        "netns": os.stat("/proc/self/ns/net").st_ino,
    }
