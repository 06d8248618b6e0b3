"""Environments: the places a conformance run happens, one column each in a matrix report.

An environment knows how to prepare itself (build an image, fetch and boot a kernel), run
a selection of the suites inside itself, and hand back the ``results.json`` that run
wrote.  Every run inside an environment is an ordinary ``python -m harness.cli run``
with three variables set, so the results say where they come from
(``harness.kernel.describe``):

    SOCKSPEC_ENVIRONMENT          the environment's name (its column in the matrix)
    SOCKSPEC_ENVIRONMENT_KIND     host | container | vm  (``requires = ["vm"]`` needs vm)
    SOCKSPEC_ENVIRONMENT_DETAILS  JSON: image, capability set, kernel, policy, ...

Kinds live in their own modules: ``host`` here, ``container`` (Docker, through
python-on-whales) and ``vm`` (a kernel booted under QEMU).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from harness import catalogue

ROOT = catalogue.ROOT


@dataclass
class Selection:
    """What to run: pages (or suite names), clause ids or prefixes, pytest-xdist jobs,
    the per-test time limit, and extra pytest arguments."""
    pages: list[str] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)
    jobs: str | None = None
    timeout: float | None = None
    pytest_args: list[str] = field(default_factory=list)

    def cli_args(self) -> list[str]:
        """The same selection as arguments of ``harness.cli run``."""
        args: list[str] = []
        for p in self.pages:
            args += ["--page", p]
        for c in self.clauses:
            args += ["--clause", c]
        if self.jobs:
            args += ["-n", str(self.jobs)]
        if self.timeout:
            args += ["--timeout", str(self.timeout)]
        if self.pytest_args:
            args += ["--", *self.pytest_args]
        return args


class Environment:
    """One place to run the suites.  Subclasses set ``kind`` and implement ``run``."""

    kind = "abstract"

    def __init__(self, name: str, **details):
        self.name = name
        self.details = details

    def env_vars(self) -> dict[str, str]:
        return {"SOCKSPEC_ENVIRONMENT": self.name,
                "SOCKSPEC_ENVIRONMENT_KIND": self.kind,
                "SOCKSPEC_ENVIRONMENT_DETAILS": json.dumps(self.details, sort_keys=True)}

    def prepare(self) -> None:
        """Build or fetch what the environment needs (cached); paid once per matrix run."""

    def run(self, selection: Selection, out_dir: Path) -> Path:
        """Run the selection inside the environment; return the results.json it wrote."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Leave the host as it was found (called even when run failed)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class HostEnvironment(Environment):
    """The running kernel, as the invoking user (or as another uid via ``user``)."""

    kind = "host"

    def run(self, selection: Selection, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").unlink(missing_ok=True)
        user = self.details.get("user")
        env = {**os.environ, **self.env_vars()}
        python = sys.executable
        if user:
            python, extra_env = interpreter_for_others()
            env.update(extra_env)
        cmd = [python, "-m", "harness.cli", "run", "--out", str(out_dir), *selection.cli_args()]
        if user:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
            os.chown(out_dir, int(user), int(user))
        try:
            with (out_dir / "run.log").open("wb") as log:
                self.return_code = subprocess.run(cmd, cwd=ROOT, env=env, check=False,
                                                  stdout=log, stderr=subprocess.STDOUT).returncode
        finally:
            if user:
                subprocess.run(["chown", "-R", f"{os.getuid()}:{os.getgid()}", str(out_dir)], check=False)
        return out_dir / "results.json"


def _reachable_by_others(path: str) -> bool:
    """Whether any uid may execute ``path`` (every directory above it searchable by others)."""
    p = Path(os.path.realpath(path))
    for d in p.parents:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
    return bool(os.stat(p).st_mode & stat.S_IXOTH)


def interpreter_for_others() -> tuple[str, dict]:
    """A python another uid can run this checkout with: the .venv's own interpreter when
    others can reach it, else the system's python3.X of the same minor version with the
    .venv's site-packages on PYTHONPATH (a .venv made from a python under /root, such as
    pyenv's, is unreachable for other users; the container images do the same)."""
    if _reachable_by_others(sys.executable):
        return sys.executable, {}
    system = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if not os.path.exists(system):
        raise RuntimeError(f"{sys.executable} is not reachable by other users and {system} is missing")
    return system, {"PYTHONPATH": os.pathsep.join([str(ROOT), *venv_site_packages()]),
                    "PYTHONDONTWRITEBYTECODE": "1"}


def venv_site_packages() -> list[str]:
    """The running .venv's site-packages folders: with the checkout, the PYTHONPATH that lets
    another python3 of the same minor version (the system's, an image's) run this checkout
    with these dependency versions."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})
