"""Population screening throughput: the local and Spark engines against DuckDB's plain scan.

Run from the repository root::

    .venv/bin/python benchmarks/screen.py [--patients 100000] [--seed 7] [--engines local,spark]
        [--keep DIR] [--json PATH]

1. ``legspasm synth --patients N --seed S`` writes a synthetic Bulk Data export (timed).
2. The floor, in the same run: DuckDB's ``read_ndjson`` reads every file of the export (all
   resource types, ``union_by_name``) and counts the ``resourceType`` values: a plain scan with
   JSON parsing and nothing else.
3. ``legspasm screen EXPORT --out findings.parquet`` with each engine, as a subprocess (so its
   peak memory, workers included, is measured: ``RUSAGE_CHILDREN`` max RSS).

Reported per engine: seconds, patients/s, MB/s of input, the time relative to the DuckDB scan
(how many times slower than the floor), and peak RSS. A benchmark, not a test: it exits 0 unless
a step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _script() -> str:
    beside = Path(sys.executable).parent / "legspasm"
    return str(beside) if beside.exists() else (shutil.which("legspasm") or "legspasm")


_WRAP = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]);"
    "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
    "sys.exit(r.returncode)"
)


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; (seconds, peak RSS in MB of it or its largest worker, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak_kb = [line for line in proc.stderr.splitlines() if line.startswith("PEAK ")][-1]
    return seconds, int(peak_kb.split()[1]) / 1024, proc.stdout


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def duckdb_scan(folder: Path) -> tuple[float, int]:
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    row = con.execute(
        f"SELECT count(resourceType) FROM read_ndjson('{folder}/*.ndjson*', union_by_name = true)"
    ).fetchone()
    assert row is not None
    rows = row[0]
    return time.perf_counter() - t0, int(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--engines", default="local,spark")
    ap.add_argument("--keep", type=Path, help="keep the export and outputs in this folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="legspasm-bench-screen-"))
    work.mkdir(parents=True, exist_ok=True)
    export = work / "export"
    report: dict[str, Any] = {"patients": args.patients, "seed": args.seed, "cpus": os.cpu_count()}
    try:
        if not export.exists():
            seconds, _, _ = _timed(
                [
                    _script(),
                    "synth",
                    "--patients",
                    str(args.patients),
                    "--seed",
                    str(args.seed),
                    str(export),
                ]
            )
            report["synth_seconds"] = round(seconds, 2)
        mb = _size(export) / 1e6
        report["input_mb"] = round(mb, 1)
        scan_s, lines = duckdb_scan(export)
        report["duckdb"] = {
            "seconds": round(scan_s, 3),
            "lines": lines,
            "mb_per_s": round(mb / scan_s, 1),
        }
        rows = []
        for engine in [e for e in args.engines.split(",") if e]:
            if engine == "spark":
                try:
                    import pyspark  # noqa: F401
                except ImportError:
                    print("spark: pyspark is not installed; skipped", file=sys.stderr)
                    continue
            out = work / f"findings-{engine}.parquet"
            seconds, peak, _ = _timed(
                [
                    _script(),
                    "screen",
                    str(export),
                    "--as-of",
                    "2026-11-21",
                    "--out",
                    str(out),
                    "--engine",
                    engine,
                ]
            )
            summary = json.loads(Path(str(out) + ".summary.json").read_text())
            rows.append(
                {
                    "engine": engine,
                    "seconds": round(seconds, 2),
                    "patients": summary["patients"],
                    "findings": summary["findings"],
                    "patients_per_s": round(summary["patients"] / seconds, 1),
                    "mb_per_s": round(mb / seconds, 2),
                    "x_duckdb_scan": round(seconds / scan_s, 1),
                    "peak_rss_mb": round(peak, 1),
                }
            )
        report["engines"] = rows
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"screen benchmark: {args.patients:,} synthetic patients, {report['input_mb']} MB NDJSON, "
        f"{os.cpu_count()} CPUs"
    )
    d = report["duckdb"]
    print(
        f"floor: DuckDB read_ndjson scan {d['seconds']} s ({d['mb_per_s']} MB/s, "
        f"{d['lines']:,} lines)\n"
    )
    print("| engine | seconds | patients/s | MB/s | × DuckDB scan | peak RSS MB | findings |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in report["engines"]:
        print(
            f"| {r['engine']} | {r['seconds']} | {r['patients_per_s']:,} | {r['mb_per_s']} | "
            f"{r['x_duckdb_scan']} | {r['peak_rss_mb']} | {r['findings']:,} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
