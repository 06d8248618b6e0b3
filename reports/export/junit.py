"""JUnit XML, as Jenkins, GitLab and most CI test views read it (the Jenkins/Ant schema:
``testsuites > testsuite > testcase`` with ``failure``, ``error``, ``skipped``).

One ``testsuite`` per page, named ``<page> [<environment>]``, with the environment as
properties; one ``testcase`` per test, class name ``sockspec.<environment>.<suite>.<module>``
so that the files of a CI matrix merge without collisions.  A failed test is a
``failure`` whose message is the deviation and whose text gives the clauses, the source
location, expected and observed; a test the harness could not run is an ``error``.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

from reports.export.naming import ident, page_of_suite, suite_of

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value) -> str:
    """Text XML 1.0 can carry."""
    return _XML_BAD.sub("?", "" if value is None else str(value))


def _time(seconds) -> str:
    return f"{float(seconds or 0):.3f}"


def render(doc: dict) -> str:
    env = doc.get("environment", {})
    env_name = env.get("name", "host")
    pages = page_of_suite(doc)
    started = doc.get("run", {}).get("started", 0)
    by_page: dict[str, list[dict]] = {}
    for t in doc.get("tests", []):
        by_page.setdefault(pages.get(suite_of(t["nodeid"]), suite_of(t["nodeid"])), []).append(t)
    root = ET.Element("testsuites", name=_text(f"sockspec {env_name} (Linux {env.get('kernel_release')})"))
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for page, tests in by_page.items():
        failures = sum(1 for t in tests if t["outcome"] == "failed")
        errors = sum(1 for t in tests if t["outcome"] == "error")
        skipped = sum(1 for t in tests if t["outcome"] == "skipped")
        duration = sum(float(t.get("duration") or 0) for t in tests)
        suite = ET.SubElement(root, "testsuite", name=_text(f"{page} [{env_name}]"), tests=str(len(tests)),
                              failures=str(failures), errors=str(errors), skipped=str(skipped),
                              time=_time(duration), hostname=_text(env_name),
                              timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)))
        props = ET.SubElement(suite, "properties")
        for key in ("name", "kind", "kernel_release", "kernel_version", "machine", "uid"):
            ET.SubElement(props, "property", name=f"environment.{key}", value=_text(env.get(key, "")))
        ET.SubElement(props, "property", name="environment.lsms", value=_text(",".join(env.get("lsms", []))))
        for key, value in sorted((env.get("details") or {}).items()):
            ET.SubElement(props, "property", name=f"environment.details.{key}", value=_text(value))
        for t in tests:
            path, _, name = t["nodeid"].partition("::")
            module = path.rsplit("/", 1)[-1].removesuffix(".py")
            case = ET.SubElement(suite, "testcase", name=_text(name or path), time=_time(t.get("duration")),
                                 classname=f"sockspec.{ident(env_name)}.{ident(suite_of(t['nodeid']))}.{ident(module)}")
            detail = [f"clauses: {', '.join(t.get('clauses', []))}", f"location: {t.get('location', path)}"]
            if t["outcome"] in ("failed", "error"):
                if t.get("expected") is not None or t.get("observed") is not None:
                    detail += [f"expected (the page): {t.get('expected')}", f"observed: {t.get('observed')}"]
                if t.get("deviation_clause"):
                    detail.append(f"deviates from: {t['deviation_clause']}")
                tag = "failure" if t["outcome"] == "failed" else "error"
                el = ET.SubElement(case, tag, message=_text(t.get("message", "")),
                                   type="deviation" if tag == "failure" else "harness-error")
                el.text = _text("\n".join(detail + ["", t.get("message", "")]))
                continue
            if t["outcome"] == "skipped":
                ET.SubElement(case, "skipped", message=_text(t.get("message", "")))
            ET.SubElement(case, "system-out").text = _text("\n".join(detail))
        totals["tests"] += len(tests)
        totals["failures"] += failures
        totals["errors"] += errors
        totals["time"] += duration
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("time", _time(totals["time"]))
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
