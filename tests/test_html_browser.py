"""The HTML report in headless Chromium: it renders with no console message at all
(errors, CSP violations, failed loads), and shows what it must: summary counts, the
environment columns, the charts, a failed clause's quote with expected and observed, the
t6sendto mapping table; its filters work from the URL fragment; a matrix highlights
rows whose columns differ."""

from __future__ import annotations

import copy
import json
import re

import pytest

from reports import html
from tests import browser

ROW = re.compile(r'<tr class="([^"]*)" id="([^"]*)" data-page="([^"]*)" data-v="([^"]*)"')


def rows(dom: str) -> dict[str, dict]:
    return {m.group(2): {"classes": m.group(1).split(), "page": m.group(3), "v": m.group(4).split()}
            for m in ROW.finditer(dom)}


def shown(dom: str) -> set[str]:
    return {cid for cid, r in rows(dom).items() if "hidden" not in r["classes"]}


@pytest.fixture(scope="module")
def doc(full_run):
    return json.loads(full_run.results.read_text())


@pytest.fixture(scope="module")
def matrix_page(doc, tmp_path_factory):
    """The full run and a copy of it as a second environment where one failing clause
    passes and one passing clause fails."""
    other = copy.deepcopy(doc)
    other["environment"].update(name="vm-6.1", kind="vm", kernel_release="6.1.0-test",
                                details={"kernel": "6.1.0-test", "image": "debian-12"})
    failing = next(c for c in other["clauses"] if c["verdict"] == "fail")
    passing = next(c for c in other["clauses"] if c["verdict"] == "pass")
    failing["verdict"], passing["verdict"] = "pass", "fail"
    path = tmp_path_factory.mktemp("matrix") / "matrix.html"
    path.write_text(html.render_matrix([doc, other]))
    return path, failing["id"], passing["id"]


def test_the_run_report_renders_without_console_messages_and_shows_what_it_must(full_run, doc):
    loaded = browser.load(full_run.out / "index.html")
    assert loaded.console == []
    dom = loaded.dom
    assert re.search(r'data-ready="\d+"', dom), "the report's script did not finish"
    # summary counts, per environment
    counts = doc["summary"]["clauses"]
    summary = dom[dom.index('id="summary"'):dom.index('id="deviations"')]
    for verdict, n in counts.items():
        assert f'<td class="n-{verdict}">{n}</td>' in summary, verdict
    # the environment column and its details
    env = doc["environment"]
    assert f'<th id="env-0">{env["name"]}</th>' in dom and env["kernel_release"] in dom
    # charts: a verdict and a coverage chart for all pages and for each page
    assert dom.count('<svg class="chart"') == 2 * (len(doc["pages"]) + 1)
    # every clause has its row; a failed clause is unfolded with quote, expected, observed
    assert len(rows(dom)) == len(doc["clauses"]) and shown(dom) == set(rows(dom))
    test = next(t for t in doc["tests"] if t["outcome"] == "failed" and t.get("expected") is not None)
    cid = test.get("deviation_clause") or test["clauses"][0]
    clause = next(c for c in doc["clauses"] if c["id"] == cid)
    row = dom[dom.index(f'id="{cid}"'):]
    row = row[:row.index("</tr>\n")]
    assert html.esc(clause["quote"]) in row and "<details open" in row
    assert f"<td>{html.esc(html._value(test['expected']))}</td><td>{html.esc(html._value(test['observed']))}</td>" in row
    assert html.esc(test["location"]) in row
    # the t6sendto mapping: one row per clause with a Linux counterpart
    t6 = [c for c in doc["clauses"] if c["page"] == "t6sendto.3N" and c.get("linux")]
    assert t6, "the run did not include t6sendto's clauses"
    table = dom[dom.index('<table class="map">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == len(t6) + 1
    assert html.esc(t6[0]["linux"]) in table and html.esc(t6[0]["quote"]) in table


def test_filters_from_the_url_fragment(full_run, doc):
    failing = {c["id"] for c in doc["clauses"] if c["verdict"] == "fail"}
    assert shown(browser.load(full_run.out / "index.html", "v=fail").dom) == failing
    unix = {c["id"] for c in doc["clauses"] if c["page"] == "unix.7" and c["verdict"] in ("fail", "skip")}
    dom = browser.load(full_run.out / "index.html", "v=fail,skip&p=unix.7").dom
    assert shown(dom) == unix
    assert re.search(r'<section class="page hidden" data-page="ip.7"', dom)


def test_matrix_columns_differences_and_environment_filter(matrix_page):
    path, fixed, broken = matrix_page
    loaded = browser.load(path)
    assert loaded.console == []
    dom = loaded.dom
    assert '<th id="env-0">host</th>' in dom and '<th id="env-1">vm-6.1</th>' in dom
    differ = {cid for cid, r in rows(dom).items() if "diff" in r["classes"]}
    assert differ == {fixed, broken}
    assert '<b id="differ-count">2</b>' in dom
    # only rows that differ
    assert shown(browser.load(path, "d=1").dom) == {fixed, broken}
    # one environment: its column only, and its failures
    dom = browser.load(path, "e=vm-6.1&v=fail").dom
    assert re.search(r'<body[^>]* class="h-e0"', dom)
    assert broken in shown(dom) and fixed not in shown(dom)


def test_the_console_check_sees_errors_and_external_loads(tmp_path):
    """The check above can fail: a script error and an external resource are seen."""
    page = html.render({"environment": {"name": "host"}, "summary": {"clauses": {}, "tests": {}},
                        "pages": [], "clauses": [], "tests": []})
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("</body>", "<script>noSuchFunction();</script>"
                                   '<img src="https://example.invalid/x.png"></body>'))
    console = browser.load(broken).console
    assert any("noSuchFunction" in m for m in console), console
    assert any("Content Security Policy" in m for m in console), console
