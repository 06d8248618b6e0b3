"""The catalogue loader: every page loads, and it refuses what is wrong."""

import textwrap
from pathlib import Path

import pytest

from harness import catalogue

PAGE = """\
NAME
a test page about connection-
oriented sockets.  The second   sentence
spans lines.
"""


def write(tmp_path: Path, clauses: str, header: str | None = None) -> Path:
    (tmp_path / "man").mkdir(exist_ok=True)
    (tmp_path / "man" / "t.7.txt").write_text(PAGE)
    path = tmp_path / "clauses.toml"
    head = header or 'page = "t.7"\nsource = "t.7.txt"\ntitle = "t(7)"\n'
    path.write_text(head + textwrap.dedent(clauses))
    return path


def load(path):
    return catalogue.load_page(path, path.parent / "man")


def test_every_shipped_catalogue_loads():
    pages = catalogue.load_all()
    assert {"unix.7", "ip.7", "ip_passsec.2const", "t6sendto.3N"} <= set(pages)
    assert len(pages["unix.7"].clauses) > 80


def test_unix7_has_every_errno_of_the_errors_list():
    ids = {c.id for c in catalogue.load_all()["unix.7"].clauses}
    for errno in ("eaddrinuse", "ebadf", "econnrefused", "econnreset", "efault", "einval",
                  "eisconn", "enfile", "enoent", "enomem", "enotconn", "eopnotsupp", "eperm",
                  "epipe", "eprotonosupport", "eprototype", "esocktnosupport", "esrch",
                  "etoomanyrefs"):
        assert f"unix.7/errors/{errno}" in ids


def test_untestable_clauses_say_why():
    for page in catalogue.load_all().values():
        for c in page.clauses:
            if c.untestable is not None:
                assert len(c.untestable) > 20, c.id


def test_normalize_joins_hyphenated_lines_and_folds_space():
    assert catalogue.normalize("connection-\noriented  a\n b") == "connection-oriented a b"


def test_quote_across_lines_is_found(tmp_path):
    page = load(write(tmp_path, '''
        [[clause]]
        id = "t.7/name/two"
        section = "NAME"
        quote = "connection-oriented sockets. The second sentence spans lines."
        since = "4.18"
        requires = ["root", "cap:CAP_NET_ADMIN", "lsm:selinux", "config:CONFIG_X"]
    '''))
    (c,) = page.clauses
    assert c.since_tuple == (4, 18) and c.requires[1] == "cap:CAP_NET_ADMIN"


@pytest.mark.parametrize("body,message", [
    ('id = "t.7/name/x"\nsection = "NAME"\nquote = "not on the page"\n', "quote not found"),
    ('id = "t.7/name/x"\nsection = "NAME"\nquote = "spans lines."\nrequires = ["wizard"]\n', "unknown requirement"),
    ('id = "t.7/name/x"\nsection = "NAME"\nquote = "spans lines."\nsince = "recent"\n', "since must be"),
    ('id = "Bad Id"\nsection = "NAME"\nquote = "spans lines."\n', "id must look like"),
    ('id = "u.7/name/x"\nsection = "NAME"\nquote = "spans lines."\n', "id must look like"),
    ('id = "t.7/name/x"\nsection = "NAME"\nquote = "spans lines."\ncolour = "red"\n', "unknown keys"),
    ('id = "t.7/name/x"\nsection = "NAME"\n', "missing 'quote'"),
])
def test_rejects(tmp_path, body, message):
    with pytest.raises(catalogue.CatalogueError, match=message):
        load(write(tmp_path, "[[clause]]\n" + body))


def test_rejects_duplicate_id(tmp_path):
    one = '[[clause]]\nid = "t.7/name/x"\nsection = "NAME"\nquote = "spans lines."\n'
    with pytest.raises(catalogue.CatalogueError, match="duplicate"):
        load(write(tmp_path, one + one))


def test_rejects_missing_header(tmp_path):
    with pytest.raises(catalogue.CatalogueError, match="page"):
        load(write(tmp_path, "", header='title = "x"\n'))
