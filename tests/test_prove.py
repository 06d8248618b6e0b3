"""Every conformance test can fail: with the syscalls it names in @fault made to fail
(seccomp, ENOTRECOVERABLE), no test may pass.  A test skipped under the fault must be
skipped without it too, for the same environment reason."""

import json

import pytest

from harness import catalogue
from tests.helpers import run_pytest

SUITES_WITH_TESTS = sorted({p.parent.name for p in catalogue.SUITES.glob("*/test_*.py")})


def _run(suite, tmp_path, *extra):
    out = tmp_path / f"{suite}-{'prove' if extra else 'normal'}.json"
    r = run_pytest(f"suites/{suite}", "-q", "-n", "2", f"--sockspec-results={out}", *extra)
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    return {t["nodeid"]: t for t in json.loads(out.read_text())["tests"]}


@pytest.mark.parametrize("suite", SUITES_WITH_TESTS or ["(none yet)"])
def test_every_test_fails_under_its_injected_fault(suite, tmp_path):
    if suite == "(none yet)":
        pytest.skip("no suite has tests yet")
    proved = _run(suite, tmp_path, "--sockspec-prove")
    normal = _run(suite, tmp_path)
    assert proved, "no tests ran"
    assert set(proved) == set(normal)
    passed = sorted(n for n, t in proved.items() if t["outcome"] == "passed")
    assert not passed, f"these tests pass even when the calls they observe misbehave: {passed}"
    wrongly_skipped = sorted(n for n, t in proved.items()
                             if t["outcome"] == "skipped" and normal[n]["outcome"] != "skipped")
    assert not wrongly_skipped, f"these tests skip instead of failing under a fault: {wrongly_skipped}"
