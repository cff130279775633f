"""FHIR input: format detection, malformed input, and the mapping rules one resource at a time."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from legspasm import Knowledge, evaluate
from legspasm.cli import app
from legspasm.errors import FhirError
from legspasm.fhir import MappedCase, questionnaire, read_fhir, records_from_json, to_case
from legspasm.fhir.systems import ANSWER, ICD10CM, INTAKE, LOINC, RXNORM, SNOMED, UCUM

AS_OF = dt.date(2026, 11, 21)
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-05-01"}
SUBJ = {"reference": "Patient/p1"}


def bundle(*resources: dict[str, Any], btype: str = "collection") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": btype,
        "entry": [{"resource": r} for r in (PATIENT, *resources)],
    }


def mapped(kb: Knowledge, *resources: dict[str, Any]) -> MappedCase:
    (record,) = records_from_json(bundle(*resources), "test")
    return to_case(record, kb, AS_OF)


def reasons(m: MappedCase) -> list[str]:
    return [f"{u.item}: {u.reason}" for u in m.unmapped]


def condition(code: str, system: str = SNOMED, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"c-{code}",
        "subject": SUBJ,
        "code": {"coding": [{"system": system, "code": code}]},
        **extra,
    }


def status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/{system}", "code": code}]}


def lab(
    code: str, value: Any, unit: str, date: str | None = "2026-11-10", **extra: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"o-{code}-{value}-{date}",
        "status": "final",
        "subject": SUBJ,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }
    if date:
        res["effectiveDateTime"] = date
    return res


def med(
    text: str, status_: str = "active", rxnorm: str | None = None, **extra: Any
) -> dict[str, Any]:
    cc: dict[str, Any] = {"text": text}
    if rxnorm:
        cc["coding"] = [{"system": RXNORM, "code": rxnorm}]
    return {
        "resourceType": "MedicationRequest",
        "id": f"m-{text[:12]}-{status_}",
        "status": status_,
        "intent": "order",
        "subject": SUBJ,
        "medicationCodeableConcept": cc,
        **extra,
    }


def pregnancy_status(answer: str, date: str = "2026-11-20") -> dict[str, Any]:
    """A pregnancy-status Observation (LOINC 82810-3) answered with a SNOMED code."""
    return {
        "resourceType": "Observation",
        "id": "preg",
        "status": "final",
        "subject": SUBJ,
        "code": {"coding": [{"system": LOINC, "code": "82810-3"}]},
        "effectiveDateTime": date,
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": answer}]},
    }


# --- reading files ---------------------------------------------------------------------------


def test_every_bundle_type_that_carries_data_is_read(kb: Knowledge) -> None:
    for btype in ("collection", "transaction", "searchset", "batch-response", "document"):
        (record,) = records_from_json(bundle(condition("49436004"), btype=btype), "t")
        assert (
            to_case(record, kb, AS_OF).case.conditions[0].concept
            == "arrhythmia_or_conduction_disorder"
        )


def test_history_bundle_is_refused_with_its_location() -> None:
    with pytest.raises(FhirError, match=r"Bundle.type: 'history' is not a bundle type"):
        records_from_json(bundle(btype="history"), "t")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a FHIR resource"),
        ({"resourceType": 3}, "needs a 'resourceType'"),
        ({"resourceType": "not a type"}, "is not a FHIR resource type"),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": {}},
            "Bundle.entry: expected an array",
        ),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{}]},
            r"entry\[0\]: entry has no 'resource'",
        ),
        (
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {}}]},
            r"entry\[0\].resource",
        ),
    ],
)
def test_structural_problems_name_the_location(data: Any, message: str) -> None:
    with pytest.raises(FhirError, match=message):
        records_from_json(data, "t")


def test_ndjson_bad_line_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "Condition.ndjson"
    f.write_text(json.dumps(PATIENT) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(FhirError, match=r"line 3: not valid JSON"):
        read_fhir(f)


def test_bulk_folder_groups_by_patient_and_skips_logs(tmp_path: Path, kb: Knowledge) -> None:
    p2 = {**PATIENT, "id": "p2"}
    (tmp_path / "Patient.ndjson").write_text(f"{json.dumps(PATIENT)}\n{json.dumps(p2)}\n")
    c2 = {**condition("49436004"), "subject": {"reference": "Patient/p2"}}
    stray = {**condition("84114007"), "subject": {"reference": "Patient/elsewhere"}}
    (tmp_path / "Condition.ndjson").write_text(f"{json.dumps(c2)}\n{json.dumps(stray)}\n")
    (tmp_path / "log.ndjson").write_text('{"exportId": "x"}\n')
    records = read_fhir(tmp_path)
    assert [r.patient_id for r in records] == ["p1", "p2"]
    assert records[0].notes == ("log.ndjson skipped: its lines are not FHIR resources",)
    second = to_case(records[1], kb, AS_OF)
    assert [c.concept for c in second.case.conditions] == ["arrhythmia_or_conduction_disorder"]
    first = to_case(records[0], kb, AS_OF)
    assert first.case.conditions == []
    assert any("belongs to Patient/elsewhere" in r for r in reasons(first))


# --- the CLI on FHIR input -------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_cli_assesses_a_bundle_and_lists_what_it_used(tmp_path: Path) -> None:
    f = tmp_path / "record.json"
    f.write_text(json.dumps(bundle(condition("49436004"), lab("2160-0", 1.0, "mg/dL"))))
    result = run("assess", str(f), "--as-of", "2026-11-21")
    assert result.exit_code == 0, result.output
    assert "DATA USED FROM THE RECORD" in result.stdout
    assert "creatinine 1 mg/dL (2026-11-10)" in result.stdout
    as_json = json.loads(run("assess", str(f), "--as-of", "2026-11-21", "-f", "json").stdout)
    assert {u["field"] for u in as_json["data_used"]} >= {"conditions", "labs", "patient.sex"}


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("{not json", ("record.json", "line 1 column 2", "not valid JSON")),
        ('{"resourceType": "Bundle", "type": "history"}', ("Bundle.type", "history")),
        (
            '{"resourceType": "Bundle", "type": "collection", "entry": [7]}',
            ("entry[0]", "expected an object"),
        ),
    ],
)
def test_cli_malformed_fhir_exits_2_without_traceback(
    tmp_path: Path, content: str, fragments: tuple[str, ...]
) -> None:
    f = tmp_path / "record.json"
    f.write_text(content)
    result = run("assess", str(f))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in result.stderr


def test_cli_several_patients_need_patient_option(tmp_path: Path) -> None:
    p2 = {**PATIENT, "id": "p2"}
    f = tmp_path / "two.json"
    f.write_text(json.dumps({**bundle(), "entry": [{"resource": PATIENT}, {"resource": p2}]}))
    result = run("assess", str(f))
    assert result.exit_code == 2
    assert "holds 2 patients (p1, p2); choose one with --patient ID" in result.stderr
    assert run("assess", str(f), "--patient", "p2", "--as-of", "2026-11-21").exit_code == 0
    missing = run("assess", str(f), "--patient", "p9")
    assert missing.exit_code == 2
    assert "no Patient with id 'p9'" in missing.stderr


def test_cli_questionnaire_is_valid_r4(tmp_path: Path) -> None:
    from fhir.resources.R4B.questionnaire import Questionnaire

    result = run("fhir", "questionnaire")
    assert result.exit_code == 0
    q = Questionnaire.model_validate_json(result.stdout)
    assert q.url == INTAKE
    links = set()

    def walk(items: Any) -> None:
        for it in items or []:
            links.add(it.linkId)
            walk(it.item)

    walk(q.item)
    assert {
        "symptoms.rls.urge_to_move",
        "red_flags.dark_urine",
        "symptoms.rls.irls_items.10",
    } <= links
    assert len(links) == len(set(links))


# --- Patient ---------------------------------------------------------------------------------


def test_partial_or_future_birth_date_is_not_guessed(kb: Knowledge) -> None:
    for birth, why in (("1950", "partial birth date"), ("2027-01-01", "after as_of")):
        (record,) = records_from_json(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {**PATIENT, "birthDate": birth}}],
            },
            "t",
        )
        m = to_case(record, kb, AS_OF)
        assert m.case.patient.birth_date is None
        assert any(why in r for r in reasons(m))


@pytest.mark.parametrize(
    ("deceased", "on"),
    [
        ({"deceasedDateTime": "1959-12-14T21:51:36+00:00"}, dt.date(1959, 12, 14)),
        ({"deceasedDateTime": AS_OF.isoformat()}, AS_OF),
        ({"deceasedBoolean": True}, None),
    ],
)
def test_a_patient_who_has_died_is_read_and_the_assessment_says_so(
    kb: Knowledge, deceased: dict[str, Any], on: dt.date | None
) -> None:
    (record,) = records_from_json(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {**PATIENT, **deceased}}, {"resource": med("diazepam 5 mg")}],
        },
        "t",
    )
    m = to_case(record, kb, AS_OF)
    assert m.deceased is not None
    assert m.deceased.on == on
    first = m.annotate(evaluate(m.case, kb, AS_OF)).notes[0]
    assert first.kind == "data"
    when = f"died on {on}" if on else "is recorded as deceased"
    assert first.text.startswith(f"The patient {when} (Patient.deceased)")
    assert "no card or worklist row is made" in first.text


@pytest.mark.parametrize(
    "alive",
    [
        {"deceasedDateTime": (AS_OF + dt.timedelta(days=1)).isoformat()},
        {"deceasedBoolean": False},
        {},
    ],
)
def test_a_death_after_as_of_or_none_leaves_the_patient_alive(
    kb: Knowledge, alive: dict[str, Any]
) -> None:
    (record,) = records_from_json(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {**PATIENT, **alive}}],
        },
        "t",
    )
    m = to_case(record, kb, AS_OF)
    assert m.deceased is None
    assert not any(
        "Patient.deceased" in n.text for n in m.annotate(evaluate(m.case, kb, AS_OF)).notes
    )


# --- Condition -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "counted", "ruled_out"),
    [
        ({}, "active", False),
        ({"clinicalStatus": status("condition-clinical", "active")}, "active", False),
        ({"clinicalStatus": status("condition-clinical", "recurrence")}, "active", False),
        ({"clinicalStatus": status("condition-clinical", "resolved")}, "resolved", False),
        ({"clinicalStatus": status("condition-clinical", "inactive")}, "inactive", False),
        ({"abatementDateTime": "2020-01-01"}, "resolved", False),
        ({"verificationStatus": status("condition-ver-status", "refuted")}, None, True),
        ({"verificationStatus": status("condition-ver-status", "entered-in-error")}, None, False),
        ({"verificationStatus": status("condition-ver-status", "provisional")}, None, False),
        ({"verificationStatus": status("condition-ver-status", "differential")}, None, False),
    ],
)
def test_condition_statuses(
    kb: Knowledge, extra: dict[str, Any], counted: str | None, ruled_out: bool
) -> None:
    m = mapped(kb, condition("84114007", **extra))
    assert [c.status for c in m.case.conditions] == ([counted] if counted else [])
    assert m.case.conditions_ruled_out == (["heart_failure"] if ruled_out else [])
    if counted is None and not ruled_out:
        assert m.unmapped, "a condition that does not count is listed with its reason"


def test_condition_codes_icd_without_dot_and_legspasm_concepts(kb: Knowledge) -> None:
    m = mapped(
        kb,
        condition("G2581", ICD10CM),
        condition("uncontrolled_hypertension", "https://legspasm.dev/fhir/CodeSystem/concept"),
        condition("444814009"),
    )
    assert [c.concept for c in m.case.conditions] == ["restless_legs", "uncontrolled_hypertension"]
    assert reasons(m) == ["SNOMED 444814009: code not in legspasm's value sets"]


def test_malformed_condition_names_the_element(kb: Knowledge) -> None:
    bad = {**condition("84114007"), "code": {"coding": "84114007"}}
    m = mapped(kb, bad)
    assert m.case.conditions == []
    assert reasons(m) == ["Condition.code.coding: malformed: expected an array, got a string"]


# --- Medications -----------------------------------------------------------------------------


def test_ingredient_code_and_brand_text(kb: Knowledge) -> None:
    m = mapped(kb, med("tizanidine 4 mg", rxnorm="57258"), med("Zanaflex 4 MG Oral Tablet"))
    used = [(u.value.split(" (")[0], u.matched_by) for u in m.data_used if u.field == "medications"]
    assert used == [("tizanidine", "code"), ("tizanidine", "text")]
    assert [x.rxnorm for x in m.case.medications] == ["57258", None]


@pytest.mark.parametrize(
    ("text", "drugs"),
    [
        ("Flexeril 10 MG Oral Tablet", ["cyclobenzaprine"]),
        ("Lioresal Intrathecal", ["baclofen"]),
        ("Neurontin 300 MG", ["gabapentin"]),
        ("Lyrica 75 MG", ["pregabalin"]),
        ("Horizant 600 MG", ["gabapentin_enacarbil"]),
        ("Mirapex 0.25 MG", ["pramipexole"]),
        ("Requip 1 MG", ["ropinirole"]),
        ("Neupro 2 MG/24HR patch", ["rotigotine"]),
        ("Sinemet 25/100", ["levodopa"]),
        ("Valium 5 MG", ["diazepam"]),
        ("Haldol 5 MG", ["haloperidol"]),
        ("Reglan 10 MG", ["metoclopramide"]),
        ("Qualaquin 324 MG", ["quinine"]),
        (
            "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet",
            ["acetaminophen", "oxycodone"],
        ),
    ],
)
def test_brand_and_product_names_are_matched_and_reported_as_text(
    kb: Knowledge, text: str, drugs: list[str]
) -> None:
    m = mapped(kb, med(text))
    used = [u for u in m.data_used if u.field == "medications"]
    assert len(used) == len(drugs)
    for d, u in zip(drugs, used, strict=True):
        assert u.value.startswith(kb.drugs[d].name + " (current)")
        assert u.matched_by == "text"


@pytest.mark.parametrize(
    ("status_", "state"),
    [
        ("active", "active"),
        ("on-hold", "active"),
        ("completed", "stopped"),
        ("stopped", "stopped"),
        ("cancelled", None),
        ("draft", None),
        ("entered-in-error", None),
    ],
)
def test_medication_request_statuses(kb: Knowledge, status_: str, state: str | None) -> None:
    m = mapped(kb, med("cyclobenzaprine 10 mg", status_))
    assert [x.status for x in m.case.medications] == ([state] if state else [])


def test_dosage_dates_and_frequency(kb: Knowledge) -> None:
    r = med(
        "cyclobenzaprine",
        authoredOn="2026-11-01",
        dosageInstruction=[
            {
                "timing": {
                    "repeat": {
                        "frequency": 1,
                        "period": 8,
                        "periodUnit": "h",
                        "boundsPeriod": {"start": "2026-11-02"},
                    }
                },
                "doseAndRate": [
                    {"doseQuantity": {"value": 5, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
    )
    (entry,) = mapped(kb, r).case.medications
    assert entry.times_per_day == 3
    assert entry.dose is not None
    assert (entry.dose.value, entry.dose.unit) == (5, "mg")
    assert entry.start_date == dt.date(2026, 11, 2)


def test_contained_and_referenced_medication(kb: Knowledge) -> None:
    contained = {
        **med("x"),
        "medicationCodeableConcept": None,
        "medicationReference": {"reference": "#m1"},
        "contained": [{"resourceType": "Medication", "id": "m1", "code": {"text": "Zanaflex"}}],
    }
    del contained["medicationCodeableConcept"]
    referenced = {
        **med("y"),
        "id": "m-ref",
        "medicationReference": {"reference": "Medication/med2"},
    }
    del referenced["medicationCodeableConcept"]
    medication = {
        "resourceType": "Medication",
        "id": "med2",
        "code": {"coding": [{"system": RXNORM, "code": "3322"}]},
    }
    dangling = {
        **referenced,
        "id": "m-dangling",
        "medicationReference": {"reference": "Medication/nowhere"},
    }
    m = mapped(kb, contained, referenced, medication, dangling)
    names = sorted(u.value.split(" (")[0] for u in m.data_used if u.field == "medications")
    assert names == ["diazepam", "tizanidine"]
    assert any("Medication/nowhere is not in this input" in r for r in reasons(m))


def test_dispense_counts_as_current_while_its_supply_lasts(kb: Knowledge) -> None:
    def dispense(handed: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationDispense",
            "id": f"d-{handed}",
            "status": "completed",
            "subject": SUBJ,
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "21949"}]},
            "whenHandedOver": handed,
            "daysSupply": {"value": 30, "unit": "d", "system": UCUM, "code": "d"},
        }

    (current,) = mapped(kb, dispense("2026-11-01")).case.medications
    (old,) = mapped(kb, dispense("2026-09-01")).case.medications
    assert (current.status, old.status, old.end_date) == ("active", "stopped", dt.date(2026, 10, 1))


def test_unknown_medicine_is_listed_not_dropped(kb: Knowledge) -> None:
    m = mapped(kb, med("Warfarin Sodium 5 MG Oral Tablet"))
    # Kept by name: the medicine list is known, and the assessment says it was not checked.
    assert [x.name for x in m.case.medications] == ["Warfarin Sodium 5 MG Oral Tablet"]
    assert reasons(m) == []
    a = evaluate(m.case, kb, AS_OF)
    assert any("Warfarin" in n.text and n.kind == "unmapped" for n in a.notes)


# --- Observations ----------------------------------------------------------------------------


def test_latest_result_is_used_and_earlier_ones_reported(kb: Knowledge) -> None:
    m = mapped(
        kb,
        lab("2276-4", 30, "ng/mL", "2026-10-01"),
        lab("2276-4", 80, "ug/L", "2026-11-15"),
        lab("2276-4", 5, "ng/mL", "2026-12-01"),
    )
    assert [(x.value, x.unit) for x in m.case.labs] == [(80, "ug/L")]
    rs = reasons(m)
    assert any("earlier result" in r for r in rs)
    assert any("dated after as_of" in r for r in rs)


@pytest.mark.parametrize(
    ("obs", "why"),
    [
        (lab("2276-4", 40, "ng/mL", date=None), "no effective date"),
        (lab("2276-4", 40, "furlongs"), "unit not usable"),
        (lab("2276-4", 40, "mmol/L"), "unit not usable"),
        (lab("2160-0", 400, "mg/dL"), "implausible"),
        (lab("2276-4", "forty", "ng/mL"), "expected a number"),
        (lab("2276-4", 40, "ng/mL", status="cancelled"), "status cancelled"),
        (
            {
                **lab("2276-4", 40, "ng/mL"),
                "valueQuantity": {"value": 5, "comparator": "<", "unit": "ng/mL"},
            },
            "a bound",
        ),
        ({**lab("2276-4", 40, "ng/mL"), "code": None}, "required element missing"),
        (
            {**lab("2276-4", 40, "ng/mL"), "valueQuantity": None, "valueString": "low"},
            "not a quantity",
        ),
    ],
)
def test_unusable_observations_are_listed_with_the_reason(
    kb: Knowledge, obs: dict[str, Any], why: str
) -> None:
    obs = {k: v for k, v in obs.items() if v is not None}
    m = mapped(kb, obs)
    assert m.case.labs == []
    assert any(why in r for r in reasons(m)), reasons(m)


def test_stale_lab_is_passed_on_and_reported_missing(kb: Knowledge) -> None:
    m = mapped(kb, lab("2276-4", 40, "ng/mL", "2025-01-01"))
    a = evaluate(m.case, kb, AS_OF)
    assert any(n.kind == "stale" and "Ferritin" in n.text for n in a.notes)


def test_weight_window_and_pregnancy_status(kb: Knowledge) -> None:
    weight = {**lab("29463-7", 154, "[lb_av]", "2026-06-01"), "id": "w1"}
    old_weight = {**lab("29463-7", 70, "kg", "2024-01-01"), "id": "w0"}
    m = mapped(kb, old_weight, weight)
    assert m.case.patient.weight is not None
    assert m.case.patient.weight.value == 154
    stale = mapped(kb, old_weight)
    assert stale.case.patient.weight is None
    assert any("older than 365 days" in r for r in reasons(stale))
    preg = pregnancy_status("77386006")
    assert mapped(kb, preg).case.patient.pregnant is True
    not_preg = {
        **preg,
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "60001007"}]},
    }
    assert mapped(kb, not_preg).case.patient.pregnant is False
    assert mapped(kb, {**preg, "effectiveDateTime": "2026-09-01"}).case.patient.pregnant is None


def test_height_and_gestational_age_observations(kb: Knowledge) -> None:
    m = mapped(kb, lab("8302-2", 1.62, "m", "2026-01-05"))
    assert m.case.patient.height is not None
    assert (m.case.patient.height.value, m.case.patient.height.unit) == (1.62, "m")
    # 30 weeks on 2026-11-07, two weeks before as_of: 32 weeks today.
    m = mapped(kb, lab("49051-6", 30, "wk", "2026-11-07"))
    assert m.case.patient.gestational_weeks == 32.0
    assert any(
        u.field == "patient.gestational_weeks" and "32 weeks" in u.value for u in m.data_used
    )
    assert mapped(kb, lab("18185-9", 210, "d", "2026-11-21")).case.patient.gestational_weeks == 30
    # Older than the 28-day window, or past 45 weeks when aged: the pregnancy may have ended.
    old = mapped(kb, lab("11884-4", 20, "wk", "2026-10-01"))
    assert old.case.patient.gestational_weeks is None
    assert any("older than 28 days" in r for r in reasons(old))
    past = mapped(kb, lab("49051-6", 44, "wk", "2026-11-01"))
    assert past.case.patient.gestational_weeks is None
    assert any("past 45" in r for r in reasons(past)), reasons(past)


# --- AllergyIntolerance ----------------------------------------------------------------------


def test_allergies(kb: Knowledge) -> None:
    def allergy(text: str, **extra: Any) -> dict[str, Any]:
        return {
            "resourceType": "AllergyIntolerance",
            "id": f"a-{text}",
            "patient": SUBJ,
            "code": {"text": text},
            **extra,
        }

    m = mapped(
        kb,
        allergy("Neurontin"),
        allergy("opioids"),
        allergy("Allergy to mould"),
        allergy(
            "baclofen", verificationStatus=status("allergyintolerance-verification", "refuted")
        ),
    )
    # Every recorded allergy is kept, so the allergy list is known; mould matches no drug.
    assert [a.substance for a in m.case.allergies] == ["Neurontin", "opioids", "Allergy to mould"]
    rs = reasons(m)
    assert any("refuted" in r for r in rs)
    assert any("mould" in d.value and d.matched_by == "text" for d in m.data_used)


# --- QuestionnaireResponse -------------------------------------------------------------------


def qr(items: list[dict[str, Any]], authored: str = "2026-11-20", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": f"qr-{authored}",
        "questionnaire": INTAKE + "|0.2.0",
        "status": "completed",
        "subject": SUBJ,
        "authored": authored,
        "item": items,
        **extra,
    }


def item(link: str, **answer: Any) -> dict[str, Any]:
    return {"linkId": link, "answer": [answer]}


def test_intake_answers_fill_the_case(kb: Knowledge) -> None:
    items = [
        {
            "linkId": "symptoms",
            "item": [
                {
                    "linkId": "symptoms.rls",
                    "item": [
                        item("symptoms.rls.urge_to_move", valueBoolean=True),
                        item(
                            "symptoms.rls.distress",
                            valueCoding={"system": ANSWER, "code": "severe"},
                        ),
                        item("symptoms.rls.days_per_week", valueInteger=5),
                        {
                            "linkId": "symptoms.rls.irls_items",
                            "item": [
                                item(f"symptoms.rls.irls_items.{i}", valueInteger=2)
                                for i in range(1, 11)
                            ],
                        },
                    ],
                }
            ],
        },
        {"linkId": "red_flags", "item": [item("red_flags.dark_urine", valueBoolean=False)]},
        {
            "linkId": "patient",
            "item": [
                item("patient.trimester", valueInteger=2),
                item("patient.pregnant", valueBoolean=True),
            ],
        },
    ]
    case = mapped(kb, qr(items)).case
    assert case.symptoms.rls.urge_to_move is True
    assert case.symptoms.rls.distress == "severe"
    assert case.symptoms.rls.days_per_week == 5
    assert case.symptoms.rls.irls_items == [2] * 10
    assert case.red_flags.dark_urine is False
    assert (case.patient.pregnant, case.patient.trimester) == (True, 2)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (item("symptoms.rls.urge_to_move", valueString="yes"), "expected valueBoolean"),
        (
            item("symptoms.rls.distress", valueCoding={"system": ANSWER, "code": "awful"}),
            "is not one of",
        ),
        (item("symptoms.cramp.severity_0_10", valueDecimal=11), "outside"),
        (item("symptoms.not_a_field", valueBoolean=True), "is not an intake item"),
        (item("symptoms.rls.irls_items.3", valueInteger=2), "1 of 10 IRLS items answered"),
        (item("symptoms.rls", valueBoolean=True), "an answer on the group 'symptoms.rls'"),
        ({"linkId": "symptoms", "item": [{"linkId": "symptoms.rls"}]}, "answers are empty"),
    ],
)
def test_bad_intake_answers_are_listed(kb: Knowledge, bad: dict[str, Any], why: str) -> None:
    m = mapped(kb, qr([bad]))
    assert any(why in r for r in reasons(m)), reasons(m)


def test_old_other_or_unfinished_questionnaires_are_not_used(kb: Knowledge) -> None:
    answer = [item("red_flags.dark_urine", valueBoolean=True)]
    assert mapped(kb, qr(answer, authored="2026-08-01")).case.red_flags.dark_urine is None
    other = qr(answer, questionnaire="http://example.org/Questionnaire/phq9")
    assert mapped(kb, other).case.red_flags.dark_urine is None
    draft = qr(answer, status="in-progress")
    assert mapped(kb, draft).case.red_flags.dark_urine is None
    newest = mapped(
        kb,
        qr(answer),
        qr([item("red_flags.dark_urine", valueBoolean=False)], authored="2026-11-01"),
    )
    assert newest.case.red_flags.dark_urine is True


def test_questionnaire_items_are_exactly_the_intake_fields() -> None:
    q = questionnaire("x")
    links: list[str] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for it in items:
            if it["type"] not in ("group", "display"):  # display: an item's help text
                links.append(it["linkId"])
            walk(it.get("item", []))

    walk(q["item"])
    assert "patient.weight" not in links  # comes from an Observation
    assert "patient.pregnant" in links
    assert sum(1 for x in links if x.startswith("symptoms.rls.irls_items.")) == 10


def test_pregnancy_conflict_assumes_pregnant_and_says_so(kb: Knowledge) -> None:
    preg = pregnancy_status("77386006")
    said_no = qr([{"linkId": "patient", "item": [item("patient.pregnant", valueBoolean=False)]}])
    m = mapped(kb, preg, said_no)
    assert m.case.patient.pregnant is True
    assert any("conflicting records" in r for r in reasons(m))
    agreed = mapped(
        kb,
        {**preg, "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "60001007"}]}},
        said_no,
    )
    assert agreed.case.patient.pregnant is False
    assert not any("conflicting" in r for r in reasons(agreed))


def test_pregnant_answer_for_a_male_patient_is_reported_not_used(kb: Knowledge) -> None:
    male = {**PATIENT, "gender": "male"}
    answer = qr([{"linkId": "patient", "item": [item("patient.pregnant", valueBoolean=True)]}])
    (record,) = records_from_json(
        {**bundle(), "entry": [{"resource": male}, {"resource": answer}]}, "t"
    )
    m = to_case(record, kb, AS_OF)
    assert m.case.patient.pregnant is None
    assert any("contradicts sex male" in r for r in reasons(m))


def test_unknown_status_is_taken_as_current_and_said(kb: Knowledge) -> None:
    m = mapped(kb, med("cyclobenzaprine", "unknown"))
    assert [x.status for x in m.case.medications] == ["active"]
    assert any("status unknown: taken as current" in u.value for u in m.data_used)


def test_the_same_patient_sent_twice_is_one_patient_with_all_its_data() -> None:
    """A CDS Hooks prefetch may carry the Patient under two keys: one record, nothing lost."""
    from legspasm.fhir import records_from_resources

    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"text": "a condition"},
    }
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": patient}]}
    conds = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": cond}]}
    (record,) = records_from_resources([patient, bundle, conds], "prefetch")
    assert record.patient_id == "p1"
    assert [e.label for e in record.entries] == ["Condition/c1"]
