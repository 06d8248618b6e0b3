"""Debian packages the environments need, installed on first use (as ``./sockspec``
installs python3-venv): one place that calls apt-get, waiting for the dpkg lock rather
than failing when another apt-get holds it."""

from __future__ import annotations

import os
import shutil
import subprocess

APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-y", "-qq", "--no-install-recommends"]
_updated = False


def installed(package: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.endswith("installed")


def ensure(*packages: str) -> None:
    """Install the Debian packages not yet installed; needs root and apt-get.

    Raises RuntimeError naming the packages when they cannot be installed here."""
    global _updated
    missing = [p for p in packages if not installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"needs the Debian packages {' '.join(missing)} (install them as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        _updated = True
    print(f"sockspec: installing Debian packages: {' '.join(missing)}", flush=True)
    subprocess.run([*APT, "install", *missing], env=env, check=True, stdout=subprocess.DEVNULL)


def _apt_cache(*args: str) -> str:
    return subprocess.run(["apt-cache", *args], capture_output=True, text=True).stdout


def _update() -> None:
    global _updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    _updated = True


def candidate(package: str) -> str | None:
    """The version apt would install of ``package`` (after an ``apt-get update`` when the
    package lists do not know it yet), or None."""
    for attempt in range(2):
        for line in _apt_cache("policy", package).splitlines():
            key, _, value = line.strip().partition(":")
            if key == "Candidate" and value.strip() not in ("", "(none)"):
                return value.strip()
        if attempt == 0 and not _updated and os.geteuid() == 0:
            _update()
    return None


def depends(package: str) -> list[str]:
    """The packages ``package`` depends on (its first alternative of each)."""
    return [line.split(":", 1)[1].strip() for line in _apt_cache("depends", package).splitlines()
            if line.strip().startswith("Depends:")]


def download(package: str, version: str, dest: str) -> str:
    """Fetch ``package=version``'s .deb into the folder ``dest`` (no install); its path."""
    subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "-qq", "download",
                    f"{package}={version}"], cwd=dest, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    debs = [n for n in os.listdir(dest) if n.startswith(package + "_") and n.endswith(".deb")]
    if len(debs) != 1:
        raise RuntimeError(f"apt-get download {package}={version} left {debs} in {dest}")
    return os.path.join(dest, debs[0])
