"""New, fixed and unchanged deviations: the one view of a run compared with a baseline
(:func:`reports.baseline.compare`) and of a run compared with an earlier run
(:func:`reports.diff.compare`), rendered as text (the CI log) and as an HTML section.

- ``new``:       deviates now, and the reference (baseline or old run) does not record it:
                 a regression, the only kind the CI gate fails on;
- ``fixed``:     the reference records it, and its tests ran and passed now;
- ``unchanged``: deviates now, as the reference records;
- ``unchecked``: the reference records it, but this run did not run its tests (skipped,
                 not selected, another environment): neither fixed nor new.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

STATUSES = ("new", "fixed", "unchanged", "unchecked")
HEADINGS = {
    "new": "New deviations (regressions)",
    "fixed": "Deviations that went away (fixes)",
    "unchanged": "Unchanged deviations",
    "unchecked": "Recorded deviations this run did not check",
}
COLOURS = {"new": "#cf222e", "fixed": "#1a7f37", "unchanged": "#6e7781", "unchecked": "#9a6700"}


@dataclass(frozen=True)
class Row:
    status: str             # one of STATUSES
    clauses: tuple[str, ...]
    test: str               # node id ("" for a baseline entry no test of this run matched)
    message: str            # what this run says (a failure message, "passes now", a skip reason)
    note: str = ""          # what the reference says: baseline reason and reference, old message
    location: str = ""      # the test's source location, path:line


@dataclass
class Comparison:
    reference: str          # what the run is compared with: a baseline file, the old run
    subject: str            # the run: its environment and kernel
    rows: list[Row] = field(default_factory=list)

    def of(self, status: str) -> list[Row]:
        return [r for r in self.rows if r.status == status]

    @property
    def new(self) -> list[Row]:
        return self.of("new")

    @property
    def fixed(self) -> list[Row]:
        return self.of("fixed")

    @property
    def unchanged(self) -> list[Row]:
        return self.of("unchanged")

    def counts(self) -> dict[str, int]:
        return {s: len(self.of(s)) for s in STATUSES}

    def new_clauses(self) -> list[str]:
        """The clauses with a new deviation, each once, in order."""
        return list(dict.fromkeys(c for r in self.new for c in r.clauses))

    def summary(self) -> str:
        c = self.counts()
        return (f"{self.subject} compared with {self.reference}: {c['new']} new, {c['fixed']} fixed, "
                f"{c['unchanged']} unchanged, {c['unchecked']} not checked")

    def text(self, verbose: bool = True) -> str:
        """The CI-log view: new and fixed with what the run and the reference say; the
        unchanged and unchecked ones one line each (left out unless verbose)."""
        lines = [self.summary()]
        for status in STATUSES:
            rows = self.of(status)
            if not rows or (not verbose and status in ("unchanged", "unchecked")):
                continue
            lines.append(f"{HEADINGS[status]} ({len(rows)}):")
            for r in rows:
                lines.append(f"  {status.upper():9} {', '.join(r.clauses)}  {r.test or '(no test ran)'}")
                if status == "unchecked":
                    lines.append(f"            {_one_line(r.message, 160)}")
                if status not in ("new", "fixed"):
                    continue
                if r.message:
                    lines.append(f"            now: {_one_line(r.message)}")
                if r.note:
                    lines.append(f"            was: {_one_line(r.note)}")
        return "\n".join(lines)

    def html(self) -> str:
        """An HTML section (no page around it): counts, then a table per status."""
        e = html.escape
        c = self.counts()
        out = ['<section id="comparison" class="comparison">',
               f"<h2>Compared with {e(self.reference)}</h2>",
               '<p class="counts">' + "".join(
                   f'<span style="color:{COLOURS[s]}">{c[s]} {e(s)}</span>' for s in STATUSES) + "</p>"]
        for status in STATUSES:
            rows = self.of(status)
            if not rows:
                continue
            out.append(f'<h3 style="color:{COLOURS[status]}">{e(HEADINGS[status])} ({len(rows)})</h3>')
            out.append(f'<table class="cmp cmp-{status}"><tr><th>clause</th><th>test</th>'
                       "<th>now</th><th>reference</th></tr>")
            for r in rows:
                clauses = "<br>".join(f'<a href="#{e(cid)}"><code>{e(cid)}</code></a>' for cid in r.clauses)
                test = e(r.test.split("::", 1)[-1]) if r.test else "(no test ran)"
                if r.location:
                    test += f'<br><small class="loc">{e(r.location)}</small>'
                out.append(f"<tr><td>{clauses}</td><td>{test}</td><td>{e(r.message)}</td>"
                           f"<td>{e(r.note)}</td></tr>")
            out.append("</table>")
        out.append("</section>")
        return "\n".join(out)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
