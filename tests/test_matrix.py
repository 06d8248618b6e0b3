"""The environment matrix with a real Docker engine: host plus five container variants on a
few unix(7) clauses, through the README's command.  Builds the images on first use (cold:
about a minute here; warm: nothing).  Checks each column's environment block, that the
capability set changes verdicts, and that the host is left as found: no containers, no
temporary images (the sockspec/* images stay as the build cache), and -- when the engine
was started for the run -- no dockerd, bridge, iptables chains or ip_forward change."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import docker_engine
from tests.helpers import ROOT, env, host_state

ENVIRONMENTS = ["host", "docker-full", "docker-default", "docker-default-caps", "docker-nocaps",
                "docker-nonroot", "docker-userns"]
MATRIX = """
pages = ["unix.7"]
clauses = ["unix.7/autobind", "unix.7/errors/etoomanyrefs", "unix.7/permissions/connect-needs-write"]
parallel = 2
""" + "".join(f"""
[[environment]]
name = "{name}"
kind = "{'host' if name == 'host' else 'container'}"
""" + ("" if name == "host" else f'variant = "{name[7:]}"\n') for name in ENVIRONMENTS)


def _docker_state() -> dict:
    """Containers and image ids the engine holds (the engine must be running)."""
    from python_on_whales import docker

    return {"containers": sorted(c.id for c in docker.container.list(all=True)),
            "images": sorted(i.id for i in docker.image.list()
                             if not any(t.startswith("sockspec/") for t in i.repo_tags))}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    (tmp / "m.toml").write_text(MATRIX)
    engine_was_running = docker_engine.ping()
    before = {"host": host_state(), "engine": docker_engine.leftovers()}
    if engine_was_running:
        before["docker"] = _docker_state()
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "harness.cli", "matrix", str(tmp / "m.toml"),
                        "--out", str(tmp / "out")], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    after = {"host": host_state(), "engine": docker_engine.leftovers()}
    docs = {}
    for name in ENVIRONMENTS:
        path = tmp / "out" / name / "results.json"
        docs[name] = json.loads(path.read_text()) if path.exists() else None
    return {"r": r, "wall": wall, "docs": docs, "before": before, "after": after,
            "engine_was_running": engine_was_running, "out": tmp / "out"}


def test_the_matrix_runs_and_prints_a_line_per_environment(matrix):
    r = matrix["r"]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    for name in ENVIRONMENTS:
        assert any(line.startswith(name + " ") for line in r.stdout.splitlines()), r.stdout
    print(f"matrix wall time: {matrix['wall']:.1f} s")


def test_each_column_says_where_it_ran(matrix):
    docs = matrix["docs"]
    assert all(docs.values()), {n: d is not None for n, d in docs.items()}
    envs = {n: d["environment"] for n, d in docs.items()}
    assert envs["host"]["kind"] == "host"
    for name in ENVIRONMENTS[1:]:
        assert envs[name]["name"] == name and envs[name]["kind"] == "container"
        assert envs[name]["details"]["variant"] == name[7:]
        assert envs[name]["details"]["image_tag"].startswith("sockspec/plain:")
    full = set(envs["docker-full"]["capabilities"])
    assert {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SETUID"} <= full
    assert "CAP_SYS_RESOURCE" not in full or "CAP_SYS_RESOURCE" in envs["host"]["capabilities"]
    assert envs["docker-full"]["uid"] == 0
    assert "CAP_SYS_ADMIN" not in envs["docker-default-caps"]["capabilities"]
    assert "CAP_NET_RAW" in envs["docker-default-caps"]["capabilities"]
    assert envs["docker-nocaps"]["capabilities"] == [] and envs["docker-nocaps"]["uid"] == 0
    assert envs["docker-nonroot"]["uid"] == 1000 and envs["docker-nonroot"]["capabilities"] == []
    # root of its own user namespace: every capability there, none over the host's
    assert envs["docker-userns"]["uid"] == 0 and "CAP_SYS_ADMIN" in envs["docker-userns"]["capabilities"]
    assert envs["docker-userns"]["details"]["userns"] == "0:100000:65536"


def _verdicts(doc):
    return {c["id"]: c["verdict"] for c in doc["clauses"]}


def test_capability_sets_change_verdicts_and_say_why(matrix):
    docs = matrix["docs"]
    full, nocaps = _verdicts(docs["docker-full"]), _verdicts(docs["docker-nocaps"])
    assert full["unix.7/autobind/addrlen-family-only"] == "pass"
    assert [c for c in full if full[c] != nocaps[c]], "no clause differs between full and no capabilities"
    # Docker's default seccomp refuses unshare; root without any capability cannot map uid 0
    # into a user namespace: the tests share the container's namespace, one at a time, and
    # what needs privilege skips saying which capability is missing
    for name in ("docker-default", "docker-nocaps"):
        env_ = docs[name]["environment"]
        assert env_["isolation"].startswith("the container's network namespace"), env_
        assert _verdicts(docs[name])["unix.7/autobind/addrlen-family-only"] == "pass", name
    reasons = {t["message"] for t in docs["docker-nocaps"]["tests"] if t["outcome"] == "skipped"}
    assert any("CAP_SETUID" in m for m in reasons), reasons
    # Docker's default set lacks CAP_SYS_ADMIN: the uid-switching clause skips with the reason
    dc = docs["docker-default-caps"]
    assert _verdicts(dc)["unix.7/permissions/connect-needs-write"] == "skip"
    assert _verdicts(dc)["unix.7/autobind/addrlen-family-only"] == "pass"
    assert _verdicts(docs["docker-nonroot"])["unix.7/autobind/addrlen-family-only"] == "pass"
    for doc in docs.values():
        assert not [t for t in doc["tests"] if t["outcome"] == "error"], doc["environment"]["name"]


def test_the_host_is_left_as_found(matrix):
    before, after = matrix["before"], matrix["after"]
    assert after["host"]["links"] == before["host"]["links"]
    assert after["host"]["sysctls"] == before["host"]["sysctls"]
    assert after["host"]["named_netns"] == before["host"]["named_netns"]
    if not matrix["engine_was_running"]:
        assert not docker_engine.ping(), "the matrix left the dockerd it started running"
        assert after["engine"] == before["engine"]
        assert after["engine"]["processes"] == [] and not after["engine"]["docker_chains"]
        with docker_engine.Engine():
            state = _docker_state()
    else:
        state = _docker_state()
        assert state["containers"] == matrix["before"]["docker"]["containers"]
    assert not [c for c in state["containers"]], "containers left behind"
    if matrix["engine_was_running"]:
        assert state["images"] == matrix["before"]["docker"]["images"], "temporary images left behind"
    else:
        assert state["images"] == [], "images other than the sockspec/* cache left behind"
    for name in ENVIRONMENTS:
        for p in (matrix["out"] / name).iterdir():
            assert p.stat().st_uid == os.getuid(), f"{p} not handed back to the caller"


def test_the_engine_is_stopped_on_ctrl_c_during_a_matrix(tmp_path):
    """SIGINT while a container runs: the matrix stops, removes the container and, when it
    started dockerd, stops it and cleans up."""
    if docker_engine.ping():
        pytest.skip("a Docker engine was already running: the matrix would not stop it")
    (tmp_path / "m.toml").write_text('clauses = ["unix.7"]\npages = ["unix.7"]\n[[environment]]\n'
                                     'name = "c"\nkind = "container"\nvariant = "full"\n')
    p = subprocess.Popen([sys.executable, "-m", "harness.cli", "matrix", str(tmp_path / "m.toml"),
                          "--out", str(tmp_path / "out")], cwd=ROOT, env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from python_on_whales import docker

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if docker_engine.ping() and docker.container.list(filters=[("label", docker_engine.LABEL)]):
            break
        time.sleep(0.3)
    else:
        p.kill()
        pytest.fail("no container started")
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    assert p.returncode != 0
    assert not docker_engine.ping(), out[-3000:]
    left = docker_engine.leftovers()
    assert left["processes"] == [] and not left["bridge"] and not left["docker_chains"], left
