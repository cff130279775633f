"""The screen's worklist: rows a quality team can act on without a join (who, where, what
triggered it, since when, what to do), one severity scale, names for every id, the ``--kind``
filter, and rates per clinic, clinician and prescriber.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from legspasm import Knowledge
from legspasm.cli import app
from legspasm.fhir.systems import ICD10CM, RXNORM, SNOMED
from legspasm.screen import COLUMNS, Finding
from legspasm.screen.findings import KINDS, SEVERITY, finding_names
from legspasm.screen.run import screen
from legspasm.screen.synth import synthesize

AS_OF = dt.date(2026, 11, 21)
NPI = "http://hl7.org/fhir/sid/us-npi"
MR = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}


def _lines(folder: Path, name: str, *resources: dict[str, Any]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in resources)
    (folder / name).write_text(text, encoding="utf-8")


def attributed_export(folder: Path) -> Path:
    """Two clinics, two clinicians; p1 (76, stroke) takes diazepam ordered by a clinician named
    by NPI at the other clinic's visit; p2 has nothing to find; p3 has no clinic recorded."""
    folder.mkdir(parents=True)
    _lines(
        folder,
        "Organization.000.ndjson",
        {"resourceType": "Organization", "id": "org-river", "name": "Riverside Clinic"},
        {"resourceType": "Organization", "id": "org-hill", "name": "Hillside Practice"},
    )
    _lines(
        folder,
        "Practitioner.000.ndjson",
        {
            "resourceType": "Practitioner",
            "id": "pr-ada",
            "identifier": [{"system": NPI, "value": "9990001"}],
            "name": [{"prefix": ["Dr."], "given": ["Ada"], "family": "Okafor"}],
        },
    )
    patient = {
        "resourceType": "Patient",
        "gender": "male",
        "managingOrganization": {"reference": "Organization/org-river"},
        "generalPractitioner": [{"reference": "Practitioner/pr-ada"}],
    }
    _lines(
        folder,
        "Patient.000.ndjson",
        {
            **patient,
            "id": "p1",
            "birthDate": "1950-03-01",
            "identifier": [
                {"system": "urn:other", "value": "X-1"},
                {"type": MR, "system": "urn:mrn", "value": "MRN-0001"},
            ],
        },
        {**patient, "id": "p2", "birthDate": "1980-01-01", "identifier": [{"value": "MRN-2"}]},
        {"resourceType": "Patient", "id": "p3", "birthDate": "1990-01-01", "gender": "female"},
    )
    _lines(
        folder,
        "Encounter.000.ndjson",
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p1"},
            "serviceProvider": {"reference": "Organization/org-hill"},
        },
    )
    _lines(
        folder,
        "Condition.000.ndjson",
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": SNOMED, "code": "230690007", "display": "Stroke"}]},
            "onsetDateTime": "2025-02-03",
        },
        {
            "resourceType": "Condition",
            "id": "c3",
            "subject": {"reference": "Patient/p3"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": ICD10CM, "code": "G2581"}]},
            "onsetDateTime": "2024-06-01",
        },
    )
    _lines(
        folder,
        "MedicationRequest.000.ndjson",
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/e1"},
            "requester": {
                "reference": f"Practitioner?identifier={NPI}|9990001",
                "display": "Dr. A. Okafor",
            },
            "authoredOn": "2026-09-14",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": "3322", "display": "diazepam"}],
                "text": "diazepam 5 MG Oral Tablet",
            },
        },
        {
            "resourceType": "MedicationRequest",
            "id": "m2",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p2"},
            "requester": {"display": "Dr. B. Ngata"},
            "authoredOn": "2026-01-01",
            "medicationCodeableConcept": {"text": "an unlisted cream"},
        },
    )
    return folder


def read_rows(path: Path) -> list[Finding]:
    with path.open(encoding="utf-8") as fh:
        return [Finding(**row) for row in csv.DictReader(fh)]


def test_a_worklist_row_names_patient_clinic_order_prescriber_and_date(tmp_path: Path) -> None:
    folder = attributed_export(tmp_path / "export")
    out = tmp_path / "w.csv"
    summary = screen(folder, out, AS_OF, workers=1, echo=lambda _: None, show_progress=False)
    rows = read_rows(out)
    (stroke,) = [r for r in rows if r.finding_id == "AV-BENZO-STROKE"]
    assert (stroke.patient_id, stroke.mrn, stroke.age, stroke.sex) == (
        "p1",
        "MRN-0001",
        "76",
        "male",
    )
    assert (stroke.clinic, stroke.clinic_ref) == ("Riverside Clinic", "Organization/org-river")
    assert (stroke.clinician, stroke.clinician_ref) == ("Dr. Ada Okafor", "Practitioner/pr-ada")
    assert stroke.resource == "MedicationRequest/m1"
    assert (stroke.code_system, stroke.code, stroke.code_display) == ("RxNorm", "3322", "diazepam")
    assert stroke.started == "2026-09-14"
    # the requester given by NPI resolves to the Practitioner of that identifier
    assert stroke.prescriber == "Dr. Ada Okafor"
    assert stroke.prescriber_ref == f"Practitioner?identifier={NPI}|9990001"
    assert (stroke.order_clinic, stroke.order_clinic_ref) == (
        "Hillside Practice",
        "Organization/org-hill",
    )
    assert stroke.kind == "exposure"
    assert stroke.status == "current"
    assert stroke.severity == "moderate"  # an avoid rule (not a contraindication)
    assert stroke.finding.startswith("Benzodiazepine: ")
    assert stroke.action
    # a condition row names the Condition that documents it, its code and onset
    (rls,) = [r for r in rows if r.finding_id == "rls"]
    assert (rls.resource, rls.code_system, rls.code, rls.started) == (
        "Condition/c3",
        "ICD-10-CM",
        "G2581",
        "2024-06-01",
    )
    assert (rls.mrn, rls.clinic, rls.clinician) == ("", "", "")  # p3: none recorded
    # the MRN falls back to the first identifier when none is typed MR
    assert summary["patients"] == 3
    screened = {r["name"]: r["patients"] for r in summary["screened"]["clinic"]}
    assert screened == {"Riverside Clinic": 2, "(not recorded)": 1}
    prescribers = {r["name"]: r["patients"] for r in summary["screened"]["prescriber"]}
    assert prescribers == {"Dr. Ada Okafor": 1, "Dr. B. Ngata": 1}


def test_rates_count_patients_against_the_patients_screened(tmp_path: Path) -> None:
    folder = attributed_export(tmp_path / "export")
    summary = screen(
        folder, tmp_path / "w.csv", AS_OF, workers=1, echo=lambda _: None, show_progress=False
    )
    by_clinic = {(r["name"], r["finding_id"]): r for r in summary["rates"]["clinic"]}
    river = by_clinic[("Riverside Clinic", "AV-BENZO-STROKE")]
    assert (river["patients"], river["screened"], river["rate"]) == (1, 2, 0.5)
    unrecorded = by_clinic[("(not recorded)", "rls")]
    assert (unrecorded["patients"], unrecorded["screened"], unrecorded["rate"]) == (1, 1, 1.0)
    by_prescriber = {(r["name"], r["finding_id"]): r for r in summary["rates"]["prescriber"]}
    ada = by_prescriber[("Dr. Ada Okafor", "AV-BENZO-STROKE")]
    assert (ada["patients"], ada["screened"]) == (1, 1)
    assert not any(name == "Dr. B. Ngata" for name, _ in by_prescriber)  # no finding of theirs


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory, kb: Knowledge) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pop") / "export"
    synthesize(str(folder), 400, 17, kb)
    out = folder.parent / "all.csv"
    screen(folder, out, AS_OF, kinds=["all"], echo=lambda _: None, show_progress=False)
    return folder, out


def test_one_severity_scale_with_one_meaning(population: tuple[Path, Path]) -> None:
    rows = read_rows(population[1])
    assert {r.kind for r in rows} >= {"red_flag", "exposure", "condition", "plan"}
    expected = {
        ("red_flag", "present"): {"urgent"},
        ("red_flag", "possible"): {"high"},
        ("condition", "documented"): {"info"},
        ("condition", "likely"): {"info"},
        ("plan", "recommended"): {"low"},
        ("plan_conditional", "conditional"): {"info"},
    }
    for r in rows:
        assert r.severity in SEVERITY
        if (r.kind, r.status) in expected:
            assert r.severity in expected[(r.kind, r.status)], r
        if r.kind == "exposure":
            # the rule's own level, read from its row, sets the scale: one meaning
            assert r.severity in ("high", "moderate", "low")


def test_every_id_has_a_name_and_every_actionable_row_an_action(
    population: tuple[Path, Path], kb: Knowledge
) -> None:
    names = finding_names(kb)
    every = {*kb.red_flags, *kb.contexts, *kb.recommendations, *kb.avoid_rules}
    assert every <= set(names)
    assert all(names[i] and names[i] != i for i in every)
    for r in read_rows(population[1]):
        assert r.finding
        assert r.finding != r.finding_id
        if r.kind in ("red_flag", "exposure", "exposure_unconfirmed", "plan"):
            assert r.action, r
            assert "\n" not in r.action, r


def test_exposure_rows_name_the_order_that_holds_the_drug(population: tuple[Path, Path]) -> None:
    folder, out = population
    orders = {}
    for line in (folder / "MedicationRequest.000.ndjson").read_text().splitlines():
        res = json.loads(line)
        orders[f"MedicationRequest/{res['id']}"] = res
    exposures = [r for r in read_rows(out) if r.kind == "exposure" and r.resource]
    assert len(exposures) > 20
    for r in exposures:
        order = orders[r.resource]
        assert order["subject"]["reference"] == f"Patient/{r.patient_id}"
        assert order["status"] == "active"
        text = order["medicationCodeableConcept"]["text"].lower()
        assert r.detail.split(":")[0].lower().split()[0] in text, (r.detail, text)


def test_kind_filter_writes_only_those_kinds_and_always_the_marks(
    population: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, everything = population
    every = read_rows(everything)
    out = tmp_path / "exposures.csv"
    s = screen(
        folder, out, AS_OF, kinds=["exposure,red_flag"], echo=lambda _: None, show_progress=False
    )
    got = read_rows(out)
    assert got == [r for r in every if r.kind in ("exposure", "red_flag", "data_incomplete")]
    assert set(s["kinds"]) == {"red_flag", "exposure", "data_incomplete"}
    # the default leaves the plan opportunities out of the table and the summary
    default = tmp_path / "default.csv"
    s = screen(folder, default, AS_OF, echo=lambda _: None, show_progress=False)
    assert not any(r.kind.startswith("plan") for r in read_rows(default))
    assert not any(k.startswith("plan") for k in s["finding_kinds"].values())


def test_cli_kind_option(population: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = population
    runner = CliRunner()
    args = ["screen", str(folder), "--as-of", "2026-11-21", "--out", str(tmp_path / "o.csv")]
    r = runner.invoke(app, [*args, "--kind", "plans"])
    assert r.exit_code == 0, r.output
    assert "patients per plan opportunity" in r.output
    assert {row.kind for row in read_rows(tmp_path / "o.csv")} <= {
        "plan",
        "plan_conditional",
        "data_incomplete",
    }
    r = runner.invoke(app, [*args, "--kind", "exposures"])
    assert r.exit_code == 2
    assert "--kind 'exposures': not a kind of finding" in r.output
    assert "Traceback" not in r.output


def test_summary_documents_the_scale_and_names(population: tuple[Path, Path]) -> None:
    summary = json.loads(Path(str(population[1]) + ".summary.json").read_text())
    assert list(summary["severity_scale"]) == ["urgent", "high", "moderate", "low", "info"]
    assert set(summary["finding_names"]) == set(summary["by_finding"])
    assert summary["kinds"] == list(KINDS)
    assert COLUMNS[:5] == ("patient_id", "finding_id", "kind", "severity", "status")


def test_an_order_matched_by_name_keeps_its_own_drug_code(tmp_path: Path) -> None:
    """Synthea orders clonazepam by a branded product code (RxNorm 1153378, 'Clonazepam
    [Klonopin]') the knowledge base does not list: the drug is found by its name, and the row
    still names the order's code, as a worklist joined to a pharmacy system needs."""
    folder = tmp_path / "export"
    folder.mkdir()
    _lines(
        folder,
        "Patient.000.ndjson",
        {"resourceType": "Patient", "id": "p9", "birthDate": "1940-01-01", "gender": "female"},
    )
    _lines(
        folder,
        "MedicationRequest.000.ndjson",
        {
            "resourceType": "MedicationRequest",
            "id": "m9",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p9"},
            "authoredOn": "2020-05-01",
            "medicationCodeableConcept": {
                "coding": [
                    {"system": RXNORM, "code": "1153378", "display": "Clonazepam [Klonopin]"}
                ],
                "text": "Clonazepam [Klonopin]",
            },
        },
    )
    out = tmp_path / "w.csv"
    screen(folder, out, AS_OF, workers=1, echo=lambda _: None, show_progress=False)
    (beers,) = [r for r in read_rows(out) if r.finding_id == "AV-BENZO-BEERS"]
    assert beers.resource == "MedicationRequest/m9"
    assert (beers.code_system, beers.code, beers.code_display) == (
        "RxNorm",
        "1153378",
        "Clonazepam [Klonopin]",
    )
    assert beers.started == "2020-05-01"


@pytest.mark.parametrize("assess_all", [False, True])
def test_a_patient_who_has_died_is_screened_but_on_no_worklist(
    tmp_path: Path, assess_all: bool
) -> None:
    """Synthea exports keep a dead patient's last orders active (8 of the 10 exposure rows of the
    shared 410-patient sample were for patients dead for decades). They are counted as screened
    and make no row, with the first pass and assessing everyone alike."""
    folder = tmp_path / "export"
    folder.mkdir()
    alive = {"resourceType": "Patient", "birthDate": "1940-01-01", "gender": "female"}
    _lines(
        folder,
        "Patient.000.ndjson",
        {**alive, "id": "alive"},
        {**alive, "id": "dead", "deceasedDateTime": "1991-11-02T15:08:18+00:00"},
    )
    order = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "authoredOn": "1988-05-01",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "3322"}]},
    }
    _lines(
        folder,
        "MedicationRequest.000.ndjson",
        {**order, "id": "m-alive", "subject": {"reference": "Patient/alive"}},
        {**order, "id": "m-dead", "subject": {"reference": "Patient/dead"}},
    )
    out = tmp_path / "w.csv"
    summary = screen(
        folder,
        out,
        AS_OF,
        workers=1,
        echo=lambda _: None,
        show_progress=False,
        first_pass=not assess_all,
    )
    rows = read_rows(out)
    assert {r.patient_id for r in rows} == {"alive"}
    assert "AV-BENZO-BEERS" in {r.finding_id for r in rows}
    assert summary["patients"] == 2
