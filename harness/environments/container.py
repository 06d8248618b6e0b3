"""The container environment: the suites run inside a Docker container, in a variant.

The checkout is bind-mounted read-only at its own path (with the man pages beside it),
and the image's python3 -- Debian 12's 3.11, the .venv's minor version -- runs it with the
.venv's site-packages on PYTHONPATH, so the container runs exactly this tree and these
dependency versions.  Results go to a bind-mounted output folder, owned for the run by the
uid the container writes as and handed back to the caller afterwards.  The run is
``python3 -m harness.cli run`` like every environment's, under ``timeout``.

Variants (``VARIANTS``; a matrix entry may also set the fields itself):

    full          every capability in the host's bounding set, seccomp and /proc paths
                  unconfined: the working equivalent of --privileged (machine.md)
    default       what ``docker run`` gives: Docker's default capability set, its default
                  seccomp profile (refuses unshare without CAP_SYS_ADMIN), read-only /proc/sys
    default-caps  Docker's default capability set with seccomp unconfined, so the suite's
                  user-namespace isolation works and the capability set alone differs
    nocaps        root with every capability dropped (seccomp unconfined, as above)
    nonroot       uid/gid 1000, seccomp unconfined: the suite's non-root path in a container
    userns        as full, but the suite runs as root of a user namespace mapping 0..65535
                  to host 100000.. (harness.userns, the shape of Docker's userns-remap; see
                  containers/README.md for why not the daemon option)

Details that reach results.json: image, image_tag, variant, caps, seccomp, systempaths,
user, userns.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness import catalogue, images, privileges
from harness.docker_engine import LABEL
from harness.environments import ROOT, Environment, Selection, venv_site_packages

DOCKER_DEFAULT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                       "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                       "AUDIT_WRITE"]

VARIANTS: dict[str, dict] = {
    "full": {"caps": "all", "seccomp": "unconfined", "systempaths": "unconfined"},
    "default": {"caps": "default", "seccomp": "default"},
    "default-caps": {"caps": "default", "seccomp": "unconfined"},
    "nocaps": {"caps": "none", "seccomp": "unconfined"},
    "nonroot": {"caps": "default", "seccomp": "unconfined", "user": "1000:1000"},
    "userns": {"caps": "all", "seccomp": "unconfined", "systempaths": "unconfined",
               "userns": "0:100000:65536"},
}
OUT = "/sockspec-out"              # the results folder inside the container
DEFAULT_RUN_TIMEOUT = 900.0        # the whole suite in one container: ~15-25 s here


class ContainerEnvironment(Environment):
    kind = "container"

    def __init__(self, name: str, variant: str = "full", image: str = "plain",
                 run_timeout: float = DEFAULT_RUN_TIMEOUT, **details):
        if variant not in VARIANTS:
            raise ValueError(f"unknown container variant {variant!r}; known: {', '.join(VARIANTS)}")
        merged = {"variant": variant, "image": image, "seccomp": "default",
                  "systempaths": "default", **VARIANTS[variant], **details}
        super().__init__(name, **merged)
        self.run_timeout = run_timeout
        self.last_overhead: float | None = None

    # ------------------------------------------------------------------ options

    def _cap_options(self) -> dict:
        caps = self.details["caps"]
        if caps == "all":
            # --cap-add ALL fails where the host's bounding set lacks a capability (machine.md)
            missing = [c[4:] for c in privileges.CAPS if not privileges.in_bounding_set(c)]
            return {"cap_add": ["ALL"], "cap_drop": missing}
        if caps == "none":
            return {"cap_drop": ["ALL"]}
        if caps == "default":
            return {}
        return {"cap_drop": ["ALL"], "cap_add": list(caps)}     # an explicit list

    def _user(self) -> tuple[str | None, int | None]:
        """(docker --user, the host uid the container writes files as)."""
        user = self.details.get("user")
        if self.details.get("userns"):
            inside, outside, _ = (int(x) for x in self.details["userns"].split(":"))
            return user, outside + (int(user.split(":")[0]) if user else 0) - inside
        if user:
            return user, int(user.split(":")[0])
        return None, None

    def _mounts(self, out_dir: Path) -> list[tuple[str, str, str]]:
        mounts = [(str(ROOT), str(ROOT), "ro"), (str(catalogue.MANPAGES), str(catalogue.MANPAGES), "ro")]
        for lib in venv_site_packages():
            if not Path(lib).is_relative_to(ROOT):
                mounts.append((lib, lib, "ro"))
        mounts.append((str(out_dir), OUT, "rw"))
        return mounts

    def command(self, selection: Selection) -> list[str]:
        cmd = ["timeout", "--kill-after=10", str(int(self.run_timeout)),
               "python3", "-m", "harness.cli", "run", "--out", OUT, *selection.cli_args()]
        if self.details.get("userns"):
            cmd = ["python3", "-m", "harness.userns", "--map", self.details["userns"], "--", *cmd]
        return cmd

    # ------------------------------------------------------------------ Environment

    def prepare(self) -> None:
        images.check_python()
        self.details["image_tag"] = images.ensure(self.details["image"])

    def run(self, selection: Selection, out_dir: Path) -> Path:
        from python_on_whales import DockerException, docker

        if "image_tag" not in self.details:
            self.prepare()
        out_dir.mkdir(parents=True, exist_ok=True)
        results = out_dir / "results.json"
        results.unlink(missing_ok=True)
        user, host_uid = self._user()
        if host_uid is not None:
            os.chown(out_dir, host_uid, host_uid)
        env = {**self.env_vars(), "PYTHONPATH": os.pathsep.join([str(ROOT), *venv_site_packages()]),
               "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}
        if os.environ.get("SOCKSPEC_MANPAGES"):
            env["SOCKSPEC_MANPAGES"] = os.environ["SOCKSPEC_MANPAGES"]
        security = []
        if self.details.get("seccomp") == "unconfined":
            security.append("seccomp=unconfined")
        if self.details.get("systempaths") == "unconfined":
            security.append("systempaths=unconfined")
        log = (out_dir / "run.log").open("wb")
        self.return_code = 0
        try:
            stream = docker.run(
                self.details["image_tag"], self.command(selection), remove=True, pull="never",
                name=f"sockspec-{self.name}-{os.getpid()}", labels={LABEL: self.name},
                networks=["none"], user=user, workdir=str(ROOT), envs=env,
                volumes=self._mounts(out_dir), security_options=security,
                sysctl={"net.ipv4.ip_unprivileged_port_start": "1024"},
                stream=True, **self._cap_options())
            for _, chunk in stream:
                log.write(chunk)
        except DockerException as exc:   # non-zero exit; .stderr may be None (machine.md)
            self.return_code = exc.return_code
            log.write(f"\nsockspec: the container exited with status {exc.return_code}\n".encode())
        finally:
            log.close()
            if host_uid is not None:
                subprocess.run(["chown", "-R", f"{os.getuid()}:{os.getgid()}", str(out_dir)], check=False)
        return results
