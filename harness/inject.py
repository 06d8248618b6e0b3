"""Injected deviations: a seccomp filter that makes one syscall fail with a chosen errno.

The project's own tests use this to prove that each conformance test notices when the
kernel misbehaves: the sandbox installs the filter in the test child before the body
runs, so the syscall the test checks returns an errno the page never promises
(ENOTRECOVERABLE by default) and the test must fail.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import platform

from harness.libc import check, libc

DEFAULT_ERRNO = errno_mod.ENOTRECOVERABLE   # no socket call ever returns it

SYSCALLS = {
    "x86_64": {
        "read": 0, "write": 1, "close": 3, "ioctl": 16, "socket": 41, "connect": 42,
        "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46, "recvmsg": 47,
        "shutdown": 48, "bind": 49, "listen": 50, "getsockname": 51, "getpeername": 52,
        "socketpair": 53, "setsockopt": 54, "getsockopt": 55, "chmod": 90, "fchmod": 91,
        "chown": 92, "fchown": 93, "umask": 95, "unlink": 87, "accept4": 288,
        "fchmodat": 268, "fchownat": 260, "unlinkat": 263, "mknodat": 259,
    },
    "aarch64": {
        "read": 63, "write": 64, "close": 57, "ioctl": 29, "socket": 198, "socketpair": 199,
        "bind": 200, "listen": 201, "accept": 202, "connect": 203, "getsockname": 204,
        "getpeername": 205, "sendto": 206, "recvfrom": 207, "setsockopt": 208,
        "getsockopt": 209, "shutdown": 210, "sendmsg": 211, "recvmsg": 212, "accept4": 242,
        "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54, "umask": 166,
        "unlinkat": 35, "mknodat": 33,
    },
}
# Calls that libc routes through another syscall on some architectures.
ALIASES = {"accept": ("accept", "accept4"), "chmod": ("chmod", "fchmodat"),
           "chown": ("chown", "fchownat"), "unlink": ("unlink", "unlinkat")}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def numbers(names, arch: str | None = None) -> list[int]:
    arch = arch or platform.machine()
    table = SYSCALLS[arch]
    out = []
    for name in names:
        for n in ALIASES.get(name, (name,)):
            if n in table:
                out.append(table[n])
    if not out:
        raise ValueError(f"no syscall numbers known for {list(names)} on {arch}")
    return out


def fail_syscalls(names, err: int = DEFAULT_ERRNO) -> None:
    """From now on, in this process and its children, make ``names`` fail with ``err``."""
    arch = platform.machine()
    nrs = numbers(names, arch)
    prog = [(BPF_LD_W_ABS, 0, 0, 4),                               # A = seccomp_data.arch
            (BPF_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
            (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
            (BPF_LD_W_ABS, 0, 0, 0)]                               # A = seccomp_data.nr
    for i, nr in enumerate(nrs):
        remaining = len(nrs) - i - 1
        prog.append((BPF_JEQ_K, remaining + 1, 0, nr))             # match -> the ERRNO return
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | (err & 0xFFFF)))
    filters = (_Filter * len(prog))(*[_Filter(*ins) for ins in prog])
    fprog = _Prog(len(prog), filters)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
          "prctl(SECCOMP)")


def parse(spec: str) -> tuple[list[str], int]:
    """'bind,connect:EACCES' -> (['bind', 'connect'], EACCES); errno defaults to DEFAULT_ERRNO."""
    names, _, err = spec.partition(":")
    code = getattr(errno_mod, err) if err else DEFAULT_ERRNO
    return [n for n in names.split(",") if n], code

