"""The clause catalogue: every normative sentence of the man pages, as data.

Each man page has one catalogue file, ``suites/<suite>/clauses.toml``::

    page = "unix.7"                 # the page's name(section)
    source = "unix.7.txt"           # the page's text, in the man-pages folder
    title = "unix(7): sockets for local interprocess communication"

    [[clause]]
    id = "unix.7/autobind/addrlen-family-only"   # <page>/<section-slug>/<clause-slug>
    section = "Autobind feature"                 # the heading it stands under
    quote = "If a bind(2) call specifies addrlen as sizeof(sa_family_t), ..."
    since = "2.3.15"                 # optional: the kernel version the page ties it to
    requires = ["cap:CAP_SYS_ADMIN"] # optional: root | nonroot | cap:CAP_X | lsm:NAME
                                     #           | config:CONFIG_X | vm
    untestable = "why"               # optional: no test can check it here, and why
    linux = "what plays its role"    # optional: the Linux counterpart (t6sendto(3N))

A quote must stand in the page word for word.  The page's text is compared after
:func:`normalize`: a line ending in a hyphen joins the next line without a space
(``connection-`` + ``oriented``), and every other run of white space is one space.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
MANPAGES = Path(
    __import__("os").environ.get("SOCKSPEC_MANPAGES", ROOT.parent / "shared" / "manpages")
)

ID_RE = re.compile(r"^[a-z0-9_]+\.[0-9a-zA-Z]+/[a-z0-9-]+/[a-z0-9-]+$")
REQUIREMENT_RE = re.compile(
    r"^(root|nonroot|vm|cap:CAP_[A-Z_]+|lsm:[a-z]+|config:CONFIG_[A-Z0-9_]+)$"
)
VERSION_RE = re.compile(r"^\d+(\.\d+){1,2}$")
KNOWN_KEYS = {"id", "section", "quote", "since", "requires", "untestable", "linux", "note"}


class CatalogueError(ValueError):
    """A catalogue file that breaks the schema or misquotes its page."""


@dataclass(frozen=True)
class Clause:
    id: str
    page: str
    section: str
    quote: str
    since: str | None = None
    requires: tuple[str, ...] = ()
    untestable: str | None = None
    linux: str | None = None
    note: str | None = None

    @property
    def since_tuple(self) -> tuple[int, ...] | None:
        return version_tuple(self.since) if self.since else None


@dataclass
class Page:
    name: str
    title: str
    source: Path
    suite: str
    clauses: list[Clause] = field(default_factory=list)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def normalize(text: str) -> str:
    """The page's text as quotes are compared with it (see module docstring)."""
    text = re.sub(r"-[ \t]*\n[ \t]*", "-", text)
    return re.sub(r"\s+", " ", text).strip()


def load_page(path: Path, manpages: Path = MANPAGES) -> Page:
    """Load and validate one catalogue file; raise CatalogueError on any defect."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    for key in ("page", "source", "title"):
        if not isinstance(data.get(key), str):
            raise CatalogueError(f"{path}: missing top-level string {key!r}")
    page = Page(data["page"], data["title"], manpages / data["source"], path.parent.name)
    try:
        text = normalize(page.source.read_text())
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read page {page.source}: {exc}") from exc
    seen: set[str] = set()
    for i, raw in enumerate(data.get("clause", [])):
        where = f"{path}: clause #{i + 1} ({raw.get('id', '?')})"
        unknown = set(raw) - KNOWN_KEYS
        if unknown:
            raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("id", "section", "quote"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise CatalogueError(f"{where}: missing {key!r}")
        cid = raw["id"]
        if not ID_RE.match(cid) or not cid.startswith(page.name + "/"):
            raise CatalogueError(f"{where}: id must look like '{page.name}/section/slug'")
        if cid in seen:
            raise CatalogueError(f"{where}: duplicate id")
        seen.add(cid)
        quote = normalize(raw["quote"])
        if quote not in text:
            raise CatalogueError(f"{where}: quote not found verbatim in {page.source.name}: {quote!r}")
        since = raw.get("since")
        if since is not None and not (isinstance(since, str) and VERSION_RE.match(since)):
            raise CatalogueError(f"{where}: since must be a version string like '4.18'")
        requires = tuple(raw.get("requires", ()))
        for req in requires:
            if not REQUIREMENT_RE.match(req):
                raise CatalogueError(f"{where}: unknown requirement {req!r}")
        page.clauses.append(
            Clause(
                id=cid,
                page=page.name,
                section=raw["section"],
                quote=quote,
                since=since,
                requires=requires,
                untestable=raw.get("untestable"),
                linux=raw.get("linux"),
                note=raw.get("note"),
            )
        )
    return page


@lru_cache(maxsize=None)
def load_all(suites: Path = SUITES, manpages: Path = MANPAGES) -> dict[str, Page]:
    """Every catalogue under suites/, keyed by page name."""
    pages = {}
    for path in sorted(suites.glob("*/clauses.toml")):
        page = load_page(path, manpages)
        pages[page.name] = page
    return pages


def clause_index(pages: dict[str, Page] | None = None) -> dict[str, Clause]:
    if pages is None:
        return _default_index()
    return {c.id: c for p in pages.values() for c in p.clauses}


@lru_cache(maxsize=None)
def _default_index() -> dict[str, Clause]:
    return clause_index(load_all())


VM_REQUIREMENTS = ("vm", "lsm:selinux")


def selected(cid: str, wanted: list[str]) -> bool:
    """Whether clause ``cid`` is one of ``wanted`` (ids, or id prefixes ending at a "/"
    boundary: "unix.7/autobind" selects "unix.7/autobind/name-format")."""
    return any(cid == w or cid.startswith(w.rstrip("/") + "/") for w in wanted)


def vm_clause_ids(pages: dict[str, Page] | None = None) -> list[str]:
    """The clauses only the VM environment can check: those whose ``requires`` name the
    VM or an SELinux LSM (the host runs without one)."""
    pages = load_all() if pages is None else pages
    return [c.id for p in pages.values() for c in p.clauses
            if any(r in VM_REQUIREMENTS for r in c.requires)]


if __name__ == "__main__":  # python -m harness.catalogue [FILE...]: validate and count
    import sys

    paths = [Path(a) for a in sys.argv[1:]] or sorted(SUITES.glob("*/clauses.toml"))
    for p in paths:
        pg = load_page(p)
        print(f"{p}: {pg.name}: {len(pg.clauses)} clauses, "
              f"{sum(1 for c in pg.clauses if c.untestable)} untestable")
