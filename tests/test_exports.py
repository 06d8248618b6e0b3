"""The three exports of a real run validate against their formats, and each validator
rejects a broken document: JUnit XML against tests/schemas/junit.xsd (xmlschema), KTAP
against the KTAP v1 grammar (tests/ktap.py), KCIDB against the vendored KCIDB v5.3 JSON
schema (jsonschema, formats checked)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from reports import export
from tests import ktap
from tests.helpers import run_cli

SCHEMAS = Path(__file__).parent / "schemas"


@pytest.fixture(scope="module")
def doc(full_run):
    return json.loads(full_run.results.read_text())


def outcomes(doc) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in doc["tests"]:
        out[t["outcome"]] = out.get(t["outcome"], 0) + 1
    return out


# --------------------------------------------------------------------------- JUnit

@pytest.fixture(scope="module")
def junit_schema():
    return xmlschema.XMLSchema(SCHEMAS / "junit.xsd")


def test_junit_validates_and_counts(full_run, doc, junit_schema):
    text = (full_run.out / "results.junit.xml").read_text()
    junit_schema.validate(text)
    tree = junit_schema.to_dict(text)
    suites = tree["testsuite"]
    cases = [c for s in suites for c in s.get("testcase", [])]
    assert len(cases) == len(doc["tests"]) == tree["@tests"]
    assert sum(1 for c in cases if "failure" in c) == outcomes(doc).get("failed", 0) == tree["@failures"]
    assert sum(1 for c in cases if "skipped" in c) == outcomes(doc).get("skipped", 0)
    failed = next(c for c in cases if "failure" in c)
    assert "clauses: " in failed["failure"]["$"] and "location: suites/" in failed["failure"]["$"]


@pytest.mark.parametrize("break_it", [
    lambda x: x.replace(' failures="', ' failures="many', 1),
    lambda x: x.replace("<testcase name=", "<testcase nom=", 1),
    lambda x: x.replace("<failure ", '<failure message="again"/><failure ', 1),
    lambda x: x.replace("<testsuite ", "<suite ", 1).replace("</testsuite>", "</suite>", 1),
], ids=["count-not-a-number", "testcase-without-name", "two-failures", "unknown-element"])
def test_junit_schema_rejects_a_broken_document(full_run, junit_schema, break_it):
    text = (full_run.out / "results.junit.xml").read_text()
    broken = break_it(text)
    assert broken != text
    assert not junit_schema.is_valid(broken)


# --------------------------------------------------------------------------- KTAP

def test_ktap_validates_and_counts(full_run, doc):
    text = (full_run.out / "results.ktap").read_text()
    top = ktap.parse(text)
    pages = {p["suite"]: p["page"] for p in doc["pages"]}
    assert [t.description for t in top] == list(dict.fromkeys(
        pages[t["nodeid"].split("/")[1]] for t in doc["tests"]))
    leaves = [t for page in top for t in page.subtests]
    assert len(leaves) == len(doc["tests"])
    o = outcomes(doc)
    assert sum(1 for t in leaves if t.directive == "SKIP") == o.get("skipped", 0)
    assert sum(1 for t in leaves if not t.ok) == o.get("failed", 0) + o.get("error", 0)
    failed = next(t for t in leaves if not t.ok)
    assert any(d.startswith("clauses: ") for d in failed.diagnostics)
    assert any(d.startswith("location: suites/") for d in failed.diagnostics)


def _first(text: str, prefix: str) -> int:
    return next(i for i, line in enumerate(text.split("\n")) if line.startswith(prefix))


def _edit(text: str, prefix: str, fn) -> str:
    lines = text.split("\n")
    i = _first(text, prefix)
    lines[i] = fn(lines[i])
    return "\n".join(lines)


@pytest.mark.parametrize("break_it", [
    lambda x: x.replace("KTAP version 1\n", "", 1),                                  # no version line
    lambda x: x.replace("\n1..", "\n1..9", 1),                                        # plan too large
    lambda x: _edit(x, "  ok 1 ", lambda line: "  " + line),                           # 4-space indent
    lambda x: _edit(x, "  ok 2 ", lambda line: line.replace("ok 2", "ok 3")),          # numbering gap
    lambda x: _edit(x, "  ok 1 ", lambda line: line + "#x"),                           # '#' in description
    lambda x: _edit(x, "  ok 1 ", lambda line: line + " # ERROR boom"),                # ERROR on ok
    lambda x: _edit(x, "not ok ", lambda line: line[4:]),                              # parent ok, child failed
    lambda x: _edit(x, "  ok 1 ", lambda line: "  okay" + line[4:]),                   # not a result line
    lambda x: x + "trailing junk\n",                                                   # after the plan
], ids=["no-version", "plan", "indent", "numbering", "hash-in-description", "error-ok",
        "bubbling", "bad-result", "trailing"])
def test_ktap_validator_rejects_a_broken_document(full_run, break_it):
    text = (full_run.out / "results.ktap").read_text()
    broken = break_it(text)
    assert broken != text
    with pytest.raises(ktap.KtapError):
        ktap.parse(broken)


def test_ktap_validator_accepts_the_specification_example():
    example = "\n".join([
        "KTAP version 1", "1..1", "  KTAP version 1", "  1..3", "    KTAP version 1", "    1..1",
        "    # test_1: initializing test_1", "    ok 1 test_1", "  ok 1 example_test_1",
        "    KTAP version 1", "    1..2", "    ok 1 test_1 # SKIP test_1 skipped", "    ok 2 test_2",
        "  ok 2 example_test_2", "    KTAP version 1", "    1..3", "    ok 1 test_1",
        "    # test_2: FAIL", "    not ok 2 test_2", "    ok 3 test_3 # SKIP test_3 skipped",
        "  not ok 3 example_test_3", "not ok 1 main_test"]) + "\n"
    (main,) = ktap.parse(example)
    assert not main.ok and [t.ok for t in main.subtests] == [True, True, False]
    assert main.subtests[2].subtests[1].diagnostics == ["test_2: FAIL"]


# --------------------------------------------------------------------------- KCIDB

@pytest.fixture(scope="module")
def kcidb_validator():
    schema = json.loads((SCHEMAS / "kcidb-schema-v5.3.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_kcidb_validates_and_counts(full_run, doc, kcidb_validator):
    data = json.loads((full_run.out / "results.kcidb.json").read_text())
    errors = [e.message for e in kcidb_validator.iter_errors(data)]
    assert errors == []
    assert data["version"] == {"major": 5, "minor": 3}
    assert len(data["tests"]) == len(doc["tests"]) == len({t["id"] for t in data["tests"]})
    statuses = [t["status"] for t in data["tests"]]
    o = outcomes(doc)
    assert statuses.count("FAIL") == o.get("failed", 0) and statuses.count("SKIP") == o.get("skipped", 0)
    builds = {b["id"] for b in data["builds"]}
    assert {t["build_id"] for t in data["tests"]} <= builds
    assert {b["checkout_id"] for b in data["builds"]} <= {c["id"] for c in data["checkouts"]}


@pytest.mark.parametrize("break_it", [
    lambda d: d["tests"][0].update(status="BROKEN"),
    lambda d: d["tests"][0].update(path="sockspec..unix7"),
    lambda d: d["tests"][0].pop("origin"),
    lambda d: d["tests"][0].update(start_time="yesterday"),
    lambda d: d["builds"][0].update(id="no-origin-prefix"),
    lambda d: d.update(version={"major": 4, "minor": 3}),
    lambda d: d["tests"][0].update(verdict="pass"),
], ids=["status", "path", "origin", "date-time", "id", "version", "unknown-property"])
def test_kcidb_schema_rejects_a_broken_document(full_run, kcidb_validator, break_it):
    data = json.loads((full_run.out / "results.kcidb.json").read_text())
    break_it(data)
    assert list(kcidb_validator.iter_errors(data)) != []


# --------------------------------------------------------------------------- the CLI

def test_export_command_writes_the_same_as_the_run(full_run, tmp_path):
    for fmt, (_, name) in export.FORMATS.items():
        dst = tmp_path / name
        r = run_cli("export", "--format", fmt, full_run.results, "-o", dst)
        assert r.returncode == 0, r.stderr
        assert dst.read_text() == (full_run.out / name).read_text(), fmt
