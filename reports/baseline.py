"""Known deviations, recorded as data: which clause, which tests, why, and a reference.

A baseline file (TOML)::

    [match]                          # optional: the runs this file is for
    kernel = ["6.*"]                 # kernel release globs
    environment = ["host*"]          # environment name globs (the matrix column)
    kind = ["host", "container"]     # host | container | vm

    [[deviation]]
    clause = "unix.7/sockets-api/no-oob"                # the clause the kernel deviates from
    tests = ["suites/unix7/test_x.py::test_y[stream]"]  # optional: only these tests
    reason = "CONFIG_AF_UNIX_OOB (Linux 5.15) added MSG_OOB for stream sockets"
    reference = "kernel commit 314001f0bf92"
    match = {kind = ["vm"]}                             # optional: only for these runs

Every entry needs a clause, a reason and a reference.  An entry records the deviations
of its clause (by the tests listed, or by any test): a test failing two clauses needs an
entry for each.  Each ``match`` key is a string or
a list of ``fnmatch`` globs; a run matches when every key given matches.  An entry
applies to a run when both the file's ``[match]`` and its own ``match`` do; entries that
do not apply are ignored, so one file can hold a kernel series' deviations for several
environments.

:func:`compare` splits the run into new, fixed, unchanged and unchecked deviations
(:mod:`reports.comparison`); the CI gate fails only on new ones.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from reports import runs
from reports.comparison import Comparison, Row

MATCH_KEYS = {"kernel": "kernel_release", "environment": "name", "kind": "kind"}


def _globs(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{where}: a match value must be a string or a list of strings")


def _match(table, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if table is None:
        return ()
    if not isinstance(table, dict) or set(table) - set(MATCH_KEYS):
        raise ValueError(f"{where}: match keys are {', '.join(MATCH_KEYS)}")
    return tuple((k, _globs(v, where)) for k, v in sorted(table.items()))


def matches(match: tuple, environment: dict) -> bool:
    """Every key of ``match`` has a glob matching the run's environment (results.json
    from before environments had a kind are ``host``)."""
    for key, globs in match:
        value = str(environment.get(MATCH_KEYS[key]) or ("host" if key == "kind" else ""))
        if not any(fnmatchcase(value, g) for g in globs):
            return False
    return True


@dataclass(frozen=True)
class Known:
    clause: str
    tests: tuple[str, ...]
    reason: str
    reference: str
    match: tuple = field(default=())

    def applies(self, environment: dict) -> bool:
        return matches(self.match, environment)

    def names(self, test: dict) -> bool:
        """The test is one this entry is about (whatever its outcome)."""
        return self.clause in test.get("clauses", []) and (not self.tests or test["nodeid"] in self.tests)

    def covers(self, clause: str, test: dict) -> bool:
        """The deviation (``test`` failing ``clause``) is the one this entry records."""
        return clause == self.clause and (not self.tests or test["nodeid"] in self.tests)

    def why(self) -> str:
        return f"{self.reason} [{self.reference}]"


def load(path: str | Path) -> list[Known]:
    """Every entry of a baseline file, the file's ``[match]`` folded into each."""
    data = tomllib.loads(Path(path).read_text())
    file_match = _match(data.get("match"), f"{path}: [match]")
    out = []
    for i, d in enumerate(data.get("deviation", [])):
        where = f"{path}: deviation #{i + 1}"
        missing = [k for k in ("clause", "reason", "reference") if not str(d.get(k, "")).strip()]
        if missing:
            raise ValueError(f"{where} ({d.get('clause', '?')}) needs {' and '.join(missing)}")
        out.append(Known(d["clause"], tuple(d.get("tests", ())), d["reason"], d["reference"],
                         file_match + _match(d.get("match"), where)))
    return out


def compare(doc: dict, known: list[Known], reference: str = "the baseline") -> Comparison:
    """The run's deviations against the entries that apply to its environment."""
    env = doc.get("environment", {})
    known = [k for k in known if k.applies(env)]
    cmp = Comparison(reference=reference,
                     subject=f"{env.get('name', 'run')} (Linux {env.get('kernel_release', '?')})")
    used = set()
    for cid, t in runs.deviations(doc):
        hits = [k for k in known if k.covers(cid, t)]
        used.update(hits)
        cmp.rows.append(Row("unchanged" if hits else "new", (cid,), t["nodeid"], t.get("message", ""),
                            "; ".join(k.why() for k in hits), t.get("location", "")))
    for k in known:
        if k in used:
            continue
        named = [t for t in doc.get("tests", []) if k.names(t)]
        passed = [t for t in named if t.get("outcome") == "passed"]
        if passed:
            for t in passed:
                cmp.rows.append(Row("fixed", (k.clause,), t["nodeid"], "passes now", k.why(),
                                    t.get("location", "")))
        else:
            why_not = "; ".join(sorted({t.get("message", "") for t in named if t.get("message")}))
            cmp.rows.append(Row("unchecked", (k.clause,), named[0]["nodeid"] if len(named) == 1 else "",
                                why_not or "its tests did not run", k.why()))
    return cmp
