"""results.json verdicts, the HTML report, the baseline gate."""

from harness import results
from harness.catalogue import Clause
from reports import baseline, html

C = Clause(id="unix.7/x/y", page="unix.7", section="S", quote="q")


def t(outcome, msg=""):
    return {"nodeid": f"suites/x.py::test_{outcome}", "outcome": outcome, "message": msg, "clauses": [C.id]}


def test_a_deviation_naming_one_clause_fails_only_that_clause():
    other = Clause(id="unix.7/x/z", page="unix.7", section="S", quote="q")
    failed = dict(t("failed", "boom"), deviation_clause=C.id)
    assert results.clause_verdict(C, [failed], True)[0] == "fail"
    assert results.clause_verdict(other, [failed, t("passed")], True)[0] == "pass"
    assert results.clause_verdict(other, [failed], True)[0] == "skip"


def test_clause_verdicts():
    assert results.clause_verdict(C, [t("passed"), t("failed", "boom")], True)[0] == "fail"
    assert results.clause_verdict(C, [t("passed"), t("skipped")], True)[0] == "pass"
    assert results.clause_verdict(C, [t("skipped", "no LSM")], True) == ("skip", "no LSM")
    assert results.clause_verdict(C, [], False)[0] == "uncovered"
    assert results.clause_verdict(Clause("a.7/b/c", "a.7", "S", "q", untestable="why"), [], False) == ("untestable", "why")
    assert results.clause_verdict(C, [], True)[0] == "skip"


DOC = {
    "environment": {"name": "host", "kernel_release": "6.18.0-test", "machine": "x86_64",
                    "lsms": ["capability"], "capabilities": [], "uid": 0, "euid": 0},
    "summary": {"clauses": {"pass": 1, "fail": 1, "skip": 0, "uncovered": 1, "untestable": 0},
                "tests": {"passed": 1, "failed": 1}},
    "pages": [{"page": "unix.7", "title": "unix(7) <sockets>", "suite": "unix7", "clauses": 3}],
    "clauses": [
        {"id": "unix.7/a/ok", "page": "unix.7", "section": "S1", "quote": "It works.", "verdict": "pass",
         "message": "", "tests": ["s.py::test_ok"], "since": "4.18", "requires": []},
        {"id": "unix.7/a/bad", "page": "unix.7", "section": "S1", "quote": "The length is <110>.",
         "verdict": "fail", "message": "m", "tests": ["s.py::test_bad"], "requires": ["root"]},
        {"id": "unix.7/b/none", "page": "unix.7", "section": "S2", "quote": "Nobody checks.",
         "verdict": "uncovered", "message": "no test checks this clause yet", "tests": []},
    ],
    "tests": [
        {"nodeid": "s.py::test_ok", "outcome": "passed", "clauses": ["unix.7/a/ok"], "message": ""},
        {"nodeid": "s.py::test_bad", "outcome": "failed", "clauses": ["unix.7/a/bad"],
         "message": "addrlen: expected 110, observed 111", "expected": 110, "observed": 111},
    ],
}


def test_html_is_self_contained_and_shows_everything():
    page = html.render(DOC)
    assert page.startswith("<!DOCTYPE html>") and "<script src" not in page and "<link" not in page
    assert "unix(7) &lt;sockets&gt;" in page                      # escaped
    assert "&ldquo;The length is &lt;110&gt;.&rdquo;" in page
    assert "<td>110</td><td>111</td>" in page                     # expected vs observed
    assert "since Linux 4.18" in page and "Nobody checks." in page
    assert page.count('class="clause"') == 3


def test_baseline_compare(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[[deviation]]\nclause = "unix.7/a/bad"\nreason = "known"\n'
                    '[[deviation]]\nclause = "unix.7/a/ok"\nreason = "was broken"\n')
    cmp = baseline.compare(DOC, baseline.load(path))
    assert cmp["new"] == [] and len(cmp["known"]) == 1
    assert [k.clause for k in cmp["fixed"]] == ["unix.7/a/ok"]
    path.write_text('[[deviation]]\nclause = "unix.7/a/ok"\nreason = "x"\n')
    cmp = baseline.compare(DOC, baseline.load(path))
    assert [x["nodeid"] for x in cmp["new"]] == ["s.py::test_bad"]


def test_baseline_entries_for_every_clause_of_a_failing_test_count_as_seen(tmp_path):
    doc = {"tests": [{"nodeid": "s.py::t", "outcome": "failed", "clauses": ["a.7/x/one", "a.7/x/two"]}]}
    path = tmp_path / "b.toml"
    path.write_text('[[deviation]]\nclause = "a.7/x/one"\nreason = "r"\n'
                    '[[deviation]]\nclause = "a.7/x/two"\nreason = "r"\n')
    cmp = baseline.compare(doc, baseline.load(path))
    assert cmp["new"] == [] and cmp["fixed"] == []
