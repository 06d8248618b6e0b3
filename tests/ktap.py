"""A strict reader of KTAP version 1 (the kernel's Documentation/dev-tools/ktap.rst),
used by the project's tests to validate ``reports/export/ktap.py``'s output.

Grammar it enforces (a subset of what the spec allows: no unknown lines)::

    document  := test-set EOF
    test-set  := I "KTAP version 1"            (I: two spaces per nesting level)
                 { I diagnostic }
                 I "1..N"                       (the plan; required here)
                 { I diagnostic | subtest I result }   with exactly N results
    subtest   := test-set at the next level (optional, directly before its result)
    result    := ("ok" | "not ok") " " number [" " description] [" # " [directive] [data]]
    diagnostic:= "#" text

Numbers count 1..N in order at each level; a description contains no '#'; a directive is
SKIP, TODO, XFAIL, TIMEOUT or ERROR, and TIMEOUT and ERROR need "not ok"; a test with
subtests fails ("not ok") when one of them failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INDENT = "  "
VERSION = "KTAP version 1"
PLAN = re.compile(r"^1\.\.(\d+)$")
RESULT = re.compile(r"^(ok|not ok) ([1-9]\d*)(?: ([^#]*?))?(?: # (.*))?$")
DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")


class KtapError(ValueError):
    def __init__(self, lineno: int, message: str):
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno


@dataclass
class Test:
    ok: bool
    number: int
    description: str
    directive: str | None
    data: str
    diagnostics: list[str] = field(default_factory=list)
    subtests: list["Test"] = field(default_factory=list)


def _result(line: str, lineno: int) -> Test:
    m = RESULT.match(line)
    if not m:
        raise KtapError(lineno, f"not a result line: {line!r}")
    ok, number, desc, rest = m.group(1) == "ok", int(m.group(2)), (m.group(3) or "").strip(), m.group(4)
    directive, data = None, ""
    if rest is not None:
        word, _, tail = rest.partition(" ")
        if word in DIRECTIVES:
            directive, data = word, tail.strip()
        else:
            data = rest.strip()
    if directive in ("TIMEOUT", "ERROR") and ok:
        raise KtapError(lineno, f"{directive} needs 'not ok'")
    return Test(ok, number, desc, directive, data)


def _test_set(lines: list[str], i: int, depth: int) -> tuple[list[Test], int]:
    ind = INDENT * depth
    if i >= len(lines) or lines[i] != ind + VERSION:
        raise KtapError(i + 1, f"expected {ind + VERSION!r}")
    i += 1
    while i < len(lines) and lines[i].startswith(ind + "#"):   # diagnostics before the plan
        i += 1
    m = PLAN.match(lines[i][len(ind):]) if i < len(lines) and lines[i].startswith(ind) else None
    if m is None or lines[i][len(ind):len(ind) + 1] == " ":
        raise KtapError(i + 1, "expected the plan line '1..N'")
    planned = int(m.group(1))
    i += 1
    tests: list[Test] = []
    pending: list[str] = []
    subtests: list[Test] | None = None
    while len(tests) < planned:
        if i >= len(lines):
            raise KtapError(i + 1, f"plan says {planned} tests, found {len(tests)}")
        line = lines[i]
        if line == ind + INDENT + VERSION:
            if subtests is not None:
                raise KtapError(i + 1, "two subtest blocks before one result")
            subtests, i = _test_set(lines, i, depth + 1)
            continue
        if not line.startswith(ind) or line[len(ind):len(ind) + 1] == " ":
            raise KtapError(i + 1, f"wrong indentation for level {depth}: {line!r}")
        body = line[len(ind):]
        if body.startswith("#"):
            if subtests is not None:
                raise KtapError(i + 1, "diagnostic between a subtest block and its result")
            pending.append(body[1:].strip())
            i += 1
            continue
        test = _result(body, i + 1)
        if test.number != len(tests) + 1:
            raise KtapError(i + 1, f"test number {test.number}, expected {len(tests) + 1}")
        test.diagnostics, pending = pending, []
        if subtests is not None:
            test.subtests = subtests
            failed = any(not s.ok and s.directive != "SKIP" for s in subtests)
            if failed and test.ok:
                raise KtapError(i + 1, "a test whose subtest failed must be 'not ok'")
            subtests = None
        tests.append(test)
        i += 1
    return tests, i


def parse(text: str) -> list[Test]:
    """The top-level tests of a KTAP v1 document; raises KtapError on any deviation."""
    if not text.endswith("\n"):
        raise KtapError(text.count("\n") + 1, "the last line is not terminated")
    lines = text[:-1].split("\n")
    for n, line in enumerate(lines, 1):
        if line != line.rstrip() or "\t" in line or "\r" in line:
            raise KtapError(n, "trailing whitespace, tab or carriage return")
    tests, i = _test_set(lines, 0, 0)
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    if i != len(lines):
        raise KtapError(i + 1, f"text after the last planned test: {lines[i]!r}")
    return tests


def walk(tests: list[Test]):
    """Every test, depth first (subtests before their parent)."""
    for t in tests:
        yield from walk(t.subtests)
        yield t
