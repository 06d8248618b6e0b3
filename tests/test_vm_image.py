"""The VM environment with a container image as the guest's root (``--image selinux``):
the same kernel and policy as tests/test_vm.py, the image's file system exported once into
the cache (harness.vm.rootfs; the Docker engine is started for the export only, and
stopped again if it was started for it), the checkout and what the run needs mounted in at
their host paths, the suites run by the image's python3.

One boot (about 30-40 s under TCG on two cores); the first run also builds and exports the
image (about 10 s each here).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import images
from harness.environments import ROOT, Selection
from harness.environments.vm import VMEnvironment
from harness.vm import cache_dir, rootfs
from tests.test_vm import SELINUX_CLAUSES, _clauses, _vm_cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the VM environment installs QEMU, fetches a "
                                                           "kernel and exports an image with Docker: needs root")

# Beside the unix(7) ones: NetLabel (netlabelctl from the image) and labeled IPsec over
# ESP (esp4 autoloaded by the image's modprobe from the mounted kernel modules).
CLAUSES = [*SELINUX_CLAUSES, "ip.7/so-peersec/netlabel-full-context-loopback",
           "ip.7/so-peersec/labeled-ipsec-full-context"]


def test_vm_boots_with_the_selinux_image_as_its_root(tmp_path):
    args = [a for cid in CLAUSES for a in ("--clause", cid)]
    r, out = _vm_cli(tmp_path, "--image", "selinux", *args)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    doc = json.loads((out / "results.json").read_text())
    env = doc["environment"]
    assert env["kind"] == "vm"
    assert env["name"].startswith("vm-debian-") and env["name"].endswith("-selinux")
    assert env["selinux"] == {"policy_loaded": True, "enforcing": True}
    details = env["details"]
    assert details["image"] == "selinux"
    assert details["image_tag"] == images.tag("selinux")
    assert f"sockspec_m0:{ROOT}" in details["cmdline"]
    clauses = _clauses(doc)
    for cid in CLAUSES:
        assert clauses[cid]["verdict"] == "pass", clauses[cid]
    console = (out / "console.log").read_text(errors="replace")
    assert "+ /usr/bin/python3 -m pytest" in console, "the image's python3 ran the suites"
    # exported once, by content tag: there now, and a second export is a cache hit
    again = rootfs.export("selinux")
    assert again.export_s == 0.0 and again.tag == details["image_tag"]
    assert again.path.parent.parent == cache_dir() / "rootfs"
    assert (again.path / "usr/sbin/netlabelctl").exists() and not (again.path / ".dockerenv").exists()


def test_host_paths_are_shared_once_each_outermost_first(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    assert rootfs.host_paths([a / "sub", b, a, b]) == [a, b]
    # a path through a symlink (CI's ../shared) is shared under the name the run uses
    (tmp_path / "link").symlink_to(b)
    assert rootfs.host_paths([tmp_path / "link" / "x"]) == [tmp_path / "link" / "x"]


def test_the_default_vm_keeps_the_host_root():
    env = VMEnvironment()
    assert env.image is None and env.host_paths() == []
    with pytest.raises(ValueError, match="unknown image"):
        VMEnvironment(image="no-such-image")


def test_image_root_cmdline_lists_the_shares(monkeypatch):
    """What stage 1 mounts, without a boot: the checkout (the .venv is inside it here), the
    man pages, the policy, the kernel's modules and config, each read-only."""
    from harness.vm import guest_kernel, policy

    env = VMEnvironment(image="selinux")
    env.kernel = guest_kernel.GuestKernel(Path("/k/boot/vmlinux-x"), "microvm", "x",
                                          Path("/k/lib/modules/x"), Path("/k/boot/config-x"), "test")
    env.policy = policy.Policy("sockspec", "0", Path("/p/sockspec.bin"), policy.CONTEXT_A)
    env.rootfs = rootfs.Rootfs("selinux", "sockspec/selinux:0", Path("/r/root"), 0.0)
    shares = env.shares(Path("/out"))
    assert [(s.tag, str(s.path), s.readonly) for s in shares[:2]] == [
        ("sockspec_root", "/r/root", True), ("sockspec_out", "/out", False)]
    mounted = {str(s.path) for s in shares[2:]}
    assert {str(ROOT), "/k/lib/modules/x", "/k/boot", "/p"} <= mounted
    assert all(s.readonly for s in shares[2:])
    assert "sockspec_mounts=sockspec_m0:" in env.cmdline()
    job = env._job(Selection(clauses=["x"]))
    assert "export PYTHONPATH=" in job and "set -- python3 -m harness.cli run" in job
