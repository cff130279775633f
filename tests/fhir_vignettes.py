"""Write FHIR R4 fixtures from the golden vignette case files.

Each ``tests/vignettes/<name>/case.yaml`` is converted into an equivalent FHIR R4 ``collection``
Bundle and written next to it as ``bundle.json``, so the FHIR-to-case mapper can be tested against
the same clinical facts as the case files. The ``as_of`` date comes from the folder's
``expected.yaml``.

The conversion follows the fixture contract shared with the mapper: Patient, body-weight
Observation, Conditions (documented and ruled out), medicines (alternately MedicationStatement and
MedicationRequest), laboratory Observations, AllergyIntolerances and one QuestionnaireResponse
holding the intake answers (pregnancy, symptoms, neurological findings, red flags).

The knowledge-base YAML files are read directly and the legspasm package is deliberately not
imported, so the fixtures stay independent of the mapper under test.

Usage, from the repository root::

    python tests/fhir_vignettes.py           # (re)write every bundle.json
    python tests/fhir_vignettes.py --check   # validate them (fhir.resources R4B) and check
                                             # that they are up to date with the case files
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VIGNETTES = ROOT / "tests" / "vignettes"
KB_DIR = ROOT / "src" / "legspasm" / "knowledge" / "data"

BASE = "https://legspasm.dev/fhir"
QURL = BASE + "/Questionnaire/legspasm-intake"
ANS = BASE + "/CodeSystem/intake-answer"
CONCEPT = BASE + "/CodeSystem/concept"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VER = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

KB_SYSTEMS = {"snomed": SNOMED, "icd10cm": ICD10CM, "rxnorm": RXNORM, "loinc": LOINC}
CASE_CODE_SYSTEMS = {SNOMED, ICD10CM, RXNORM, LOINC}

# Units as written in case files -> UCUM codes. Anything else fails loudly.
LAB_UNITS = {
    "mg/dL": "mg/dL",
    "ng/mL": "ng/mL",
    "ug/L": "ug/L",
    "umol/L": "umol/L",
    "mmol/L": "mmol/L",
    "ug/dL": "ug/dL",
    "%": "%",
    "mL/min/{1.73_m2}": "mL/min/{1.73_m2}",
    "U/L": "U/L",
    "g/dL": "g/dL",
    "mIU/L": "m[IU]/L",
    "mEq/L": "meq/L",
    # further spellings the property-test strategies use
    "mcg/L": "ug/L",
    "mcg/dL": "ug/dL",
    "mL/min/1.73m2": "mL/min/{1.73_m2}",
    "mL/min": "mL/min",
    "IU/L": "[IU]/L",
    "mU/L": "mU/L",
    "uIU/mL": "u[IU]/mL",
    "g/L": "g/L",
    "pg/mL": "pg/mL",
    "10*3/uL": "10*3/uL",
}
DOSE_UNITS = {"mg": "mg", "g": "g", "mcg": "ug", "ug": "ug"}
WEIGHT_UNITS = {"kg": "kg", "lb": "[lb_av]", "kgs": "kg", "lbs": "[lb_av]"}
HEIGHT_UNITS = {"cm": "cm", "m": "m", "in": "[in_i]"}
NO_KNOWN_ALLERGY = ("716186003", "No known allergy (situation)")  # US Core allergy value set

# Intake answers, in the order the fields are declared in src/legspasm/case.py.
# Kinds: bool -> valueBoolean, choice -> valueCoding, choices -> one valueCoding per element,
# int -> valueInteger, decimal -> valueDecimal, items -> a group of valueInteger items (1-based).
PATIENT_RESOURCE_FIELDS = ("age_years", "birth_date", "sex", "weight", "height")
PATIENT_INTAKE = {
    "pregnant": "bool",
    "trimester": "int",
    "gestational_weeks": "decimal",
    "postpartum": "bool",
    "lactating": "bool",
    "dialysis": "choice",
    "history_of_falls_or_fractures": "bool",
}
CRAMP = {
    "present": "bool",
    "sudden_painful_contraction": "bool",
    "palpable_hard_muscle": "bool",
    "timing": "choice",
    "episode_duration_minutes": "decimal",
    "sites": "choices",
    "relieved_by_stretching": "bool",
    "frequency_per_week": "decimal",
    "severity_0_10": "decimal",
    "during_dialysis": "bool",
    "disabling": "bool",
    "nondrug_care_tried": "bool",
    "after_strain_or_injury": "bool",
    "heat_or_exercise": "bool",
}
RLS = {
    "urge_to_move": "bool",
    "worse_at_rest": "bool",
    "relieved_by_movement": "bool",
    "worse_evening_night": "bool",
    "not_explained_by_other_condition": "bool",
    "days_per_week": "decimal",
    "distress": "choice",
    "irls_items": "items",
    "irls_total": "int",
    "alpha2delta_failed": "bool",
    "augmentation_symptoms": "bool",
    "earlier_onset_hours": "decimal",
    "spread_to_other_limbs": "bool",
    "shorter_drug_effect": "bool",
    "more_intense": "bool",
    "dose_escalated": "bool",
}
SPASTICITY = {
    "velocity_dependent_tone": "bool",
    "distribution": "choice",
    "causes_pain_hygiene_or_function_problem": "bool",
    "refractory_to_oral_agents": "bool",
    "sustains_posture_or_function": "bool",
    "modified_ashworth": "choice",
}
FUNCTIONAL = {
    "positive_signs": "bool",
    "distractible_or_variable": "bool",
    "fixed_posture": "bool",
}
SYMPTOM_GROUPS = {"cramp": CRAMP, "rls": RLS, "spasticity": SPASTICITY, "functional": FUNCTIONAL}
SYMPTOMS_DIRECT = {
    "exertional_calf_pain_relieved_by_rest": "bool",
    "presyncope_warning_symptoms": "bool",
    "carpopedal_spasm_or_perioral_paraesthesia": "bool",
    "duration_weeks": "decimal",
}
NEURO = {
    "new_focal_deficit": "bool",
    "upper_motor_neuron_signs": "bool",
    "progressive_weakness_or_wasting": "bool",
    "fasciculations": "bool",
    "bulbar_signs": "bool",
    "exam_normal": "bool",
}
RED_FLAGS = dict.fromkeys(
    (
        "unilateral_leg_swelling",
        "calf_tenderness_or_warmth",
        "pitting_oedema_one_leg",
        "persistent_unilateral_calf_pain",
        "recent_immobility_surgery_or_long_travel",
        "active_cancer",
        "previous_dvt",
        "pain_on_passive_stretch",
        "pain_out_of_proportion",
        "tense_compartment",
        "recent_fracture_crush_or_tight_cast",
        "dark_urine",
        "myalgia_weakness_after_exertion_heat_or_crush",
        "cold_pale_pulseless_limb",
        "paraesthesia_or_weakness_of_the_limb",
        "absent_or_reduced_foot_pulses",
        "ischaemic_rest_pain",
        "nonhealing_foot_wound_or_gangrene",
        "saddle_anaesthesia",
        "bladder_or_bowel_dysfunction",
        "bilateral_leg_weakness",
        "chest_pain",
        "rigidity_with_fever",
        "sustained_twisting_posture_after_drug",
        "bleeding_or_bruising",
        "laryngospasm_seizure_or_arrhythmia",
        "confusion_collapse_or_high_temperature_in_heat",
        "trismus_or_generalised_spasms",
        "fever_confusion_or_rebound_spasticity",
    ),
    "bool",
)
CASE_KEYS = {
    "id",
    "patient",
    "symptoms",
    "neuro",
    "red_flags",
    "conditions",
    "conditions_ruled_out",
    "medications",
    "labs",
    "allergies",
    "none_known",
}


class FixtureError(ValueError):
    """The case cannot be converted faithfully under the fixture contract."""


# --- knowledge base -----------------------------------------------------------------------------


@functools.cache
def _kb(kb_dir: Path) -> dict[str, Any]:
    def load(name: str) -> Any:
        return yaml.safe_load((kb_dir / name).read_text(encoding="utf-8"))

    concepts = {c["id"]: c for c in load("concepts.yaml")["concepts"]}
    labs = {lab["id"]: lab for lab in load("labs.yaml")["labs"]}
    drugs = load("drugs.yaml")["drugs"]
    return {"concepts": concepts, "labs": labs, "drugs": drugs}


def _verified(entry: dict[str, Any], system: str | None = None) -> list[dict[str, Any]]:
    return [
        c
        for c in entry.get("codes") or []
        if c.get("verified") is True and (system is None or c["system"] == system)
    ]


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": str(code)}
    if display:
        out["display"] = display
    return out


def _drug_by_name(kb: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The drug whose id or name equals ``name`` (case-insensitive); brands do not count."""
    key = name.strip().casefold()
    for drug in kb["drugs"]:
        if key in (drug["id"].casefold(), str(drug.get("name", "")).casefold()):
            return drug
    return None


def _drug_by_rxnorm(kb: dict[str, Any], code: str) -> dict[str, Any] | None:
    for drug in kb["drugs"]:
        if any(c["code"] == code for c in _verified(drug, "rxnorm")):
            return drug
    return None


def _concept_codeable(kb: dict[str, Any], concept_id: str) -> dict[str, Any]:
    concept = kb["concepts"].get(concept_id)
    if concept is None:
        raise FixtureError(f"unknown concept id {concept_id!r}")
    # One verified code per system (a value set such as stroke holds 140 ICD-10-CM codes), and
    # one that means only this concept (K70.31 is both cirrhosis and ascites).
    shared = {
        (c["system"], c["code"])
        for other in kb["concepts"].values()
        if other["id"] != concept_id
        for c in other.get("codes") or []
    }
    first: dict[str, dict[str, Any]] = {}
    for c in _verified(concept):
        if c["system"] in ("snomed", "icd10cm") and (c["system"], c["code"]) not in shared:
            first.setdefault(c["system"], c)
    codings = [
        _coding(KB_SYSTEMS[c["system"]], c["code"], c.get("display")) for c in first.values()
    ]
    if not codings:
        codings = [_coding(CONCEPT, concept_id, concept["name"])]
    return {"coding": codings, "text": concept["name"]}


# --- small helpers ------------------------------------------------------------------------------


def _date(value: Any, where: str) -> str:
    if isinstance(value, datetime.datetime):
        raise FixtureError(f"{where}: expected a date, got a date-time")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return datetime.date.fromisoformat(value).isoformat()
    raise FixtureError(f"{where}: expected a date, got {value!r}")


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FixtureError(f"{where}: expected a number, got {value!r}")
    return value


def _quantity(q: Any, units: dict[str, str], where: str) -> dict[str, Any]:
    if not isinstance(q, dict) or set(q) != {"value", "unit"}:
        raise FixtureError(f"{where}: expected {{value, unit}}, got {q!r}")
    unit = str(q["unit"]).strip()
    if unit not in units:
        raise FixtureError(f"{where}: unit {unit!r} has no UCUM code in the fixture table")
    value = _number(q["value"], where)
    return {"value": value, "unit": unit, "system": UCUM, "code": units[unit]}


def _check_keys(data: Any, allowed: set[str] | dict[str, str], where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FixtureError(f"{where}: expected a mapping, got {data!r}")
    unknown = set(data) - set(allowed)
    if unknown:
        raise FixtureError(f"{where}: unknown fields {sorted(unknown)}")
    return data


def _birth_date(patient: dict[str, Any], as_of: datetime.date) -> str | None:
    if patient.get("birth_date") is not None:
        return _date(patient["birth_date"], "patient.birth_date")
    if patient.get("age_years") is None:
        return None
    years = int(_number(patient["age_years"], "patient.age_years"))
    try:
        return as_of.replace(year=as_of.year - years).isoformat()
    except ValueError:  # 29 February in a non-leap year
        return as_of.replace(year=as_of.year - years, day=28).isoformat()


def _timing_repeat(times_per_day: Any, where: str) -> dict[str, Any]:
    t = Fraction(_number(times_per_day, where)).limit_denominator(24)
    if t <= 0 or float(t) != float(times_per_day):
        raise FixtureError(f"{where}: cannot express {times_per_day!r} times a day exactly")
    # frequency per period days: t = frequency / period with frequency a positive integer
    return {"frequency": t.numerator, "period": t.denominator, "periodUnit": "d"}


def _dosage(med: dict[str, Any], where: str) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    if med.get("times_per_day") is not None:
        dosage["timing"] = {"repeat": _timing_repeat(med["times_per_day"], where)}
    if med.get("dose") is not None:
        dosage["doseAndRate"] = [{"doseQuantity": _quantity(med["dose"], DOSE_UNITS, where)}]
    if med.get("as_needed") is not None:
        dosage["asNeededBoolean"] = bool(med["as_needed"])
    if med.get("timing") is not None:
        dosage["text"] = str(med["timing"])
    if med.get("route") is not None:
        dosage["route"] = {"text": str(med["route"])}
    return dosage


# --- resources ----------------------------------------------------------------------------------


def _conditions(case: dict[str, Any], kb: dict[str, Any], subject: dict[str, str]) -> list[Any]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i, entry in enumerate(case.get("conditions") or []):
        where = f"conditions[{i}]"
        entry = _check_keys(entry, {"concept", "code", "status", "onset", "abatement"}, where)
        concept_id = entry.get("concept")
        code = entry.get("code")
        if code is not None:
            code = _check_keys(code, {"system", "code", "display"}, where + ".code")
            if code.get("system") not in CASE_CODE_SYSTEMS or not code.get("code"):
                raise FixtureError(f"{where}.code: bad coding {code!r}")
            codeable: dict[str, Any] = {
                "coding": [_coding(code["system"], code["code"], code.get("display"))]
            }
            if concept_id is not None:
                codeable["text"] = _concept_codeable(kb, concept_id)["text"]
            elif code.get("display"):
                codeable["text"] = code["display"]
        elif concept_id is not None:
            codeable = _concept_codeable(kb, concept_id)
        else:
            raise FixtureError(f"{where}: give 'concept' or 'code'")
        status = entry.get("status", "active")
        if status not in ("active", "resolved", "inactive"):
            raise FixtureError(f"{where}.status: {status!r}")
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": status}]},
            "verificationStatus": {"coding": [{"system": CONDITION_VER, "code": "confirmed"}]},
            "code": codeable,
            "subject": subject,
        }
        if entry.get("onset") is not None:
            resource["onsetDateTime"] = _date(entry["onset"], where + ".onset")
        if entry.get("abatement") is not None:
            resource["abatementDateTime"] = _date(entry["abatement"], where + ".abatement")
        out.append((f"condition/{i}", resource))
    for i, concept_id in enumerate(case.get("conditions_ruled_out") or []):
        if not isinstance(concept_id, str):
            raise FixtureError(f"conditions_ruled_out[{i}]: expected a concept id")
        resource = {
            "resourceType": "Condition",
            "verificationStatus": {"coding": [{"system": CONDITION_VER, "code": "refuted"}]},
            "code": _concept_codeable(kb, concept_id.strip()),
            "subject": subject,
        }
        out.append((f"condition-ruled-out/{i}", resource))
    return out


def _medication_codeable(med: dict[str, Any], kb: dict[str, Any]) -> dict[str, Any]:
    name = med.get("name")
    name = name.strip() if isinstance(name, str) else None
    rxnorm = med.get("rxnorm")
    drug = None
    if rxnorm is not None:
        rxnorm = str(rxnorm).strip()
        drug = _drug_by_rxnorm(kb, rxnorm)
    elif name is not None:
        drug = _drug_by_name(kb, name)
        codes = _verified(drug, "rxnorm") if drug else []
        rxnorm = codes[0]["code"] if codes else None
    codeable: dict[str, Any] = {}
    if rxnorm is not None:
        codeable["coding"] = [_coding(RXNORM, rxnorm, drug["name"] if drug else None)]
    text = name if name is not None else (drug["name"] if drug else None)
    if text:
        codeable["text"] = text
    if not codeable:
        raise FixtureError(f"medication {med!r} has neither name nor rxnorm")
    return codeable


def _medications(case: dict[str, Any], kb: dict[str, Any], subject: dict[str, str]) -> list[Any]:
    keys = {
        "name",
        "rxnorm",
        "dose",
        "times_per_day",
        "start_date",
        "end_date",
        "status",
        "as_needed",
        "timing",
        "route",
        "outcome",
    }
    outcomes = {
        "ineffective": "Stopped: ineffective",
        "not_tolerated": "Stopped: not tolerated (side effects)",
        "augmentation": "RLS augmentation",
        "helped": "Helped",
        "partial": "Partial benefit",
    }
    out: list[tuple[str, dict[str, Any]]] = []
    for i, med in enumerate(case.get("medications") or []):
        where = f"medications[{i}]"
        med = _check_keys(med, keys, where)
        status = med.get("status", "active")
        if status not in ("active", "stopped"):
            raise FixtureError(f"{where}.status: {status!r}")
        period = {}
        if med.get("start_date") is not None:
            period["start"] = _date(med["start_date"], where + ".start_date")
        if med.get("end_date") is not None:
            period["end"] = _date(med["end_date"], where + ".end_date")
        dosage = _dosage(med, where)
        codeable = _medication_codeable(med, kb)
        if i % 2 == 0:
            resource: dict[str, Any] = {
                "resourceType": "MedicationStatement",
                "status": status,
                "medicationCodeableConcept": codeable,
                "subject": subject,
            }
            if period:
                resource["effectivePeriod"] = period
            if dosage:
                resource["dosage"] = [dosage]
            if med.get("outcome") is not None:
                resource["statusReason"] = [{"text": outcomes[med["outcome"]]}]
            out.append((f"medication-statement/{i}", resource))
        else:
            resource = {
                "resourceType": "MedicationRequest",
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": codeable,
                "subject": subject,
            }
            if "start" in period:
                resource["authoredOn"] = period["start"]
            if period:
                dosage.setdefault("timing", {}).setdefault("repeat", {})["boundsPeriod"] = period
            if dosage:
                resource["dosageInstruction"] = [dosage]
            if med.get("outcome") is not None:
                resource["statusReason"] = {"text": outcomes[med["outcome"]]}
            out.append((f"medication-request/{i}", resource))
    return out


def _labs(case: dict[str, Any], kb: dict[str, Any], subject: dict[str, str]) -> list[Any]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i, lab in enumerate(case.get("labs") or []):
        where = f"labs[{i}]"
        lab = _check_keys(lab, {"name", "loinc", "value", "unit", "date"}, where)
        display = None
        if lab.get("loinc") is not None:
            code = str(lab["loinc"]).strip()
            for known in kb["labs"].values():
                display = display or next(
                    (c.get("display") for c in _verified(known, "loinc") if c["code"] == code),
                    None,
                )
        elif lab.get("name") is not None:
            known = kb["labs"].get(str(lab["name"]).strip())
            codes = _verified(known, "loinc") if known else []
            if not codes:
                raise FixtureError(f"{where}: lab {lab['name']!r} has no verified LOINC code")
            code, display = codes[0]["code"], codes[0].get("display")
        else:
            raise FixtureError(f"{where}: give 'name' or 'loinc'")
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory"}]}],
            "code": {"coding": [_coding(LOINC, code, display)]},
            "subject": subject,
        }
        if lab.get("date") is not None:
            resource["effectiveDateTime"] = _date(lab["date"], where + ".date")
        resource["valueQuantity"] = _quantity(
            {"value": lab.get("value"), "unit": lab.get("unit")}, LAB_UNITS, where
        )
        out.append((f"lab/{i}", resource))
    return out


def _allergies(case: dict[str, Any], kb: dict[str, Any], subject: dict[str, str]) -> list[Any]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i, allergy in enumerate(case.get("allergies") or []):
        where = f"allergies[{i}]"
        allergy = _check_keys(allergy, {"substance", "reaction"}, where)
        substance = str(allergy.get("substance") or "").strip()
        if not substance:
            raise FixtureError(f"{where}: substance is required")
        code: dict[str, Any] = {}
        drug = _drug_by_name(kb, substance)
        codes = _verified(drug, "rxnorm") if drug else []
        if drug and codes:
            code["coding"] = [_coding(RXNORM, codes[0]["code"], drug["name"])]
        code["text"] = substance
        resource: dict[str, Any] = {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": ALLERGY_VER, "code": "confirmed"}]},
            "code": code,
            "patient": subject,
        }
        if allergy.get("reaction"):
            resource["reaction"] = [{"manifestation": [{"text": str(allergy["reaction"])}]}]
        out.append((f"allergy/{i}", resource))
    return out


# --- intake QuestionnaireResponse ---------------------------------------------------------------


def _answers(kind: str, value: Any, where: str) -> list[dict[str, Any]]:
    if kind == "bool":
        if not isinstance(value, bool):
            raise FixtureError(f"{where}: expected true/false, got {value!r}")
        return [{"valueBoolean": value}]
    if kind == "choice":
        if not isinstance(value, str):
            raise FixtureError(f"{where}: expected a string choice, got {value!r}")
        return [{"valueCoding": {"system": ANS, "code": value.strip()}}]
    if kind == "choices":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FixtureError(f"{where}: expected a list of string choices, got {value!r}")
        return [{"valueCoding": {"system": ANS, "code": v.strip()}} for v in value]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise FixtureError(f"{where}: expected an integer, got {value!r}")
        return [{"valueInteger": value}]
    if kind == "decimal":
        return [{"valueDecimal": _number(value, where)}]
    raise AssertionError(kind)


def _items(data: Any, fields: dict[str, str], prefix: str) -> list[dict[str, Any]]:
    data = _check_keys(data, fields, prefix)
    items: list[dict[str, Any]] = []
    for field, kind in fields.items():
        value = data.get(field)
        if value is None:
            continue
        link = f"{prefix}.{field}"
        if kind == "items":
            if not isinstance(value, list) or len(value) != 10:
                raise FixtureError(f"{link}: expected 10 item scores, got {value!r}")
            sub = [
                {"linkId": f"{link}.{n}", "answer": _answers("int", v, f"{link}.{n}")}
                for n, v in enumerate(value, start=1)
            ]
            items.append({"linkId": link, "item": sub})
        else:
            items.append({"linkId": link, "answer": _answers(kind, value, link)})
    return items


def _intake(case: dict[str, Any]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    patient = {
        k: v for k, v in (case.get("patient") or {}).items() if k not in PATIENT_RESOURCE_FIELDS
    }
    patient_items = _items(patient, PATIENT_INTAKE, "patient")
    if patient_items:
        groups.append({"linkId": "patient", "item": patient_items})

    symptoms = _check_keys(case.get("symptoms"), SYMPTOM_GROUPS | SYMPTOMS_DIRECT, "symptoms")
    symptom_items: list[dict[str, Any]] = []
    for group, fields in SYMPTOM_GROUPS.items():
        link = f"symptoms.{group}"
        sub = _items(symptoms.get(group), fields, link)
        if sub:
            symptom_items.append({"linkId": link, "item": sub})
    direct = {k: v for k, v in symptoms.items() if k in SYMPTOMS_DIRECT}
    symptom_items += _items(direct, SYMPTOMS_DIRECT, "symptoms")
    if symptom_items:
        groups.append({"linkId": "symptoms", "item": symptom_items})

    for section, fields in (("neuro", NEURO), ("red_flags", RED_FLAGS)):
        sub = _items(case.get(section), fields, section)
        if sub:
            groups.append({"linkId": section, "item": sub})
    return groups


# --- the bundle ---------------------------------------------------------------------------------


def case_to_bundle(
    case: dict[str, Any],
    as_of: datetime.date,
    kb_dir: Path,
    *,
    name: str | None = None,
) -> dict[str, Any]:
    """Convert one case (parsed case.yaml) to a FHIR R4 collection Bundle.

    ``name`` seeds the stable resource ids (uuid5); it defaults to the case ``id``. The vignette
    writer passes the folder name.
    """
    if case.get("orders"):
        raise FixtureError("(case).orders: orders come from a CDS Hooks request, not a record")
    case = {k: v for k, v in case.items() if k != "orders"}
    _check_keys(case, CASE_KEYS, "(case)")
    kb = _kb(Path(kb_dir).resolve())
    seed = name or case.get("id") or "case"
    patient_data = _check_keys(
        case.get("patient"), set(PATIENT_RESOURCE_FIELDS) | set(PATIENT_INTAKE), "patient"
    )

    def rid(key: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{BASE}/vignette/{seed}/{key}"))

    patient_id = rid("patient")
    subject = {"reference": f"urn:uuid:{patient_id}"}

    patient: dict[str, Any] = {"resourceType": "Patient"}
    sex = patient_data.get("sex")
    if sex is not None:
        if sex not in ("female", "male"):
            raise FixtureError(f"patient.sex: {sex!r}")
        patient["gender"] = sex
    birth_date = _birth_date(patient_data, as_of)
    if birth_date is not None:
        patient["birthDate"] = birth_date
    resources: list[tuple[str, dict[str, Any]]] = [("patient", patient)]

    if patient_data.get("weight") is not None:
        weight = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [_coding(LOINC, "29463-7", "Body weight")]},
            "subject": subject,
            "effectiveDateTime": as_of.isoformat(),
            "valueQuantity": _quantity(patient_data["weight"], WEIGHT_UNITS, "patient.weight"),
        }
        resources.append(("weight", weight))

    if patient_data.get("height") is not None:
        height = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [_coding(LOINC, "8302-2", "Body height")]},
            "subject": subject,
            "effectiveDateTime": as_of.isoformat(),
            "valueQuantity": _quantity(patient_data["height"], HEIGHT_UNITS, "patient.height"),
        }
        resources.append(("height", height))
    none_known = case.get("none_known") or []
    unsupported = sorted(set(none_known) - {"allergies"})
    if unsupported:
        raise FixtureError(f"none_known: {unsupported} has no FHIR form in the fixture contract")
    if "allergies" in none_known:
        resources.append(
            (
                "no-known-allergy",
                {
                    "resourceType": "AllergyIntolerance",
                    "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
                    "verificationStatus": {
                        "coding": [{"system": ALLERGY_VER, "code": "confirmed"}]
                    },
                    "code": {"coding": [_coding(SNOMED, *NO_KNOWN_ALLERGY)]},
                    "patient": subject,
                },
            )
        )

    resources += _conditions(case, kb, subject)
    resources += _medications(case, kb, subject)
    resources += _labs(case, kb, subject)
    resources += _allergies(case, kb, subject)

    intake = _intake(case)
    if intake:
        response = {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": QURL,
            "status": "completed",
            "subject": subject,
            "authored": as_of.isoformat(),
            "item": intake,
        }
        resources.append(("intake", response))

    entries = []
    for key, resource in resources:
        ident = rid(key)
        body = {"resourceType": resource["resourceType"], "id": ident}
        body.update((k, v) for k, v in resource.items() if k != "resourceType")
        entries.append({"fullUrl": f"urn:uuid:{ident}", "resource": body})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


# --- command line -------------------------------------------------------------------------------


def _render(folder: Path, kb_dir: Path) -> str:
    case = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
    expected = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))
    as_of = expected["as_of"]
    if not isinstance(as_of, datetime.date):
        as_of = datetime.date.fromisoformat(str(as_of))
    try:
        bundle = case_to_bundle(case, as_of, kb_dir, name=folder.name)
    except FixtureError as exc:
        raise FixtureError(f"{folder.name}: {exc}") from None
    return json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"


def _validate(text: str) -> None:
    from fhir.resources.R4B.bundle import Bundle  # R4B models: the nearest to R4 available

    Bundle.model_validate(json.loads(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; validate each bundle.json and check it matches its case file",
    )
    args = parser.parse_args(argv)
    folders = sorted(p for p in VIGNETTES.iterdir() if p.is_dir())
    failures = 0
    for folder in folders:
        text = _render(folder, KB_DIR)
        target = folder / "bundle.json"
        if not args.check:
            target.write_text(text, encoding="utf-8")
            continue
        try:
            on_disk = target.read_text(encoding="utf-8")
            if on_disk != text:
                raise ValueError("out of date: rerun tests/fhir_vignettes.py")
            _validate(on_disk)
        except Exception as exc:  # report every failing folder, not only the first
            failures += 1
            print(f"FAIL {folder.name}: {exc}", file=sys.stderr)
    verb = "checked" if args.check else "wrote"
    print(f"{verb} {len(folders)} bundles, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
