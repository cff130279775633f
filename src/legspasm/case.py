"""The case: what is known about one patient with a leg-cramp, spasm or restless-legs complaint.

Every field may be left out, and left out means *unknown*, never "no". Booleans are three-valued:
``true``, ``false`` or absent. The model is frozen; ``legspasm schema case`` prints its JSON Schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MEDICINE_OUTCOMES",
    "Allergy",
    "Case",
    "Code",
    "ConditionEntry",
    "CrampFeatures",
    "FunctionalFeatures",
    "LabResult",
    "MedicationEntry",
    "MedicationOrder",
    "NeuroFindings",
    "Patient",
    "Quantity",
    "RedFlagFeatures",
    "RlsFeatures",
    "SpasticityFeatures",
    "Symptoms",
]

Tri = bool | None
"""A three-valued fact: true, false, or None for unknown."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Quantity(_Model):
    """A measured amount with its unit (any unit the units library understands)."""

    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    unit: Annotated[str, Field(min_length=1, max_length=40)]


class Code(_Model):
    """A coded concept (FHIR Coding-like)."""

    system: Literal[
        "http://snomed.info/sct",
        "http://hl7.org/fhir/sid/icd-10-cm",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "http://loinc.org",
    ]
    code: Annotated[str, Field(min_length=1, max_length=64)]
    display: str | None = None


class Patient(_Model):
    age_years: Annotated[float | None, Field(ge=0, le=125)] = Field(
        None, description="Age in years; use birth_date instead when known."
    )
    birth_date: dt.date | None = None
    sex: Literal["female", "male"] | None = Field(
        None, description="Sex for Cockcroft-Gault and pregnancy logic."
    )
    weight: Quantity | None = Field(None, description="Body weight, e.g. {value: 70, unit: kg}.")
    pregnant: Tri = None
    trimester: Literal[1, 2, 3] | None = None
    postpartum: Tri = Field(None, description="Within 6 weeks after delivery.")
    lactating: Tri = None
    dialysis: Literal["none", "haemodialysis", "peritoneal"] | None = None
    history_of_falls_or_fractures: Tri = None
    height: Quantity | None = Field(None, description="Body height, e.g. {value: 170, unit: cm}.")
    gestational_weeks: Annotated[float | None, Field(ge=0, le=45)] = Field(
        None, description="Completed weeks of gestation, when pregnant."
    )


class CrampFeatures(_Model):
    """Features of the cramp or spasm itself (evidence §3.1)."""

    present: Tri = Field(None, description="The patient has leg cramps or spasms.")
    sudden_painful_contraction: Tri = None
    palpable_hard_muscle: Tri = None
    timing: Literal["night_or_rest", "exertion", "daytime", "continuous", "variable"] | None = None
    episode_duration_minutes: Annotated[float | None, Field(ge=0, le=10080)] = None
    sites: list[Literal["calf", "foot", "thigh", "hamstring", "other"]] | None = None
    relieved_by_stretching: Tri = None
    frequency_per_week: Annotated[float | None, Field(ge=0, le=200)] = None
    severity_0_10: Annotated[float | None, Field(ge=0, le=10)] = None
    during_dialysis: Tri = None
    disabling: Tri = Field(None, description="Cramps are disabling despite first-line care.")
    nondrug_care_tried: Tri = Field(
        None, description="Nightly stretching has been tried for at least 6 weeks."
    )
    after_strain_or_injury: Tri = Field(
        None, description="Pain and guarding after an acute strain or injury."
    )
    heat_or_exercise: Tri = Field(None, description="During or after exercise or heat exposure.")


class RlsFeatures(_Model):
    """IRLSSG 2014 essential criteria, specifiers and severity (evidence B3-B4, §3.12)."""

    urge_to_move: Tri = Field(None, description="IRLSSG 1: urge to move the legs.")
    worse_at_rest: Tri = Field(None, description="IRLSSG 2: begins or worsens at rest.")
    relieved_by_movement: Tri = Field(None, description="IRLSSG 3: relieved by movement.")
    worse_evening_night: Tri = Field(None, description="IRLSSG 4: worse in evening or night.")
    not_explained_by_other_condition: Tri = Field(
        None,
        description="IRLSSG 5: not solely accounted for by a mimic such as leg cramps, "
        "myalgia, venous stasis, oedema, arthritis or positional discomfort.",
    )
    days_per_week: Annotated[float | None, Field(ge=0, le=7)] = None
    distress: Literal["none", "mild", "moderate", "severe"] | None = None
    irls_items: list[Annotated[int, Field(ge=0, le=4)]] | None = Field(
        None, min_length=10, max_length=10, description="The 10 IRLS item scores, each 0-4."
    )
    irls_total: Annotated[int | None, Field(ge=0, le=40)] = None
    alpha2delta_failed: Tri = Field(
        None,
        description="An adequate trial of an alpha-2-delta ligand failed or was not "
        "tolerated (refractory RLS).",
    )
    augmentation_symptoms: Tri = Field(
        None,
        description="Augmentation on a dopaminergic drug, as judged by the clinician (symptoms "
        "start earlier, spread or intensify). The features below let legspasm judge it.",
    )
    earlier_onset_hours: Annotated[float | None, Field(ge=0, le=24)] = Field(
        None,
        description="On a dopaminergic drug: how many hours earlier in the day symptoms now "
        "start than before it (0 if not earlier).",
    )
    spread_to_other_limbs: Tri = Field(
        None, description="On a dopaminergic drug: symptoms have spread to the arms or trunk."
    )
    shorter_drug_effect: Tri = Field(
        None, description="On a dopaminergic drug: each dose now helps for a shorter time."
    )
    more_intense: Tri = Field(
        None, description="On a dopaminergic drug: symptoms are more intense than before it."
    )
    dose_escalated: Tri = Field(
        None,
        description="On a dopaminergic drug: the dose has been raised, or extra doses taken, "
        "because symptoms came back.",
    )


class SpasticityFeatures(_Model):
    velocity_dependent_tone: Tri = None
    distribution: Literal["focal", "generalised"] | None = None
    causes_pain_hygiene_or_function_problem: Tri = None
    refractory_to_oral_agents: Tri = None
    sustains_posture_or_function: Tri = Field(
        None, description="The spasticity helps the patient stand, balance or keep function."
    )
    modified_ashworth: Literal["0", "1", "1+", "2", "3", "4"] | None = Field(
        None, description="Modified Ashworth Scale grade of the most affected muscle group."
    )


class FunctionalFeatures(_Model):
    positive_signs: Tri = Field(None, description="Positive functional signs, e.g. Hoover sign.")
    distractible_or_variable: Tri = None
    fixed_posture: Tri = Field(None, description="Fixed (functional) dystonic posture.")


class Symptoms(_Model):
    cramp: CrampFeatures = CrampFeatures()
    rls: RlsFeatures = RlsFeatures()
    spasticity: SpasticityFeatures = SpasticityFeatures()
    functional: FunctionalFeatures = FunctionalFeatures()
    exertional_calf_pain_relieved_by_rest: Tri = None
    presyncope_warning_symptoms: Tri = Field(
        None, description="Light-headedness, warmth, nausea or dimming vision before fainting."
    )
    carpopedal_spasm_or_perioral_paraesthesia: Tri = None
    duration_weeks: Annotated[float | None, Field(ge=0, le=5200)] = Field(
        None, description="How long the current symptoms have been present, in weeks."
    )


class NeuroFindings(_Model):
    new_focal_deficit: Tri = Field(
        None, description="Sudden face/arm/leg weakness or speech disturbance."
    )
    upper_motor_neuron_signs: Tri = None
    progressive_weakness_or_wasting: Tri = None
    fasciculations: Tri = None
    bulbar_signs: Tri = Field(
        None, description="Speech or swallowing problems, or tongue fasciculations."
    )
    exam_normal: Tri = None


class RedFlagFeatures(_Model):
    """Features that point to a dangerous mimic (evidence §3.2)."""

    unilateral_leg_swelling: Tri = None
    calf_tenderness_or_warmth: Tri = None
    pitting_oedema_one_leg: Tri = Field(None, description="Pitting oedema confined to one leg.")
    persistent_unilateral_calf_pain: Tri = Field(
        None, description="A constant ache in one calf between cramps (not only during them)."
    )
    recent_immobility_surgery_or_long_travel: Tri = Field(
        None,
        description="Bedridden 3 days or more, major surgery within 12 weeks, a leg in plaster, "
        "or a recent long journey.",
    )
    active_cancer: Tri = Field(
        None, description="Cancer under treatment, treated within 6 months, or palliative."
    )
    previous_dvt: Tri = None
    pain_on_passive_stretch: Tri = None
    pain_out_of_proportion: Tri = None
    tense_compartment: Tri = None
    recent_fracture_crush_or_tight_cast: Tri = None
    dark_urine: Tri = None
    myalgia_weakness_after_exertion_heat_or_crush: Tri = None
    cold_pale_pulseless_limb: Tri = None
    paraesthesia_or_weakness_of_the_limb: Tri = None
    absent_or_reduced_foot_pulses: Tri = None
    ischaemic_rest_pain: Tri = Field(
        None, description="Foot pain at rest, often at night and eased by hanging the leg down."
    )
    nonhealing_foot_wound_or_gangrene: Tri = None
    saddle_anaesthesia: Tri = None
    bladder_or_bowel_dysfunction: Tri = None
    bilateral_leg_weakness: Tri = None
    chest_pain: Tri = None
    rigidity_with_fever: Tri = None
    sustained_twisting_posture_after_drug: Tri = None
    bleeding_or_bruising: Tri = None
    laryngospasm_seizure_or_arrhythmia: Tri = None
    confusion_collapse_or_high_temperature_in_heat: Tri = Field(
        None,
        description="Confusion, collapse or a seizure during or after exertion or heat, or a core "
        "temperature above 40 °C.",
    )
    trismus_or_generalised_spasms: Tri = Field(
        None, description="Jaw spasm (lockjaw) or painful generalised muscle spasms."
    )
    fever_confusion_or_rebound_spasticity: Tri = Field(
        None,
        description="With an intrathecal baclofen pump: fever, confusion, sudden rebound "
        "spasticity or rigidity.",
    )


class ConditionEntry(_Model):
    """A diagnosis. Give a knowledge-base concept id, a code, or both."""

    concept: str | None = Field(None, description="Knowledge-base concept id, e.g. 'cirrhosis'.")
    code: Code | None = None
    status: Literal["active", "resolved", "inactive"] = "active"
    onset: dt.date | None = None
    abatement: dt.date | None = Field(None, description="When it resolved, if it has.")

    @model_validator(mode="after")
    def _needs_identity(self) -> ConditionEntry:
        if self.concept is None and self.code is None:
            raise ValueError("give 'concept' or 'code'")
        if self.onset and self.abatement and self.abatement < self.onset:
            raise ValueError("abatement is before onset")
        return self


MedicineOutcome = Literal["helped", "partial", "ineffective", "not_tolerated", "augmentation"]
MEDICINE_OUTCOMES: tuple[str, ...] = get_args(MedicineOutcome)


class MedicationEntry(_Model):
    """A medicine the patient takes or took. Name (ingredient or brand) or RxNorm code."""

    name: str | None = None
    rxnorm: str | None = None
    dose: Quantity | None = Field(None, description="Amount per administration.")
    times_per_day: Annotated[float | None, Field(gt=0, le=24)] = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    status: Literal["active", "stopped"] = "active"
    as_needed: Tri = Field(None, description="Taken as needed (PRN) rather than regularly.")
    timing: str | None = Field(
        None, max_length=200, description="When it is taken, e.g. 'at bedtime'."
    )
    route: (
        Literal["oral", "intrathecal", "intravenous", "transdermal", "inhaled", "other"] | None
    ) = None
    outcome: MedicineOutcome | None = Field(
        None,
        description="How it worked for this patient: helped, partial benefit, ineffective "
        "(after an adequate trial), not tolerated, or augmentation (RLS on a dopaminergic "
        "drug). A medicine that was ineffective or not tolerated is not proposed again.",
    )

    @model_validator(mode="after")
    def _check(self) -> MedicationEntry:
        if self.name is None and self.rxnorm is None:
            raise ValueError("give 'name' or 'rxnorm'")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class MedicationOrder(_Model):
    """A medicine being ordered now (an EHR draft order): checked as if the patient started it."""

    id: str | None = Field(None, description="The order in its source, e.g. 'MedicationRequest/1'.")
    name: str | None = None
    rxnorm: str | None = None
    dose: Quantity | None = Field(None, description="Amount per administration.")
    times_per_day: Annotated[float | None, Field(gt=0, le=24)] = None
    duration_days: Annotated[int | None, Field(ge=1, le=3650)] = Field(
        None, description="Planned duration of the order, when it says."
    )

    @model_validator(mode="after")
    def _check(self) -> MedicationOrder:
        if self.name is None and self.rxnorm is None:
            raise ValueError("give 'name' or 'rxnorm'")
        return self


class LabResult(_Model):
    """A laboratory result with its unit and date."""

    name: str | None = Field(None, description="Knowledge-base lab id, e.g. 'ferritin'.")
    loinc: str | None = None
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    unit: Annotated[str, Field(min_length=1, max_length=40)]
    date: dt.date | None = None

    @model_validator(mode="after")
    def _check(self) -> LabResult:
        if self.name is None and self.loinc is None:
            raise ValueError("give 'name' or 'loinc'")
        return self


class Allergy(_Model):
    substance: str
    reaction: str | None = None


class Case(_Model):
    """Everything known about one patient. Absent means unknown."""

    id: str | None = None
    patient: Patient = Patient()
    symptoms: Symptoms = Symptoms()
    neuro: NeuroFindings = NeuroFindings()
    red_flags: RedFlagFeatures = RedFlagFeatures()
    conditions: list[ConditionEntry] = []
    conditions_ruled_out: list[str] = Field(
        [], description="Concept ids documented as absent (e.g. 'heart_failure')."
    )
    medications: list[MedicationEntry] = []
    orders: list[MedicationOrder] = Field(
        [], description="Medicines being ordered now; each is checked as if started today."
    )
    labs: list[LabResult] = []
    allergies: list[Allergy] = []
    none_known: list[Literal["conditions", "medications", "allergies"]] = Field(
        [],
        description="Lists documented as having no entries (e.g. no known drug allergies). A "
        "list that is empty and not named here is unknown, never 'none'.",
    )

    @model_validator(mode="after")
    def _none_means_empty(self) -> Case:
        for name in self.none_known:
            if getattr(self, name):
                raise ValueError(f"none_known names {name!r} but {name} has entries")
        return self
