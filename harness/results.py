"""results.json: what one run found, clause by clause and test by test.

Shape (``format`` = "sockspec-results/1")::

    environment: {name, kernel_release, kernel_version, machine, lsms, capabilities, uid, ...}
    summary:     {clauses: {pass, fail, skip, uncovered, untestable}, tests: {passed, ...}}
    pages:       [{page, title, suite, clauses: N}]
    clauses:     [{id, page, section, quote, since, requires, verdict, message, tests, linux}]
    tests:       [{nodeid, location, clauses, outcome, message, expected, observed, values, duration}]

A test's ``location`` is where its definition starts (its first decorator), ``path:line``
relative to the checkout (pytest's item location).

A clause's verdict comes from its tests: ``fail`` if any failed, else ``pass`` if any
passed, else ``skip`` (with the skip reasons).  A failed test whose deviation names one
clause (``deviation_clause``) fails that clause only; for its other clauses it decides
nothing, since the test stopped before checking them.  With no test at all a clause is
``untestable`` when the catalogue says why, otherwise ``uncovered``.  A run narrowed to
some clauses (``--sockspec-clause``) lists only those, and any other its tests named.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness import catalogue, kernel

FORMAT = "sockspec-results/1"
VERDICTS = ("pass", "fail", "skip", "uncovered", "untestable")


def _page_selected(page: catalogue.Page, roots: list[Path]) -> bool:
    """The run was pointed at this page's suite (or at suites/ as a whole)."""
    suite_dir = (catalogue.SUITES / page.suite).resolve()
    for root in roots:
        if root == suite_dir or root in suite_dir.parents or suite_dir in root.parents:
            return True
    return False


def clause_verdict(clause: catalogue.Clause, tests: list[dict], named_anywhere: bool) -> tuple[str, str]:
    if not tests:
        if named_anywhere:
            return "skip", "its tests were not selected in this run"
        if clause.untestable:
            return "untestable", clause.untestable
        return "uncovered", "no test checks this clause yet"
    tests = [t for t in tests if not (t["outcome"] == "failed" and t.get("deviation_clause")
                                      and t["deviation_clause"] != clause.id)]
    if not tests:
        return "skip", "its only tests stopped at a deviation from another clause"
    failed = [t for t in tests if t["outcome"] in ("failed", "error")]
    if failed:
        return "fail", "; ".join(f"{t['nodeid'].split('::')[-1]}: {t['message']}" for t in failed)
    if any(t["outcome"] == "passed" for t in tests):
        return "pass", ""
    reasons = sorted({t["message"] for t in tests})
    return "skip", "; ".join(reasons)


def build(*, tests: list[dict], collected: dict[str, list[str]], roots: list[Path],
          selection: list[str], started: float, exitstatus: int, options: dict) -> dict:
    pages = catalogue.load_all()
    named = {cid for ids in collected.values() for cid in ids}
    by_clause: dict[str, list[dict]] = {}
    for t in tests:
        for cid in t.get("clauses", []):
            by_clause.setdefault(cid, []).append(t)
    clauses = []
    page_rows = []
    for page in pages.values():
        if not _page_selected(page, roots) and not any(c.id in named for c in page.clauses):
            continue
        for c in page.clauses:
            ctests = by_clause.get(c.id, [])
            if selection and not ctests and not catalogue.selected(c.id, selection):
                continue        # not asked for: no cell (a matrix column shows it as not run)
            verdict, message = clause_verdict(c, ctests, c.id in named)
            clauses.append({
                "id": c.id, "page": c.page, "section": c.section, "quote": c.quote,
                "since": c.since, "requires": list(c.requires), "linux": c.linux,
                "note": c.note, "verdict": verdict, "message": message,
                "tests": [t["nodeid"] for t in ctests],
            })
        if any(c["page"] == page.name for c in clauses):
            page_rows.append({"page": page.name, "title": page.title, "suite": page.suite,
                              "clauses": len(page.clauses)})
    summary_clauses = {v: sum(1 for c in clauses if c["verdict"] == v) for v in VERDICTS}
    outcomes: dict[str, int] = {}
    for t in tests:
        outcomes[t["outcome"]] = outcomes.get(t["outcome"], 0) + 1
    return {
        "format": FORMAT,
        "environment": kernel.describe(),
        "run": {"started": started, "finished": time.time(), "pytest_exitstatus": exitstatus,
                "selection": selection, **options},
        "summary": {"clauses": summary_clauses, "tests": outcomes},
        "pages": page_rows,
        "clauses": clauses,
        "tests": sorted(tests, key=lambda t: t["nodeid"]),
    }
