"""results.json verdicts, the HTML report, the baseline gate."""

import copy

import pytest

from harness import results
from harness.catalogue import Clause
from reports import baseline, diff, html

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
    assert page.startswith("<!DOCTYPE html>") and "<script src" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "unix(7) &lt;sockets&gt;" in page                      # escaped
    assert "&ldquo;The length is &lt;110&gt;.&rdquo;" in page
    assert "<td>110</td><td>111</td>" in page                     # expected vs observed
    assert "since Linux 4.18" in page and "Nobody checks." in page
    assert page.count('<tr class="clause') == 3


def _baseline(tmp_path, text):
    path = tmp_path / "b.toml"
    path.write_text(text)
    return baseline.load(path)


def test_baseline_compare(tmp_path):
    known = _baseline(tmp_path, '[[deviation]]\nclause = "unix.7/a/bad"\nreason = "known"\nreference = "r"\n'
                      '[[deviation]]\nclause = "unix.7/a/ok"\nreason = "was broken"\nreference = "r"\n')
    cmp = baseline.compare(DOC, known)
    assert cmp.new == [] and len(cmp.unchanged) == 1
    assert [r.clauses for r in cmp.fixed] == [("unix.7/a/ok",)]
    cmp = baseline.compare(DOC, _baseline(tmp_path, '[[deviation]]\nclause = "unix.7/a/ok"\nreason = "x"\n'
                                                    'reference = "r"\n'))
    assert [x.test for x in cmp.new] == ["s.py::test_bad"] and cmp.new_clauses() == ["unix.7/a/bad"]
    assert "NEW" in cmp.text() and "unix.7/a/bad" in cmp.text()


def test_baseline_entries_need_reason_and_reference(tmp_path):
    with pytest.raises(ValueError, match="reference"):
        _baseline(tmp_path, '[[deviation]]\nclause = "a.7/x/one"\nreason = "r"\n')
    with pytest.raises(ValueError, match="reason"):
        _baseline(tmp_path, '[[deviation]]\nclause = "a.7/x/one"\nreference = "r"\n')


def test_baseline_match_limits_entries_to_kernels_and_environments(tmp_path):
    entry = '[[deviation]]\nclause = "unix.7/a/bad"\nreason = "r"\nreference = "r"\n'
    assert baseline.compare(DOC, _baseline(tmp_path, '[match]\nkernel = "6.*"\n' + entry)).new == []
    assert len(baseline.compare(DOC, _baseline(tmp_path, '[match]\nkernel = "5.*"\n' + entry)).new) == 1
    only_vm = entry + 'match = {kind = "vm"}\n'
    assert len(baseline.compare(DOC, _baseline(tmp_path, only_vm)).new) == 1
    host = entry + 'match = {environment = ["host*"], kind = "host"}\n'
    assert baseline.compare(DOC, _baseline(tmp_path, host)).new == []
    with pytest.raises(ValueError, match="match keys"):
        _baseline(tmp_path, '[match]\nkernels = "6.*"\n' + entry)


def test_baseline_entries_for_every_clause_of_a_failing_test_count_as_seen(tmp_path):
    doc = {"tests": [{"nodeid": "s.py::t", "outcome": "failed", "clauses": ["a.7/x/one", "a.7/x/two"]}]}
    known = _baseline(tmp_path, '[[deviation]]\nclause = "a.7/x/one"\nreason = "r"\nreference = "r"\n'
                      '[[deviation]]\nclause = "a.7/x/two"\nreason = "r"\nreference = "r"\n')
    cmp = baseline.compare(doc, known)
    assert cmp.new == [] and cmp.fixed == [] and [r.clauses for r in cmp.unchanged] == [("a.7/x/one",), ("a.7/x/two",)]
    cmp = baseline.compare(doc, known[:1])          # one entry is not enough for two clauses
    assert cmp.new_clauses() == ["a.7/x/two"]
    attributed = {"tests": [dict(doc["tests"][0], deviation_clause="a.7/x/two")]}
    assert baseline.compare(attributed, known[1:]).new == []   # the deviation names its clause


def test_baseline_entry_whose_tests_did_not_run_is_unchecked_not_fixed(tmp_path):
    doc = {"tests": [{"nodeid": "s.py::t", "outcome": "skipped", "message": "needs root",
                      "clauses": ["a.7/x/one"]}]}
    cmp = baseline.compare(doc, _baseline(tmp_path, '[[deviation]]\nclause = "a.7/x/one"\nreason = "r"\n'
                                                    'reference = "r"\n'))
    assert cmp.fixed == [] and [r.message for r in cmp.of("unchecked")] == ["needs root"]


def test_diff_of_two_runs():
    old = copy.deepcopy(DOC)
    new = copy.deepcopy(DOC)
    new["tests"][0].update(outcome="failed", message="broke")           # test_ok regresses
    new["tests"][1].update(outcome="passed", message="")                # test_bad is fixed
    new["environment"]["kernel_release"] = "6.19.0-test"
    cmp = diff.compare(old, new)
    assert [r.test for r in cmp.new] == ["s.py::test_ok"] and [r.test for r in cmp.fixed] == ["s.py::test_bad"]
    assert diff.compare(old, old).counts() == {"new": 0, "fixed": 0, "unchanged": 1, "unchecked": 0}
    page = diff.render(old, new)
    assert "Deviations that went away (fixes)" in page and "New deviations (regressions)" in page
    assert "host 6.18.0-test" in page and "host 6.19.0-test" in page   # two columns, told apart


def test_matrix_highlights_rows_that_differ():
    other = copy.deepcopy(DOC)
    other["environment"]["name"] = "vm-6.1"
    other["clauses"][1]["verdict"] = "pass"
    page = html.render_matrix([DOC, other])
    assert page.count('class="clause diff"') == 1
    assert '<th id="env-0">host</th>' in page and '<th id="env-1">vm-6.1</th>' in page


def test_column_labels_are_distinct():
    from reports import runs

    def e(name, kernel):
        return {"environment": {"name": name, "kernel_release": kernel}}
    assert runs.labels([e("host", "6.1"), e("host", "6.6"), e("vm", "6.1"), e("host", "6.1")]) == \
        ["host 6.1 #1", "host 6.6", "vm", "host 6.1 #2"]
