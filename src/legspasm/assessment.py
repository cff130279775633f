"""The Assessment: legspasm's output contract (``legspasm schema assessment`` prints its schema)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Assessment",
    "AvoidItem",
    "BottomLine",
    "CitationRef",
    "CodeRef",
    "ConditionResult",
    "Confirmation",
    "CriterionResult",
    "DataUsed",
    "Derived",
    "DrugRef",
    "HandoutItem",
    "HandoutSection",
    "MedicationPlan",
    "MissingDatum",
    "Note",
    "PlanStep",
    "ProductRef",
    "RedFlagResult",
    "Stopping",
    "Unmapped",
    "Withheld",
]

CriterionState = Literal["met", "not_met", "unknown"]
ConditionStatus = Literal["documented", "likely", "possible", "unlikely", "unknown"]
Severity = Literal["contraindicated", "avoid", "caution"]
# The safety gates every medication proposal passes (engine.gates): each is known and passing,
# known and failing (the proposal is withheld), or unknown (the proposal is conditional).
GateKind = Literal[
    "age",
    "renal",
    "hepatic",
    "pregnancy",
    "lactation",
    "interactions",
    "allergies",
    "red-flag",
    "weight",
    "safety",
    "history",
]
# recommended: every gate known and passing; conditional: at least one gate unknown, so the step
# reads "before prescribing, confirm: ..." and no surface counts it as a recommendation.
ProposalStatus = Literal["recommended", "conditional"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CriterionResult(_Out):
    id: str
    text: str
    state: CriterionState


class CodeRef(_Out):
    """A verified code of a condition (the knowledge base's system names: snomed, icd10cm)."""

    system: Literal["snomed", "icd10cm"]
    code: str
    display: str | None = None


class ConditionResult(_Out):
    id: str
    name: str
    kind: str
    status: ConditionStatus
    criteria: list[CriterionResult]
    citations: list[str]
    # The verified SNOMED CT and ICD-10-CM codes of the diagnoses that document it (a FHIR
    # reasonCode); empty for a pathway no single diagnosis code names.
    codes: list[CodeRef] = []
    # The diagnosis is on the record. It establishes the condition, not today's complaint: a
    # required criterion recorded as absent today makes the status "unlikely" for this visit.
    on_record: bool = False


class RedFlagResult(_Out):
    id: str
    name: str
    urgency: Literal["emergency", "urgent", "same-day"]
    action: str
    rationale: list[str]
    basis: str
    citations: list[str]
    # present: its features are recorded; possible: not excluded and a risk factor or a partial
    # feature is recorded. Both withhold the advice the red flag makes unsafe.
    status: Literal["present", "possible"] = "present"
    order: str | None = None  # the order to place (a ServiceRequest in the FHIR output)
    summary: str = ""  # the action in one short sentence (the bottom line and card summary)


class Confirmation(_Out):
    """A safety fact to confirm before acting on a proposal: its gate is unknown."""

    gate: GateKind
    question: str  # what to confirm, in a clinician's words
    because: str  # what it would change
    facts: list[str]  # the unknown facts (as in missing_data)
    by: str  # the gate, rule or recommendation that asks


class Stopping(_Out):
    """How to stop a current medicine (taper, cross-taper, withdrawal cautions)."""

    text: str
    basis: str
    citations: list[str]
    gradual: bool = False  # not to be stopped all at once (a taper)


class DrugRef(_Out):
    id: str
    name: str
    rxnorm: str | None
    label: str | None = None  # the address of its current label


class ProductRef(_Out):
    """The prescribable RxNorm drug of a proposed dose: its RXCUI, RxNorm name and term type
    (SCD: clinical drug, SBD: branded drug)."""

    rxnorm: str
    name: str
    tty: str


class MedicationPlan(_Out):
    drug: DrugRef
    regimen: str
    form: str
    dose: str | None  # e.g. "5 mg"
    dose_value: float | None  # the same dose as a number, in dose_unit
    dose_unit: str | None  # mg, g, mcg or mg/24h
    frequency: str | None  # e.g. "3 times daily"
    times_per_day: float | None
    start: str  # the patient-specific starting instruction
    titration: str | None
    max_daily_dose: str | None
    max_daily_dose_mg: float | None
    renal_band: str | None
    stop_after_days: int | None
    stop_date: dt.date | None
    notes: list[str]
    # The verified product of the proposed dose (one unit of it is one dose); none when the
    # regimen has no verified product or this patient's dose is not its strength.
    product: ProductRef | None = None


class PlanStep(_Out):
    id: str
    context: str
    phase: str
    text: str
    strength: str
    certainty: str
    grade_note: str | None
    basis: str
    rationale: list[str]
    citations: list[str]
    medication: MedicationPlan | None
    warnings: list[str]
    status: ProposalStatus = "recommended"
    confirm: list[Confirmation] = []  # non-empty exactly when status is conditional
    # Products the step names without a dose of its own (a referral for botulinum toxin).
    products: list[DrugRef] = []
    # One option of a choice: the plan prefers one option per group and folds the others under
    # it (``alternative_to`` names the preferred step); ``option_reason`` says why, for this
    # patient.
    option_group: str | None = None
    alternative_to: str | None = None
    option_reason: str | None = None
    # Reviews a medicine the patient already takes: the regimen is the schedule to check the
    # current dose against, never a new start (no surface turns it into an order).
    review: bool = False
    summary: str = ""  # the step in one short sentence (the bottom line)


class Withheld(_Out):
    id: str
    text: str
    reason: str
    by: str  # red-flag or avoid-rule id
    gate: GateKind | None = None  # the safety gate that failed, when one did


class AvoidItem(_Out):
    id: str
    target: str  # what to avoid: a drug, a drug class or a piece of advice
    drug: DrugRef | None  # set when the target is one knowledge-base drug
    # current: the patient takes it; proposed: the plan would have proposed it; general: do not
    # start it; ordered: a medicine being ordered now (``order_id`` names the order)
    status: Literal["current", "proposed", "general", "ordered"]
    severity: Severity
    reason: str
    rationale: list[str]
    basis: str
    citations: list[str]
    order_id: str | None = None
    # For an ordered medicine: plan steps (ids) offered in its place, safest first.
    alternatives: list[str] = []
    # Non-empty: the rule applies unless these unknown facts turn out otherwise (fail closed).
    confirm: list[Confirmation] = []
    # For a medicine the patient takes and should stop: how to stop it safely.
    stopping: Stopping | None = None
    summary: str = ""  # why not, in one short sentence (the bottom line and card summary)
    # For a medicine the patient takes: days since its recorded start (None: start unknown),
    # and what to do about it, one sentence (a patient-view card from the record leads with it).
    days_on: float | None = None
    if_taken: str | None = None


class MissingDatum(_Out):
    fact: str
    question: str
    where: str
    affects: list[str]  # ids of the red flags, rules and recommendations it could change
    # The same, in a clinician's words ("DVT", "gabapentin enacarbil for RLS"), in that order.
    changes: list[str] = []


BottomLineKind = Literal["red-flag", "diagnosis", "do", "start", "do-not", "hold", "missing"]


class BottomLine(_Out):
    """One line of the answer first: every surface leads with these (at most five lines)."""

    kind: BottomLineKind
    text: str
    # What the line summarises: a red flag, condition, plan step or avoid rule id, or a fact.
    about: str | None = None


class Note(_Out):
    kind: Literal["unmapped", "stale", "derived", "data"]
    text: str


class Derived(_Out):
    age_years: float | None
    crcl_ml_min: float | None
    crcl_note: str
    egfr: float | None
    # The renal function doses use: CrCl or eGFR, the lower when both are known; none on dialysis.
    renal_function_ml_min: float | None = None
    renal_function_note: str = ""
    irls_total: int | None
    irls_severity: str | None
    ferritin_ng_ml: float | None = None  # the most recent, as the rules read it
    tsat_percent: float | None = None


class CitationRef(_Out):
    number: int
    id: str
    text: str
    url: str | None
    basis: str


class HandoutItem(_Out):
    text: str
    red_flag: str | None  # the red flag an urgent line describes
    # True: that red flag is present for this patient (a sign found today, not a future "if").
    found: bool = False


class HandoutSection(_Out):
    """A section of the plain-language patient handout, in knowledge-base order."""

    id: str
    heading: str
    items: list[HandoutItem]
    note: str | None  # certainty and limits, in plain language
    citations: list[str]
    basis: str


class DataUsed(_Out):
    """One datum taken from a patient record (FHIR input), and how it was recognised."""

    source: str  # the resource, e.g. "Observation/abc"
    field: str  # the case field it filled, e.g. "labs", "medications", "patient.weight"
    value: str  # what was taken, e.g. "ferritin 40 ng/mL (2026-11-01)"
    matched_by: Literal["code", "text", "answer", "element"]
    # code: a code in legspasm's value sets; text: ingredient or brand name found in the text
    # (check it); answer: an intake QuestionnaireResponse answer; element: a plain element


class Unmapped(_Out):
    """Something present in the record that legspasm did not use, and why (grouped)."""

    resource_type: str
    item: str  # e.g. "SNOMED 444814009 Viral sinusitis (disorder)" or an element path
    reason: str
    count: int
    sources: list[str]  # up to five resources, e.g. "Condition/123"


class Assessment(_Out):
    knowledge_version: str
    as_of: dt.date
    case_id: str | None
    # The answer in at most five short lines, most urgent first (engine.bottom_line).
    bottom_line: list[BottomLine] = []
    red_flags: list[RedFlagResult]
    conditions: list[ConditionResult]
    plan: list[PlanStep]
    withheld: list[Withheld]
    avoid: list[AvoidItem]
    missing_data: list[MissingDatum]
    derived: Derived
    notes: list[Note]
    citations: list[CitationRef]
    # The patient handout; every citation it uses is numbered in ``citations``.
    handout: list[HandoutSection] = []
    data_used: list[DataUsed] = []  # filled when the case was read from a FHIR record
    unmapped: list[Unmapped] = []
