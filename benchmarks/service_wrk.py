"""CDS Hooks service under an external load generator (wrk): requests/s and latency of
patient-view and order-sign against GET /healthz of the same app, side by side.

Run from the repository root (it starts the service itself, as shipped)::

    .venv/bin/python benchmarks/service_wrk.py [--seconds 5] [--concurrency 1,10,50]
        [--threads 2] [--json PATH]

wrk (Debian's package) is a separate C process with its own event loop, so the generator is not
the bottleneck the way a Python client on the same two cores is (benchmarks/service_load.py).
The service and its scenarios are those of service_load.py: one uvicorn worker, SQLite audit
store in a fresh folder, the prefetch of the vignette rls-low-ferritin-crcl-25, and for
order-sign a draft pramipexole order (a warning card with suggestions). Each cell: requests/s,
p50 and p99 latency (wrk --latency), non-2xx answers, and the rate as a ratio of /healthz at the
same concurrency. Targets (issue 16): at 50 clients p99 <= 100 ms and >= 0.5x the /healthz
rate, reported PASS/FAIL. A benchmark, not a test: exits 0 when targets are missed, 2 when wrk
is absent or the service does not start.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from service_load import scenarios, start_server

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_LUA = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{body}
"""


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> dict[str, Any]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if rate is None or p50 is None or p99 is None:
        raise ValueError("wrk printed no summary:\n" + out)
    return {
        "rps": float(rate.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def wrk(url: str, script: Path, clients: int, threads: int, seconds: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{min(threads, clients)}",
        f"-c{clients}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.concurrency.split(",")]
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            server = start_server(folder)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2
        try:
            scripts = {}
            for s in scenarios():
                body = ""
                if s.body is not None:
                    payload = s.body.decode().replace('"hookInstance":"', '"hookInstance":"wrk-')
                    body = f"wrk.body = {json.dumps(payload)}"
                path = folder / f"{s.name.replace(' ', '_').replace('/', '')}.lua"
                path.write_text(_LUA.format(method=s.method, body=body), encoding="utf-8")
                scripts[s.name] = (path, server.base + s.path)
            for clients in levels:
                row: dict[str, Any] = {"clients": clients}
                for name, (script, url) in scripts.items():
                    wrk(url, script, clients, args.threads, 1)  # warm-up
                    row[name] = wrk(url, script, clients, args.threads, args.seconds)
                base = row["GET /healthz"]["rps"]
                for name in scripts:
                    row[name]["ratio_to_healthz"] = row[name]["rps"] / base if base else None
                cells.append(row)
        finally:
            server.stop()
    print(
        f"{'clients':>7} {'scenario':<14} {'req/s':>9} {'x healthz':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'non-2xx':>8}"
    )
    for row in cells:
        for name, cell in row.items():
            if name == "clients":
                continue
            print(
                f"{row['clients']:>7} {name:<14} {cell['rps']:>9.0f} "
                f"{cell['ratio_to_healthz']:>9.2f} {cell['p50_ms']:>8.1f} {cell['p99_ms']:>8.1f} "
                f"{cell['non_2xx']:>8}"
            )
    top = next((r for r in cells if r["clients"] == 50), None)
    if top is not None:
        for name in ("patient-view", "order-sign"):
            c = top[name]
            ok = c["p99_ms"] <= 100 and (c["ratio_to_healthz"] or 0) >= 0.5
            print(
                f"target at 50 clients, {name}: p99 <= 100 ms and >= 0.5x /healthz: "
                f"{'PASS' if ok else 'FAIL'}"
            )
    if args.json:
        args.json.write_text(json.dumps(cells, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
