"""The HTML conformance report: one self-contained file (inline CSS, script and SVG, no
external resource, readable from disk without a server) for one run or a matrix of runs.

    render(doc)                 one results.json
    render_matrix(docs)         several (one column per environment); the matrix runner
                                and ``./sockspec merge`` call it
    python -m reports.html reports/out/results.json reports/out/index.html

What it shows: the environments (kind, kernel, LSMs, uid, capabilities, the runner's
details); verdict counts per environment; the comparison with a baseline or an earlier
run when given; the clauses that deviate anywhere; then per page a verdict chart and a
coverage chart (inline SVG), for pages with Linux counterparts (t6sendto) the mapping
table, and one row per clause: its quote, its verdict in each environment (rows whose
columns disagree highlighted), and, unfolded, its tests with their source location and
outcome per environment, expected vs observed for each failure, and why it skipped.

Filters (plain script, no library): verdict, page, environment, "only rows that
differ".  The state lives in the URL fragment, e.g. ``index.html#v=fail&p=unix.7&e=host``,
so a filtered view can be linked to (and the project's tests drive it that way).  Once
the script has run, ``body[data-ready]`` holds the milliseconds since navigation start.
"""

from __future__ import annotations

import html
import sys
import time
from pathlib import Path

from reports import charts, runs
from reports.comparison import Comparison
from reports.matrix import Matrix

VERDICT_ORDER = ("fail", "pass", "skip", "untestable", "uncovered")
COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "skip": "#9a6700", "uncovered": "#6e7781",
           "untestable": "#8250df"}
COVERAGE_ORDER = ("checked", "skipped", "untestable", "uncovered")
COVERAGE_COLOURS = {"checked": "#0969da", "skipped": "#d4a72c", "untestable": "#8250df",
                    "uncovered": "#afb8c1"}
OUTCOME_TEXT = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip"}

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:90em;padding:0 1em;color:#1f2328}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #d0d7de}
h3{font-size:1.05em;margin:1.2em 0 .4em;color:#57606a}
table{border-collapse:collapse} td,th{padding:.25em .6em;text-align:left;vertical-align:top}
code,.mono{font-family:ui-monospace,monospace;font-size:.9em}
.envs td,.envs th{border:1px solid #d0d7de;font-size:.9em} .envs th{background:#f6f8fa}
.counts span{display:inline-block;margin-right:1.2em;font-weight:600}
.sum td{text-align:right} .sum td:first-child{text-align:left}
#filters{position:sticky;top:0;background:#fff;border-bottom:1px solid #d0d7de;padding:.4em 0;z-index:2;font-size:.9em}
#filters fieldset{display:inline-block;border:1px solid #d0d7de;margin:0 .4em .2em 0;padding:.1em .5em}
#filters legend{font-size:.85em;color:#57606a} #filters label{margin-right:.6em;white-space:nowrap}
.mx{width:100%;margin:.4em 0} .mx>tbody>tr>td,.mx>thead>tr>th{border-bottom:1px solid #eaeef2}
.mx th.e{min-width:5.5em;font-size:.85em} .mx tr.sec td{font-weight:600;color:#57606a;background:#f6f8fa}
.mx td.v{font-weight:700;font-size:.8em;text-transform:uppercase;white-space:nowrap}
.v-pass{color:#1a7f37} .v-fail{color:#cf222e;background:#ffebe9} .v-skip{color:#9a6700}
.v-uncovered{color:#6e7781} .v-untestable{color:#8250df} .v-none{color:#afb8c1}
tr.diff>td.q{background:#fff8c5} tr.diff>td.v.odd{outline:2px solid #bf8700;outline-offset:-2px}
.id{font-family:ui-monospace,monospace;font-size:.85em}
blockquote{margin:.2em 0;font-style:italic;color:#24292f}
.meta,.detail{font-size:.85em;color:#57606a}
details>summary{cursor:pointer;color:#0969da;font-size:.85em}
.tt,.dev,.cmp,.map{font-size:.85em;margin:.3em 0} .tt td,.dev td,.dev th,.cmp td,.cmp th,.map td,.map th{border:1px solid #eaeef2}
.dev td{white-space:pre-wrap;font-family:ui-monospace,monospace}
.loc,.tt td:nth-child(2){color:#57606a;font-family:ui-monospace,monospace}
.tt td:first-child{font-family:ui-monospace,monospace}
.o-failed,.o-error{color:#cf222e;font-weight:700} .o-passed{color:#1a7f37} .o-skipped{color:#9a6700}
svg.chart{display:block;margin:.3em 0} svg .ct{font-size:12px;font-weight:600;fill:#57606a}
svg .cl,svg .cn{font-size:11px;fill:#1f2328}
.charts{display:flex;flex-wrap:wrap;gap:0 2em}
.hidden{display:none}
"""

SCRIPT = """
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.clause"));
  var pages = Array.prototype.slice.call(document.querySelectorAll("section.page"));
  var ncols = parseInt(document.body.getAttribute("data-columns"), 10);
  function boxes(name) {
    return Array.prototype.slice.call(form.querySelectorAll("input[name='" + name + "']"));
  }
  function on(name) {
    var out = {};
    boxes(name).forEach(function (b) { if (b.checked) { out[b.value] = true; } });
    return out;
  }
  function apply() {
    var v = on("v"), p = on("p"), e = on("e");
    var onlyDiff = document.getElementById("only-diff").checked;
    var envOn = [], i;
    boxes("e").forEach(function (b, idx) { envOn[idx] = b.checked; });
    for (i = 0; i < ncols; i++) { document.body.classList.toggle("h-e" + i, !envOn[i]); }
    var shown = 0;
    rows.forEach(function (tr) {
      var vs = tr.getAttribute("data-v").split(" ");
      var seen = {}, distinct = 0, any = false;
      vs.forEach(function (x, idx) {
        if (!envOn[idx] || x === "-") { return; }
        if (v[x]) { any = true; }
        if (!seen[x]) { seen[x] = true; distinct++; }
      });
      var show = any && p[tr.getAttribute("data-page")] === true && (!onlyDiff || distinct > 1);
      tr.classList.toggle("hidden", !show);
      if (show) { shown++; }
    });
    document.querySelectorAll("tr.sec").forEach(function (sec) {
      var next = sec.nextElementSibling, visible = false;
      while (next && !next.classList.contains("sec")) {
        if (!next.classList.contains("hidden")) { visible = true; break; }
        next = next.nextElementSibling;
      }
      sec.classList.toggle("hidden", !visible);
    });
    pages.forEach(function (s) { s.classList.toggle("hidden", p[s.getAttribute("data-page")] !== true); });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " clauses shown";
    var parts = [];
    ["v", "p", "e"].forEach(function (name) {
      var all = boxes(name), sel = all.filter(function (b) { return b.checked; });
      if (sel.length !== all.length) {
        parts.push(name + "=" + sel.map(function (b) { return encodeURIComponent(b.value); }).join(","));
      }
    });
    if (onlyDiff) { parts.push("d=1"); }
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash && (hash || location.hash.indexOf("=") >= 0)) {
      history.replaceState(null, "", hash || location.pathname + location.search);
    }
  }
  function fromHash() {
    var h = location.hash.replace(/^#/, "");
    if (h.indexOf("=") < 0) { return; }
    var want = {};
    h.split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { want[kv.slice(0, i)] = kv.slice(i + 1).split(",").map(decodeURIComponent); }
    });
    ["v", "p", "e"].forEach(function (name) {
      boxes(name).forEach(function (b) { b.checked = !want[name] || want[name].indexOf(b.value) >= 0; });
    });
    document.getElementById("only-diff").checked = (want.d || [])[0] === "1";
  }
  form.addEventListener("change", apply);
  window.addEventListener("hashchange", function () { fromHash(); apply(); });
  fromHash();
  apply();
  document.body.setAttribute("data-ready", String(Math.round(performance.now())));
}());
"""


def esc(text) -> str:
    return html.escape("" if text is None else str(text))


def _value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    return str(value)


def _hide_css(n: int) -> str:
    return "".join(f".h-e{i} .e{i}{{display:none}}" for i in range(n))


def _environments(m: Matrix) -> str:
    cols = m.columns
    out = ['<section id="environments"><h2>Environments</h2><table class="envs"><tr><th></th>']
    out += [f'<th id="env-{i}">{esc(c.label)}</th>' for i, c in enumerate(cols)]
    out.append("</tr>")
    rows = [("kind", lambda c: c.env.get("kind", "host")),
            ("kernel", lambda c: c.env.get("kernel_release")),
            ("machine", lambda c: c.env.get("machine")),
            ("LSMs", lambda c: _value(c.env.get("lsms"))),
            ("uid / euid", lambda c: f"{c.env.get('uid')} / {c.env.get('euid', c.env.get('uid'))}"),
            ("capabilities", lambda c: f"{len(c.env.get('capabilities') or [])} effective"),
            ("started", lambda c: time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                time.gmtime(c.doc.get("run", {}).get("started", 0))))]
    keys = sorted({k for c in cols for k in (c.env.get("details") or {})})
    for key, get in rows:
        out.append(f"<tr><th>{esc(key)}</th>" + "".join(f'<td class="e{i}">{esc(get(c))}</td>'
                                                       for i, c in enumerate(cols)) + "</tr>")
    for key in keys:
        out.append(f"<tr><th>{esc(key)}</th>" + "".join(
            f'<td class="e{i}">{esc(_value((c.env.get("details") or {}).get(key)))}</td>'
            for i, c in enumerate(cols)) + "</tr>")
    out.append("<tr><th>capability set</th>" + "".join(
        f'<td class="e{i}"><details><summary>list</summary><span class="mono">'
        f'{esc(_value(c.env.get("capabilities")))}</span></details></td>' for i, c in enumerate(cols)) + "</tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _summary(m: Matrix) -> str:
    out = ['<section id="summary"><h2>Summary</h2><table class="sum"><tr><th>environment</th>']
    out += [f'<th style="color:{COLOURS[v]}">{v}</th>' for v in VERDICT_ORDER]
    out.append("<th>clauses</th><th>tests</th></tr>")
    for i, c in enumerate(m.columns):
        counts = m.counts(c)
        tests = c.doc.get("summary", {}).get("tests", {})
        out.append(f'<tr class="e{i}"><td>{esc(c.label)}</td>' + "".join(
            f'<td class="n-{v}">{counts.get(v, 0)}</td>' for v in VERDICT_ORDER)
            + f"<td>{sum(counts.values())}</td><td>"
            + esc(", ".join(f"{n} {k}" for k, n in sorted(tests.items()))) + "</td></tr>")
    out.append("</table>")
    out.append('<div class="charts">' + _verdict_chart(m, None, "All pages: verdicts")
               + _coverage_chart(m, None, "All pages: coverage") + "</div>")
    differ = sum(1 for c in m.clauses if m.differs(c["id"]))
    if len(m.columns) > 1:
        out.append(f'<p><b id="differ-count">{differ}</b> clauses have different verdicts in different '
                   "environments (highlighted below).</p>")
    out.append("</section>")
    return "\n".join(out)


def _verdict_chart(m: Matrix, page: str | None, title: str) -> str:
    return charts.stacked_bars(title, [(c.label, m.counts(c, page)) for c in m.columns],
                               VERDICT_ORDER, COLOURS)


def _coverage(counts: dict[str, int]) -> dict[str, int]:
    return {"checked": counts["pass"] + counts["fail"], "skipped": counts["skip"],
            "untestable": counts["untestable"], "uncovered": counts["uncovered"]}


def _coverage_note(c: dict[str, int]) -> str:
    total = sum(c.values()) or 1
    return (f"{100 * c['checked'] / total:.0f}% checked, "
            f"{100 * (total - c['uncovered']) / total:.0f}% with a test or a reason")


def _coverage_chart(m: Matrix, page: str | None, title: str) -> str:
    return charts.stacked_bars(title, [(c.label, _coverage(m.counts(c, page))) for c in m.columns],
                               COVERAGE_ORDER, COVERAGE_COLOURS, note=_coverage_note)


def _filters(m: Matrix) -> str:
    def box(name, value, label, title=""):
        t = f' title="{esc(title)}"' if title else ""
        return (f'<label{t}><input type="checkbox" name="{name}" value="{esc(value)}" checked> '
                f"{esc(label)}</label>")
    out = ['<form id="filters" onsubmit="return false"><fieldset><legend>verdict</legend>']
    out += [box("v", v, v) for v in VERDICT_ORDER]
    out.append("</fieldset><fieldset><legend>page</legend>")
    out += [box("p", p["page"], p["page"], p.get("title", "")) for p in m.pages]
    out.append("</fieldset><fieldset><legend>environment</legend>")
    out += [box("e", c.label, c.label, c.env.get("kernel_release", "")) for c in m.columns]
    out.append("</fieldset>")
    hidden = "" if len(m.columns) > 1 else ' class="hidden"'
    out.append(f'<label{hidden}><input type="checkbox" id="only-diff"> only rows that differ</label>')
    out.append('<span id="shown" class="meta"></span></form>')
    return "".join(out)


def _deviations(m: Matrix) -> str:
    failing = [c for c in m.clauses if "fail" in m.verdicts(c["id"])]
    if not failing:
        return '<section id="deviations"><h2>Deviations</h2><p>None: no clause failed.</p></section>'
    out = [f'<section id="deviations"><h2>Deviations ({len(failing)} clauses)</h2><ul>']
    for c in failing:
        where = [col.label for col, v in zip(m.columns, m.verdicts(c["id"])) if v == "fail"]
        quote = c["quote"] if len(c["quote"]) <= 140 else c["quote"][:139] + "…"
        out.append(f'<li><a href="#{esc(c["id"])}"><code>{esc(c["id"])}</code></a> '
                   f'<span class="meta">in {esc(", ".join(where))}</span>: &ldquo;{esc(quote)}&rdquo;</li>')
    out.append("</ul></section>")
    return "\n".join(out)


def _mapping(m: Matrix, page: dict, clauses: list[dict]) -> str:
    mapped = [c for c in clauses if c.get("linux")]
    if not mapped:
        return ""
    out = [f'<h3>{esc(page["page"])} on Linux: each behaviour the page describes and the Linux '
           f'mechanism its test exercises</h3><table class="map"><tr><th>clause</th>'
           f"<th>behaviour (the page)</th><th>Linux counterpart</th>"]
    out += [f'<th class="e{i}">{esc(col.label)}</th>' for i, col in enumerate(m.columns)]
    out.append("</tr>")
    for c in mapped:
        out.append(f'<tr><td><a href="#{esc(c["id"])}" class="id">{esc(c["id"])}</a></td>'
                   f'<td>&ldquo;{esc(c["quote"])}&rdquo;</td><td>{esc(c["linux"])}</td>'
                   + _verdict_cells(m, c["id"]) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _verdict_cells(m: Matrix, cid: str) -> str:
    usual = m.usual(cid)
    cells = []
    for i, (col, v) in enumerate(zip(m.columns, m.verdicts(cid))):
        if v is None:
            cells.append(f'<td class="v v-none e{i}" title="not run in {esc(col.label)}">—</td>')
            continue
        odd = " odd" if v != usual else ""
        message = col.clauses[cid].get("message")
        title = f' title="{esc(col.label)}: {esc(message)}"' if message else ""
        cells.append(f'<td class="v v-{v} e{i}{odd}"{title}>{v}</td>')
    return "".join(cells)


def _outcome_cell(i: int, cid: str, t: dict | None) -> str:
    if t is None:
        return f'<td class="e{i} v-none">—</td>'
    outcome = t.get("outcome", "")
    text = OUTCOME_TEXT.get(outcome, outcome)
    title = t.get("message", "")
    if outcome in ("failed", "error") and cid not in runs.deviating_clauses(t):
        text, title = "stopped", f"failed at a deviation from {t.get('deviation_clause')}: {title}"
    title = f' title="{esc(title)}"' if title else ""
    return f'<td class="e{i} o-{esc(outcome)}"{title}>{esc(text)}</td>'


def _clause_details(m: Matrix, c: dict) -> str:
    cid = c["id"]
    parts = []
    if c.get("linux"):
        parts.append(f'<div class="detail">Linux counterpart: {esc(c["linux"])}</div>')
    if c.get("note"):
        parts.append(f'<div class="detail">Note: {esc(c["note"])}</div>')
    nodeids = m.tests_of(cid)
    if nodeids:
        rows = ['<table class="tt"><tr><th>test</th><th>source</th>'
                + "".join(f'<th class="e{i}">{esc(col.label)}</th>' for i, col in enumerate(m.columns)) + "</tr>"]
        devs = []
        for nodeid in nodeids:
            loc = m.test(nodeid).get("location", "")
            rows.append(f'<tr><td>{esc(nodeid.split("::", 1)[-1])}</td><td>{esc(loc)}</td>' + "".join(
                            _outcome_cell(i, cid, col.tests.get(nodeid)) for i, col in enumerate(m.columns))
                        + "</tr>")
            for i, col in enumerate(m.columns):
                t = col.tests.get(nodeid)
                if t and runs.failing(t) and cid in runs.deviating_clauses(t):
                    devs.append(
                        f'<tr class="e{i}"><td class="mono">{esc(nodeid.split("::", 1)[-1])}</td>'
                        f'<td><a href="#env-{i}">{esc(col.label)}</a><br>'
                        f'<span class="meta">Linux {esc(col.env.get("kernel_release"))}, '
                        f'{esc(col.env.get("kind", "host"))}, uid {esc(col.env.get("uid"))}</span></td>'
                        f'<td>{esc(_value(t.get("expected")))}</td><td>{esc(_value(t.get("observed")))}</td>'
                        f'<td>{esc(t.get("message"))}</td></tr>')
        rows.append("</table>")
        parts.append("".join(rows))
        if devs:
            parts.append('<table class="dev"><tr><th>test</th><th>environment</th><th>expected (the page)</th>'
                         "<th>observed (this kernel)</th><th>message</th></tr>" + "".join(devs) + "</table>")
    why = [(i, col, col.clauses[cid]) for i, col in enumerate(m.columns)
           if cid in col.clauses and col.clauses[cid]["verdict"] not in ("pass", "fail")
           and col.clauses[cid].get("message")]
    for i, col, cc in why:
        parts.append(f'<div class="detail e{i}">{esc(col.label)}: {esc(cc["verdict"])}: {esc(cc["message"])}</div>')
    return "".join(parts)


def _clause_row(m: Matrix, c: dict) -> str:
    cid = c["id"]
    verdicts = m.verdicts(cid)
    meta = []
    if c.get("since"):
        meta.append(f"since Linux {esc(c['since'])}")
    if c.get("requires"):
        meta.append("requires " + ", ".join(esc(r) for r in c["requires"]))
    failing = "fail" in verdicts
    details = _clause_details(m, c)
    n = len(m.tests_of(cid))
    summary = f"{n} test{'s' if n != 1 else ''}" if n else "details"
    body = (f'<details{" open" if failing else ""}><summary>{summary}</summary>{details}</details>'
            if details else "")
    cls = "clause diff" if m.differs(cid) else "clause"
    data_v = " ".join(v or "-" for v in verdicts)
    return (f'<tr class="{cls}" id="{esc(cid)}" data-page="{esc(c["page"])}" data-v="{data_v}">'
            f'<td class="q"><span class="id">{esc(cid)}</span>'
            + (f' <span class="meta">{" · ".join(meta)}</span>' if meta else "")
            + f"<blockquote>&ldquo;{esc(c['quote'])}&rdquo;</blockquote>{body}</td>"
            + _verdict_cells(m, cid) + "</tr>")


def _page(m: Matrix, page: dict) -> str:
    clauses = m.page_clauses(page["page"])
    out = [f'<section class="page" data-page="{esc(page["page"])}" id="{esc(page["page"])}">',
           f'<h2>{esc(page.get("title", page["page"]))}</h2>',
           '<div class="charts">'
           + _verdict_chart(m, page["page"], f"{page['page']}: verdicts")
           + _coverage_chart(m, page["page"], f"{page['page']}: coverage") + "</div>",
           _mapping(m, page, clauses),
           '<table class="mx"><thead><tr><th>clause</th>'
           + "".join(f'<th class="e e{i}" title="{esc(col.env.get("kernel_release"))}">'
                     f'<a href="#env-{i}">{esc(col.label)}</a></th>' for i, col in enumerate(m.columns))
           + "</tr></thead><tbody>"]
    section = None
    for c in clauses:
        if c.get("section") != section:
            section = c.get("section")
            out.append(f'<tr class="sec"><td colspan="{len(m.columns) + 1}">{esc(section)}</td></tr>')
        out.append(_clause_row(m, c))
    out.append("</tbody></table></section>")
    return "\n".join(out)


def render_matrix(docs: list[dict], comparison: Comparison | None = None) -> str:
    """One report for several runs: rows are clauses, columns are environments."""
    if not docs:
        raise ValueError("render_matrix needs at least one results.json document")
    m = Matrix.of(docs)
    if len(m.columns) == 1:
        env = m.columns[0].env
        title = f"sockspec conformance report: {m.columns[0].label} (Linux {env.get('kernel_release')})"
    else:
        title = f"sockspec conformance matrix: {len(m.columns)} environments"
    out = ["<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="viewport" content="width=device-width">',
           '<link rel="icon" href="data:,">',
           f"<title>{esc(title)}</title>",
           f"<style>{CSS}{_hide_css(len(m.columns))}</style></head>",
           f'<body data-columns="{len(m.columns)}">',
           f"<h1>{esc(title)}</h1>",
           '<p class="meta">Clause by clause against the manual pages: a row per clause, a column per '
           "environment. A deviation is a finding: the page's expectation is never changed to match "
           "the kernel.</p>",
           _filters(m), _environments(m), _summary(m)]
    if comparison is not None:
        out.append(comparison.html())
    out.append(_deviations(m))
    out += [_page(m, p) for p in m.pages]
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(out)


def render(doc: dict, comparison: Comparison | None = None) -> str:
    """The report of one run."""
    return render_matrix([doc], comparison)


def main(argv: list[str]) -> int:
    src = Path(argv[0] if argv else "reports/out/results.json")
    dst = Path(argv[1] if len(argv) > 1 else src.with_name("index.html"))
    dst.write_text(render(runs.load(src)))
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
