"""The parts of the VM environment (:mod:`harness.environments.vm`), one module each:

    guest_kernel.py  the kernel to boot: Debian's linux-image for this release (apt), or a
                     user's (.deb, unpacked tree or image); vmlinux for microvm; depmod
    initramfs.py     a tiny initramfs: static busybox, the virtio/9p/overlay modules, init.sh
    init.sh          stage 1 (initramfs): load the modules, mount the host root over 9p
                     (read-only) under a tmpfs overlay, switch_root into it running guest.sh
    guest.sh         stage 2 (PID 1 in the host's root): mounts, SELinux policy load and
                     enforce, run ``harness.cli run``, power off
    policy.py        compile policy/sockspec.cil with secilc
    policy/          the SELinux policy's source (CIL)
    rootfs.py        a container image (containers/) exported once as a guest root, for
                     VMEnvironment(image=...)
    qemu.py          the KVM probe, booting QEMU with a time limit, the console log
    progress.py      a pytest plugin the guest loads: progress marks on the console

Everything built is cached by content under :func:`cache_dir`; a second run builds nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """Where the fetched kernel, the initramfs and the compiled policy are kept:
    $SOCKSPEC_CACHE, else /var/cache/sockspec for root, else ~/.cache/sockspec."""
    env = os.environ.get("SOCKSPEC_CACHE")
    if env:
        path = Path(env)
    elif os.geteuid() == 0:
        path = Path("/var/cache/sockspec")
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sockspec"
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest(*parts: bytes | str | Path) -> str:
    """A short content hash of files (by content) and strings."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path):
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


class staging:
    """A staging folder beside ``target``, renamed to it on success (with a ``.complete``
    marker inside), removed otherwise: an interrupted fetch or export leaves nothing that
    looks complete."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.target.parent))
        return self.stage

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            (self.stage / ".complete").touch()
            shutil.rmtree(self.target, ignore_errors=True)
            os.rename(self.stage, self.target)
        else:
            shutil.rmtree(self.stage, ignore_errors=True)
        return False
