"""The environment matrix: run the suites in several environments, one column each.

    ./sockspec matrix [matrix/default.toml] [--out reports/matrix] [--clause ID] [--page P]
                      [--only NAME] [--parallel N] [-n JOBS]

The matrix file (TOML; ``matrix/default.toml`` documents every key) lists environments;
each ``[[environment]]`` has a ``name`` (its column), a ``kind`` (a key of :data:`KINDS`)
and the kind's own settings (``user`` for host; ``variant``, ``image`` for container).
Top-level ``pages``, ``clauses``, ``jobs``, ``timeout`` select what runs everywhere; an
environment may narrow it with its own ``pages``/``clauses``.  ``parallel`` environments
run at a time (the suites leave most of a core idle waiting on the kernel).

Each environment is prepared once (images built, cached by content), run (an ordinary
``harness.cli run`` inside it), and torn down whatever happened; its results go to
``OUT/<name>/results.json`` and one progress line is printed per environment.  When any
environment is a container, the Docker engine is started for the matrix if none runs and
stopped afterwards (harness.docker_engine).  Then the columns are rendered.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import sys
import time
import tomllib
from pathlib import Path

from harness import catalogue
from harness.environments import Environment, HostEnvironment, Selection
from harness.environments.container import ContainerEnvironment
from harness.environments.vm import VMEnvironment

ROOT = catalogue.ROOT
DEFAULT_FILE = ROOT / "matrix" / "default.toml"
DEFAULT_OUT = ROOT / "reports" / "matrix"

# kind -> class: a new kind (the VM environment) is one more entry.
KINDS: dict[str, type[Environment]] = {"host": HostEnvironment, "container": ContainerEnvironment,
                                       "vm": VMEnvironment}

_SELECTION_KEYS = ("pages", "clauses", "jobs", "timeout", "pytest_args")


def load(path: Path) -> tuple[dict, list[tuple[Environment, dict]]]:
    """The matrix file: its top-level settings, and (environment, its own selection keys)."""
    doc = tomllib.loads(Path(path).read_text())
    envs = []
    names = set()
    for entry in doc.get("environment", []):
        entry = dict(entry)
        name, kind = entry.pop("name"), entry.pop("kind")
        if name in names:
            raise ValueError(f"{path}: two environments named {name!r}")
        names.add(name)
        if kind not in KINDS:
            raise ValueError(f"{path}: environment {name!r} has unknown kind {kind!r}; known: {', '.join(KINDS)}")
        own = {k: entry.pop(k) for k in _SELECTION_KEYS if k in entry}
        envs.append((KINDS[kind](name, **entry), own))
    settings = {k: v for k, v in doc.items() if k != "environment"}
    return settings, envs


def _selection(settings: dict, own: dict, args) -> Selection:
    """Command line over the environment's own keys over the file's top level."""
    def pick(key, cli):
        if cli:
            return cli
        return own.get(key, settings.get(key))
    return Selection(pages=list(pick("pages", args.page) or []),
                     clauses=list(pick("clauses", args.clause) or []),
                     jobs=str(pick("jobs", args.jobs)) if pick("jobs", args.jobs) else None,
                     timeout=pick("timeout", args.timeout),
                     pytest_args=list(own.get("pytest_args", settings.get("pytest_args", []))))


def _counts(doc: dict | None) -> str:
    if doc is None:
        return "no results"
    c = doc["summary"]["clauses"]
    return " ".join(f"{v} {n}" for v, n in c.items())


def _run_one(env: Environment, selection: Selection, out: Path) -> dict:
    start = time.perf_counter()
    doc = None
    error = ""
    try:
        path = env.run(selection, out / env.name)
        status = getattr(env, "return_code", 0)
        if status not in (0, 1):
            error = f"the run broke (exit status {status}): see {out / env.name / 'run.log'}"
        elif path.exists():
            doc = json.loads(path.read_text())
    except Exception as exc:  # noqa: BLE001 - one environment's failure is its cell, not the matrix's
        error = f"{type(exc).__name__}: {exc}"
    finally:
        env.teardown()
    wall = time.perf_counter() - start
    line = f"{env.name:<20} {env.kind:<9} {wall:6.1f} s  {_counts(doc)}"
    print(line + (f"  ({error})" if error else ""), flush=True)
    return {"name": env.name, "kind": env.kind, "wall_s": round(wall, 2), "doc": doc, "error": error}


def render(docs: list[dict], out: Path) -> tuple[Path, int]:
    """One HTML report for all columns (``reports.html.render_matrix``) and a text table
    of the clauses whose verdicts differ between columns (matrix.txt).  Returns the
    report's path and the number of differing clauses."""
    from reports import html
    from reports.matrix import Matrix

    m = Matrix.of(docs)
    labels = [c.label for c in m.columns]
    diff = [c["id"] for c in m.clauses if m.differs(c["id"])]
    width = max([len(c) for c in diff] + [10])
    lines = [f"{'clause':<{width}}  " + "  ".join(f"{n:>14}" for n in labels)]
    lines += [f"{cid:<{width}}  " + "  ".join(f"{v or '-':>14}" for v in m.verdicts(cid)) for cid in diff]
    (out / "matrix.txt").write_text("\n".join(lines) + "\n")
    (out / "index.html").write_text(html.render_matrix(docs))
    return out / "index.html", len(diff)


def run_matrix(envs: list[tuple[Environment, Selection]], out: Path, parallel: int = 1) -> list[dict]:
    """Prepare, run and tear down every environment; the results docs, in matrix order.
    The Docker engine is started only when a container environment is in the matrix."""
    from contextlib import ExitStack

    from harness import docker_engine

    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    with ExitStack() as stack:
        engine = None
        if any(isinstance(e, ContainerEnvironment) for e, _ in envs):
            engine = stack.enter_context(docker_engine.Engine())
        for env, _ in envs:                       # once each, serially: images build once
            try:
                env.prepare()
            except Exception as exc:  # noqa: BLE001
                env.teardown()
                rows[env.name] = {"name": env.name, "kind": env.kind, "wall_s": 0.0, "doc": None,
                                  "error": f"prepare failed: {type(exc).__name__}: {exc}"}
                print(f"{env.name:<20} {env.kind:<9}   prepare failed: {exc}", flush=True)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel))
        try:
            futures = {pool.submit(_run_one, env, sel, out): env.name
                       for env, sel in envs if env.name not in rows}
            for f in concurrent.futures.as_completed(futures):
                rows[futures[f]] = f.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            if engine is not None:
                engine.remove_containers()        # ends the runs still going
            raise
        finally:
            pool.shutdown(wait=True)
    order = [env.name for env, _ in envs]
    (out / "matrix.json").write_text(json.dumps(
        {"environments": [{k: v for k, v in rows[n].items() if k != "doc"} for n in order]}, indent=1))
    return [rows[n] for n in order]


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(args) -> int:
    settings, entries = load(Path(args.file))
    if args.only:
        unknown = set(args.only) - {e.name for e, _ in entries}
        if unknown:
            raise SystemExit(f"{args.file} has no environment {', '.join(sorted(unknown))}; "
                             f"it has {', '.join(e.name for e, _ in entries)}")
        entries = [(e, o) for e, o in entries if e.name in args.only]
    envs = [(e, _selection(settings, own, args)) for e, own in entries]
    out = Path(args.out).resolve()
    parallel = args.parallel or settings.get("parallel", 1)
    old = signal.signal(signal.SIGTERM, _sigterm)
    start = time.perf_counter()
    try:
        rows = run_matrix(envs, out, parallel)
    finally:
        signal.signal(signal.SIGTERM, old)
    docs = [r["doc"] for r in rows if r["doc"] is not None]
    report, ndiff = render(docs, out) if docs else (None, 0)
    wall = time.perf_counter() - start
    print(f"sockspec: matrix of {len(rows)} environments in {wall:.1f} s; "
          f"{ndiff} clauses differ between columns (see {out / 'matrix.txt'})")
    if report:
        print(f"sockspec: report {report}")
    broken = [r["name"] for r in rows if r["doc"] is None]
    if broken:
        print(f"sockspec: no results from {', '.join(broken)}", file=sys.stderr)
        return 2
    return 0


def add_parser(sub) -> None:
    m = sub.add_parser("matrix", help="run the suites in several environments, one report")
    m.add_argument("file", nargs="?", default=str(DEFAULT_FILE), help="matrix file (TOML)")
    m.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default reports/matrix)")
    m.add_argument("--page", action="append", default=[], help="override the pages everywhere")
    m.add_argument("--clause", action="append", default=[], help="override the clauses everywhere")
    m.add_argument("--only", action="append", default=[], help="run only this environment (repeatable)")
    m.add_argument("--parallel", type=int, help="environments at a time (default: the file's)")
    m.add_argument("-n", "--jobs", help="pytest-xdist workers in each environment")
    m.add_argument("--timeout", type=float, help="time limit of each test child, seconds")
    m.set_defaults(fn=lambda args, extra: main(args))
