"""The one sandbox: isolation, time limit, reporting, cleanup."""

import os
import signal
import socket
import time

import pytest

from harness import expect, inject, netns, sandbox
from tests.helpers import alive, in_child_as


def test_pass_reports_observed_values():
    out = sandbox.run(lambda: expect.observe("answer", b"\0ab"))
    assert out.status == "passed"
    assert out.values == {"answer": repr(b"\0ab")}


def test_deviation_carries_expected_and_observed():
    out = sandbox.run(lambda: expect.equal("addrlen", 111, 110))
    assert out.status == "failed"
    assert (out.expected, out.observed) == (110, 111)
    assert "addrlen: expected 110, observed 111" in out.message


def test_errno_matcher_reports_names():
    def body():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        expect.errno("EINVAL", s.bind, b"\0free-name")   # succeeds
    out = sandbox.run(body)
    assert out.status == "failed" and out.expected == "EINVAL"
    assert out.observed.startswith("success")


def test_skip_and_error_and_crash():
    assert sandbox.run(lambda: expect.skip("no SELinux")).to_dict()["status"] == "skipped"
    err = sandbox.run(lambda: 1 / 0)
    assert err.status == "error" and "ZeroDivisionError" in err.message
    crash = sandbox.run(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert crash.status == "crashed" and "SIGKILL" in crash.message


def test_hanging_child_and_descendants_are_killed_within_the_limit(tmp_path):
    pidfile = tmp_path / "grandchild"

    def body():
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        pidfile.write_text(str(pid))
        time.sleep(600)

    start = time.monotonic()
    out = sandbox.run(body, timeout=0.5)
    elapsed = time.monotonic() - start
    assert out.status == "timeout"
    assert elapsed < 3.0, f"killed after {elapsed:.2f} s for a 0.5 s limit"
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(grandchild)


def test_process_left_running_does_not_delay_the_report(tmp_path):
    pidfile = tmp_path / "leftover"

    def body():
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        pidfile.write_text(str(pid))

    out = sandbox.run(body, timeout=5)
    assert out.status == "passed" and out.duration < 2
    leftover = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(leftover) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(leftover)


def test_each_child_gets_a_fresh_namespace_with_loopback_up():
    host = netns.current_inode()
    seen = []

    def body():
        import fcntl
        import struct
        ino = netns.current_inode()
        with socket.socket() as s:
            flags = struct.unpack("16sH14x", fcntl.ioctl(
                s, netns.SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]
        expect.observe("ino", ino)
        assert ino != host and flags & netns.IFF_UP
        socket.socket(socket.AF_UNIX).bind(b"\0sockspec-same-name")

    for _ in range(3):
        out = sandbox.run(body)
        assert out.status == "passed", out.message
        seen.append(out.values["ino"])
    assert len(set(seen)) == 3


def test_workdir_is_private_and_removed():
    out = sandbox.run(lambda: expect.observe("cwd", (os.getcwd(), os.listdir("."))))
    cwd, listing = out.values["cwd"]
    assert listing == [] and os.path.basename(cwd).startswith("sockspec-")
    assert not os.path.exists(cwd)


def test_injected_fault():
    def body():
        s = socket.socket(socket.AF_UNIX)
        s.bind(b"\0x")
    out = sandbox.run(body, faults=(["bind"], inject.DEFAULT_ERRNO))
    assert out.status == "error" and "not recoverable" in out.message.lower()
    assert sandbox.run(body, faults=inject.parse("connect:EACCES")).status == "passed"


def _fds() -> tuple[set[str], int]:
    """(descriptors other than network namespaces, count of namespace descriptors)."""
    other, ns = set(), 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor
        if target.startswith("net:["):
            ns += 1
        else:
            other.add(f"{fd} -> {target}")
    return other, ns


def test_the_body_inherits_no_descriptors_of_the_pytest_process():
    """What the parent holds (here 80 open files, like namespaces awaiting batch release)
    must not reach the body: it would count against an RLIMIT_NOFILE the test lowers."""
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(80)]
    try:
        out = sandbox.run(lambda: expect.observe("fds", sorted(map(int, os.listdir("/proc/self/fd")))))
    finally:
        for fd in held:
            os.close(fd)
    assert out.status == "passed", out.message
    fds = out.values["fds"]
    assert fds[:3] == [0, 1, 2] and len(fds) <= 5, fds   # + the result pipe, + listdir's own


def test_no_descriptor_leaks_in_the_parent():
    sandbox.run(lambda: None)
    sandbox.reap(block=True)
    before, _ = _fds()
    for _ in range(100):
        sandbox.run(lambda: None)
    sandbox.reap(block=True)
    after, namespaces = _fds()
    assert after == before
    assert namespaces == 0      # reap(block=True) let go of every namespace


@pytest.mark.parametrize("spec,names,err", [
    ("bind", ["bind"], inject.DEFAULT_ERRNO),
    ("bind,connect:EACCES", ["bind", "connect"], 13),
])
def test_inject_parse(spec, names, err):
    assert inject.parse(spec) == (names, err)


def test_non_root_caller_gets_an_isolated_unprivileged_child():
    """Run by an ordinary user, the sandbox makes a user namespace mapping only that user
    and a network namespace in it, and the body runs with no capabilities."""
    def body():
        from harness import privileges
        socket.socket(socket.AF_UNIX).bind(b"\0mine")
        expect.observe("who", [os.getuid(), sorted(privileges.effective()), netns.current_inode()])

    def fn():
        out = sandbox.run(body, tmp_root="/tmp")
        sandbox.reap(block=True)
        return out.to_dict()
    out = in_child_as(65534, fn)
    assert out["status"] == "passed", out
    uid, caps, ino = out["values"]["who"]
    assert uid == 65534 and caps == [] and ino != netns.current_inode()


def test_sysctls_only_inside_the_test_namespace():
    from harness import sysctl

    with pytest.raises(sysctl.HostSysctlRefused):
        sysctl.write("net.unix.max_dgram_qlen", 11)
    with pytest.raises(sysctl.HostSysctlRefused):
        sysctl.write("kernel.pid_max", 1)
    host = sysctl.read("net.unix.max_dgram_qlen")

    def body():
        sysctl.write("net.unix.max_dgram_qlen", 77)
        expect.equal("max_dgram_qlen", sysctl.read("net.unix.max_dgram_qlen"), "77")
    assert sandbox.run(body).status == "passed"
    assert sysctl.read("net.unix.max_dgram_qlen") == host


def test_errno_aliases_match_and_show_the_pages_name():
    def body():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        expect.errno("EOPNOTSUPP", s.listen, 1)
        expect.errno("ENOTSUP", s.listen, 1)
        expect.errno("EINVAL", s.listen, 1)
    out = sandbox.run(body)
    assert out.status == "failed" and out.observed == "EOPNOTSUPP"
