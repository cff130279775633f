"""Server CPU per answered request, and wrk's req/s and p99, of this source tree against a
baseline revision, side by side.

Run from the repository root (it starts the services itself)::

    .venv/bin/python benchmarks/service_cpu.py [--baseline main] [--rounds 3] [--seconds 5]
        [--concurrency 1,10,50] [--workers 1,2] [--scenarios patient-view,order-sign,healthz]
        [--base-env NAME=VALUE ...] [--new-env NAME=VALUE ...] [--json PATH]

The baseline is ``git archive <rev> src`` unpacked in a temporary folder and run by the same
interpreter and packages with ``PYTHONPATH`` pointing at it, so the two differ only in
legspasm's own code (``--base-env``/``--new-env``: settings of one side only, e.g.
``--baseline HEAD --new-env LEGSPASM_THREADS=2`` compares a setting). For each worker count,
one ``legspasm serve`` of each tree runs at once (the services and scenarios of
``service_load.py``: SQLite audit store, the vignette rls-low-ferritin-crcl-25's prefetch);
cell by cell, the two trees are measured alternately (which one goes first alternates too), so
a busy neighbour on a shared machine slows both alike.

Each cell: the service's CPU seconds (user + system of the serving process and its worker
processes, from /proc, before and after the wrk run) divided by the requests wrk completed,
in ms per request: far steadier than req/s when other work shares the cores. Reported per
tree as the median over the rounds, with req/s and p99 (wrk --latency), and the ratio
new / baseline of each. A benchmark, not a test: exits 2 when wrk is missing or a service does
not start, 1 when an answer was not 2xx.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from revision import unpack
from service_load import Server, start_server
from service_wrk import _scripts, wrk

ROOT = Path(__file__).resolve().parent.parent
SHORT = {"GET /healthz": "healthz"}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every living descendant (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == p]
    return total


def cell(server: Server, script: Path, url: str, clients: int, seconds: int) -> dict[str, Any]:
    wrk(url, script, clients, 2, 1)  # warm-up
    before = tree_cpu_seconds(server.proc.pid)
    got = wrk(url, script, clients, 2, seconds)
    cpu = tree_cpu_seconds(server.proc.pid) - before
    got["cpu_ms_per_request"] = 1000 * cpu / got["requests"] if got["requests"] else None
    got["cpu_cores"] = cpu / seconds
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--baseline", default="main", help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--scenarios", default="patient-view,order-sign,healthz")
    ap.add_argument("--base-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--new-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.concurrency.split(",")]
    counts = [int(x) for x in args.workers.split(",")]
    wanted = args.scenarios.split(",")
    results: dict[tuple[str, int, int, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="legspasm-bench-cpu-") as tmp:
        folder = Path(tmp)
        base_src = unpack(args.baseline, folder / "baseline")
        trees = {
            "base": {"PYTHONPATH": str(base_src), **_env(args.base_env)},
            "new": _env(args.new_env),
        }
        scripts = {
            SHORT.get(k, k): v for k, v in _scripts(folder).items() if SHORT.get(k, k) in wanted
        }
        servers: dict[tuple[str, int], Server] = {}
        try:
            for n in counts:
                for tree, env in trees.items():
                    where = folder / f"{tree}-w{n}"
                    where.mkdir()
                    servers[tree, n] = start_server(where, workers=n, extra_env=env)
            for r in range(args.rounds):
                for clients in levels:
                    for name, (script, path) in scripts.items():
                        for n in counts:
                            order = list(trees) if (r + clients + n) % 2 == 0 else [*trees][::-1]
                            for tree in order:
                                s = servers[tree, n]
                                got = cell(s, script, s.base + path, clients, args.seconds)
                                results.setdefault((name, clients, n, tree), []).append(got)
                                print(
                                    f"round {r + 1} {name} c{clients} w{n} {tree}: "
                                    f"{got['rps']:.0f} req/s, "
                                    f"{got['cpu_ms_per_request'] or 0:.2f} ms CPU/req, "
                                    f"p99 {got['p99_ms']:.1f} ms",
                                    file=sys.stderr,
                                    flush=True,
                                )
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2
        finally:
            for s in servers.values():
                s.stop()
    rows = report(results, levels, counts, list(scripts))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    bad = any(g["non_2xx"] for runs in results.values() for g in runs)
    return 1 if bad else 0


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(g[key] for g in runs if g[key] is not None)


def report(
    results: dict[tuple[str, int, int, str], list[dict[str, Any]]],
    levels: list[int],
    counts: list[int],
    names: list[str],
) -> list[dict[str, Any]]:
    print(
        f"{'scenario':<13} {'cl':>3} {'w':>2} | {'CPU ms/req base':>15} {'new':>7} {'ratio':>6} "
        f"| {'req/s base':>10} {'new':>7} {'ratio':>6} | {'p99 ms base':>11} {'new':>7} "
        f"{'ratio':>6}"
    )
    rows = []
    for name in names:
        for clients in levels:
            for n in counts:
                b, a = results[name, clients, n, "base"], results[name, clients, n, "new"]
                row: dict[str, Any] = {"scenario": name, "clients": clients, "workers": n}
                for key in ("cpu_ms_per_request", "rps", "p99_ms"):
                    row[key] = {"base": _median(b, key), "new": _median(a, key)}
                    row[key]["ratio"] = row[key]["new"] / row[key]["base"]
                rows.append(row)
                c, q, p = row["cpu_ms_per_request"], row["rps"], row["p99_ms"]
                print(
                    f"{name:<13} {clients:>3} {n:>2} | {c['base']:>15.3f} {c['new']:>7.3f} "
                    f"{c['ratio']:>6.2f} | {q['base']:>10.0f} {q['new']:>7.0f} {q['ratio']:>6.2f} "
                    f"| {p['base']:>11.1f} {p['new']:>7.1f} {p['ratio']:>6.2f}"
                )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
