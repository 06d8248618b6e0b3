"""A full conformance run through the README's command leaves the host as it found it:
no named namespaces, links, temporary files, processes or host sysctl changes; and it
exits 0 with a report even though the kernel deviates from the pages."""

import json

from tests.helpers import host_state, run_cli


def test_full_run_leaves_nothing_behind_and_writes_the_report(tmp_path):
    before = host_state()
    out = tmp_path / "out"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = run_cli("run", "--out", out, "-n", "2", tmpdir=tmp)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    after = host_state()
    assert after == before
    assert list(tmp.iterdir()) == [], "the run left temporary files behind"
    doc = json.loads((out / "results.json").read_text())
    assert doc["tests"] and doc["clauses"]
    assert {c["verdict"] for c in doc["clauses"]} <= {"pass", "fail", "skip", "uncovered", "untestable"}
    assert (out / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert not list(out.glob("*.collected.*"))


def test_the_run_is_reported_broken_when_pytest_breaks(tmp_path):
    r = run_cli("run", "--out", tmp_path, "--", "--no-such-pytest-option")
    assert r.returncode == 2
