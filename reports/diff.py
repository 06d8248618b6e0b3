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
    """Deviation by deviation (a clause a test fails): in the new run only is new, in both
    unchanged; in the old run only is fixed when the new run passed the test, unchecked
    when it did not run it."""
    cmp = Comparison(reference=f"the earlier run {_label(old)}", subject=_label(new))
    old_tests = {t["nodeid"]: t for t in old.get("tests", [])}
    new_tests = {t["nodeid"]: t for t in new.get("tests", [])}
    before_devs = {(cid, t["nodeid"]) for cid, t in runs.deviations(old)}
    after_devs = {(cid, t["nodeid"]) for cid, t in runs.deviations(new)}
    for cid, t in runs.deviations(new):
        before = old_tests.get(t["nodeid"])
        if (cid, t["nodeid"]) in before_devs:
            status, note = "unchanged", before.get("message", "")
        else:
            status = "new"
            note = f"was {before['outcome']}" if before else "was not run"
        cmp.rows.append(Row(status, (cid,), t["nodeid"], t.get("message", ""), note, t.get("location", "")))
    for cid, t in runs.deviations(old):
        if (cid, t["nodeid"]) in after_devs:
            continue
        after = new_tests.get(t["nodeid"])
        if after is not None and runs.failing(after):
            status, message = "fixed", f"fails another clause now: {after.get('message', '')}"
        elif after is not None and after.get("outcome") == "passed":
            status, message = "fixed", "passes now"
        else:
            status = "unchecked"
            message = f"{after['outcome']}: {after.get('message', '')}" if after else "not run"
        cmp.rows.append(Row(status, (cid,), t["nodeid"], message, t.get("message", ""), t.get("location", "")))
    return cmp


def render(old: dict, new: dict) -> str:
    """The two runs side by side, the comparison first."""
    return html.render_matrix([old, new], comparison=compare(old, new))
