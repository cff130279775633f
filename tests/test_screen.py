"""``legspasm screen`` with the local engine: parity with single-patient assessment, problems
reported (not fatal), identical output for one or two workers and across runs, bounded memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from legspasm import Knowledge
from legspasm.engine import evaluate
from legspasm.fhir import read_fhir, to_case
from legspasm.fhir.attribution import attribution_of
from legspasm.screen import COLUMNS, Finding, rows_of
from legspasm.screen.local import screen_local
from legspasm.screen.run import screen

AS_OF = dt.date(2026, 11, 21)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BULK = SHARED / "synthea-smart-bulk-ndjson-10"

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def patient(pid: str, birth: str, sex: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": sex}


def condition(cid: str, pid: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": ICD, "code": code}]},
    }


def medication(mid: str, pid: str, rxnorm: str, start: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": start,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
    }


def ferritin(oid: str, pid: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]},
        "effectiveDateTime": "2026-11-01",
        "valueQuantity": {"value": value, "unit": "ng/mL"},
    }


def lines(resources: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in resources)


def small_export(folder: Path) -> Path:
    """Four patients, shared data, and every kind of problem a real export has."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Patient.000.ndjson").write_text(
        lines(
            [
                patient("rls", "1950-02-01", "female"),
                patient("stroke", "1948-07-09", "male"),
                patient("plain", "1990-01-01", "female"),
            ]
        )
        + "{not json\n"
        + '{"resourceType": "Spaceship", "id": "x"}\n'
        + "\n"
    )
    with gzip.open(folder / "Patient.001.ndjson.gz", "wt") as fh:
        fh.write(lines([patient("cramps", "1944-03-03", "male")]))
    (folder / "Condition.000.ndjson").write_text(
        lines(
            [
                condition("c1", "rls", "G25.81"),
                condition("c2", "stroke", "I63.9"),
                condition("c3", "cramps", "G47.62"),
                condition("c4", "ghost", "G25.81"),  # a patient not in the export
            ]
        )
    )
    (folder / "MedicationRequest.000.ndjson").write_text(
        lines(
            [
                medication("m1", "rls", "746741", "2023-01-10"),  # pramipexole for years
                medication("m2", "stroke", "3322", "2026-10-01"),  # diazepam after a stroke
                medication("m3", "cramps", "9071", "2026-09-01"),  # quinine for cramps
            ]
        )
    )
    (folder / "Observation.000.ndjson").write_text(lines([ferritin("o1", "rls", 40)]))
    (folder / "Organization.000.ndjson").write_text(
        lines([{"resourceType": "Organization", "id": "org-1", "name": "Clinic"}])
    )
    (folder / "Encounter.000.ndjson").write_text("")
    (folder / "log.ndjson").write_text('{"transactionTime": "2026-11-20", "request": "x"}\n')
    (folder / "notes.txt").write_text("not data\n")
    return folder


def read_csv(path: Path) -> list[Finding]:
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == COLUMNS
    return [Finding(*r) for r in rows[1:]]


def single_patient_rows(folder: Path, kb: Knowledge, ids: Sequence[str]) -> list[Finding]:
    """Each patient as ``legspasm assess EXPORT --patient ID`` reads them, as worklist rows."""
    records = {r.patient_id: r for r in read_fhir(folder)}
    out: list[Finding] = []
    for pid in ids:
        mapped = to_case(records[pid], kb, AS_OF)
        a = evaluate(mapped.case, kb, AS_OF)
        out.extend(rows_of(a, kb, pid, attribution_of(records[pid], mapped)))
    return sorted(out)


def row(pid: str, fid: str, kind: str, **values: str) -> Finding:
    """A finding with every column not given empty."""
    given = {"patient_id": pid, "finding_id": fid, "kind": kind, "severity": "info", **values}
    return Finding(**{c: given.get(c, "") for c in COLUMNS})


def test_small_export_findings_equal_single_patient_assessment(
    tmp_path: Path, kb: Knowledge
) -> None:
    folder = small_export(tmp_path / "export")
    out = tmp_path / "findings.csv"
    printed: list[str] = []
    summary = screen(
        folder, out, AS_OF, workers=2, kinds=["all"], echo=printed.append, show_progress=False
    )
    got = read_csv(out)
    assert got == sorted(got)
    # the gzip file's patient and the plain files' patients are all there
    assert summary["patients"] == 4
    # parity: each patient as `legspasm assess` sees it, minus the files it cannot read
    clean = tmp_path / "clean"
    clean.mkdir()
    for f in folder.glob("*.ndjson"):
        if f.name not in ("log.ndjson",):
            text = f.read_text().replace("{not json\n", "")
            text = text.replace('{"resourceType": "Spaceship", "id": "x"}\n', "")
            (clean / f.name).write_text(text)
    with gzip.open(folder / "Patient.001.ndjson.gz", "rt") as fh:
        (clean / "Patient.001.ndjson").write_text(fh.read())
    # the unreadable line may be anyone's: every patient's findings say so, in one row
    marks = [f for f in got if f.kind == "data_incomplete"]
    assert [(f.patient_id, f.status) for f in marks] == [
        ("cramps", "export_data"),
        ("ghost", "not_assessed"),  # a Condition names a Patient that is not in the export
        *((pid, "export_data") for pid in ("plain", "rls", "stroke")),
    ]
    assert "Patient.000.ndjson:4" in marks[0].detail
    assert "notes.txt" not in marks[0].detail  # not export data
    assert summary["patients_data_incomplete"] == 5
    clinical = [f for f in got if f.kind != "data_incomplete"]
    assert clinical == single_patient_rows(clean, kb, ["cramps", "plain", "rls", "stroke"])
    ids = {(f.patient_id, f.finding_id) for f in got}
    assert ("stroke", "AV-BENZO-STROKE") in ids
    assert ("cramps", "AV-QUININE") in ids
    assert any(p == "rls" and f.startswith("AV-DA") for p, f in ids)
    # every problem is reported with its file and line; none stops the run
    with open(str(out) + ".problems.csv", encoding="utf-8") as fh:
        problems = {(p["file"], p["line"]) for p in csv.DictReader(fh)}
    assert ("Patient.000.ndjson", "4") in problems  # {not json
    assert ("Patient.000.ndjson", "5") in problems  # unknown resource type
    assert ("log.ndjson", "0") in problems
    assert ("notes.txt", "0") in problems
    assert ("", "0") in problems  # Patient/ghost is not in the export
    assert summary["problems"] == 5
    assert summary["resources_without_patient"] == {"Organization": 1}
    text = "\n".join(printed)
    assert "Patient.000.ndjson:4: not valid JSON" in text
    assert "AV-BENZO-STROKE" in text
    saved = json.loads((tmp_path / "findings.csv.summary.json").read_text())
    assert saved["patients"] == 4
    assert saved["by_finding"]["AV-QUININE"] == 1
    assert saved["findings"] == len(got)


def test_one_or_two_workers_csv_or_parquet_and_every_run_give_the_same_rows(
    tmp_path: Path,
) -> None:
    folder = small_export(tmp_path / "export")
    runs = []
    for i, workers in enumerate((1, 2, 2)):
        out = tmp_path / f"run{i}.csv"
        screen(folder, out, AS_OF, workers=workers, echo=lambda _: None, show_progress=False)
        runs.append(out.read_bytes())
    assert runs[0] == runs[1] == runs[2]
    pq = tmp_path / "run.parquet"
    screen(folder, pq, AS_OF, echo=lambda _: None, show_progress=False)
    import duckdb

    rows = duckdb.sql(f"SELECT * FROM '{pq}'").fetchall()
    text = [Finding(*("" if v is None else str(v) for v in r)) for r in rows]
    assert text == read_csv(tmp_path / "run0.csv")
    # typed for SQL: age a number, started a date
    types = dict(
        duckdb.sql(f"DESCRIBE SELECT age, started FROM '{pq}'").fetchall()[i][:2] for i in (0, 1)
    )
    assert types == {"age": "INTEGER", "started": "DATE"}


def test_many_buckets_give_the_same_rows(tmp_path: Path) -> None:
    folder = small_export(tmp_path / "export")
    single = screen_local(folder, AS_OF, workers=1)
    one = list(single.findings)
    single.close()
    many = screen_local(folder, AS_OF, workers=2, bucket_mb=0.0001)  # many tiny buckets
    assert list(many.findings) == one
    many.close()
    assert one


def test_bad_input_and_output_names(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from legspasm.cli import app

    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "screen",
            str(tmp_path / "missing"),
            "--as-of",
            "2026-11-21",
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert r.exit_code == 2
    assert "not a folder" in r.output
    folder = small_export(tmp_path / "export")
    r = runner.invoke(
        app, ["screen", str(folder), "--as-of", "2026-11-21", "--out", str(tmp_path / "x.xlsx")]
    )
    assert r.exit_code == 2
    assert ".csv or .parquet" in r.output
    r = runner.invoke(
        app, ["screen", str(folder), "--as-of", "2026-11-21", "--out", str(tmp_path / "x.csv")]
    )
    assert r.exit_code == 0, r.output
    assert "screened 4 patients" in r.output


@pytest.mark.skipif(not BULK.exists(), reason="shared data not present")
def test_shared_synthea_exports(tmp_path: Path, kb: Knowledge) -> None:
    out = tmp_path / "bulk.csv"
    s = screen(BULK, out, AS_OF, kinds=["all"], echo=lambda _: None, show_progress=False)
    assert s["patients"] == 9
    ids = [p["id"] for p in map(json.loads, (BULK / "Patient.000.ndjson").read_text().splitlines())]
    assert read_csv(out) == single_patient_rows(BULK, kb, ids)
    bundles = SHARED / "synthea-smart-bulk-data-server" / "bundles"
    s = screen(bundles, tmp_path / "b.csv", AS_OF, echo=lambda _: None, show_progress=False)
    assert s["patients"] == 67
    assert s["problems"] == 0


def population(folder: Path, n: int) -> Path:
    """``n`` patients, each with a condition, a medicine and a ferritin (four resources)."""
    folder.mkdir()
    with (
        (folder / "Patient.000.ndjson").open("w") as pf,
        (folder / "Condition.000.ndjson").open("w") as cf,
        (folder / "MedicationRequest.000.ndjson").open("w") as mf,
        (folder / "Observation.000.ndjson").open("w") as of,
    ):
        for i in range(n):
            pid = f"p{i}"
            pf.write(json.dumps(patient(pid, "1950-02-01", "female")) + "\n")
            cf.write(json.dumps(condition(f"c{i}", pid, "G25.81")) + "\n")
            mf.write(json.dumps(medication(f"m{i}", pid, "746741", "2023-01-10")) + "\n")
            of.write(json.dumps(ferritin(f"o{i}", pid, 40 + i % 50)) + "\n")
    return folder


def test_memory_stays_bounded_as_the_input_grows(tmp_path: Path) -> None:
    """Peak memory (RSS) of screening 1,500 and 12,000 patients, each in a fresh subprocess,
    with small buckets: the 8 times larger input must not need much more memory."""

    def peak_mb(n: int) -> float:
        folder = population(tmp_path / f"pop{n}", n)
        code = (
            "import datetime, resource; from pathlib import Path;"
            "from legspasm.screen.run import screen;"
            f"s = screen(Path({str(folder)!r}), Path({str(tmp_path / f'o{n}.csv')!r}),"
            "datetime.date(2026, 11, 21), workers=1, bucket_mb=0.25, echo=lambda _: None,"
            " show_progress=False);"
            "print(s['patients'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True
        )
        patients, mb = proc.stdout.split()
        assert int(patients) == n
        return float(mb)

    small, big = peak_mb(1_500), peak_mb(12_000)
    assert big < small + 25, (small, big)


def test_synthetic_population_parity_and_stability(tmp_path: Path, kb: Knowledge) -> None:
    """400 synthetic patients: every patient's rows equal `legspasm assess EXPORT --patient ID`,
    one and two workers and a second run give the same bytes, and the risks are found."""
    from legspasm.screen.synth import synthesize

    export = tmp_path / "pop"
    synthesize(str(export), 400, 2026, kb)
    outs = []
    for i, workers in enumerate((1, 2, 2)):
        out = tmp_path / f"s{i}.csv"
        s = screen(
            export,
            out,
            AS_OF,
            workers=workers,
            kinds=["all"],
            echo=lambda _: None,
            show_progress=False,
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    assert s["patients"] == 400
    assert s["problems"] == 0
    got = read_csv(tmp_path / "s0.csv")
    text = (export / "Patient.000.ndjson").read_text(encoding="utf-8")
    ids = sorted({json.loads(line)["id"] for line in text.splitlines()})
    assert got == single_patient_rows(export, kb, ids)
    assert {f.kind for f in got} >= {"exposure", "condition", "plan"}
    exposures = {f.finding_id for f in got if f.kind == "exposure"}
    assert len(exposures) >= 5, exposures


def test_summary_counts_patients_not_rows() -> None:
    from legspasm.screen.output import Tally

    t = Tally()
    rows = [
        row("a", "AV-BENZO-BEERS", "exposure", severity="moderate", finding="Benzodiazepine"),
        row("a", "AV-BENZO-BEERS", "exposure", severity="moderate", code="6470"),
        row("a", "rls", "condition", finding="RLS"),
        row("b", "rls", "condition"),
        row("c", "RLS-IRON", "plan", severity="low"),
    ]
    for r in sorted(rows):
        t.add(r)
    j = t.as_json()
    assert j["findings"] == 5
    assert j["patients_with_findings"] == 3
    assert j["patients_with_red_flag_or_exposure"] == 1
    assert j["by_finding"] == {"rls": 2, "AV-BENZO-BEERS": 1, "RLS-IRON": 1}
    assert j["by_condition"] == {"rls": 2}
    # each patient counted once, at their most urgent row
    assert j["patients_by_severity"] == {"urgent": 0, "high": 0, "moderate": 1, "low": 1, "info": 1}
    with pytest.raises(ValueError, match="sorted"):
        t.add(row("a", "x", "plan"))


def test_progress_counts_patients_in_both_phases(tmp_path: Path) -> None:
    """Reading reports bytes with the patients found so far; assessing reports patients, in
    many steps even for a small export (never one bucket of "0/1")."""
    folder = population(tmp_path / "pop", 300)
    size = sum(p.stat().st_size for p in folder.iterdir())
    seen: list[tuple[str, int, int, int]] = []
    run = screen_local(folder, AS_OF, workers=2, progress=lambda *a: seen.append(a))
    list(run.findings)
    run.close()
    reads = [s for s in seen if s[0] == "read"]
    assessed = [s for s in seen if s[0] == "assess"]
    assert reads[-1] == ("read", size, size, 300)
    assert [r[3] for r in reads] == sorted(r[3] for r in reads)
    assert assessed[0] == ("assess", 0, 300, 0)
    assert assessed[-1] == ("assess", 300, 300, 300)
    assert len(assessed) >= 10
    assert [a[1] for a in assessed] == sorted(a[1] for a in assessed)


def test_an_export_with_no_finding_writes_an_empty_table(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "Patient.000.ndjson").write_text(lines([patient("p", "1990-01-01", "female")]))
    for name in ("empty.parquet", "empty.csv"):
        s = screen(folder, tmp_path / name, AS_OF, echo=lambda _: None, show_progress=False)
        assert (s["patients"], s["findings"]) == (1, 0)
    import duckdb

    got = duckdb.sql(f"SELECT * FROM '{tmp_path / 'empty.parquet'}'")
    assert tuple(got.columns) == COLUMNS
    assert got.fetchall() == []
    assert read_csv(tmp_path / "empty.csv") == []
