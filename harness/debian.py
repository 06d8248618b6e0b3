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
