"""Property-based safety tests: invariants that must hold for every valid case.

Each property is stated from the clinical contract (what may never be recommended, what a dose may
never exceed, what a red flag must always withhold), not from the engine's own output.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings

from legspasm import Assessment, Case, evaluate
from legspasm.engine.derive import derive
from legspasm.knowledge.model import Dose, Regimen, RenalBand
from strategies import AS_OF, KB, LAB_UNITS, SYSTEM_URLS, case_dicts, cases, medication_names

SYSTEM_SHORT = {url: short for short, url in SYSTEM_URLS.items()}

PROPS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BLOCKING = {"contraindicated", "avoid"}


def assess(case: Case) -> Assessment:
    return evaluate(case, KB, AS_OF)


def members(drugs_or_classes: list[str]) -> set[str]:
    """Drug ids named by a list of drug and class ids."""
    named = set(drugs_or_classes)
    return {d.id for d in KB.drugs.values() if d.id in named or named & set(d.classes)}


def rec_tags(step_id: str) -> set[str]:
    return set(KB.recommendations[step_id].tags)


# --- independent arithmetic -------------------------------------------------------------------

_MG = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "mg/24h": 1.0}
_FREQ_WORDS = {
    "every other day": 0.5,
    "once daily": 1.0,
    "twice daily": 2.0,
    "three times daily": 3.0,
    "four times daily": 4.0,
}
LB_KG = 0.45359237  # exact, by definition of the international avoirdupois pound
CREATININE_G_PER_MOL = 113.12  # C4H7N3O


def dose_mg(text: str) -> float:
    m = re.fullmatch(r"([\d.]+) (mg/24h|mg|g|mcg)", text)
    assert m, f"unparseable dose {text!r}"
    return float(m.group(1)) * _MG[m.group(2)]


def times_per_day(text: str) -> float:
    if text in _FREQ_WORDS:
        return _FREQ_WORDS[text]
    m = re.fullmatch(r"([\d.]+) times daily", text)
    assert m, f"unparseable frequency {text!r}"
    return float(m.group(1))


def limit_mg(d: Dose | None) -> float:
    return float("inf") if d is None else d.value * _MG[d.unit]


def age_years(case: Case) -> float | None:
    p = case.patient
    if p.birth_date is not None:
        b = p.birth_date
        return float(AS_OF.year - b.year - ((AS_OF.month, AS_OF.day) < (b.month, b.day)))
    return p.age_years


def weight_kg(case: Case) -> float | None:
    w = case.patient.weight
    if w is None:
        return None
    return w.value * (LB_KG if w.unit.lower().startswith("lb") else 1.0)


CREATININE_LOINCS = {c.code for c in KB.labs["creatinine"].codes}


def creatinine_mg_dl(case: Case) -> float | None:
    """The creatinine the engine must use: the strategy puts at most one in a case."""
    for lab in case.labs:
        is_creat = lab.name == "creatinine" or lab.loinc in CREATININE_LOINCS
        fresh = lab.date is None or 0 <= (AS_OF - lab.date).days <= 90
        if is_creat and fresh:
            if lab.unit == "umol/L":  # umol/L x g/mol = ug/L; / 10,000 = mg/dL
                return lab.value * CREATININE_G_PER_MOL / 10_000
            assert lab.unit == "mg/dL"
            return lab.value
    return None


def on_dialysis(case: Case) -> bool:
    dialysis_codes = {(c.system, c.code) for c in KB.concepts["dialysis_dependence"].codes}
    coded = any(
        c.status == "active"
        and (
            c.concept == "dialysis_dependence"
            or (c.code is not None and (SYSTEM_SHORT[c.code.system], c.code.code) in dialysis_codes)
        )
        for c in case.conditions
    )
    return case.patient.dialysis in ("haemodialysis", "peritoneal") or coded


def measured_crcl(case: Case) -> float | None:
    codes = {c.code for c in KB.labs["creatinine_clearance"].codes}
    for lab in case.labs:
        fresh = lab.date is None or 0 <= (AS_OF - lab.date).days <= 90
        if (lab.name == "creatinine_clearance" or lab.loinc in codes) and fresh:
            return lab.value
    return None


def crcl(case: Case) -> float | None:
    """A measured creatinine clearance when recorded, else Cockcroft-Gault (1976) computed here,
    independently of the engine; none on dialysis."""
    if on_dialysis(case):
        return None
    measured = measured_crcl(case)
    if measured is not None:
        return measured
    age, wt, scr, sex = age_years(case), weight_kg(case), creatinine_mg_dl(case), case.patient.sex
    if age is None or wt is None or scr is None or sex is None or age < 18 or on_dialysis(case):
        return None
    return (140 - age) * wt / (72 * scr) * (0.85 if sex == "female" else 1.0)


def egfr(case: Case) -> float | None:
    for lab in case.labs:
        is_egfr = lab.name == "egfr" or lab.loinc in {c.code for c in KB.labs["egfr"].codes}
        fresh = lab.date is None or 0 <= (AS_OF - lab.date).days <= 90
        if is_egfr and fresh:
            return lab.value
    return None


def renal_function(case: Case) -> float | None:
    """The stricter (lower) of CrCl and eGFR, whichever is known; none on dialysis."""
    if on_dialysis(case):
        return None
    known = [v for v in (crcl(case), egfr(case)) if v is not None]
    return min(known) if known else None


def bands_for(reg: Regimen, value: float, tol: float = 0.06) -> list[RenalBand]:
    """Bands containing ``value`` within ``tol`` (the engine reports CrCl to 0.1 mL/min)."""
    out = []
    for b in reg.renal_bands:
        lo = -float("inf") if b.crcl_min is None else b.crcl_min
        hi = float("inf") if b.crcl_max is None else b.crcl_max
        if lo - tol <= value < hi + tol:
            out.append(b)
    return out


# --- the strategies themselves ----------------------------------------------------------------


def test_strategy_covers_every_knowledge_base_lab() -> None:
    assert set(LAB_UNITS) == set(KB.labs)


def test_every_drug_name_in_the_strategy_resolves_to_its_drug() -> None:
    for drug_id in KB.drugs:
        for name in medication_names(drug_id):
            for written in (name, name.upper(), f"{name} 10 mg tablet"):
                case = Case.model_validate({"medications": [{"name": written}]})
                current = derive(case, KB, AS_OF).current
                assert [c.drug_id for c in current] == [drug_id], (drug_id, written)


# --- safety properties ------------------------------------------------------------------------


@PROPS
@given(cases())
def test_nothing_is_both_recommended_and_avoided(case: Case) -> None:
    a = assess(case)
    blocked_drugs = {i.drug.id for i in a.avoid if i.drug and i.severity in BLOCKING}
    for item in a.avoid:  # a general "do not start" about a class blocks every member
        if item.status == "general" and item.severity in BLOCKING:
            blocked_drugs |= members(KB.avoid_rules[item.id].drugs)
    blocked_tags: set[str] = set()
    for item in a.avoid:
        if item.severity in BLOCKING and item.target.startswith("advice: "):
            blocked_tags |= {t.strip() for t in item.target.removeprefix("advice: ").split(",")}
    for step in a.plan:
        if "review" in rec_tags(step.id):
            # Reviews a medicine the patient takes (its dose against the schedule): no new start.
            assert step.medication is not None, step.id
            assert any(w.startswith("The patient already takes") for w in step.warnings), step.id
            continue
        if step.medication is not None:
            assert step.medication.drug.id not in blocked_drugs, step.id
        assert not rec_tags(step.id) & blocked_tags, (step.id, rec_tags(step.id) & blocked_tags)


@PROPS
@given(cases())
def test_no_planned_dose_exceeds_the_regimen_or_renal_band_maximum(case: Case) -> None:
    a = assess(case)
    cg = crcl(case)
    if cg is None:
        assert a.derived.crcl_ml_min is None
    else:
        assert a.derived.crcl_ml_min == pytest.approx(cg, abs=0.051)
    value = renal_function(case)
    haemo = case.patient.dialysis == "haemodialysis"
    for step in a.plan:
        med = step.medication
        if med is None:
            continue
        drug = KB.drugs[med.drug.id]
        reg = next(r for r in drug.regimens if r.id == med.regimen)
        assert KB.recommendations[step.id].medication.drug == drug.id  # type: ignore[union-attr]
        # The patient's ceiling, from drugs.yaml: regimen maximum and the renal band's maximum.
        ceiling = limit_mg(reg.max_daily)
        if haemo and reg.haemodialysis is not None:
            band = reg.haemodialysis
            assert not band.not_recommended, f"{step.id} planned although not recommended in HD"
            ceiling = min(ceiling, limit_mg(band.daily_max))
        elif reg.renal_bands and value is not None and not on_dialysis(case):
            bands = bands_for(reg, value)  # none: the regimen maximum alone applies
            if bands:
                assert not all(b.not_recommended for b in bands), step.id
                ceiling = min(ceiling, max(limit_mg(b.daily_max) for b in bands))
        elif any(b.daily_max for b in reg.renal_bands):
            # Renal function unknown (or dialysis without a band): no dose may be given.
            assert med.dose is None, step.id
            assert med.frequency is None, step.id
            assert med.max_daily_dose_mg is None, step.id
        if med.max_daily_dose_mg is not None:
            assert med.max_daily_dose_mg <= ceiling + 1e-9, step.id
        if med.dose is not None and med.frequency is not None:
            daily = dose_mg(med.dose) * times_per_day(med.frequency)
            assert daily <= ceiling + 1e-9, f"{step.id}: {daily} mg/day > {ceiling}"
            if med.max_daily_dose_mg is not None:
                assert daily <= med.max_daily_dose_mg + 1e-9, step.id


@PROPS
@given(cases())
def test_each_choice_has_one_preferred_option_and_its_alternatives_point_to_it(case: Case) -> None:
    a = assess(case)
    steps = {s.id: s for s in a.plan}
    preferred: dict[str, list[str]] = {}
    for s in a.plan:
        group = KB.recommendations[s.id].option
        assert (group.group if group else None) == s.option_group, s.id
        if s.option_group is None:
            assert s.alternative_to is None, s.id
            continue
        if s.alternative_to is None:
            preferred.setdefault(s.option_group, []).append(s.id)
        else:
            head = steps[s.alternative_to]
            assert head.alternative_to is None, s.id
            assert head.option_group == s.option_group, s.id
            assert s.option_reason, s.id
    for group, ids in preferred.items():
        assert len(ids) == 1, (group, ids)


@PROPS
@given(cases())
def test_every_cited_id_exists_and_is_numbered(case: Case) -> None:
    a = assess(case)
    numbered = [c.id for c in a.citations]
    assert len(numbered) == len(set(numbered)), "a citation is numbered twice"
    assert [c.number for c in a.citations] == list(range(1, len(a.citations) + 1))
    shown = [c for c in a.conditions if c.status in ("documented", "likely", "possible")]
    used: list[str] = []
    for group in (a.red_flags, shown, a.plan, a.avoid, a.handout):
        for entry in group:
            assert entry.citations, f"{entry.id} has no citation"
            used += entry.citations
    for item in a.avoid:  # how to stop a current medicine is cited too
        if item.stopping is not None:
            used += item.stopping.citations
    for cid in used:
        assert cid in KB.citations, cid
        assert cid in numbered, f"{cid} is cited but missing from the reference list"
    # Conditions shown as unlikely or unknown still cite real knowledge-base entries.
    for c in a.conditions:
        assert set(c.citations) <= set(KB.citations)
    # Nothing is numbered that nothing cites (the IRLS scale and Cockcroft-Gault are cited by
    # the derived IRLS severity and by renal dose bands).
    extra = set(numbered) - set(used)
    allowed: set[str] = set()
    if a.derived.irls_severity is not None:
        allowed |= set(KB.scales["irls"].citations)
    if any(s.medication and s.medication.renal_band for s in a.plan):
        allowed.add("CG1976")
    assert extra <= allowed, extra
    for ref in a.citations:
        assert ref.text
        assert ref.basis == KB.citations[ref.id].basis


@PROPS
@given(cases())
def test_quinine_is_never_planned(case: Case) -> None:
    a = assess(case)
    for step in a.plan:
        assert not (step.medication and step.medication.drug.id == "quinine"), step.id
    cramp_contexts = {
        "nocturnal_cramps",
        "rls",
        "pregnancy_cramps",
        "cirrhosis_cramps",
        "dialysis_cramps",
        "exertional_cramps",
        "msk_spasm",
    }
    established = {c.id for c in a.conditions if c.status in ("documented", "likely")}
    if established & cramp_contexts:
        hits = [i for i in a.avoid if i.id == "AV-QUININE"]
        assert hits
        assert all(i.severity == "contraindicated" for i in hits)


@PROPS
@given(cases())
def test_evaluate_is_deterministic_and_does_not_mutate_its_input(case: Case) -> None:
    before = case.model_dump()
    first = assess(case).model_dump()
    assert case.model_dump() == before
    second = assess(case).model_dump()
    assert first == second
    # An equal case built afresh from the same data gives the same answer.
    assert assess(Case.model_validate(before)).model_dump() == first


CONTRAINDICATING = [
    "heart_failure",
    "hepatic_impairment_moderate_severe",
    "active_liver_disease",
    "hyperthyroidism",
    "recent_myocardial_infarction",
    "arrhythmia_or_conduction_disorder",
    "hepatic_encephalopathy",
]
INTERACTING = ["ciprofloxacin", "fluvoxamine", "phenelzine", "oxycodone", "tramadol", "diazepam"]
INTERACTING += ["clonazepam", "Cipro", "Nardil", "Valium"]


def _with(data: dict[str, Any], kind: str, what: str) -> dict[str, Any]:
    more = dict(data)
    if kind == "condition":
        more["conditions"] = [*data.get("conditions", []), {"concept": what}]
        ruled_out = data.get("conditions_ruled_out", [])
        more["conditions_ruled_out"] = [c for c in ruled_out if c != what]
    else:
        start = AS_OF - dt.timedelta(days=10)
        more["medications"] = [*data.get("medications", []), {"name": what, "start_date": start}]
    return more


ADDITIONS = [("condition", c) for c in CONTRAINDICATING] + [("medicine", m) for m in INTERACTING]


def assert_additions_keep_warnings(data: dict[str, Any]) -> None:
    before = assess(Case.model_validate(data))
    for kind, what in ADDITIONS:
        after = assess(Case.model_validate(_with(data, kind, what)))
        after_current = {(i.id, i.target) for i in after.avoid if i.status == "current"}
        after_general = {(i.id, i.target) for i in after.avoid if i.status == "general"}
        after_ids = {i.id for i in after.avoid if i.status in ("current", "general")}
        for item in before.avoid:
            if item.status == "current":
                assert (item.id, item.target) in after_current, f"{what} removed {item.id}"
            elif item.status == "general":
                # A general warning may only give way to the same rule about a medicine taken.
                assert (item.id, item.target) in after_general or item.id in after_ids, (
                    f"adding {what} removed {item.id} ({item.target})"
                )


@PROPS
@given(case_dicts())
def test_adding_a_risk_never_removes_a_current_or_general_warning(data: dict[str, Any]) -> None:
    assert_additions_keep_warnings(data)


_RICH = {
    "patient": {
        "age_years": 72,
        "sex": "female",
        "weight": {"value": 60, "unit": "kg"},
        "pregnant": False,
        "dialysis": "none",
        "history_of_falls_or_fractures": True,
    },
    "symptoms": {
        "cramp": {
            "present": True,
            "sudden_painful_contraction": True,
            "timing": "night_or_rest",
            "episode_duration_minutes": 3,
            "relieved_by_stretching": True,
        },
        "rls": dict.fromkeys(
            [
                "urge_to_move",
                "worse_at_rest",
                "relieved_by_movement",
                "worse_evening_night",
                "not_explained_by_other_condition",
            ],
            True,
        ),
    },
    "conditions": [{"concept": "stroke"}],
    "labs": [{"name": "creatinine", "value": 1.0, "unit": "mg/dL", "date": AS_OF}],
}


@pytest.mark.parametrize("drug_id", sorted(KB.drugs))
def test_adding_a_risk_keeps_every_warning_about_each_drug_taken(drug_id: str) -> None:
    """Systematic companion of the property above: an older adult taking each drug in turn."""
    start = AS_OF - dt.timedelta(days=60)
    med = {"name": KB.drugs[drug_id].name, "start_date": start}
    assert_additions_keep_warnings({**_RICH, "medications": [med]})


@PROPS
@given(cases())
def test_fired_red_flags_withhold_unsafe_advice(case: Case) -> None:
    a = assess(case)
    fired = {rf.id for rf in a.red_flags}
    # Evidence §3.2: never massage or stretch a leg with a possible DVT or compartment syndrome.
    clinical = {
        "RF-DVT": {"massage", "stretching"},
        "RF-COMPARTMENT": {"massage", "stretching"},
        "RF-ISCHAEMIA": {"massage", "stretching"},
    }
    for rf_id in fired:
        unsafe = set(KB.red_flags[rf_id].withhold_tags) | clinical.get(rf_id, set())
        for step in a.plan:
            assert not rec_tags(step.id) & unsafe, f"{step.id} planned despite {rf_id}"
    withheld_by = {w.by for w in a.withheld}
    for by in withheld_by:
        if by.startswith("RF-"):
            assert by in fired
    # Red flags are listed most urgent first.
    rank = {"emergency": 0, "urgent": 1, "same-day": 2}
    urgencies = [rank[rf.urgency] for rf in a.red_flags]
    assert urgencies == sorted(urgencies)


@PROPS
@given(cases())
def test_red_flag_findings_fire_their_red_flag(case: Case) -> None:
    """A documented DVT or compartment finding always fires, whatever else is in the case."""
    a = assess(case)
    fired = {rf.id for rf in a.red_flags}
    rf = case.red_flags
    if rf.unilateral_leg_swelling or rf.calf_tenderness_or_warmth:
        assert "RF-DVT" in fired
    if rf.pain_on_passive_stretch or rf.tense_compartment:
        assert "RF-COMPARTMENT" in fired
    if rf.cold_pale_pulseless_limb:
        assert "RF-ISCHAEMIA" in fired
    if case.neuro.new_focal_deficit:
        assert "RF-STROKE" in fired


ASSESSMENT_SCHEMA = Assessment.model_json_schema()


@PROPS
@given(cases())
def test_json_output_validates_against_the_published_schema(case: Case) -> None:
    a = assess(case)
    doc = json.loads(a.model_dump_json())
    jsonschema.Draft202012Validator(
        ASSESSMENT_SCHEMA, format_checker=jsonschema.FormatChecker()
    ).validate(doc)
    assert Assessment.model_validate(doc) == a


def test_schema_validation_would_catch_a_broken_document() -> None:
    """The schema test above is not vacuous: a malformed assessment is rejected."""
    case = Case.model_validate({"patient": {"age_years": 50}})
    doc = json.loads(assess(case).model_dump_json())
    doc["plan"] = [{"id": "X"}]
    validator = jsonschema.Draft202012Validator(ASSESSMENT_SCHEMA)
    assert not validator.is_valid(doc)
    del doc["plan"]
    assert not validator.is_valid(doc)
