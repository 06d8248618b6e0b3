"""The container images, built locally from the recipes in ``containers/`` (no registry).

    tag = images.ensure("plain")     # builds what is missing (base, then plain); returns its tag

``base`` is a Debian root made by ``debootstrap`` (``containers/base.toml``) and imported
with ``docker import``; every other image is ``containers/<name>/Dockerfile`` built with the
legacy builder (BuildKit is not available here) FROM its parent, named in
``containers/images.toml``.  Tags are content hashes: ``sockspec/<name>:<hash>`` where the
hash covers the recipe's files and the parent's tag (and, for base, the mirror), so a warm
run finds every tag and builds nothing.  The engine must be running (harness.docker_engine).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

from harness import catalogue, debian

CONTAINERS = catalogue.ROOT / "containers"
REPO = "sockspec"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

PYTHON = (3, 11)                     # the images' python3: Debian 12's (base.toml: bookworm)
BUILD_TIMES: dict[str, float] = {}   # image name -> seconds spent building it in this process


def check_python() -> None:
    """The images run this checkout with their python3 and the .venv's packages on
    PYTHONPATH (container and VM environments): the minor versions must match."""
    import sys

    if sys.version_info[:2] != PYTHON:
        raise RuntimeError(f"the images' python3 is {PYTHON[0]}.{PYTHON[1]} (Debian 12) and cannot load "
                           f"this .venv's {sys.version_info[0]}.{sys.version_info[1]} packages")


def recipes() -> dict[str, dict]:
    return tomllib.loads((CONTAINERS / "images.toml").read_text())


def apt_mirror() -> str:
    """The Debian archive apt uses here (not the security archive), for debootstrap."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        for uri in re.findall(r"^\s*(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", text, re.M):
            if re.search(r"/debian/?$", uri) and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _folder_bytes(folder: Path) -> list[bytes]:
    out = []
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        out += [str(f.relative_to(folder)).encode(), f.read_bytes()]
    return out


def tag(name: str) -> str:
    """The content tag of image ``name`` (whether or not it is built)."""
    if name == "base":
        return f"{REPO}/base:" + _hash((CONTAINERS / "base.toml").read_bytes(), apt_mirror().encode())
    recipe = recipes()[name]
    return f"{REPO}/{name}:" + _hash(tag(recipe["parent"]).encode(), *_folder_bytes(CONTAINERS / name))


def exists(image_tag: str) -> bool:
    from python_on_whales import docker

    return docker.image.exists(image_tag)


def ensure(name: str, quiet: bool = False) -> str:
    """Build image ``name`` (and its parents) unless its content tag exists; return the tag."""
    t = tag(name)
    if exists(t):
        return t
    start = time.perf_counter()
    if name == "base":
        _build_base(t, quiet)
    else:
        from python_on_whales import docker

        parent = ensure(recipes()[name]["parent"], quiet)
        start = time.perf_counter()
        if not quiet:
            print(f"sockspec: building image {t} (FROM {parent})", flush=True)
        docker.legacy_build(CONTAINERS / name, build_args={"BASE": parent}, tags=[t],
                            labels={"sockspec": "image"})
    BUILD_TIMES[name] = round(time.perf_counter() - start, 2)
    return t


def _build_base(image_tag: str, quiet: bool) -> None:
    from python_on_whales import docker

    debian.ensure("debootstrap")
    recipe = tomllib.loads((CONTAINERS / "base.toml").read_text())
    mirror = apt_mirror()
    if not quiet:
        print(f"sockspec: building image {image_tag}: debootstrap --variant={recipe['variant']} "
              f"{recipe['suite']} from {mirror}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="sockspec-base-"))
    try:
        root = tmp / "root"
        cmd = ["debootstrap", f"--variant={recipe['variant']}"]
        if recipe.get("include"):
            cmd.append("--include=" + ",".join(recipe["include"]))
        r = subprocess.run([*cmd, recipe["suite"], str(root), mirror], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
        tar = tmp / "root.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar), "."], check=True)
        shutil.rmtree(root)
        docker.image.import_(tar, tag=image_tag, changes=["LABEL sockspec=image", 'CMD ["/bin/bash"]'])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_rootfs(name: str, dest: Path) -> Path:
    """Unpack image ``name``'s file system into ``dest`` (for a VM that boots with it as
    its root).  Builds the image if needed; the engine must be running."""
    from python_on_whales import docker

    t = ensure(name)
    dest.mkdir(parents=True, exist_ok=True)
    container = docker.container.create(t, labels={"sockspec": "export"})
    try:
        with tempfile.TemporaryDirectory(prefix="sockspec-export-") as tmp:
            tar = Path(tmp) / "rootfs.tar"
            docker.container.export(container, tar)
            subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xf", str(tar)], check=True)
    finally:
        container.remove(force=True)
    return dest
