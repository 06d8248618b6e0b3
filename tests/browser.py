"""Headless Chromium for the project's tests: Debian's ``chromium`` (installed on first
use through harness.debian), a page loaded from disk, the DOM after its script ran, and
every console message it produced.

Chromium logs console messages (console.* calls, uncaught exceptions, Content Security
Policy violations, failed loads) to stderr as ``INFO:CONSOLE...] "text", source: URL``
with ``--enable-logging=stderr``; it does not say which console level, so a page under
test must produce none at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import debian

CONSOLE = re.compile(r":CONSOLE[(:]\d*\)?\] (.*)$")


@dataclass
class Loaded:
    dom: str
    console: list[str]
    seconds: float


def chromium() -> str:
    """The chromium binary; installs Debian's package when root, else skips."""
    path = shutil.which("chromium")
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip("needs Debian's chromium package (install it as root)")
    debian.ensure("chromium")
    return shutil.which("chromium") or pytest.fail("chromium installed but not on PATH")


def load(page: Path, fragment: str = "", budget_ms: int = 5000) -> Loaded:
    """Open ``page`` (``#fragment`` appended), let its script run, return the DOM."""
    url = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--enable-logging=stderr",
           "--v=0", f"--virtual-time-budget={budget_ms}", "--dump-dom", url]
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")})
    seconds = time.monotonic() - start
    assert r.returncode == 0, r.stderr[-3000:]
    console = [m.group(1) for line in r.stderr.splitlines() if (m := CONSOLE.search(line))]
    return Loaded(r.stdout, console, seconds)
