"""The Spark screening engine (``legspasm screen --engine spark``) on a local[2] master.

Its findings must be exactly those of assessing each patient directly with ``core.assess_patient``
(resources grouped with ``core.read_file`` and ``core.patient_key``, in canonical order), its
problems those the shared reader reports, and its output the same run after run.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

from legspasm import Knowledge
from legspasm.errors import FhirError, InputError
from legspasm.fhir.systems import ICD10CM, LOINC, RXNORM, SNOMED, UCUM
from legspasm.screen.core import (
    ANYONE,
    Problem,
    assess_patient,
    input_files,
    patient_key,
    read_file,
)
from legspasm.screen.findings import Finding
from legspasm.screen.spark import (
    SparkRun,
    canonical,
    spark_screen,
    spark_session,
)

AS_OF = dt.date(2026, 11, 21)
SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-smart-bulk-ndjson-10"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local[2] session for the module: Spark takes seconds to start."""
    session = spark_session("local[2]")
    yield session
    session.stop()


# --- a small synthetic export ------------------------------------------------------------------


def _patient(pid: str, gender: str, born: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": born}


def _condition(rid: str, pid: str, system: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": system, "code": code}]},
    }


def _request(rid: str, pid: str, **medication: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": "2026-10-01",
        **medication,
    }


def _lines(*items: Any) -> str:
    return "".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items)


FERRITIN = {
    "resourceType": "Observation",
    "id": "o-ferritin-p1",
    "status": "final",
    "subject": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": LOINC, "code": "2276-4"}]},
    "effectiveDateTime": "2026-11-10",
    "valueQuantity": {"value": 30, "unit": "ng/mL", "system": UCUM, "code": "ng/mL"},
}


def write_export(folder: Path, reverse: bool = False) -> Path:
    """The export: p1 (RLS, low ferritin, pramipexole), p2 (stroke, diazepam through a shared
    Medication), p3 (nothing to find), p4 (in a Bundle file), a Condition naming a Patient that is
    not in the export, and the files and lines a reader must report. ``reverse`` writes every
    file's lines in reverse order (the findings must not change)."""
    folder.mkdir()

    def ndjson(name: str, *items: Any) -> None:
        text = _lines(*(reversed(items) if reverse else items))
        if name.endswith(".gz"):
            (folder / name).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text, encoding="utf-8")

    ndjson(
        "Patient.000.ndjson",
        _patient("p1", "female", "1958-03-02"),
        _patient("p2", "male", "1941-07-19"),
        _patient("p3", "female", "1990-01-01"),
        *(() if reverse else ("{not json", {"resourceType": "Foo", "id": "x"})),
    )
    ndjson(
        "Condition.000.ndjson",
        _condition("c-rls", "p1", ICD10CM, "G25.81"),
        _condition("c-stroke", "p2", SNOMED, "230690007"),
        _condition("c-ghost", "ghost", SNOMED, "230690007"),
    )
    ndjson("Observation.000.ndjson.gz", FERRITIN)
    ndjson(
        "MedicationRequest.000.ndjson",
        _request(
            "m-prami",
            "p1",
            medicationCodeableConcept={
                "coding": [{"system": RXNORM, "code": "746741"}],
                "text": "pramipexole 0.25 mg tablet",
            },
        ),
        _request("m-diaz", "p2", medicationReference={"reference": "Medication/diaz"}),
    )
    ndjson(
        "Medication.000.ndjson",
        {
            "resourceType": "Medication",
            "id": "diaz",
            "code": {"coding": [{"system": RXNORM, "code": "3322"}], "text": "diazepam 5 mg"},
        },
    )
    (folder / "Empty.000.ndjson").write_text("", encoding="utf-8")
    ndjson(
        "log.ndjson",
        {"transactionTime": "2026-11-20T00:00:00Z", "request": "$export"},
        {"output": []},
    )
    (folder / "bundle-p4.json").write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": _patient("p4", "female", "1949-12-24")},
                    {"resource": _condition("c-rls-4", "p4", SNOMED, "32914008")},
                ],
            }
        ),
        encoding="utf-8",
    )
    (folder / "README.md").write_text("an export\n", encoding="utf-8")
    return folder


EXPECTED_PROBLEMS = [
    Problem("", 0, "resources name Patient/ghost, which is not in it", "ghost"),
    Problem(
        "Patient.000.ndjson",
        4,
        "not valid JSON: Expecting property name enclosed in double quotes",
        ANYONE,  # whose line it was cannot be told
    ),
    Problem("Patient.000.ndjson", 5, "unknown resource type 'Foo'", ""),
    Problem("README.md", 0, "not .ndjson or .json (optionally .gz): not read", ""),
    Problem("log.ndjson", 0, "its lines are not FHIR resources: not read", ""),
]


def clinical(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind != "data_incomplete"]


def marks(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.patient_id, f.status) for f in findings if f.kind == "data_incomplete"]


def direct(folder: Path, kb: Knowledge) -> tuple[list[Finding], int, dict[str, int]]:
    """The findings, patients and shared counts of assessing each patient in plain Python."""
    files, _ = input_files(folder)
    groups: dict[str, list[str]] = {}
    shared: list[Any] = []
    for f in files:
        for res, _problem in read_file(f):
            if res is None:
                continue
            key = patient_key(res)
            if key is None:
                shared.append(res)
            else:
                groups.setdefault(key, []).append(canonical(res))
    shared.sort(key=canonical)
    rows: list[Finding] = []
    patients = 0
    for pid in sorted(groups):
        resources = [json.loads(t) for t in sorted(groups[pid])]
        try:
            rows.extend(assess_patient(pid, resources, shared, kb, AS_OF, "export").rows)
        except FhirError:
            continue
        patients += 1
    counts: dict[str, int] = {}
    for r in shared:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    return sorted(rows), patients, counts


def outcome(run: SparkRun) -> tuple[list[Finding], list[Problem], int, dict[str, int]]:
    with run:
        return list(run.findings), run.problems, run.population.patients, run.shared


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("spark") / "export")


# --- tests -------------------------------------------------------------------------------------


def test_findings_equal_direct_assessment(spark: Any, export: Path, kb: Knowledge) -> None:
    findings, problems, patients, shared = outcome(spark_screen(export, AS_OF, session=spark))
    expected, n, counts = direct(export, kb)
    assert clinical(findings) == expected
    # the unreadable line may be anyone's; ghost's Condition names a Patient not in the export
    assert marks(findings) == [
        ("ghost", "not_assessed"),
        *((pid, "export_data") for pid in ("p1", "p2", "p3", "p4")),
    ]
    assert patients == n == 4
    assert shared == counts == {"Medication": 1}
    assert problems == EXPECTED_PROBLEMS
    # the export exercises the knowledge base: a patient without findings, and some with
    by_patient = {
        pid: {(f.kind, f.finding_id) for f in clinical(findings) if f.patient_id == pid}
        for pid in ("p1", "p2", "p3", "p4")
    }
    assert not by_patient["p3"]
    # RLS with a ferritin of 30 ng/mL, on pramipexole: IV iron, conditional (no allergy list)
    assert {
        ("condition", "rls"),
        ("plan_conditional", "RLS-IRON-IV"),
        ("exposure", "AV-DA-RLS"),
    } <= by_patient["p1"]
    assert ("exposure", "AV-BENZO-STROKE") in by_patient["p2"]  # diazepam from the Medication
    assert ("condition", "rls") in by_patient["p4"]  # from the Bundle file
    assert ("plan", "RLS-IRON-IV") not in by_patient["p4"]  # no ferritin
    assert spark.sparkContext._jsc is not None  # a given session is left running


def test_line_order_does_not_change_findings(spark: Any, export: Path, tmp_path: Path) -> None:
    reversed_export = write_export(tmp_path / "reversed", reverse=True)
    first = outcome(spark_screen(export, AS_OF, session=spark))
    again = outcome(spark_screen(export, AS_OF, session=spark))
    backwards = outcome(spark_screen(reversed_export, AS_OF, session=spark))
    assert first == again
    assert clinical(backwards[0]) == clinical(first[0])
    assert marks(backwards[0]) == [("ghost", "not_assessed")]  # its export has no bad line
    assert backwards[2:] == first[2:]


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason=f"{SYNTHEA} not present")
def test_synthea_bulk_export(spark: Any, kb: Knowledge) -> None:
    findings, problems, patients, shared = outcome(spark_screen(SYNTHEA, AS_OF, session=spark))
    assert patients == 9
    assert Problem("log.ndjson", 0, "its lines are not FHIR resources: not read", "") in problems
    assert marks(findings) == []  # nothing lost
    assert (findings, patients, shared) == direct(SYNTHEA, kb)


def test_empty_folder(spark: Any, tmp_path: Path) -> None:
    run = spark_screen(tmp_path, AS_OF, session=spark)
    assert outcome(run) == ([], [], 0, {})
    assert (run.files, run.input_bytes, run.problems_total) == (0, 0, 0)


def test_without_pyspark_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("pyspark", "pyspark.sql"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InputError, match=r"pip install 'legspasm\[spark\]'"):
        spark_screen(tmp_path, AS_OF)


def test_spark_and_local_engines_write_identical_tables(tmp_path: Path) -> None:
    """The whole command path (``legspasm screen``) with each engine: the same bytes."""
    from legspasm import load_knowledge
    from legspasm.screen.run import screen
    from legspasm.screen.synth import synthesize
    from test_screen import small_export

    folder = small_export(tmp_path / "export")
    population = tmp_path / "population"
    synthesize(str(population), 300, 2026, load_knowledge())
    pops = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"pop-{engine}.csv"
        screen(
            population,
            out,
            dt.date(2026, 11, 21),
            engine=engine,  # type: ignore[arg-type]
            kinds=["all"],
            echo=lambda _: None,
            show_progress=False,
        )
        pops[engine] = out.read_bytes()
    assert pops["local"] == pops["spark"]
    assert pops["local"].count(b"\n") > 100
    tables = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.csv"
        s = screen(
            folder,
            out,
            dt.date(2026, 11, 21),
            engine=engine,  # type: ignore[arg-type]
            echo=lambda _: None,
            show_progress=False,
        )
        assert s["patients"] == 4
        tables[engine] = (
            out.read_bytes(),
            Path(str(out) + ".problems.csv").read_bytes(),
            s["problems"],
            s["by_finding"],
        )
    assert tables["local"] == tables["spark"]
    assert b"AV-BENZO-STROKE" in tables["local"][0]


def _corrupted(name: str) -> Any:
    """A synthetic export with one corruption of the integrity suite."""

    def make(folder: Path, kb: Knowledge) -> Path:
        import shutil

        from legspasm.screen.synth import synthesize
        from test_screen_integrity import CORRUPTIONS, _screen, chooser

        clean = folder.parent / "clean"
        synthesize(str(clean), 300, 2026, kb)
        findings, _, _ = _screen(clean, folder.parent / "baseline.csv")
        shutil.copytree(clean, folder)
        CORRUPTIONS[name](folder, chooser(findings))
        return folder

    return make


_SPARK_EXPORTS = ["small", "attributed", "spark-test", "synthetic-5pc", "synthea-bulk"]
_SPARK_EXPORTS += [
    f"corrupt:{n}"
    for n in (
        "deep_nesting",
        "huge_integer",
        "infinite_number",
        "latin1_byte",
        "truncated_gzip",
        "line_cut_short",
    )
]


@pytest.mark.parametrize("name", _SPARK_EXPORTS)
def test_the_spark_first_pass_gives_what_assessing_everyone_gives(
    spark: Any, name: str, tmp_path: Path, kb: Knowledge
) -> None:
    """Spark choosing its patients in Spark SQL, against the local engine assessing every
    patient: the same table, problems and summary (on files Spark reads more leniently than
    Python too)."""
    from legspasm.screen.run import screen
    from test_screen_first_pass import EXPORTS

    make = _corrupted(name.split(":")[1]) if name.startswith("corrupt:") else EXPORTS[name]
    folder = make(tmp_path / "export", kb)
    varies = {"seconds", "patients_per_second", "engine", "output", "problems_file"}
    varies |= {"patients_assessed", "patients_without_domain_data"}
    got = {}
    for engine, first_pass in (("spark", True), ("local", False)):
        table = tmp_path / engine / "findings.csv"
        s = screen(
            folder,
            table,
            AS_OF,
            engine=engine,  # type: ignore[arg-type]
            kinds=["all"],
            first_pass=first_pass,
            echo=lambda _: None,
            show_progress=False,
        )
        problems = Path(str(table) + ".problems.csv").read_bytes()
        got[engine] = (
            table.read_bytes(),
            problems,
            {k: v for k, v in s.items() if k not in varies},
        )
        if engine == "spark" and name == "synthetic-5pc":
            assert s["patients_assessed"] < 0.1 * s["patients"]
    assert got["spark"] == got["local"]
