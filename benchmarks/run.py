"""legspasm benchmark: knowledge load, evaluations per second and CLI cold start, in one run.

Run from the repository root::

    .venv/bin/python benchmarks/run.py [--cases N] [--json PATH] [--profile]

Sections, measured side by side in the same process and run:

1. Knowledge load: median of several in-process ``load_knowledge()`` calls, and a cold load
   (``import legspasm`` + ``load_knowledge()``) in fresh interpreters.
2. Throughput on one core: ``evaluate`` over N generated cases (benchmarks/cases.py) after a
   warm-up pass, with per-evaluation latency; as baselines on the same data,
   ``Case.model_validate`` and the full ``parse_case`` + ``evaluate`` pipeline.
3. CLI cold start: wall time of ``legspasm --help``, ``legspasm kb check`` and
   ``legspasm assess <example> --format json`` against ``python -c pass`` (same interpreter).

Targets (from the issue): >= 2,000 evaluations/s on one core; CLI cold start under 0.5 s.
``--profile`` adds a cProfile of ``evaluate`` and an ``-X importtime`` summary of CLI start-up.
This is a benchmark, not a test: it exits 0 when targets are missed, 1 only when a generated
case fails to parse or ``evaluate`` raises.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import legspasm
from cases import AS_OF, SEED, generate_cases
from legspasm import Assessment, Case, Knowledge, evaluate, load_knowledge, parse_case
from legspasm.errors import CaseValidationError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(legspasm.__file__).resolve().parent  # the legspasm actually imported
EXAMPLE = PACKAGE / "examples" / "nocturnal-cramps.yaml"
TARGET_EVALS_PER_S = 2000.0
TARGET_CLI_MS = 500.0

Json = dict[str, Any]


# --- statistics ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_summary_us(ns: Sequence[int]) -> Json:
    """Mean and percentiles of latencies given in nanoseconds, reported in microseconds."""
    s = sorted(ns)
    return {
        "mean_us": statistics.fmean(s) / 1e3,
        "p50_us": percentile(s, 50) / 1e3,
        "p90_us": percentile(s, 90) / 1e3,
        "p99_us": percentile(s, 99) / 1e3,
        "max_us": s[-1] / 1e3,
    }


@dataclass
class Passes:
    """Repeated timed passes of one operation over the same inputs."""

    name: str
    n: int
    pass_seconds: list[float] = field(default_factory=list)
    latencies_ns: list[int] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [self.n / s for s in self.pass_seconds]

    def summary(self) -> Json:
        rates = self.rates()
        return {
            "items": self.n,
            "passes": len(rates),
            "rate_per_s_median": statistics.median(rates),
            "rate_per_s_best": max(rates),
            "rate_per_s_each": rates,
            "latency": latency_summary_us(self.latencies_ns),
        }


def timed_passes(
    name: str, items: Sequence[Any], fn: Callable[[Any], object], repeats: int
) -> Passes:
    """Call ``fn`` on every item ``repeats`` times, timing each call and each whole pass."""
    res = Passes(name, len(items))
    clock = time.perf_counter_ns
    for _ in range(repeats):
        lat = [0] * len(items)
        start = clock()
        for i, item in enumerate(items):
            t0 = clock()
            fn(item)
            lat[i] = clock() - t0
        res.pass_seconds.append((clock() - start) / 1e9)
        res.latencies_ns.extend(lat)
    return res


@contextlib.contextmanager
def one_core(enabled: bool) -> Iterator[str]:
    """Pin this process to a single CPU for the duration (Linux); yields a description."""
    getaff = getattr(os, "sched_getaffinity", None)
    setaff = getattr(os, "sched_setaffinity", None)
    if not enabled or getaff is None or setaff is None:
        yield "not pinned (single process, single thread)"
        return
    before: set[int] = set(getaff(0))
    cpu = max(before)  # the highest-numbered CPU is the least likely to take interrupts
    setaff(0, {cpu})
    try:
        yield f"pinned to CPU {cpu} (of {len(before)} available)"
    finally:
        setaff(0, before)


# --- 1. knowledge load ---------------------------------------------------------------------

_COLD_SNIPPET = """
import json, time
t0 = time.perf_counter()
import legspasm
t1 = time.perf_counter()
legspasm.load_knowledge()
t2 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3}))
"""


Envs = dict[str, dict[str, str]]


@contextlib.contextmanager
def subprocess_envs() -> Iterator[Envs]:
    """Environments for the fresh-interpreter measurements.

    "as-is" inherits this environment. When it sets PYTHONDONTWRITEBYTECODE, every cold start
    also recompiles legspasm's own modules (an editable install has no bytecode cache), so a
    "pyc-cached" mode adds what an ordinary installation sees: bytecode written once to a
    temporary PYTHONPYCACHEPREFIX (outside the repository) and reused.
    """
    envs: Envs = {"as-is": dict(os.environ)}
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        yield envs
        return
    with tempfile.TemporaryDirectory(prefix="legspasm-bench-pyc-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = tmp
        envs["pyc-cached"] = env
        yield envs


def _cold_load(cold_runs: int, env: dict[str, str]) -> Json:
    cold_import, cold_load, cold_wall = [], [], []
    for _ in range(cold_runs + 1):  # the first run only warms the page and bytecode caches
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _COLD_SNIPPET],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        wall = (time.perf_counter() - t0) * 1e3
        data = json.loads(out.stdout)
        cold_import.append(data["import_ms"])
        cold_load.append(data["load_ms"])
        cold_wall.append(wall)
    return {
        "import_ms_median": statistics.median(cold_import[1:]),
        "load_ms_median": statistics.median(cold_load[1:]),
        "process_wall_ms_median": statistics.median(cold_wall[1:]),
    }


def bench_knowledge_load(repeats: int, cold_runs: int, envs: Envs) -> Json:
    t0 = time.perf_counter()
    load_knowledge()
    first_ms = (time.perf_counter() - t0) * 1e3
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_knowledge()
        warm.append((time.perf_counter() - t0) * 1e3)
    return {
        "in_process_first_ms": first_ms,
        "in_process_median_ms": statistics.median(warm),
        "in_process_min_ms": min(warm),
        "in_process_calls": repeats,
        "cold_runs": cold_runs,
        "cold": {mode: _cold_load(cold_runs, env) for mode, env in envs.items()},
    }


# --- 2. throughput -------------------------------------------------------------------------


@dataclass
class Failure:
    index: int
    case_id: str | None
    kind: str  # "generator" (input rejected) or "engine" (evaluate raised)
    error: str
    traceback: str
    minimal: Json | None = None


def minimise(data: Json, still_fails: Callable[[Json], bool]) -> Json:
    """Greedy delta-debugging: drop keys and list items while ``still_fails`` stays true."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        if isinstance(node, dict):
            for k in list(node):
                yield (*prefix, k)
                yield from paths(node[k], (*prefix, k))
        elif isinstance(node, list):
            for i in range(len(node)):
                yield (*prefix, i)
                yield from paths(node[i], (*prefix, i))

    def without(node: Any, path: tuple[Any, ...]) -> Any:
        head, rest = path[0], path[1:]
        if isinstance(node, dict):
            out = dict(node)
            if rest:
                out[head] = without(node[head], rest)
            else:
                del out[head]
            return out
        items = list(node)
        if rest:
            items[head] = without(items[head], rest)
        else:
            del items[head]
        return items

    current: Json = json.loads(json.dumps(data))
    changed = True
    while changed:
        changed = False
        for path in list(paths(current)):
            try:
                candidate = without(current, path)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier removal in this sweep changed the shape
            if still_fails(candidate):
                current = candidate
                changed = True
                break
    return current


def _outcome_mix(results: Sequence[Assessment]) -> Json:
    established: collections.Counter[str] = collections.Counter()
    flags: collections.Counter[str] = collections.Counter()
    n_plan = n_avoid = n_withheld = n_missing = with_flag = dosed = 0
    for a in results:
        for c in a.conditions:
            if c.status in ("documented", "likely"):
                established[c.id] += 1
        for rf in a.red_flags:
            flags[rf.id] += 1
        with_flag += bool(a.red_flags)
        n_plan += len(a.plan)
        dosed += sum(1 for s in a.plan if s.medication is not None)
        n_avoid += len(a.avoid)
        n_withheld += len(a.withheld)
        n_missing += len(a.missing_data)
    n = max(len(results), 1)
    return {
        "contexts_established": dict(established.most_common()),
        "red_flags_fired": dict(flags.most_common()),
        "share_with_red_flag": with_flag / n,
        "mean_plan_steps": n_plan / n,
        "mean_medication_steps": dosed / n,
        "mean_avoid_items": n_avoid / n,
        "mean_withheld": n_withheld / n,
        "mean_missing_data": n_missing / n,
    }


def bench_throughput(
    kb: Knowledge, n: int, seed: int, repeats: int, pin: bool
) -> tuple[Json, list[Failure]]:
    t0 = time.perf_counter()
    dicts = generate_cases(kb, n, seed)
    gen_s = time.perf_counter() - t0
    presentations = collections.Counter(str(d["id"]).split("-", 2)[2] for d in dicts)

    failures: list[Failure] = []
    parsed: list[tuple[int, Json, Case]] = []
    for i, d in enumerate(dicts):
        try:
            parsed.append((i, d, parse_case(d)))
        except CaseValidationError as exc:
            failures.append(
                Failure(i, d.get("id"), "generator", exc.message, traceback.format_exc(), d)
            )

    # Warm-up: one untimed pass over every case; it also finds failures and the outcome mix.
    good: list[tuple[Json, Case]] = []
    results: list[Assessment] = []
    for i, d, case in parsed:
        try:
            results.append(evaluate(case, kb, AS_OF))
            good.append((d, case))
        except CaseValidationError as exc:
            failures.append(Failure(i, case.id, "generator", exc.message, traceback.format_exc()))
        except Exception as exc:
            failures.append(
                Failure(
                    i, case.id, "engine", f"{type(exc).__name__}: {exc}", traceback.format_exc()
                )
            )
    minimised: set[str] = set()
    for f in failures:  # one minimal reproducer per distinct engine error type
        error_type = f.error.split(":")[0]
        if f.kind == "engine" and error_type not in minimised:
            minimised.add(error_type)
            f.minimal = _minimal_repro(kb, dicts[f.index], error_type)

    good_dicts = [d for d, _ in good]
    good_cases = [c for _, c in good]

    def run_eval(c: Case) -> object:
        return evaluate(c, kb, AS_OF)

    def run_pipeline(d: Json) -> object:
        return evaluate(parse_case(d), kb, AS_OF)

    with one_core(pin) as where:
        for d in good_dicts[: min(len(good_dicts), 500)]:  # warm the validator too
            Case.model_validate(d)
        ev = timed_passes("evaluate", good_cases, run_eval, repeats)
        pa = timed_passes("Case.model_validate", good_dicts, Case.model_validate, repeats)
        pl = timed_passes("parse_case + evaluate", good_dicts, run_pipeline, max(1, repeats // 2))
    ev_s, pa_s, pl_s = ev.summary(), pa.summary(), pl.summary()
    return {
        "cases_generated": n,
        "cases_timed": len(good_cases),
        "seed": seed,
        "as_of": AS_OF.isoformat(),
        "generate_seconds": gen_s,
        "cpu": where,
        "presentations": dict(presentations.most_common()),
        "evaluate": ev_s,
        "model_validate": pa_s,
        "pipeline": pl_s,
        "evaluate_over_validate": ev_s["latency"]["mean_us"] / pa_s["latency"]["mean_us"],
        "outcomes": _outcome_mix(results),
    }, failures


def _minimal_repro(kb: Knowledge, data: Json, error_type: str) -> Json:
    def fails(candidate: Json) -> bool:
        try:
            case = parse_case(candidate)
        except CaseValidationError:
            return False
        try:
            evaluate(case, kb, AS_OF)
        except CaseValidationError:
            return False
        except Exception as exc:
            return type(exc).__name__ == error_type
        return False

    return minimise(data, fails)


# --- 3. CLI cold start ---------------------------------------------------------------------


def _legspasm_script() -> str:
    beside = Path(sys.executable).parent / "legspasm"
    if beside.exists():
        return str(beside)
    found = shutil.which("legspasm")
    if found is None:
        raise SystemExit("cannot find the legspasm console script next to this interpreter")
    return found


def cli_commands() -> dict[str, list[str]]:
    exe = _legspasm_script()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import legspasm'": [sys.executable, "-c", "import legspasm"],
        "legspasm --help": [exe, "--help"],
        "legspasm kb check": [exe, "kb", "check"],
        "legspasm assess (json)": [
            exe,
            "assess",
            str(EXAMPLE),
            "--as-of",
            AS_OF.isoformat(),
            "--format",
            "json",
        ],
    }


def bench_cli(runs: int, envs: Envs) -> Json:
    commands = cli_commands()
    times: dict[tuple[str, str], list[float]] = {
        (mode, name): [] for mode in envs for name in commands
    }
    for round_no in range(runs + 1):  # round 0 warms the caches and is discarded
        # round-robin over modes and commands, so drift hits every command alike
        for (mode, name), samples in times.items():
            t0 = time.perf_counter()
            proc = subprocess.run(commands[name], capture_output=True, check=False, env=envs[mode])
            ms = (time.perf_counter() - t0) * 1e3
            if proc.returncode != 0:
                raise SystemExit(
                    f"{name} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
                )
            if round_no:
                samples.append(ms)
    out: Json = {"runs": runs, "modes": {}}
    for mode in envs:
        base = statistics.median(times[(mode, "python -c pass")])
        rows: Json = {}
        for name, argv in commands.items():
            samples = times[(mode, name)]
            med = statistics.median(samples)
            rows[name] = {
                "argv": [Path(a).name if a == sys.executable else a for a in argv],
                "median_ms": med,
                "min_ms": min(samples),
                "max_ms": max(samples),
                "ratio_to_python": med / base,
                "overhead_ms": med - base,
            }
        out["modes"][mode] = rows
    return out


# --- profiles (--profile) ------------------------------------------------------------------


def profile_evaluate(kb: Knowledge, n: int, seed: int, top: int) -> str:
    cases = [parse_case(d) for d in generate_cases(kb, n, seed)]
    for c in cases[:200]:
        evaluate(c, kb, AS_OF)
    prof = cProfile.Profile()
    prof.enable()
    for c in cases:
        with contextlib.suppress(Exception):
            evaluate(c, kb, AS_OF)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    buf.write(f"cProfile of evaluate() over {n} cases, sorted by own time:\n")
    stats.sort_stats("tottime").print_stats(top)
    buf.write("sorted by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def importtime(argv: list[str], top: int, env: dict[str, str]) -> tuple[str, Json]:
    """Run ``python -X importtime`` on a console-script invocation; where import time goes."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    roots: collections.Counter[str] = collections.Counter()
    modules: list[tuple[int, int, str]] = []
    total = 0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        self_us, cum_us, name = int(parts[0]), int(parts[1]), parts[2]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        mod = name.strip()
        modules.append((cum_us, self_us, mod))
        roots[mod.split(".")[0]] += self_us
        if depth == 0:
            total += cum_us
    shown = " ".join([Path(argv[0]).name, *argv[1:]])
    lines = [f"-X importtime of {shown}"]
    lines.append(f"  total import time {total / 1e3:.1f} ms; own (self) time by top-level package:")
    for name, us in roots.most_common(top):
        lines.append(f"    {name:32} {us / 1e3:8.1f} ms  {100 * us / max(total, 1):5.1f}%")
    lines.append("  heaviest single modules (cumulative):")
    for cum_us, self_us, mod in sorted(modules, reverse=True)[:top]:
        lines.append(f"    {mod:48} {cum_us / 1e3:8.1f} ms (self {self_us / 1e3:.1f} ms)")
    return "\n".join(lines), {
        "total_ms": total / 1e3,
        "self_ms_by_package": {k: v / 1e3 for k, v in roots.most_common(top)},
        "heaviest_cumulative_ms": {m: c / 1e3 for c, _, m in sorted(modules, reverse=True)[:top]},
    }


# --- report --------------------------------------------------------------------------------


def git_state() -> Json:
    """Commit of the repository and whether the imported package differs from it."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "src")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "src_dirty": None if dirty is None else bool(dirty),
        "package_path": str(PACKAGE),
        "package_from_repo": PACKAGE.is_relative_to(ROOT),
    }


def _ok(good: bool) -> str:
    return "PASS" if good else "MISS"


def render(report: Json) -> str:
    out: list[str] = []
    meta = report["meta"]
    g = meta["git"]
    where = (
        f"commit {g['commit']}{' + uncommitted src changes' if g['src_dirty'] else ''}"
        if g["package_from_repo"]
        else f"package imported from {g['package_path']}"
    )
    out.append(
        f"legspasm {meta['legspasm']} (knowledge {meta['knowledge_version']}, {where}) on "
        f"Python {meta['python']} / {meta['platform']}, {meta['cpus']} CPUs; {meta['started']}"
    )
    kl = report["knowledge_load"]
    out.append("\n1. Knowledge load")
    out.append(f"   in-process, first call              {kl['in_process_first_ms']:9.1f} ms")
    out.append(
        f"   in-process, median of {kl['in_process_calls']:<3}           "
        f"{kl['in_process_median_ms']:9.1f} ms   (min {kl['in_process_min_ms']:.1f} ms)"
    )
    for mode, c in kl["cold"].items():
        out.append(
            f"   cold [{mode}], median of {kl['cold_runs']} fresh interpreters: import legspasm "
            f"{c['import_ms_median']:.1f} ms + load_knowledge() {c['load_ms_median']:.1f} ms; "
            f"whole process {c['process_wall_ms_median']:.1f} ms"
        )

    tp = report["throughput"]
    out.append(
        f"\n2. Throughput, {tp['cases_timed']:,} generated cases (seed {tp['seed']}, "
        f"as_of {tp['as_of']}), {tp['evaluate']['passes']} timed passes after a warm-up pass; "
        f"{tp['cpu']}"
    )
    out.append(
        f"   {'operation':26} {'per s (median)':>15} {'best':>9} {'mean µs':>9} "
        f"{'p50 µs':>9} {'p90 µs':>9} {'p99 µs':>9} {'max µs':>9}"
    )
    for key, label in (
        ("model_validate", "Case.model_validate"),
        ("evaluate", "evaluate"),
        ("pipeline", "parse_case + evaluate"),
    ):
        s = tp[key]
        lat = s["latency"]
        out.append(
            f"   {label:26} {s['rate_per_s_median']:15,.0f} {s['rate_per_s_best']:9,.0f} "
            f"{lat['mean_us']:9.1f} {lat['p50_us']:9.1f} {lat['p90_us']:9.1f} "
            f"{lat['p99_us']:9.1f} {lat['max_us']:9.0f}"
        )
    out.append(
        f"   evaluate costs {tp['evaluate_over_validate']:.1f}x a Case.model_validate "
        f"(mean latency ratio); generating the cases took {tp['generate_seconds']:.2f} s"
    )
    mix = tp["presentations"]
    out.append("   case mix: " + ", ".join(f"{k} {v}" for k, v in mix.items()))
    oc = tp["outcomes"]
    out.append(
        "   outcomes: "
        + ", ".join(f"{k} {v}" for k, v in oc["contexts_established"].items())
        + f"; red flag in {100 * oc['share_with_red_flag']:.1f}%; per case "
        f"{oc['mean_plan_steps']:.2f} plan steps ({oc['mean_medication_steps']:.2f} dosed), "
        f"{oc['mean_avoid_items']:.2f} avoid items, {oc['mean_withheld']:.2f} withheld, "
        f"{oc['mean_missing_data']:.1f} missing-data questions"
    )

    cli = report["cli"]
    out.append(f"\n3. CLI cold start, median of {cli['runs']} runs (after one discarded run)")
    for mode, rows in cli["modes"].items():
        out.append(
            f"   [{mode}] {'command':{29 - len(mode)}} {'median ms':>10} {'min ms':>8} "
            f"{'max ms':>8} {'x python':>9} {'+ms':>8}"
        )
        for name, c in rows.items():
            out.append(
                f"   {name:30} {c['median_ms']:10.1f} {c['min_ms']:8.1f} {c['max_ms']:8.1f} "
                f"{c['ratio_to_python']:9.2f} {c['overhead_ms']:8.1f}"
            )
    if "pyc-cached" in cli["modes"]:
        out.append(
            "   as-is: PYTHONDONTWRITEBYTECODE is set, so legspasm is recompiled on every start;"
            " pyc-cached: bytecode cached in a temporary PYTHONPYCACHEPREFIX"
        )

    out.append("\nTargets")
    for t in report["targets"]:
        out.append(f"   [{_ok(t['met'])}] {t['name']}: {t['actual']} (target {t['target']})")

    fails = report["failures"]
    if fails:
        out.append(f"\nFAILURES: {len(fails)} case(s)")
        for f in fails[:10]:
            out.append(f"   case {f['index']} ({f['case_id']}), {f['kind']}: {f['error']}")
            if f.get("minimal") is not None:
                out.append("   minimal reproducing case: " + json.dumps(f["minimal"]))
    else:
        out.append("\nNo generated case was rejected and evaluate never raised.")
    return "\n".join(out)


def targets(report: Json) -> list[Json]:
    rate = report["throughput"]["evaluate"]["rate_per_s_median"]
    out = [
        {
            "name": "evaluate on one core",
            "actual": f"{rate:,.0f} evaluations/s",
            "target": f">= {TARGET_EVALS_PER_S:,.0f}/s",
            "met": rate >= TARGET_EVALS_PER_S,
        }
    ]
    for name, c in report["cli"]["modes"]["as-is"].items():
        if name.startswith("legspasm"):
            out.append(
                {
                    "name": f"cold start: {name} (as-is)",
                    "actual": f"{c['median_ms']:.0f} ms",
                    "target": f"< {TARGET_CLI_MS:.0f} ms",
                    "met": c["median_ms"] < TARGET_CLI_MS,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="legspasm benchmark: knowledge load, evaluations/s, CLI cold start."
    )
    ap.add_argument("--cases", type=int, default=10_000, help="generated cases (default 10000)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--seed", type=int, default=SEED, help=f"generator seed (default {SEED})")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes over the cases")
    ap.add_argument("--load-repeats", type=int, default=9, help="in-process knowledge loads")
    ap.add_argument("--cold-runs", type=int, default=5, help="fresh interpreters for cold load")
    ap.add_argument("--cli-runs", type=int, default=10, help="runs per CLI command")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    ap.add_argument(
        "--profile", action="store_true", help="add a cProfile of evaluate and -X importtime"
    )
    args = ap.parse_args(argv)
    if args.cases < 1 or args.repeats < 1 or args.cli_runs < 1:
        ap.error("--cases, --repeats and --cli-runs must be at least 1")

    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with subprocess_envs() as envs:
        print("1/3 knowledge load ...", file=sys.stderr, flush=True)
        kl = bench_knowledge_load(args.load_repeats, args.cold_runs, envs)
        kb = load_knowledge()
        print(f"2/3 throughput over {args.cases:,} cases ...", file=sys.stderr, flush=True)
        tp, failures = bench_throughput(kb, args.cases, args.seed, args.repeats, not args.no_pin)
        print("3/3 CLI cold start ...", file=sys.stderr, flush=True)
        cli = bench_cli(args.cli_runs, envs)

    report: Json = {
        "meta": {
            "legspasm": legspasm.__version__,
            "git": git_state(),
            "knowledge_version": kb.version,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(terse=True),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "started": started,
            "argv": sys.argv[1:] if argv is None else argv,
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        },
        "knowledge_load": kl,
        "throughput": tp,
        "cli": cli,
        "failures": [
            {
                "index": f.index,
                "case_id": f.case_id,
                "kind": f.kind,
                "error": f.error,
                "traceback": f.traceback,
                "minimal": f.minimal,
            }
            for f in failures
        ],
    }
    report["targets"] = targets(report)
    print(render(report))

    if args.profile:
        n = min(args.cases, 3000)
        print("\n" + profile_evaluate(kb, n, args.seed, top=30))
        profiles: Json = {}
        for name in ("legspasm --help", "legspasm kb check", "legspasm assess (json)"):
            text, data = importtime(cli_commands()[name], top=12, env=dict(os.environ))
            print(text + "\n")
            profiles[name] = data
        report["importtime"] = profiles

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.json}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
