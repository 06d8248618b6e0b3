"""unix(7) SCM_CREDENTIALS: the struct ucred a sender passes, the kernel's checks of it,
and SO_PASSCRED on the receiver.

Every case runs in one process: the socket pair is made as root and the receiver gets
SO_PASSCRED, then the process takes distinct real, effective and saved uids and gids (so
that "real", "effective", "saved" and "another" id can be told apart) and keeps only the
capabilities the case names, sends one byte with its SCM_CREDENTIALS, and reads what the
receiving socket got.  The kernel's checks are those of the sending process at sendmsg(2).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

import pytest

from harness import cmsg, expect, privileges, rawsock
from suites.unix7.kinds import over, pair

SO_PASSCRED = socket.SO_PASSCRED
UCRED_SIZE = 12                      # sizeof(struct ucred): pid_t, uid_t, gid_t
CONTROLLEN = 2 * cmsg.cmsg_space(UCRED_SIZE)
ADMIN, SETUID, SETGID = "CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID"

A = "unix.7/ancillary/"
E = "unix.7/errors/"


@dataclass(frozen=True)
class Ids:
    """The sender's identity: distinct (real, effective, saved) uids and gids, plus an
    id that is none of them."""

    uids: tuple[int, int, int]
    gids: tuple[int, int, int]
    other_uid: int
    other_gid: int

    @classmethod
    def split(cls) -> "Ids":
        base = privileges.nobody_uid()
        return cls(uids=(base, base + 1000, base + 2000), gids=(base + 100, base + 1100, base + 2100),
                   other_uid=base + 3000, other_gid=base + 3100)

    def uid(self, which: str) -> int:
        return {"real": self.uids[0], "effective": self.uids[1], "saved": self.uids[2],
                "other": self.other_uid, "root": 0}[which]

    def gid(self, which: str) -> int:
        return {"real": self.gids[0], "effective": self.gids[1], "saved": self.gids[2],
                "other": self.other_gid, "root": 0}[which]


def _become_split(ids: Ids, keep=()) -> None:
    """Become ``ids`` (distinct real, effective and saved uids and gids), keeping only the
    capabilities in ``keep``."""
    for cap in keep:
        if not privileges.has(cap):
            expect.skip(f"{cap} is not in this process's capability sets")
    privileges.become(tuple(ids.uids), tuple(ids.gids), keep=keep)


def _gone_pid() -> int:
    """The pid of a child that has exited and been reaped: no process has it now."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _pid(which: str) -> int:
    return {"own": os.getpid, "parent": os.getppid, "init": lambda: 1, "gone": _gone_pid}[which]()


def _receiver_pair(kind: int, passcred: bool = True):
    """(sender, receiver): a connected pair; the receiver has SO_PASSCRED when asked."""
    sender, receiver = pair(kind)
    if passcred:
        receiver.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
    return sender, receiver


def _send_with(sender, ucred: tuple[int, int, int]) -> int:
    return rawsock.sendmsg(sender.fileno(), b"x", cmsg.encode([cmsg.credentials(*ucred)]))


def _received(receiver) -> list[cmsg.Cmsg]:
    """The SCM_CREDENTIALS messages that came with the next byte on ``receiver``."""
    got = rawsock.recvmsg(receiver.fileno(), 1, CONTROLLEN, socket.MSG_DONTWAIT)
    expect.equal("data received with the credentials", got.data, b"x")
    expect.equal("MSG_CTRUNC set in msg_flags", bool(got.flags & socket.MSG_CTRUNC), False)
    return cmsg.find(cmsg.decode(got.control), cmsg.SOL_SOCKET, cmsg.SCM_CREDENTIALS)


def _received_ucred(receiver) -> tuple[int, int, int]:
    creds = _received(receiver)
    expect.equal("number of SCM_CREDENTIALS messages received", len(creds), 1)
    return creds[0].ucred


@dataclass(frozen=True)
class Case:
    keep: tuple[str, ...]     # capabilities the sender keeps
    pid: str                  # own | parent | init | gone
    uid: str                  # real | effective | saved | other | root
    gid: str                  # real | effective | saved | other | root
    errno: str | tuple[str, ...] | None   # sendmsg's errno; None: delivered as given


def _case(case_id, clauses, keep, pid, uid, gid, errno=None):
    return pytest.param(Case(tuple(keep), pid, uid, gid, errno), id=case_id,
                        marks=pytest.mark.clause(*clauses))


OWN_PID = (A + "scm-credentials-own-pid", A + "scm-credentials-checked")
UID_RULE = (A + "scm-credentials-uid-rule", A + "scm-credentials-checked")
GID_RULE = (A + "scm-credentials-gid-rule", A + "scm-credentials-checked")
PID_ADMIN = (A + "scm-credentials-pid-cap-sys-admin",)
UID_SETUID = (A + "scm-credentials-uid-cap-setuid",)
GID_SETGID = (A + "scm-credentials-gid-cap-setgid",)
SENT = (A + "scm-credentials-send-receive",)
EPERM = (E + "eperm",)
ESRCH = (E + "esrch",)
ANY = (A + "scm-credentials-privileged-any",)
ALL_CAPS = (ADMIN, SETUID, SETGID)

CASES = [
    #     id,                     clauses,            caps kept,        pid,      uid,         gid,        errno (None: delivered)
    _case("own-ids",              OWN_PID + SENT,     (),               "own",    "real",      "real"),
    _case("pid-parent",           OWN_PID + EPERM,    (),               "parent", "real",      "real",     "EPERM"),
    _case("pid-init",             OWN_PID + EPERM,    (),               "init",   "real",      "real",     "EPERM"),
    # A pid of no process is not the sender's own (EPERM) and matches no process (ESRCH):
    # the page gives both errors for it and does not order the checks.
    _case("pid-gone",             OWN_PID,            (),               "gone",   "real",      "real",     ("EPERM", "ESRCH")),
    _case("uid-real",             UID_RULE + SENT,    (),               "own",    "real",      "real"),
    _case("uid-effective",        UID_RULE + SENT,    (),               "own",    "effective", "real"),
    _case("uid-saved",            UID_RULE + SENT,    (),               "own",    "saved",     "real"),
    _case("uid-other",            UID_RULE + EPERM,   (),               "own",    "other",     "real",     "EPERM"),
    _case("uid-root",             UID_RULE + EPERM,   (),               "own",    "root",      "real",     "EPERM"),
    _case("gid-real",             GID_RULE + SENT,    (),               "own",    "real",      "real"),
    _case("gid-effective",        GID_RULE + SENT,    (),               "own",    "real",      "effective"),
    _case("gid-saved",            GID_RULE + SENT,    (),               "own",    "real",      "saved"),
    _case("gid-other",            GID_RULE + EPERM,   (),               "own",    "real",      "other",    "EPERM"),
    _case("gid-root",             GID_RULE + EPERM,   (),               "own",    "real",      "root",     "EPERM"),
    # Each privileged override, and the same message with only that capability missing.
    _case("admin-pid-parent",     PID_ADMIN + SENT,   (ADMIN,),         "parent", "real",      "real"),
    _case("admin-pid-init",       PID_ADMIN + SENT,   (ADMIN,),         "init",   "real",      "real"),
    _case("no-admin-pid-parent",  PID_ADMIN + EPERM,  (SETUID, SETGID), "parent", "real",      "real",     "EPERM"),
    _case("admin-pid-gone",       ESRCH,              (ADMIN,),         "gone",   "real",      "real",     "ESRCH"),
    _case("all-caps-pid-gone",    ESRCH,              ALL_CAPS,         "gone",   "real",      "real",     "ESRCH"),
    _case("setuid-uid-other",     UID_SETUID + SENT,  (SETUID,),        "own",    "other",     "real"),
    _case("setuid-uid-root",      UID_SETUID + SENT,  (SETUID,),        "own",    "root",      "real"),
    _case("no-setuid-uid-other",  UID_SETUID + EPERM, (ADMIN, SETGID),  "own",    "other",     "real",     "EPERM"),
    _case("setgid-gid-other",     GID_SETGID + SENT,  (SETGID,),        "own",    "real",      "other"),
    _case("setgid-gid-root",      GID_SETGID + SENT,  (SETGID,),        "own",    "real",      "root"),
    _case("no-setgid-gid-other",  GID_SETGID + EPERM, (ADMIN, SETUID),  "own",    "real",      "other",    "EPERM"),
    _case("all-caps-foreign-ids", ANY + SENT,         ALL_CAPS,         "parent", "other",     "other"),
]


@pytest.mark.fault("sendmsg", "recvmsg")
@pytest.mark.parametrize("case", CASES)
@over()
def test_sender_credentials_are_checked(kind, case):
    """"The credentials which the sender specifies are checked by the kernel.  A privileged
    process is allowed to specify values that do not match its own.  The sender must
    specify its own process ID (unless it has the capability CAP_SYS_ADMIN, in which case
    the PID of any existing process may be specified), its real user ID, effective user
    ID, or saved set-user-ID (unless it has CAP_SETUID), and its real group ID, effective
    group ID, or saved set-group-ID (unless it has CAP_SETGID)."  With "EPERM The sender
    passed invalid credentials in the struct ucred" and "ESRCH ... the caller specified a
    PID that does not match any existing process".

    The sender has distinct real, effective and saved uids and gids and keeps only the
    capabilities of the case; an accepted struct ucred reaches the receiver (SO_PASSCRED)
    exactly as sent, a rejected one fails sendmsg(2) with the case's errno."""
    sender, receiver = _receiver_pair(kind)
    ids = Ids.split()
    pid = _pid(case.pid)
    _become_split(ids, case.keep)
    ucred = (pid, ids.uid(case.uid), ids.gid(case.gid))
    what = (f"sendmsg SCM_CREDENTIALS (pid {case.pid}={pid}, uid {case.uid}={ucred[1]}, "
            f"gid {case.gid}={ucred[2]}) keeping {list(case.keep) or 'no capabilities'}")
    if case.errno:
        expect.errno(case.errno, _send_with, sender, ucred, what=what)
        return
    expect.equal(what, expect.succeeds(_send_with, sender, ucred, what=what), 1)
    expect.equal("struct ucred received (pid, uid, gid)", _received_ucred(receiver), ucred)


@pytest.mark.clause(A + "ucred-layout", A + "scm-credentials-send-receive")
@pytest.mark.fault("sendmsg", "recvmsg")
@over()
def test_ucred_layout(kind):
    """"struct ucred { pid_t pid; /* Process ID of the sending process */ uid_t uid; /*
    User ID of the sending process */ gid_t gid; /* Group ID of the sending process */
    };"  "The credentials are passed as a struct ucred ancillary message."

    The sender packs the 12 bytes itself (pid, uid, gid as three 4-byte fields, not through
    the cmsg codec) with cmsg_len = CMSG_LEN(12); the kernel accepts them, and the
    receiver's SOL_SOCKET/SCM_CREDENTIALS message carries exactly those 12 bytes.  With
    CAP_SETUID and CAP_SETGID the uid and gid are distinct values, so a swapped field
    would show."""
    sender, receiver = _receiver_pair(kind)
    if privileges.has(SETUID) and privileges.has(SETGID):
        ids = Ids.split()
        ucred = (os.getpid(), ids.other_uid, ids.other_gid)
    else:
        ucred = (os.getpid(), os.getuid(), os.getgid())
    raw = struct.pack("=iII", *ucred)
    control = cmsg.encode([cmsg.Cmsg(cmsg.SOL_SOCKET, cmsg.SCM_CREDENTIALS, raw)])
    expect.equal("sendmsg of a 12-byte struct ucred", expect.succeeds(
        rawsock.sendmsg, sender.fileno(), b"x", control, what="sendmsg(SCM_CREDENTIALS)"), 1)
    creds = _received(receiver)
    expect.equal("number of SCM_CREDENTIALS messages received", len(creds), 1)
    expect.equal("SCM_CREDENTIALS data length (sizeof(struct ucred))", len(creds[0].data), UCRED_SIZE)
    expect.equal("SCM_CREDENTIALS data bytes (pid, uid, gid)", creds[0].data, raw)


@pytest.mark.clause(A + "scm-credentials-needs-so-passcred", A + "scm-credentials-send-receive")
@pytest.mark.fault("recvmsg")
@over()
def test_credentials_need_so_passcred_on_receiver(kind):
    """"To receive a struct ucred message, the SO_PASSCRED option must be enabled on the
    socket."  The receiving socket without SO_PASSCRED gets the byte but no control
    message, even though the sender specified SCM_CREDENTIALS and has SO_PASSCRED set on
    its own socket; once the receiver enables it, the next byte brings the struct ucred."""
    sender, receiver = _receiver_pair(kind, passcred=False)
    sender.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
    ucred = (os.getpid(), os.getuid(), os.getgid())
    _send_with(sender, ucred)
    got = rawsock.recvmsg(receiver.fileno(), 1, CONTROLLEN, socket.MSG_DONTWAIT)
    expect.equal("data received without SO_PASSCRED", got.data, b"x")
    expect.equal("control messages received without SO_PASSCRED", cmsg.decode(got.control), [])
    receiver.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
    _send_with(sender, ucred)
    expect.equal("struct ucred received with SO_PASSCRED", _received_ucred(receiver), ucred)
