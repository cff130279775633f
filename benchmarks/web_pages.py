"""The clinician web pages: time per page over real TCP, against GET /healthz side by side.

Run from the repository root (it starts the service itself)::

    .venv/bin/python benchmarks/web_pages.py [--repeat 60] [--quick] [--json PATH]

The service runs as a second process exactly as ``make run`` starts it (``legspasm serve --dev``,
SQLite audit store in a temporary folder; see ``service_load.start_server``). One client sends
the requests one after another, interleaved round-robin so every page sees the same machine
state, and reports the median and 95th percentile of each page's time, and its ratio to the
trivial /healthz:

- GET / (the intake form, drawn from the Questionnaire and the knowledge base);
- POST /intake/derived (the live IRLS and creatinine clearance while the form is filled in);
- POST /assess (the form of the example ``rls-low-ferritin``: read, evaluate, audit row, 303);
- GET /assessments/{id} (the result page), GET .../print (summary and handout);
- GET .../summary.pdf and .../handout.pdf (reportlab);
- POST /upload (a Synthea patient bundle, ~36 KB: FHIR mapping, evaluate, audit row).

The target the issue gives is qualitative ("fast"); this reports numbers, it passes or fails
nothing. Exit 1 when a request gets the wrong status, 2 when the service does not start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from service_load import start_server

ROOT = Path(__file__).resolve().parent.parent
SYNTHEA = ROOT / "tests" / "fixtures" / "synthea" / "0fe762e3-9350-4387-98d4-a7e8a739d4e1.json"


def _form() -> dict[str, list[str]]:
    from legspasm import load_knowledge
    from legspasm.caseio import load_case
    from legspasm.web.form import case_to_form

    kb = load_knowledge()
    return case_to_form(load_case(ROOT / "src/legspasm/examples/rls-low-ferritin.yaml"), kb)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="5 rounds (smoke test)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rounds = 5 if args.quick else args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server = start_server(Path(tmp))
        except RuntimeError as exc:
            print(f"the service did not start: {exc}", file=sys.stderr)
            return 2
        try:
            with httpx.Client(base_url=server.base, timeout=30, trust_env=False) as client:
                form = _form()
                r = client.post("/assess", data=form)
                if r.status_code != 303:
                    print(f"POST /assess: {r.status_code}", file=sys.stderr)
                    return 1
                page = r.headers["location"]
                synthea = SYNTHEA.read_bytes()
                derived = {k: v for k, v in form.items() if k.startswith(("patient.", "lab."))}
                steps: list[tuple[str, int, Callable[[], httpx.Response]]] = [
                    ("GET /healthz (baseline)", 200, lambda: client.get("/healthz")),
                    ("GET / (intake form)", 200, lambda: client.get("/")),
                    (
                        "POST /intake/derived",
                        200,
                        lambda: client.post("/intake/derived", data=derived),
                    ),
                    ("POST /assess (form)", 303, lambda: client.post("/assess", data=form)),
                    ("GET result page", 200, lambda: client.get(page)),
                    ("GET print view", 200, lambda: client.get(page + "/print")),
                    ("GET summary.pdf", 200, lambda: client.get(page + "/summary.pdf")),
                    ("GET handout.pdf", 200, lambda: client.get(page + "/handout.pdf")),
                    (
                        "POST /upload (Synthea bundle)",
                        303,
                        lambda: client.post(
                            "/upload", files={"file": (SYNTHEA.name, synthea, "application/json")}
                        ),
                    ),
                ]
                times: dict[str, list[float]] = {name: [] for name, _, _ in steps}
                sizes: dict[str, int] = {}
                for _ in range(3):  # warm-up
                    for _name, _, call in steps:
                        call()
                for _ in range(rounds):
                    for name, status, call in steps:
                        t0 = time.perf_counter()
                        resp = call()
                        times[name].append((time.perf_counter() - t0) * 1000)
                        if resp.status_code != status:
                            print(f"{name}: {resp.status_code}", file=sys.stderr)
                            return 1
                        sizes[name] = len(resp.content)
        finally:
            server.stop()
    base = statistics.median(times["GET /healthz (baseline)"])
    rows: list[dict[str, Any]] = []
    for name, values in times.items():
        values.sort()
        p50 = statistics.median(values)
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        rows.append(
            {
                "page": name,
                "p50_ms": round(p50, 2),
                "p95_ms": round(p95, 2),
                "vs_healthz": round(p50 / base, 1),
                "bytes": sizes[name],
            }
        )
    print(f"web pages: {rounds} rounds, one client, service as a second process\n")
    print("| page | p50 ms | p95 ms | × /healthz | response bytes |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['page']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
            f"{row['vs_healthz']:.1f} | {row['bytes']:,} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
