"""patient-view requests/s with the audit journal against the direct audit write, side by side.

Run from the repository root (it starts the service itself)::

    .venv/bin/python benchmarks/audit_journal.py [--seconds 5] [--passes 3]
        [--concurrency 1,10,50] [--generator threads|asyncio] [--json PATH]

Two services run as shipped (``legspasm serve --dev``, one uvicorn worker, SQLite in a fresh
temporary folder), one after the other for each pass, differing only in
``LEGSPASM_AUDIT_JOURNAL``: ``true`` (the default: each request appends its record to the
fdatasync'ed journal and a background thread moves it into the database in batches) or
``false`` (each request writes its row through the ORM in its own transaction, as before). The
load is the patient-view request of ``benchmarks/service_load.py`` (the vignette
``rls-low-ferritin-crcl-25`` with its full prefetch), N keep-alive clients back to back.

Each cell: requests/s (median of the passes), p50/p99 latency in ms, and the ratio journal /
direct. Check: after each service stops (SIGTERM), its audit rows equal the POSTs it answered
(the journal is drained on the way out). Exits 1 when a request fails or a count differs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from legspasm.audit import AuditStore
from run import percentile
from service_load import GENERATORS, Run, Server, scenarios, start_server

MODES = {"journal": "true", "direct": "false"}


def one(mode: str, clients: int, args: argparse.Namespace, tag: str) -> tuple[Run, list[str]]:
    view = next(s for s in scenarios() if s.name == "patient-view")
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"legspasm-journal-{mode}-") as tmp:
        os.environ["LEGSPASM_AUDIT_JOURNAL"] = MODES[mode]
        server: Server = start_server(Path(tmp))
        try:
            run = GENERATORS[args.generator](server, view, clients, args.warmup, args.seconds, tag)
        finally:
            server.stop()
        with AuditStore.open(server.database_url, create=False) as store:
            rows = store.count_invocations()
        if run.errors or run.transport_errors:
            problems.append(f"{mode} at {clients}: {run.errors + run.transport_errors} failed")
        if rows != run.answered_posts:
            problems.append(
                f"{mode} at {clients}: {rows} audit rows for {run.answered_posts} answered"
            )
    return run, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="threads")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    runs: dict[tuple[str, int], list[Run]] = {}
    problems: list[str] = []
    for p in range(args.passes):
        for clients in levels:
            for mode in MODES if p % 2 == 0 else reversed(MODES):  # alternate the order
                run, found = one(mode, clients, args, f"{mode}-{clients}-{p}")
                runs.setdefault((mode, clients), []).append(run)
                problems += found

    report: list[dict[str, Any]] = []
    print(f"patient-view, {args.passes} passes of {args.seconds:g} s, {args.generator} clients")
    print(
        f"{'clients':>7}  {'journal r/s':>11}  {'direct r/s':>10}  {'ratio':>5}  "
        f"{'journal p50/p99 ms':>18}  {'direct p50/p99 ms':>17}"
    )
    for clients in levels:
        cell: dict[str, Any] = {"clients": clients}
        for mode in MODES:
            rs = runs[(mode, clients)]
            lat = sorted(ns / 1e6 for r in rs for ns in r.latencies_ns)
            cell[mode] = {
                "rate": statistics.median(r.rate for r in rs),
                "p50_ms": percentile(lat, 50),
                "p99_ms": percentile(lat, 99),
                "server_cpu_pct": statistics.median(r.server_cpu or 0.0 for r in rs),
            }
        cell["ratio"] = cell["journal"]["rate"] / cell["direct"]["rate"]
        report.append(cell)
        j, d = cell["journal"], cell["direct"]
        print(
            f"{clients:>7}  {j['rate']:>11.1f}  {d['rate']:>10.1f}  {cell['ratio']:>5.2f}  "
            f"{j['p50_ms']:>8.1f}/{j['p99_ms']:<9.1f}  {d['p50_ms']:>8.1f}/{d['p99_ms']:<8.1f}"
        )
    for p in problems:
        print("FAIL:", p)
    if args.json:
        args.json.write_text(json.dumps({"cells": report, "problems": problems}, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
