"""The Docker engine the container environments run on.

    with docker_engine.Engine() as engine:      # installs docker.io, starts dockerd if none runs
        ...                                     # python-on-whales' ``docker`` talks to it
    # stopped again, and what it left on the host removed -- only if we started it

Where a dockerd already answers on /var/run/docker.sock it is used as it is and left alone.
Otherwise Debian's ``docker.io`` is installed (harness.debian) and ``dockerd`` is started with
its default flags, in its own session (a Ctrl-C at the terminal reaches us, not it).  On
:meth:`Engine.stop` -- also after a failure or a Ctrl-C, as the ``with`` block's exit -- the
containers labelled ``sockspec`` are removed, dockerd is stopped with SIGTERM (it stops its
containerd), and what a stopped dockerd leaves on the host is put back as it was found
(machine.md): the docker0 bridge, the iptables chains, rules and FORWARD policy (nf_tables
tables that did not exist before are deleted whole), ip_forward.  Images stay in
/var/lib/docker: they are the build cache of ``containers/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness import debian, procs

SOCKET = "/var/run/docker.sock"
EXEC_ROOT = Path("/var/run/docker")  # dockerd's runtime state (containerd, netns, plugins)
LABEL = "sockspec"                  # every container the project starts carries this label
BRIDGE = "docker0"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
NFPROTO = {"ip": 2, "ip6": 10}      # iptables-nft keeps its tables in these nf_tables families


def ping(path: str = SOCKET, timeout: float = 1.0) -> bool:
    """Whether a Docker engine answers on ``path`` (GET /_ping)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        return reply.startswith(b"HTTP/1.") and reply.rstrip().endswith(b"OK")
    except OSError:
        return False


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _iptables_save(cmd: str) -> str:
    if not shutil.which(cmd):
        return ""
    r = subprocess.run([cmd], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def _parse_save(text: str) -> dict[str, dict]:
    """iptables-save text -> {table: {"chains": {name: policy}, "rules": [rule args]}}."""
    tables: dict[str, dict] = {}
    cur = None
    for line in text.splitlines():
        if line.startswith("*"):
            cur = tables.setdefault(line[1:], {"chains": {}, "rules": []})
        elif cur is not None and line.startswith(":"):
            name, policy = line[1:].split()[:2]
            cur["chains"][name] = policy
        elif cur is not None and line.startswith("-A "):
            cur["rules"].append(line[3:])
    return tables


def _nft_tables() -> set[tuple[str, str]]:
    """(family, name) of the nf_tables tables that iptables-nft uses, as they are now."""
    from pyroute2.nftables.main import NFTables

    fam = {v: k for k, v in NFPROTO.items()}
    with NFTables() as nft:
        return {(fam[t["nfgen_family"]], t.get_attr("NFTA_TABLE_NAME"))
                for t in nft.get_tables() if t["nfgen_family"] in fam}


def _nft_delete_table(family: str, name: str) -> None:
    from pyroute2.netlink import NETLINK_NETFILTER
    from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES
    from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_DELTABLE, nft_table_msg

    from harness.topology import _Netlink

    msg = nft_table_msg()
    msg["nfgen_family"] = NFPROTO[family]
    msg["attrs"] = [("NFTA_TABLE_NAME", name)]
    nl = _Netlink(NETLINK_NETFILTER)
    try:
        nl.batch([(msg, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELTABLE, 0)], NFNL_SUBSYS_NFTABLES,
                 what=f"delete nf_tables table {family} {name}")
    finally:
        nl.sock.close()


class Engine:
    """A running Docker engine for the duration of a ``with`` block (see the module doc)."""

    def __init__(self, start_timeout: float = 60.0, stop_timeout: float = 30.0):
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.started = False          # True only when this object started dockerd
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None
        self._before: dict | None = None

    # ------------------------------------------------------------------ start

    def start(self) -> "Engine":
        if self.started or ping():
            return self
        debian.ensure("docker.io")
        if ping():   # the package's own service start (where policy-rc.d allows it)
            return self
        self._before = {"links": _links(), "exec_root": EXEC_ROOT.exists(), "ip_forward": IP_FORWARD.read_text(),
                        "iptables": _iptables_save("iptables-save"),
                        "ip6tables": _iptables_save("ip6tables-save"), "nft": _nft_tables()}
        fd, self.log_path = tempfile.mkstemp(prefix="sockspec-dockerd-", suffix=".log")
        self.proc = subprocess.Popen(["dockerd"], stdout=fd, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        os.close(fd)
        self.started = True
        deadline = time.monotonic() + self.start_timeout
        while not ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = Path(self.log_path).read_text()[-3000:]
                self.stop()
                raise RuntimeError(f"dockerd did not come up; its log ends:\n{log}")
            time.sleep(0.1)
        print(f"sockspec: started dockerd (pid {self.proc.pid}); it is stopped afterwards",
              flush=True)
        return self

    # ------------------------------------------------------------------ stop

    def remove_containers(self) -> None:
        """Remove every container the project started (label ``sockspec``), running or not."""
        if not ping():
            return
        from python_on_whales import docker

        ids = docker.container.list(all=True, filters=[("label", LABEL)])
        if ids:
            docker.container.remove(ids, force=True, volumes=True)

    def stop(self) -> None:
        """Stop dockerd and put the host back as it was, if (and only if) we started it.
        Idempotent; a second Ctrl-C during it is held off until it is done."""
        if not self.started:
            return
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            try:
                self.remove_containers()
            except Exception as exc:  # noqa: BLE001 - stopping must go on
                print(f"sockspec: removing containers failed: {exc}", flush=True)
            if self.proc is not None and self.proc.poll() is None:
                helpers = procs.descendants(self.proc.pid) + _managed_helpers()
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
                _wait_gone(helpers + _managed_helpers(), 10.0)   # a shim outlives dockerd briefly
            self._restore_host()
            if self.log_path:
                os.unlink(self.log_path)
                self.log_path = None
            self.started = False
        finally:
            signal.signal(signal.SIGINT, old)

    def _restore_host(self) -> None:
        before = self._before
        if before is None:
            return
        if BRIDGE in _links() and BRIDGE not in before["links"]:
            subprocess.run(["ip", "link", "delete", BRIDGE], check=False)
        self._restore_iptables("iptables", before["iptables"], "ip", before["nft"])
        self._restore_iptables("ip6tables", before["ip6tables"], "ip6", before["nft"])
        if not before["exec_root"] and EXEC_ROOT.exists():
            mounts = Path("/proc/self/mounts").read_text()
            if f" {EXEC_ROOT}/" not in mounts and f" {EXEC_ROOT.resolve()}/" not in mounts:
                shutil.rmtree(EXEC_ROOT, ignore_errors=True)
        if IP_FORWARD.read_text() != before["ip_forward"]:
            IP_FORWARD.write_text(before["ip_forward"])   # also resets conf/*/forwarding

    def _restore_iptables(self, cmd: str, before_text: str, family: str, nft_before) -> None:
        """Undo what dockerd added: tables that did not exist are deleted whole; in tables
        that did, its rules and chains are deleted and changed policies put back."""
        after = _parse_save(_iptables_save(f"{cmd}-save"))
        before = _parse_save(before_text)
        for table, now in after.items():
            if (family, table) not in nft_before and table not in before:
                _nft_delete_table(family, table)
                continue
            was = before.get(table, {"chains": {}, "rules": []})
            for rule in reversed([r for r in now["rules"] if r not in was["rules"]]):
                subprocess.run([cmd, "-t", table, "-D", *_split(rule)], check=False)
            for chain in now["chains"]:
                if chain not in was["chains"]:
                    subprocess.run([cmd, "-t", table, "-F", chain], check=False)
            for chain in now["chains"]:
                if chain not in was["chains"]:
                    subprocess.run([cmd, "-t", table, "-X", chain], check=False)
                elif now["chains"][chain] != was["chains"][chain] and was["chains"][chain] != "-":
                    subprocess.run([cmd, "-t", table, "-P", chain, was["chains"][chain]], check=False)

    # ------------------------------------------------------------------ context

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _managed_helpers() -> list[int]:
    """The containerd and containerd-shim processes of a dockerd-managed containerd (their
    command lines name its socket under the exec root); shims are re-parented away from it."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and b"containerd" in os.path.basename(args[0]) and any(
                str(EXEC_ROOT).encode() in a for a in args):
            out.append(int(cmdline.parent.name))
    return out


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for ``pids`` to exit; what is still there after ``timeout`` is killed."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if procs.alive(p)]
        if not alive:
            return
        if time.monotonic() > deadline:
            for p in alive:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            pids = alive
        time.sleep(0.05)


def _split(rule: str) -> list[str]:
    """iptables-save's rule text as arguments (it quotes only comments and strings)."""
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rule)]


def leftovers() -> dict:
    """What a stopped engine must not leave behind (for the self-tests): a live dockerd,
    containerd or shim process, the bridge, iptables chains named DOCKER*, ip_forward."""
    procs = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
            if (comm.parent / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue        # exited; its re-parenting reaper (pid 1) has not collected it yet
        except (OSError, IndexError):
            continue
        if name in ("dockerd", "containerd") or name.startswith("containerd-shim"):
            procs.append(f"{comm.parent.name}:{name}")
    chains = [line for cmd in ("iptables-save", "ip6tables-save")
              for line in _iptables_save(cmd).splitlines() if "DOCKER" in line]
    return {"processes": procs, "bridge": BRIDGE in _links(), "docker_chains": chains,
            "ip_forward": IP_FORWARD.read_text().strip()}
