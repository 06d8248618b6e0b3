"""Render results.json as one self-contained HTML conformance report.

    python -m reports.html reports/out/results.json reports/out/index.html

Summary counts; then per page and section, each clause with its quote, its verdict, the
tests that checked it, and for a failure what the page expected and what was observed.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

VERDICT_ORDER = ("fail", "pass", "skip", "untestable", "uncovered")
COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "skip": "#9a6700", "uncovered": "#6e7781",
           "untestable": "#8250df"}

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#1f2328}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #d0d7de}
h3{font-size:1.05em;margin:1.4em 0 .4em;color:#57606a}
table{border-collapse:collapse} td,th{padding:.25em .6em;text-align:left;vertical-align:top}
.env td:first-child{color:#57606a}
.counts span{display:inline-block;margin-right:1.2em;font-weight:600}
.clause{border-left:4px solid #d0d7de;padding:.35em .8em;margin:.4em 0;background:#f6f8fa}
.clause .id{font-family:ui-monospace,monospace;font-size:.9em}
.verdict{display:inline-block;min-width:6.5em;font-weight:700;text-transform:uppercase;font-size:.8em}
blockquote{margin:.3em 0 .3em 0;font-style:italic;color:#24292f}
.detail{font-size:.9em;color:#57606a} .detail code{white-space:pre-wrap}
.dev td{font-family:ui-monospace,monospace;font-size:.85em;white-space:pre-wrap}
.dev th{font-size:.8em;color:#57606a}
.pages td{text-align:right} .pages td:first-child{text-align:left}
.tests{font-family:ui-monospace,monospace;font-size:.8em;color:#57606a}
"""


def esc(text) -> str:
    return html.escape("" if text is None else str(text))


def _verdict_badge(v: str) -> str:
    return f'<span class="verdict" style="color:{COLOURS.get(v, "#000")}">{esc(v)}</span>'


def _clause_block(c: dict, tests: dict[str, dict]) -> str:
    colour = COLOURS.get(c["verdict"], "#d0d7de")
    meta = []
    if c.get("since"):
        meta.append(f"since Linux {esc(c['since'])}")
    if c.get("requires"):
        meta.append("requires " + ", ".join(esc(r) for r in c["requires"]))
    parts = [f'<div class="clause" id="{esc(c["id"])}" style="border-color:{colour}">',
             f'{_verdict_badge(c["verdict"])} <span class="id">{esc(c["id"])}</span>',
             f'<blockquote>&ldquo;{esc(c["quote"])}&rdquo;</blockquote>']
    if meta:
        parts.append(f'<div class="detail">{" · ".join(meta)}</div>')
    if c.get("linux"):
        parts.append(f'<div class="detail">Linux counterpart: {esc(c["linux"])}</div>')
    if c.get("note"):
        parts.append(f'<div class="detail">Note: {esc(c["note"])}</div>')
    if c["verdict"] == "fail":
        rows = []
        for nodeid in c["tests"]:
            t = tests.get(nodeid, {})
            if t.get("outcome") not in ("failed", "error"):
                continue
            rows.append(
                f'<tr><td>{esc(nodeid.split("::", 1)[-1])}</td>'
                f'<td>{esc(t.get("expected") if t.get("expected") is not None else "")}</td>'
                f'<td>{esc(t.get("observed") if t.get("observed") is not None else "")}</td>'
                f'<td>{esc(t.get("message"))}</td></tr>')
        parts.append('<table class="dev"><tr><th>test</th><th>expected (the page)</th>'
                     '<th>observed (this kernel)</th><th>message</th></tr>' + "".join(rows) + "</table>")
    elif c.get("message"):
        parts.append(f'<div class="detail">{esc(c["message"])}</div>')
    if c["tests"] and c["verdict"] != "fail":
        parts.append('<div class="tests">' + "<br>".join(esc(n) for n in c["tests"]) + "</div>")
    parts.append("</div>")
    return "\n".join(parts)


def render(doc: dict) -> str:
    env = doc["environment"]
    tests = {t["nodeid"]: t for t in doc["tests"]}
    counts = doc["summary"]["clauses"]
    out = ["<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
           f"<title>sockspec conformance report: {esc(env.get('kernel_release'))}</title>",
           f"<style>{CSS}</style></head><body>",
           "<h1>sockspec conformance report</h1>",
           f"<p>Kernel <b>{esc(env.get('kernel_release'))}</b> ({esc(env.get('machine'))}), "
           f"environment <b>{esc(env.get('name'))}</b>.</p>",
           '<table class="env">']
    for key in ("kernel_release", "kernel_version", "machine", "lsms", "uid", "euid", "capabilities"):
        value = env.get(key)
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "(none)"
        out.append(f"<tr><td>{esc(key)}</td><td>{esc(value)}</td></tr>")
    out.append("</table>")
    total = sum(counts.values())
    out.append(f'<h2>Summary</h2><p class="counts">{total} clauses: ' + "".join(
        f'<span style="color:{COLOURS[v]}">{counts.get(v, 0)} {v}</span>' for v in VERDICT_ORDER) + "</p>")
    tcounts = doc["summary"].get("tests", {})
    out.append("<p>" + ", ".join(f"{n} tests {k}" for k, n in sorted(tcounts.items())) + "</p>")
    out.append('<table class="pages"><tr><th>page</th>' + "".join(
        f'<th style="color:{COLOURS[v]}">{v}</th>' for v in VERDICT_ORDER) + "</tr>")
    for page in doc["pages"]:
        pcs = [c for c in doc["clauses"] if c["page"] == page["page"]]
        out.append(f'<tr><td><a href="#{esc(page["page"])}">{esc(page["title"])}</a></td>' + "".join(
            f"<td>{sum(1 for c in pcs if c['verdict'] == v)}</td>" for v in VERDICT_ORDER) + "</tr>")
    out.append("</table>")
    failing = [c for c in doc["clauses"] if c["verdict"] == "fail"]
    if failing:
        out.append(f"<h2>Deviations ({len(failing)} clauses)</h2><ul>")
        for c in failing:
            out.append(f'<li><a href="#{esc(c["id"])}"><code>{esc(c["id"])}</code></a>: '
                       f'&ldquo;{esc(c["quote"][:140])}{"…" if len(c["quote"]) > 140 else ""}&rdquo;</li>')
        out.append("</ul>")
    for page in doc["pages"]:
        pclauses = [c for c in doc["clauses"] if c["page"] == page["page"]]
        pc = {v: sum(1 for c in pclauses if c["verdict"] == v) for v in VERDICT_ORDER}
        out.append(f'<h2 id="{esc(page["page"])}">{esc(page["title"])}</h2>')
        out.append('<p class="counts">' + "".join(
            f'<span style="color:{COLOURS[v]}">{pc[v]} {v}</span>' for v in VERDICT_ORDER) + "</p>")
        section = None
        for c in pclauses:
            if c["section"] != section:
                section = c["section"]
                out.append(f"<h3>{esc(section)}</h3>")
            out.append(_clause_block(c, tests))
    out.append("</body></html>")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    src = Path(argv[0] if argv else "reports/out/results.json")
    dst = Path(argv[1] if len(argv) > 1 else src.with_name("index.html"))
    dst.write_text(render(json.loads(src.read_text())))
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
