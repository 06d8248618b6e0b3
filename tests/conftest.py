"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, host_state, run_cli

BASELINE = ROOT / "reports" / "baselines" / "linux-6.toml"


@dataclass
class FullRun:
    """One full conformance run through the README's CI command
    (``run -n 2 --baseline reports/baselines/linux-6.toml --gate``), made once per
    session: its output folder, the CLI's result, and the host's state around it."""
    out: Path
    tmp: Path
    result: object
    before: dict
    after: dict

    @property
    def results(self) -> Path:
        return self.out / "results.json"


@pytest.fixture(scope="session")
def full_run(tmp_path_factory) -> FullRun:
    base = tmp_path_factory.mktemp("full-run")
    out, tmp = base / "out", base / "tmp"
    tmp.mkdir()
    before = host_state()
    r = run_cli("run", "--out", out, "-n", "2", "--baseline", BASELINE, "--gate", tmpdir=tmp)
    return FullRun(out, tmp, r, before, host_state())
