"""Benchmark: per-test isolation overhead, suite wall time serial and with -n 2, and the
VM environment's boot-to-first-test and wall time (its default selection); with
--containers, image builds, per-container overhead and the matrix's wall time.

    ./sockspec bench [--suite unix7] [--iterations 500] [--no-vm]
    ./sockspec bench --containers [--warm-only]

Isolation overhead is measured in a process that has pytest and the harness imported (as
a test run's worker does): the time of ``sandbox.run(noop)`` less the time of calling
``noop`` directly.  Suite wall times come from running pytest as a user would.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest  # noqa: F401  (the size of a real worker process matters for fork)

from harness import catalogue, sandbox


def isolation_overhead(iterations: int) -> dict:
    def noop():
        return None

    for _ in range(20):
        sandbox.run(noop)
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(iterations // 5):
            sandbox.run(noop)
        samples.append((time.perf_counter() - t) / (iterations // 5))
    t = time.perf_counter()
    for _ in range(iterations):
        noop()
    direct = (time.perf_counter() - t) / iterations
    sandbox.reap(block=True)
    bare = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(iterations // 5):
            sandbox.run(noop, isolate_net=False)
        bare.append((time.perf_counter() - t) / (iterations // 5))
    sandbox.reap(block=True)
    return {"per_test_ms": round((statistics.median(samples) - direct) * 1000, 3),
            "per_test_ms_without_netns": round((statistics.median(bare) - direct) * 1000, 3),
            "iterations": iterations}


def suite_wall(suite: str, jobs: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "pytest", f"suites/{suite}", "-q", "-p", "no:cacheprovider",
               f"--sockspec-results={out}"] + (["-n", jobs] if jobs else [])
        t = time.perf_counter()
        subprocess.run(cmd, cwd=catalogue.ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t
        tests = json.loads(out.read_text())["tests"] if out.exists() else []
    return {"jobs": jobs or "serial", "wall_s": round(wall, 2), "tests": len(tests),
            "sum_of_test_durations_s": round(sum(t["duration"] for t in tests), 2)}


def vm_run() -> dict:
    """One VM run of the default selection (every clause that needs the VM): how long the
    preparation took (cached after the first run), the boot to the first test, the whole
    run, and QEMU's CPU time."""
    from harness.environments.vm import VMEnvironment, VMError, default_selection

    env = VMEnvironment()
    try:
        env.prepare()
        with tempfile.TemporaryDirectory() as tmp:
            doc = json.loads(env.run(default_selection(), Path(tmp)).read_text())
    except (VMError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        return {"error": str(exc).splitlines()[0]}
    finally:
        env.teardown()
    t = env.timings
    return {"environment": env.name, "accel": env.accel, "tests": len(doc["tests"]),
            "prepare_s": t.get("prepare_s"), "boot_to_first_test_s": t.get("boot_to_first_test_s"),
            "wall_s": t.get("wall_s"), "qemu_cpu_s": t.get("qemu_cpu_s"),
            "phases_s": {k: v for k, v in t.items() if k not in ("prepare_s", "wall_s", "qemu_cpu_s")}}


# ---------------------------------------------------------------- containers and the matrix

def containers(cold: bool = True, runs: int = 5) -> dict:
    """Image build time cold (sockspec/base and sockspec/plain removed first) and warm (the
    tags found: nothing built), per-container overhead (a no-op container with the
    environments' options and mounts, median of ``runs``; and one small selection run on the
    host and in the full-capability container), and the wall time of the warm matrix of
    host plus four container variants (the whole suites, ``jobs=2``, 2 at a time)."""
    from python_on_whales import docker

    from harness import docker_engine, images, matrix
    from harness.environments import HostEnvironment, Selection
    from harness.environments.container import ContainerEnvironment

    out: dict = {}
    with docker_engine.Engine(), tempfile.TemporaryDirectory(prefix="sockspec-bench-") as tmp:
        if cold:
            for name in ("plain", "base"):
                if images.exists(images.tag(name)):
                    docker.image.remove(images.tag(name), force=True)
            images.BUILD_TIMES.clear()
            t = time.perf_counter()
            images.ensure("plain", quiet=True)
            out["image_build_cold_s"] = round(time.perf_counter() - t, 2)
            out["image_build_cold_parts_s"] = dict(images.BUILD_TIMES)
        t = time.perf_counter()
        images.ensure("plain", quiet=True)
        out["image_build_warm_s"] = round(time.perf_counter() - t, 3)

        env = ContainerEnvironment("bench-full", variant="full")
        env.prepare()
        noop = []
        for _ in range(runs):
            t = time.perf_counter()
            docker.run(env.details["image_tag"], ["true"], remove=True, pull="never",
                       networks=["none"], labels={docker_engine.LABEL: "bench"},
                       volumes=env._mounts(Path(tmp)), **env._cap_options())
            noop.append(time.perf_counter() - t)
        out["container_noop_run_s"] = round(statistics.median(noop), 3)
        small = Selection(pages=["unix.7"], clauses=["unix.7/autobind"])
        t = time.perf_counter()
        HostEnvironment("bench-host").run(small, Path(tmp) / "h")
        host_s = time.perf_counter() - t
        t = time.perf_counter()
        env.run(small, Path(tmp) / "c")
        cont_s = time.perf_counter() - t
        out["small_run_host_s"], out["small_run_container_s"] = round(host_s, 2), round(cont_s, 2)
        out["per_container_overhead_s"] = round(cont_s - host_s, 2)

        envs = [HostEnvironment("host")] + [ContainerEnvironment(f"docker-{v}", variant=v)
                                            for v in ("full", "default-caps", "nonroot", "userns")]
        t = time.perf_counter()
        rows = matrix.run_matrix([(e, Selection(jobs="2")) for e in envs], Path(tmp) / "m", parallel=2)
        out["matrix_wall_s"] = round(time.perf_counter() - t, 1)
        out["matrix_environments"] = {r["name"]: r["wall_s"] for r in rows}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sockspec bench")
    p.add_argument("--suite", action="append", help="suite folder under suites/ (repeatable)")
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--no-vm", action="store_true", help="leave out the VM run (about a minute)")
    p.add_argument("--containers", action="store_true",
                   help="only the container numbers: image build cold and warm, per-container "
                        "overhead, the warm matrix of host + four container variants")
    p.add_argument("--warm-only", action="store_true", help="with --containers: keep the image cache")
    args = p.parse_args(argv)
    if args.containers:
        report = containers(cold=not args.warm_only)
        print(json.dumps(report, indent=1))
        return 0
    suites = args.suite or sorted({q.parent.name for q in catalogue.SUITES.glob("*/test_*.py")})
    report = {"isolation": isolation_overhead(args.iterations), "suites": {}}
    print(f"isolation overhead: {report['isolation']['per_test_ms']} ms per test "
          f"({report['isolation']['per_test_ms_without_netns']} ms without the fresh network namespace)")
    for suite in suites:
        rows = [suite_wall(suite, None), suite_wall(suite, "2")]
        report["suites"][suite] = rows
        for r in rows:
            print(f"{suite}: {r['tests']} tests, {r['jobs']}: {r['wall_s']} s wall")
    if not args.no_vm:
        vm = report["vm"] = vm_run()
        if "error" in vm:
            print(f"vm: not measured: {vm['error']}")
        else:
            print(f"vm ({vm['environment']}, {vm['accel']}): {vm['tests']} tests, boot to first test "
                  f"{vm['boot_to_first_test_s']} s, VM run {vm['wall_s']} s wall "
                  f"(QEMU CPU {vm['qemu_cpu_s']} s), preparation {vm['prepare_s']} s")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
