"""The VM environment (harness.environments.vm), for real: Debian's kernel booted under
QEMU, SELinux enforcing with the project's policy, the suites run inside.

The boots are the slow part (about 30-40 s each under TCG on two cores); the module's
first test also pays the one-time fetch of the kernel and the packages on a fresh
machine.  Everything the VM needs is installed on first use (root and apt-get), as the
README's command does; without root these tests skip, saying so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from harness import catalogue
from harness.environments import Selection
from harness.environments.vm import VMEnvironment, VMError
from harness.vm import guest_kernel, initramfs, policy
from tests.helpers import descendants, run_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the VM environment installs QEMU and "
                                                           "fetches a kernel with apt: needs root")

# Clauses with one test each that this kernel passes under SELinux (and skips without it).
SELINUX_CLAUSES = ["unix.7/socket-options/so-peersec-default-creator",
                   "unix.7/socket-options/so-peersec-stream"]


def _qemus(tmp: Path | None = None) -> set[int]:
    """QEMU processes, only those of runs whose temporary folder is
    ``tmp`` when given (colleagues may boot VMs of their own meanwhile)."""
    pids = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if not comm.read_text().startswith("qemu-system"):
                continue
            cmdline = (comm.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if tmp is None or str(tmp).encode() in cmdline:
            pids.add(int(comm.parent.name))
    return pids


@pytest.fixture(scope="module")
def prepared():
    """One prepared VM environment (kernel, initramfs, policy, accelerator), shared."""
    env = VMEnvironment()
    env.prepare()
    return env


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} (parent {ppid}): {cmd[:200]}"


def _our_mounts() -> list[str]:
    return [line for line in Path("/proc/self/mounts").read_text().splitlines() if "sockspec" in line]


def _vm_cli(tmp_path, *args):
    """``./sockspec vm ARGS`` in a subprocess; then no QEMU, temporary file or mount of
    the run is left.  (Links and sysctls are not compared: the VM touches neither, and a
    colleague's Docker engine may change them meanwhile.)"""
    before_children = set(descendants(os.getpid()))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    t = time.monotonic()
    r = run_cli("vm", "--out", out, *args, tmpdir=tmp, timeout=900)
    took = time.monotonic() - t
    assert _qemus(tmp) == set(), "a QEMU process outlived the run"
    assert list(tmp.iterdir()) == [], "the VM run left temporary files behind"
    assert _our_mounts() == []
    new = set(descendants(os.getpid())) - before_children
    assert not new, [_describe(pid) for pid in new]
    print(f"VM run took {took:.1f} s")
    return r, out


def _clauses(doc) -> dict[str, dict]:
    return {c["id"]: c for c in doc["clauses"]}


def test_vm_runs_selinux_clauses_end_to_end(prepared, tmp_path):
    """The README's command boots the VM (boot included), runs SELinux clauses inside it and
    brings back a results.json that names the environment; the clauses pass for real."""
    args = [a for cid in SELINUX_CLAUSES for a in ("--clause", cid)]
    r, out = _vm_cli(tmp_path, *args)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    doc = json.loads((out / "results.json").read_text())
    env = doc["environment"]
    assert env["kind"] == "vm"
    assert env["name"].startswith("vm-debian-")
    assert "selinux" in env["lsms"]
    assert env["selinux"] == {"policy_loaded": True, "enforcing": True}
    assert env["kernel_release"] == prepared.kernel.release
    details = env["details"]
    assert details["policy"] == policy.NAME and details["policy_hash"] == prepared.policy.hash
    assert details["accel"] in ("kvm", "tcg") and "security=selinux" in details["cmdline"]
    clauses = _clauses(doc)
    for cid in SELINUX_CLAUSES:
        assert clauses[cid]["verdict"] == "pass", clauses[cid]
    assert (out / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert "boot_to_first_test_s" in r.stdout, r.stdout[-3000:]


def test_vm_without_policy_never_passes_selinux_clauses(tmp_path):
    """A misconfigured VM (SELinux active, no policy loaded: every context is the bare
    initial SID name "kernel") must not pass SELinux clauses: they skip, saying why."""
    args = [a for cid in SELINUX_CLAUSES for a in ("--clause", cid)]
    r, out = _vm_cli(tmp_path, "--no-policy", *args)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["environment"]["selinux"]["policy_loaded"] is False
    clauses = _clauses(doc)
    for cid in SELINUX_CLAUSES:
        assert clauses[cid]["verdict"] == "skip", clauses[cid]
        assert "no policy is loaded" in clauses[cid]["message"]


def test_selinux_tests_fail_in_the_vm_under_injected_faults(tmp_path):
    """The SELinux tests can fail: inside the VM, with their observed calls failing
    (--sockspec-prove), every one of them fails (they never run on the host)."""
    unix = [a for cid in catalogue.vm_clause_ids() if cid.startswith("unix.7/") for a in ("--clause", cid)]
    r, out = _vm_cli(tmp_path, *unix, "--", "--sockspec-prove")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    doc = json.loads((out / "results.json").read_text())
    selinux_tests = [t for t in doc["tests"] if "peersec" in t["nodeid"] or "scm_security" in t["nodeid"]]
    assert selinux_tests
    assert {t["outcome"] for t in selinux_tests} == {"failed"}, [
        (t["nodeid"], t["outcome"], t["message"]) for t in selinux_tests if t["outcome"] != "failed"]


def test_a_guest_past_its_time_limit_is_killed_and_says_why(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = VMEnvironment(timeout=2.0)
    env.prepare()
    with pytest.raises(VMError, match=r"killed after the time limit of 2 s") as info:
        env.run(Selection(clauses=SELINUX_CLAUSES), tmp_path / "out")
    assert "Console log" in str(info.value)
    assert _qemus(tmp_path) == set()
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "the work folder is removed"
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_failed_boot_says_why(prepared, tmp_path):
    """A guest that cannot load its policy stops at once and the error carries the
    console's account of it."""
    env = VMEnvironment()
    env.prepare()
    env.policy = policy.Policy("broken", "0", tmp_path / "no-such-policy", policy.CONTEXT_A)
    with pytest.raises(VMError, match="loading the policy") as info:
        env.run(Selection(clauses=SELINUX_CLAUSES), tmp_path / "out")
    assert "sockspec-guest: FAILED" in str(info.value)


# ------------------------------------------------------------------ the parts, without a boot


def test_default_kernel_is_unpacked_for_microvm(prepared):
    k = prepared.kernel
    assert k.machine == "microvm"
    assert guest_kernel.has_pvh_entry(k.image.read_bytes())
    assert (k.modules / "modules.dep").exists()
    assert k.config is not None and "CONFIG_SECURITY_SELINUX=y" in k.config.read_text()
    bz = next(k.image.parent.glob("vmlinuz-*"))
    assert guest_kernel.bzimage_release(bz.read_bytes()) == k.release
    assert guest_kernel.from_path(bz).release == k.release     # a user's bare image works too


def test_initramfs_loads_the_9p_stack_in_dependency_order(prepared):
    order = [Path(m).name for m in initramfs.modules_in_order(prepared.kernel.modules)]
    for before, after in (("virtio.ko", "virtio_mmio.ko"), ("netfs.ko", "9p.ko"),
                          ("9pnet.ko", "9pnet_virtio.ko"), ("fscache.ko", "9p.ko")):
        assert order.index(before) < order.index(after), order
    assert initramfs.build(prepared.kernel.modules) == prepared.initrd     # cached by content


def test_policy_is_compiled_once_and_names_distinct_contexts(prepared):
    again = policy.build()
    assert again.binary == prepared.policy.binary and again.hash == prepared.policy.hash
    source = "\n".join(p.read_text() for p in policy.SOURCES)
    assert "(mls true)" in source and "(handleunknown allow)" in source
    a, b = policy.CONTEXT_A.split(":"), policy.CONTEXT_B.split(":")
    assert a[2] != b[2], "two process types"
    for sid_type in ("netmsg_t", "unlabeled_t"):
        assert sid_type not in (a[2], b[2])
