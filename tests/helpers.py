"""Shared by the project's own tests: running pytest or the CLI in a subprocess, and
looking at what the host holds (namespaces, links, processes, temporary files)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

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


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        rest = text.rsplit(")", 1)[1].split()
        state, ppid = rest[0], int(rest[1])
        if state != "Z":
            children.setdefault(ppid, []).append(int(stat.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


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
