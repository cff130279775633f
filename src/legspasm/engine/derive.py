"""Derived facts: turn a Case (and as_of) into the flat fact map the knowledge base tests.

Also resolves medicines, conditions and labs against the knowledge base, converts units,
computes Cockcroft-Gault CrCl, TSAT and the IRLS total, and reports what it could not use.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..assessment import Note
from ..case import (
    Case,
    Code,
    ConditionEntry,
    LabResult,
    MedicationEntry,
    MedicationOrder,
    Quantity,
)
from ..errors import CaseValidationError
from ..expr import Total
from ..facts import FactValue
from ..knowledge import Knowledge
from ..units import UnitError, normalise

__all__ = ["CrCl", "Derivation", "FactMap", "Renal", "derive"]

_TWO_VALUED = ("condition.", "takes.", "intrathecal.", "failed.")
_LIVER = (
    "hepatic_impairment_mild",
    "hepatic_impairment_moderate_severe",
    "cirrhosis",
    "active_liver_disease",
)
_SYSTEMS = {
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://loinc.org": "loinc",
}


@functools.cache  # a pure function of the name, over the knowledge base's bounded vocabulary
def _default(name: str) -> FactValue:
    if name.startswith(_TWO_VALUED):
        return False
    if name.startswith("stopped_days_ago."):
        return float("inf")
    if name.startswith("days_on."):
        return 0.0
    return None


class FactMap(Total):
    """Facts by name, with a note on where derived ones came from (``why``).

    Facts about the documented record have defaults when absent: a diagnosis or medicine not on
    the record is not documented (False), a medicine never stopped was stopped infinitely long
    ago, a medicine not taken has been taken for 0 days. A current medicine with no start date has
    an explicit unknown ``days_on``. Every other absent fact is unknown (None).

    A dict of the derived facts (a fact read by ``facts[name]`` is a dict lookup; an absent one
    gets its default from ``__missing__``, which stores nothing). Read-only by convention: the
    engine makes a new map (``with_overlay``) rather than changing one.
    """

    __slots__ = ("why",)

    def __init__(self, values: Mapping[str, FactValue], why: dict[str, str] | None = None) -> None:
        super().__init__(values)
        self.why = why or {}

    def __missing__(self, name: str) -> FactValue:
        return _default(name)

    def get(self, name: str, default: FactValue = None) -> FactValue:  # type: ignore[override]
        v = self[name]
        return default if v is None else v

    def recorded(self, name: str) -> bool:
        """True when the fact was derived from the case rather than defaulted."""
        return name in self

    def with_overlay(
        self, extra: dict[str, FactValue], why: dict[str, str] | None = None
    ) -> FactMap:
        return FactMap({**self, **extra}, {**self.why, **why} if why else self.why)


@dataclass(frozen=True, slots=True)
class CrCl:
    value: float | None
    note: str


@dataclass(frozen=True, slots=True)
class Renal:
    """Renal function for dosing: CrCl or eGFR, whichever is known, the lower when both are.

    A measured creatinine clearance is used in place of Cockcroft-Gault when recorded. On
    dialysis neither estimate means anything, so ``value`` is None and the dialysis band applies.
    """

    value: float | None
    note: str
    crcl: CrCl
    egfr: float | None
    dialysis: bool | None
    haemodialysis: bool | None

    @property
    def known(self) -> bool:
        return self.value is not None or self.dialysis is True


def renal_function(
    crcl: CrCl, egfr: float | None, dialysis: bool | None, haemodialysis: bool | None
) -> Renal:
    if dialysis is True:
        kind = "haemodialysis" if haemodialysis else "dialysis"
        return Renal(
            None,
            f"on {kind}: creatinine clearance and eGFR are not used for dosing",
            crcl,
            egfr,
            dialysis,
            haemodialysis,
        )
    options = [(v, n) for v, n in ((crcl.value, "CrCl"), (egfr, "eGFR")) if v is not None]
    if not options:
        return Renal(None, "unknown: " + crcl.note, crcl, egfr, dialysis, haemodialysis)
    value, name = min(options)
    if len(options) == 2:
        note = f"{value:g} mL/min ({name}: the lower of CrCl {crcl.value:g} and eGFR {egfr:g})"
    else:
        note = f"{value:g} mL/min ({name})"
    return Renal(value, note, crcl, egfr, dialysis, haemodialysis)


@dataclass(frozen=True, slots=True)
class CurrentMed:
    drug_id: str
    entry: MedicationEntry
    daily_mg: float | None


@dataclass(frozen=True, slots=True)
class OrderedMed:
    """A medicine being ordered now, matched to the knowledge base."""

    drug_id: str
    order: MedicationOrder
    daily_mg: float | None
    label: str  # the order as named in the case, for messages


@dataclass
class Derivation:
    facts: FactMap
    crcl: CrCl
    renal: Renal
    current: list[CurrentMed]
    orders: list[OrderedMed]
    unmapped_current: list[str] = field(default_factory=list)  # current medicines not known
    allergies: frozenset[str] = frozenset()  # drug and class ids the patient is allergic to
    notes: list[Note] = field(default_factory=list)
    stale: dict[str, str] = field(default_factory=dict)  # lab id -> explanation
    irls_total: int | None = None


def match_drug(kb: Knowledge, name: str | None, rxnorm: str | None) -> str | None:
    """Resolve a medicine to a knowledge-base drug id by RxNorm code, then by name or brand."""
    return kb.lookups.match_drug(name, rxnorm)


def coded_concepts(kb: Knowledge, code: Code) -> tuple[str, ...]:
    """The knowledge-base concepts a coded condition belongs to (none: empty)."""
    return kb.lookups.concept_by_code.get((_SYSTEMS[code.system], code.code), ())


def _age(case: Case, as_of: dt.date, problems: list[tuple[str, str]]) -> float | None:
    p = case.patient
    if p.birth_date is not None:
        if p.birth_date > as_of:
            problems.append(("patient.birth_date", f"{p.birth_date} is after as_of {as_of}"))
            return None
        years = (
            as_of.year
            - p.birth_date.year
            - ((as_of.month, as_of.day) < (p.birth_date.month, p.birth_date.day))
        )
        if years > 125:
            problems.append(("patient.birth_date", f"gives an age of {years} years (over 125)"))
            return None
        return float(years)
    return p.age_years


def _weight(case: Case, problems: list[tuple[str, str]]) -> float | None:
    w = case.patient.weight
    if w is None:
        return None
    try:
        kg = normalise(w.value, w.unit, "kg")
    except UnitError as exc:
        problems.append(("patient.weight.unit", exc.message))
        return None
    if not 0.5 <= kg <= 400:
        problems.append(("patient.weight", f"{w.value} {w.unit} is not a plausible body weight"))
        return None
    return kg


def _lab_id(
    kb: Knowledge, lab: LabResult, i: int, problems: list[tuple[str, str]], notes: list[Note]
) -> str | None:
    if lab.name is not None:
        if lab.name in kb.labs:
            return lab.name
        close = difflib.get_close_matches(lab.name, list(kb.labs), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(kb.labs)}"
        problems.append((f"labs[{i}].name", f"unknown lab {lab.name!r}{hint}"))
        return None
    assert lab.loinc is not None
    found = kb.lookups.lab_by_loinc.get(lab.loinc)
    if found is None:
        notes.append(
            Note(
                kind="unmapped",
                text=f"lab LOINC {lab.loinc} is not used by the "
                "knowledge base and was not considered",
            )
        )
    return found


def _labs(
    kb: Knowledge,
    case: Case,
    as_of: dt.date,
    problems: list[tuple[str, str]],
    notes: list[Note],
    stale: dict[str, str],
) -> dict[str, float]:
    latest: dict[str, tuple[dt.date | None, float]] = {}
    for i, lab in enumerate(case.labs):
        lab_id = _lab_id(kb, lab, i, problems, notes)
        if lab_id is None:
            continue
        spec = kb.labs[lab_id]
        try:
            value = normalise(lab.value, lab.unit, spec.unit, spec.molar_mass, spec.monovalent)
        except UnitError as exc:
            problems.append(
                (
                    f"labs[{i}].unit",
                    f"{exc.message} for {spec.name} (expected a unit convertible to {spec.unit})",
                )
            )
            continue
        lo, hi = spec.plausible
        if not lo <= value <= hi:
            problems.append(
                (
                    f"labs[{i}].value",
                    f"{lab.value} {lab.unit} is not a plausible "
                    f"{spec.name} (plausible range {lo}-{hi} {spec.unit})",
                )
            )
            continue
        if lab.date is not None and lab.date > as_of:
            notes.append(
                Note(
                    kind="data",
                    text=f"{spec.name} dated {lab.date} is after as_of {as_of} and was not used",
                )
            )
            continue
        if lab.date is not None and (as_of - lab.date).days > spec.max_age_days:
            stale[lab_id] = (
                f"{spec.name} of {lab.date} is older than {spec.max_age_days} days and was not used"
            )
            continue
        prev = latest.get(lab_id)
        if prev is None or (lab.date or dt.date.min) >= (prev[0] or dt.date.min):
            latest[lab_id] = (lab.date, value)
    for lab_id in latest:
        stale.pop(lab_id, None)
    for text in stale.values():
        notes.append(Note(kind="stale", text=text))
    values = {k: v for k, (_, v) in latest.items()}
    if "tsat" not in values and "iron" in values and values.get("tibc"):
        values["tsat"] = round(100.0 * values["iron"] / values["tibc"], 1)
        notes.append(
            Note(kind="derived", text=f"TSAT calculated from iron and TIBC: {values['tsat']}%")
        )
    return values


def cockcroft_gault(
    age: float | None, weight: float | None, sex: str | None, scr: float | None
) -> CrCl:
    missing = [
        n
        for n, v in (("age", age), ("weight", weight), ("sex", sex), ("serum creatinine", scr))
        if v is None
    ]
    if missing:
        return CrCl(None, "not computable: missing " + ", ".join(missing))
    assert age is not None
    assert weight is not None
    assert scr is not None
    if age < 18:
        return CrCl(None, "not computable: Cockcroft-Gault is for adults (18 and over)")
    value = (140.0 - age) * weight / (72.0 * scr) * (0.85 if sex == "female" else 1.0)
    return CrCl(
        round(value, 1),
        f"Cockcroft-Gault: (140 - {age:g}) × {round(weight, 1):g} kg / "
        f"(72 × {scr:.2f} mg/dL){' × 0.85' if sex == 'female' else ''} = {value:.1f} mL/min",
    )


def _irls(case: Case, problems: list[tuple[str, str]]) -> int | None:
    r = case.symptoms.rls
    total = sum(r.irls_items) if r.irls_items is not None else None
    if total is not None and r.irls_total is not None and total != r.irls_total:
        problems.append(
            (
                "symptoms.rls.irls_total",
                f"{r.irls_total} differs from the sum of irls_items ({total})",
            )
        )
    return total if total is not None else r.irls_total


def _is_current(m: MedicationEntry, as_of: dt.date) -> bool:
    started = m.start_date is None or m.start_date <= as_of
    ended = m.status == "stopped" or (m.end_date is not None and m.end_date < as_of)
    return started and not ended


def _medicines(
    kb: Knowledge,
    case: Case,
    as_of: dt.date,
    v: dict[str, FactValue],
    notes: list[Note],
    why: dict[str, str],
    unmapped: list[str],
) -> list[CurrentMed]:
    current: list[CurrentMed] = []
    for m in case.medications:
        drug_id = match_drug(kb, m.name, m.rxnorm)
        label = m.name or f"RxNorm {m.rxnorm}"
        if drug_id is None:
            later = (
                f" (it starts on {m.start_date}, after as_of {as_of})"
                if m.start_date is not None and m.start_date > as_of
                else ""
            )
            notes.append(
                Note(
                    kind="unmapped",
                    text=f"medicine {label!r} is not in the knowledge "
                    f"base{later}: interactions and cautions for it were not checked",
                )
            )
            if _is_current(m, as_of) and label not in unmapped:
                unmapped.append(label)
            continue
        if m.start_date is not None and m.start_date > as_of:
            notes.append(
                Note(
                    kind="data",
                    text=f"medicine {label!r} starts on {m.start_date}, after as_of {as_of}: "
                    "not counted as taken yet",
                )
            )
        drug = kb.drugs[drug_id]
        groups = (drug_id, *drug.classes)
        if m.outcome in _FAILED:
            when = f", stopped {m.end_date}" if m.end_date is not None else ""
            said = f"{drug.name} ({_FAILED[m.outcome]}{when})"
            for g in groups:
                v[f"failed.{g}"] = True
                before = why.get(f"failed.{g}")
                why[f"failed.{g}"] = f"{before}; {said}" if before and said not in before else said
        started = m.start_date is None or m.start_date <= as_of
        ended = m.status == "stopped" or (m.end_date is not None and m.end_date < as_of)
        if started and not ended:
            current.append(CurrentMed(drug_id, m, _daily_mg(m.dose, m.times_per_day)))
            if m.route == "intrathecal":
                v[f"intrathecal.{drug_id}"] = True
            for g in groups:
                v[f"takes.{g}"] = True
                if g != drug_id:
                    names = why.get(f"takes.{g}")
                    why[f"takes.{g}"] = (
                        f"{names}, {drug.name}"
                        if names and drug.name not in names
                        else names or drug.name
                    )
            key = f"days_on.{drug_id}"
            if m.start_date is not None:
                days = float((as_of - m.start_date).days)
                prev = v.get(key)
                v[key] = max(days, prev) if isinstance(prev, float) else days
            elif key not in v:
                v[key] = None
        elif ended:
            # A stop date not recorded makes "how long ago" unknown, and unknown wins.
            stopped = float((as_of - m.end_date).days) if m.end_date is not None else None
            for g in groups:
                key = f"stopped_days_ago.{g}"
                if key in v and v[key] is None:
                    continue
                prev = v.get(key)
                v[key] = (
                    None
                    if stopped is None
                    else (min(stopped, prev) if isinstance(prev, float) else stopped)
                )
    cns = {c.drug_id for c in current if "cns_active" in kb.drugs[c.drug_id].classes}
    v["cns_active_count"] = float(len(cns))
    return current


def _daily_mg(dose: Quantity | None, times_per_day: float | None) -> float | None:
    if dose is None or times_per_day is None:
        return None
    try:
        return normalise(dose.value, dose.unit, "mg") * times_per_day
    except UnitError:
        return None  # a dose that is not a mass ("1 tablet"): no daily dose


def _orders(kb: Knowledge, case: Case, notes: list[Note]) -> list[OrderedMed]:
    out = []
    for o in case.orders:
        label = o.name or f"RxNorm {o.rxnorm}"
        drug_id = match_drug(kb, o.name, o.rxnorm)
        if drug_id is None:
            notes.append(
                Note(
                    kind="unmapped",
                    text=f"order {label!r} is not in the knowledge base: "
                    "interactions and cautions for it were not checked",
                )
            )
            continue
        out.append(OrderedMed(drug_id, o, _daily_mg(o.dose, o.times_per_day), label))
    return out


def _active(c: ConditionEntry, as_of: dt.date) -> bool:
    """Active on ``as_of``: clinical status active, begun, and not abated."""
    if c.status != "active":
        return False
    if c.onset is not None and c.onset > as_of:
        return False
    return c.abatement is None or c.abatement > as_of


def _conditions(
    kb: Knowledge,
    case: Case,
    as_of: dt.date,
    v: dict[str, FactValue],
    problems: list[tuple[str, str]],
    notes: list[Note],
) -> None:
    for i, c in enumerate(case.conditions):
        found: tuple[str, ...] = ()
        if c.concept is not None:
            if c.concept not in kb.concepts:
                close = difflib.get_close_matches(c.concept, list(kb.concepts), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(
                    (f"conditions[{i}].concept", f"unknown concept {c.concept!r}" + hint)
                )
                continue
            found = (c.concept,)
        elif c.code is not None:
            found = coded_concepts(kb, c.code)
            if not found:
                notes.append(
                    Note(
                        kind="unmapped",
                        text=f"condition {c.code.code} "
                        f"({c.code.display or c.code.system}) is not in the knowledge "
                        "base value sets and was not considered",
                    )
                )
                continue
        if _active(c, as_of):
            for concept in found:
                lasting = kb.concepts[concept].lasts_at_most
                if (
                    lasting is not None
                    and c.onset is not None
                    and (as_of - c.onset).days > lasting.days
                ):
                    notes.append(
                        Note(
                            kind="data",
                            text=f"{kb.concepts[concept].name.lower()} recorded as active since "
                            f"{c.onset} is not taken as present: it began more than "
                            f"{lasting.days} days ago (the record never closed it); confirm the "
                            "current status",
                        )
                    )
                    continue
                v[f"condition.{concept}"] = True
    for i, name in enumerate(case.conditions_ruled_out):
        if name not in kb.concepts:
            problems.append((f"conditions_ruled_out[{i}]", f"unknown concept {name!r}"))
        elif v.get(f"condition.{name}") is True:
            problems.append((f"conditions_ruled_out[{i}]", f"{name!r} is also listed as present"))


def _corrected_calcium(total: float, albumin: float | None, notes: list[Note]) -> float:
    """Albumin-corrected calcium: total + 0.8 x (4.0 - albumin g/dL) (the usual correction;
    the formula itself is not in the evidence review). Without albumin, total calcium is used,
    which over-flags hypocalcaemia in hypoalbuminaemia: the safe direction."""
    if albumin is None:
        notes.append(Note(kind="derived", text="albumin unknown: total calcium used uncorrected"))
        return total
    corrected = round(total + 0.8 * (4.0 - albumin), 2)
    notes.append(
        Note(
            kind="derived",
            text=f"albumin-corrected calcium: {total:g} + 0.8 x (4.0 - "
            f"{albumin:g}) = {corrected:g} mg/dL",
        )
    )
    return corrected


def _allergies(kb: Knowledge, case: Case, notes: list[Note]) -> frozenset[str]:
    """Drug and class ids named by documented allergies (a class name such as 'opioid' works)."""
    out: set[str] = set()
    for a in case.allergies:
        target = kb.allergy_target(a.substance)
        if target is not None:
            out.add(target)
        else:
            notes.append(
                Note(
                    kind="unmapped",
                    text=f"allergy to {a.substance!r} is not matched "
                    "to a knowledge-base drug or class: check proposals by hand",
                )
            )
    return frozenset(out)


def derive(case: Case, kb: Knowledge, as_of: dt.date) -> Derivation:
    """Compute every fact for ``case`` at ``as_of``; raise CaseValidationError on bad input."""
    problems: list[tuple[str, str]] = []
    notes: list[Note] = []
    stale: dict[str, str] = {}
    v: dict[str, FactValue] = {}
    p, s = case.patient, case.symptoms

    age = _age(case, as_of, problems)
    weight = _weight(case, problems)
    height = _height(case, problems)
    _conditions(kb, case, as_of, v, problems, notes)
    why: dict[str, str] = {}
    unmapped: list[str] = []
    current = _medicines(kb, case, as_of, v, notes, why, unmapped)
    orders = _orders(kb, case, notes)
    labs = _labs(kb, case, as_of, problems, notes, stale)
    irls = _irls(case, problems)
    if p.sex == "male" and p.pregnant:
        problems.append(("patient.pregnant", "is true but patient.sex is male"))
    if problems:
        raise CaseValidationError(problems, source=case.id)

    pregnant: bool | None = p.pregnant
    if v.get("condition.pregnancy") is True:
        pregnant = True
    elif p.sex == "male":
        pregnant = False
    dialysis: bool | None = None if p.dialysis is None else p.dialysis != "none"
    haemo: bool | None = None if p.dialysis is None else p.dialysis == "haemodialysis"
    if v.get("condition.dialysis_dependence") is True and not dialysis:
        dialysis = True
        haemo = None if p.dialysis in (None, "none") else haemo

    crcl = _crcl(age, weight, p.sex, labs, dialysis)
    renal = renal_function(crcl, labs.get("egfr"), dialysis, haemo)
    trimester = p.trimester
    if trimester is None and p.gestational_weeks is not None:
        second, third = kb.threshold("trimester_2_week"), kb.threshold("trimester_3_week")
        weeks = p.gestational_weeks
        trimester = 1 if weeks < second else 2 if weeks < third else 3
    if pregnant is None and p.sex == "female" and age is not None:
        lo, hi = kb.threshold("reproductive_age_min"), kb.threshold("reproductive_age_max")
        if not lo <= age <= hi:
            pregnant = False
            notes.append(
                Note(
                    kind="derived",
                    text=f"pregnancy not considered: age {age:g} is outside reproductive age "
                    f"({lo:g}-{hi:g} years)",
                )
            )
    r, c = s.rls, s.cramp
    sp, fn, nf, rf = s.spasticity, s.functional, case.neuro, case.red_flags
    v.update(
        {
            "age": age,
            "sex": p.sex,
            "weight_kg": weight,
            "pregnant": pregnant,
            "trimester": None if trimester is None else float(trimester),
            "postpartum": p.postpartum,
            "lactating": p.lactating,
            "dialysis": dialysis,
            "haemodialysis": haemo,
            "dialysis_documented": dialysis is True,
            "falls_history": p.history_of_falls_or_fractures,
            "crcl": crcl.value,
            "egfr": labs.get("egfr"),
            "renal_function": renal.value,
            "allergies_known": bool(case.allergies) or "allergies" in case.none_known,
            "medications_known": bool(case.medications) or "medications" in case.none_known,
            "unmapped_medicines": float(len(unmapped)),
            "liver_disease": _liver(v, case),
            "cramp.present": c.present,
            "cramp.sudden_painful_contraction": c.sudden_painful_contraction,
            "cramp.palpable_hard_muscle": c.palpable_hard_muscle,
            "cramp.timing": c.timing,
            "cramp.duration_minutes": c.episode_duration_minutes,
            "cramp.relieved_by_stretching": c.relieved_by_stretching,
            "cramp.frequency_per_week": c.frequency_per_week,
            "cramp.during_dialysis": c.during_dialysis,
            "cramp.disabling": c.disabling,
            "cramp.nondrug_care_tried": c.nondrug_care_tried,
            "cramp.after_strain_or_injury": c.after_strain_or_injury,
            "cramp.heat_or_exercise": c.heat_or_exercise,
            "rls.urge_to_move": r.urge_to_move,
            "rls.worse_at_rest": r.worse_at_rest,
            "rls.relieved_by_movement": r.relieved_by_movement,
            "rls.worse_evening_night": r.worse_evening_night,
            "rls.not_explained_by_other_condition": r.not_explained_by_other_condition,
            "rls.days_per_week": r.days_per_week,
            "rls.distress": r.distress,
            "rls.irls_total": None if irls is None else float(irls),
            # An adequate trial that did not help makes RLS refractory; one ligand not
            # tolerated only rules out that ligand (failed.<drug>).
            "rls.alpha2delta_failed": True if _a2d_ineffective(kb, case) else r.alpha2delta_failed,
            "rls.augmentation_symptoms": r.augmentation_symptoms,
            "rls.earlier_onset_hours": r.earlier_onset_hours,
            "rls.spread_to_other_limbs": r.spread_to_other_limbs,
            "rls.shorter_drug_effect": r.shorter_drug_effect,
            "rls.more_intense": r.more_intense,
            "rls.dose_escalated": r.dose_escalated,
            "spasticity.velocity_dependent_tone": sp.velocity_dependent_tone,
            "spasticity.distribution": sp.distribution,
            "spasticity.causes_problem": sp.causes_pain_hygiene_or_function_problem,
            "spasticity.refractory": sp.refractory_to_oral_agents,
            "spasticity.sustains_function": sp.sustains_posture_or_function,
            "spasticity.modified_ashworth": sp.modified_ashworth,
            "functional.positive_signs": fn.positive_signs,
            "functional.distractible": fn.distractible_or_variable,
            "functional.fixed_posture": fn.fixed_posture,
            "claudication": s.exertional_calf_pain_relieved_by_rest,
            "presyncope": s.presyncope_warning_symptoms,
            "tetany_signs": s.carpopedal_spasm_or_perioral_paraesthesia,
            "neuro.new_focal_deficit": nf.new_focal_deficit,
            "neuro.umn_signs": nf.upper_motor_neuron_signs,
            "neuro.progressive_weakness": nf.progressive_weakness_or_wasting,
            "neuro.fasciculations": nf.fasciculations,
            "neuro.bulbar_signs": nf.bulbar_signs,
            "symptoms.duration_weeks": s.duration_weeks,
            "neuro.exam_normal": nf.exam_normal,
            "red.unilateral_swelling": rf.unilateral_leg_swelling,
            "red.calf_tenderness_warmth": rf.calf_tenderness_or_warmth,
            "red.pitting_oedema": rf.pitting_oedema_one_leg,
            "red.persistent_calf_pain": rf.persistent_unilateral_calf_pain,
            "red.immobility_surgery_travel": rf.recent_immobility_surgery_or_long_travel,
            "red.active_cancer": rf.active_cancer,
            "red.previous_dvt": rf.previous_dvt,
            "red.limb_paraesthesia_weakness": rf.paraesthesia_or_weakness_of_the_limb,
            "red.absent_foot_pulses": rf.absent_or_reduced_foot_pulses,
            "red.rest_pain": rf.ischaemic_rest_pain,
            "red.nonhealing_wound": rf.nonhealing_foot_wound_or_gangrene,
            "red.heat_illness_signs": rf.confusion_collapse_or_high_temperature_in_heat,
            "red.trismus_spasms": rf.trismus_or_generalised_spasms,
            "red.itb_withdrawal_signs": rf.fever_confusion_or_rebound_spasticity,
            "red.pain_on_passive_stretch": rf.pain_on_passive_stretch,
            "red.pain_out_of_proportion": rf.pain_out_of_proportion,
            "red.tense_compartment": rf.tense_compartment,
            "red.recent_trauma": rf.recent_fracture_crush_or_tight_cast,
            "red.dark_urine": rf.dark_urine,
            "red.myalgia_after_exertion": rf.myalgia_weakness_after_exertion_heat_or_crush,
            "red.cold_pulseless_limb": rf.cold_pale_pulseless_limb,
            "red.saddle_anaesthesia": rf.saddle_anaesthesia,
            "red.bladder_bowel": rf.bladder_or_bowel_dysfunction,
            "red.bilateral_weakness": rf.bilateral_leg_weakness,
            "red.chest_pain": rf.chest_pain,
            "red.rigidity_fever": rf.rigidity_with_fever,
            "red.dystonic_posture_after_drug": rf.sustained_twisting_posture_after_drug,
            "red.bleeding": rf.bleeding_or_bruising,
            "red.laryngospasm_seizure_arrhythmia": rf.laryngospasm_seizure_or_arrhythmia,
        }
    )
    _augmentation(kb, case, current, v, why)
    for lab_id, value in labs.items():
        v[f"lab.{lab_id}"] = value
    if "calcium" in labs:
        v["calcium_corrected"] = _corrected_calcium(labs["calcium"], labs.get("albumin"), notes)
    _reference(kb, labs, v, why)
    ck_ref = kb.labs["ck"].reference
    if "ck" in labs and ck_ref is not None and ck_ref.high:
        v["ck_x_uln"] = round(labs["ck"] / ck_ref.high, 2)
    if weight is not None and height is not None:
        v["bmi"] = round(weight / (height / 100.0) ** 2, 1)
    causes = [why[f"low.{lab}"] for lab in _CRAMP_ELECTROLYTES if v.get(f"low.{lab}") is True]
    if v.get("takes.cramp_inducer") is True:
        causes.append(f"takes {why.get('takes.cramp_inducer', 'a cramp-inducing medicine')}")
    v["secondary_cause"] = bool(causes)
    if causes:
        why["secondary_cause"] = "; ".join(causes)
    return Derivation(
        FactMap(v, why),
        crcl,
        renal,
        current,
        orders,
        unmapped,
        _allergies(kb, case, notes),
        notes,
        stale,
        irls,
    )


def _a2d_ineffective(kb: Knowledge, case: Case) -> bool:
    for m in case.medications:
        drug_id = match_drug(kb, m.name, m.rxnorm) if m.outcome == "ineffective" else None
        if drug_id is not None and "alpha2delta" in kb.drugs[drug_id].classes:
            return True
    return False


_FAILED = {
    "ineffective": "ineffective",
    "not_tolerated": "not tolerated",
    "augmentation": "augmentation",
}


def _augmentation(
    kb: Knowledge,
    case: Case,
    current: list[CurrentMed],
    v: dict[str, FactValue],
    why: dict[str, str],
) -> None:
    """RLS augmentation from its features (MPI criteria, evidence B23), or as recorded.

    Established: the clinician says so, a current dopaminergic drug is recorded with outcome
    augmentation, or symptoms start at least 4 h earlier, or 2-4 h earlier with spread, greater
    intensity or a shorter effect of each dose. Dose escalation is a feature to ask about, not
    enough alone. Not established: the clinician says not, or onset is under 2 h earlier and no
    other feature is present."""
    r = case.symptoms.rls
    on_da = [c for c in current if "dopaminergic" in kb.drugs[c.drug_id].classes]
    features = {
        "spread to other limbs": r.spread_to_other_limbs,
        "shorter effect of each dose": r.shorter_drug_effect,
        "more intense": r.more_intense,
    }
    hours = r.earlier_onset_hours
    full, partial = (
        kb.threshold("augmentation_onset_hours"),
        kb.threshold("augmentation_onset_hours_with_feature"),
    )
    present = [k for k, x in features.items() if x is True]
    named = [f"starts {hours:g} h earlier"] if hours is not None and hours >= partial else []
    named += present + (["dose escalated"] if r.dose_escalated is True else [])
    v["rls.augmentation_features"] = float(len(named)) if on_da else 0.0
    if named:
        why["rls.augmentation_features"] = ", ".join(named)
    value: bool | None
    if r.augmentation_symptoms is not None:
        value = r.augmentation_symptoms
    elif any(c.entry.outcome == "augmentation" for c in on_da) or (
        hours is not None and (hours >= full or (hours >= partial and present))
    ):
        value = True
    elif hours is not None and hours < partial and not present:
        value = False
    else:
        value = None
    v["rls.augmentation"] = value
    if value is True and named:
        why["rls.augmentation"] = "augmentation: " + ", ".join(named)


_CRAMP_ELECTROLYTES = ("potassium", "magnesium", "calcium", "calcium_ionised", "sodium")


def _height(case: Case, problems: list[tuple[str, str]]) -> float | None:
    h = case.patient.height
    if h is None:
        return None
    try:
        cm = normalise(h.value, h.unit, "cm")
    except UnitError as exc:
        problems.append(("patient.height.unit", exc.message))
        return None
    if not 40 <= cm <= 250:
        problems.append(("patient.height", f"{h.value} {h.unit} is not a plausible body height"))
        return None
    return cm


def _crcl(
    age: float | None,
    weight: float | None,
    sex: str | None,
    labs: Mapping[str, float],
    dialysis: bool | None,
) -> CrCl:
    """A measured creatinine clearance when recorded, else Cockcroft-Gault; none on dialysis."""
    if dialysis is True:
        return CrCl(None, "not used on dialysis (Cockcroft-Gault is not valid)")
    measured = labs.get("creatinine_clearance")
    if measured is not None:
        return CrCl(round(measured, 1), f"measured creatinine clearance {measured:g} mL/min")
    return cockcroft_gault(age, weight, sex, labs.get("creatinine"))


def _liver(v: Mapping[str, FactValue], case: Case) -> bool | None:
    """Liver disease: documented (True); none on a recorded problem list (False); else unknown."""
    if any(v.get(f"condition.{c}") is True for c in _LIVER):
        return True
    if case.conditions or "conditions" in case.none_known:
        return False
    return None


def _reference(
    kb: Knowledge, labs: Mapping[str, float], v: dict[str, FactValue], why: dict[str, str]
) -> None:
    """``low.<lab>`` / ``high.<lab>`` against the reference range (known values only).

    Calcium uses the albumin-corrected value when albumin is known.
    """
    for lab_id, value in labs.items():
        ref = kb.labs[lab_id].reference
        if ref is None:
            continue
        if lab_id == "calcium":
            corrected = v.get("calcium_corrected")
            value = corrected if isinstance(corrected, float) else value
        spec = kb.labs[lab_id]
        name = "corrected calcium" if lab_id == "calcium" else spec.name.split(" (")[0].lower()
        if ref.low is not None:
            v[f"low.{lab_id}"] = value < ref.low
            if value < ref.low:
                why[f"low.{lab_id}"] = f"{name} {value:g} {spec.unit} (reference from {ref.low:g})"
        if ref.high is not None:
            v[f"high.{lab_id}"] = value > ref.high
            if value > ref.high:
                why[f"high.{lab_id}"] = (
                    f"{name} {value:g} {spec.unit} (reference up to {ref.high:g})"
                )
