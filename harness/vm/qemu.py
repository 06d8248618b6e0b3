"""Booting the guest under QEMU: the command line, the KVM probe, a time limit, the
console log.

The guest's serial console goes to a file that a thread follows: each line is echoed
(when asked) and the lines the guest scripts print as progress marks
(``sockspec-guest: ...``, ``sockspec-init: ...``) are timestamped, which gives the boot
timings.  QEMU runs in its own session with PR_SET_PDEATHSIG, so it dies with the process
that started it; a guest that outlives its time limit is killed, and so is one left
running by Ctrl-C.

KVM is used when it works: ``/dev/kvm`` exists on machines whose KVM cannot run a stock
kernel (it hangs or stops with "KVM internal error"), so a short boot of the same kernel
under KVM, with a time limit, decides; its answer is kept for the host's boot
(/proc/sys/kernel/random/boot_id).  Otherwise TCG.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import debian
from harness.vm import cache_dir, digest
from harness.vm.guest_kernel import GuestKernel

QEMU = "qemu-system-x86_64"
MARK = re.compile(r"sockspec-(?:guest|init): (.*)")
PROBE_TIMEOUT = 10.0     # a working KVM reaches the initramfs in about 1 s, TCG in 3-4 s
PR_SET_PDEATHSIG = 1


@dataclass
class Share:
    tag: str
    path: Path
    readonly: bool


@dataclass
class Boot:
    """What one boot did: QEMU's exit status, whether it was killed, the console, and
    when (seconds after QEMU started) each progress mark appeared."""
    returncode: int | None
    killed: str | None
    console: Path
    wall_s: float
    marks: list[tuple[float, str]] = field(default_factory=list)
    cpu_s: float | None = None      # QEMU's CPU time (user + system), steadier than wall time

    def mark(self, prefix: str) -> float | None:
        return next((t for t, text in self.marks if text.startswith(prefix)), None)

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])


def ensure_installed() -> None:
    debian.ensure("qemu-system-x86")


def host_khz() -> int | None:
    """The host TSC frequency in kHz, for the guest's tsc_early_khz (microvm under TCG
    otherwise sometimes hangs calibrating its clock)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    except OSError:
        pass
    return None


def kernel_cmdline(kernel: GuestKernel, extra: list[str]) -> str:
    args = ["console=ttyS0", "quiet", "panic=-1", "security=selinux", "selinux=1",
            "rdinit=/init"]
    if kernel.machine == "microvm":
        khz = host_khz()
        if khz:
            args += [f"tsc_early_khz={khz}", "tsc=reliable"]
    return " ".join(args + os.environ.get("SOCKSPEC_VM_APPEND", "").split() + extra)


def command(kernel: GuestKernel, initrd: Path, accel: str, cmdline: str, console: Path,
            shares: list[Share], memory_mb: int = 1024, cpus: int = 1) -> list[str]:
    """QEMU's command line.  One vCPU unless asked: under TCG a second one made a serial
    run about 15% slower (cross-CPU TLB and translation-cache upkeep)."""
    microvm = kernel.machine == "microvm"
    cmd = [QEMU, "-M", "microvm" if microvm else "pc", "-accel", accel,
           "-cpu", "max", "-m", str(memory_mb), "-smp", str(cpus),
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
           "-chardev", f"file,id=con,path={console}", "-serial", "chardev:con",
           "-kernel", str(kernel.image), "-initrd", str(initrd), "-append", cmdline]
    device = "virtio-9p-device" if microvm else "virtio-9p-pci"
    for i, s in enumerate(shares):
        ro = ",readonly=on" if s.readonly else ""
        cmd += ["-fsdev", f"local,id=fs{i},path={s.path},security_model=none,multidevs=remap{ro}",
                "-device", f"{device},fsdev=fs{i},mount_tag={s.tag}"]
    return cmd


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def boot(cmd: list[str], console: Path, timeout: float, echo=None, until: str | None = None) -> Boot:
    """Run QEMU until it exits, ``timeout`` passes (killed) or, with ``until``, a mark
    starting with it appears (then QEMU is killed: it has told what was wanted)."""
    console.write_bytes(b"")
    marks: list[tuple[float, str]] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent)
    qemu_out: list[bytes] = []
    reader = threading.Thread(target=lambda: qemu_out.append(proc.stdout.read()), daemon=True)
    reader.start()
    killed = None
    try:
        with open(console, "rb") as f:
            pending = b""
            while True:
                chunk = f.read()
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        line = raw.decode(errors="replace").rstrip("\r")
                        m = MARK.search(line)
                        if m:
                            marks.append((time.monotonic() - start, m.group(1)))
                        if echo:
                            echo(line)
                    if until and any(text.startswith(until) for _, text in marks):
                        killed = "done"
                        break
                if proc.poll() is not None:
                    if not chunk:
                        break
                    continue
                if time.monotonic() - start > timeout:
                    killed = f"time limit of {timeout:.0f} s"
                    break
                time.sleep(0.02)
    except BaseException:
        killed = "interrupted"
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = b"".join(qemu_out).decode(errors="replace").strip()
    if out:
        with open(console, "a") as f:
            f.write(f"\n[qemu] {out}\n")
    return Boot(proc.returncode, killed, console, time.monotonic() - start, marks, round(cpu, 2))


def choose_accel(kernel: GuestKernel, initrd: Path, workdir: Path) -> tuple[str, str]:
    """("kvm" or "tcg", why).  KVM when /dev/kvm is usable and a probe boot of this kernel
    reaches the initramfs under it within PROBE_TIMEOUT seconds."""
    forced = os.environ.get("SOCKSPEC_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, "SOCKSPEC_VM_ACCEL"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    memo = cache_dir() / "kvm-probe" / f"{boot_id}-{digest(kernel.image.name, str(kernel.image.stat().st_size))}.json"
    if memo.exists():
        found = json.loads(memo.read_text())
        return found["accel"], found["why"] + " (probed earlier in this host boot)"
    cmdline = kernel_cmdline(kernel, ["sockspec_probe=1"])
    console = workdir / "kvm-probe.log"
    t = time.monotonic()
    result = boot(command(kernel, initrd, "kvm", cmdline, console, []), console,
                  PROBE_TIMEOUT, until="probe ok")
    took = time.monotonic() - t
    if result.mark("probe ok") is not None:
        accel, why = "kvm", f"KVM probe booted in {took:.1f} s"
    else:
        tail = result.console_tail(3).replace("\n", " | ")
        accel, why = "tcg", (f"KVM probe failed ({result.killed or f'exit {result.returncode}'} "
                             f"after {took:.1f} s: {tail[-200:]})")
    console.unlink(missing_ok=True)
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"accel": accel, "why": why}))
    return accel, why


def shell_line(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
