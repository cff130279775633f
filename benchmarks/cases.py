"""Seeded generator of realistic, schema-valid case dicts for the legspasm benchmark.

Every draw comes from one ``random.Random(seed)``, so the same seed and knowledge base give the
same cases byte for byte. Drug names, brands and RxNorm codes come from ``kb.drugs``, condition
ids and codes from ``kb.concepts`` and lab ids, LOINC codes, canonical units and plausibility
ranges from ``kb.labs``; every date is on or before ``as_of``. The mix covers idiopathic
nocturnal cramps, RLS, spasticity, cirrhosis, dialysis, pregnancy, musculoskeletal spasm,
exertional cramps, functional disorders, presyncope, tetany and red-flag presentations, plus a
red-flag overlay on a fraction of every presentation.

Usage::

    from cases import generate_cases
    dicts = generate_cases(load_knowledge(), 10_000, seed=20261121)

``python benchmarks/cases.py --cases 3`` prints a few cases as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from legspasm import Knowledge
from legspasm.case import RedFlagFeatures

__all__ = ["AS_OF", "PRESENTATIONS", "SEED", "CaseGenerator", "generate_cases"]

AS_OF = dt.date(2026, 11, 21)
SEED = 20261121

CaseDict = dict[str, Any]

# Presentation -> relative weight. "sparse" is a first-contact case with little recorded.
PRESENTATIONS: dict[str, int] = {
    "nocturnal_cramps": 22,
    "rls": 16,
    "spasticity": 9,
    "cirrhosis": 8,
    "dialysis": 8,
    "pregnancy": 8,
    "msk_spasm": 6,
    "exertional": 5,
    "functional": 3,
    "presyncope": 3,
    "tetany": 3,
    "red_flag": 6,
    "sparse": 3,
}
RED_FLAG_OVERLAY = 0.12  # chance that any presentation also carries red-flag features

_SYSTEM_URI = {
    "snomed": "http://snomed.info/sct",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "loinc": "http://loinc.org",
}

# Medicines that are not in the knowledge base (they exercise the "unmapped" path).
_UNMAPPED_MEDS = (
    "lisinopril 10 mg tablet",
    "amlodipine 5 mg",
    "metformin 500 mg",
    "omeprazole 20 mg capsule",
    "levothyroxine 75 mcg",
    "apixaban 5 mg",
    "paracetamol 1 g",
    "tamsulosin 0.4 mg",
    "alendronate 70 mg weekly",
    "insulin glargine",
)
# Codes that are not in any knowledge-base value set.
_UNMAPPED_CODES = (
    ("http://hl7.org/fhir/sid/icd-10-cm", "I10", "Essential hypertension"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "E78.5", "Hyperlipidaemia"),
    ("http://snomed.info/sct", "35489007", "Depressive disorder"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "M17.0", "Bilateral primary osteoarthritis of knee"),
)

# Typical single doses in mg for drugs whose regimens do not give one; others fall back to the
# regimen start dose or a generic ladder.
_TYPICAL_MG: dict[str, Sequence[float]] = {
    "quinine": (200, 300, 324),
    "gabapentin": (100, 300, 600, 900),
    "pregabalin": (25, 50, 75, 150, 300),
    "pramipexole": (0.125, 0.25, 0.5),
    "ropinirole": (0.25, 0.5, 1, 2, 4),
    "rotigotine": (1, 2, 3),
    "levodopa": (100, 200),
    "tizanidine": (2, 4, 8),
    "baclofen": (5, 10, 20),
    "dantrolene": (25, 50, 100),
    "diazepam": (2, 5, 10),
    "clonazepam": (0.5, 1),
    "lorazepam": (0.5, 1, 2),
    "oxycodone": (5, 10, 20),
    "tramadol": (50, 100),
    "sertraline": (50, 100),
    "amitriptyline": (10, 25, 50),
    "furosemide": (20, 40, 80),
    "spironolactone": (25, 50, 100),
    "hydrochlorothiazide": (12.5, 25),
    "atorvastatin": (10, 20, 40, 80),
    "simvastatin": (20, 40),
    "ferrous_sulfate": (325,),
    "cyclobenzaprine": (5, 10),
}
_GENERIC_MG = (5.0, 10.0, 20.0, 25.0, 50.0, 100.0, 200.0)

# Drugs typical of each presentation (must be knowledge-base ids; filtered against the KB).
_PRESENTATION_DRUGS: dict[str, Sequence[str]] = {
    "nocturnal_cramps": (
        "quinine",
        "cyclobenzaprine",
        "hydrochlorothiazide",
        "furosemide",
        "atorvastatin",
        "simvastatin",
        "salmeterol",
        "raloxifene",
        "conjugated_estrogens",
        "naproxen",
    ),
    "rls": (
        "pramipexole",
        "ropinirole",
        "rotigotine",
        "levodopa",
        "gabapentin",
        "gabapentin_enacarbil",
        "pregabalin",
        "ferrous_sulfate",
        "sertraline",
        "mirtazapine",
        "diphenhydramine",
        "metoclopramide",
        "oxycodone",
        "clonazepam",
    ),
    "spasticity": (
        "baclofen",
        "tizanidine",
        "dantrolene",
        "botulinum_toxin_a",
        "diazepam",
        "ciprofloxacin",
        "fluvoxamine",
        "famotidine",
    ),
    "cirrhosis": ("spironolactone", "furosemide", "baclofen", "quinine", "lorazepam"),
    "dialysis": ("gabapentin", "pregabalin", "baclofen", "iron_sucrose", "quinine"),
    "pregnancy": ("ferrous_sulfate", "quinine", "diphenhydramine", "metoclopramide"),
    "msk_spasm": (
        "cyclobenzaprine",
        "methocarbamol",
        "carisoprodol",
        "tizanidine",
        "diazepam",
        "tramadol",
        "naproxen",
    ),
    "exertional": ("atorvastatin", "hydrochlorothiazide", "salmeterol"),
    "functional": ("sertraline", "amitriptyline"),
    "presyncope": ("furosemide", "hydrochlorothiazide", "tramadol"),
    "tetany": ("furosemide", "hydrochlorothiazide"),
    "red_flag": ("quinine", "haloperidol", "metoclopramide", "simvastatin", "prochlorperazine"),
    "sparse": (),
}

_COMORBIDITIES = (
    "diabetes",
    "ckd",
    "heart_failure",
    "hypothyroidism",
    "hyperthyroidism",
    "peripheral_arterial_disease",
    "obstructive_sleep_apnoea_untreated",
    "respiratory_disease",
    "glaucoma_or_urinary_retention",
    "recent_myocardial_infarction",
    "arrhythmia_or_conduction_disorder",
    "uncontrolled_hypertension",
    "parkinson_disease",
    "iron_deficiency",
    "hepatic_impairment_mild",
    "active_liver_disease",
)

_RED_FLAG_FIELDS = tuple(RedFlagFeatures.model_fields)
# Red-flag syndromes: (case section, field) pairs that present together.
_RED_FLAG_SYNDROMES: tuple[tuple[tuple[str, str], ...], ...] = (
    (("red_flags", "unilateral_leg_swelling"), ("red_flags", "calf_tenderness_or_warmth")),
    (("red_flags", "pain_on_passive_stretch"), ("red_flags", "tense_compartment")),
    (("red_flags", "pain_out_of_proportion"), ("red_flags", "recent_fracture_crush_or_tight_cast")),
    (("red_flags", "dark_urine"), ("red_flags", "myalgia_weakness_after_exertion_heat_or_crush")),
    (("red_flags", "cold_pale_pulseless_limb"),),
    (("red_flags", "saddle_anaesthesia"), ("red_flags", "bladder_or_bowel_dysfunction")),
    (("red_flags", "bilateral_leg_weakness"),),
    (("red_flags", "chest_pain"),),
    (("red_flags", "rigidity_with_fever"),),
    (("red_flags", "sustained_twisting_posture_after_drug"),),
    (("red_flags", "bleeding_or_bruising"),),
    (("red_flags", "laryngospasm_seizure_or_arrhythmia"),),
    (("neuro", "new_focal_deficit"),),
    (("neuro", "progressive_weakness_or_wasting"), ("neuro", "fasciculations")),
)

# Lab value models in the canonical unit: name -> (log-normal median, sigma, decimals).
_LAB_MODEL: dict[str, tuple[float, float, int]] = {
    "ferritin": (90.0, 0.8, 0),
    "iron": (80.0, 0.35, 0),
    "tibc": (320.0, 0.15, 0),
    "tsat": (25.0, 0.4, 0),
    "creatinine": (0.95, 0.25, 2),
    "egfr": (75.0, 0.3, 0),
    "potassium": (4.2, 0.1, 1),
    "sodium": (139.0, 0.025, 0),
    "magnesium": (2.0, 0.15, 1),
    "calcium": (9.4, 0.07, 1),
    "ck": (120.0, 0.5, 0),
    "tsh": (1.8, 0.6, 2),
    "albumin": (4.0, 0.12, 1),
}


class CaseGenerator:
    """Draws one case dict at a time from a seeded RNG and the knowledge base."""

    def __init__(self, kb: Knowledge, seed: int = SEED, as_of: dt.date = AS_OF) -> None:
        self.kb = kb
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.drug_ids = sorted(kb.drugs)
        self.concept_ids = sorted(kb.concepts)
        self.lab_ids = sorted(kb.labs)
        self.comorbidities = [c for c in _COMORBIDITIES if c in kb.concepts]
        self.presentation_drugs = {
            k: [d for d in v if d in kb.drugs] for k, v in _PRESENTATION_DRUGS.items()
        }
        names = list(PRESENTATIONS)
        self._presentations = names
        self._weights = [PRESENTATIONS[n] for n in names]
        self._builders: dict[str, Callable[[CaseDict], None]] = {
            "nocturnal_cramps": self._nocturnal_cramps,
            "rls": self._rls,
            "spasticity": self._spasticity,
            "cirrhosis": self._cirrhosis,
            "dialysis": self._dialysis,
            "pregnancy": self._pregnancy,
            "msk_spasm": self._msk_spasm,
            "exertional": self._exertional,
            "functional": self._functional,
            "presyncope": self._presyncope,
            "tetany": self._tetany,
            "red_flag": self._red_flag_presentation,
            "sparse": self._sparse,
        }

    # --- small helpers ---------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def tri(self, p_true: float, p_false: float) -> bool | None:
        """True with p_true, False with p_false, unknown (None) otherwise."""
        x = self.rng.random()
        if x < p_true:
            return True
        if x < p_true + p_false:
            return False
        return None

    @staticmethod
    def put(section: dict[str, Any], key: str, value: Any) -> None:
        """Set a field only when known: absent means unknown in the case schema."""
        if value is not None:
            section[key] = value

    def days_ago(self, lo: int, hi: int) -> dt.date:
        return self.as_of - dt.timedelta(days=self.rng.randint(lo, hi))

    @staticmethod
    def section(case: CaseDict, *path: str) -> dict[str, Any]:
        node = case
        for key in path:
            node = node.setdefault(key, {})
        return node

    # --- the case --------------------------------------------------------------------------

    def case(self, index: int) -> CaseDict:
        kind = self.rng.choices(self._presentations, self._weights)[0]
        case: CaseDict = {"id": f"bench-{index:05d}-{kind}"}
        self._builders[kind](case)
        if kind not in ("red_flag", "sparse") and self.chance(RED_FLAG_OVERLAY):
            self._red_flags(case, n=self.rng.randint(1, 2))
        elif kind != "sparse" and self.chance(0.35):
            self._screen_negative(case)
        self._background(case, kind)
        return case

    # Patient -------------------------------------------------------------------------------

    def _patient(
        self,
        case: CaseDict,
        age: tuple[int, int],
        sex: str | None = None,
        dialysis: str | None = None,
    ) -> dict[str, Any]:
        p = self.section(case, "patient")
        years = self.rng.randint(*age)
        if self.chance(0.35):
            born = self.as_of.replace(year=self.as_of.year - years - 1) + dt.timedelta(
                days=self.rng.randint(1, 364)
            )
            p["birth_date"] = born.isoformat()
        elif self.chance(0.9):
            p["age_years"] = years
        if sex is None and self.chance(0.95):
            sex = self.rng.choice(("female", "male"))
        self.put(p, "sex", sex)
        if self.chance(0.85):
            kg = self.rng.gauss(74.0 if sex == "male" else 66.0, 13.0)
            kg = min(max(kg, 38.0), 180.0)
            if self.chance(0.1):
                p["weight"] = {"value": round(kg * 2.20462), "unit": "lb"}
            else:
                p["weight"] = {"value": round(kg, 1), "unit": "kg"}
        if dialysis is not None:
            p["dialysis"] = dialysis
        elif self.chance(0.5):
            p["dialysis"] = "none"
        self.put(p, "history_of_falls_or_fractures", self.tri(0.15 if years >= 65 else 0.03, 0.5))
        if sex == "female" and "pregnant" not in p and 16 <= years <= 48 and self.chance(0.5):
            p["pregnant"] = False
        if sex == "female" and self.chance(0.05) and 18 <= years <= 45:
            p["lactating"] = self.chance(0.5)
        return p

    # Presentations -------------------------------------------------------------------------

    def _cramp(self, case: CaseDict, timing: str | None, typical: float = 0.85) -> dict[str, Any]:
        c = self.section(case, "symptoms", "cramp")
        c["present"] = True
        self.put(c, "sudden_painful_contraction", self.tri(typical, 0.05))
        self.put(c, "palpable_hard_muscle", self.tri(typical * 0.8, 0.05))
        self.put(c, "timing", timing)
        if self.chance(0.8):
            c["episode_duration_minutes"] = round(
                self.rng.choice((0.5, 1, 2, 3, 5, 8, 10, 15, 30)) * self.rng.uniform(0.8, 1.2), 1
            )
        if self.chance(0.7):
            c["sites"] = self.rng.sample(
                ["calf", "foot", "thigh", "hamstring", "other"], k=self.rng.randint(1, 2)
            )
        self.put(c, "relieved_by_stretching", self.tri(typical * 0.9, 0.1))
        if self.chance(0.75):
            c["frequency_per_week"] = self.rng.choice((0.5, 1, 2, 3, 4, 5, 7, 10, 14))
        if self.chance(0.6):
            c["severity_0_10"] = self.rng.randint(2, 10)
        self.put(c, "disabling", self.tri(0.2, 0.4))
        self.put(c, "nondrug_care_tried", self.tri(0.35, 0.3))
        return c

    def _nocturnal_cramps(self, case: CaseDict) -> None:
        self._patient(case, (35, 92))
        self._cramp(case, "night_or_rest" if self.chance(0.85) else "variable")
        if self.chance(0.4):
            self.section(case, "symptoms", "rls")["urge_to_move"] = False
        self._conditions(case, ["sleep_related_leg_cramps"] if self.chance(0.25) else [])
        self._labs(case, ("creatinine", "potassium", "magnesium", "calcium", "sodium", "tsh"))

    def _rls(self, case: CaseDict) -> None:
        self._patient(case, (25, 90))
        self._rls_symptoms(case)
        if self.chance(0.2):
            self._cramp(case, "night_or_rest", typical=0.3)
        extra = ["restless_legs"] if self.chance(0.3) else []
        if self.chance(0.15):
            extra.append("iron_deficiency")
        self._conditions(case, extra)
        self._labs(case, ("ferritin", "tsat", "iron", "tibc", "creatinine", "tsh"), low_iron=True)

    def _rls_symptoms(self, case: CaseDict) -> None:
        r = self.section(case, "symptoms", "rls")
        typical = self.chance(0.8)
        for key in ("urge_to_move", "worse_at_rest", "relieved_by_movement", "worse_evening_night"):
            self.put(r, key, self.tri(0.95 if typical else 0.5, 0.03 if typical else 0.3))
        self.put(r, "not_explained_by_other_condition", self.tri(0.8, 0.1))
        if self.chance(0.7):
            r["days_per_week"] = self.rng.randint(1, 7)
        if self.chance(0.7):
            r["distress"] = self.rng.choice(("none", "mild", "moderate", "severe"))
        if self.chance(0.5):
            items = [self.rng.randint(0, 4) for _ in range(10)]
            r["irls_items"] = items
            if self.chance(0.3):
                r["irls_total"] = sum(items)
        elif self.chance(0.3):
            r["irls_total"] = self.rng.randint(5, 38)
        self.put(r, "alpha2delta_failed", self.tri(0.1, 0.3))
        self.put(r, "augmentation_symptoms", self.tri(0.08, 0.3))

    def _spasticity(self, case: CaseDict) -> None:
        self._patient(case, (30, 88))
        cause = self.rng.choice(("stroke", "stroke", "multiple_sclerosis", "spinal_cord_injury"))
        s = self.section(case, "symptoms", "spasticity")
        self.put(s, "velocity_dependent_tone", self.tri(0.85, 0.05))
        self.put(s, "distribution", self.rng.choice(("focal", "generalised", None)))
        self.put(s, "causes_pain_hygiene_or_function_problem", self.tri(0.7, 0.15))
        self.put(s, "refractory_to_oral_agents", self.tri(0.2, 0.4))
        self.put(self.section(case, "neuro"), "upper_motor_neuron_signs", self.tri(0.8, 0.05))
        if self.chance(0.3):
            self._cramp(case, self.rng.choice(("daytime", "continuous", "variable")), typical=0.4)
        extra = [cause] + (["spasticity"] if self.chance(0.5) else [])
        if cause == "stroke" and self.chance(0.2):
            extra.append("peripheral_arterial_disease")
        self._conditions(case, extra)
        self._labs(case, ("creatinine", "egfr", "potassium", "sodium"))

    def _cirrhosis(self, case: CaseDict) -> None:
        self._patient(case, (35, 85))
        self._cramp(case, self.rng.choice(("night_or_rest", "variable", "daytime", None)))
        extra = ["cirrhosis"]
        for c, p in (
            ("ascites", 0.45),
            ("hepatic_encephalopathy", 0.15),
            ("hepatic_impairment_moderate_severe", 0.35),
        ):
            if self.chance(p):
                extra.append(c)
        self._conditions(case, extra)
        self._labs(
            case, ("creatinine", "sodium", "potassium", "albumin", "magnesium"), cirrhosis=True
        )

    def _dialysis(self, case: CaseDict) -> None:
        mode = self.rng.choice(("haemodialysis", "haemodialysis", "haemodialysis", "peritoneal"))
        documented = self.chance(0.8)
        self._patient(case, (25, 90), dialysis=mode if documented else None)
        c = self._cramp(case, self.rng.choice(("variable", "night_or_rest", "daytime")))
        self.put(c, "during_dialysis", self.tri(0.6 if mode == "haemodialysis" else 0.1, 0.2))
        extra = ["esrd"] if self.chance(0.6) else []
        if not documented or self.chance(0.3):
            extra.append("dialysis_dependence")
        self._conditions(case, extra)
        self._labs(case, ("creatinine", "potassium", "calcium", "magnesium", "ferritin"), ckd=True)

    def _pregnancy(self, case: CaseDict) -> None:
        p = self._patient(case, (18, 44), sex="female")
        p["pregnant"] = True
        if self.chance(0.8):
            p["trimester"] = self.rng.choice((1, 2, 2, 3, 3, 3))
        p.pop("lactating", None)
        if self.chance(0.8):
            self._cramp(case, self.rng.choice(("night_or_rest", "night_or_rest", "variable")))
        else:
            self._rls_symptoms(case)  # restless legs is common in the third trimester
        self._conditions(case, ["pregnancy"] if self.chance(0.3) else [])
        self._labs(case, ("ferritin", "magnesium", "calcium", "potassium"), low_iron=True)

    def _msk_spasm(self, case: CaseDict) -> None:
        self._patient(case, (18, 75))
        c = self._cramp(case, self.rng.choice(("daytime", "continuous", None)), typical=0.4)
        c["after_strain_or_injury"] = True
        self.put(self.section(case, "neuro"), "upper_motor_neuron_signs", self.tri(0.02, 0.7))
        self._conditions(case, [])
        self._labs(case, ("creatinine",), p_each=0.2)

    def _exertional(self, case: CaseDict) -> None:
        self._patient(case, (16, 70))
        c = self._cramp(case, "exertion" if self.chance(0.7) else None, typical=0.9)
        self.put(c, "heat_or_exercise", self.tri(0.8, 0.05))
        self.put(
            self.section(case, "symptoms"),
            "exertional_calf_pain_relieved_by_rest",
            self.tri(0.08, 0.7),
        )
        self._conditions(case, ["peripheral_arterial_disease"] if self.chance(0.05) else [])
        self._labs(case, ("ck", "sodium", "potassium", "creatinine"), p_each=0.4)

    def _functional(self, case: CaseDict) -> None:
        self._patient(case, (16, 65))
        f = self.section(case, "symptoms", "functional")
        self.put(f, "positive_signs", self.tri(0.8, 0.1))
        self.put(f, "distractible_or_variable", self.tri(0.7, 0.1))
        self.put(f, "fixed_posture", self.tri(0.3, 0.4))
        if self.chance(0.5):
            self._cramp(case, "variable", typical=0.3)
        extra = ["functional_motor_disorder"] if self.chance(0.3) else []
        if self.chance(0.15):
            extra.append("dystonia")
        self._conditions(case, extra)
        self._labs(case, ("ck", "tsh"), p_each=0.3)

    def _presyncope(self, case: CaseDict) -> None:
        self._patient(case, (16, 90))
        self.section(case, "symptoms")["presyncope_warning_symptoms"] = True
        if self.chance(0.5):
            self._cramp(case, self.rng.choice(("daytime", "variable")), typical=0.2)
        self._conditions(case, ["syncope"] if self.chance(0.3) else [])
        self._labs(case, ("sodium", "potassium"), p_each=0.5)

    def _tetany(self, case: CaseDict) -> None:
        self._patient(case, (18, 90))
        self.section(case, "symptoms")["carpopedal_spasm_or_perioral_paraesthesia"] = self.chance(
            0.85
        )
        self._cramp(case, self.rng.choice(("daytime", "variable", None)), typical=0.5)
        low = self.rng.choice(("hypocalcaemia", "hypomagnesaemia", "hypokalaemia", "tetany"))
        self._conditions(case, [low] if self.chance(0.5) else [])
        self._labs(case, ("calcium", "magnesium", "potassium", "albumin"), electrolytes_low=True)

    def _red_flag_presentation(self, case: CaseDict) -> None:
        self._patient(case, (18, 95))
        if self.chance(0.7):
            self._cramp(case, self.rng.choice(("night_or_rest", "continuous", "variable", None)))
        self._red_flags(case, n=self.rng.randint(1, 3))
        extra = []
        for concept, p in (("dvt", 0.05), ("rhabdomyolysis", 0.05), ("compartment_syndrome", 0.03)):
            if self.chance(p):
                extra.append(concept)
        self._conditions(case, extra)
        self._labs(case, ("ck", "creatinine", "potassium"), p_each=0.5, rhabdo=True)

    def _sparse(self, case: CaseDict) -> None:
        if self.chance(0.6):
            self._patient(case, (18, 90))
        if self.chance(0.7):
            self.section(case, "symptoms", "cramp")["present"] = True
        if self.chance(0.3):
            self.section(case, "symptoms", "rls")["urge_to_move"] = self.chance(0.5)

    # Red flags -----------------------------------------------------------------------------

    def _red_flags(self, case: CaseDict, n: int) -> None:
        for syndrome in self.rng.sample(_RED_FLAG_SYNDROMES, k=n):
            for i, (where, field) in enumerate(syndrome):
                if i == 0 or self.chance(0.6):
                    self.section(case, where)[field] = True
        for field in _RED_FLAG_FIELDS:
            rf = self.section(case, "red_flags")
            if field not in rf and self.chance(0.3):
                rf[field] = False

    def _screen_negative(self, case: CaseDict) -> None:
        """A documented negative red-flag screen, as in a thorough first consultation."""
        rf = self.section(case, "red_flags")
        for field in _RED_FLAG_FIELDS:
            if field not in rf and self.chance(0.9):
                rf[field] = False
        neuro = self.section(case, "neuro")
        for field in (
            "new_focal_deficit",
            "progressive_weakness_or_wasting",
            "fasciculations",
        ):
            neuro.setdefault(field, False)
        if "upper_motor_neuron_signs" not in neuro and self.chance(0.7):
            neuro["upper_motor_neuron_signs"] = False
        neuro.setdefault("exam_normal", not neuro.get("upper_motor_neuron_signs", False))
        s = self.section(case, "symptoms")
        s.setdefault("exertional_calf_pain_relieved_by_rest", False)
        s.setdefault("presyncope_warning_symptoms", False)
        s.setdefault("carpopedal_spasm_or_perioral_paraesthesia", False)

    # Conditions ----------------------------------------------------------------------------

    def _condition_entry(self, concept: str) -> dict[str, Any]:
        entry: dict[str, Any]
        codes = [c for c in self.kb.concepts[concept].codes if c.system in ("snomed", "icd10cm")]
        if codes and self.chance(0.2):
            code = self.rng.choice(codes)
            coding: dict[str, Any] = {"system": _SYSTEM_URI[code.system], "code": code.code}
            if code.display:
                coding["display"] = code.display
            entry = {"code": coding}
            if self.chance(0.3):
                entry["concept"] = concept
        else:
            entry = {"concept": concept}
        if self.chance(0.4):
            entry["onset"] = self.days_ago(30, 365 * 15).isoformat()
        return entry

    def _conditions(self, case: CaseDict, primary: list[str]) -> None:
        chosen = [c for c in primary if c in self.kb.concepts]
        for _ in range(self.rng.choice((0, 0, 1, 1, 2, 3))):
            c = self.rng.choice(self.comorbidities)
            if c not in chosen:
                chosen.append(c)
        female = case.get("patient", {}).get("sex") == "female"
        entries = []
        for c in chosen:
            if c == "pregnancy" and not female:
                continue
            entry = self._condition_entry(c)
            if c not in primary and self.chance(0.1):
                entry["status"] = self.rng.choice(("resolved", "inactive"))
            entries.append(entry)
        if self.chance(0.05):
            system, code, display = self.rng.choice(_UNMAPPED_CODES)
            entries.append({"code": {"system": system, "code": code, "display": display}})
        if entries:
            case["conditions"] = entries
        if self.chance(0.2):
            pool = [
                c
                for c in ("heart_failure", "dvt", "peripheral_arterial_disease", "hyperthyroidism")
                if c not in chosen and c in self.kb.concepts
            ]
            if pool:
                case["conditions_ruled_out"] = self.rng.sample(
                    pool, k=self.rng.randint(1, len(pool))
                )

    # Medications ---------------------------------------------------------------------------

    def _dose_mg(self, drug_id: str) -> float:
        if drug_id in _TYPICAL_MG:
            return float(self.rng.choice(_TYPICAL_MG[drug_id]))
        for reg in self.kb.drugs[drug_id].regimens:
            if reg.start is not None and reg.start.unit == "mg":
                return reg.start.value * self.rng.choice((1.0, 1.0, 2.0))
        return self.rng.choice(_GENERIC_MG)

    def _medication(self, drug_id: str) -> dict[str, Any]:
        drug = self.kb.drugs[drug_id]
        rx = [c.code for c in drug.codes if c.system == "rxnorm"]
        m: dict[str, Any] = {}
        style = self.rng.random()
        if rx and style < 0.1:
            m["rxnorm"] = self.rng.choice(rx)
        elif drug.brands and style < 0.35:
            m["name"] = self.rng.choice(drug.brands)
        else:
            name = drug.name.split(" (")[0]
            m["name"] = name.capitalize() if self.chance(0.3) else name
        if rx and "name" in m and self.chance(0.1):
            m["rxnorm"] = self.rng.choice(rx)
        if self.chance(0.8):
            mg = self._dose_mg(drug_id)
            if "name" in m and self.chance(0.3):
                m["name"] = f"{m['name']} {mg:g} mg tablet"
            if mg < 1 and self.chance(0.5):
                m["dose"] = {"value": round(mg * 1000), "unit": "mcg"}
            else:
                m["dose"] = {"value": mg, "unit": "mg"}
            if self.chance(0.85):
                m["times_per_day"] = self.rng.choice((1, 1, 1, 2, 2, 3, 4))
        if self.chance(0.75):
            start = self.days_ago(1, 365 * 8)
            m["start_date"] = start.isoformat()
            if self.chance(0.12):
                span = (self.as_of - start).days
                m["end_date"] = (start + dt.timedelta(days=self.rng.randint(0, span))).isoformat()
                m["status"] = "stopped"
        elif self.chance(0.05):
            m["status"] = "stopped"
        return m

    def _medications(self, case: CaseDict, kind: str) -> None:
        meds = []
        typical = self.presentation_drugs.get(kind, [])
        n_typical = self.rng.choice((0, 1, 1, 2, 2, 3)) if typical else 0
        for d in self.rng.sample(typical, k=min(n_typical, len(typical))):
            meds.append(self._medication(d))
        for _ in range(self.rng.choice((0, 0, 1, 1, 2, 3, 4))):
            meds.append(self._medication(self.rng.choice(self.drug_ids)))
        for _ in range(self.rng.choice((0, 0, 0, 1, 2))):
            m: dict[str, Any] = {"name": self.rng.choice(_UNMAPPED_MEDS)}
            if self.chance(0.5):
                m["start_date"] = self.days_ago(30, 365 * 10).isoformat()
            meds.append(m)
        self.rng.shuffle(meds)
        if meds:
            case["medications"] = meds

    # Labs ----------------------------------------------------------------------------------

    def _lab_value(self, lab_id: str, flags: dict[str, bool]) -> float:
        spec = self.kb.labs[lab_id]
        median, sigma, decimals = _LAB_MODEL.get(lab_id, (1.0, 0.3, 2))
        if flags.get("low_iron") and lab_id in ("ferritin", "tsat", "iron"):
            median *= 0.45
        if (flags.get("ckd") or flags.get("cirrhosis_aki")) and lab_id == "creatinine":
            median, sigma = (6.5, 0.35) if flags.get("ckd") else (1.6, 0.4)
        if flags.get("ckd") and lab_id == "egfr":
            median = 9.0
        if flags.get("cirrhosis") and lab_id in ("sodium", "albumin"):
            median *= 0.96 if lab_id == "sodium" else 0.75
        if flags.get("electrolytes_low") and lab_id in ("calcium", "magnesium", "potassium"):
            median *= 0.75
        if flags.get("rhabdo") and lab_id == "ck" and self.chance(0.4):
            median, sigma = 15000.0, 1.0
        value = median * math.exp(self.rng.gauss(0.0, sigma))
        lo, hi = spec.plausible
        value = min(max(value, lo), hi)
        value = round(value, decimals)
        return min(max(value, lo), hi)

    def _labs(
        self,
        case: CaseDict,
        relevant: Sequence[str],
        p_each: float = 0.65,
        **flags: bool,
    ) -> None:
        if flags.get("cirrhosis") and self.chance(0.25):
            flags["cirrhosis_aki"] = True
        chosen = [lab for lab in relevant if lab in self.kb.labs and self.chance(p_each)]
        for lab in self.lab_ids:
            if lab not in chosen and self.chance(0.04):
                chosen.append(lab)
        labs = []
        for lab_id in chosen:
            spec = self.kb.labs[lab_id]
            for _ in range(1 if self.chance(0.8) else self.rng.randint(2, 3)):
                entry: dict[str, Any] = {}
                if self.chance(0.15):
                    entry["loinc"] = self.rng.choice(spec.codes).code
                else:
                    entry["name"] = lab_id
                entry["value"] = self._lab_value(lab_id, flags)
                entry["unit"] = spec.unit
                if self.chance(0.92):
                    # mostly recent, sometimes past the staleness window
                    limit = spec.max_age_days
                    hi = limit if self.chance(0.85) else limit * 3
                    entry["date"] = self.days_ago(0, hi).isoformat()
                labs.append(entry)
        if labs:
            case["labs"] = labs

    # Background ----------------------------------------------------------------------------

    def _background(self, case: CaseDict, kind: str) -> None:
        self._medications(case, kind)
        if self.chance(0.1):
            case["allergies"] = [
                {"substance": self.rng.choice(("penicillin", "sulfonamides", "codeine"))}
            ]


def generate_cases(
    kb: Knowledge, n: int, seed: int = SEED, as_of: dt.date = AS_OF
) -> list[CaseDict]:
    """``n`` reproducible case dicts (validate with ``legspasm.parse_case``)."""
    gen = CaseGenerator(kb, seed, as_of)
    return [gen.case(i) for i in range(n)]


def main() -> None:
    from legspasm import load_knowledge, parse_case

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    kb = load_knowledge()
    for case in generate_cases(kb, args.cases, args.seed):
        parse_case(case)
        print(json.dumps(case, indent=2))


if __name__ == "__main__":
    main()
