"""unix(7) "Pathname socket ownership and permissions".

Directory write and search permission to create a socket file, directory search and
socket-file write permission to connect or send a datagram, the file's mode from the
umask, its owner and group by the usual rules, and chown(2)/chmod(2) on it.  Permission
checks are observed from an unprivileged uid (root's CAP_DAC_OVERRIDE would bypass them):
directories and sockets are prepared as root, then the test body becomes that uid.
"""

from __future__ import annotations

import os
import stat

import pytest

from harness import expect
from harness.privileges import become, has, nobody_uid
from suites.unix7._permissions_util import own_dir, reach, serve, table
from suites.unix7.kinds import CONNECTION_ORIENTED, DGRAM, over, unix


# Directory "d" owned by the unprivileged uid, with these owner bits; bind(2) of "d/s".
CREATE_CASES = [
    # id,                 directory mode, errno of bind (None: it succeeds)
    ("write-and-search",  0o300,          None),
    ("no-write",          0o500,          "EACCES"),
    ("no-search",         0o600,          "EACCES"),
    ("neither",           0o400,          "EACCES"),
]


@pytest.mark.clause("unix.7/permissions/create-needs-write-and-search",
                    "unix.7/permissions/directory-permissions")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("dir_mode,error", **table(CREATE_CASES))
@over()
def test_create_needs_write_and_search_on_directory(kind, dir_mode, error):
    """"In the Linux implementation, pathname sockets honor the permissions of the
    directory they are in.  Creation of a new socket fails if the process does not have
    write and search (execute) permission on the directory in which the socket is
    created."  Each missing bit alone gives EACCES; with both, bind(2) creates the socket
    file."""
    uid = nobody_uid()
    own_dir("d", dir_mode, uid)
    become(uid)
    s = unix(kind)
    what = f"bind 'd/s' in a directory of mode {dir_mode:#o} owned by the caller"
    if error:
        expect.errno(error, s.bind, "d/s", what=what)
        return
    expect.succeeds(s.bind, "d/s", what=what)
    st = expect.succeeds(os.lstat, "d/s", what="lstat 'd/s'")
    expect.equal("file type of 'd/s'", stat.S_IFMT(st.st_mode), stat.S_IFSOCK)


# The socket "d/s" is bound by root (mode 0777); then "d" (owned by root) gets this mode,
# so the unprivileged uid falls in its "other" class.
SEARCH_CASES = [
    # id,                   directory mode, errno of connect/sendto
    ("search-only",         0o701,          None),
    ("all-but-search",      0o776,          "EACCES"),
]


@pytest.mark.clause("unix.7/permissions/directory-permissions")
@pytest.mark.fault("connect", "sendto")
@pytest.mark.parametrize("dir_mode,error", **table(SEARCH_CASES))
@over()
def test_reach_needs_search_on_directory(kind, dir_mode, error):
    """"In the Linux implementation, pathname sockets honor the permissions of the
    directory they are in."  Reaching 'd/s' (connect(2); sendto(2) for dgram) needs search
    permission on 'd' and nothing more of it: without it EACCES."""
    os.mkdir("d")
    os.umask(0)
    server = serve(kind, "d/s")
    os.chmod("d", dir_mode)
    become(nobody_uid())
    what = f"reach 'd/s' through a directory of mode {dir_mode:#o} (caller in 'other')"
    if error:
        expect.errno(error, reach, kind, "d/s", server, what=what)
    else:
        expect.succeeds(reach, kind, "d/s", server, what=what)


# The socket file "s" (bound by root) gets this owner and mode before the unprivileged uid
# reaches it; "self" means the socket file is chowned to that uid.
SOCKET_MODE_CASES = [
    # id,                 owner,  mode,  errno of connect/sendto
    ("other-write-only",  "root", 0o002, None),
    ("other-rwx",         "root", 0o777, None),
    ("other-read-exec",   "root", 0o775, "EACCES"),
    ("other-none",        "root", 0o770, "EACCES"),
    ("owner-write-only",  "self", 0o200, None),
    ("owner-no-write",    "self", 0o577, "EACCES"),
]


def _reach_with_socket_mode(kind, owner, mode, error):
    uid = nobody_uid()
    server = serve(kind, "s")
    if owner == "self":
        os.chown("s", uid, uid)
    os.chmod("s", mode)
    become(uid)
    what = f"reach socket file of mode {mode:#o} owned by {owner}"
    if error:
        expect.errno(error, reach, kind, "s", server, what=what)
    else:
        expect.succeeds(reach, kind, "s", server, what=what)


@pytest.mark.clause("unix.7/permissions/connect-needs-write")
@pytest.mark.fault("connect")
@pytest.mark.parametrize("owner,mode,error", **table(SOCKET_MODE_CASES))
@over(*CONNECTION_ORIENTED)
def test_connect_needs_write_on_socket_file(kind, owner, mode, error):
    """"On Linux, connecting to a stream socket object requires write permission on that
    socket".  connect(2) from an unprivileged uid fails with EACCES exactly when the
    socket file's mode, by the usual owner/other classes, grants it no write permission.
    Read as applying to seqpacket too: it is the connecting to a listening socket object
    the sentence is about."""
    _reach_with_socket_mode(kind, owner, mode, error)


@pytest.mark.clause("unix.7/permissions/sendto-needs-write")
@pytest.mark.fault("sendto")
@pytest.mark.parametrize("owner,mode,error", **table(SOCKET_MODE_CASES))
@over(DGRAM)
def test_sendto_needs_write_on_socket_file(kind, owner, mode, error):
    """"sending a datagram to a datagram socket likewise requires write permission on that
    socket."  sendto(2) by pathname from an unprivileged uid fails with EACCES exactly
    when the socket file grants it no write permission."""
    _reach_with_socket_mode(kind, owner, mode, error)


UMASKS = [0o000, 0o022, 0o027, 0o077, 0o777]


@pytest.mark.clause("unix.7/permissions/mode-from-umask")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("umask", UMASKS, ids=[f"umask-{u:04o}" for u in UMASKS])
@over()
def test_socket_file_mode_is_all_permissions_less_umask(kind, umask):
    """"The socket file has all permissions enabled, other than those that are turned off
    by the process umask(2)."  st_mode & 07777 == 0777 & ~umask (no set-id or sticky bit:
    those are not permissions the page enables)."""
    os.umask(umask)
    expect.succeeds(unix(kind).bind, "s", what=f"bind 's' under umask {umask:04o}")
    st = os.lstat("s")
    expect.equal("file type of 's'", stat.S_IFMT(st.st_mode), stat.S_IFSOCK)
    expect.equal(f"socket file mode under umask {umask:04o}", oct(st.st_mode & 0o7777),
                 oct(0o777 & ~umask))


OWNER_CASES = [
    # id,                        the directory is set-group-ID
    ("plain-directory",          False),
    ("set-group-id-directory",   True),
]


@pytest.mark.clause("unix.7/permissions/owner-group-usual-rules")
@pytest.mark.fault("bind")
@pytest.mark.parametrize("setgid_dir", **table(OWNER_CASES))
@over()
def test_owner_and_group_follow_usual_rules(kind, setgid_dir):
    """"When creating a new socket, the owner and group of the socket file are set
    according to the usual rules."  Read as the rules for any new file: owner = the
    creator's (fs)uid; group = its (fs)gid, or the directory's group when the directory is
    set-group-ID.  The creator is an unprivileged uid whose gid differs from its uid."""
    if not all(has(cap) for cap in ("CAP_CHOWN", "CAP_SETUID", "CAP_SETGID")):
        expect.skip("needs CAP_CHOWN, CAP_SETUID and CAP_SETGID to prepare a directory of "
                    "another group and switch uid/gid")
    uid = nobody_uid()
    gid, dir_gid = uid + 1000, uid + 2000
    os.mkdir("d")
    os.chown("d", 0, dir_gid)
    os.chmod("d", 0o2777 if setgid_dir else 0o777)
    become(uid, gid)
    expect.succeeds(unix(kind).bind, "d/s", what="bind 'd/s' as the unprivileged uid")
    st = os.lstat("d/s")
    expect.equal("socket file owner (st_uid)", st.st_uid, uid)
    expect.equal("socket file group (st_gid)", st.st_gid, dir_gid if setgid_dir else gid)


@pytest.mark.clause("unix.7/permissions/chown-chmod")
@pytest.mark.fault("chown", "chmod", "connect", "sendto")
@over()
def test_chown_chmod_change_owner_group_and_access(kind):
    """"The owner, group, and permissions of a pathname socket can be changed (using
    chown(2) and chmod(2))."  Root binds 's' under umask 077 (mode 0700, root's), chowns it
    to an unprivileged uid and another group; that uid, now the owner, reaches it, makes it
    0577 (owner may not write: EACCES), then 0200 (reaches it again)."""
    uid = nobody_uid()
    group = uid + 1000
    os.umask(0o077)
    server = serve(kind, "s")
    expect.succeeds(os.chown, "s", uid, group, what="chown 's' by root")
    st = os.lstat("s")
    expect.equal("owner after chown", st.st_uid, uid)
    expect.equal("group after chown", st.st_gid, group)
    become(uid)
    expect.succeeds(reach, kind, "s", server, what="reach 's' (mode 0700) as its new owner")
    for mode, error in ((0o577, "EACCES"), (0o200, None)):
        expect.succeeds(os.chmod, "s", mode, what=f"chmod 's' {mode:#o} by its owner")
        expect.equal("mode after chmod", oct(os.lstat("s").st_mode & 0o7777), oct(mode))
        what = f"reach 's' after chmod {mode:#o}"
        if error:
            expect.errno(error, reach, kind, "s", server, what=what)
        else:
            expect.succeeds(reach, kind, "s", server, what=what)
