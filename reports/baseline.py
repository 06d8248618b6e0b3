"""Known deviations, recorded as data: which clause, which tests, why, and a reference.

A baseline file (TOML)::

    [[deviation]]
    clause = "unix.7/sockets-api/no-oob"                # the clause the kernel deviates from
    tests = ["suites/unix7/test_x.py::test_y[stream]"]  # optional: only these tests
    reason = "CONFIG_AF_UNIX_OOB (Linux 5.15) added MSG_OOB for stream sockets"
    reference = "kernel commit 314001f0bf92"

``compare`` splits a run's failing tests into those the baseline knows and new ones; the
CI gate fails only on new ones.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Known:
    clause: str
    tests: tuple[str, ...]
    reason: str
    reference: str

    def covers(self, test: dict) -> bool:
        if self.clause not in test.get("clauses", []):
            return False
        return not self.tests or test["nodeid"] in self.tests


def load(path: Path) -> list[Known]:
    data = tomllib.loads(Path(path).read_text())
    out = []
    for i, d in enumerate(data.get("deviation", [])):
        if not d.get("clause") or not d.get("reason"):
            raise ValueError(f"{path}: deviation #{i + 1} needs a clause and a reason")
        out.append(Known(d["clause"], tuple(d.get("tests", ())), d["reason"], d.get("reference", "")))
    return out


def compare(doc: dict, known: list[Known]) -> dict:
    """{'new': [test], 'known': [(test, Known)], 'fixed': [Known]}"""
    failing = [t for t in doc["tests"] if t["outcome"] in ("failed", "error")]
    new, matched = [], []
    used = set()
    for t in failing:
        hits = [k for k in known if k.covers(t)]
        if not hits:
            new.append(t)
        else:
            matched.append((t, hits[0]))
            used.update(hits)
    ran = {cid for t in doc["tests"] for cid in t.get("clauses", [])}
    fixed = [k for k in known if k not in used and k.clause in ran]
    return {"new": new, "known": matched, "fixed": fixed}
