"""Run a command as root of a new user namespace whose ids map to unprivileged host ids.

    python3 -m harness.userns [--map 0:100000:65536] -- COMMAND...

This is the shape of Docker's ``userns-remap`` for one command: uid and gid 0..65535 in the
namespace are 100000..165535 outside, so the command is root with every capability over
what its user namespace owns -- a new network namespace and a new PID namespace made with
it (the command is its pid 1, as a container's first process is), and the namespaces its
test children make -- and has none over the initial namespace (kernel checks made with
``capable()`` see an unprivileged user).
The caller needs CAP_SETUID and CAP_SETGID (to write a map of ids other than its own) and
a seccomp profile that allows unshare.  Exits with the command's status.
"""

from __future__ import annotations

import argparse
import os
import sys

from harness import netns

CLONE_NEWPID = 0x20000000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m harness.userns")
    p.add_argument("--map", default="0:100000:65536", help="inside:outside:count, for uids and gids")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command")
    inside, outside, count = (int(x) for x in args.map.split(":"))
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        try:
            netns.unshare(netns.CLONE_NEWUSER | netns.CLONE_NEWNET | CLONE_NEWPID)
            os.write(ready_w, b"u")
            if os.read(go_r, 1) != b"g":
                os._exit(125)
            os.setgroups([])
            os.setresgid(inside, inside, inside)
            os.setresuid(inside, inside, inside)
            netns.set_link_up("lo")
            init = os.fork()                  # pid 1 of the new PID namespace
            if init == 0:
                os.execvp(command[0], command)
            _, status = os.waitpid(init, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        except OSError as exc:
            print(f"harness.userns: {exc}", file=sys.stderr)
        os._exit(125)
    os.close(ready_w)
    os.close(go_r)
    ok = os.read(ready_r, 1) == b"u"
    if ok:
        try:
            for kind in ("uid", "gid"):
                with open(f"/proc/{pid}/{kind}_map", "w") as f:
                    f.write(f"{inside} {outside} {count}\n")
            os.write(go_w, b"g")
        except OSError as exc:
            print(f"harness.userns: writing the id maps: {exc}", file=sys.stderr)
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if ok else 125


if __name__ == "__main__":
    sys.exit(main())
