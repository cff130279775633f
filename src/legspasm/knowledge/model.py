"""Schema of the knowledge-base files. Each class validates one kind of entry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ..expr import Compiled

Basis = Literal["V-stored", "V-label", "V-2nd", "M", "UNVERIFIED", "local-policy"]
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)]
Text = Annotated[str, Field(min_length=3)]
CitationIds = Annotated[list[Id], Field(min_length=1)]
# The words a bottom line and a CDS card summary use: one whole clinician's sentence or phrase,
# short enough that a card summary (under 140 characters) never has to cut it.
Short = Annotated[str, Field(min_length=3, max_length=90)]
# The US label of a drug without its own label address: DailyMed's search for its name.
LABEL_SEARCH = "https://dailymed.nlm.nih.gov/dailymed/search.cfm?query="


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


class Product(Coding):
    """A prescribable RxNorm drug for a regimen: a clinical drug (SCD) or branded drug (SBD) of
    the regimen's form at its starting dose strength (one unit is the starting dose).

    ``display`` is the RxNorm name as the source shows it beside the code. Only a verified product
    reaches a proposal; the loader requires system rxnorm, tty SCD or SBD, and a name when
    verified."""

    tty: str


class Lasting(_Entry):
    """How long a condition can last: an active diagnosis whose onset is longer ago than this is
    no longer taken as present (a pregnancy coded decades ago and never closed on the record)."""

    days: Annotated[int, Field(gt=0)]
    basis: Basis
    note: str | None = None


class Concept(_Entry):
    id: Id
    name: Text
    codes: list[Coding] = []
    note: str | None = None
    lasts_at_most: Lasting | None = None


class ReferenceRange(_Entry):
    """An adult reference interval in the lab's canonical unit: a default for local policy.

    ``low`` / ``high`` make the facts ``low.<lab>`` / ``high.<lab>`` (value < low, value > high).
    """

    low: float | None = None
    high: float | None = None
    citations: CitationIds
    basis: Basis
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
    reference: ReferenceRange | None = None


class RecordObservation(_Entry):
    """How a fact other than a lab is read from a patient record (``record.yaml``).

    ``body_weight``: the codes, unit, plausible range and how old a weight may be.
    ``body_height``, ``gestational_age``: likewise (gestational age is aged forward to as_of).
    ``pregnancy_status``: the codes of a pregnancy-status observation and its answer codes.
    ``intake``: how old intake answers (a QuestionnaireResponse) may be.
    """

    id: Literal[
        "body_weight",
        "body_height",
        "gestational_age",
        "pregnancy_status",
        "no_known_allergy",
        "intake",
    ]
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


class StopStatement(Statement):
    """How to stop a medicine. ``gradual``: it must not be stopped all at once (a taper)."""

    gradual: bool = False


class RenalBand(_Entry):
    """A renal dose band as the label writes it (Cockcroft-Gault CrCl, mL/min).

    The engine places a patient by renal function: CrCl or eGFR, whichever is known, and the
    stricter (lower) when both are. Boundaries are inclusive or exclusive as the label's headings
    say (">30-59" is ``crcl_min: 30, min_inclusive: false``).
    """

    label: Text
    crcl_min: float | None = None
    crcl_max: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = False
    daily_min: Dose | None = None
    daily_max: Dose | None = None
    start: Dose | None = None  # band-specific starting dose, when the label gives one
    times_per_day: float | None = None
    dosing: Text
    not_recommended: bool = False
    # The label says to adjust but the amount was not verified: no dose line; the proposal is
    # conditional on the prescriber choosing the dose for this band.
    dose_unverified: bool = False

    def holds(self, value: float) -> bool:
        lo, hi = self.crcl_min, self.crcl_max
        above = lo is None or (value >= lo if self.min_inclusive else value > lo)
        below = hi is None or (value <= hi if self.max_inclusive else value < hi)
        return above and below


class WeightBand(_Entry):
    """Weight-based dosing as the label writes it (kg: weight_min inclusive, weight_max not)."""

    label: Text
    weight_min: float | None = None
    weight_max: float | None = None
    dosing: Text


GateName = Literal[
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
]


class Confirm(_Entry):
    """A safety fact to confirm before a proposal stands: unknown makes the proposal conditional.

    ``fact``: confirmed when that fact is known. ``when``: confirmed when the expression is true
    (false or unknown both leave the proposal conditional). ``text`` says what to confirm and why.
    """

    fact: str | None = None
    when: Any = None
    text: Text
    gate: GateName = "safety"
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Regimen(_Entry):
    id: Id
    indication: Text
    form: Text
    start: Dose | None = None
    times_per_day: float | None = None
    timing: str | None = None
    start_text: Text
    titration: str | None = None
    max_daily: Dose | None = None  # the label's maximum: also the ceiling of the dose checks
    # The maximum for this indication when lower than the label's (gabapentin in RLS): it caps
    # the proposed plan, not the check of a dose someone else prescribed.
    indication_max: Dose | None = None
    max_duration_days: int | None = None
    duration_text: str | None = None
    renal_bands: list[RenalBand] = []
    haemodialysis: RenalBand | None = None
    weight_bands: list[WeightBand] = []
    confirm: list[Confirm] = []  # facts to confirm before this regimen is prescribed
    # The prescribable product of the starting dose (an order a clinician can sign); the
    # ingredient code of the drug stays in ``Drug.codes``.
    product: Product | None = None
    citations: CitationIds
    basis: Basis


class DrugClass(_Entry):
    id: Id
    name: Text
    stopping: StopStatement | None = None  # how to stop a member the patient takes


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
    stopping: StopStatement | None = None  # how to stop it (taper, cross-taper); else the class's
    regimens: list[Regimen] = []
    # Where the current label is read; default: the DailyMed search for the name.
    label_url: str | None = None

    @property
    def label(self) -> str:
        """The address of the drug's current label."""
        if self.label_url is not None:
            return self.label_url
        return LABEL_SEARCH + quote_plus(self.name.split(" (")[0])


class Criterion(_Entry):
    id: Id
    text: Text
    when: Any
    exclusion: bool = False  # an exclusion alone never makes a context "possible"
    generic: bool = False  # shared by many contexts ("muscle cramps"): alone, never "possible"
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
    # Red flags the pathway's algorithm excludes before any medicine (evidence §3.5 step 1): while
    # one is neither present nor excluded, the pathway's medication proposals are conditional.
    exclude_first: list[Id] = []
    citations: CitationIds
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class RedFlag(_Entry):
    """A dangerous mimic. ``when`` (its features) makes it present; ``possible_when`` (a risk
    factor or a partial feature, while ``when`` is not false) makes it possible. Both withhold the
    advice in ``withhold_tags``. ``order`` is what to order (a ServiceRequest in FHIR output)."""

    id: Id
    name: Text
    urgency: Literal["emergency", "urgent", "same-day"]
    when: Any
    possible_when: Any = None
    action: Text
    # The action in one short sentence ("Same-day Wells score, then D-dimer or ultrasound.").
    summary: Short
    possible_action: str | None = None  # the action while it is only possible (default: action)
    order: str | None = None
    withhold_tags: list[str] = []
    citations: CitationIds
    basis: Basis
    compiled: Compiled | None = None
    compiled_possible: Compiled | None = None
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


class MedicationRef(_Entry):
    drug: Id
    regimen: Id


class Option(_Entry):
    """The step is one option of a choice (``group``): the plan shows one preferred option and
    folds the others under it, each with the reason for this patient."""

    group: Id
    choose_when: Text  # when this option is the one to choose, in a clinician's words


class Recommendation(_Entry):
    id: Id
    context: Id
    also_in: list[Id] = []  # further contexts in which the same step applies
    context_status: list[Literal["documented", "likely", "possible"]] = ["documented", "likely"]
    phase: Phase
    statement: Text
    # The step as one short imperative sentence ("Replete iron by mouth."), for the bottom line.
    summary: Short
    strength: Text  # e.g. "strong for", "conditional for", "label", "consensus"
    certainty: Literal["high", "moderate", "low", "very low", "not graded"]
    grade_note: str | None = None
    basis: Basis
    citations: CitationIds
    applies_when: Any = None
    unless: Any = None
    unless_text: str | None = None  # the exclusion in words, for "confirm" when it is unknown
    tags: list[str] = []
    medication: MedicationRef | None = None
    # Products the step names without a regimen (a referral for botulinum toxin): the plan links
    # each to its current label.
    products: list[Id] = []
    option: Option | None = None
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
    label: str | None = None  # how an advice rule names its target ("adult medicine doses")
    targets: frozenset[str] = frozenset()  # drug ids named by `drugs`, expanded at load time
    severity: Literal["contraindicated", "avoid", "caution"]
    reason: Text
    # Why not, as a short phrase after the target ("augmentation in RLS", "worsens RLS").
    summary: Short
    # What to do when the patient already takes it, one sentence from ``reason`` or the drug's
    # stopping text (a patient-view card from the record leads with it). Absent: "review it".
    if_taken: Short | None = None
    citations: CitationIds
    basis: Basis
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Gate(_Entry):
    """A gate every medication proposal passes (``gates.yaml``).

    ``passes_when`` true: the gate passes. False: the proposal is withheld with ``fails`` when
    that is given, and otherwise conditional; unknown: conditional, asking ``question``.
    ``{unmapped}`` in the question is replaced by the current medicines legspasm does not know.
    """

    id: Id
    gate: GateName
    passes_when: Any
    question: Text
    because: Text
    fails: str | None = None
    # True: only a new start passes this gate; a step that reviews a medicine the patient
    # already takes does not (an allergy to it would be known by now).
    new_starts_only: bool = False
    citations: CitationIds
    basis: Basis
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Threshold(_Entry):
    """A number the engine uses outside an expression (``policy.yaml``), with its source. A
    ``local-policy`` setting (no guideline sets it) may cite nothing; every other one cites."""

    id: Id
    value: float
    unit: str
    text: Text
    citations: list[Id] = []
    basis: Basis

    @model_validator(mode="after")
    def _cited(self) -> Threshold:
        if not self.citations and self.basis != "local-policy":
            raise ValueError("citations: required unless basis is local-policy")
        return self


class Band(_Entry):
    min: int
    max: int
    label: Text


class Scale(_Entry):
    """A scale a value is read on (IRLS total, ferritin against the RLS iron thresholds): bands in
    ascending order; a band holds values above the previous band's max up to its own max."""

    id: Id
    name: Text
    unit: str | None = None  # of a lab scale ("ng/mL", "%"); none for a score
    bands: Annotated[list[Band], Field(min_length=1)]
    citations: CitationIds
    basis: Basis

    def label_for(self, score: int) -> str | None:
        return next((b.label for b in self.bands if b.min <= score <= b.max), None)


class HandoutItem(_Entry):
    """One line of a patient handout. ``red_flag`` names the red flag an urgent line describes.

    Relevance is data: ``when`` (a criterion) must be true for this patient, ``avoid_rule`` must
    be on this patient's avoid list, and none of ``tags`` may be withheld; a line with none of
    them is always relevant. A red-flag line is also shown when that red flag is possible, and
    moved to the signs found today when it is present.
    """

    text: Text
    red_flag: Id | None = None
    when: Any = None
    avoid_rule: Id | None = None
    tags: list[str] = []
    compiled: Compiled | None = None
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


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
    concept_by_code: dict[tuple[str, str], tuple[str, ...]]  # a code may mean two concepts
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
    gates: dict[str, Gate]
    policy: dict[str, Threshold]
    changelog: str
    lookups: Lookups
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    # What the engine compiles from this knowledge base on first use (engine.index), tagged
    # with the id of the object it was made for, so a model_copy never reuses it.
    _engine_index: tuple[int, object] | None = PrivateAttr(default=None)

    @property
    def version(self) -> str:
        return self.manifest.version

    def threshold(self, key: str) -> float:
        return self.policy[key].value

    def stopping(self, drug_id: str) -> StopStatement | None:
        """How to stop a drug: its own statement, else its first class's."""
        drug = self.drugs[drug_id]
        if drug.stopping is not None:
            return drug.stopping
        return next(
            (self.classes[c].stopping for c in drug.classes if self.classes[c].stopping), None
        )

    def drug_classes(self, drug_id: str) -> frozenset[str]:
        return frozenset(self.drugs[drug_id].classes)

    def allergy_target(self, substance: str) -> str | None:
        """The drug or drug-class id an allergy names ('Neurontin', 'opioids'), or None."""
        drug_id = self.lookups.match_drug(substance, None)
        if drug_id is not None:
            return drug_id
        key = substance.strip().lower().replace(" ", "_")
        return next((k for k in (key, key.rstrip("s")) if k in self.classes), None)
