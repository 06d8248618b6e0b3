"""KTAP version 1, the format kselftest and KUnit print (Documentation/dev-tools/ktap.rst).

One top-level test per page, each with the page's tests as subtests, indented by one
KTAP level (two spaces)::

    KTAP version 1
    # sockspec: environment host (host), Linux 6.18.44 x86_64
    1..2
      KTAP version 1
      # Subtest: unix.7
      1..3
      ok 1 test_autobind.test_autobind_by_addrlen[stream]
      # clauses: unix.7/errors/eprototype
      # location: suites/unix7/test_errors.py:120
      # expected: EPROTOTYPE
      # observed: ECONNREFUSED
      not ok 2 test_errors.test_eprototype_remote_type_mismatch[connect-stream-to-dgram-abstract]
      ok 3 test_peersec.test_so_peersec # SKIP lsm:selinux not active
    not ok 1 unix.7
    ...

A failed test's diagnostic lines come directly before its result line, as the format
recommends; a test the harness could not run is ``not ok ... # ERROR``.  A page fails
when any of its tests fails, and is skipped when all of them were.  Descriptions never
contain '#', and every line is one line.
"""

from __future__ import annotations

from reports.export.naming import one_line, page_of_suite, suite_of

INDENT = "  "   # one KTAP nesting level


def _desc(text: str) -> str:
    return one_line(text).replace("#", "%23")


def _test_lines(n: int, t: dict) -> list[str]:
    path, _, name = t["nodeid"].partition("::")
    desc = _desc(f"{path.rsplit('/', 1)[-1].removesuffix('.py')}.{name}" if name else path)
    outcome = t["outcome"]
    if outcome == "passed":
        return [f"ok {n} {desc}"]
    if outcome == "skipped":
        return [f"ok {n} {desc} # SKIP {one_line(t.get('message'), 500)}".rstrip()]
    lines = [f"# clauses: {', '.join(t.get('clauses', []))}", f"# location: {t.get('location', path)}"]
    if t.get("deviation_clause"):
        lines.append(f"# deviates from: {t['deviation_clause']}")
    if t.get("expected") is not None or t.get("observed") is not None:
        lines += [f"# expected: {one_line(t.get('expected'), 500)}", f"# observed: {one_line(t.get('observed'), 500)}"]
    lines.append(f"# {one_line(t.get('message'), 1000)}".rstrip())
    if outcome == "error":
        return lines + [f"not ok {n} {desc} # ERROR {one_line(t.get('message'), 300)}".rstrip()]
    return lines + [f"not ok {n} {desc}"]


def render(doc: dict) -> str:
    env = doc.get("environment", {})
    pages = page_of_suite(doc)
    by_page: dict[str, list[dict]] = {}
    for t in doc.get("tests", []):
        by_page.setdefault(pages.get(suite_of(t["nodeid"]), suite_of(t["nodeid"])), []).append(t)
    out = ["KTAP version 1",
           f"# sockspec: environment {one_line(env.get('name'))} ({one_line(env.get('kind', 'host'))}), "
           f"Linux {one_line(env.get('kernel_release'))} {one_line(env.get('machine'))}",
           f"1..{len(by_page)}"]
    for i, (page, tests) in enumerate(by_page.items(), 1):
        out += [INDENT + "KTAP version 1", INDENT + f"# Subtest: {_desc(page)}", INDENT + f"1..{len(tests)}"]
        for n, t in enumerate(tests, 1):
            out += [INDENT + line for line in _test_lines(n, t)]
        outcomes = {t["outcome"] for t in tests}
        if outcomes & {"failed", "error"}:
            out.append(f"not ok {i} {_desc(page)}")
        elif outcomes == {"skipped"}:
            out.append(f"ok {i} {_desc(page)} # SKIP all its tests skipped")
        else:
            out.append(f"ok {i} {_desc(page)}")
    return "\n".join(out) + "\n"
