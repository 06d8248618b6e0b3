"""A pytest plugin the VM's guest loads (``-p harness.vm.progress``): it writes progress
marks straight to the console, past pytest's output capture, so that the host can time
the boot to the first test (see :mod:`harness.vm.qemu`)."""

from __future__ import annotations

_seen = []


def _mark(text: str) -> None:
    try:
        with open("/dev/console", "w") as f:
            f.write(f"sockspec-guest: {text}\n")
    except OSError:
        pass


def pytest_collection_finish(session):
    _mark(f"collected {len(session.items)} tests")


def pytest_runtest_logstart(nodeid, location):
    if not _seen:
        _seen.append(nodeid)
        _mark(f"first test {nodeid}")
