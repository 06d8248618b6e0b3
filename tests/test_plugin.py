"""The pytest plugin: clause validation, requirement skips, time limits, prove mode,
results.json.  Each case runs pytest in a subprocess on a small test file."""

import json
import textwrap

import pytest

from harness import kernel
from tests.helpers import run_pytest

CONFTEST = 'pytest_plugins = ["harness.plugin"]\n'


@pytest.fixture
def project(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)

    def write(body: str):
        (tmp_path / "test_case.py").write_text("import os, socket, time\nimport pytest\n"
                                              "from harness import expect\n" + textwrap.dedent(body))
        return tmp_path
    return write


def test_unknown_clause_id_fails_collection(project):
    d = project('''
        @pytest.mark.clause("unix.7/no-such/clause")
        def test_x():
            pass
    ''')
    r = run_pytest(d, cwd=d)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "unknown clause id 'unix.7/no-such/clause'" in r.stdout + r.stderr


def test_unmet_requirement_skips_with_reason(project):
    if "selinux" in kernel.active_lsms():
        pytest.skip("SELinux is active here: the clause's requirement is met")
    d = project('''
        @pytest.mark.clause("unix.7/socket-options/so-peersec-stream")
        def test_x():
            raise AssertionError("must not run")
    ''')
    r = run_pytest(d, "-rs", cwd=d)
    assert r.returncode == 0, r.stdout
    assert "needs an active selinux LSM" in r.stdout


def test_hanging_test_is_killed_within_its_limit(project):
    d = project('''
        @pytest.mark.clause("unix.7/errors/ebadf")
        @pytest.mark.sandbox(timeout=0.5)
        def test_hang():
            time.sleep(600)
    ''')
    r = run_pytest(d, "--durations=1", cwd=d, timeout=60)
    assert r.returncode == 1
    assert "[timeout] timed out after 0.5 s" in r.stdout


def test_deviation_shows_expected_and_observed_and_results_json(project, tmp_path):
    d = project('''
        @pytest.mark.clause("unix.7/address-format/unnamed-returned-length")
        @pytest.mark.fault("getsockname")
        def test_dev():
            expect.equal("returned addrlen", 3, 2)
    ''')
    out = tmp_path / "r.json"
    r = run_pytest(d, f"--sockspec-results={out}", cwd=d)
    assert r.returncode == 1
    assert "returned addrlen: expected 2, observed 3" in r.stdout
    doc = json.loads(out.read_text())
    (t,) = doc["tests"]
    assert t["outcome"] == "failed" and t["expected"] == 2 and t["observed"] == 3
    assert t["clauses"] == ["unix.7/address-format/unnamed-returned-length"]
    (c,) = [c for c in doc["clauses"] if c["tests"]]
    assert c["verdict"] == "fail" and c["quote"].startswith("When the address of an unnamed")
    assert doc["environment"]["kernel_release"] == kernel.release()


def test_prove_mode_needs_a_fault_marker_and_injects_it(project):
    d = project('''
        @pytest.mark.clause("unix.7/errors/ebadf")
        def test_no_marker():
            pass

        @pytest.mark.clause("unix.7/errors/ebadf")
        @pytest.mark.fault("bind")
        def test_bind():
            socket.socket(socket.AF_UNIX).bind(b"\\0n")
    ''')
    r = run_pytest(d, "--sockspec-prove", cwd=d)
    assert "2 failed" in r.stdout, r.stdout
    assert "declares no @pytest.mark.fault" in r.stdout


def test_clause_selection(project, tmp_path):
    d = project('''
        @pytest.mark.clause("unix.7/errors/ebadf")
        def test_a():
            pass

        @pytest.mark.clause("unix.7/errors/enoent")
        def test_b():
            pass
    ''')
    out = tmp_path / "r.json"
    r = run_pytest(d, "--sockspec-clause=unix.7/errors/enoent", f"--sockspec-results={out}", cwd=d)
    assert "1 passed, 1 deselected" in r.stdout
    doc = json.loads(out.read_text())
    verdicts = {c["id"]: c["verdict"] for c in doc["clauses"]}
    assert verdicts["unix.7/errors/enoent"] == "pass"
    # a narrowed run lists only what was asked for: the other clauses have no cell
    assert set(verdicts) == {"unix.7/errors/enoent"}
    assert [p["page"] for p in doc["pages"]] == ["unix.7"]
