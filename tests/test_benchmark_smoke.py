"""The service load benchmark still runs: one short pass, one client, in a subprocess.

``benchmarks/service_load.py --quick --concurrency 1`` starts ``legspasm serve`` as a second
process, calibrates both load generators (threads and asyncio) on /healthz, runs the three
scenarios for a second each, and checks the audit row count. Only that it works is tested here,
never the speed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "service_load.py"


def test_service_load_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--concurrency", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # nothing may be written to the working directory
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| scenario | clients | req/s |" in proc.stdout
    report = json.loads(out.read_text())
    assert [c["scenario"] for c in report["cells"]] == [
        "GET /healthz",
        "patient-view",
        "order-sign",
    ]
    assert all(c["requests"] > 0 and c["errors"] == 0 for c in report["cells"])
    assert set(report["calibration"]["rates"]) == {"threads", "asyncio"}
    assert report["audit"]["ok"]
    assert report["audit"]["rows"] > 0
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.skipif(
    shutil.which("wrk") is None and os.environ.get("LEGSPASM_REQUIRE_BROWSER") != "1",
    reason="wrk is not installed (CI installs it)",
)
def test_service_wrk_benchmark_quick(tmp_path: Path) -> None:
    """benchmarks/service_wrk.py drives the real service with wrk, one second per cell, with
    one worker process and with two side by side."""
    out = tmp_path / "wrk.json"
    proc = subprocess.run(
        [
            sys.executable,
            "service_wrk.py",
            "--seconds",
            "1",
            "--concurrency",
            "1",
            "--workers",
            "1,2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT / "benchmarks",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    one, two = json.loads(out.read_text())
    assert (one["clients"], one["workers"], two["clients"], two["workers"]) == (1, 1, 1, 2)
    for row in (one, two):
        for name in ("GET /healthz", "patient-view", "order-sign"):
            assert row[name]["rps"] > 0
            assert row[name]["non_2xx"] == 0
        assert row["GET /healthz"]["ratio_to_healthz"] == 1.0
    assert one["patient-view"]["ratio_to_first_workers"] == 1.0
    ratio = two["patient-view"]["rps"] / one["patient-view"]["rps"]
    assert two["patient-view"]["ratio_to_first_workers"] == pytest.approx(ratio)


def test_web_pages_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "web.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "web_pages.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["page"] == "GET /healthz (baseline)"
    assert {r["page"] for r in rows} >= {"GET / (intake form)", "GET handout.pdf"}
    assert all(r["p50_ms"] > 0 for r in rows)


def test_screen_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "screen.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "screen.py"),
            "--patients",
            "200",
            "--engines",
            "local",
            "--runs",
            "1",
            "--memory-sizes",
            "",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["duckdb"]["lines"] > 200
    [local] = report["engines"]
    assert local["patients"] == 200
    assert local["peak_rss_mb"] > 0
    assert 0 < local["patients_assessed"] < 200  # 5 % hold domain data: most are not assessed
    assert local["x_duckdb_mb_per_s"] > 0
    assert "| local | 1 |" in proc.stdout


@pytest.mark.skipif(
    shutil.which("wrk") is None and os.environ.get("LEGSPASM_REQUIRE_BROWSER") != "1",
    reason="wrk is not installed (CI installs it)",
)
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_service_cpu_benchmark_quick(tmp_path: Path) -> None:
    """benchmarks/service_cpu.py serves this tree and a git revision of it side by side (here
    HEAD) and reports the server's CPU time per request of each, one second per cell."""
    out = tmp_path / "cpu.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "service_cpu.py"),
            "--baseline",
            "HEAD",
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--concurrency",
            "1",
            "--workers",
            "1",
            "--scenarios",
            "healthz,patient-view",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert [(r["scenario"], r["clients"], r["workers"]) for r in rows] == [
        ("healthz", 1, 1),
        ("patient-view", 1, 1),
    ]
    for row in rows:
        for key in ("cpu_ms_per_request", "rps"):
            assert row[key]["base"] > 0
            assert row[key]["new"] > 0
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_evaluate_parity_benchmark_quick(tmp_path: Path) -> None:
    """benchmarks/evaluate_parity.py runs both sides (a baseline revision unpacked in a
    temporary folder, and this tree) on the same generated cases and compares every assessment."""
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate_parity.py",
            "--cases",
            "20",
            "--passes",
            "1",
            "--baseline",
            "HEAD",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT / "benchmarks",
    )
    report = json.loads(out.read_text()) if out.exists() else {}
    # A working tree whose engine differs from HEAD may change assessments (exit 1); the
    # benchmark must still run both sides and report.
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "assessments changed:" in proc.stdout
    assert report["cases"] == 20
    assert report["new_evaluate_per_s"] > 0
    assert report["baseline_evaluate_per_s"] > 0
