"""Hypothesis strategies for random but schema-valid cases.

Every value is kept clinically plausible so that ``evaluate`` never rejects the case: ages 0-110,
weights 35-180 kg (given in kg or lb), labs inside realistic ranges in units a laboratory would
report, medicines drawn from the knowledge-base drug list by name, brand or RxNorm code, conditions
by knowledge-base concept id or by one of the concept's codes. Lab and medicine dates are on or
before ``as_of``; one lab per lab id, so a test can tell which value the engine used.

``cases()`` draws a ``Case``; ``case_dicts()`` draws the raw mapping a case file would hold.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from legspasm import Case, Knowledge, load_knowledge
from legspasm.case import RedFlagFeatures

__all__ = [
    "AS_OF",
    "KB",
    "LAB_UNITS",
    "SYSTEM_URLS",
    "case_dicts",
    "cases",
    "medication_names",
]

AS_OF = dt.date(2026, 11, 21)
KB: Knowledge = load_knowledge()

SYSTEM_URLS = {
    "snomed": "http://snomed.info/sct",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "loinc": "http://loinc.org",
}

# Units a laboratory reports for each knowledge-base lab, with a realistic range *in that unit*.
# Ranges reach the critical values of the red-flag screen (e.g. potassium < 2.5, sodium < 125).
LAB_UNITS: dict[str, list[tuple[str, float, float]]] = {
    "ferritin": [("ng/mL", 4, 800), ("ug/L", 4, 800), ("mcg/L", 4, 800)],
    "iron": [("ug/dL", 15, 250), ("mcg/dL", 15, 250)],
    "tibc": [("ug/dL", 150, 550)],
    "tsat": [("%", 3, 70)],
    "creatinine": [("mg/dL", 0.4, 9.0), ("umol/L", 35, 800)],
    "egfr": [("mL/min/1.73m2", 4, 130), ("mL/min/{1.73_m2}", 4, 130), ("mL/min", 4, 130)],
    "potassium": [("mmol/L", 2.0, 7.0), ("mEq/L", 2.0, 7.0)],
    "sodium": [("mmol/L", 115, 155), ("mEq/L", 115, 155)],
    "magnesium": [("mg/dL", 0.7, 3.5), ("mmol/L", 0.3, 1.4)],
    "calcium": [("mg/dL", 6.0, 12.0), ("mmol/L", 1.5, 3.0)],
    "ck": [("U/L", 20, 30000), ("IU/L", 20, 30000)],
    "tsh": [("mU/L", 0.01, 30), ("mIU/L", 0.01, 30), ("uIU/mL", 0.01, 30)],
    "albumin": [("g/dL", 1.5, 5.5), ("g/L", 15, 55)],
    "calcium_ionised": [("mmol/L", 0.6, 1.6)],
    "phosphate": [("mg/dL", 0.5, 8.0), ("mmol/L", 0.2, 2.6)],
    "pth": [("pg/mL", 5, 500)],
    "platelets": [("10*3/uL", 10, 600)],
    "haemoglobin": [("g/dL", 5, 18)],
    "alt": [("U/L", 5, 500)],
    "ast": [("U/L", 5, 500)],
    "creatinine_clearance": [("mL/min", 5, 150)],
}

# Medicines not in the knowledge base: they must be reported as unmapped, never rejected.
UNMAPPED_MEDICINES = ["aspirin", "metoprolol", "metformin 500 mg", "levothyroxine"]

tri = st.sampled_from([None, True, False])
# Red-flag findings: mostly absent or negative so that plans are not always withheld.
rare = st.sampled_from([None, False, False, None, False, True])


def _num(lo: float, hi: float, ndigits: int = 1) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False).map(lambda x: round(x, ndigits))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def medication_names(drug_id: str) -> list[str]:
    """Ways a clinician might write this knowledge-base drug: id, name and brands."""
    drug = KB.drugs[drug_id]
    return sorted({drug.id.replace("_", " "), drug.name, *drug.brands})


def _rxnorm(drug_id: str) -> list[str]:
    return [c.code for c in KB.drugs[drug_id].codes if c.system == "rxnorm"]


@st.composite
def _patient(draw: st.DrawFn, as_of: dt.date, renal: bool) -> dict[str, Any]:
    """A patient; ``renal`` guarantees age, sex and weight (for Cockcroft-Gault)."""
    sex = draw(st.sampled_from(["female", "male"] if renal else [None, "female", "male"]))
    age_mode = draw(st.sampled_from(["years", "birth"] if renal else ["years", "birth", "none"]))
    out: dict[str, Any] = {"sex": sex}
    youngest = 18 if renal else 0  # Cockcroft-Gault is for adults
    if age_mode == "years":
        out["age_years"] = draw(st.integers(youngest, 110)) * 1.0
    elif age_mode == "birth":
        days = draw(st.integers(youngest * 366, 110 * 365))
        out["birth_date"] = as_of - dt.timedelta(days=days)
    units = ["kg", "lb", "kgs", "lbs"]
    weight_mode = draw(st.sampled_from(units if renal else [*units, None]))
    if weight_mode in ("kg", "kgs"):
        out["weight"] = {"value": draw(_num(35, 180)), "unit": weight_mode}
    elif weight_mode in ("lb", "lbs"):
        out["weight"] = {"value": draw(_num(77, 400)), "unit": weight_mode}
    if sex == "male":
        out["pregnant"] = draw(st.sampled_from([None, False]))
    else:
        out["pregnant"] = draw(tri)
        if out["pregnant"]:
            out["trimester"] = draw(st.sampled_from([None, 1, 2, 3]))
            out["postpartum"] = False
        else:
            out["postpartum"] = draw(tri)
        out["lactating"] = draw(tri)
    out["dialysis"] = draw(st.sampled_from([None, "none", "none", "haemodialysis", "peritoneal"]))
    out["history_of_falls_or_fractures"] = draw(tri)
    return _drop_none(out)


@st.composite
def _cramp(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):  # a typical idiopathic nocturnal cramp
        out: dict[str, Any] = {
            "present": True,
            "sudden_painful_contraction": True,
            "palpable_hard_muscle": True,
            "timing": "night_or_rest",
            "episode_duration_minutes": draw(_num(0.1, 10)),
            "relieved_by_stretching": True,
            "sites": ["calf"],
        }
    else:
        out = {
            "present": draw(tri),
            "sudden_painful_contraction": draw(tri),
            "palpable_hard_muscle": draw(tri),
            "timing": draw(
                st.sampled_from(
                    [None, "night_or_rest", "exertion", "daytime", "continuous", "variable"]
                )
            ),
            "episode_duration_minutes": draw(st.one_of(st.none(), _num(0, 120))),
            "relieved_by_stretching": draw(tri),
            "sites": draw(
                st.one_of(
                    st.none(),
                    st.lists(
                        st.sampled_from(["calf", "foot", "thigh", "hamstring", "other"]),
                        unique=True,
                        max_size=3,
                    ),
                )
            ),
        }
    out |= {
        "frequency_per_week": draw(st.one_of(st.none(), _num(0, 50))),
        "severity_0_10": draw(st.one_of(st.none(), _num(0, 10))),
        "during_dialysis": draw(tri),
        "disabling": draw(tri),
        "nondrug_care_tried": draw(tri),
        "after_strain_or_injury": draw(tri),
        "heat_or_exercise": draw(tri),
    }
    return _drop_none(out)


@st.composite
def _rls(draw: st.DrawFn) -> dict[str, Any]:
    keys = [
        "urge_to_move",
        "worse_at_rest",
        "relieved_by_movement",
        "worse_evening_night",
        "not_explained_by_other_condition",
    ]
    if draw(st.booleans()):  # all five IRLSSG criteria met
        out: dict[str, Any] = dict.fromkeys(keys, True)
    else:
        out = {k: draw(tri) for k in keys}
    out["days_per_week"] = draw(st.one_of(st.none(), st.integers(0, 7).map(float)))
    out["distress"] = draw(st.sampled_from([None, "none", "mild", "moderate", "severe"]))
    irls = draw(st.sampled_from(["none", "items", "total", "both"]))
    if irls in ("items", "both"):
        out["irls_items"] = draw(st.lists(st.integers(0, 4), min_size=10, max_size=10))
        if irls == "both":
            out["irls_total"] = sum(out["irls_items"])
    elif irls == "total":
        out["irls_total"] = draw(st.integers(0, 40))
    out["alpha2delta_failed"] = draw(tri)
    out["augmentation_symptoms"] = draw(tri)
    out["earlier_onset_hours"] = draw(st.one_of(st.none(), st.integers(0, 12).map(float)))
    for k in ("spread_to_other_limbs", "shorter_drug_effect", "more_intense", "dose_escalated"):
        out[k] = draw(tri)
    return _drop_none(out)


@st.composite
def _symptoms(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cramp": draw(_cramp()),
        "rls": draw(_rls()),
        "spasticity": _drop_none(
            {
                "velocity_dependent_tone": draw(tri),
                "distribution": draw(st.sampled_from([None, "focal", "generalised"])),
                "causes_pain_hygiene_or_function_problem": draw(tri),
                "refractory_to_oral_agents": draw(tri),
            }
        ),
        "functional": _drop_none(
            {
                "positive_signs": draw(tri),
                "distractible_or_variable": draw(tri),
                "fixed_posture": draw(tri),
            }
        ),
        "exertional_calf_pain_relieved_by_rest": draw(tri),
        "presyncope_warning_symptoms": draw(rare),
        "carpopedal_spasm_or_perioral_paraesthesia": draw(rare),
    }
    return _drop_none(out)


_RED_FLAG_FIELDS = list(RedFlagFeatures.model_fields)


@st.composite
def _red_flags(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["unscreened", "negative", "random", "one"]))
    if mode == "unscreened":
        return {}
    if mode == "negative":
        return dict.fromkeys(_RED_FLAG_FIELDS, False)
    if mode == "one":  # a fully negative screen except one positive finding
        hit = draw(st.sampled_from(_RED_FLAG_FIELDS))
        return {k: k == hit for k in _RED_FLAG_FIELDS}
    return _drop_none({k: draw(rare) for k in _RED_FLAG_FIELDS})


@st.composite
def _neuro(draw: st.DrawFn) -> dict[str, Any]:
    return _drop_none(
        {
            "new_focal_deficit": draw(rare),
            "upper_motor_neuron_signs": draw(tri),
            "progressive_weakness_or_wasting": draw(rare),
            "fasciculations": draw(rare),
            "exam_normal": draw(tri),
        }
    )


_CODED = sorted(
    (concept.id, c.system, c.code)
    for concept in KB.concepts.values()
    for c in concept.codes
    if c.system in ("snomed", "icd10cm")
)


@st.composite
def _conditions(draw: st.DrawFn, as_of: dt.date) -> tuple[list[dict[str, Any]], list[str]]:
    """Condition entries, and concept ids documented as absent (never ones that are present)."""
    entries: list[dict[str, Any]] = []
    active: set[str] = set()
    for concept in draw(st.lists(st.sampled_from(sorted(KB.concepts)), unique=True, max_size=4)):
        status = draw(st.sampled_from(["active", "active", "active", "resolved", "inactive"]))
        entry: dict[str, Any] = {"concept": concept, "status": status}
        if draw(st.booleans()):
            entry["onset"] = as_of - dt.timedelta(days=draw(st.integers(0, 3650)))
        entries.append(entry)
        if status == "active":
            active.add(concept)
    if _CODED:
        for _concept, system, code in draw(
            st.lists(st.sampled_from(_CODED), unique=True, max_size=2)
        ):
            entries.append({"code": {"system": SYSTEM_URLS[system], "code": code}})
            # A code resolves to whatever concept the knowledge base maps it to.
            active.update(KB.lookups.concept_by_code[(system, code)])
    if draw(st.booleans()):  # a code the knowledge base does not know: reported as unmapped
        entries.append(
            {"code": {"system": SYSTEM_URLS["snomed"], "code": "1234567", "display": "other"}}
        )
    absent = draw(
        st.lists(st.sampled_from(sorted(set(KB.concepts) - active)), unique=True, max_size=3)
    )
    return entries, absent


_ALL_DRUGS = sorted(KB.drugs)
# Half the medicines come from the drugs the plan can propose or an avoid rule names directly, so
# that interactions with the plan's own drugs are exercised often.
_FOCUS = sorted(
    {d.id for d in KB.drugs.values() if d.regimens}
    | {x for rule in KB.avoid_rules.values() for x in rule.drugs if x in KB.drugs}
)


@st.composite
def _medication(draw: st.DrawFn, as_of: dt.date) -> dict[str, Any]:
    if draw(st.integers(0, 9)) == 0:
        med: dict[str, Any] = {"name": draw(st.sampled_from(UNMAPPED_MEDICINES))}
    else:
        pool = draw(st.sampled_from([_FOCUS, _ALL_DRUGS]))
        drug_id = draw(st.sampled_from(pool))
        codes = _rxnorm(drug_id)
        how = draw(st.sampled_from(["name", "name", "label", "rxnorm"]))
        if how == "rxnorm" and codes:
            med = {"rxnorm": draw(st.sampled_from(codes))}
        elif how == "label":
            name = draw(st.sampled_from(medication_names(drug_id)))
            med = {"name": f"{name} {draw(st.sampled_from([5, 10, 25, 100]))} mg tablet"}
        else:
            med = {"name": draw(st.sampled_from(medication_names(drug_id)))}
    if draw(st.booleans()):
        med["dose"] = {
            "value": draw(st.sampled_from([0.5, 1, 2, 5, 10, 25, 50, 75, 100, 300, 600, 1200])),
            "unit": "mg",
        }
        med["times_per_day"] = draw(st.sampled_from([0.5, 1, 2, 3, 4]))
    if draw(st.integers(0, 4)) > 0:
        start = as_of - dt.timedelta(days=draw(st.integers(0, 2000)))
        med["start_date"] = start
    else:
        start = None
    ending = draw(st.sampled_from(["active", "active", "active", "stopped", "ended"]))
    if ending in ("stopped", "ended"):
        lo = start or as_of - dt.timedelta(days=2000)
        end = lo + dt.timedelta(days=draw(st.integers(0, (as_of - lo).days)))
        med["end_date"] = end
        if ending == "stopped":
            med["status"] = "stopped"
    return med


@st.composite
def _lab(draw: st.DrawFn, lab_id: str, as_of: dt.date, fresh: bool = False) -> dict[str, Any]:
    unit, lo, hi = draw(st.sampled_from(LAB_UNITS[lab_id]))
    digits = 0 if hi >= 1000 else 2
    lab: dict[str, Any] = {"value": draw(_num(lo, hi, digits)), "unit": unit}
    loincs = [c.code for c in KB.labs[lab_id].codes if c.system == "loinc"]
    if loincs and draw(st.integers(0, 4)) == 0:
        lab["loinc"] = draw(st.sampled_from(loincs))
    else:
        lab["name"] = lab_id
    max_age = KB.labs[lab_id].max_age_days
    when = "recent" if fresh else draw(st.sampled_from(["recent", "recent", "undated", "stale"]))
    if when == "recent":
        lab["date"] = as_of - dt.timedelta(days=draw(st.integers(0, max_age)))
    elif when == "stale":
        lab["date"] = as_of - dt.timedelta(days=draw(st.integers(max_age + 1, max_age + 400)))
    return lab


@st.composite
def case_dicts(draw: st.DrawFn, as_of: dt.date = AS_OF) -> dict[str, Any]:
    """The raw mapping of a valid case file (dates as ``datetime.date``)."""
    # Half the cases carry everything Cockcroft-Gault needs, so renal dosing is exercised.
    renal = draw(st.booleans())
    conditions, absent = draw(_conditions(as_of))
    lab_ids = draw(st.lists(st.sampled_from(sorted(LAB_UNITS)), unique=True, max_size=6))
    if renal and "creatinine" not in lab_ids:
        lab_ids.append("creatinine")
    labs = [draw(_lab(lab_id, as_of, fresh=renal and lab_id == "creatinine")) for lab_id in lab_ids]
    if draw(st.integers(0, 5)) == 0:  # a LOINC the knowledge base does not use (HbA1c)
        labs.append({"loinc": "4548-4", "value": 6.1, "unit": "%", "date": as_of})
    case: dict[str, Any] = {
        "id": draw(st.one_of(st.none(), st.sampled_from(["case-1", "random-case"]))),
        "patient": draw(_patient(as_of, renal)),
        "symptoms": draw(_symptoms()),
        "neuro": draw(_neuro()),
        "red_flags": draw(_red_flags()),
        "conditions": conditions,
        "conditions_ruled_out": absent,
        "medications": draw(st.lists(_medication(as_of), max_size=5)),
        "labs": labs,
        "allergies": draw(
            st.lists(st.sampled_from([{"substance": "penicillin", "reaction": "rash"}]), max_size=1)
        ),
    }
    if not case["allergies"] and draw(st.booleans()):
        case["none_known"] = ["allergies"]  # no known allergy: the allergy gate is known
    return _drop_none(case)


def cases(as_of: dt.date = AS_OF) -> st.SearchStrategy[Case]:
    """Random schema-valid cases that ``evaluate(case, KB, as_of)`` accepts."""
    return case_dicts(as_of).map(Case.model_validate)
