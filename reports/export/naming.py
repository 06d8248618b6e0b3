"""What the exports share: test and page names taken from node ids, identifiers
restricted to the characters the formats allow, text on one line."""

from __future__ import annotations

import re


def one_line(text, limit: int | None = None) -> str:
    """Whitespace (newlines included) collapsed to single spaces, optionally cut."""
    text = " ".join(str("" if text is None else text).split())
    if limit and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


def suite_of(nodeid: str) -> str:
    """suites/unix7/test_x.py::test_y[p] -> unix7"""
    parts = nodeid.split("::", 1)[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "suites" else parts[0].removesuffix(".py")


def page_of_suite(doc: dict) -> dict[str, str]:
    """suite folder -> page name, from the document's pages."""
    return {p["suite"]: p["page"] for p in doc.get("pages", []) if p.get("suite")}


def ident(text: str) -> str:
    """Letters, digits, '_' and '-' only (KCIDB paths, JUnit class names)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "_"
