"""The baseline gate on this machine's full run: reports/baselines/linux-6.toml records
every deviation (the README's CI command exits 0), every entry says why and where from,
and removing any one entry fails the gate naming that entry's clause."""

from __future__ import annotations

import json

import pytest

from harness import catalogue
from reports import baseline
from tests.conftest import BASELINE
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def doc(full_run):
    return json.loads(full_run.results.read_text())


def test_the_full_run_passes_the_gate(full_run):
    r = full_run.result
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert "gate passed" in r.stdout and " 0 new," in r.stdout
    page = (full_run.out / "index.html").read_text()      # the report shows the comparison
    assert '<section id="comparison"' in page and "Unchanged deviations" in page


def test_every_entry_has_a_reason_a_reference_and_a_catalogue_clause(doc):
    index = catalogue.clause_index()
    ran = {t["nodeid"] for t in doc["tests"]}
    known = baseline.load(BASELINE)
    assert known
    for k in known:
        assert len(k.reason) > 20 and k.reference.strip(), k.clause
        assert k.clause in index, f"{k.clause}: not a catalogue clause"
        assert set(k.tests) <= ran, f"{k.clause}: names tests this run does not have"


def test_removing_any_entry_fails_the_gate_naming_its_clause(doc):
    known = baseline.load(BASELINE)
    used = {r.clauses[0] for r in baseline.compare(doc, known).unchanged}
    checked = 0
    for i, k in enumerate(known):
        if k.clause not in used:
            continue  # not exercised here (another kernel, environment or privilege)
        cmp = baseline.compare(doc, known[:i] + known[i + 1:])
        assert k.clause in cmp.new_clauses(), f"removing the entry for {k.clause} went unnoticed"
        assert cmp.new_clauses() == [k.clause] or all(x.clause in cmp.new_clauses() for x in known
                                                      if x.clause == k.clause)
        checked += 1
    assert checked >= len(known) // 2, "most entries should be exercised by a root run on Linux 6.x"


def test_gate_command_fails_naming_the_clause_of_a_removed_entry(full_run, tmp_path):
    text = BASELINE.read_text()
    head, *entries = text.split("[[deviation]]")
    victim = next(e for e in entries if 'clause = "unix.7/errors/esocktnosupport"' in e)
    smaller = tmp_path / "smaller.toml"
    smaller.write_text("[[deviation]]".join([head, *[e for e in entries if e is not victim]]))
    r = run_cli("gate", full_run.results, "--baseline", smaller)
    assert r.returncode == 1, r.stdout
    assert "NEW       unix.7/errors/esocktnosupport" in r.stdout
    gate_line = r.stdout.rstrip().splitlines()[-1]
    assert gate_line.startswith("sockspec: gate: ") and "unix.7/errors/esocktnosupport" in gate_line
    r = run_cli("gate", full_run.results, "--baseline", BASELINE)
    assert r.returncode == 0, r.stdout


def test_merge_and_diff_commands(full_run, tmp_path):
    out = tmp_path / "matrix.html"
    r = run_cli("merge", full_run.results, full_run.results, "-o", out)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert page.count('<th id="env-') == 2 and "conformance matrix: 2 environments" in page
    r = run_cli("diff", full_run.results, full_run.results, "-o", tmp_path / "diff.html", "--gate")
    assert r.returncode == 0, r.stdout
    assert " 0 new, 0 fixed," in r.stdout
    assert "Unchanged deviations" in (tmp_path / "diff.html").read_text()
