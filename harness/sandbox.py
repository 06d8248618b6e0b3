"""The one sandbox: run a test body in a forked child, isolated, with a time limit.

The child gets its own process group, a fresh network namespace with loopback up, and its
own temporary working directory.  It reports back through a pipe as JSON: the outcome,
the message, expected vs observed for a deviation, and the values it observed.  When the
time limit passes, the child and everything in its process group are killed; after a
normal exit the group is killed too, so nothing a test started outlives it.  The working
directory is removed whatever happened.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import gc
import json
import os
import struct
import select
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from harness import expect, inject, netns, privileges

DEFAULT_TIMEOUT = 10.0


@dataclass
class Outcome:
    status: str                       # passed | failed | skipped | error | timeout | crashed
    message: str = ""
    expected: Any = None
    observed: Any = None
    clause: str | None = None         # the one clause a deviation names, if it names one
    values: dict = field(default_factory=dict)
    traceback: str = ""
    duration: float = 0.0

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    return repr(value)


def _close_inherited(keep: int) -> None:
    """Start the body with a clean descriptor table: only stdin, stdout, stderr and the
    result pipe.  What the pytest process holds (namespaces awaiting batch release, xdist's
    channels, fixtures' locks) is not the test's, and would count against the limits a
    test sets (RLIMIT_NOFILE) and shift the descriptor numbers it sees."""
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 20)


def _child(body: Callable[[], Any], wfd: int, workdir: str, ns_fd: int | None,
           faults: tuple[list[str], int] | None, unprivileged_ns: bool = False,
           keep_caps: frozenset = frozenset()) -> None:
    result: dict[str, Any]
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        expect.OBSERVED.clear()
        if ns_fd is not None:
            netns.enter(ns_fd)
            os.close(ns_fd)
        elif unprivileged_ns:
            netns.enter_fresh_unprivileged()
            # the body runs with what the caller had: nothing for a non-root user, the
            # container's set for a root without CAP_SYS_ADMIN (see _caller_caps)
            privileges.set_caps(keep_caps)
        _close_inherited(keep=wfd)
        os.chdir(workdir)
        if faults:
            inject.fail_syscalls(*faults)
        body()
        result = {"status": "passed"}
    except expect.Skip as exc:
        result = {"status": "skipped", "message": str(exc)}
    except expect.Deviation as exc:
        result = {"status": "failed", "message": str(exc), "expected": exc.expected,
                  "observed": exc.observed, "clause": exc.clause,
                  "traceback": traceback.format_exc()}
    except AssertionError as exc:
        result = {"status": "failed", "message": str(exc) or "assertion failed",
                  "traceback": traceback.format_exc()}
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        result = {"status": "error", "message": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
    result["values"] = dict(expect.OBSERVED)
    try:
        data = json.dumps(_jsonable(result)).encode()
        view = memoryview(_FRAME.pack(len(data)) + data)
        while view:
            view = view[os.write(wfd, view):]
    finally:
        os._exit(0)


_FRAME = struct.Struct("=I")


def _read_report(rfd: int, deadline: float) -> tuple[bytes, bool]:
    """Read the child's length-prefixed report; (data, timed_out).  Empty data means the
    child died without reporting.  The frame, not EOF, ends the report: a process the body
    left running may still hold the pipe open."""
    buf = b""
    want = _FRAME.size
    while len(buf) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", True
        ready, _, _ = select.select([rfd], [], [], left)
        if not ready:
            return b"", True
        chunk = os.read(rfd, 65536)
        if not chunk:
            return b"", False
        buf += chunk
        if want == _FRAME.size and len(buf) >= _FRAME.size:
            want += _FRAME.unpack_from(buf)[0]
    return buf[_FRAME.size:want], False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_unreaped: list[int] = []


def reap(block: bool = False) -> None:
    """Collect children that have reported and exited.  Reaping is deferred so that a
    child's exit (address space and namespace teardown) overlaps the parent's next work;
    the plugin calls ``reap(block=True)`` at the end of the session, which also lets go
    of the namespaces used so far."""
    if block:
        netns.POOL.close()
    for pid in list(_unreaped):
        try:
            done, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _unreaped.remove(pid)


def _caller_caps() -> frozenset:
    """What a test child in the user-namespace path keeps: the caller's capabilities, less
    CAP_SETUID and CAP_SETGID -- its namespace maps only the caller's uid and gid, so no
    other id can be switched to, and tests that check for them would try."""
    return frozenset(privileges.effective()) - {"CAP_SETUID", "CAP_SETGID"}


@functools.lru_cache(maxsize=None)
def shares_container_namespace() -> bool:
    """Inside a container that refuses new namespaces (Docker's default seccomp profile,
    or root without CAP_SETFCAP), the container's own network namespace is the test's:
    the container is thrown away after the run, so nothing of the host is at stake.  Test
    children then run one at a time (a lock), still forked, with their own working
    directory and time limit; what needs a namespace of its own (sysctls, hosts of
    ip(7)) skips with the reason."""
    from harness import kernel

    return kernel.environment_kind() == "container" and _probe_isolation() is not None


def isolation() -> str:
    """How test children are isolated here, for the environment block of results.json."""
    if netns.can_create():
        return "network namespace per test"
    if shares_container_namespace():
        return "the container's network namespace, one test at a time"
    if _probe_isolation() is None:
        return "user and network namespace per test"
    return "none: " + _probe_isolation()


def isolation_unavailable() -> str | None:
    """Why no test child can be isolated here, or None (see ``_probe_isolation``)."""
    if shares_container_namespace():
        return None
    return _probe_isolation()


@functools.lru_cache(maxsize=None)
def _probe_isolation() -> str | None:
    """Why no test child can be isolated here, or None.  A process without CAP_SYS_ADMIN
    isolates its test children in a user namespace; a seccomp profile (Docker's default
    refuses unshare without CAP_SYS_ADMIN), a missing CAP_SETFCAP (root mapping uid 0) or a
    sysctl can forbid that.  Probed once per process in a throw-away child, so that every
    test then skips with the reason instead of erroring."""
    if netns.can_create():
        return None
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        report = b""
        try:
            netns.enter_fresh_unprivileged()
        except OSError as exc:
            step = os.path.basename(exc.filename) if exc.filename else "unshare"
            report = f"{errno.errorcode.get(exc.errno, exc.errno)} {step}".encode()
        os.write(wfd, report)
        os._exit(0)
    os.close(wfd)
    try:
        got = os.read(rfd, 256).decode()
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    if not got:
        return None
    name, step = got.split(" ", 1)
    hint = _ISOLATION_HINTS.get((step, name), "")
    what = ("unshare(CLONE_NEWUSER|CLONE_NEWNET)" if step == "unshare"
            else f"writing /proc/self/{step} in the new user namespace")
    return (f"cannot isolate a test here: without CAP_SYS_ADMIN the test child enters a new "
            f"user and network namespace, and {what} failed with {name}{hint}")


_ISOLATION_HINTS = {
    ("unshare", "EPERM"): " (a seccomp profile, such as Docker's default, refuses unshare "
                          "without CAP_SYS_ADMIN)",
    ("uid_map", "EPERM"): " (mapping uid 0 into a user namespace needs CAP_SETFCAP since "
                          "Linux 5.12: root without it cannot)",
}


def run(body: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT, isolate_net: bool = True,
        faults: tuple[list[str], int] | None = None, tmp_root: str | None = None) -> Outcome:
    """Run ``body()`` in an isolated child and return what happened."""
    if netns.can_create() or not shares_container_namespace():
        return _run(body, timeout, isolate_net, faults, tmp_root)
    lock = os.open(os.path.join(tempfile.gettempdir(), "sockspec-shared-netns.lock"),
                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(lock, fcntl.LOCK_EX)       # one test child at a time (a record lock: not inherited by the child)
        return _run(body, timeout, False, faults, tmp_root)
    finally:
        os.close(lock)


def _run(body, timeout, isolate_net, faults, tmp_root) -> Outcome:
    workdir = tempfile.mkdtemp(prefix="sockspec-", dir=tmp_root)
    os.chmod(workdir, 0o755)
    privileged = netns.can_create()
    ns_fd = netns.POOL.take() if isolate_net and privileged else None
    keep_caps = frozenset() if privileged else _caller_caps()
    start = time.monotonic()
    rfd, wfd = os.pipe()
    gc.freeze()  # objects that exist now are not touched by the child's collector
    pid = os.fork()
    if pid == 0:  # child
        os.close(rfd)
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        _child(body, wfd, workdir, ns_fd, faults, unprivileged_ns=isolate_net and not privileged,
               keep_caps=keep_caps)
    os.close(wfd)
    if ns_fd is not None:
        netns.POOL.retire(ns_fd)  # the child holds it; released in batches (see netns)
    status = None
    try:
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first, or has already exited
        data, timed_out = _read_report(rfd, start + timeout)
        _kill_group(pid)  # on time-out the child; always whatever it left running
        if data:
            _unreaped.append(pid)
        else:
            _, status = os.waitpid(pid, 0)
    finally:
        os.close(rfd)
        shutil.rmtree(workdir, ignore_errors=True)
        reap()
    duration = time.monotonic() - start
    if timed_out:
        return Outcome("timeout", f"timed out after {timeout:g} s: the test child and its "
                       "process group were killed", duration=duration)
    if not data:
        how = (f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
               if os.WIFSIGNALED(status) else f"exit status {os.waitstatus_to_exitcode(status)}")
        return Outcome("crashed", f"the test child died without reporting ({how})", duration=duration)
    result = json.loads(data)
    return Outcome(
        status=result["status"], message=result.get("message", ""),
        expected=result.get("expected"), observed=result.get("observed"),
        clause=result.get("clause"), values=result.get("values", {}), traceback=result.get("traceback", ""),
        duration=duration,
    )
