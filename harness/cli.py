"""sockspec's command line.

    ./sockspec run [--page unix.7] [--clause ID] [-n 2] [--baseline FILE --gate] [--vm] [-- PYTEST ARGS]
    ./sockspec vm [--kernel PATH] [--image NAME] [--page P] [--clause ID]
    ./sockspec report [results.json] [index.html]
    ./sockspec merge A/results.json B/results.json ... [-o matrix.html]
    ./sockspec gate --baseline FILE [results.json]
    ./sockspec diff OLD/results.json NEW/results.json [-o diff.html] [--gate]
    ./sockspec export --format junit|ktap|kcidb [results.json] [-o FILE] [--origin NAME]
    ./sockspec selftest [PYTEST ARGS]
    ./sockspec bench [--suite unix7] [--iterations N]
    ./sockspec matrix [matrix/default.toml] [--clause ID] [--only NAME] [--out DIR]

``run`` runs the conformance suites and writes ``reports/out/results.json``,
``reports/out/index.html`` and the three exports beside them (results.junit.xml,
results.ktap, results.kcidb.json).  Its exit status is 0 when the run completed, whatever the
kernel did (deviations are findings, listed in the report); 2 when the run itself broke;
with ``--gate``, 1 when a deviation is not recorded in the ``--baseline`` file (it prints
new, fixed and unchanged deviations and names the clauses of the new ones).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import catalogue
from reports import baseline, diff, export, html, runs

ROOT = catalogue.ROOT
OUT = ROOT / "reports" / "out"


def _suite_paths(pages: list[str], clauses: list[str] = ()) -> list[str]:
    known = catalogue.load_all()
    if not pages and clauses:       # a clause id starts with its page: collect only those suites
        named = {c.split("/")[0] for c in clauses}
        if named <= set(known):
            pages = sorted(named)
    if not pages:
        return ["suites"]
    paths = []
    for name in pages:
        page = known.get(name) or next((p for p in known.values() if p.suite == name), None)
        if page is None:
            raise SystemExit(f"unknown page {name!r}; known: {', '.join(known)}")
        paths.append(f"suites/{page.suite}")
    return paths


def cmd_run(args, extra: list[str]) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    if results_path.exists():
        results_path.unlink()
    cmd = [sys.executable, "-m", "pytest", *_suite_paths(args.page, args.clause),
           f"--sockspec-results={results_path}", "-q"]
    for cid in args.clause:
        cmd.append(f"--sockspec-clause={cid}")
    if args.jobs:
        cmd += ["-n", str(args.jobs)]
    if args.timeout:
        cmd.append(f"--sockspec-timeout={args.timeout}")
    basetemp = tempfile.mkdtemp(prefix="sockspec-pytest-")  # pytest's and xdist's own files
    cmd.append(f"--basetemp={basetemp}")
    cmd += extra
    print("+", " ".join(cmd), flush=True)
    try:
        rc = subprocess.call(cmd, cwd=ROOT)
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    if rc not in (0, 1) or not results_path.exists():
        print(f"sockspec: the run itself broke (pytest exit status {rc}); no report written",
              file=sys.stderr)
        return 2
    doc = json.loads(results_path.read_text())
    cmp = baseline.compare(doc, baseline.load(args.baseline), args.baseline) if args.baseline else None
    (out / "index.html").write_text(html.render(doc, comparison=cmp))
    export.write_all(doc, out)
    c = doc["summary"]["clauses"]
    print(f"sockspec: {sum(c.values())} clauses: " + ", ".join(f"{n} {v}" for v, n in c.items()))
    print(f"sockspec: report {out / 'index.html'}, results {results_path}, exports "
          + ", ".join(name for _, name in export.FORMATS.values()))
    return _gate(doc, cmp, args.baseline, args.gate)


def _gate(doc: dict, cmp, baseline_path: str | None, gate: bool) -> int:
    """Print the comparison with the baseline; with ``gate``, 1 on a new deviation."""
    if cmp is not None:
        print(cmp.text())
        if gate and cmp.new:
            print(f"sockspec: gate: {len(cmp.new)} new deviation(s) not in {baseline_path}, in clause(s): "
                  + ", ".join(cmp.new_clauses()))
            return 1
        if gate:
            print(f"sockspec: gate passed: no deviation beyond {baseline_path}")
    elif gate:
        failing = runs.deviations(doc)
        if failing:
            print(f"sockspec: gate: {len(failing)} deviation(s) and no baseline")
            return 1
    return 0


def cmd_vm(args, extra: list[str]) -> int:
    """The VM suites (harness.environments.vm): ``./sockspec vm`` runs its selection (by
    default every clause that needs the VM), ``./sockspec run --vm`` the part of the host
    run's selection that needs the VM, after the host run."""
    from harness.environments import vm

    return vm.main(args, extra)


def _add_vm_options(parser, *, standalone: bool) -> None:
    if not standalone:
        parser.add_argument("--vm", action="store_true",
                            help="then run the clauses that need the VM in a kernel booted under "
                                 "QEMU (results in OUT/vm)")
    parser.add_argument("--kernel", help="the kernel the VM boots: a .deb, an unpacked tree or an "
                                         "image (default: Debian's linux-image for this release)")
    parser.add_argument("--vm-timeout", type=float, help="time limit of the whole VM run, seconds")
    parser.add_argument("--image", help="boot with this container image (containers/images.toml: selinux, "
                                        "ipsec, plain) as the VM's root instead of the host's")
    if standalone:
        parser.add_argument("--no-policy", action="store_true",
                            help="boot without loading the SELinux policy (a misconfiguration check)")
        parser.add_argument("--permissive", action="store_true", help="load the policy, do not enforce it")


def cmd_gate(args, extra) -> int:
    """The CI gate on a results.json made elsewhere (a CI matrix's artifact)."""
    doc = runs.load(args.results)
    return _gate(doc, baseline.compare(doc, baseline.load(args.baseline), args.baseline), args.baseline, True)


def cmd_report(args, extra) -> int:
    return html.main([args.results, args.html] if args.html else [args.results])


def cmd_merge(args, extra) -> int:
    """Several results.json (e.g. a CI matrix's artifacts) -> one matrix report."""
    docs = [runs.load(p) for p in args.results]
    Path(args.output).write_text(html.render_matrix(docs))
    print(f"sockspec: matrix of {len(docs)} runs ({', '.join(runs.labels(docs))}) in {args.output}")
    return 0


def cmd_diff(args, extra) -> int:
    """Two results.json -> regressions, fixes, unchanged (text; HTML with -o)."""
    old, new = runs.load(args.old), runs.load(args.new)
    cmp = diff.compare(old, new)
    print(cmp.text())
    if args.output:
        Path(args.output).write_text(diff.render(old, new))
        print(f"sockspec: wrote {args.output}")
    return 1 if args.gate and cmp.new else 0


def cmd_export(args, extra) -> int:
    """One results.json -> JUnit XML, KTAP or KCIDB JSON."""
    if args.origin and args.format != "kcidb":
        raise SystemExit("sockspec: --origin is for --format kcidb")
    options = {"origin": args.origin} if args.origin else {}
    try:
        text = export.render(args.format, runs.load(args.results), **options)
    except ValueError as e:
        raise SystemExit(f"sockspec: {e}")
    if args.output:
        Path(args.output).write_text(text)
        print(f"sockspec: wrote {args.format} {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_selftest(args, extra) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", "tests", *extra], cwd=ROOT)


def cmd_bench(args, extra) -> int:
    from harness import bench

    return bench.main(extra)


def add_matrix_command(sub) -> None:
    """``matrix``: the suites in several environments (host, containers, VMs), one report."""
    from harness import matrix

    matrix.add_parser(sub)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="sockspec", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the conformance suites and write the report")
    r.add_argument("--page", action="append", default=[],
                   help="a page (unix.7, ip.7, ...) or suite (unix7); repeatable; default all")
    r.add_argument("--clause", action="append", default=[], help="a clause id or id prefix; repeatable")
    r.add_argument("-n", "--jobs", help="parallel workers (pytest-xdist), e.g. 2 or auto")
    r.add_argument("--timeout", type=float, help="time limit of each test child, seconds")
    r.add_argument("--out", default=str(OUT), help="output folder (default reports/out)")
    r.add_argument("--baseline", help="a baseline file of known deviations")
    r.add_argument("--gate", action="store_true", help="exit 1 on a deviation not in the baseline")
    _add_vm_options(r, standalone=False)
    r.set_defaults(fn=cmd_run)
    v = sub.add_parser("vm", help="run the suites that need it in a VM (QEMU, SELinux enforcing)")
    v.add_argument("--page", action="append", default=[], help="a page or suite; default: every "
                                                                "clause that needs the VM")
    v.add_argument("--clause", action="append", default=[], help="a clause id or id prefix")
    v.add_argument("-n", "--jobs", help="parallel workers inside the VM")
    v.add_argument("--timeout", type=float, help="time limit of each test child, seconds")
    v.add_argument("--out", default=str(OUT / "vm"), help="output folder (default reports/out/vm)")
    _add_vm_options(v, standalone=True)
    v.set_defaults(fn=cmd_vm)
    rp = sub.add_parser("report", help="render results.json as HTML")
    rp.add_argument("results", nargs="?", default=str(OUT / "results.json"))
    rp.add_argument("html", nargs="?")
    rp.set_defaults(fn=cmd_report)
    mg = sub.add_parser("merge", help="render several results.json as one matrix report")
    mg.add_argument("results", nargs="+", help="results.json files, one column each")
    mg.add_argument("-o", "--output", default="matrix.html", help="the HTML file (default matrix.html)")
    mg.set_defaults(fn=cmd_merge)
    df = sub.add_parser("diff", help="compare two results.json: regressions, fixes, unchanged")
    df.add_argument("old")
    df.add_argument("new")
    df.add_argument("-o", "--output", help="also write the HTML view here")
    df.add_argument("--gate", action="store_true", help="exit 1 when the new run has a new deviation")
    df.set_defaults(fn=cmd_diff)
    gt = sub.add_parser("gate", help="compare a results.json with a baseline; exit 1 on a new deviation")
    gt.add_argument("results", nargs="?", default=str(OUT / "results.json"))
    gt.add_argument("--baseline", required=True, help="a baseline file of known deviations")
    gt.set_defaults(fn=cmd_gate)
    ex = sub.add_parser("export", help="write results.json as JUnit XML, KTAP or KCIDB JSON")
    ex.add_argument("--format", required=True, choices=sorted(export.FORMATS))
    ex.add_argument("results", nargs="?", default=str(OUT / "results.json"))
    ex.add_argument("-o", "--output", help="the file to write (default: standard output)")
    ex.add_argument("--origin", help="kcidb: the submitting CI system's KCIDB origin (default sockspec)")
    ex.set_defaults(fn=cmd_export)
    st = sub.add_parser("selftest", help="run the project's own tests")
    st.set_defaults(fn=cmd_selftest)
    b = sub.add_parser("bench", help="time isolation overhead and suite wall time", add_help=False)
    b.set_defaults(fn=cmd_bench)
    add_matrix_command(sub)
    args, unknown = p.parse_known_args(argv)
    rc = args.fn(args, unknown + extra)
    if args.command == "run" and args.vm and rc != 2:
        rc = max(rc, cmd_vm(args, []))
    return rc


if __name__ == "__main__":
    sys.exit(main())
