"""Several runs as one table: rows are clauses, columns are environments (one
results.json each), each cell the clause's verdict there.

Pages and clauses are the union of the runs', in the order of the first run that has
them.  A row *differs* when the columns that judged the clause gave it different
verdicts; a column that did not run the clause's page has no cell (``None``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from harness.results import VERDICTS
from reports import runs


@dataclass
class Column:
    label: str
    doc: dict
    clauses: dict[str, dict] = field(default_factory=dict)
    tests: dict[str, dict] = field(default_factory=dict)

    @property
    def env(self) -> dict:
        return self.doc.get("environment", {})


@dataclass
class Matrix:
    columns: list[Column]
    pages: list[dict]
    clauses: list[dict]

    @classmethod
    def of(cls, docs: list[dict]) -> "Matrix":
        columns = [Column(label, doc, {c["id"]: c for c in doc.get("clauses", [])},
                          {t["nodeid"]: t for t in doc.get("tests", [])})
                   for label, doc in zip(runs.labels(docs), docs)]
        pages: dict[str, dict] = {}
        clauses: dict[str, dict] = {}
        for doc in docs:
            for p in doc.get("pages", []):
                pages.setdefault(p["page"], p)
            for c in doc.get("clauses", []):
                clauses.setdefault(c["id"], c)
        return cls(columns, list(pages.values()), list(clauses.values()))

    def page_clauses(self, page: str) -> list[dict]:
        return [c for c in self.clauses if c["page"] == page]

    def verdicts(self, cid: str) -> list[str | None]:
        return [col.clauses[cid]["verdict"] if cid in col.clauses else None for col in self.columns]

    def differs(self, cid: str) -> bool:
        return len({v for v in self.verdicts(cid) if v}) > 1

    def usual(self, cid: str) -> str | None:
        """The verdict most columns gave (the first column's on a tie)."""
        vs = [v for v in self.verdicts(cid) if v]
        if not vs:
            return None
        counts = Counter(vs)
        best = max(counts.values())
        return next(v for v in vs if counts[v] == best)

    def counts(self, col: Column, page: str | None = None) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for c in col.clauses.values():
            if page is None or c["page"] == page:
                out[c["verdict"]] = out.get(c["verdict"], 0) + 1
        return out

    def tests_of(self, cid: str) -> list[str]:
        """Node ids of every test any column ran for the clause, each once."""
        seen: dict[str, None] = {}
        for col in self.columns:
            for nodeid in col.clauses.get(cid, {}).get("tests", []):
                seen.setdefault(nodeid)
        return list(seen)

    def test(self, nodeid: str) -> dict:
        """The test's entry from the first column that ran it (for its location)."""
        for col in self.columns:
            if nodeid in col.tests:
                return col.tests[nodeid]
        return {"nodeid": nodeid}
