"""Reading an export file never loses a line silently (issue 13, item 2, first part): a bad
byte, a bad line or a truncated compressed file costs only what it must, and each loss is a
problem naming the file and the line."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from legspasm.screen.core import Problem, read_file


def med(i: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"m{i}",
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/p{i % 7}"},
        "medicationCodeableConcept": {"text": "naïve café"},  # non-ASCII: UTF-8 must hold
    }


def lines(n: int) -> list[bytes]:
    return [json.dumps(med(i), ensure_ascii=False).encode() + b"\n" for i in range(n)]


def read(path: Path) -> tuple[list[str], list[Problem]]:
    ids, problems = [], []
    for res, problem in read_file(path):
        if res is not None:
            ids.append(str(res["id"]))
        if problem is not None:
            problems.append(problem)
    return ids, problems


def test_a_latin1_byte_costs_only_its_line(tmp_path: Path) -> None:
    data = lines(500)
    data[199] = data[199].replace("café".encode(), "café".encode("latin-1"))
    path = tmp_path / "MedicationRequest.ndjson"
    path.write_bytes(b"".join(data))
    ids, problems = read(path)
    assert len(ids) == 499
    assert "m199" not in ids
    assert [(p.line, p.problem.split(" (")[0]) for p in problems] == [(200, "not UTF-8")]
    assert problems[0].owner == "p3"  # the line still names its subject: Patient/p{199 % 7}


def test_a_truncated_gzip_says_how_far_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "MedicationRequest.ndjson.gz"
    whole = gzip.compress(b"".join(lines(2000)))
    path.write_bytes(whole[: len(whole) // 2])
    ids, problems = read(path)
    assert 0 < len(ids) < 2000
    (problem,) = problems
    assert problem.line == len(ids) + 1
    assert f"{len(ids)} lines read, the rest is missing" in problem.problem


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (b'{"id": "no type"}\n', "no valid 'resourceType'"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
        (b'{"resourceType": "Observation", "valueInteger": ' + b"9" * 5000 + b"}\n", "digits"),
        (b"\xef\xbb\xbf{not json\n", "not valid JSON"),
    ],
)
def test_a_bad_first_line_is_reported_and_the_file_read_on(
    tmp_path: Path, bad: bytes, why: str
) -> None:
    path = tmp_path / "MedicationRequest.ndjson"
    path.write_bytes(bad + b"".join(lines(50)))
    ids, problems = read(path)
    assert len(ids) == 50
    (problem,) = problems
    assert problem.line == 1
    assert why in problem.problem, problem


def test_a_byte_order_mark_on_the_first_line_is_not_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "MedicationRequest.ndjson"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(lines(3)))
    assert read(path) == (["m0", "m1", "m2"], [])


def test_a_bulk_export_log_is_left_out_whole(tmp_path: Path) -> None:
    path = tmp_path / "log.ndjson"
    path.write_text('{"event": "start"}\n{"event": "file"}\n{"event": "end"}\n')
    assert read(path) == (
        [],
        [Problem("log.ndjson", 0, "its lines are not FHIR resources: not read", "")],
    )


def test_lines_without_resource_type_before_the_resources_cost_only_themselves(
    tmp_path: Path,
) -> None:
    # Found by `make fuzz`: two such first lines used to drop the whole file as a log.
    path = tmp_path / "MedicationRequest.ndjson"
    head = b"".join(b'{"id": "x%d", "status": "active"}\n' % i for i in range(105))
    named = b'{"id": "y", "subject": {"reference": "Patient/p1"}}\n'
    path.write_bytes(head + named + b"".join(lines(3)))
    ids, problems = read(path)
    assert ids == ["m0", "m1", "m2"]
    assert [p.line for p in problems] == [*range(1, 101), 101, 106]
    assert problems[100].problem == "lines 101-105: no valid 'resourceType'"
    assert problems[-1].owner == "p1"
    only = tmp_path / "Condition.ndjson"
    only.write_bytes(named * 2)
    assert [(p.line, p.owner) for p in read(only)[1]] == [(1, "p1"), (2, "p1")]


def test_a_deeply_nested_json_bundle_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    ids, problems = read(path)
    assert ids == []
    assert [p.problem for p in problems] == ["not read: JSON nested too deeply"]
    bad = tmp_path / "latin.json"
    bad.write_bytes(b'{\n"resourceType": "Bundle",\n"id": "caf\xe9"}')
    assert [(p.line, p.problem[:9]) for p in read(bad)[1]] == [(3, "not UTF-8")]


# --- output: an interrupted run never looks complete ------------------------------------------


def _rows(table: Path) -> int:
    with table.open(encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def test_a_run_killed_while_writing_leaves_the_previous_complete_output(tmp_path: Path) -> None:
    """A second run cannot finish writing (a file-size limit below the table's size, as a full
    disk would): it exits 2 saying so, the previous run's table and summary still agree, row
    for row, and no partial file is left behind."""
    from legspasm import load_knowledge
    from legspasm.screen.synth import synthesize

    export = tmp_path / "pop"
    synthesize(str(export), 300, 7, load_knowledge())
    out = tmp_path / "screen.csv"
    summary = out.with_name(out.name + ".summary.json")
    exe = Path(sys.executable).with_name("legspasm")
    args = [str(exe), "screen", str(export), "--as-of", "2026-11-21", "--out", str(out)]
    args += ["--workers", "1"]
    first = subprocess.run(args, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    table = out.read_bytes()
    assert json.loads(summary.read_text())["findings"] == _rows(out)
    limit = len(table) // 2

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    second = subprocess.run(
        args, capture_output=True, text=True, check=False, preexec_fn=small_files
    )
    assert second.returncode == 2, second.stderr
    assert "cannot write the output (File too large)" in second.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pop",
        "screen.csv",
        "screen.csv.problems.csv",
        "screen.csv.summary.json",
    ]
    assert out.read_bytes() == table
    assert json.loads(summary.read_text())["findings"] == _rows(out)


def test_kill_9_while_writing_leaves_a_summary_that_agrees_and_a_later_run_sweeps_the_spill(
    tmp_path: Path,
) -> None:
    """kill -9 the moment the table is being written: a summary, if there is one, agrees with
    the table beside it (the previous complete run, row for row); the killed run's spill
    folder is removed by the next run, which completes."""
    import os
    import signal
    import time

    from legspasm import load_knowledge
    from legspasm.screen.synth import synthesize

    export = tmp_path / "pop"
    synthesize(str(export), 1500, 11, load_knowledge())
    out = tmp_path / "screen.csv"
    summary = out.with_name(out.name + ".summary.json")
    spill = tmp_path / "spill"
    spill.mkdir()
    exe = Path(sys.executable).with_name("legspasm")
    args = [str(exe), "screen", str(export), "--as-of", "2026-11-21", "--out", str(out)]
    args += ["--workers", "1", "--spill-dir", str(spill), "--kind", "all"]
    assert subprocess.run(args, capture_output=True, check=False).returncode == 0
    table = out.read_bytes()
    writing = out.with_name(f".{out.name}.partial")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not writing.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it was caught writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if summary.exists():
        assert json.loads(summary.read_text())["findings"] == _rows(out)
        assert out.read_bytes() == table
    assert len(list(spill.iterdir())) == 1  # the killed run's spill folder
    again = subprocess.run(args, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert list(spill.iterdir()) == []
    assert json.loads(summary.read_text())["findings"] == _rows(out)
    assert out.read_bytes() == table


def test_sigterm_unwinds_the_run(tmp_path: Path) -> None:
    """A scheduler's SIGTERM removes the spill folder and the partial files, exit 143."""
    import os
    import signal
    import time

    from legspasm import load_knowledge
    from legspasm.screen.synth import synthesize

    export = tmp_path / "pop"
    synthesize(str(export), 1500, 12, load_knowledge())
    spill = tmp_path / "spill"
    spill.mkdir()
    out = tmp_path / "screen.csv"
    exe = Path(sys.executable).with_name("legspasm")
    args = [str(exe), "screen", str(export), "--as-of", "2026-11-21", "--out", str(out)]
    proc = subprocess.Popen(
        [*args, "--workers", "2", "--spill-dir", str(spill)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(spill.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped (SIGTERM)" in err
    assert "Traceback" not in err
    assert list(spill.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop", "spill"]


# --- attribution: every resource is someone's, shared, or reported ---------------------------


def _ndjson(path: Path, *resources: dict[str, Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")


def _condition(cid: str, subject: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": subject,
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G25.81"}]},
    }


def test_attribution_problems_and_sub_folders_are_reported(tmp_path: Path) -> None:
    from legspasm.screen.local import screen_local

    export = tmp_path / "export"
    (export / "more").mkdir(parents=True)
    born = {"birthDate": "1960-01-01", "gender": "female"}
    _ndjson(
        export / "Patient.ndjson",
        {"resourceType": "Patient", "id": "p1", **born},
        {"resourceType": "Patient", **born},
    )
    _ndjson(
        export / "Condition.ndjson",
        _condition("c1", {"reference": "Patient/p1/_history/3"}),
        _condition("c2", {"identifier": {"system": "urn:mrn", "value": "42"}}),
        _condition("c3", {"reference": "Group/g1"}),
    )
    run = screen_local(export, dt.date(2026, 11, 21), workers=1)
    rows = list(run.findings)
    run.close()
    problems = sorted(p.problem for p in run.problems)
    assert problems == [
        "Condition/c2: its patient is given only by identifier: not attributed",
        "Condition/c3: subject 'Group/g1' names no Patient: not attributed",
        "Patient/?: a Patient without an id: not assessed",
        "a sub-folder: not read (screen it on its own)",
    ]
    # the versioned reference counts: p1's RLS code is among p1's findings
    assert any(r.patient_id == "p1" and r.finding_id == "rls" for r in rows), rows


def test_a_patient_twice_with_different_content_is_refused_by_screen_and_assess(
    tmp_path: Path,
) -> None:
    from legspasm import load_knowledge
    from legspasm.errors import FhirError
    from legspasm.inputs import load_patient
    from legspasm.screen.local import screen_local

    export = tmp_path / "export"
    export.mkdir()
    one = {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01", "gender": "female"}
    same = {**one, "meta": {"lastUpdated": "2026-01-01T00:00:00Z"}}
    _ndjson(export / "Patient.ndjson", one, same)
    run = screen_local(export, dt.date(2026, 11, 21), workers=1)
    list(run.findings)
    run.close()
    # identical but for meta: one patient, the duplicate reported
    assert [p.problem for p in run.problems] == ["Patient/p1 appears 2 times, the same: used once"]
    _ndjson(export / "Patient.ndjson", one, {**one, "birthDate": "1990-01-01"})
    run = screen_local(export, dt.date(2026, 11, 21), workers=1)
    rows = list(run.findings)
    run.close()
    assert [(r.patient_id, r.kind, r.status) for r in rows] == [
        ("p1", "data_incomplete", "not_assessed")
    ]
    assert [p.problem for p in run.problems] == [
        "Patient/p1 appears 2 times with different content: not assessed (which copy is right "
        "must be settled in the source)"
    ]
    with pytest.raises(FhirError, match="appears more than once with different content"):
        load_patient(export, load_knowledge(), dt.date(2026, 11, 21), "p1")
