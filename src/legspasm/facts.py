"""The declared fact vocabulary: every name a knowledge-base criterion may test.

A fact is a value derived from the case (and ``as_of``): a bool, a number or a string, or
``None`` when unknown. Static facts are listed here with the question that would settle them and
where that answer goes in the case file; dynamic families (``condition.<concept>``,
``takes.<drug-or-class>``, ``lab.<lab>`` ...) are checked against knowledge-base ids at load time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FAMILIES", "STATIC_FACTS", "FactSpec", "FactValue"]

FactValue = bool | float | str | None
Kind = Literal["bool", "number", "text"]


@dataclass(frozen=True, slots=True)
class FactSpec:
    kind: Kind
    label: str
    case_path: str  # where a user records it; "" for derived facts with their own inputs


def _b(label: str, path: str) -> FactSpec:
    return FactSpec("bool", label, path)


def _n(label: str, path: str) -> FactSpec:
    return FactSpec("number", label, path)


def _t(label: str, path: str) -> FactSpec:
    return FactSpec("text", label, path)


_C = "symptoms.cramp."
_R = "symptoms.rls."
_F = "red_flags."

STATIC_FACTS: dict[str, FactSpec] = {
    "age": _n("age (years)", "patient.age_years or patient.birth_date"),
    "sex": _t("sex", "patient.sex"),
    "weight_kg": _n("body weight (kg)", "patient.weight"),
    "pregnant": _b("pregnant", "patient.pregnant"),
    "trimester": _n("trimester of pregnancy", "patient.trimester"),
    "postpartum": _b("postpartum (within 6 weeks)", "patient.postpartum"),
    "lactating": _b("breastfeeding", "patient.lactating"),
    "dialysis": _b("on dialysis", "patient.dialysis"),
    "haemodialysis": _b("on haemodialysis", "patient.dialysis"),
    "dialysis_documented": _b(
        "dialysis documented on the record", "patient.dialysis or conditions: dialysis_dependence"
    ),
    "falls_history": _b("history of falls or fractures", "patient.history_of_falls_or_fractures"),
    "order_dose": _n(
        "dose and frequency of the medicine being ordered", "orders: dose and times_per_day"
    ),
    "crcl": _n(
        "creatinine clearance (Cockcroft-Gault, mL/min)",
        "patient.age_years, patient.sex, patient.weight and a serum creatinine lab",
    ),
    "egfr": _n("eGFR (mL/min/1.73 m²)", "labs: egfr"),
    "renal_function": _n(
        "renal function (creatinine clearance or eGFR, the lower when both are known; mL/min)",
        "labs: creatinine (with age, sex and weight), egfr or creatinine_clearance",
    ),
    "allergies_known": _b(
        "allergies recorded (or recorded as none)", "allergies, or none_known: [allergies]"
    ),
    "medications_known": _b(
        "current medicines recorded (or recorded as none)",
        "medications, or none_known: [medications]",
    ),
    "unmapped_medicines": _n(
        "current medicines legspasm does not know (interactions not checked)", "medications"
    ),
    "liver_disease": _b(
        "liver disease (hepatic impairment, cirrhosis or active liver disease)",
        "conditions, or none_known: [conditions]",
    ),
    "calcium_corrected": _n("albumin-corrected calcium (mg/dL)", "labs: calcium and albumin"),
    "ck_x_uln": _n("creatine kinase as a multiple of its upper reference limit", "labs: ck"),
    "bmi": _n("body mass index (kg/m²)", "patient.weight and patient.height"),
    "secondary_cause": _b(
        "a low electrolyte result, or a medicine strongly associated with cramps, on record",
        "labs (potassium, magnesium, calcium, sodium) and medications",
    ),
    "cns_active_count": _n("number of CNS-active drugs taken", "medications"),
    "cramp.present": _b("leg cramps or spasms present", _C + "present"),
    "cramp.sudden_painful_contraction": _b(
        "sudden painful muscle contraction", _C + "sudden_painful_contraction"
    ),
    "cramp.palpable_hard_muscle": _b(
        "hard, palpable muscle during the episode", _C + "palpable_hard_muscle"
    ),
    "cramp.timing": _t("when episodes occur", _C + "timing"),
    "cramp.duration_minutes": _n("episode duration (minutes)", _C + "episode_duration_minutes"),
    "cramp.relieved_by_stretching": _b(
        "relieved by stretching the muscle", _C + "relieved_by_stretching"
    ),
    "cramp.frequency_per_week": _n("cramps per week", _C + "frequency_per_week"),
    "cramp.during_dialysis": _b("cramps occur during dialysis", _C + "during_dialysis"),
    "cramp.disabling": _b("cramps disabling despite first-line care", _C + "disabling"),
    "cramp.nondrug_care_tried": _b(
        "nightly stretching tried for 6 weeks", _C + "nondrug_care_tried"
    ),
    "cramp.after_strain_or_injury": _b(
        "pain and guarding after an acute strain or injury", _C + "after_strain_or_injury"
    ),
    "cramp.heat_or_exercise": _b(
        "cramps during or after exercise or heat", _C + "heat_or_exercise"
    ),
    "rls.urge_to_move": _b("urge to move the legs (IRLSSG 1)", _R + "urge_to_move"),
    "rls.worse_at_rest": _b("worse at rest (IRLSSG 2)", _R + "worse_at_rest"),
    "rls.relieved_by_movement": _b("relieved by movement (IRLSSG 3)", _R + "relieved_by_movement"),
    "rls.worse_evening_night": _b(
        "worse in the evening or night (IRLSSG 4)", _R + "worse_evening_night"
    ),
    "rls.not_explained_by_other_condition": _b(
        "not solely explained by a mimic such as cramps (IRLSSG 5)",
        _R + "not_explained_by_other_condition",
    ),
    "rls.days_per_week": _n("RLS days per week", _R + "days_per_week"),
    "rls.distress": _t("distress caused by RLS", _R + "distress"),
    "rls.irls_total": _n("IRLS total score (0-40)", _R + "irls_items or " + _R + "irls_total"),
    "rls.alpha2delta_failed": _b(
        "alpha-2-delta ligand failed or not tolerated", _R + "alpha2delta_failed"
    ),
    "rls.augmentation_symptoms": _b(
        "augmentation symptoms on a dopaminergic drug", _R + "augmentation_symptoms"
    ),
    "rls.earlier_onset_hours": _n(
        "hours earlier that RLS symptoms start on the dopaminergic drug", _R + "earlier_onset_hours"
    ),
    "rls.spread_to_other_limbs": _b(
        "RLS symptoms spread to the arms or trunk", _R + "spread_to_other_limbs"
    ),
    "rls.shorter_drug_effect": _b(
        "each dose of the dopaminergic drug helps for a shorter time", _R + "shorter_drug_effect"
    ),
    "rls.more_intense": _b("RLS symptoms more intense than before treatment", _R + "more_intense"),
    "rls.dose_escalated": _b(
        "dopaminergic dose raised because symptoms came back", _R + "dose_escalated"
    ),
    "rls.augmentation": _b(
        "augmentation (earlier onset, spread, shorter effect, dose escalation)",
        _R + "augmentation_symptoms, or its features (earlier_onset_hours, "
        "spread_to_other_limbs, shorter_drug_effect, more_intense, dose_escalated)",
    ),
    "rls.augmentation_features": _n("augmentation features present", ""),
    "spasticity.velocity_dependent_tone": _b(
        "velocity-dependent increase in tone", "symptoms.spasticity.velocity_dependent_tone"
    ),
    "spasticity.distribution": _t(
        "spasticity distribution (focal/generalised)", "symptoms.spasticity.distribution"
    ),
    "spasticity.causes_problem": _b(
        "spasticity causes pain, skin-hygiene problems or reduced function",
        "symptoms.spasticity.causes_pain_hygiene_or_function_problem",
    ),
    "spasticity.sustains_function": _b(
        "spasticity sustains upright posture, balance or function",
        "symptoms.spasticity.sustains_posture_or_function",
    ),
    "spasticity.modified_ashworth": _t(
        "Modified Ashworth grade", "symptoms.spasticity.modified_ashworth"
    ),
    "spasticity.refractory": _b(
        "spasticity refractory to oral agents", "symptoms.spasticity.refractory_to_oral_agents"
    ),
    "functional.positive_signs": _b(
        "positive functional signs (e.g. Hoover)", "symptoms.functional.positive_signs"
    ),
    "functional.distractible": _b(
        "distractible or variable movements", "symptoms.functional.distractible_or_variable"
    ),
    "functional.fixed_posture": _b(
        "fixed functional dystonic posture", "symptoms.functional.fixed_posture"
    ),
    "claudication": _b(
        "exertional calf pain relieved by rest", "symptoms.exertional_calf_pain_relieved_by_rest"
    ),
    "presyncope": _b("presyncope warning symptoms", "symptoms.presyncope_warning_symptoms"),
    "tetany_signs": _b(
        "carpopedal spasm or perioral paraesthesia",
        "symptoms.carpopedal_spasm_or_perioral_paraesthesia",
    ),
    "neuro.new_focal_deficit": _b("new focal neurological deficit", "neuro.new_focal_deficit"),
    "neuro.umn_signs": _b("upper-motor-neuron signs", "neuro.upper_motor_neuron_signs"),
    "neuro.progressive_weakness": _b(
        "progressive weakness or wasting", "neuro.progressive_weakness_or_wasting"
    ),
    "neuro.fasciculations": _b("fasciculations", "neuro.fasciculations"),
    "neuro.bulbar_signs": _b(
        "speech or swallowing problems, or tongue fasciculations", "neuro.bulbar_signs"
    ),
    "symptoms.duration_weeks": _n(
        "how long symptoms have been present (weeks)", "symptoms.duration_weeks"
    ),
    "neuro.exam_normal": _b("normal neurological and vascular examination", "neuro.exam_normal"),
    "red.unilateral_swelling": _b("unilateral leg swelling", _F + "unilateral_leg_swelling"),
    "red.calf_tenderness_warmth": _b("calf tenderness or warmth", _F + "calf_tenderness_or_warmth"),
    "red.pitting_oedema": _b("pitting oedema confined to one leg", _F + "pitting_oedema_one_leg"),
    "red.persistent_calf_pain": _b(
        "constant ache in one calf between cramps", _F + "persistent_unilateral_calf_pain"
    ),
    "red.immobility_surgery_travel": _b(
        "recent immobility, surgery, plaster cast or long journey",
        _F + "recent_immobility_surgery_or_long_travel",
    ),
    "red.active_cancer": _b("active cancer", _F + "active_cancer"),
    "red.previous_dvt": _b("previous deep vein thrombosis", _F + "previous_dvt"),
    "red.limb_paraesthesia_weakness": _b(
        "paraesthesia or weakness of the affected limb", _F + "paraesthesia_or_weakness_of_the_limb"
    ),
    "red.absent_foot_pulses": _b(
        "absent or reduced foot pulses", _F + "absent_or_reduced_foot_pulses"
    ),
    "red.rest_pain": _b("ischaemic rest pain in the foot", _F + "ischaemic_rest_pain"),
    "red.nonhealing_wound": _b(
        "non-healing foot wound or gangrene", _F + "nonhealing_foot_wound_or_gangrene"
    ),
    "red.heat_illness_signs": _b(
        "confusion, collapse, seizure or core temperature above 40 °C in heat or exertion",
        _F + "confusion_collapse_or_high_temperature_in_heat",
    ),
    "red.trismus_spasms": _b(
        "jaw spasm (lockjaw) or generalised muscle spasms", _F + "trismus_or_generalised_spasms"
    ),
    "red.itb_withdrawal_signs": _b(
        "fever, confusion, rebound spasticity or rigidity (intrathecal baclofen pump)",
        _F + "fever_confusion_or_rebound_spasticity",
    ),
    "red.pain_on_passive_stretch": _b("pain on passive stretch", _F + "pain_on_passive_stretch"),
    "red.pain_out_of_proportion": _b("pain out of proportion", _F + "pain_out_of_proportion"),
    "red.tense_compartment": _b("tense muscle compartment", _F + "tense_compartment"),
    "red.recent_trauma": _b(
        "recent fracture, crush injury or tight cast", _F + "recent_fracture_crush_or_tight_cast"
    ),
    "red.dark_urine": _b("dark urine", _F + "dark_urine"),
    "red.myalgia_after_exertion": _b(
        "myalgia or weakness after exertion, heat or crush",
        _F + "myalgia_weakness_after_exertion_heat_or_crush",
    ),
    "red.cold_pulseless_limb": _b(
        "sudden cold, pale, pulseless limb", _F + "cold_pale_pulseless_limb"
    ),
    "red.saddle_anaesthesia": _b("saddle anaesthesia", _F + "saddle_anaesthesia"),
    "red.bladder_bowel": _b(
        "new bladder or bowel dysfunction", _F + "bladder_or_bowel_dysfunction"
    ),
    "red.bilateral_weakness": _b("bilateral leg weakness", _F + "bilateral_leg_weakness"),
    "red.chest_pain": _b("chest pain", _F + "chest_pain"),
    "red.rigidity_fever": _b(
        "rigidity with fever or autonomic instability", _F + "rigidity_with_fever"
    ),
    "red.dystonic_posture_after_drug": _b(
        "sustained twisting posture after a drug", _F + "sustained_twisting_posture_after_drug"
    ),
    "red.bleeding": _b(
        "bruising, petechiae, nosebleeds or blood in urine", _F + "bleeding_or_bruising"
    ),
    "red.laryngospasm_seizure_arrhythmia": _b(
        "laryngospasm, seizure or arrhythmia", _F + "laryngospasm_seizure_or_arrhythmia"
    ),
}

# Dynamic families: prefix -> (kind, which knowledge ids may follow the dot, label template).
FAMILIES: dict[str, tuple[Kind, str, str]] = {
    "condition": ("bool", "concepts", "documented diagnosis: {}"),
    "takes": ("bool", "drugs_or_classes", "currently takes {}"),
    "intrathecal": ("bool", "drugs", "receives {} intrathecally (pump)"),
    "stopped_days_ago": ("number", "drugs_or_classes", "days since {} was stopped"),
    "failed": ("bool", "drugs_or_classes", "{} tried before: ineffective or not tolerated"),
    "days_on": ("number", "drugs", "days on {} so far"),
    "lab": ("number", "labs", "recent {} result"),
    "low": ("bool", "labs", "{} below the reference range"),
    "high": ("bool", "labs", "{} above the reference range"),
    "context": ("text", "contexts", "status of {}"),
}
