"""Schema of the knowledge-base files. Each class validates one kind of entry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..expr import Compiled

Basis = Literal["V-stored", "V-label", "V-2nd", "M", "UNVERIFIED", "local-policy"]
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)]
Text = Annotated[str, Field(min_length=3)]
CitationIds = Annotated[list[Id], Field(min_length=1)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Manifest(_Entry):
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    title: str
    released: str
    description: str


class Citation(_Entry):
    id: Id
    authors: Text
    title: Text
    source: Text  # journal and volume/pages, or issuing body
    year: int | None = None
    doi: str | None = None
    pmid: str | None = None
    url: str | None = None
    basis: Basis
    note: str | None = None


class Coding(_Entry):
    system: Literal["snomed", "icd10cm", "rxnorm", "loinc"]
    code: Annotated[str, Field(min_length=1)]
    display: str | None = None
    verified: bool
    source: Text  # where the code was verified, or why it is not
    note: str | None = None  # how the code is used, when not obvious


class Concept(_Entry):
    id: Id
    name: Text
    codes: list[Coding] = []
    note: str | None = None


class Lab(_Entry):
    id: Id
    name: Text
    codes: Annotated[list[Coding], Field(min_length=1)]
    unit: str  # canonical unit
    molar_mass: float | None = None  # g/mol, for mass <-> substance conversion
    monovalent: bool = False  # mEq/L == mmol/L
    plausible: tuple[float, float]  # canonical-unit range outside which a value is an error
    max_age_days: Annotated[int, Field(gt=0)]
    max_age_basis: Basis


class RecordObservation(_Entry):
    """How a fact other than a lab is read from a patient record (``record.yaml``).

    ``body_weight``: the codes, unit, plausible range and how old a weight may be.
    ``pregnancy_status``: the codes of a pregnancy-status observation and its answer codes.
    ``intake``: how old intake answers (a QuestionnaireResponse) may be.
    """

    id: Literal["body_weight", "pregnancy_status", "intake"]
    name: Text
    codes: list[Coding] = []
    unit: str | None = None
    plausible: tuple[float, float] | None = None
    positive: list[Coding] = []  # answer codes meaning "yes" (pregnant)
    negative: list[Coding] = []  # answer codes meaning "no" (not pregnant)
    max_age_days: Annotated[int, Field(gt=0)]
    max_age_basis: Basis


class Dose(_Entry):
    value: Annotated[float, Field(gt=0)]
    unit: Literal["mg", "g", "mcg", "mg/24h"]


class Statement(_Entry):
    text: Text
    citations: CitationIds
    basis: Basis


class RenalBand(_Entry):
    label: Text
    crcl_min: float | None = None  # inclusive, mL/min
    crcl_max: float | None = None  # exclusive, mL/min
    daily_min: Dose | None = None
    daily_max: Dose | None = None
    start: Dose | None = None  # band-specific starting dose, when the label gives one
    times_per_day: float | None = None
    dosing: Text
    not_recommended: bool = False


class Regimen(_Entry):
    id: Id
    indication: Text
    form: Text
    start: Dose | None = None
    times_per_day: float | None = None
    timing: str | None = None
    start_text: Text
    titration: str | None = None
    max_daily: Dose | None = None
    max_duration_days: int | None = None
    duration_text: str | None = None
    renal_bands: list[RenalBand] = []
    haemodialysis: RenalBand | None = None
    citations: CitationIds
    basis: Basis


class DrugClass(_Entry):
    id: Id
    name: Text


class Drug(_Entry):
    id: Id
    name: Text
    codes: list[Coding] = []
    brands: list[str] = []
    classes: list[Id] = []
    beers: Statement | None = None
    pregnancy: Statement | None = None
    hepatic: Statement | None = None
    renal: Statement | None = None
    boxed_warning: Statement | None = None
    contraindications: list[Statement] = []
    interactions: list[Statement] = []
    monitoring: list[Statement] = []
    regimens: list[Regimen] = []


class Criterion(_Entry):
    id: Id
    text: Text
    when: Any
    exclusion: bool = False  # an exclusion alone never makes a context "possible"
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Context(_Entry):
    id: Id
    name: Text
    kind: Literal["primary", "secondary", "mimic"]
    summary: Text
    documented_by: list[Id] = []  # concept ids whose documentation establishes the context
    criteria: Annotated[list[Criterion], Field(min_length=1)]
    required: list[Id] | None = None  # criterion ids; default: all
    citations: CitationIds
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class RedFlag(_Entry):
    id: Id
    name: Text
    urgency: Literal["emergency", "urgent", "same-day"]
    when: Any
    action: Text
    withhold_tags: list[str] = []
    citations: CitationIds
    basis: Basis
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


Phase = Literal[
    "acute",
    "work-up",
    "first-line",
    "medication",
    "refractory",
    "referral",
    "prevention",
    "follow-up",
]
PHASES: tuple[str, ...] = (
    "acute",
    "work-up",
    "first-line",
    "medication",
    "refractory",
    "referral",
    "prevention",
    "follow-up",
)


class Confirm(_Entry):
    """A fact that should be confirmed before acting: shown as a caution when unknown."""

    fact: str
    text: Text


class MedicationRef(_Entry):
    drug: Id
    regimen: Id


class Recommendation(_Entry):
    id: Id
    context: Id
    context_status: list[Literal["documented", "likely", "possible"]] = ["documented", "likely"]
    phase: Phase
    statement: Text
    strength: Text  # e.g. "strong for", "conditional for", "label", "consensus"
    certainty: Literal["high", "moderate", "low", "very low", "not graded"]
    grade_note: str | None = None
    basis: Basis
    citations: CitationIds
    applies_when: Any = None
    unless: Any = None
    tags: list[str] = []
    medication: MedicationRef | None = None
    confirm: list[Confirm] = []
    compiled_when: Compiled | None = None
    compiled_unless: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class AvoidRule(_Entry):
    id: Id
    drugs: list[Id] = []  # drug or class ids
    advice_tags: list[str] = []
    when: Any = None  # patient condition; absent = always
    show: Literal["if-current-or-proposed", "always"] = "if-current-or-proposed"
    check: Literal["dose", "allergy"] | None = None
    # dose: current doses above the patient's renal band or maximum;
    # allergy: a current or proposed drug the patient is documented as allergic to.
    # When an order hits this rule, the plan steps of these contexts are offered in its place
    # (CDS Hooks suggestions). Empty: the order is only flagged (the drug is not a leg treatment).
    replace_with: list[Id] = []
    targets: frozenset[str] = frozenset()  # drug ids named by `drugs`, expanded at load time
    severity: Literal["contraindicated", "avoid", "caution"]
    reason: Text
    citations: CitationIds
    basis: Basis
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Band(_Entry):
    min: int
    max: int
    label: Text


class Scale(_Entry):
    id: Id
    name: Text
    bands: Annotated[list[Band], Field(min_length=1)]
    citations: CitationIds
    basis: Basis

    def label_for(self, score: int) -> str | None:
        return next((b.label for b in self.bands if b.min <= score <= b.max), None)


class HandoutItem(_Entry):
    """One line of a patient handout. ``red_flag`` names the red flag an urgent line describes."""

    text: Text
    red_flag: Id | None = None


class HandoutSection(_Entry):
    """A section of the plain-language patient handout (``handouts.yaml``).

    Shown when one of ``contexts`` is documented or likely (no contexts: always shown), and left
    out when a fired red flag or a blocking avoid rule withholds one of its advice ``tags``.
    ``urgency``: the red-flag urgencies this section lists (urgent sections only); every item that
    names a red flag must have one of them. ``citations`` may be empty only when every item names
    a red flag: the red flags' own citations are used.
    """

    id: Id
    heading: Text
    contexts: list[Id] = []
    urgency: list[Literal["emergency", "urgent", "same-day"]] = []
    tags: list[str] = []
    items: Annotated[list[HandoutItem], Field(min_length=1)]
    note: str | None = None
    citations: list[Id] = []
    basis: Basis


@dataclass(frozen=True, slots=True)
class Lookups:
    """Code and name indexes built once at load time (value sets resolved to ids)."""

    drug_by_code: dict[str, str]
    drug_by_word: dict[str, str]
    drug_word_re: re.Pattern[str]
    concept_by_code: dict[tuple[str, str], str]
    lab_by_loinc: dict[str, str]

    def match_drug(self, name: str | None, rxnorm: str | None) -> str | None:
        """A drug id by RxNorm code, else by the first ingredient or brand name in ``name``."""
        if rxnorm and rxnorm in self.drug_by_code:
            return self.drug_by_code[rxnorm]
        if name:
            m = self.drug_word_re.search(name.lower())
            if m:
                return self.drug_by_word[m.group(1)]
        return None

    def drugs_named(self, text: str) -> list[str]:
        """Every drug id whose ingredient or brand name occurs in ``text``, in order, once."""
        out: list[str] = []
        for m in self.drug_word_re.finditer(text.lower()):
            drug_id = self.drug_by_word[m.group(1)]
            if drug_id not in out:
                out.append(drug_id)
        return out


class Knowledge(_Entry):
    """The whole validated knowledge base. Frozen; load once and pass explicitly."""

    manifest: Manifest
    citations: dict[str, Citation]
    concepts: dict[str, Concept]
    labs: dict[str, Lab]
    classes: dict[str, DrugClass]
    drugs: dict[str, Drug]
    contexts: dict[str, Context]
    red_flags: dict[str, RedFlag]
    recommendations: dict[str, Recommendation]
    avoid_rules: dict[str, AvoidRule]
    scales: dict[str, Scale]
    record: dict[str, RecordObservation]
    handouts: dict[str, HandoutSection]
    changelog: str
    lookups: Lookups
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    @property
    def version(self) -> str:
        return self.manifest.version

    def drug_classes(self, drug_id: str) -> frozenset[str]:
        return frozenset(self.drugs[drug_id].classes)

    def allergy_target(self, substance: str) -> str | None:
        """The drug or drug-class id an allergy names ('Neurontin', 'opioids'), or None."""
        drug_id = self.lookups.match_drug(substance, None)
        if drug_id is not None:
            return drug_id
        key = substance.strip().lower().replace(" ", "_")
        return next((k for k in (key, key.rstrip("s")) if k in self.classes), None)
