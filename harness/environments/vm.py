"""The VM environment: a kernel booted under QEMU with SELinux enforcing, running a
selection of the suites inside it (issue 4).

``prepare()`` gets everything the boot needs, each cached by content (a second run builds
nothing): the kernel (:mod:`harness.vm.guest_kernel`: Debian's linux-image for this
release, or ``--kernel PATH``), the initramfs (:mod:`harness.vm.initramfs`), the SELinux
policy compiled from ``harness/vm/policy/*.cil`` (:mod:`harness.vm.policy`), and the
accelerator (:func:`harness.vm.qemu.choose_accel`: KVM if a probe boot works, else TCG).

``run()`` boots once per run.  The guest mounts the host's root read-only over 9p under a
tmpfs overlay (the project, its .venv and the host's programs run unchanged; what the
guest writes stays in the guest) -- or, with ``image="selinux"`` (a name in
``containers/images.toml``), that image's exported file system (:mod:`harness.vm.rootfs`)
with the checkout, the man pages, the .venv's site-packages, the kernel's modules and the
policy mounted read-only at their host paths, the suites then run by the image's python3
with the .venv's packages on PYTHONPATH, as in a container -- and a private read-write share for its results; loads the policy and enforces it; switches to the policy's test context;
runs ``python -m harness.cli run`` on the selection with the SOCKSPEC_ENVIRONMENT*
variables set; powers off.  The results.json (and index.html) it wrote are moved into
``out_dir``.  A guest that outlives the time limit is killed, and a boot that fails says
why with the tail of the console log.  Nothing is left behind: no QEMU process (it dies
with its parent), no temporary folder, no mount (the mounts are the guest's).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from harness import catalogue, debian
from harness import images
from harness.environments import ROOT, Environment, Selection, venv_site_packages
from harness.vm import HERE, guest_kernel, initramfs, policy, qemu, rootfs

DEFAULT_TIMEOUT = 900.0
GUEST_SCRIPT = HERE / "guest.sh"


class VMError(RuntimeError):
    """The VM could not be prepared, booted, or did not bring results back."""


def default_selection(jobs: str | None = None, timeout: float | None = None) -> Selection:
    """What the VM runs by default: every clause that needs it (catalogue.vm_clause_ids)."""
    return Selection(clauses=catalogue.vm_clause_ids(), jobs=jobs, timeout=timeout)


def needing_vm(pages: list[str], clauses: list[str]) -> list[str]:
    """The clauses of a host run's selection (pages or suites, clause ids or prefixes;
    nothing = everything) that need the VM."""
    known = catalogue.load_all()
    wanted_pages = {known[p].name if p in known else p for p in pages}
    out = []
    for cid in catalogue.vm_clause_ids():
        page = known[cid.split("/")[0]]
        if pages and page.name not in wanted_pages and page.suite not in wanted_pages:
            continue
        if clauses and not catalogue.selected(cid, clauses):
            continue
        out.append(cid)
    return out


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM unwinds like Ctrl-C (so the VM is killed and the temporary folder removed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _remove_orphans() -> None:
    """Remove the work folders of VM runs whose process was killed outright (SIGKILL: no
    chance to clean up; QEMU itself died with it).  Each is named after its run's pid."""
    for path in Path(tempfile.gettempdir()).glob("sockspec-vm-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _precompile() -> None:
    """Write the project's bytecode (and pytest's rewritten test modules) on the host.  The
    guest sees the checkout read-only and compiling there costs CPU that TCG makes 20-50
    times dearer; with the .pyc files in place (checked by mtime and size) it compiles
    nothing.  Up to date files are left alone, so this is quick after the first run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", "harness", "reports", "suites",
                    "conftest.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
    subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                    "suites"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


class VMEnvironment(Environment):
    """A kernel under QEMU, SELinux enforcing with sockspec's policy."""

    kind = "vm"

    def __init__(self, name: str | None = None, kernel: Path | None = None, *,
                 load_policy: bool = True, enforce: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, echo=None, scope: str = "all",
                 image: str | None = None, **details):
        """``scope``: "all" runs the selection as given; "needs-vm" narrows it to the
        clauses that need the VM (a matrix column beside host runs of the same selection).
        ``image``: boot with that container image (containers/images.toml) as the root
        instead of the host's."""
        if scope not in ("all", "needs-vm"):
            raise ValueError(f"unknown VM scope {scope!r}: all or needs-vm")
        super().__init__(name or "vm", **details)
        self.scope = scope
        if image is not None and image not in images.recipes():
            raise ValueError(f"unknown image {image!r}; known: {', '.join(images.recipes())}")
        self.image = image
        self.rootfs: rootfs.Rootfs | None = None
        self.kernel_path = Path(kernel) if kernel else None
        self.load_policy = load_policy
        self.enforce = enforce
        self.timeout = timeout
        self.echo = echo
        self.kernel: guest_kernel.GuestKernel | None = None
        self.initrd: Path | None = None
        self.policy: policy.Policy | None = None
        self.accel: str | None = None
        self.last_boot: qemu.Boot | None = None
        self.timings: dict[str, float] = {}

    def prepare(self) -> None:
        t = time.monotonic()
        if not GUEST_SCRIPT.exists() or any(c.isspace() for c in str(GUEST_SCRIPT)):
            raise VMError(f"the guest script's path {GUEST_SCRIPT} must exist and hold no white space "
                          "(it goes on the kernel command line)")
        qemu.ensure_installed()
        if self.image:
            images.check_python()
            self.rootfs = rootfs.export(self.image)
            self.timings["export_s"] = self.rootfs.export_s
        else:
            debian.ensure("netlabel-tools", "iproute2")    # run from the host root by the guest's fixtures
        self.kernel = (guest_kernel.from_path(self.kernel_path) if self.kernel_path
                       else guest_kernel.default())
        self.initrd = initramfs.build(self.kernel.modules)
        _precompile()
        self.policy = policy.build()
        with tempfile.TemporaryDirectory(prefix=f"sockspec-vm-{os.getpid()}-") as tmp:
            self.accel, why = qemu.choose_accel(self.kernel, self.initrd, Path(tmp))
        if self.name == "vm":
            major_minor = ".".join(self.kernel.release.split("-")[0].split(".")[:2])
            self.name = (f"vm-debian-{major_minor}" if self.kernel_path is None
                         else f"vm-{self.kernel.release}") + (f"-{self.image}" if self.image else "")
        self.details.update(self.kernel.describe())
        if self.rootfs:
            self.details.update(self.rootfs.describe())
        self.details.update(accel=self.accel, accel_reason=why)
        if self.load_policy:
            self.details.update(self.policy.describe(), selinux="enforcing" if self.enforce else "permissive")
        else:
            self.details.update(policy=None, selinux="no policy loaded")
        self.timings["prepare_s"] = round(time.monotonic() - t, 2)

    def host_paths(self) -> list[Path]:
        """With an image root: what the run needs from the host, mounted read-only at the
        same paths in the guest (one 9p share each, stage 1 mounts them in this order)."""
        if not self.image:
            return []
        k = self.kernel
        paths = [ROOT, catalogue.MANPAGES, *map(Path, venv_site_packages())]
        paths += [p for p in (k.modules, k.config.parent if k.config else None) if p]
        if self.load_policy:
            paths.append(self.policy.binary.parent)
        out = rootfs.host_paths(paths)
        spaced = [str(p) for p in out if any(c.isspace() or c in ",:" for c in str(p))]
        if spaced:
            raise VMError(f"these paths go on the kernel command line and must hold no white space, "
                          f"comma or colon: {', '.join(spaced)}")
        return out

    def shares(self, out_share: Path) -> list[qemu.Share]:
        root = self.rootfs.path if self.image else Path("/")
        extra = [qemu.Share(f"sockspec_m{i}", p, True) for i, p in enumerate(self.host_paths())]
        return [qemu.Share("sockspec_root", root, True), qemu.Share("sockspec_out", out_share, False), *extra]

    def cmdline(self) -> str:
        extra = [f"sockspec_guest={GUEST_SCRIPT}"]
        mounts = [f"sockspec_m{i}:{p}" for i, p in enumerate(self.host_paths())]
        if mounts:
            extra.append("sockspec_mounts=" + ",".join(mounts))
        return qemu.kernel_cmdline(self.kernel, extra)

    def _job(self, selection: Selection) -> str:
        """job.env: what the guest script sources (shell, every value quoted)."""
        q = shlex.quote
        k = self.kernel
        lines = [
            f"SOCKSPEC_ROOT={q(str(ROOT))}",
            f"SOCKSPEC_KERNEL_MODULES={q(str(k.modules) if k.modules else '')}",
            f"SOCKSPEC_KERNEL_CONFIG={q(str(k.config) if k.config else '')}",
            f"SOCKSPEC_POLICY={q(str(self.policy.binary) if self.load_policy else '')}",
            f"SOCKSPEC_ENFORCE={1 if self.enforce else 0}",
            f"SOCKSPEC_CONTEXT={q(self.policy.context if self.load_policy else '')}",
            "export PYTHONDONTWRITEBYTECODE=1",     # the .pyc files come from the host (_precompile)
        ]
        if not selection.jobs:      # no xdist: skip importing the plugins pytest would autoload
            lines.append("export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1")
        lines += [f"export {k_}={q(v)}" for k_, v in self.env_vars().items()]
        python = sys.executable
        if self.image:              # the image's python3 with the .venv's packages, as a container
            python = "python3"
            lines.append(f"export PYTHONPATH={q(os.pathsep.join([str(ROOT), *venv_site_packages()]))}")
            lines.append("export HOME=/tmp")
        cli = [python, "-m", "harness.cli", "run", "--out", "/run/sockspec/out",
               *selection.cli_args()]
        if "--" not in cli:
            cli.append("--")
        cli += ["-p", "harness.vm.progress"]
        lines.append("set -- " + qemu.shell_line(cli))
        return "\n".join(lines) + "\n"

    def run(self, selection: Selection, out_dir: Path) -> Path:
        with _terminate_as_interrupt():
            return self._run(selection, out_dir)

    def _run(self, selection: Selection, out_dir: Path) -> Path:
        if self.scope == "needs-vm":
            selection = Selection(clauses=needing_vm(selection.pages, selection.clauses),
                                  jobs=selection.jobs, timeout=selection.timeout,
                                  pytest_args=selection.pytest_args)
            if not selection.clauses:
                raise VMError("no clause of this selection needs the VM")
        if self.kernel is None:
            self.prepare()
        self.details["cmdline"] = self.cmdline()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = out_dir / "results.json"
        results.unlink(missing_ok=True)
        _remove_orphans()
        work = Path(tempfile.mkdtemp(prefix=f"sockspec-vm-{os.getpid()}-"))
        try:
            share = work / "share"
            (share / "out").mkdir(parents=True)
            (share / "job.env").write_text(self._job(selection))
            console = work / "console.log"
            cmd = qemu.command(self.kernel, self.initrd, self.accel, self.cmdline(), console,
                               self.shares(share), cpus=2 if selection.jobs else 1)
            boot = qemu.boot(cmd, console, self.timeout, echo=self.echo)
            self.last_boot = boot
            self._timings(boot)
            (out_dir / "console.log").write_text(console.read_text(errors="replace"))
            status = (share / "status").read_text().strip() if (share / "status").exists() else None
            produced = share / "out" / "results.json"
            if not produced.exists():
                why = (f"killed after the {boot.killed}" if boot.killed
                       else f"QEMU exited with status {boot.returncode}")
                detail = f"guest status {status!r}" if status else "the guest wrote no status"
                raise VMError(f"the VM brought no results back ({why}; {detail}). "
                              f"Console log ({out_dir / 'console.log'}), last lines:\n"
                              f"{boot.console_tail()}")
            for name in ("results.json", "index.html"):
                if (share / "out" / name).exists():
                    shutil.move(share / "out" / name, out_dir / name)
            return results
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _timings(self, boot: qemu.Boot) -> None:
        t = self.timings
        t["wall_s"] = round(boot.wall_s, 2)
        t["qemu_cpu_s"] = boot.cpu_s
        for key, prefix in (("kernel_to_stage2_s", "stage 2 started"), ("policy_loaded_s", "policy loaded"),
                            ("job_started_s", "job started"), ("pytest_started_s", "pytest started"),
                            ("collected_s", "collected"), ("boot_to_first_test_s", "first test"),
                            ("tests_finished_s", "tests finished"), ("job_finished_s", "job finished")):
            v = boot.mark(prefix)
            if v is not None:
                t[key] = round(v, 2)


def main(args, extra: list[str]) -> int:
    """``./sockspec vm`` and ``./sockspec run --vm`` (see harness.cli)."""
    from reports import html

    standalone = args.command == "vm"
    if standalone and (args.page or args.clause):
        selection = Selection(pages=args.page, clauses=args.clause, jobs=args.jobs,
                              timeout=args.timeout, pytest_args=extra)
    elif standalone:
        selection = default_selection(args.jobs, args.timeout)
        selection.pytest_args = extra
    else:
        selection = Selection(clauses=needing_vm(args.page, args.clause), timeout=args.timeout)
        if not selection.clauses:
            print("sockspec: no clause of this selection needs the VM; not booting it")
            return 0
    out = Path(args.out) if standalone else Path(args.out) / "vm"
    env = VMEnvironment(kernel=Path(args.kernel) if args.kernel else None,
                        image=getattr(args, "image", None),
                        load_policy=not getattr(args, "no_policy", False),
                        enforce=not getattr(args, "permissive", False),
                        timeout=args.vm_timeout or DEFAULT_TIMEOUT,
                        echo=lambda line: print(f"vm| {line}", flush=True))
    try:
        env.prepare()
        print(f"sockspec: VM {env.name}: kernel {env.kernel.release} ({env.kernel.source}), "
              f"{env.kernel.machine}, {env.accel} ({env.details['accel_reason']}), "
              f"SELinux {env.details['selinux']}"
              + (f", root: image {env.rootfs.tag}" if env.rootfs else "")
              + (f", policy {env.policy.name} {env.policy.hash}" if env.load_policy else ""), flush=True)
        path = env.run(selection, out)
    except (VMError, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"sockspec: the VM run broke: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sockspec: VM run interrupted; the VM was stopped", file=sys.stderr)
        return 130
    finally:
        env.teardown()
    doc = json.loads(path.read_text())
    if not (out / "index.html").exists():
        (out / "index.html").write_text(html.render(doc))
    e = doc["environment"]
    c = doc["summary"]["clauses"]
    print(f"sockspec: VM {e['name']} ({e['kernel_release']}, LSMs {','.join(e['lsms'])}): "
          f"{sum(c.values())} clauses: " + ", ".join(f"{n} {v}" for v, n in c.items()))
    print("sockspec: VM timings: " + ", ".join(f"{k} {v}" for k, v in env.timings.items()))
    print(f"sockspec: VM report {out / 'index.html'}, results {path}")
    host = Path(args.out) / "results.json"
    if not standalone and host.exists():      # run --vm: the host's and the VM's columns side by side
        both = Path(args.out) / "host-and-vm.html"
        both.write_text(html.render_matrix([json.loads(host.read_text()), doc]))
        print(f"sockspec: host and VM side by side: {both}")
    return 0
