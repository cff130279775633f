"""A synthetic FHIR Bulk Data export for screening tests and benchmarks: ``legspasm synth``.

Real exports hold almost none of this domain (leg cramps, RLS, post-stroke spasticity, cirrhosis,
dialysis), so ``synthesize`` writes a population that does: NDJSON files ``Patient.000.ndjson``,
``Condition.000.ndjson``, ``MedicationRequest.000.ndjson``, ``Observation.000.ndjson`` and
``AllergyIntolerance.000.ndjson`` (``.ndjson.gz`` with ``gzip=True``), a new file every
``lines_per_file`` lines (``.001``, ``.002``...).

Every clinical code written is read from the loaded knowledge base (verified codes only): a
Condition carries a concept's ICD-10-CM or SNOMED code, a MedicationRequest a drug's RxNorm
ingredient code (or, for a drug without a verified code, its name as ``text``, which the mapping
matches by name), an Observation a lab's or body weight's LOINC code. So ``to_case`` uses every
resource written here and lists none as unmapped. Status, category and similar elements use the
FHIR-defined code systems their elements require.

The rates in ``PREVALENCE`` and ``CONDITIONAL`` are illustrative, chosen so that a 2,000-patient
population holds every condition and every risky combination the guidelines warn about several
times (rare conditions such as ESRD and cirrhosis are deliberately enriched); they are not
epidemiological estimates.

Output depends only on the seed, the options and ``as_of`` (dates are relative to it), never on
the clock: the same call writes byte-identical files. Patient ``i`` is drawn from its own random
stream (seed and index), so a smaller population is a prefix of a larger one.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BufferedIOBase
from pathlib import Path
from typing import IO, Any

from ..errors import FhirError, InputError, KnowledgeError
from ..fhir.systems import BASE, LOINC, RXNORM, UCUM, system_url
from ..knowledge import Knowledge

__all__ = [
    "AS_OF",
    "CONDITIONAL",
    "PREVALENCE",
    "RESOURCE_TYPES",
    "SynthSummary",
    "synthesize",
]

AS_OF = dt.date(2026, 11, 21)
"""Default reference date: every date written is relative to it (not to today)."""

CLINICAL_TYPES = (
    "Patient",
    "Condition",
    "MedicationRequest",
    "Observation",
    "AllergyIntolerance",
)
RESOURCE_TYPES = (*CLINICAL_TYPES, "Encounter", "Organization", "Practitioner")
"""What an export holds: the clinical resources, the visits and who they belong to."""
LINES_PER_FILE = 100_000
CLINICS = 12
"""Clinics by default (each with 3 to 6 clinicians): patient i's clinic does not depend on the
population's size, so a smaller population stays a prefix of a larger one."""

# --- rates (illustrative, not epidemiological) ------------------------------------------------
# Tuples are (age 18-49, 50-64, 65 and over), as the probability an adult has it on the record.
PREVALENCE: dict[str, tuple[float, float, float]] = {
    "sleep_related_leg_cramps": (0.03, 0.06, 0.10),
    "cramp_or_spasm": (0.02, 0.03, 0.04),
    "restless_legs": (0.03, 0.04, 0.05),  # x1.3 in women, x0.8 in men
    "stroke": (0.005, 0.03, 0.08),
    "cirrhosis": (0.005, 0.015, 0.015),
    "ckd": (0.03, 0.08, 0.20),
    "esrd": (0.004, 0.012, 0.02),
    "heart_failure": (0.005, 0.02, 0.08),
    "parkinson_disease": (0.0005, 0.003, 0.015),
    "diabetes": (0.05, 0.14, 0.22),
    "hypothyroidism": (0.03, 0.06, 0.10),
    "arrhythmia_or_conduction_disorder": (0.005, 0.02, 0.09),
    "peripheral_arterial_disease": (0.005, 0.03, 0.08),
    "iron_deficiency": (0.03, 0.02, 0.03),
    # medicines, as the probability an adult has a request for one (any status)
    "statin": (0.08, 0.28, 0.45),
    "hydrochlorothiazide": (0.03, 0.10, 0.15),
    "antidepressant": (0.10, 0.10, 0.09),
    "gabapentin": (0.02, 0.05, 0.07),  # x1.5 with diabetes, x1.5 with CKD or ESRD
    "pregabalin": (0.01, 0.02, 0.02),
    "benzodiazepine": (0.04, 0.05, 0.06),
    "opioid": (0.04, 0.06, 0.06),
    "cyclobenzaprine": (0.02, 0.025, 0.04),
    "tizanidine": (0.015, 0.02, 0.015),
    "ciprofloxacin": (0.015, 0.015, 0.02),
    "antidopaminergic": (0.01, 0.01, 0.02),
    "antihistamine": (0.02, 0.02, 0.02),
    "allergy": (0.05, 0.06, 0.07),
}
CONDITIONAL: dict[str, float] = {
    "pregnant | woman 18-45": 0.06,
    "spasticity | stroke": 0.35,
    "ascites (coded K70.31) | cirrhosis": 0.30,
    "dialysis | ESRD": 0.80,
    "CKD stage 4 | CKD": 0.15,
    "RLS | pregnant": 0.15,
    "RLS | ESRD": 0.25,
    "cramp or spasm | cirrhosis, dialysis or pregnancy": 0.40,
    "statin | diabetes or stroke": 0.70,
    "furosemide | heart failure": 0.70,
    "furosemide | ascites": 0.80,
    "spironolactone | ascites": 0.70,
    "levodopa | Parkinson": 0.80,
    "dopamine agonist | RLS, not pregnant": 0.35,
    "started > 1 year ago | dopamine agonist in RLS": 0.80,
    "gabapentin | RLS": 0.20,
    "diazepam | stroke": 0.25,
    "opioid | benzodiazepine": 0.25,
    "quinine | cramps": 0.08,
    "baclofen | spasticity": 0.40,
    "tizanidine | spasticity": 0.30,
    "ciprofloxacin | tizanidine": 0.35,
    "body weight (last 300 days) | adult": 0.90,
    "creatinine (last 85 days) | adult": 0.85,
    "creatinine (last 85 days) | 65 or older, CKD or ESRD": 0.92,
    "ferritin (last 170 days) | RLS": 0.75,
    "ferritin < 75 | RLS or pregnant, measured": 0.45,
    "iron started after the result | ferritin < 75": 0.35,
}
"""Rates conditional on another attribute; also illustrative."""

_AGE_BANDS = (  # (low, high inclusive, share of the population)
    (0, 17, 0.18),
    (18, 44, 0.34),
    (45, 64, 0.26),
    (65, 74, 0.12),
    (75, 84, 0.07),
    (85, 99, 0.03),
)
# Preferred codes where a concept's value set mixes codes for different situations; a code not
# verified in the knowledge base is ignored, and all verified codes are used if none is left.
_PREFER: dict[str, tuple[str, ...]] = {
    "stroke_spastic": ("I69.351", "I69.398", "230690007"),
    "cirrhosis": ("K74.60", "K74.69", "K70.30", "19943007"),
    "cirrhosis_ascites": ("K70.31",),
    "parkinson_disease": ("G20.A1", "G20.A2", "G20.B1", "G20.B2", "49049000"),
    "esrd": ("N18.6", "46177005"),
    "ckd": ("N18.30", "N18.31", "N18.32", "N18.9", "433144002", "431857002"),
}
_FORMS = {"gabapentin": "oral capsule", "pregabalin": "oral capsule", "quinine": "oral capsule"}
_DEFAULT_FORM = "oral tablet"
# Display spellings (UCUM) of the knowledge base's canonical lab units.
_UCUM = {"percent": "%", "mL/min": "mL/min/{1.73_m2}", "ug/L": "ng/mL", "mU/L": "m[IU]/L"}
_FIRST = (
    *("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Robin", "Jamie", "Avery", "Riley"),
    *("Maria", "Anna", "Grace", "Ruth", "Helen", "Joan", "Rosa", "Mei", "Aisha", "Olga"),
    *("John", "Peter", "Omar", "Raj", "Luis", "Hans", "Quinn", "Harper", "Rowan", "Elliot"),
)
_FAMILY = (
    *("Synth", "Testwell", "Sample", "Fictus", "Mockley", "Placebo", "Dummer", "Proxy"),
    *("Vignette", "Example", "Modelo", "Surrogate", "Specimen", "Exemplar", "Prototype"),
)

_Rng = random.Random


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _member(key: str, value: Any) -> str:
    """One JSON object member, ``"key":value``, to splice into a resource line."""
    return _j({key: value})[1:-1]


def _status(element: str, system: str, code: str) -> str:
    return _member(element, {"coding": [{"system": system, "code": code}]})


_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
_COND_ACTIVE = ",".join(
    (
        _status("clinicalStatus", _TERMINOLOGY + "condition-clinical", "active"),
        _status("verificationStatus", _TERMINOLOGY + "condition-ver-status", "confirmed"),
        _member(
            "category",
            [
                {
                    "coding": [
                        {
                            "system": _TERMINOLOGY + "condition-category",
                            "code": "problem-list-item",
                            "display": "Problem List Item",
                        }
                    ]
                }
            ],
        ),
    )
)
_ALLERGY_ACTIVE = ",".join(
    (
        _status("clinicalStatus", _TERMINOLOGY + "allergyintolerance-clinical", "active"),
        _status(
            "verificationStatus", _TERMINOLOGY + "allergyintolerance-verification", "confirmed"
        ),
    )
)


def _category(code: str, display: str) -> str:
    system = _TERMINOLOGY + "observation-category"
    return _member("category", [{"coding": [{"system": system, "code": code, "display": display}]}])


_VITAL = _category("vital-signs", "Vital Signs")
_LAB = _category("laboratory", "Laboratory")
_SOCIAL = _category("social-history", "Social History")
_TEST_TAG = _member(
    "meta",
    {
        "tag": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                "code": "HTEST",
                "display": "test health data",
            }
        ]
    },
)


# --- vocabulary: every code comes from the knowledge base --------------------------------------
class _Vocab:
    """Pre-serialised CodeableConcepts for the concepts, drugs and labs the generator writes."""

    def __init__(self, kb: Knowledge) -> None:
        self.kb = kb
        self.conditions: dict[str, list[str]] = {}
        self.drugs: dict[tuple[str, float], str] = {}
        # lab id -> (code member, UCUM unit, the most days ago a result is still used)
        self.labs: dict[str, tuple[str, str, int]] = {}
        self.weight = self._observation_code("body_weight")
        self.weight_days = kb.record["body_weight"].max_age_days - 1
        preg = kb.record["pregnancy_status"]
        self.pregnancy = self._observation_code("pregnancy_status")
        self.pregnancy_days = preg.max_age_days - 1
        self.pregnant = self._answer(preg.positive, "pregnancy_status.positive")
        self.not_pregnant = self._answer(preg.negative, "pregnancy_status.negative")

    def _verified(self, concept: str) -> list[tuple[str, str, str | None]]:
        c = self.kb.concepts.get(concept)
        if c is None:
            raise KnowledgeError("concepts.yaml", concept, None, "synth needs this concept")
        codes: list[tuple[str, str, str | None]] = [
            (x.system, x.code, x.display) for x in c.codes if x.verified
        ]
        if not codes:
            raise KnowledgeError("concepts.yaml", concept, "codes", "synth needs a verified code")
        return codes

    def condition(self, key: str, rng: _Rng) -> str:
        """A ``"code":{...}`` member for a concept (``key`` may name a preferred subset)."""
        options = self.conditions.get(key)
        if options is None:
            concept = {"stroke_spastic": "stroke", "cirrhosis_ascites": "cirrhosis"}.get(key, key)
            codes = self._verified(concept)
            name = self.kb.concepts[concept].name
            preferred = [c for c in codes if c[1] in _PREFER.get(key, ())]
            options = [
                _member(
                    "code",
                    {
                        "coding": [
                            {"system": system_url(s), "code": code}
                            | ({"display": display} if display else {})
                        ],
                        "text": display or name,
                    },
                )
                for s, code, display in (preferred or codes)
            ]
            self.conditions[key] = options
        return options[int(rng.random() * len(options))]

    def drug(self, drug_id: str, strength: float) -> str:
        """A ``"medicationCodeableConcept":{...}`` member: RxNorm code when verified, else text."""
        key = (drug_id, strength)
        hit = self.drugs.get(key)
        if hit is not None:
            return hit
        drug = self.kb.drugs.get(drug_id)
        if drug is None:
            raise KnowledgeError("drugs.yaml", drug_id, None, "synth needs this drug")
        name = drug.name.split(" (")[0]
        text = f"{name} {strength:g} MG {_FORMS.get(drug_id, _DEFAULT_FORM)}"
        code = next((c for c in drug.codes if c.system == "rxnorm" and c.verified), None)
        cc: dict[str, Any] = {"text": text}
        if code is not None:
            coding = {"system": RXNORM, "code": code.code, "display": code.display or name}
            cc = {"coding": [coding], "text": text}
        hit = _member("medicationCodeableConcept", cc)
        self.drugs[key] = hit
        return hit

    def allergen(self, drug_id: str) -> str:
        """A ``"code":{...}`` member naming a drug (RxNorm when verified, else its name)."""
        drug = self.kb.drugs[drug_id]
        name = drug.name.split(" (")[0]
        code = next((c for c in drug.codes if c.system == "rxnorm" and c.verified), None)
        if code is None:
            return _member("code", {"text": name})
        coding = {"system": RXNORM, "code": code.code, "display": code.display or name}
        return _member("code", {"coding": [coding], "text": name})

    def lab(self, lab_id: str) -> tuple[str, str, int]:
        """(``"code":{...}`` member, UCUM unit, window in days): the first verified LOINC."""
        hit = self.labs.get(lab_id)
        if hit is None:
            lab = self.kb.labs.get(lab_id)
            code = (
                next((c for c in lab.codes if c.system == "loinc" and c.verified), None)
                if lab
                else None
            )
            if lab is None or code is None:
                raise KnowledgeError("labs.yaml", lab_id, "codes", "synth needs a verified LOINC")
            coding = {"system": LOINC, "code": code.code, "display": code.display or lab.name}
            hit = (
                _member("code", {"coding": [coding], "text": lab.name}),
                _UCUM.get(lab.unit, lab.unit),
                lab.max_age_days - 1,
            )
            self.labs[lab_id] = hit
        return hit

    def _observation_code(self, rid: str) -> str:
        rec = self.kb.record[rid]
        code = next((c for c in rec.codes if c.system == "loinc" and c.verified), None)
        if code is None:
            raise KnowledgeError("record.yaml", rid, "codes", "synth needs a verified LOINC")
        coding = {"system": LOINC, "code": code.code, "display": code.display or rec.name}
        return _member("code", {"coding": [coding], "text": rec.name})

    @staticmethod
    def _answer(codes: list[Any], where: str) -> str:
        code = next((c for c in codes if c.verified), None)
        if code is None:
            raise KnowledgeError("record.yaml", where, None, "synth needs a verified answer code")
        coding = {"system": system_url(code.system), "code": code.code}
        if code.display:
            coding["display"] = code.display
        return _member("valueCodeableConcept", {"coding": [coding], "text": code.display})


# --- output: NDJSON files, split and optionally gzipped ------------------------------------------
class _Sink:
    """One resource type's files: ``Type.000.ndjson``, a new file every ``per_file`` lines."""

    def __init__(self, folder: Path, rtype: str, gz: bool, per_file: int) -> None:
        self.folder, self.rtype, self.gz, self.per_file = folder, rtype, gz, per_file
        self.total = 0
        self.in_file = 0
        self.index = 0
        self.buf: list[str] = []
        self.raw: BufferedIOBase | None = None
        self.fh: BufferedIOBase | None = None
        self.files: list[Path] = []

    def add(self, line: str) -> None:
        self.buf.append(line)
        self.total += 1
        self.in_file += 1
        if self.in_file == self.per_file:
            self._flush()
            self._close_file()
        elif len(self.buf) >= 2048:
            self._flush()

    def _open(self) -> BufferedIOBase:
        if self.fh is None:
            name = f"{self.rtype}.{self.index:03d}.ndjson" + (".gz" if self.gz else "")
            path = self.folder / name
            self.files.append(path)
            raw: BufferedIOBase = path.open("wb")
            fh: BufferedIOBase = raw
            if self.gz:  # mtime 0 and no file name in the header: identical bytes every run
                fh = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=4, mtime=0)
            self.raw, self.fh = raw, fh
            return fh
        return self.fh

    def _flush(self) -> None:
        if self.buf:
            self._open().write(("\n".join(self.buf) + "\n").encode("utf-8"))
            self.buf.clear()

    def _close_file(self) -> None:
        if self.fh is not None:
            self.fh.close()
            if self.raw is not None and self.raw is not self.fh:
                self.raw.close()
            self.fh = self.raw = None
            self.index += 1
        self.in_file = 0

    def close(self) -> None:
        self._flush()
        if not self.files:  # every type has at least its .000 file, even when empty
            self._open()
        self._close_file()


# --- attribution: clinics, clinicians, visits ----------------------------------------------------
@dataclass(frozen=True)
class _Party:
    """An Organization or Practitioner: its reference member value and its name."""

    ref: str
    name: str

    def member(self, key: str) -> str:
        return _member(key, {"reference": self.ref, "display": self.name})


@dataclass(frozen=True)
class _Clinic:
    org: _Party
    clinicians: tuple[_Party, ...]


def _clinics(seed: int, count: int) -> tuple[list[_Clinic], list[str], list[str]]:
    """The clinics (each with its clinicians), and their Organization and Practitioner lines."""
    rng = random.Random(f"legspasm-synth:{seed}:clinics")
    clinics: list[_Clinic] = []
    orgs: list[str] = []
    people: list[str] = []
    named: set[str] = set()  # each clinician's name is theirs alone
    for i in range(count):
        oid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        place = _PLACES[i % len(_PLACES)] + (
            f" {i // len(_PLACES) + 1}" if i >= len(_PLACES) else ""
        )
        name = f"{place} {rng.choice(_PRACTICES)}"
        orgs.append(
            f'{{"resourceType":"Organization","id":"{oid}",{_TEST_TAG},'
            f'"identifier":[{{"system":"{BASE}/synthetic-organization","value":"{seed}-c{i}"}}],'
            f'"active":true,{_ORG_TYPE},"name":"{name}"}}'
        )
        clinicians = []
        for j in range(rng.randint(3, 6)):
            pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            given, family = rng.choice(_FIRST), rng.choice(_FAMILY)
            while f"Dr. {given} {family}" in named and len(named) < len(_FIRST) * len(_FAMILY):
                given, family = rng.choice(_FIRST), rng.choice(_FAMILY)
            named.add(f"Dr. {given} {family}")
            people.append(
                f'{{"resourceType":"Practitioner","id":"{pid}",{_TEST_TAG},'
                f'"identifier":[{{"system":"{BASE}/synthetic-practitioner",'
                f'"value":"{seed}-c{i}-{j}"}}],"active":true,'
                f'"name":[{{"family":"{family}","given":["{given}"],"prefix":["Dr."]}}]}}'
            )
            clinicians.append(_Party(f"Practitioner/{pid}", f"Dr. {given} {family}"))
        clinics.append(_Clinic(_Party(f"Organization/{oid}", name), tuple(clinicians)))
    return clinics, orgs, people


@dataclass
class _Care:
    """Where a patient is seen: their clinic and clinician, and the visits their orders come
    from (drawn from a stream of their own, so the clinical layer is the same with or without
    it). A patient from a source export keeps the requester its records name."""

    rng: _Rng
    clinics: list[_Clinic]
    home: int = 0
    gp: _Party | None = None
    requester: _Party | None = None  # a source patient's, when there are no clinics

    def visit(self) -> tuple[_Clinic, _Party] | None:
        """The clinic and clinician of a visit: the patient's own clinic mostly, their own
        clinician at half of those visits."""
        if not self.clinics:
            return None
        rng = self.rng
        clinic = self.clinics[self.home]
        if len(self.clinics) > 1 and rng.random() < 0.2:
            clinic = self.clinics[rng.randrange(len(self.clinics))]
        if clinic is self.clinics[self.home] and self.gp is not None and rng.random() < 0.5:
            return clinic, self.gp
        return clinic, clinic.clinicians[rng.randrange(len(clinic.clinicians))]


_PLACES = (
    *("Riverside", "Hillcrest", "Oakwood", "Lakeview", "Northgate", "Southbank", "Meadowbrook"),
    *("Harbour", "Elmwood", "Westfield", "Stonebridge", "Cedar Park", "Maple Grove", "Brookside"),
    *("Fairview", "Kingsway"),
)
_PRACTICES = ("Family Practice", "Medical Centre", "Health Centre", "Primary Care", "Clinic")
_ORG_TYPE = _member(
    "type",
    [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                    "code": "prov",
                    "display": "Healthcare Provider",
                }
            ]
        }
    ],
)
_AMBULATORY = _member(
    "class",
    {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "AMB",
        "display": "ambulatory",
    },
)
_MR = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "MR",
            "display": "Medical record number",
        }
    ]
}


# --- one patient ---------------------------------------------------------------------------------
@dataclass
class _Patient:
    """The state one patient's resources are written from."""

    pid: str
    rng: _Rng
    sex: str
    age: float
    care: _Care | None = None  # who the patient's orders come from (None: no requester)
    ref: str = ""
    taking: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.ref = _member("subject", {"reference": f"Patient/{self.pid}"})

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class _Generator:
    def __init__(
        self,
        kb: Knowledge,
        as_of: dt.date,
        sinks: dict[str, _Sink],
        seed: int,
        clinics: int = CLINICS,
        prevalence: float = 1.0,
    ) -> None:
        self.v = _Vocab(kb)
        self.as_of = as_of
        self.day0 = as_of.toordinal()
        self.sinks = sinks
        self.seed = seed
        self.prevalence = prevalence
        self.clinics, orgs, people = _clinics(seed, clinics)
        for line in orgs:
            sinks["Organization"].add(line)
        for line in people:
            sinks["Practitioner"].add(line)
        self.add_condition = sinks["Condition"].add
        self.add_med = sinks["MedicationRequest"].add
        self.add_obs = sinks["Observation"].add
        self.add_allergy = sinks["AllergyIntolerance"].add
        self.allergens = [
            d
            for d in (
                "codeine",
                "morphine",
                "tramadol",
                "oxycodone",
                "gabapentin",
                "ciprofloxacin",
                "metoclopramide",
                "prochlorperazine",
                "promethazine",
                "haloperidol",
                "cyclobenzaprine",
                "diazepam",
                "sertraline",
            )
            if d in kb.drugs
        ]
        self.v.drug("gabapentin", 300)  # fail early, naming the entry, if a drug is missing

    # -- helpers ---------------------------------------------------------------------------------
    def date(self, days_ago: int) -> str:
        return dt.date.fromordinal(self.day0 - days_ago).isoformat()

    def condition(self, p: _Patient, key: str, onset_days: tuple[int, int]) -> int:
        """An active, confirmed Condition; returns its onset in days before as_of."""
        days = p.rng.randint(*onset_days)
        days = max(min(days, int(p.age * 365.25) - 1), 0)  # no onset before birth
        onset = self.date(days)
        self.add_condition(
            f'{{"resourceType":"Condition","id":"{p.new_id()}",{_COND_ACTIVE},'
            f"{self.v.condition(key, p.rng)},{p.ref},"
            f'"onsetDateTime":"{onset}","recordedDate":"{onset}"}}'
        )
        return days

    def medication(
        self,
        p: _Patient,
        drug_id: str,
        dose: float,
        times: int,
        start_days: tuple[int, int],
        stop_p: float = 0.0,
    ) -> bool:
        """A MedicationRequest; True when it is active (not stopped)."""
        rng = p.rng
        days = rng.randint(*start_days)
        start = self.date(days)
        stopped = days > 30 and rng.random() < stop_p
        repeat = f'"frequency":{times},"period":1,"periodUnit":"d"'
        if stopped:
            end = self.date(rng.randint(1, days - 14))
            repeat = f'"boundsPeriod":{{"start":"{start}","end":"{end}"}},' + repeat
        else:
            p.taking.add(drug_id)
        text = _DOSE_TEXT.get(times, f"{times} times daily")
        mid = p.new_id()
        self.add_med(
            f'{{"resourceType":"MedicationRequest","id":"{mid}",'
            f'"status":"{"stopped" if stopped else "active"}","intent":"order",'
            f"{self.v.drug(drug_id, dose)},{p.ref},{self.ordered(p, days)}"
            f'"authoredOn":"{start}","dosageInstruction":[{{"text":"{dose:g} mg {text}",'
            f'"timing":{{"repeat":{{{repeat}}}}},"doseAndRate":[{{"doseQuantity":'
            f'{{"value":{dose:g},"unit":"mg","system":"{UCUM}","code":"mg"}}}}]}}]}}'
        )
        return not stopped

    def ordered(self, p: _Patient, days_ago: int) -> str:
        """The members naming who ordered a medicine: the visit it was ordered at (an Encounter,
        written here) and its clinician; a source patient's own requester; or nothing."""
        care = p.care
        if care is None:
            return ""
        seen = care.visit()
        if seen is None:
            return care.requester.member("requester") + "," if care.requester else ""
        clinic, clinician = seen
        eid = self.encounter(p, days_ago, clinic, clinician)
        return (
            _member("encounter", {"reference": f"Encounter/{eid}"})
            + ","
            + clinician.member("requester")
            + ","
        )

    def encounter(self, p: _Patient, days_ago: int, clinic: _Clinic, clinician: _Party) -> str:
        """A finished ambulatory visit of ``p`` on that day; returns its id."""
        assert p.care is not None
        eid = str(uuid.UUID(int=p.care.rng.getrandbits(128), version=4))
        day = self.date(days_ago)
        self.sinks["Encounter"].add(
            f'{{"resourceType":"Encounter","id":"{eid}","status":"finished",{_AMBULATORY},'
            f'{p.ref},"participant":[{{{clinician.member("individual")}}}],'
            f'"period":{{"start":"{day}T09:00:00Z","end":"{day}T09:20:00Z"}},'
            f"{clinic.org.member('serviceProvider')}}}"
        )
        return eid

    def observation(self, p: _Patient, category: str, code: str, value: str, days_ago: int) -> None:
        self.add_obs(
            f'{{"resourceType":"Observation","id":"{p.new_id()}","status":"final",'
            f"{category},{code},{p.ref},"
            f'"effectiveDateTime":"{self.date(days_ago)}T{p.rng.randint(7, 17):02d}:'
            f'{p.rng.randint(0, 59):02d}:00Z",{value}}}'
        )

    def _wdays(self, p: _Patient) -> int:
        return _d(p, min(300, self.v.weight_days))

    def lab(self, p: _Patient, lab_id: str, value: float, days_ago: int) -> None:
        code, unit, window = self.v.lab(lab_id)
        self.observation(p, _LAB, code, _quantity(value, unit), min(days_ago, window))

    # -- a whole patient ---------------------------------------------------------------------------
    def patient_resource(self, p: _Patient, index: int, birth: str) -> str:
        rng = p.rng
        given = _FIRST[int(rng.random() * len(_FIRST))]
        family = _FAMILY[int(rng.random() * len(_FAMILY))]
        care = ""
        if p.care is not None and p.care.clinics:
            home = p.care.clinics[p.care.home]
            care = f",{home.org.member('managingOrganization')}"
            if p.care.gp is not None:
                care += "," + _member(
                    "generalPractitioner", [{"reference": p.care.gp.ref, "display": p.care.gp.name}]
                )
        mrn = _j(
            {"type": _MR, "system": f"{BASE}/synthetic-patient", "value": f"{self.seed}-{index}"}
        )
        return (
            f'{{"resourceType":"Patient","id":"{p.pid}",{_TEST_TAG},"identifier":[{mrn}],'
            f'"name":[{{"use":"official","family":"{family}","given":["{given}"]}}],'
            f'"gender":"{p.sex}","birthDate":"{birth}"{care}}}'
        )

    def care(self, index: int) -> _Care:
        """Patient ``index``'s clinic and clinician, from a stream of their own."""
        rng = random.Random(f"legspasm-synth:{self.seed}:{index}:care")
        care = _Care(rng, self.clinics)
        if self.clinics:
            care.home = rng.randrange(len(self.clinics))
            clinicians = self.clinics[care.home].clinicians
            care.gp = clinicians[rng.randrange(len(clinicians))] if rng.random() < 0.9 else None
        return care

    def generated(self, index: int) -> None:
        rng = random.Random(f"legspasm-synth:{self.seed}:{index}")
        pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        sex = "female" if rng.random() < 0.51 else "male"
        r = rng.random()
        low, high = _AGE_BANDS[-1][:2]
        for band_low, band_high, share in _AGE_BANDS:
            if r < share:
                low, high = band_low, band_high
                break
            r -= share
        age_days = rng.randint(int(low * 365.25) + 1, int((high + 1) * 365.25) - 1)
        birth = self.date(age_days)
        care = self.care(index)
        p = _Patient(pid, rng, sex, age_days / 365.25, care)
        self.sinks["Patient"].add(self.patient_resource(p, index, birth))
        if self.prevalence >= 1.0 or care.rng.random() < self.prevalence:
            self.clinical(p)
        else:
            self.visits(p)

    def visits(self, p: _Patient) -> None:
        """A patient with nothing the rules read: none to three visits in the last two years."""
        care = p.care
        assert care is not None
        for _ in range(care.rng.randint(0, 3)):
            seen = care.visit()
            if seen is not None:
                self.encounter(p, care.rng.randint(0, min(730, int(p.age * 365.25))), *seen)

    def clinical(self, p: _Patient) -> None:
        """Conditions, medicines, observations and allergies for one patient."""
        if p.age < 18:
            self.child(p)
        else:
            self.adult(p)

    def child(self, p: _Patient) -> None:
        if p.age >= 1 and p.chance(0.6):
            w = _child_weight(p.age) * p.rng.uniform(0.85, 1.2)
            self.observation(p, _VITAL, self.v.weight, _quantity(round(w, 1), "kg"), self._wdays(p))
        if p.age >= 8 and p.chance(0.01):
            self.condition(p, "cramp_or_spasm", (20, 700))

    def adult(self, p: _Patient) -> None:
        rng, age, female = p.rng, p.age, p.sex == "female"
        band = 0 if age < 50 else 1 if age < 65 else 2
        C = CONDITIONAL

        def rate(key: str) -> float:
            return PREVALENCE[key][band]

        pregnant = female and age < 46 and p.chance(C["pregnant | woman 18-45"])
        stroke = p.chance(rate("stroke"))
        spastic = stroke and p.chance(C["spasticity | stroke"])
        cirrhosis = p.chance(rate("cirrhosis")) and age >= 25
        ascites = cirrhosis and p.chance(C["ascites (coded K70.31) | cirrhosis"])
        esrd = not pregnant and p.chance(rate("esrd"))
        dialysis = esrd and p.chance(C["dialysis | ESRD"])
        ckd = not esrd and p.chance(rate("ckd"))
        ckd_stage4 = ckd and p.chance(C["CKD stage 4 | CKD"])
        hf = p.chance(rate("heart_failure"))
        parkinson = age >= 40 and p.chance(rate("parkinson_disease"))
        rls = p.chance(rate("restless_legs") * (1.3 if female else 0.8))
        rls = rls or (pregnant and p.chance(C["RLS | pregnant"]))
        rls = rls or (esrd and p.chance(C["RLS | ESRD"]))
        night_cramps = not pregnant and p.chance(rate("sleep_related_leg_cramps"))
        secondary = cirrhosis or dialysis or pregnant
        cramps = p.chance(
            C["cramp or spasm | cirrhosis, dialysis or pregnancy"]
            if secondary
            else rate("cramp_or_spasm")
        )
        diabetes = p.chance(rate("diabetes"))

        # Onsets in days before as_of; medicines for a condition start after its onset.
        long_ago = (365, 3650)
        cond = self.condition
        stroke_days = spastic_days = pd_days = rls_days = cramp_days = 0
        if pregnant:
            cond(p, "pregnancy", (30, 240))
        if stroke:
            stroke_days = cond(p, "stroke_spastic" if spastic else "stroke", (120, 3650))
        if spastic:  # spasticity appears weeks to a year after the stroke
            spastic_days = cond(
                p, "spasticity", (max(stroke_days - 365, 30), max(stroke_days - 14, 30))
            )
        if cirrhosis:
            cond(p, "cirrhosis_ascites" if ascites else "cirrhosis", long_ago)
        if esrd:
            esrd_days = cond(p, "esrd", long_ago)
            if dialysis:
                cond(p, "dialysis_dependence", (max(esrd_days - 1500, 30), max(esrd_days, 30)))
        if ckd:
            cond(p, "ckd", long_ago)
        if hf:
            cond(p, "heart_failure", long_ago)
        if parkinson:
            pd_days = cond(p, "parkinson_disease", long_ago)
        if rls:
            rls_days = cond(p, "restless_legs", (60, 5000))
        if night_cramps:
            cramp_days = cond(p, "sleep_related_leg_cramps", (30, 2500))
        if cramps:
            cramp_days = max(cramp_days, cond(p, "cramp_or_spasm", (14, 1500)))
        if diabetes:
            self.condition(p, "diabetes", long_ago)
        for concept in (
            "hypothyroidism",
            "arrhythmia_or_conduction_disorder",
            "peripheral_arterial_disease",
            "iron_deficiency",
        ):
            if p.chance(rate(concept)):
                self.condition(p, concept, long_ago)

        # -- medicines ---------------------------------------------------------------------------
        med = self.medication
        if p.chance(C["statin | diabetes or stroke"] if (diabetes or stroke) else rate("statin")):
            drug = "atorvastatin" if p.chance(0.7) else "simvastatin"
            med(p, drug, rng.choice((10, 20, 40)), 1, long_ago, 0.1)
        if not pregnant and p.chance(rate("hydrochlorothiazide")):
            med(p, "hydrochlorothiazide", rng.choice((12.5, 25)), 1, long_ago, 0.15)
        if p.chance(
            C["furosemide | heart failure"]
            if hf
            else C["furosemide | ascites"]
            if ascites
            else 0.4
            if esrd
            else 0.01
        ):
            med(p, "furosemide", rng.choice((20, 40, 80)), rng.choice((1, 2)), (30, 2000), 0.1)
        if p.chance(C["spironolactone | ascites"] if ascites else 0.3 if hf else 0.0):
            med(p, "spironolactone", rng.choice((25, 50, 100)), 1, (30, 2000))
        if p.chance(rate("antidepressant")):
            drug, dose = rng.choice(_ANTIDEPRESSANTS)
            med(p, drug, dose, 1, (30, 3000), 0.2)
        if parkinson and p.chance(C["levodopa | Parkinson"]):
            med(p, "levodopa", 100, 3, (30, max(pd_days, 30)))
        if p.chance(rate("antidopaminergic") if not parkinson else 0.0):
            drug, dose, times = rng.choice(_ANTIDOPAMINERGIC)
            med(p, drug, dose, times, (7, 1500), 0.3)
        if p.chance(rate("antihistamine")):
            drug, dose = rng.choice((("diphenhydramine", 25), ("hydroxyzine", 25)))
            med(p, drug, dose, 1, (7, 1500), 0.3)

        if rls and not pregnant and p.chance(C["dopamine agonist | RLS, not pregnant"]):
            drug = "pramipexole" if p.chance(0.5) else "ropinirole"
            da_dose = 0.25 if drug == "pramipexole" else 1.0
            long_term = rls_days > 400 and p.chance(
                C["started > 1 year ago | dopamine agonist in RLS"]
            )
            med(p, drug, da_dose, 1, (366, rls_days) if long_term else (30, min(330, rls_days)))
        neuropathy_risk = (1.5 if diabetes else 1.0) * (1.5 if (ckd or esrd) else 1.0)
        if p.chance(C["gabapentin | RLS"] if rls else rate("gabapentin") * neuropathy_risk):
            dose, times = rng.choice(_GABAPENTIN)
            med(p, "gabapentin", dose, times, (30, 2500), 0.15)
        if p.chance(rate("pregabalin")):
            med(p, "pregabalin", rng.choice((75, 150)), 2, (30, 2000), 0.2)

        if stroke and p.chance(C["diazepam | stroke"]):  # a benzodiazepine after a stroke
            med(p, "diazepam", rng.choice((2, 5)), rng.choice((2, 3)), (14, stroke_days))
        elif p.chance(rate("benzodiazepine")):
            drug, dose = rng.choice(_BENZODIAZEPINES)
            med(p, drug, dose, rng.choice((1, 2)), (14, 3000), 0.2)
        benzo = bool(p.taking & _BENZO_IDS)
        if p.chance(C["opioid | benzodiazepine"] if benzo else rate("opioid")):
            drug, dose, times = rng.choice(_OPIOIDS)
            med(p, drug, dose, times, (7, 2000), 0.0 if benzo else 0.25)

        if (night_cramps or cramps) and p.chance(C["quinine | cramps"]):
            med(p, "quinine", 324, 1, (1, max(cramp_days, 1)))
        if p.chance(rate("cyclobenzaprine")):
            days = rng.randint(3, 1100)
            chronic = days <= 30 or p.chance(0.5)
            med(p, "cyclobenzaprine", rng.choice((5, 10)), 3, (days, days), 0.0 if chronic else 1)
        if spastic and p.chance(C["baclofen | spasticity"]):
            med(p, "baclofen", rng.choice((5, 10)), 3, (14, spastic_days))
        elif (cirrhosis and cramps) and p.chance(0.15):
            med(p, "baclofen", 10, 1, (30, 1000))
        tizanidine = p.chance(
            C["tizanidine | spasticity"] if spastic else rate("tizanidine")
        ) and med(
            p,
            "tizanidine",
            rng.choice((2, 4)),
            3,
            (14, spastic_days) if spastic else (30, 2500),
            0.1,
        )
        if p.chance(C["ciprofloxacin | tizanidine"] if tizanidine else rate("ciprofloxacin")):
            med(p, "ciprofloxacin", rng.choice((250, 500)), 2, (1, 9))

        # -- observations ------------------------------------------------------------------------
        weight = _adult_weight(rng, female, age, cirrhosis or dialysis)
        if p.chance(C["body weight (last 300 days) | adult"]):
            q = _quantity(weight, "kg")
            self.observation(p, _VITAL, self.v.weight, q, self._wdays(p))
        scr = _creatinine(rng, female, age, dialysis, esrd, ckd, ckd_stage4)
        if p.chance(
            C["creatinine (last 85 days) | 65 or older, CKD or ESRD"]
            if (band == 2 or ckd or esrd)
            else C["creatinine (last 85 days) | adult"]
        ):
            days = _d(p, 85)
            self.lab(p, "creatinine", scr, days)
            if ckd or esrd or p.chance(0.5):
                self.lab(p, "egfr", _ckd_epi_2021(scr, age, female), days)
            if p.chance(0.6):
                self.lab(p, "potassium", round(rng.gauss(4.3, 0.45), 1), days)
                self.lab(p, "sodium", round(rng.gauss(139.5, 2.5)), days)
        if p.chance(0.5 if (night_cramps or cramps or cirrhosis or dialysis) else 0.05):
            self.lab(p, "magnesium", round(rng.gauss(2.0, 0.25), 1), _d(p, 85))
            self.lab(p, "calcium", round(rng.gauss(9.4, 0.5), 1), _d(p, 85))
        low_ferritin, ferritin_days = False, 0
        if p.chance(C["ferritin (last 170 days) | RLS"] if rls else 0.15 if pregnant else 0.04):
            low_ferritin = p.chance(
                C["ferritin < 75 | RLS or pregnant, measured"] if (rls or pregnant) else 0.2
            )
            ferritin = rng.randint(8, 74) if low_ferritin else rng.randint(76, 320)
            ferritin_days = _d(p, 170)
            self.lab(p, "ferritin", ferritin, ferritin_days)
            if p.chance(0.6):
                tsat = rng.randint(8, 19) if low_ferritin else rng.randint(20, 45)
                self.lab(p, "tsat", tsat, ferritin_days)
        if low_ferritin and p.chance(C["iron started after the result | ferritin < 75"]):
            med(p, "ferrous_sulfate", 325, 1, (0, ferritin_days))
        if female and age < 46 and (pregnant or p.chance(0.05)):
            answer = self.v.pregnant if pregnant else self.v.not_pregnant
            self.observation(
                p, _SOCIAL, self.v.pregnancy, answer, _d(p, min(25, self.v.pregnancy_days))
            )

        if p.chance(rate("allergy")):
            options = [d for d in self.allergens if d not in p.taking]
            if options:
                self.allergy(p, rng.choice(options))

    def allergy(self, p: _Patient, drug_id: str) -> None:
        rng = p.rng
        kind = "allergy" if rng.random() < 0.6 else "intolerance"
        reaction = rng.choice(("rash", "hives", "nausea", "itching", "dizziness"))
        self.add_allergy(
            f'{{"resourceType":"AllergyIntolerance","id":"{p.new_id()}",{_ALLERGY_ACTIVE},'
            f'"type":"{kind}","category":["medication"],"criticality":"low",'
            f'{self.v.allergen(drug_id)},"patient":{{"reference":"Patient/{p.pid}"}},'
            f'"recordedDate":"{self.date(rng.randint(100, 5000))}",'
            f'"reaction":[{{"manifestation":[{{"text":"{reaction}"}}]}}]}}'
        )


_DOSE_TEXT = {1: "once daily", 2: "twice daily", 3: "three times daily", 4: "four times daily"}
_ANTIDEPRESSANTS: tuple[tuple[str, float], ...] = (
    ("sertraline", 50),
    ("citalopram", 20),
    ("escitalopram", 10),
    ("fluoxetine", 20),
    ("duloxetine", 60),
    ("venlafaxine", 75),
    ("bupropion", 150),
    ("mirtazapine", 15),
    ("amitriptyline", 25),
)
_ANTIDOPAMINERGIC: tuple[tuple[str, float, int], ...] = (
    ("metoclopramide", 10, 3),
    ("quetiapine", 50, 1),
    ("haloperidol", 1, 2),
    ("prochlorperazine", 10, 2),
)
_GABAPENTIN: tuple[tuple[float, int], ...] = (
    (300, 1),
    (100, 3),
    (300, 3),
    (300, 3),
    (600, 3),
    (600, 3),
    (800, 3),
    (400, 3),
)
_BENZODIAZEPINES: tuple[tuple[str, float], ...] = (
    ("diazepam", 5),
    ("lorazepam", 1),
    ("alprazolam", 0.5),
    ("clonazepam", 0.5),
)
_BENZO_IDS = frozenset(d for d, _ in _BENZODIAZEPINES)
_OPIOIDS: tuple[tuple[str, float, int], ...] = (
    ("oxycodone", 5, 4),
    ("tramadol", 50, 3),
    ("hydrocodone", 5, 4),
    ("morphine", 15, 2),
    ("codeine", 30, 4),
)


def _d(p: _Patient, most: int) -> int:
    """Days ago for a recent result: 0 (today) to ``most``."""
    return p.rng.randint(0, most)


def _quantity(value: float, unit: str) -> str:
    return (
        f'"valueQuantity":{{"value":{value!r},"unit":"{unit}","system":"{UCUM}","code":"{unit}"}}'
    )


def _child_weight(age: float) -> float:
    return 3.5 + 2.6 * age if age < 12 else 35.0 + 5.0 * (age - 12)


def _adult_weight(rng: _Rng, female: bool, age: float, wasting: bool) -> float:
    w = rng.gauss(76.0, 17.0) if female else rng.gauss(88.0, 17.0)
    if age >= 80:
        w -= 8.0
    if wasting:
        w -= 6.0
    return round(min(max(w, 38.0), 220.0), 1)


def _creatinine(
    rng: _Rng, female: bool, age: float, dialysis: bool, esrd: bool, ckd: bool, stage4: bool
) -> float:
    if dialysis:
        scr = rng.uniform(5.0, 11.0)
    elif esrd:
        scr = rng.uniform(4.0, 8.0)
    elif ckd:
        scr = rng.uniform(2.5, 4.0) if stage4 else rng.uniform(1.3, 2.4)
    else:
        scr = rng.gauss(0.75 if female else 0.95, 0.13) + max(age - 50.0, 0.0) * 0.004
    return round(min(max(scr, 0.4), 15.0), 2)


def _ckd_epi_2021(scr: float, age: float, female: bool) -> int:
    """eGFR (CKD-EPI 2021, creatinine; mL/min/1.73 m2), as a laboratory would report it."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = scr / kappa
    egfr: float = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.2 * 0.9938**age
    return max(1, round(egfr * (1.012 if female else 1.0)))


# --- a real Synthea export as the starting point ---------------------------------------------
def _ndjson_files(folder: Path, rtype: str) -> list[Path]:
    names = [p for p in folder.iterdir() if p.is_file() and p.name.startswith(rtype + ".")]
    return sorted(p for p in names if p.name.lower().endswith((".ndjson", ".ndjson.gz")))


def _lines(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    opener: Callable[..., IO[str]] = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, start=1):
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise FhirError(str(path), f"line {n}", f"not valid JSON: {exc.msg}") from None
                if not isinstance(obj, dict):
                    raise FhirError(str(path), f"line {n}", "not a FHIR resource")
                yield n, text, obj
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise FhirError(str(path), None, f"cannot read: {exc}") from None


@dataclass(frozen=True)
class _Seed:
    """A patient taken from the source export."""

    pid: str
    sex: str | None
    birth: dt.date | None
    deceased: bool


def _source_patients(folder: Path, limit: int) -> list[_Seed]:
    if not folder.is_dir():
        raise InputError(f"--from {folder}: not a folder")
    files = _ndjson_files(folder, "Patient")
    if not files:
        raise InputError(f"--from {folder}: no Patient.*.ndjson files (a FHIR Bulk Data export)")
    out: list[_Seed] = []
    seen: set[str] = set()
    for f in files:
        for n, _, res in _lines(f):
            pid = res.get("id")
            if res.get("resourceType") != "Patient" or not isinstance(pid, str) or not pid:
                raise FhirError(str(f), f"line {n}", "not a Patient with an id")
            if pid in seen:
                continue
            seen.add(pid)
            birth = None
            try:
                birth = dt.date.fromisoformat(str(res.get("birthDate", ""))[:10])
            except ValueError:
                birth = None
            gender = res.get("gender")
            sex = gender if gender in ("female", "male") else None
            dead = bool(res.get("deceasedDateTime") or res.get("deceasedBoolean"))
            out.append(_Seed(pid, sex, birth, dead))
            if len(out) == limit:
                return out
    return out


_SHARED_TYPES = ("Organization", "Practitioner")


def _copy_source(folder: Path, seeds: list[_Seed], sinks: dict[str, _Sink]) -> dict[str, _Party]:
    """Copy the chosen patients' resources (clinical types and Encounters) and the export's
    clinics and clinicians, each line unchanged; return, per copied patient, who their synthetic
    orders name as requester: their first ``generalPractitioner``, else the requester of their
    latest MedicationRequest (the attribution the source gives them)."""
    from .core import patient_key

    wanted = {s.pid for s in seeds}
    copied: set[str] = set()  # a Patient listed twice is copied once
    gp: dict[str, _Party] = {}
    latest: dict[str, tuple[str, _Party]] = {}
    for rtype in (*CLINICAL_TYPES, "Encounter"):
        add = sinks[rtype].add
        for f in _ndjson_files(folder, rtype):
            for _, text, res in _lines(f):
                key = patient_key(res)
                if res.get("resourceType") != rtype or key not in wanted:
                    continue
                if rtype == "Patient":
                    if key in copied:
                        continue
                    copied.add(key)
                    party = _party_in(_first(res.get("generalPractitioner")))
                    if party is not None:
                        gp[key] = party
                if rtype == "MedicationRequest":
                    party = _party_in(res.get("requester"))
                    when = str(res.get("authoredOn", ""))
                    if party is not None and (key not in latest or when > latest[key][0]):
                        latest[key] = (when, party)
                add(text)
    for rtype in _SHARED_TYPES:
        for f in _ndjson_files(folder, rtype):
            for _, text, res in _lines(f):
                if res.get("resourceType") == rtype:
                    sinks[rtype].add(text)
    return {**{k: party for k, (_, party) in latest.items()}, **gp}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _party_in(reference: Any) -> _Party | None:
    """A source Reference as the synthetic orders repeat it (reference and display)."""
    if not isinstance(reference, dict):
        return None
    ref, display = reference.get("reference"), reference.get("display")
    if not isinstance(ref, str) or not ref:
        return None
    return _Party(ref, display if isinstance(display, str) else "")


# --- entry point -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthSummary:
    """What ``synthesize`` wrote."""

    folder: Path
    patients: int
    from_source: int  # patients copied from the --from export (the rest are generated)
    resources: dict[str, int]
    files: tuple[Path, ...]
    seconds: float

    def line(self) -> str:
        per_type = ", ".join(f"{t} {n:,}" for t, n in self.resources.items())
        src = f" ({self.from_source:,} from the source export)" if self.from_source else ""
        return (
            f"synth: {self.patients:,} patients{src} -> {self.folder}: {per_type} "
            f"in {len(self.files)} files, {self.seconds:.1f} s"
        )


def synthesize(
    out: str | Path,
    patients: int,
    seed: int,
    kb: Knowledge,
    *,
    as_of: dt.date = AS_OF,
    gzip_output: bool = False,
    source: str | Path | None = None,
    source_share: float = 0.5,
    lines_per_file: int = LINES_PER_FILE,
    clinics: int = CLINICS,
    prevalence: float = 1.0,
) -> SynthSummary:
    """Write a synthetic bulk export of ``patients`` patients into the new or empty folder ``out``.

    Every generated patient belongs to one of ``clinics`` clinics (``managingOrganization``) and
    mostly has a clinician there (``generalPractitioner``); each medicine is ordered at a visit
    (an Encounter whose ``serviceProvider`` is the clinic seen, mostly the patient's own) by its
    clinician (``requester``). ``prevalence``: the share of generated patients given the
    clinical layer (conditions, medicines, labs the knowledge base reads); the others only have
    visits, as most patients of a real population hold nothing the rules read.

    ``source``: a FHIR Bulk Data export (e.g. Synthea's) whose first patients (up to
    ``patients``) are copied with their Patient, Condition, MedicationRequest, Observation,
    AllergyIntolerance and Encounter resources unchanged, with the export's Organizations and
    Practitioners (their attribution is kept); about ``source_share`` of the living ones also get
    the synthetic clinical layer, whose orders name the patient's own clinician (or the requester
    of their latest order). Generated patients fill the population up to ``patients``.
    Raises ``InputError`` for a bad count or share, a non-empty ``out`` or an unreadable
    ``source``.
    """
    t0 = time.perf_counter()
    if isinstance(patients, bool) or patients < 1:
        raise InputError(f"--patients: {patients!r} must be a whole number of at least 1")
    if isinstance(clinics, bool) or clinics < 0:
        raise InputError(f"--clinics: {clinics!r} must be a whole number of at least 0")
    if not 0.0 <= prevalence <= 1.0:
        raise InputError(f"--prevalence: {prevalence!r} must be between 0 and 1")
    if lines_per_file < 1:
        raise InputError(f"lines per file: {lines_per_file!r} must be at least 1")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise InputError(f"{folder}: folder is not empty (synth writes into a new or empty one)")
    seeds = _source_patients(Path(source), patients) if source is not None else []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{folder}: cannot create the folder: {exc.strerror or exc}") from None
    sinks = {t: _Sink(folder, t, gzip_output, lines_per_file) for t in RESOURCE_TYPES}
    try:
        gen = _Generator(kb, as_of, sinks, seed, clinics, prevalence)
        if source is not None:
            requesters = _copy_source(Path(source), seeds, sinks)
            for s in seeds:
                rng = random.Random(f"legspasm-synth:{seed}:source:{s.pid}")
                if s.deceased or s.birth is None or s.sex is None or s.birth > as_of:
                    continue
                if rng.random() >= source_share:
                    continue
                age = (as_of - s.birth).days / 365.25
                care = _Care(rng, [], requester=requesters.get(s.pid))
                gen.clinical(_Patient(s.pid, rng, s.sex, age, care))
        for i in range(len(seeds), patients):
            gen.generated(i)
    finally:
        for sink in sinks.values():
            sink.close()
    files = tuple(f for t in RESOURCE_TYPES for f in sinks[t].files)
    return SynthSummary(
        folder=folder,
        patients=patients,
        from_source=len(seeds),
        resources={t: sinks[t].total for t in RESOURCE_TYPES},
        files=files,
        seconds=time.perf_counter() - t0,
    )
