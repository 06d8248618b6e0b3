"""results.json documents as the reports read them: loading one (format checked), the
column label of each run in a matrix, and the tests that deviate from the page.

A *deviation* is a clause a failed (or errored) test fails: the one its deviation names
(``deviation_clause``), else each clause it declares; the same rule
``harness.results.clause_verdict`` uses to fail clauses.  Baselines and diffs compare
deviations, so every clause a test fails needs its own baseline entry.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness import results

FAILING = ("failed", "error")


def load(path: str | Path) -> dict:
    """One results.json; raises ValueError when it is not sockspec-results/1."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("format") != results.FORMAT:
        raise ValueError(f"{path}: not a {results.FORMAT} document")
    return doc


def failing(test: dict) -> bool:
    return test.get("outcome") in FAILING


def deviating_clauses(test: dict) -> list[str]:
    """The clauses a failing test fails."""
    if test.get("deviation_clause"):
        return [test["deviation_clause"]]
    return list(test.get("clauses", []))


def deviations(doc: dict) -> list[tuple[str, dict]]:
    """(clause id, test) for each clause each failing test fails, in test order."""
    return [(cid, t) for t in doc.get("tests", []) if failing(t) for cid in deviating_clauses(t)]


def labels(docs: list[dict]) -> list[str]:
    """One distinct column name per run: the environment's name, made unique with the
    kernel release (and then a number) when several runs share it."""
    names = [d.get("environment", {}).get("name") or "run" for d in docs]
    out = [f"{name} {doc.get('environment', {}).get('kernel_release', '')}".strip()
           if names.count(name) > 1 else name for name, doc in zip(names, docs)]
    repeated = {label for label in out if out.count(label) > 1}
    seen: dict[str, int] = {}
    for i, label in enumerate(out):
        if label in repeated:
            seen[label] = seen.get(label, 0) + 1
            out[i] = f"{label} #{seen[label]}"
    return out
