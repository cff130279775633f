"""evaluate against a baseline revision, side by side: the same generated cases, the same
interpreter, one core; speed as ratios and every assessment compared byte for byte.

Run from the repository root::

    .venv/bin/python benchmarks/evaluate_parity.py [--baseline REV] [--cases N] [--json PATH]

The baseline (default ``HEAD``, i.e. the last commit against the working tree) is unpacked
into a temporary folder (``git archive``, benchmarks/revision.py); each side runs in a fresh
interpreter with its own ``src`` first on ``sys.path`` and evaluates the same cases
(generated once, by benchmarks/cases.py, and handed to both as JSON). Each side reports, per
case, the SHA-256 of the assessment's JSON and its timings; the comparison lists how many
assessments changed and shows the first few.

Times are this process's CPU time (``time.process_time``), so other work on the machine
weighs less on the figures than on wall time; the sides alternate, one pass per interpreter.
Reported, per side: evaluations/s (median of the passes, each after a warm-up) and the rate of
``Case.model_validate`` on the same cases in the same process, and the ratio of the two: the
issue's target is evaluate >= 0.25x ``Case.model_validate`` with 0 of 10,000 assessments
changed. A benchmark, not a test: it exits 0 when a target is missed and 1 only when an
assessment changed or a side failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from cases import AS_OF, SEED, generate_cases
from revision import ROOT, unpack

# Runs inside each side's interpreter: argv = src dir, cases file, output file, passes.
_SIDE = r"""
import hashlib, json, os, sys, time
src, cases_path, out_path, passes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, src)
import datetime as dt
import legspasm
assert os.path.realpath(legspasm.__file__).startswith(os.path.realpath(src)), legspasm.__file__
from legspasm import Case, evaluate, load_knowledge
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
raw = [json.loads(line) for line in open(cases_path)]
as_of = dt.date.fromisoformat(os.environ["PARITY_AS_OF"])
kb = load_knowledge()
cases = [Case.model_validate(d) for d in raw]
clock = time.process_time  # CPU time: other processes on the machine do not count
def rate(fn, items):
    fn_items = list(items)
    for x in fn_items[: min(200, len(fn_items))]:
        fn(x)  # warm-up
    rates = []
    for _ in range(passes):
        t0 = clock()
        for x in fn_items:
            fn(x)
        rates.append(len(fn_items) / (clock() - t0))
    return sorted(rates)[len(rates) // 2], rates
validate_rate, validate_each = rate(Case.model_validate, raw)
eval_rate, eval_each = rate(lambda c: evaluate(c, kb, as_of), cases)
# the knowledge base's version is reported apart: a new version alone changes no assessment
digests = [
    hashlib.sha256(
        evaluate(c, kb, as_of).model_dump_json(exclude={"knowledge_version"}).encode()
    ).hexdigest()
    for c in cases
]
json.dump(
    {
        "validate_per_s": validate_rate, "validate_each": validate_each,
        "evaluate_per_s": eval_rate, "evaluate_each": eval_each,
        "digests": digests,
        "knowledge_version": kb.version,
    },
    open(out_path, "w"),
)
"""


# Evaluates the first n cases after a warm-up of 50 (argv: src dir, cases file, n), for
# instruction counts: callgrind of n cases minus callgrind of 0 cases is n evaluations.
_COUNT = r"""
import json, sys, datetime as dt, os
src, cases_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, src)
from legspasm import Case, evaluate, load_knowledge
kb = load_knowledge()
as_of = dt.date.fromisoformat(os.environ["PARITY_AS_OF"])
raw = [json.loads(line) for _, line in zip(range(max(n, 50)), open(cases_path))]
cases = [Case.model_validate(d) for d in raw]
for c in cases[:50]:
    evaluate(c, kb, as_of)
for c in cases[:n]:
    evaluate(c, kb, as_of)
"""


def _instructions(src: Path, cases: Path, n: int) -> float:
    """Instructions per evaluate under callgrind (deterministic: a fixed hash seed)."""
    env = {
        **os.environ,
        "PARITY_AS_OF": AS_OF.isoformat(),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTHONPATH", None)
    counts = []
    for k in (0, n):
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                "-c",
                _COUNT,
                str(src),
                str(cases),
                str(k),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        m = re.search(r"Collected : (\d+)", out.stderr)
        if m is None:
            raise RuntimeError("callgrind printed no count:\n" + out.stderr[-2000:])
        counts.append(int(m.group(1)))
    return (counts[1] - counts[0]) / n


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def _side(src: Path, cases: Path, out: Path, passes: int) -> dict[str, Any]:
    env = {**os.environ, "PARITY_AS_OF": AS_OF.isoformat(), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [sys.executable, "-c", _SIDE, str(src), str(cases), str(out), str(passes)],
        check=True,
        env=env,
        cwd=src.parent,
    )
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[-1])
    for k in ("validate_per_s", "evaluate_per_s"):
        out[k] = statistics.median(r[k] for r in runs)
    return out


def _show_change(src_new: Path, src_old: Path, case: dict[str, Any]) -> None:
    """Print where one changed assessment differs (the JSON paths of the first differences)."""
    snippet = (
        "import json,sys,datetime as dt; sys.path.insert(0, sys.argv[1]);"
        "from legspasm import Case, evaluate, load_knowledge;"
        "c = Case.model_validate(json.loads(sys.argv[2]));"
        f"print(evaluate(c, load_knowledge(), dt.date.fromisoformat('{AS_OF}')).model_dump_json())"
    )
    outs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", snippet, str(src), json.dumps(case, default=str)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for src in (src_old, src_new)
    ]
    diffs: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(diffs) >= 5:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted((set(a) | set(b)) - {"knowledge_version"}):
                walk(a.get(k), b.get(k), f"{path}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
        elif a != b:
            diffs.append(f"  {path}: {json.dumps(a)[:150]} -> {json.dumps(b)[:150]}")

    walk(outs[0], outs[1], "$")
    print("\n".join(diffs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="HEAD", help="git revision to compare against")
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument(
        "--instructions",
        type=int,
        metavar="N",
        default=0,
        help="also count instructions per evaluate over N cases with valgrind's callgrind "
        "(deterministic, unlike time on a shared machine; about a minute per 200 cases)",
    )
    args = ap.parse_args()

    rev = _git("rev-parse", "--short", args.baseline)
    dirty = bool(_git("status", "--porcelain", "--", "src"))
    from legspasm import load_knowledge

    cases = generate_cases(load_knowledge(), args.cases, SEED)
    with tempfile.TemporaryDirectory(prefix="legspasm-parity-") as tmp:
        t = Path(tmp)
        cases_file = t / "cases.jsonl"
        with cases_file.open("w") as f:
            for c in cases:
                f.write(json.dumps(c, default=str) + "\n")
        base_src = unpack(rev, t / "baseline")
        # Alternate the sides, one pass per interpreter, so that a change of load on the
        # machine weighs on both; each side's figure is the median of its passes.
        runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for i in range(args.passes):
            for name, src in (("old", base_src), ("new", ROOT / "src")):
                runs[name].append(_side(src, cases_file, t / f"{name}{i}.json", 1))
        old, new = (_median(runs["old"]), _median(runs["new"]))
        changed = [
            i for i, (a, b) in enumerate(zip(old["digests"], new["digests"], strict=True)) if a != b
        ]
        label = "working tree" if dirty else _git("rev-parse", "--short", "HEAD")
        print(
            f"{len(cases):,} generated cases (seed {SEED}, as_of {AS_OF}); baseline {rev}, "
            f"new = {label}; {args.passes} alternating passes each, CPU time on one core"
        )
        print(f"{'':12}{'evaluate/s':>12}{'validate/s':>12}{'eval/validate':>15}")
        for name, side in (("baseline", old), ("new", new)):
            ratio = side["evaluate_per_s"] / side["validate_per_s"]
            print(
                f"{name:12}{side['evaluate_per_s']:>12,.0f}{side['validate_per_s']:>12,.0f}"
                f"{ratio:>15.3f}"
            )
        speedup = new["evaluate_per_s"] / old["evaluate_per_s"]
        print(f"evaluate new/baseline: {speedup:.2f}x")
        print(f"knowledge: baseline {old['knowledge_version']}, new {new['knowledge_version']}")
        instr: dict[str, float] = {}
        if args.instructions and shutil.which("valgrind") is None:
            print("instructions: valgrind is not installed")
        elif args.instructions:
            for name, src in (("baseline", base_src), ("new", ROOT / "src")):
                instr[name] = _instructions(src, cases_file, args.instructions)
            print(
                f"instructions per evaluate ({args.instructions} cases, callgrind): "
                f"baseline {instr['baseline'] / 1e6:.2f} M, new {instr['new'] / 1e6:.2f} M "
                f"({instr['baseline'] / instr['new']:.2f}x fewer)"
            )
        print(f"assessments changed: {len(changed)} of {len(cases):,}")
        for i in changed[:3]:
            print(f"case {i}:")
            _show_change(ROOT / "src", base_src, cases[i])
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "cases": len(cases),
                        "baseline": rev,
                        "changed": len(changed),
                        "speedup": speedup,
                        "instructions_per_evaluate": instr or None,
                        **{
                            f"{n}_{k}": s[k]
                            for n, s in (("baseline", old), ("new", new))
                            for k in ("evaluate_per_s", "validate_per_s")
                        },
                    },
                    indent=2,
                )
            )
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
