"""Two runs compared (for example the same environment on two kernels): deviations new in
the second run (regressions), gone from it (fixes) and unchanged, as text and as HTML.

    ./sockspec diff old/results.json new/results.json [-o diff.html]

The HTML is the matrix report of the two runs with the comparison at the top; the text
is the same view as the baseline gate prints.
"""

from __future__ import annotations

from reports import html, runs
from reports.comparison import Comparison, Row


def _label(doc: dict) -> str:
    env = doc.get("environment", {})
    return f"{env.get('name', 'run')} (Linux {env.get('kernel_release', '?')})"


def compare(old: dict, new: dict) -> Comparison:
    """Test by test: failing in new only is new, in both unchanged, in old only fixed when
    the new run passed it and unchecked when the new run did not run it."""
    cmp = Comparison(reference=f"the earlier run {_label(old)}", subject=_label(new))
    old_tests = {t["nodeid"]: t for t in old.get("tests", [])}
    new_tests = {t["nodeid"]: t for t in new.get("tests", [])}
    for t in runs.deviations(new):
        before = old_tests.get(t["nodeid"])
        if before is not None and runs.failing(before):
            status, note = "unchanged", before.get("message", "")
        else:
            status = "new"
            note = f"was {before['outcome']}" if before else "was not run"
        cmp.rows.append(Row(status, tuple(runs.deviating_clauses(t)), t["nodeid"], t.get("message", ""),
                            note, t.get("location", "")))
    for t in runs.deviations(old):
        after = new_tests.get(t["nodeid"])
        if after is not None and runs.failing(after):
            continue
        passed = after is not None and after.get("outcome") == "passed"
        message = "passes now" if passed else (
            f"{after['outcome']}: {after.get('message', '')}" if after else "not run")
        cmp.rows.append(Row("fixed" if passed else "unchecked", tuple(runs.deviating_clauses(t)),
                            t["nodeid"], message, t.get("message", ""), t.get("location", "")))
    return cmp


def render(old: dict, new: dict) -> str:
    """The two runs side by side, the comparison first."""
    return html.render_matrix([old, new], comparison=compare(old, new))
