"""Population screening throughput against DuckDB's plain scan of the same files, side by side.

Run from the repository root::

    .venv/bin/python benchmarks/screen.py [--patients 100000] [--prevalence 0.05] [--runs 3]
        [--engines local,spark] [--assess-all] [--memory-sizes 10000,300000] [--seed 7]
        [--keep DIR] [--json PATH]

1. ``legspasm synth --patients N --prevalence P`` writes a synthetic Bulk Data export in which
   about P of the patients hold domain data (the rest have visits only, as in a clinic's
   population).
2. Each run, side by side: the floor, DuckDB's ``read_ndjson`` reading every file of the export
   (all resource types, ``union_by_name``) and counting the ``resourceType`` values (a plain scan
   with JSON parsing and nothing else); then ``legspasm screen EXPORT --out findings.csv`` with
   each engine, as a subprocess (so its peak memory, workers included, is measured:
   ``RUSAGE_CHILDREN`` max RSS). The ratio is the engine's MB/s over the scan's in the same run.
3. ``--assess-all``: once, the local engine assessing every patient (no first pass): the cost
   the first pass saves.
4. The engines' tables are compared byte for byte (identical findings).
5. ``--memory-sizes``: the local engine's peak memory on exports of those sizes (same
   prevalence): it should stay flat.

Reported per engine: the median of the runs and each run (seconds, patients/s, MB/s, the ratio
to the scan's MB/s, peak RSS). A benchmark, not a test: it exits 0 unless a step fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
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


def synth(folder: Path, patients: int, seed: int, prevalence: float) -> float:
    if folder.exists():
        return 0.0
    args = ["synth", "--patients", str(patients), "--seed", str(seed)]
    args += ["--prevalence", str(prevalence), str(folder)]
    seconds, _, _ = _timed([_script(), *args])
    return seconds


def screen(export: Path, out: Path, engine: str, *extra: str) -> dict[str, Any]:
    args = ["screen", str(export), "--as-of", "2026-11-21", "--out", str(out)]
    seconds, peak, _ = _timed([_script(), *args, "--engine", engine, *extra])
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    return {
        "seconds": round(seconds, 2),
        "patients": summary["patients"],
        "patients_assessed": summary["patients_assessed"],
        "findings": summary["findings"],
        "peak_rss_mb": round(peak, 1),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--prevalence", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--engines", default="local,spark")
    ap.add_argument("--assess-all", action="store_true", help="also time assessing everyone")
    ap.add_argument("--memory-sizes", default="10000,300000")
    ap.add_argument("--keep", type=Path, help="keep the exports and outputs in this folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="legspasm-bench-screen-"))
    work.mkdir(parents=True, exist_ok=True)
    export = work / f"export-{args.patients}"
    engines = [e for e in args.engines.split(",") if e]
    if "spark" in engines:
        try:
            import pyspark  # noqa: F401
        except ImportError:
            print("spark: pyspark is not installed; skipped", file=sys.stderr)
            engines.remove("spark")
    report: dict[str, Any] = {
        "patients": args.patients,
        "prevalence": args.prevalence,
        "seed": args.seed,
        "cpus": os.cpu_count(),
    }
    try:
        report["synth_seconds"] = round(synth(export, args.patients, args.seed, args.prevalence), 2)
        mb = _size(export) / 1e6
        report["input_mb"] = round(mb, 1)
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        scans = []
        for i in range(args.runs):
            scan_s, lines = duckdb_scan(export)
            scans.append({"seconds": round(scan_s, 3), "mb_per_s": round(mb / scan_s, 1)})
            for engine in engines:
                r = screen(export, work / f"findings-{engine}.csv", engine)
                r["mb_per_s"] = round(mb / r["seconds"], 2)
                r["patients_per_s"] = round(r["patients"] / r["seconds"], 1)
                r["x_duckdb_mb_per_s"] = round(scan_s / r["seconds"], 3)
                r["run"] = i + 1
                runs[engine].append(r)
        report["duckdb"] = {
            "lines": lines,
            "seconds": statistics.median(s["seconds"] for s in scans),
            "mb_per_s": statistics.median(s["mb_per_s"] for s in scans),
            "runs": scans,
        }
        rows = []
        for engine, rs in runs.items():
            med = {
                k: statistics.median(r[k] for r in rs)
                for k in ("seconds", "mb_per_s", "patients_per_s", "x_duckdb_mb_per_s")
            }
            peak = max(r["peak_rss_mb"] for r in rs)
            rows.append({"engine": engine, **rs[-1], **med, "peak_rss_mb": peak, "runs": rs})
        report["engines"] = rows
        digests = {r["engine"]: r["sha256"] for r in rows}
        report["identical_findings"] = len(set(digests.values())) <= 1
        if args.assess_all:
            scan_s, _ = duckdb_scan(export)
            r = screen(export, work / "findings-all.csv", "local", "--assess-all")
            r["x_duckdb_mb_per_s"] = round(scan_s / r["seconds"], 3)
            r["mb_per_s"] = round(mb / r["seconds"], 2)
            r["patients_per_s"] = round(r["patients"] / r["seconds"], 1)
            report["assess_all"] = r
            report["identical_findings"] &= r["sha256"] in set(digests.values()) or not digests
        memory = []
        for n in [int(x) for x in args.memory_sizes.split(",") if x]:
            folder = work / f"export-{n}"
            synth(folder, n, args.seed, args.prevalence)
            r = screen(folder, work / f"findings-memory-{n}.csv", "local")
            memory.append({"patients": n, "input_mb": round(_size(folder) / 1e6, 1), **r})
        report["memory"] = memory
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def _print(report: dict[str, Any]) -> None:
    d = report["duckdb"]
    print(
        f"screen benchmark: {report['patients']:,} synthetic patients "
        f"({report['prevalence']:.0%} with domain data), {report['input_mb']} MB NDJSON, "
        f"{report['cpus']} CPUs"
    )
    print(
        f"floor: DuckDB read_ndjson scan, median {d['seconds']} s ({d['mb_per_s']} MB/s, "
        f"{d['lines']:,} lines)\n"
    )
    print("| engine | run | seconds | patients/s | MB/s | × DuckDB MB/s | peak RSS MB | assessed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for e in report["engines"]:
        for r in e["runs"]:
            print(
                f"| {e['engine']} | {r['run']} | {r['seconds']} | {r['patients_per_s']:,} | "
                f"{r['mb_per_s']} | {r['x_duckdb_mb_per_s']} | {r['peak_rss_mb']} | "
                f"{r['patients_assessed']:,} |"
            )
        print(
            f"| **{e['engine']}** | median | {e['seconds']} | {e['patients_per_s']:,} | "
            f"{e['mb_per_s']} | {e['x_duckdb_mb_per_s']} | {e['peak_rss_mb']} | |"
        )
    if "assess_all" in report:
        a = report["assess_all"]
        print(
            f"| local --assess-all | 1 | {a['seconds']} | {a['patients_per_s']:,} | "
            f"{a['mb_per_s']} | {a['x_duckdb_mb_per_s']} | {a['peak_rss_mb']} | "
            f"{a['patients_assessed']:,} |"
        )
    by = {e["engine"]: e for e in report["engines"]}
    if "local" in by and "spark" in by:
        print(f"\nspark / local time: {by['spark']['seconds'] / by['local']['seconds']:.2f}")
    print(f"identical findings across engines: {report['identical_findings']}")
    if report["memory"]:
        print("\n| patients | MB | seconds | peak RSS MB | assessed |")
        print("|---:|---:|---:|---:|---:|")
        for m in report["memory"]:
            print(
                f"| {m['patients']:,} | {m['input_mb']} | {m['seconds']} | {m['peak_rss_mb']} | "
                f"{m['patients_assessed']:,} |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
