"""A container image's file system as the guest's root (``VMEnvironment(image="selinux")``).

The image (``containers/``, built by :mod:`harness.images`) is exported once with
:func:`harness.images.export_rootfs` into ``cache_dir()/rootfs/<name>-<hash>/root``, keyed by
the image's content tag: a second run exports nothing and needs no Docker engine.  Only for
an export is the engine started (:class:`harness.docker_engine.Engine`: a dockerd that
already runs is used and left running; one started here is stopped afterwards).  Older
exports of the same image are removed when a new one is made.

Stage 1 (``init.sh``) mounts the exported root read-only over 9p as the overlay's lower
layer, in place of the host's root, and mounts :func:`host_paths` (the checkout, the man
pages, the .venv's site-packages, the kernel's modules and config, the compiled policy)
read-only at their own paths in it, one 9p share each.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.vm import cache_dir, staging

# Docker's runtime marker: not part of the image, and a sign of a container to whoever looks.
RUNTIME_FILES = (".dockerenv",)


@dataclass
class Rootfs:
    name: str           # the image's name in containers/images.toml (selinux, ipsec, plain)
    tag: str            # its content tag, sockspec/<name>:<hash>
    path: Path          # the exported root
    export_s: float     # seconds the export took in this process (0.0: found in the cache)

    def describe(self) -> dict:
        return {"image": self.name, "image_tag": self.tag}


def export(name: str) -> Rootfs:
    """Image ``name``'s root, exported into the cache unless its tag's export is there."""
    from harness import docker_engine, images

    tag = images.tag(name)
    target = cache_dir() / "rootfs" / f"{name}-{tag.rsplit(':', 1)[1]}"
    start = time.monotonic()
    if not (target / ".complete").exists():
        print(f"sockspec: exporting the image {tag} as the VM's root into {target}", flush=True)
        with docker_engine.Engine(), staging(target) as stage:
            root = images.export_rootfs(name, stage / "root")
            for f in RUNTIME_FILES:
                (root / f).unlink(missing_ok=True)
        for old in target.parent.glob(f"{name}-*"):
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
        took = round(time.monotonic() - start, 2)
    else:
        took = 0.0
    return Rootfs(name, tag, target / "root", took)


def host_paths(paths: list[Path]) -> list[Path]:
    """The folders to make visible in the guest at their own paths: ``paths`` made absolute
    but not resolved (the run reads them by these names: a ``../shared`` that is a symlink
    must appear in the guest where the symlink is), without those inside another (a share
    shows everything below it), shortest first (the order stage 1 mounts them in)."""
    out: list[Path] = []
    for p in sorted({Path(os.path.abspath(p)) for p in paths}, key=lambda p: (len(p.parts), str(p))):
        if not any(p.is_relative_to(q) for q in out):
            out.append(p)
    return out
