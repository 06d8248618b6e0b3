"""The labeled-networking fixtures (harness.labeling) and t6sendto's plain path.

NetLabel is global: the round-trip tests configure it on this host for a moment (a DOI
and a named LSM domain no one else uses) and check that it is exactly as before after the
fixture, also when the block fails.  They need root, CONFIG_NETLABEL and netlabel-tools;
no LSM is needed to hold CIPSO DOIs and domain mappings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from harness import kernel, labeling, sockaddr
from harness.t6sendto import t6sendto
from tests.helpers import ROOT, env

DOMAIN = "sockspec_selftest_t"

needs_netlabel = pytest.mark.skipif(
    os.geteuid() != 0 or kernel.config_enabled("CONFIG_NETLABEL") is False,
    reason="needs root and a kernel with CONFIG_NETLABEL")


@needs_netlabel
@pytest.mark.parametrize("local", [False, True], ids=["pass", "local"])
def test_cipso_fixture_sets_up_and_restores(local):
    before = labeling.netlabel_state()
    with labeling.netlabel_cipso("127.0.0.77", local=local, domains=[DOMAIN]) as setup:
        inside = labeling.netlabel_state()
        assert f'domain:"{DOMAIN}",address:127.0.0.77/32,protocol:CIPSOv4,{setup.doi}' in inside["map"]
        assert f"{setup.doi}," in inside["cipsov4"]
    assert labeling.netlabel_state() == before


@needs_netlabel
def test_cipso_fixture_tears_down_when_the_test_fails():
    before = labeling.netlabel_state()
    with pytest.raises(ZeroDivisionError):
        with labeling.netlabel_cipso("127.0.0.77", domains=[DOMAIN]):
            1 / 0
    assert labeling.netlabel_state() == before


@needs_netlabel
def test_cipso_fixture_refuses_a_domain_someone_else_maps():
    before = labeling.netlabel_state()
    labeling.netlabelctl("map", "add", f"domain:{DOMAIN}", "protocol:unlbl")
    try:
        with pytest.raises(labeling.FixtureError, match="already maps"):
            with labeling.netlabel_cipso("127.0.0.77", domains=[DOMAIN]):
                pass
        assert f'domain:"{DOMAIN}"' in labeling.netlabel_state()["map"]   # left alone
    finally:
        labeling.netlabelctl("map", "del", f"domain:{DOMAIN}")
    assert labeling.netlabel_state() == before


@needs_netlabel
def test_netlabelctl_reaches_netlabel_from_another_network_namespace():
    """NetLabel answers only in the initial namespace; from a forked child in a fresh one
    (as a test child is), netlabelctl is run in the parent's namespace."""
    code = ("import os; from harness import labeling, netns\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    netns.unshare(netns.CLONE_NEWNET)\n"
            "    print(labeling.netlabelctl('mgmt', 'version').strip(), flush=True)\n"
            "    os._exit(0)\n"
            "os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().isdigit()


@needs_netlabel
def test_labeling_off_configures_nothing(monkeypatch):
    monkeypatch.setenv("SOCKSPEC_LABELING", "off")
    before = labeling.netlabel_state()
    with labeling.netlabel_cipso("127.0.0.77", domains=[DOMAIN]) as setup:
        assert setup.mode == "off"
        assert labeling.netlabel_state() == before


def test_host_run_never_touches_labeling_fixtures(tmp_path):
    """Where the labeled clauses cannot run, their tests skip before any fixture: with an
    invalid SOCKSPEC_LABELING a fixture that ran would error."""
    if "selinux" in kernel.active_lsms():
        pytest.skip("SELinux is active here: the labeled tests run")
    e = dict(env(), SOCKSPEC_LABELING="bogus")
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "suites/ip_passsec",
                        "suites/t6sendto/test_attributes.py"], cwd=ROOT, env=e, capture_output=True, text=True)
    assert "error" not in r.stdout.splitlines()[-1], r.stdout[-3000:]
    assert " skipped" in r.stdout.splitlines()[-1]


def test_t6sendto_without_attributes_is_sendto():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    to = sockaddr.in4(*rx.getsockname())
    assert t6sendto(tx.fileno(), b"abcdef", 0, to, len(to), length=3) == 3
    assert rx.recv(10) == b"abc"
    with pytest.raises(OSError) as exc:
        t6sendto(tx.fileno(), b"x", 0, to, 15)
    assert exc.value.errno == 22


def test_labeling_mode_is_checked(monkeypatch):
    monkeypatch.setenv("SOCKSPEC_LABELING", "sideways")
    with pytest.raises(labeling.FixtureError):
        labeling.mode()


@needs_netlabel
def test_lock_is_not_held_by_a_child_forked_under_it():
    """A test child (or the namespace producer) forked while a fixture holds the NetLabel
    lock must not keep holding it: the next fixture would wait for ever."""
    import signal
    import time

    with labeling.netlabel_cipso("127.0.0.77", domains=[DOMAIN]):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
    try:
        started = time.monotonic()
        with labeling.netlabel_cipso("127.0.0.77", domains=[DOMAIN]):
            pass
        assert time.monotonic() - started < 10
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
