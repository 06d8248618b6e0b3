"""The VM environment: a kernel booted under QEMU with SELinux enforcing, running a
selection of the suites inside it (issue 4).

``prepare()`` gets everything the boot needs, each cached by content (a second run builds
nothing): the kernel (:mod:`harness.vm.guest_kernel`: Debian's linux-image for this
release, or ``--kernel PATH``), the initramfs (:mod:`harness.vm.initramfs`), the SELinux
policy compiled from ``harness/vm/policy/*.cil`` (:mod:`harness.vm.policy`), and the
accelerator (:func:`harness.vm.qemu.choose_accel`: KVM if a probe boot works, else TCG).

``run()`` boots once per run.  The guest mounts the host's root read-only over 9p (the
project, its .venv and the host's programs run unchanged) and a private read-write share
for its results; loads the policy and enforces it; switches to the policy's test context;
runs ``python -m harness.cli run`` on the selection with the SOCKSPEC_ENVIRONMENT*
variables set; powers off.  The results.json (and index.html) it wrote are moved into
``out_dir``.  A guest that outlives the time limit is killed, and a boot that fails says
why with the tail of the console log.  Nothing is left behind: no QEMU process (it dies
with its parent), no temporary folder, no mount (the mounts are the guest's).
"""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import catalogue
from harness.environments import ROOT, Environment, Selection
from harness.vm import HERE, guest_kernel, initramfs, policy, qemu

DEFAULT_TIMEOUT = 900.0
GUEST_SCRIPT = HERE / "guest.sh"


class VMError(RuntimeError):
    """The VM could not be prepared, booted, or did not bring results back."""


def default_selection(jobs: str | None = None, timeout: float | None = None) -> Selection:
    """What the VM runs by default: every clause that needs it (catalogue.vm_clause_ids)."""
    return Selection(clauses=catalogue.vm_clause_ids(), jobs=jobs, timeout=timeout)


class VMEnvironment(Environment):
    """A kernel under QEMU, SELinux enforcing with sockspec's policy."""

    kind = "vm"

    def __init__(self, name: str | None = None, kernel: Path | None = None, *,
                 load_policy: bool = True, enforce: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, echo=None, **details):
        super().__init__(name or "vm", **details)
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
        self.kernel = (guest_kernel.from_path(self.kernel_path) if self.kernel_path
                       else guest_kernel.default())
        self.initrd = initramfs.build(self.kernel.modules)
        self.policy = policy.build()
        with tempfile.TemporaryDirectory(prefix="sockspec-vm-") as tmp:
            self.accel, why = qemu.choose_accel(self.kernel, self.initrd, Path(tmp))
        if self.name == "vm":
            major_minor = ".".join(self.kernel.release.split("-")[0].split(".")[:2])
            self.name = (f"vm-debian-{major_minor}" if self.kernel_path is None
                         else f"vm-{self.kernel.release}")
        self.details.update(self.kernel.describe())
        self.details.update(accel=self.accel, accel_reason=why)
        if self.load_policy:
            self.details.update(self.policy.describe(), selinux="enforcing" if self.enforce else "permissive")
        else:
            self.details.update(policy=None, selinux="no policy loaded")
        self.timings["prepare_s"] = round(time.monotonic() - t, 2)

    def cmdline(self) -> str:
        return qemu.kernel_cmdline(self.kernel, [f"sockspec_guest={GUEST_SCRIPT}"])

    def _job(self, selection: Selection) -> str:
        """job.env: what the guest script sources (shell, every value quoted)."""
        q = shlex.quote
        k = self.kernel
        tree = k.modules.parent.parent.parent if k.modules else None
        lines = [
            f"SOCKSPEC_ROOT={q(str(ROOT))}",
            f"SOCKSPEC_KERNEL_TREE={q(str(tree) if tree else '')}",
            f"SOCKSPEC_KERNEL_BOOT={q(str(k.config.parent) if k.config else '')}",
            f"SOCKSPEC_POLICY={q(str(self.policy.binary) if self.load_policy else '')}",
            f"SOCKSPEC_ENFORCE={1 if self.enforce else 0}",
            f"SOCKSPEC_CONTEXT={q(self.policy.context if self.load_policy else '')}",
            "export PYTHONDONTWRITEBYTECODE=1",
        ]
        lines += [f"export {k_}={q(v)}" for k_, v in self.env_vars().items()]
        cli = [sys.executable, "-m", "harness.cli", "run", "--out", "/run/sockspec/out",
               *selection.cli_args()]
        if "--" not in cli:
            cli.append("--")
        cli += ["-p", "harness.vm.progress"]
        lines.append("set -- " + qemu.shell_line(cli))
        return "\n".join(lines) + "\n"

    def run(self, selection: Selection, out_dir: Path) -> Path:
        if self.kernel is None:
            self.prepare()
        self.details["cmdline"] = self.cmdline()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = out_dir / "results.json"
        results.unlink(missing_ok=True)
        work = Path(tempfile.mkdtemp(prefix="sockspec-vm-"))
        try:
            share = work / "share"
            (share / "out").mkdir(parents=True)
            (share / "job.env").write_text(self._job(selection))
            console = work / "console.log"
            cmd = qemu.command(self.kernel, self.initrd, self.accel, self.cmdline(), console,
                               [qemu.Share("sockspec_root", Path("/"), True),
                                qemu.Share("sockspec_out", share, False)])
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
        for key, prefix in (("kernel_to_stage2_s", "stage 2 started"), ("policy_loaded_s", "policy loaded"),
                            ("job_started_s", "job started"), ("boot_to_first_test_s", "first test"),
                            ("job_finished_s", "job finished")):
            v = boot.mark(prefix)
            if v is not None:
                t[key] = round(v, 2)
