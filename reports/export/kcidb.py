"""KCIDB I/O JSON (schema v5.3), what KernelCI's common database ingests.

Origin ``sockspec`` unless told otherwise (a CI system submitting to KernelCI uses the
origin name it was given: ``./sockspec export --format kcidb --origin NAME``).  The kernel
under test becomes a checkout (``sockspec:linux-<release>``) and a build
(``sockspec:<release>:<machine>``: sockspec does not build kernels, it records the one
it found running); every test becomes a test run with origin ``sockspec``, a
dot-separated path (``sockspec.<suite>.<module>.<test>.<parameters>``), a status
(PASS, FAIL, ERROR, SKIP), its duration, the environment (name, kind, details, LSMs, uid, the number of effective
capabilities), and in ``misc`` the node id,
clauses, source location, expected and observed.  Test ids are
``sockspec:<environment>-<run start>:<node id>``, unique per run.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from reports.export.naming import ident, one_line, suite_of

ORIGIN = "sockspec"
VERSION = {"major": 5, "minor": 3}
STATUS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}
LOG_EXCERPT_MAX = 16384


def _path(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    module = path.rsplit("/", 1)[-1].removesuffix(".py")
    func, _, params = name.partition("[")
    parts = [ORIGIN, ident(suite_of(nodeid)), ident(module), ident(func)]
    if params:
        parts.append(ident(params.rstrip("]")))
    return ".".join(parts)


def _misc(t: dict) -> dict:
    misc = {"nodeid": t["nodeid"], "clauses": t.get("clauses", [])}
    for key in ("location", "deviation_clause", "expected", "observed"):
        if t.get(key) is not None:
            misc[key] = t[key] if isinstance(t[key], (str, int, float, bool, list, dict)) else str(t[key])
    return misc


def build(doc: dict, origin: str = ORIGIN) -> dict:
    """The KCIDB document; ``origin`` is the submitting CI system's KCIDB name."""
    if not re.fullmatch(r"[a-z0-9_]+", origin):
        raise ValueError(f"a KCIDB origin is lower-case letters, digits and '_': {origin!r}")
    env = doc.get("environment", {})
    release = env.get("kernel_release", "unknown")
    machine = env.get("machine", "")
    started = doc.get("run", {}).get("started", 0)
    start_time = datetime.fromtimestamp(started, timezone.utc).isoformat()
    run_id = f"{env.get('name', 'host')}-{datetime.fromtimestamp(started, timezone.utc):%Y%m%dT%H%M%SZ}"
    checkout_id = f"{origin}:linux-{release}"
    build_id = f"{origin}:{release}:{machine}"
    environment = {"comment": one_line(f"{env.get('name')} ({env.get('kind', 'host')}), uid {env.get('uid')}"),
                   "misc": {**{k: env[k] for k in ("name", "kind", "details", "lsms", "uid", "euid")
                               if env.get(k) is not None},
                            "capabilities": len(env.get("capabilities") or [])}}
    tests = []
    for t in doc.get("tests", []):
        entry = {"id": f"{origin}:{run_id}:{t['nodeid']}", "build_id": build_id, "origin": origin,
                 "path": _path(t["nodeid"]), "status": STATUS.get(t["outcome"], "MISS"),
                 "start_time": start_time, "duration": float(t.get("duration") or 0),
                 "environment": environment, "comment": t["nodeid"], "misc": _misc(t)}
        if t.get("message"):
            entry["log_excerpt"] = str(t["message"])[:LOG_EXCERPT_MAX].replace("\0", "")
        tests.append(entry)
    return {
        "version": dict(VERSION),
        "checkouts": [{"id": checkout_id, "origin": origin,
                       "comment": f"Linux {release} as found running in environment {env.get('name')}",
                       "misc": {"kernel_version": env.get("kernel_version")}}],
        "builds": [{"id": build_id, "checkout_id": checkout_id, "origin": origin,
                    "architecture": ident(machine).lower(), "config_name": release,
                    "comment": f"the running kernel {release} ({machine}); sockspec does not build it"}],
        "tests": tests,
    }


def render(doc: dict, origin: str = ORIGIN) -> str:
    return json.dumps(build(doc, origin), separators=(",", ":"), default=str) + "\n"
