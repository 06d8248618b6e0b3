"""A full conformance run through the README's command leaves the host as it found it:
no named namespaces, links, temporary files, processes or host sysctl changes; and it
writes a report even though the kernel deviates from the pages (the baseline gate passes:
tests/test_gate.py)."""

import json

from tests.helpers import run_cli


def test_full_run_leaves_nothing_behind_and_writes_the_report(full_run):
    r = full_run.result
    assert r.returncode in (0, 1), r.stdout[-4000:] + r.stderr[-4000:]
    assert full_run.after == full_run.before
    assert list(full_run.tmp.iterdir()) == [], "the run left temporary files behind"
    out = full_run.out
    doc = json.loads((out / "results.json").read_text())
    assert doc["tests"] and doc["clauses"]
    assert {c["verdict"] for c in doc["clauses"]} <= {"pass", "fail", "skip", "uncovered", "untestable"}
    assert (out / "index.html").read_text().startswith("<!DOCTYPE html>")
    for name in ("results.junit.xml", "results.ktap", "results.kcidb.json"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob("*.collected.*"))


def test_the_run_is_reported_broken_when_pytest_breaks(tmp_path):
    r = run_cli("run", "--out", tmp_path, "--", "--no-such-pytest-option")
    assert r.returncode == 2
