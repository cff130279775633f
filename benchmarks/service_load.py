"""CDS Hooks service under load: requests/s and latency over real TCP, against GET /healthz.

Run from the repository root (it starts the service itself)::

    .venv/bin/python benchmarks/service_load.py [--seconds 5] [--passes 3]
        [--concurrency 1,10,50] [--generator auto|threads|asyncio] [--quick] [--json PATH]

The service runs as a second process, exactly as shipped: ``legspasm serve --dev --port N
--as-of 2026-11-21`` (one uvicorn worker, no access log, 4 request threads), with its audit
store in a fresh SQLite file (LEGSPASM_DATABASE_URL) in a temporary folder. This process
generates the load: N clients, each with its own keep-alive connection, send requests back to
back for a warm-up and then a timed window. Scenarios, measured side by side at each
concurrency (1, 10, 50):

1. baseline: GET /healthz (no auth, no database, no engine);
2. patient-view: POST /cds-services/legspasm-patient-view with the full prefetch (all eight
   keys; null or FHIR resources) of the vignette ``rls-low-ferritin-crcl-25``;
3. order-sign: POST /cds-services/legspasm-order-sign, the same prefetch plus a draft order of
   pramipexole (a warning card with suggestions).

Each cell reports requests/s (median of the passes), p50/p95/p99 latency in ms (over every
request of every pass, as the client saw it), non-200 answers, the rate relative to /healthz at
the same concurrency, CPU use of the server and of this generator (% of one core), and for the
POSTs the handler's own time from the audit store (``latency_ms``: from the endpoint's start,
after the body is parsed and validated, to just before the audit row is written; so mapping,
engine and cards, without queueing, parsing, the audit write, serialisation or the network).

The generator: threads with one ``httpx.Client`` each, or asyncio tasks with one
``httpx.AsyncClient`` each. ``--generator auto`` (the default) measures both on /healthz at the
highest concurrency and keeps the faster one for the whole run. Both share the machine's cores
with the server, so on a small machine the generator's own CPU use lowers every number.

Checks: every POST the service answered must have left exactly one audit row (counted with
``AuditStore.count_invocations`` after the server stops). Target (from the issue): p99 < 50 ms
at 50 concurrent clients, reported PASS/FAIL. This is a benchmark, not a test: it exits 0 when
the latency target is missed, 1 when a request fails (non-200 or a transport error), a check
request gets the wrong answer, or the audit count differs, 2 when the service does not start.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select

from legspasm.audit import AuditStore
from legspasm.audit.tables import InvocationRow
from legspasm.service.hooks import PREFETCH_KEY_OF_TYPE
from run import percentile

ROOT = Path(__file__).resolve().parent.parent
VIGNETTE = ROOT / "tests" / "vignettes" / "rls-low-ferritin-crcl-25" / "bundle.json"
AS_OF = dt.date(2026, 11, 21)
TARGET_P99_MS = 50.0
TARGET_CLIENTS = 50
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HOOK_INSTANCE = b"@@HOOK-INSTANCE@@"  # replaced per request: a unique hookInstance
PREFETCH_KEYS = PREFETCH_KEY_OF_TYPE

Json = dict[str, Any]


# --- the requests --------------------------------------------------------------------------


def rls_prefetch() -> tuple[str, Json]:
    """The vignette as an EHR would prefetch it: the Patient, searchset Bundles, nulls."""
    bundle = json.loads(VIGNETTE.read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    # An EHR refers to its patient as Patient/<id>, not by the bundle's urn:uuid.
    resources = json.loads(json.dumps(resources).replace(f"urn:uuid:{pid}", f"Patient/{pid}"))
    prefetch: Json = dict.fromkeys(PREFETCH_KEYS.values())
    for r in resources:
        key = PREFETCH_KEYS[r["resourceType"]]
        if key == "patient":
            prefetch[key] = r
            continue
        found = prefetch[key] or {"resourceType": "Bundle", "type": "searchset", "entry": []}
        found["entry"].append({"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r})
        found["total"] = len(found["entry"])
        prefetch[key] = found
    return pid, prefetch


def pramipexole_order(pid: str) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "draft-pramipexole",
                    "status": "draft",
                    "intent": "order",
                    "medicationCodeableConcept": {
                        "coding": [{"system": RXNORM, "code": "746741", "display": "pramipexole"}],
                        "text": "pramipexole 0.125 mg tablet",
                    },
                    "subject": {"reference": f"Patient/{pid}"},
                    "authoredOn": AS_OF.isoformat(),
                    "dosageInstruction": [
                        {
                            "text": "0.125 mg once daily, 2 hours before bedtime",
                            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                            "doseAndRate": [
                                {
                                    "doseQuantity": {
                                        "value": 0.125,
                                        "unit": "mg",
                                        "system": "http://unitsofmeasure.org",
                                        "code": "mg",
                                    }
                                }
                            ],
                        }
                    ],
                }
            }
        ],
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    body: bytes | None = None  # a template holding HOOK_INSTANCE

    @property
    def is_post(self) -> bool:
        return self.method == "POST"


def scenarios() -> list[Scenario]:
    pid, prefetch = rls_prefetch()
    user = "Practitioner/bench"

    def body(hook: str, context: Json) -> bytes:
        req = {
            "hook": hook,
            "hookInstance": HOOK_INSTANCE.decode(),
            "context": {"userId": user, "patientId": pid, **context},
            "prefetch": prefetch,
        }
        return json.dumps(req, separators=(",", ":")).encode()

    return [
        Scenario("GET /healthz", "GET", "/healthz"),
        Scenario(
            "patient-view",
            "POST",
            "/cds-services/legspasm-patient-view",
            body("patient-view", {}),
        ),
        Scenario(
            "order-sign",
            "POST",
            "/cds-services/legspasm-order-sign",
            body("order-sign", {"draftOrders": pramipexole_order(pid)}),
        ),
    ]


def request_body(s: Scenario, tag: str) -> bytes | None:
    if s.body is None:
        return None
    return s.body.replace(HOOK_INSTANCE, f"{tag}:{uuid.uuid4().hex}".encode())


HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


# --- the server ----------------------------------------------------------------------------


def _legspasm_script() -> str:
    beside = Path(sys.executable).parent / "legspasm"
    if beside.exists():
        return str(beside)
    found = shutil.which("legspasm")
    if found is None:
        raise SystemExit("cannot find the legspasm console script next to this interpreter")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    database_url: str
    log: Path
    started_s: float

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (Linux /proc), else None."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(folder: Path, workers: int = 1, extra_env: dict[str, str] | None = None) -> Server:
    """``legspasm serve`` (``workers`` worker processes) on a SQLite file in ``folder``,
    answering /healthz from every worker (``extra_env``: more environment, e.g. a PYTHONPATH
    that runs another source tree)."""
    port = _free_port()
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    env = {**os.environ, "LEGSPASM_DATABASE_URL": url, **(extra_env or {})}
    log = folder / "server.log"
    cmd = [_legspasm_script(), "serve", "--dev", "--port", str(port), "--as-of", AS_OF.isoformat()]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, f"http://127.0.0.1:{port}", url, log, 0.0)
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}")
            try:
                up = client.get(server.base + "/healthz").status_code == 200
                if up and log.read_text().count("Application startup complete") >= workers:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("the service did not answer /healthz within 60 s")
            time.sleep(0.05)
    server.started_s = time.perf_counter() - t0
    return server


# --- the load generators -------------------------------------------------------------------


@dataclass
class Run:
    """One timed window of one scenario at one concurrency."""

    scenario: str
    clients: int
    generator: str
    seconds: float
    latencies_ns: list[int] = field(default_factory=list)  # requests inside the window
    errors: int = 0  # non-200 answers inside the window
    transport_errors: int = 0  # no answer at all (any time)
    answered_posts: int = 0  # POSTs answered with any status (warm-up included)
    answered_posts_200: int = 0
    server_cpu: float | None = None  # % of one core over the window
    generator_cpu: float | None = None

    @property
    def rate(self) -> float:
        return len(self.latencies_ns) / self.seconds


@dataclass
class _Window:
    start: int  # perf_counter_ns
    end: int


class _Tally:
    """Per-client results, merged into a Run after the window."""

    def __init__(self) -> None:
        self.lat: list[int] = []
        self.errors = self.transport = self.posts = self.posts_200 = 0

    def record(self, t0: int, t1: int, status: int | None, w: _Window, post: bool) -> None:
        if status is None:
            self.transport += 1
            return
        if post:
            self.posts += 1
            self.posts_200 += status == 200
        if t0 >= w.start and t1 <= w.end:
            self.lat.append(t1 - t0)
            self.errors += status != 200


def _merge(run: Run, tallies: Sequence[_Tally]) -> Run:
    for t in tallies:
        run.latencies_ns.extend(t.lat)
        run.errors += t.errors
        run.transport_errors += t.transport
        run.answered_posts += t.posts
        run.answered_posts_200 += t.posts_200
    return run


class _CpuMeter:
    """CPU use of the server and of this process between ``start`` and ``stop``."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.server_pct: float | None = None
        self.generator_pct: float | None = None

    def start(self) -> None:
        self._s0 = self.server.cpu_seconds()
        self._g0, self._t0 = time.process_time(), time.perf_counter()

    def stop(self) -> None:
        s1, g1 = self.server.cpu_seconds(), time.process_time()
        elapsed = time.perf_counter() - self._t0
        if self._s0 is not None and s1 is not None:
            self.server_pct = 100 * (s1 - self._s0) / elapsed
        self.generator_pct = 100 * (g1 - self._g0) / elapsed


def _until(t_ns: int) -> float:
    return max(0.0, (t_ns - time.perf_counter_ns()) / 1e9)


def run_threads(
    server: Server, s: Scenario, clients: int, warmup: float, seconds: float, tag: str
) -> Run:
    tallies = [_Tally() for _ in range(clients)]
    clock = time.perf_counter_ns
    w = _Window(0, 0)

    def open_window() -> None:
        w.start = clock() + int(warmup * 1e9)
        w.end = w.start + int(seconds * 1e9)

    barrier = threading.Barrier(clients + 1, action=open_window)

    def client(tally: _Tally) -> None:
        with httpx.Client(base_url=server.base, timeout=30, headers=HEADERS) as http:
            barrier.wait()
            while (t0 := clock()) < w.end:
                phase = "m" if t0 >= w.start else "w"
                try:
                    r = http.request(s.method, s.path, content=request_body(s, f"{tag}-{phase}"))
                    status: int | None = r.status_code
                except httpx.TransportError:
                    status = None
                tally.record(t0, clock(), status, w, s.is_post)

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in tallies]
    for t in threads:
        t.start()
    barrier.wait()
    cpu = _CpuMeter(server)
    time.sleep(_until(w.start))
    cpu.start()
    time.sleep(_until(w.end))
    cpu.stop()
    for t in threads:
        t.join()
    run = Run(s.name, clients, "threads", seconds, [], server_cpu=cpu.server_pct)
    run.generator_cpu = cpu.generator_pct
    return _merge(run, tallies)


def run_asyncio(
    server: Server, s: Scenario, clients: int, warmup: float, seconds: float, tag: str
) -> Run:
    tallies = [_Tally() for _ in range(clients)]
    clock = time.perf_counter_ns
    cpu = _CpuMeter(server)

    async def main() -> None:
        https = [
            httpx.AsyncClient(base_url=server.base, timeout=30, headers=HEADERS)
            for _ in range(clients)
        ]
        start = clock() + int(warmup * 1e9)
        w = _Window(start, start + int(seconds * 1e9))

        async def client(http: httpx.AsyncClient, tally: _Tally) -> None:
            while (t0 := clock()) < w.end:
                phase = "m" if t0 >= w.start else "w"
                try:
                    r = await http.request(
                        s.method, s.path, content=request_body(s, f"{tag}-{phase}")
                    )
                    status: int | None = r.status_code
                except httpx.TransportError:
                    status = None
                tally.record(t0, clock(), status, w, s.is_post)

        async def sample() -> None:
            await asyncio.sleep(_until(w.start))
            cpu.start()
            await asyncio.sleep(_until(w.end))
            cpu.stop()

        try:
            await asyncio.gather(
                sample(), *(client(h, t) for h, t in zip(https, tallies, strict=True))
            )
        finally:
            for h in https:
                await h.aclose()

    asyncio.run(main())
    run = Run(s.name, clients, "asyncio", seconds, [], server_cpu=cpu.server_pct)
    run.generator_cpu = cpu.generator_pct
    return _merge(run, tallies)


GENERATORS: dict[str, Callable[[Server, Scenario, int, float, float, str], Run]] = {
    "threads": run_threads,
    "asyncio": run_asyncio,
}


# --- checks --------------------------------------------------------------------------------


def check_answers(server: Server, scs: Sequence[Scenario]) -> tuple[list[str], _Tally]:
    """One request per scenario, its answer checked: the problems, and the POSTs answered."""
    problems: list[str] = []
    tally = _Tally()
    everything = _Window(0, 0)
    with httpx.Client(base_url=server.base, timeout=30, headers=HEADERS) as http:
        for s in scs:
            r = http.request(s.method, s.path, content=request_body(s, "check"))
            tally.record(0, 0, r.status_code, everything, s.is_post)
            if r.status_code != 200:
                problems.append(f"{s.name}: HTTP {r.status_code}: {r.text[:300]}")
                continue
            if not s.is_post:
                continue
            cards = r.json().get("cards", [])
            if s.name == "patient-view" and not cards:
                problems.append("patient-view: no card")
            if s.name == "order-sign" and not any(
                c["indicator"] == "warning"
                and c.get("suggestions")
                and "pramipexole" in c["summary"].lower()
                for c in cards
            ):
                problems.append("order-sign: no pramipexole warning card with suggestions")
    return problems, tally


def handler_latencies(database_url: str) -> dict[str, list[float]]:
    """The handler's own latency (ms) of every audited request, by hookInstance tag."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(InvocationRow.hook_instance, InvocationRow.latency_ms))
            out: dict[str, list[float]] = {}
            for hook_instance, ms in rows:
                out.setdefault(str(hook_instance).split(":", 1)[0], []).append(float(ms))
            return out
    finally:
        engine.dispose()


# --- the run -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> Json:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "httpx": httpx.__version__,
    }


def calibrate(
    server: Server, s: Scenario, clients: int, warmup: float, seconds: float
) -> dict[str, float]:
    """/healthz rate of each generator at ``clients``: which one drives the server harder."""
    return {
        name: fn(server, s, clients, warmup, seconds, f"cal-{name}").rate
        for name, fn in GENERATORS.items()
    }


def _ms(ns: Sequence[int], q: float) -> float:
    return percentile(ns, q) / 1e6


def summarise(runs: Sequence[Run], handler_ms: list[float] | None) -> Json:
    lat = sorted(ns for r in runs for ns in r.latencies_ns)
    rates = [r.rate for r in runs]
    server_cpu = [r.server_cpu for r in runs if r.server_cpu is not None]
    hs = sorted(handler_ms or [])
    return {
        "scenario": runs[0].scenario,
        "clients": runs[0].clients,
        "passes": len(runs),
        "requests": len(lat),
        "rate_per_s_median": statistics.median(rates),
        "rate_per_s_each": rates,
        "p50_ms": _ms(lat, 50),
        "p95_ms": _ms(lat, 95),
        "p99_ms": _ms(lat, 99),
        "max_ms": lat[-1] / 1e6 if lat else float("nan"),
        "errors": sum(r.errors for r in runs),
        "transport_errors": sum(r.transport_errors for r in runs),
        "server_cpu_pct": statistics.median(server_cpu) if server_cpu else None,
        "generator_cpu_pct": statistics.median(r.generator_cpu or 0.0 for r in runs),
        "handler_p50_ms": percentile(hs, 50) if hs else None,
        "handler_p99_ms": percentile(hs, 99) if hs else None,
    }


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}%"


def _opt_ms(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def render(report: Json) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        f"CDS Hooks service under load · {m['cpu']} · {m['cpus']} CPUs "
        f"({m['cpus_usable']} usable) · Python {m['python']} · httpx {m['httpx']}",
        "server: `legspasm serve --dev` (1 uvicorn process, no access log, 4 request threads, "
        "SQLite audit store), "
        f"started in {report['server_start_s']:.1f} s; load generator: {cfg['generator']} in "
        f"this process, sharing the same {m['cpus_usable']} CPUs with the server",
        f"each cell: {cfg['passes']} pass(es) of {cfg['seconds']:g} s after {cfg['warmup']:g} s "
        "warm-up, scenarios interleaved; req/s = median pass; latencies over all passes, as "
        "the client saw them",
        "",
    ]
    if report["calibration"]:
        cal = report["calibration"]
        lines += [
            f"Generator calibration: GET /healthz at {cal['clients']} clients, "
            f"{cal['seconds']:g} s each: "
            + ", ".join(f"{k} {v:,.0f} req/s" for k, v in cal["rates"].items())
            + f" -> {cfg['generator']}",
            "",
        ]
    lines += [
        "| scenario | clients | req/s | vs /healthz | p50 ms | p95 ms | p99 ms | errors "
        "| server CPU | generator CPU | handler p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["cells"]:
        handler = (
            f"{_opt_ms(c['handler_p50_ms'])} / {_opt_ms(c['handler_p99_ms'])}"
            if c["handler_p50_ms"] is not None
            else ""
        )
        errors = c["errors"] + c["transport_errors"]
        lines.append(
            f"| {c['scenario']} | {c['clients']} | {c['rate_per_s_median']:,.0f} "
            f"| {c['vs_healthz']:.3f}x | {c['p50_ms']:.1f} | {c['p95_ms']:.1f} "
            f"| {c['p99_ms']:.1f} | {errors} | {_pct(c['server_cpu_pct'])} "
            f"| {_pct(c['generator_cpu_pct'])} | {handler} |"
        )
    lines.append("")
    for t in report["targets"]:
        verdict = "not measured" if t["met"] is None else "PASS" if t["met"] else "FAIL"
        lines.append(f"target {t['name']}: {t['actual']}, target {t['target']}: {verdict}")
    if any(t["met"] is not None for t in report["targets"]):
        lines.append(
            f"(clients send back to back, so the mean latency is clients / req/s: a p99 under "
            f"{TARGET_P99_MS:.0f} ms at {TARGET_CLIENTS} clients needs well over "
            f"{1000 * TARGET_CLIENTS / TARGET_P99_MS:,.0f} req/s)"
        )
    a = report["audit"]
    lines.append(
        f"audit: {a['rows']:,} invocation rows; {a['answered_posts']:,} POSTs answered "
        f"({a['answered_posts_200']:,} with 200, {a['answered_posts'] - a['answered_posts_200']:,} "
        f"other): {'OK' if a['ok'] else 'MISMATCH'}"
    )
    return "\n".join(lines)


def targets(cells: Sequence[Json]) -> list[Json]:
    out = []
    for c in cells:
        if c["clients"] != TARGET_CLIENTS:
            continue
        # Little's law for a closed loop: mean latency = clients / throughput.
        floor_ms = 1000 * c["clients"] / c["rate_per_s_median"]
        out.append(
            {
                "name": f"{c['scenario']} p99 at {TARGET_CLIENTS} clients",
                "actual": f"{c['p99_ms']:.1f} ms (mean implied by {c['rate_per_s_median']:,.0f} "
                f"req/s: {floor_ms:.0f} ms)",
                "target": f"< {TARGET_P99_MS:.0f} ms",
                "met": c["p99_ms"] < TARGET_P99_MS,
            }
        )
    if not out:
        out.append(
            {
                "name": f"p99 at {TARGET_CLIENTS} clients",
                "actual": "-",
                "target": f"< {TARGET_P99_MS:.0f} ms",
                "met": None,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0, help="timed window per pass")
    ap.add_argument("--warmup", type=float, default=1.0, help="untimed load before each window")
    ap.add_argument("--passes", type=int, default=3, help="timed passes per cell")
    ap.add_argument("--concurrency", default="1,10,50", help="client counts, comma-separated")
    ap.add_argument("--generator", choices=["auto", *GENERATORS], default="auto")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 pass of 1 s, 0.25 s warm-up")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.passes = 1.0, 0.25, 1
    try:
        levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        ap.error("--concurrency: comma-separated integers, e.g. 1,10,50")
    if not levels or min(levels) < 1 or args.passes < 1 or args.seconds <= 0:
        ap.error("--concurrency, --passes and --seconds must be positive")

    scs = scenarios()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="legspasm-bench-service-") as tmp:
        try:
            server = start_server(Path(tmp))
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            log = Path(tmp) / "server.log"
            if log.exists():
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 2
        runs: list[Run] = []
        try:
            problems, checked = check_answers(server, scs)
            calibration: Json | None = None
            generator = args.generator
            if generator == "auto":
                top = max(levels)
                cal_s = min(2.0, args.seconds)
                print(f"calibrating generators at {top} clients ...", file=sys.stderr, flush=True)
                rates = calibrate(server, scs[0], top, args.warmup, cal_s)
                generator = max(rates, key=lambda k: rates[k])
                calibration = {"clients": top, "seconds": cal_s, "rates": rates}
            fn = GENERATORS[generator]
            for clients in levels:
                for p in range(args.passes):
                    print(
                        f"{clients} clients, pass {p + 1}/{args.passes} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    for i, s in enumerate(scs):
                        tag = f"c{clients}p{p}s{i}"
                        runs.append(fn(server, s, clients, args.warmup, args.seconds, tag))
        finally:
            server.stop()
        with AuditStore.open(server.database_url, create=False) as store:
            rows = store.count_invocations()
        handler = handler_latencies(server.database_url)

    cells: list[Json] = []
    for clients in levels:
        for i, s in enumerate(scs):
            cell_runs = [r for r in runs if r.clients == clients and r.scenario == s.name]
            ms = [v for p in range(args.passes) for v in handler.get(f"c{clients}p{p}s{i}-m", [])]
            cells.append(summarise(cell_runs, ms if s.is_post else None))
    for c in cells:
        base = next(x for x in cells if x["clients"] == c["clients"])  # /healthz comes first
        c["vs_healthz"] = c["rate_per_s_median"] / base["rate_per_s_median"]

    answered = checked.posts + sum(r.answered_posts for r in runs)
    answered_200 = checked.posts_200 + sum(r.answered_posts_200 for r in runs)
    report: Json = {
        "meta": {"started": started, "as_of": AS_OF.isoformat(), "argv": sys.argv[1:]},
        "machine": machine(),
        "config": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "passes": args.passes,
            "concurrency": levels,
            "generator": generator,
        },
        "server_start_s": server.started_s,
        "calibration": calibration,
        "cells": cells,
        "audit": {
            "rows": rows,
            "answered_posts": answered,
            "answered_posts_200": answered_200,
            "ok": rows == answered,
        },
        "check_problems": problems,
    }
    report["targets"] = targets(cells)
    print(render(report))
    for problem in problems:
        print(f"check failed: {problem}", file=sys.stderr)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}", file=sys.stderr)
    failed = problems or not report["audit"]["ok"]
    failed = failed or any(c["errors"] or c["transport_errors"] for c in cells)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
