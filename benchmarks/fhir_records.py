"""FHIR benchmark: Synthea bundles read and assessed per second, against plain ``json.loads``.

Run from the repository root (``make bench`` runs it after benchmarks/run.py)::

    .venv/bin/python benchmarks/fhir_records.py [--passes 3] [--json PATH]

The shared Synthea bundles (../shared/data/synthea-smart-*/bundles/*.json) are read into memory
first, so disk I/O is outside every timing. Then, in the same process and run, each pass times:

1. baseline: ``json.loads`` of every bundle;
2. read + map: ``json.loads`` + ``records_from_json`` + ``to_case`` (the FHIR boundary);
3. read + map + assess: the above + ``evaluate`` + ``annotate`` (what ``legspasm assess`` does);
4. FHIR out: ``assessment_bundle`` for each assessment, and ``check_bundle`` (R4B model
   validation) on a sample, since the CLI validates everything it prints.

The median pass is reported, with ratios to the baseline. It is a benchmark, not a test: it exits
0 whatever the numbers, 1 when a bundle fails to map or assess, 2 when the data are absent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from legspasm import evaluate, load_knowledge
from legspasm.fhir import assessment_bundle, check_bundle, records_from_json, to_case

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FOLDERS = ("synthea-smart-generated-sample-data/bundles", "synthea-smart-bulk-data-server/bundles")
AS_OF = dt.date(2026, 11, 21)


def _median_rate(fn: Callable[[], int], passes: int) -> tuple[float, float, int]:
    """(items per second, seconds, items) of the median pass."""
    runs = []
    for _ in range(passes):
        t0 = time.perf_counter()
        n = fn()
        runs.append((time.perf_counter() - t0, n))
    seconds, n = sorted(runs)[len(runs) // 2]
    return n / seconds, seconds, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--sample", type=int, default=50, help="bundles validated with check_bundle")
    ap.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = ap.parse_args(argv)
    files = sorted(f for folder in FOLDERS for f in (SHARED / folder).glob("*.json"))
    if not files:
        print(f"no Synthea bundles under {SHARED}: nothing to measure", file=sys.stderr)
        return 2
    blobs = [f.read_bytes() for f in files]
    megabytes = sum(map(len, blobs)) / 1e6
    kb = load_knowledge()

    def baseline() -> int:
        for b in blobs:
            json.loads(b)
        return len(blobs)

    def read_map() -> int:
        for i, b in enumerate(blobs):
            for rec in records_from_json(json.loads(b), str(i)):
                to_case(rec, kb, AS_OF)
        return len(blobs)

    assessed: list[tuple[Any, str | None]] = []

    def read_map_assess() -> int:
        assessed.clear()
        for i, b in enumerate(blobs):
            for rec in records_from_json(json.loads(b), str(i)):
                m = to_case(rec, kb, AS_OF)
                assessed.append((m.annotate(evaluate(m.case, kb, AS_OF)), rec.patient_id))
        return len(blobs)

    def fhir_out() -> int:
        for a, pid in assessed:
            assessment_bundle(a, f"Patient/{pid}" if pid else None)
        return len(assessed)

    try:
        read_map_assess()  # warm-up, and fail early on a bad bundle
    except Exception as exc:
        print(f"a bundle failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    results = {
        "baseline: json.loads": _median_rate(baseline, args.passes),
        "read + map (to_case)": _median_rate(read_map, args.passes),
        "read + map + assess": _median_rate(read_map_assess, args.passes),
        "FHIR out (assessment_bundle)": _median_rate(fhir_out, args.passes),
    }
    sample = assessed[: args.sample]
    t0 = time.perf_counter()
    problems = sum(
        len(check_bundle(assessment_bundle(a, f"Patient/{p}"), frozenset({f"Patient/{p}"})))
        for a, p in sample
    )
    check_rate = len(sample) / (time.perf_counter() - t0)
    base = results["baseline: json.loads"][0]
    print(
        f"FHIR benchmark · {len(files)} Synthea bundles, {megabytes:.1f} MB in memory · "
        f"as of {AS_OF} · median of {args.passes} passes · Python {platform.python_version()}"
    )
    print(f"{'':32} {'bundles/s':>10} {'s/pass':>8} {'vs json.loads':>14}")
    for name, (rate, seconds, _) in results.items():
        print(f"{name:32} {rate:10,.0f} {seconds:8.3f} {rate / base:13.3f}x")
    label = "check_bundle (R4B validation)"
    print(f"{label:32} {check_rate:10,.0f} {'':8} {check_rate / base:13.3f}x")
    print(f"validation problems in {len(sample)} sampled outputs: {problems}")
    if args.json:
        report = {
            "bundles": len(files),
            "megabytes": round(megabytes, 2),
            "passes": args.passes,
            "rates_per_s": {k: round(v[0], 1) for k, v in results.items()},
            "check_bundle_per_s": round(check_rate, 1),
            "ratio_to_json_loads": {k: round(v[0] / base, 4) for k, v in results.items()},
            "validation_problems": problems,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
