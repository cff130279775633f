"""CDS Hooks service under an external load generator (wrk): requests/s and latency of
patient-view and order-sign against GET /healthz of the same app, side by side; and with
several worker processes against one.

Run from the repository root (it starts the service itself, as shipped)::

    .venv/bin/python benchmarks/service_wrk.py [--seconds 5] [--concurrency 1,10,50]
        [--threads 2] [--workers 1,2] [--json PATH]

wrk (Debian's package) is a separate C process with its own event loop, so the generator is not
the bottleneck the way a Python client on the same two cores is (benchmarks/service_load.py).
The service and its scenarios are those of service_load.py: ``legspasm serve`` with a SQLite
audit store in a fresh folder, the prefetch of the vignette rls-low-ferritin-crcl-25, and for
order-sign a draft pramipexole order (a warning card with suggestions). ``--workers 1,2``
starts one service per worker count (``legspasm serve --workers N``, all on the same machine
at once) and measures them alternately, cell by cell, so a busy neighbour slows both alike.
Each cell: requests/s, p50 and p99 latency (wrk --latency), non-2xx answers, the rate as a
ratio of /healthz at the same concurrency and worker count, and as a ratio of the first worker
count's rate (``x w1``). Targets (issue 16): at 50 clients p99 <= 100 ms and >= 0.5x the
/healthz rate, reported PASS/FAIL. A benchmark, not a test: exits 0 when targets are missed,
2 when wrk is absent or the service does not start.
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

from service_load import Server, scenarios, start_server

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
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if rate is None or p50 is None or p99 is None:
        raise ValueError("wrk printed no summary:\n" + out)
    return {
        "rps": float(rate.group(1)),
        "requests": int(total.group(1)) if total else 0,
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


def _scripts(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each scenario's wrk script and path."""
    scripts = {}
    for s in scenarios():
        body = ""
        if s.body is not None:
            payload = s.body.decode().replace('"hookInstance":"', '"hookInstance":"wrk-')
            body = f"wrk.body = {json.dumps(payload)}"
        path = folder / f"{s.name.replace(' ', '_').replace('/', '')}.lua"
        path.write_text(_LUA.format(method=s.method, body=body), encoding="utf-8")
        scripts[s.name] = (path, s.path)
    return scripts


def measure(
    bases: dict[int, str], levels: list[int], threads: int, seconds: int, folder: Path
) -> list[dict[str, Any]]:
    """One row per (clients, workers): each scenario's cell, measured alternately across the
    worker counts (``bases``: the base URL of the service with that many workers)."""
    scripts = _scripts(folder)
    first = next(iter(bases))
    cells: list[dict[str, Any]] = []
    for clients in levels:
        rows = {n: {"clients": clients, "workers": n} for n in bases}
        for name, (script, path) in scripts.items():
            for n, base in bases.items():
                wrk(base + path, script, clients, threads, 1)  # warm-up
                rows[n][name] = wrk(base + path, script, clients, threads, seconds)
        for row in rows.values():
            healthz = row["GET /healthz"]["rps"]
            for name in scripts:
                row[name]["ratio_to_healthz"] = row[name]["rps"] / healthz if healthz else None
                one = rows[first][name]["rps"]
                row[name]["ratio_to_first_workers"] = row[name]["rps"] / one if one else None
            cells.append(row)
    return cells


def report(cells: list[dict[str, Any]]) -> None:
    first = cells[0]["workers"]
    print(
        f"{'clients':>7} {'workers':>7} {'scenario':<14} {'req/s':>9} {'x healthz':>9} "
        f"{'x w' + str(first):>7} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
    )
    for row in cells:
        for name, cell in row.items():
            if name in ("clients", "workers"):
                continue
            print(
                f"{row['clients']:>7} {row['workers']:>7} {name:<14} {cell['rps']:>9.0f} "
                f"{cell['ratio_to_healthz']:>9.2f} {cell['ratio_to_first_workers']:>7.2f} "
                f"{cell['p50_ms']:>8.1f} {cell['p99_ms']:>8.1f} {cell['non_2xx']:>8}"
            )
    for row in (r for r in cells if r["clients"] == 50):
        for name in ("patient-view", "order-sign"):
            c = row[name]
            ok = c["p99_ms"] <= 100 and (c["ratio_to_healthz"] or 0) >= 0.5
            print(
                f"target at 50 clients, {row['workers']} worker(s), {name}: p99 <= 100 ms and "
                f">= 0.5x /healthz: {'PASS' if ok else 'FAIL'}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--concurrency", default="1,10,50")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", default="1", help="worker counts side by side, e.g. 1,2")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.concurrency.split(",")]
    counts = [int(x) for x in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        servers: dict[int, Server] = {}
        try:
            for n in counts:
                (folder / f"w{n}").mkdir()
                servers[n] = start_server(folder / f"w{n}", workers=n)
            bases = {n: server.base for n, server in servers.items()}
            cells = measure(bases, levels, args.threads, args.seconds, folder)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2
        finally:
            for server in servers.values():
                server.stop()
    report(cells)
    if args.json:
        args.json.write_text(json.dumps(cells, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
