"""The words of the intake: one human label (and a short help text) for every intake item.

The web form (``legspasm.web``) and the FHIR Questionnaire (``legspasm.fhir.intake``) both take
their labels from here, so a clinician reads the same question in either place. Keys are the
items' linkIds (the dotted case paths); ``OPTION_TEXT`` words the answer codes, ``GROUP_TEXT`` the
groups. ``tests/test_web_form.py`` checks that every intake item has a label written for people.

The IRLS items are named by topic only: the wording of the International Restless Legs Syndrome
Study Group Rating Scale is copyrighted and licensed by the MAPI Research Trust, and must come
from the licensed form (``IRLS_LICENCE_URL``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GROUP_TEXT",
    "IRLS_LICENCE_URL",
    "IRLS_TOPICS",
    "LABELS",
    "OPTION_TEXT",
    "Label",
    "label_of",
    "option_text",
]

# The licence holder's page for the IRLS. Not verified from here (no network access when this
# was written): check it before relying on it.
IRLS_LICENCE_URL = (
    "https://eprovide.mapi-trust.org/instruments/"
    "international-restless-legs-syndrome-study-group-rating-scale"
)


@dataclass(frozen=True, slots=True)
class Label:
    """What the form and the Questionnaire say for one item."""

    text: str
    help: str | None = None


# Short neutral topic names of the ten IRLS items (not their wording, which is licensed).
IRLS_TOPICS = (
    "Overall discomfort",
    "Urge to move",
    "Relief from moving",
    "Sleep disturbance",
    "Daytime tiredness or sleepiness",
    "Overall severity",
    "How often (days)",
    "How long each day",
    "Impact on daily activities",
    "Mood",
)

_DOPA = "On a dopaminergic drug"

LABELS: dict[str, Label] = {
    # about the patient
    "patient.pregnant": Label("Pregnant"),
    "patient.trimester": Label("Trimester of pregnancy"),
    "patient.gestational_weeks": Label("Completed weeks of pregnancy"),
    "patient.postpartum": Label("Gave birth in the last 6 weeks"),
    "patient.lactating": Label("Breastfeeding"),
    "patient.dialysis": Label("Dialysis"),
    "patient.history_of_falls_or_fractures": Label("Has had falls or fractures"),
    # cramp or spasm
    "symptoms.cramp.present": Label("Leg cramps or spasms"),
    "symptoms.cramp.sudden_painful_contraction": Label(
        "Sudden, painful tightening of a muscle", "The classic cramp: it comes on suddenly."
    ),
    "symptoms.cramp.palpable_hard_muscle": Label("The muscle is hard to the touch during it"),
    "symptoms.cramp.timing": Label("When the episodes happen"),
    "symptoms.cramp.episode_duration_minutes": Label("How long an episode lasts (minutes)"),
    "symptoms.cramp.sites": Label("Where the cramps are"),
    "symptoms.cramp.relieved_by_stretching": Label("Stretching the muscle relieves it"),
    "symptoms.cramp.frequency_per_week": Label("Cramps per week"),
    "symptoms.cramp.severity_0_10": Label(
        "How bad the cramps are, from 0 (none) to 10 (worst imaginable)"
    ),
    "symptoms.cramp.during_dialysis": Label("Cramps come during dialysis sessions"),
    "symptoms.cramp.disabling": Label("Cramps are disabling despite first-line care"),
    "symptoms.cramp.nondrug_care_tried": Label(
        "Nightly stretching has been tried for at least 6 weeks"
    ),
    "symptoms.cramp.after_strain_or_injury": Label(
        "Pain and muscle guarding after an acute strain or injury"
    ),
    "symptoms.cramp.heat_or_exercise": Label("Cramps come during or after exercise or heat"),
    # restless legs
    "symptoms.rls.urge_to_move": Label(
        "An urge to move the legs, usually with unpleasant sensations in them",
        "IRLSSG criterion 1",
    ),
    "symptoms.rls.worse_at_rest": Label(
        "The urge begins or gets worse when resting or sitting still", "IRLSSG criterion 2"
    ),
    "symptoms.rls.relieved_by_movement": Label(
        "Moving (walking, stretching) partly or fully relieves it", "IRLSSG criterion 3"
    ),
    "symptoms.rls.worse_evening_night": Label(
        "It is worse in the evening or at night", "IRLSSG criterion 4"
    ),
    "symptoms.rls.not_explained_by_other_condition": Label(
        "Not explained by something else alone (cramps, muscle pain, venous problems, "
        "swelling, arthritis, an uncomfortable position)",
        "IRLSSG criterion 5",
    ),
    "symptoms.rls.days_per_week": Label("Days a week with restless legs"),
    "symptoms.rls.distress": Label("How much distress restless legs cause"),
    **{
        f"symptoms.rls.irls_items.{i}": Label(
            f"IRLS item {i}: {topic}",
            "Score 0-4 from the licensed IRLS form; its wording is not reproduced here.",
        )
        for i, topic in enumerate(IRLS_TOPICS, start=1)
    },
    "symptoms.rls.irls_total": Label(
        "IRLS total (0-40), if only the total is known",
        "Leave empty when the ten items are given: the total is then computed.",
    ),
    "symptoms.rls.alpha2delta_failed": Label(
        "A fair trial of gabapentin, gabapentin enacarbil or pregabalin failed or was not tolerated"
    ),
    "symptoms.rls.augmentation_symptoms": Label(
        "Augmentation on a dopaminergic drug, in your judgement",
        "Symptoms start earlier, spread or get more intense; or answer the features below.",
    ),
    "symptoms.rls.earlier_onset_hours": Label(
        f"{_DOPA}: how many hours earlier symptoms now start (0 if not earlier)"
    ),
    "symptoms.rls.spread_to_other_limbs": Label(f"{_DOPA}: symptoms have spread to arms or trunk"),
    "symptoms.rls.shorter_drug_effect": Label(f"{_DOPA}: each dose helps for a shorter time"),
    "symptoms.rls.more_intense": Label(f"{_DOPA}: symptoms are more intense than before it"),
    "symptoms.rls.dose_escalated": Label(
        f"{_DOPA}: the dose was raised, or extra doses taken, because symptoms came back"
    ),
    # spasticity and functional signs
    "symptoms.spasticity.velocity_dependent_tone": Label(
        "Stiffness that increases with the speed of passive movement (spasticity)"
    ),
    "symptoms.spasticity.distribution": Label("Spasticity is focal or generalised"),
    "symptoms.spasticity.causes_pain_hygiene_or_function_problem": Label(
        "Spasticity causes pain, problems with skin care or hygiene, or loss of function"
    ),
    "symptoms.spasticity.refractory_to_oral_agents": Label(
        "Spasticity did not respond to oral medicines"
    ),
    "symptoms.spasticity.sustains_posture_or_function": Label(
        "The spasticity helps the patient stand, balance or keep function"
    ),
    "symptoms.spasticity.modified_ashworth": Label(
        "Modified Ashworth grade of the most affected muscle group"
    ),
    "symptoms.functional.positive_signs": Label(
        "Positive signs of a functional disorder (for example Hoover's sign)"
    ),
    "symptoms.functional.distractible_or_variable": Label(
        "Movements lessen with distraction or vary over time"
    ),
    "symptoms.functional.fixed_posture": Label("Fixed (functional) dystonic posture"),
    "symptoms.exertional_calf_pain_relieved_by_rest": Label(
        "Calf pain on walking that eases with rest (claudication)"
    ),
    "symptoms.presyncope_warning_symptoms": Label(
        "Light-headedness, warmth, nausea or dimming vision before fainting"
    ),
    "symptoms.carpopedal_spasm_or_perioral_paraesthesia": Label(
        "Spasm of the hands or feet, or tingling around the mouth"
    ),
    "symptoms.duration_weeks": Label("How long the current symptoms have lasted (weeks)"),
    # neurological findings
    "neuro.new_focal_deficit": Label(
        "New sudden weakness of face, arm or leg, or difficulty speaking"
    ),
    "neuro.upper_motor_neuron_signs": Label(
        "Upper motor neurone signs (brisk reflexes, clonus, up-going plantars)"
    ),
    "neuro.progressive_weakness_or_wasting": Label(
        "Weakness or muscle wasting that is getting worse"
    ),
    "neuro.fasciculations": Label("Visible muscle twitching (fasciculations)"),
    "neuro.bulbar_signs": Label("Speech or swallowing problems, or twitching of the tongue"),
    "neuro.exam_normal": Label("Neurological and vascular examination is normal"),
    # red flags
    "red_flags.unilateral_leg_swelling": Label("One leg is swollen"),
    "red_flags.calf_tenderness_or_warmth": Label("Calf is tender or warm"),
    "red_flags.pitting_oedema_one_leg": Label("Pitting oedema in one leg only"),
    "red_flags.persistent_unilateral_calf_pain": Label(
        "A constant ache in one calf between cramps, not only during them"
    ),
    "red_flags.recent_immobility_surgery_or_long_travel": Label(
        "Recently bedridden, operated on, in plaster, or after a long journey",
        "Bedridden 3 days or more, major surgery within 12 weeks, a leg in plaster, "
        "or a recent long journey.",
    ),
    "red_flags.active_cancer": Label(
        "Active cancer", "Under treatment, treated within 6 months, or palliative."
    ),
    "red_flags.previous_dvt": Label("Has had a deep vein thrombosis before"),
    "red_flags.pain_on_passive_stretch": Label("Pain when the muscle is stretched passively"),
    "red_flags.pain_out_of_proportion": Label("Pain out of proportion to the injury"),
    "red_flags.tense_compartment": Label("A muscle compartment feels tense or wooden"),
    "red_flags.recent_fracture_crush_or_tight_cast": Label(
        "Recent fracture, crush injury or a tight cast"
    ),
    "red_flags.dark_urine": Label("Dark (cola-coloured) urine"),
    "red_flags.myalgia_weakness_after_exertion_heat_or_crush": Label(
        "Muscle pain or weakness after hard exertion, heat or a crush injury"
    ),
    "red_flags.cold_pale_pulseless_limb": Label("A leg suddenly cold, pale and without a pulse"),
    "red_flags.paraesthesia_or_weakness_of_the_limb": Label(
        "Numbness, tingling or weakness of the affected leg"
    ),
    "red_flags.absent_or_reduced_foot_pulses": Label("Foot pulses absent or weak"),
    "red_flags.ischaemic_rest_pain": Label(
        "Foot pain at rest, often at night, eased by hanging the leg down"
    ),
    "red_flags.nonhealing_foot_wound_or_gangrene": Label(
        "A foot wound that will not heal, or gangrene"
    ),
    "red_flags.saddle_anaesthesia": Label("Numbness around the buttocks or genitals"),
    "red_flags.bladder_or_bowel_dysfunction": Label(
        "New problems passing or holding urine or stool"
    ),
    "red_flags.bilateral_leg_weakness": Label("Weakness of both legs"),
    "red_flags.chest_pain": Label("Chest pain"),
    "red_flags.rigidity_with_fever": Label(
        "Muscle rigidity with fever or unstable pulse or blood pressure"
    ),
    "red_flags.sustained_twisting_posture_after_drug": Label(
        "A sustained twisting posture after starting a medicine"
    ),
    "red_flags.bleeding_or_bruising": Label(
        "Unusual bruising, small red spots, nosebleeds or blood in the urine"
    ),
    "red_flags.laryngospasm_seizure_or_arrhythmia": Label(
        "Spasm of the throat, a seizure, or an irregular heartbeat"
    ),
    "red_flags.confusion_collapse_or_high_temperature_in_heat": Label(
        "Confusion, collapse or a seizure in heat or after exertion, or a temperature above 40 °C"
    ),
    "red_flags.trismus_or_generalised_spasms": Label(
        "Jaw spasm (lockjaw) or painful spasms all over the body"
    ),
    "red_flags.fever_confusion_or_rebound_spasticity": Label(
        "With an intrathecal baclofen pump: fever, confusion, or sudden return of spasticity "
        "or rigidity"
    ),
}

GROUP_TEXT: dict[str, str] = {
    "patient": "About the patient",
    "symptoms": "Symptoms",
    "neuro": "Neurological findings",
    "red_flags": "Red-flag screen",
    "symptoms.cramp": "The cramp or spasm",
    "symptoms.rls": "Restless legs: IRLSSG 2014 criteria, frequency and severity",
    "symptoms.spasticity": "Spasticity",
    "symptoms.functional": "Functional motor signs",
    "symptoms.rls.irls_items": "IRLS: the ten item scores (0-4 each; the wording is licensed)",
}

OPTION_TEXT: dict[str, dict[str, str]] = {
    "symptoms.cramp.timing": {
        "night_or_rest": "At night or at rest",
        "exertion": "During exertion",
        "daytime": "In the daytime",
        "continuous": "All the time",
        "variable": "It varies",
    },
    "symptoms.cramp.sites": {
        "calf": "Calf",
        "foot": "Foot",
        "thigh": "Thigh (front)",
        "hamstring": "Back of the thigh",
        "other": "Elsewhere",
    },
    "patient.dialysis": {
        "none": "Not on dialysis",
        "haemodialysis": "Haemodialysis",
        "peritoneal": "Peritoneal dialysis",
    },
    "patient.trimester": {"1": "First", "2": "Second", "3": "Third"},
    "symptoms.rls.distress": {
        "none": "None",
        "mild": "Mild",
        "moderate": "Moderate",
        "severe": "Severe",
    },
    "symptoms.spasticity.distribution": {"focal": "Focal", "generalised": "Generalised"},
}


def label_of(link: str) -> Label:
    """The label of an intake item (KeyError for an item without one: a bug the tests catch)."""
    return LABELS[link]


def option_text(link: str, code: str | int) -> str:
    """The words for one answer code of an item (the code itself when it is already words)."""
    return OPTION_TEXT.get(link, {}).get(str(code), str(code).replace("_", " "))
