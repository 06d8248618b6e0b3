"""The pytest side of sockspec: clauses on tests, a sandbox per test, results as data.

- ``@pytest.mark.clause("unix.7/...", ...)`` names the clauses a test checks.  Every test
  under ``suites/`` must carry it, and collection fails on an id the catalogue lacks.
- Every such test body runs in :func:`harness.sandbox.run`: a forked child in a fresh
  network namespace, its own working directory, a time limit
  (``@pytest.mark.sandbox(timeout=...)`` or ``--sockspec-timeout``).
- A clause the environment cannot check (``requires``, ``since``) is skipped with the
  reason, before any child is forked.
- ``@pytest.mark.fault("bind", ...)`` names the syscalls whose misbehaviour the test must
  notice; ``--sockspec-prove`` runs each test with those calls failing
  (:mod:`harness.inject`) to show that the test can fail.
- ``--sockspec-results PATH`` writes results.json (see :mod:`harness.results`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from harness import catalogue, inject, requirements, results, sandbox

SUITES = catalogue.SUITES
_COLLECTED_KEY = pytest.StashKey[dict]()
_SUITE_ITEM_KEY = pytest.StashKey[bool]()
_REPORTS_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser):
    g = parser.getgroup("sockspec", "sockspec conformance runs")
    g.addoption("--sockspec-results", metavar="PATH", help="write results.json here")
    g.addoption("--sockspec-timeout", type=float, default=sandbox.DEFAULT_TIMEOUT,
                metavar="SECONDS", help="time limit of each test child (default %(default)s)")
    g.addoption("--sockspec-clause", action="append", default=[], metavar="ID",
                help="run only tests naming a clause with this id or id prefix (repeatable)")
    g.addoption("--sockspec-inject", metavar="SYSCALLS[:ERRNO]",
                help="make these syscalls fail in every test child (e.g. 'bind:EACCES')")
    g.addoption("--sockspec-prove", action="store_true",
                help="run each test with its @fault syscalls failing; every test must fail")
    g.addoption("--sockspec-labeling", choices=("on", "off", "wrong-context"),
                help="misconfigure the labeled-networking fixtures on purpose (harness.labeling): "
                     "off sets none up, wrong-context labels with a context other than the sender's")


def pytest_configure(config):
    config.addinivalue_line("markers", "clause(*ids): the catalogue clauses this test checks")
    config.addinivalue_line("markers", "sandbox(timeout=None): options of the test child")
    config.addinivalue_line("markers", "fault(*syscalls): calls whose failure the test must notice")
    config.stash[_COLLECTED_KEY] = {}
    config.stash[_REPORTS_KEY] = {}
    # One id per run, inherited by xdist workers: unprivileged test uids differ between
    # runs sharing a machine (privileges.nobody_uid).
    os.environ.setdefault("SOCKSPEC_RUN_ID", str(os.getpid()))
    if config.getoption("--sockspec-labeling", None):
        os.environ["SOCKSPEC_LABELING"] = config.getoption("--sockspec-labeling")


def clause_ids(item) -> list[str]:
    return [cid for m in item.iter_markers("clause") for cid in m.args]


def _is_suite_item(item) -> bool:
    """A conformance test: it lives under suites/ or names clauses (computed once)."""
    cached = item.stash.get(_SUITE_ITEM_KEY, None)
    if cached is None:
        try:
            Path(item.fspath).resolve().relative_to(SUITES)
            cached = True
        except ValueError:
            cached = bool(clause_ids(item))
        item.stash[_SUITE_ITEM_KEY] = cached
    return cached


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    index = catalogue.clause_index()
    problems = []
    collected = config.stash[_COLLECTED_KEY]
    for item in items:
        if not _is_suite_item(item):
            continue
        ids = clause_ids(item)
        if not ids:
            problems.append(f"{item.nodeid}: no @pytest.mark.clause")
        for cid in ids:
            if cid not in index:
                problems.append(f"{item.nodeid}: unknown clause id {cid!r}")
        collected[item.nodeid] = ids
    if problems:
        raise pytest.UsageError("clause catalogue check failed:\n  " + "\n  ".join(problems))
    _share_collected(config, collected)
    wanted = config.getoption("--sockspec-clause")
    if wanted:
        keep, drop = [], []
        for item in items:
            ids = clause_ids(item)
            (keep if any(catalogue.selected(c, wanted) for c in ids) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


def _collected_path(config, worker: str) -> Path | None:
    out = config.getoption("--sockspec-results")
    return Path(f"{out}.collected.{worker}.json") if out else None


def _share_collected(config, collected: dict) -> None:
    """xdist workers tell the controller which tests name which clauses (all collected
    tests, before any deselection), so that 'uncovered' means no test at all."""
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker:
        path = _collected_path(config, worker)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(collected))


def pytest_runtest_setup(item):
    if not _is_suite_item(item):
        return
    index = catalogue.clause_index()
    ids = clause_ids(item)
    item.user_properties.append(("clauses", ids))
    for cid in ids:
        reason = requirements.unmet(index[cid])
        if reason:
            pytest.skip(f"{cid}: {reason}")
    reason = sandbox.isolation_unavailable()
    if reason:
        pytest.skip(reason)


def _faults(item):
    config = item.config
    if config.getoption("--sockspec-prove"):
        names = [n for m in item.iter_markers("fault") for n in m.args]
        if not names:
            pytest.fail("--sockspec-prove: this test declares no @pytest.mark.fault", pytrace=False)
        return names, inject.DEFAULT_ERRNO
    spec = config.getoption("--sockspec-inject")
    return inject.parse(spec) if spec else None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if not _is_suite_item(pyfuncitem):
        return None
    marker = pyfuncitem.get_closest_marker("sandbox")
    timeout = (marker.kwargs.get("timeout") if marker else None) or pyfuncitem.config.getoption(
        "--sockspec-timeout")
    funcargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    fn = pyfuncitem.obj
    outcome = sandbox.run(lambda: fn(**funcargs), timeout=timeout, faults=_faults(pyfuncitem))
    if outcome.clause and outcome.clause not in clause_ids(pyfuncitem):
        pytest.fail(f"a deviation names clause {outcome.clause!r}, which this test does not "
                    "declare in @pytest.mark.clause", pytrace=False)
    pyfuncitem.user_properties.append(("sandbox", outcome.to_dict()))
    if outcome.status == "passed":
        return True
    if outcome.status == "skipped":
        pytest.skip(outcome.message)
    text = outcome.message
    if outcome.status == "error" and outcome.traceback:
        text += "\n" + outcome.traceback
    pytest.fail(f"[{outcome.status}] {text}", pytrace=False)


def pytest_runtest_logreport(report):
    """Runs on the controller (also under xdist): keep what each test did."""
    config = _CONFIG[0] if _CONFIG else None
    if config is None or getattr(config, "workerinput", None):
        return
    store = config.stash[_REPORTS_KEY]
    props = dict(report.user_properties)
    entry = store.setdefault(report.nodeid, {"nodeid": report.nodeid, "clauses": props.get("clauses", []),
                                             "outcome": "passed", "message": "", "duration": 0.0})
    if "location" not in entry and report.location:
        path, lineno = report.location[0], report.location[1]  # lineno counts from 0
        entry["location"] = f"{path}:{lineno + 1}" if lineno is not None else path
    if props.get("clauses"):
        entry["clauses"] = props["clauses"]
    entry["duration"] += report.duration
    if report.when == "call" and "sandbox" in props:
        box = props["sandbox"]
        entry.update(status=box["status"], expected=box.get("expected"),
                     observed=box.get("observed"), values=box.get("values", {}),
                     deviation_clause=box.get("clause"))
    if report.skipped:
        entry["outcome"] = "skipped"
        entry["message"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        entry["message"] = entry["message"].removeprefix("Skipped: ")
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["message"] = _longrepr_text(report)


def _longrepr_text(report) -> str:
    lr = report.longrepr
    text = getattr(lr, "reprcrash", None)
    if text is not None and getattr(text, "message", None):
        return text.message
    return str(lr)


_CONFIG: list = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _CONFIG[:] = [session.config]
    session.config.stash[_REPORTS_KEY]["__started__"] = time.time()


def pytest_sessionfinish(session, exitstatus):
    sandbox.reap(block=True)
    config = session.config
    if getattr(config, "workerinput", None):
        return
    out = config.getoption("--sockspec-results")
    if not out:
        return
    collected = dict(config.stash[_COLLECTED_KEY])
    for path in Path(out).parent.glob(Path(out).name + ".collected.*.json"):
        collected.update(json.loads(path.read_text()))
        path.unlink()
    store = dict(config.stash[_REPORTS_KEY])
    started = store.pop("__started__", time.time())
    roots = [Path(a.split("::")[0]).resolve() for a in config.args] or [Path.cwd()]
    doc = results.build(
        tests=list(store.values()),
        collected=collected,
        roots=roots,
        selection=config.getoption("--sockspec-clause"),
        started=started,
        exitstatus=int(exitstatus),
        options={"inject": config.getoption("--sockspec-inject"),
                 "prove": config.getoption("--sockspec-prove"),
                 "labeling": os.environ.get("SOCKSPEC_LABELING", "on")},
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(out) + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, out)
