"""Exports of one results.json for the ecosystem, each a pure function of the document:

    junit   JUnit XML (Jenkins/Ant schema): CI systems' test views       results.junit.xml
    ktap    KTAP version 1 (the kernel's kselftest/KUnit output format)  results.ktap
    kcidb   KCIDB I/O JSON, schema v5.3 (what KernelCI ingests)          results.kcidb.json

``./sockspec run`` writes all three next to results.json; ``./sockspec export`` writes
one from any results.json.  The project's tests validate each against its format
(tests/test_exports.py).
"""

from __future__ import annotations

from pathlib import Path

from reports.export import junit, kcidb, ktap

FORMATS = {"junit": (junit.render, "results.junit.xml"),
           "ktap": (ktap.render, "results.ktap"),
           "kcidb": (kcidb.render, "results.kcidb.json")}


def render(fmt: str, doc: dict, **options) -> str:
    """One export; options go to the format's renderer (kcidb: ``origin``)."""
    return FORMATS[fmt][0](doc, **options)


def write_all(doc: dict, out_dir: Path) -> list[Path]:
    """Write every export into ``out_dir`` under its usual name."""
    paths = []
    for fmt, (fn, name) in FORMATS.items():
        path = Path(out_dir) / name
        path.write_text(fn(doc))
        paths.append(path)
    return paths
