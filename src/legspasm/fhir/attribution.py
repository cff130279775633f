"""Who a patient and a finding belong to, as the record says: a quality team's worklist columns.

Read at the boundary, never by the engine: ``attribution_of(record, mapped)`` takes one patient's
FHIR record (and the drugs and concepts ``to_case`` found in it) and returns

- the patient's **MRN** (``Patient.identifier`` typed ``MR``, else the first identifier), sex,
  **clinic** (``Patient.managingOrganization``) and **clinician**
  (``Patient.generalPractitioner``, the first);
- every **prescriber** of the patient's MedicationRequests (``requester``): the denominators of
  per-prescriber rates;
- per knowledge-base drug and condition concept, the resources that gave it (``Trigger``): the
  order or Condition's type/id, its code and display, the date it started, and for an order its
  prescriber and the clinic of its encounter (``Encounter.serviceProvider``).

A clinic or clinician is a ``Party``: the reference as written (``Organization/1``,
``Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999974394``) and a name: the
resource's own name when the export holds it (by id or identifier), else the reference's
``display``, else the reference itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .mapping import MappedCase, Source
from .read import Entry, Record
from .systems import ICD10CM, LOINC, RXNORM, SNOMED

__all__ = [
    "NOBODY",
    "Attribution",
    "Party",
    "PartyNames",
    "Trigger",
    "attribution_of",
    "mrn_of",
    "party_of",
    "patient_parties",
]

_SYSTEMS = {RXNORM: "RxNorm", SNOMED: "SNOMED CT", ICD10CM: "ICD-10-CM", LOINC: "LOINC"}
_MR = "MR"  # HL7 v2 table 0203: Medical record number


@dataclass(frozen=True, slots=True, order=True)
class Party:
    """A clinic or clinician a patient or finding is attributed to."""

    ref: str  # the reference as written; "" when given by display only
    name: str

    @property
    def key(self) -> str:
        """What rates group by: the reference, else the name."""
        return self.ref or self.name


NOBODY = Party("", "")


@dataclass(frozen=True, slots=True)
class Trigger:
    """A resource a finding comes from, as a worklist shows it."""

    resource: str  # "MedicationRequest/abc"
    system: str  # "RxNorm", "SNOMED CT", "ICD-10-CM"...; "" when matched by name
    code: str
    display: str
    started: dt.date | None
    active: bool
    prescriber: Party = NOBODY  # an order's requester
    clinic: Party = NOBODY  # the serviceProvider of an order's encounter


@dataclass(frozen=True)
class Attribution:
    """What the record says about whose patient this is, and where each finding came from."""

    mrn: str = ""
    sex: str = ""
    clinic: Party = NOBODY
    clinician: Party = NOBODY
    prescribers: tuple[Party, ...] = ()
    drugs: Mapping[str, tuple[Trigger, ...]] = field(default_factory=dict)
    concepts: Mapping[str, tuple[Trigger, ...]] = field(default_factory=dict)

    def drug(self, drug_id: str) -> Trigger | None:
        """The order of a drug the patient takes: the active one started last."""
        found = self.drugs.get(drug_id, ())
        active = [t for t in found if t.active] or list(found)
        return max(active, key=_latest, default=None)

    def concept(self, concept_ids: Iterable[str]) -> Trigger | None:
        """The Condition that documents one of ``concept_ids``: the active one with the
        earliest onset."""
        found = [t for c in concept_ids for t in self.concepts.get(c, ())]
        active = [t for t in found if t.active] or found
        return min(active, key=_earliest, default=None)


def _latest(t: Trigger) -> tuple[dt.date, str]:
    return (t.started or dt.date.min, t.resource)


def _earliest(t: Trigger) -> tuple[dt.date, str]:
    return (t.started or dt.date.max, t.resource)


class PartyNames:
    """The names of the clinics and clinicians an export holds (Organization, Practitioner,
    PractitionerRole), by ``Type/id``, full URL and ``Type?identifier=system|value``."""

    _TYPES = ("Organization", "Practitioner", "PractitionerRole")

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._names: dict[str, str] = {}
        for e in entries:
            if e.type not in self._TYPES:
                continue
            name = _name_of(e.resource)
            if not name:
                continue
            rid = e.resource.get("id")
            keys = [f"{e.type}/{rid}"] if isinstance(rid, str) and rid else []
            if e.full_url:
                keys.append(e.full_url)
            for ident in _list(e.resource.get("identifier")):
                system, value = ident.get("system"), ident.get("value")
                if isinstance(system, str) and isinstance(value, str):
                    keys.append(f"{e.type}?identifier={system}|{value}")
            for k in keys:
                self._names.setdefault(k, name)

    def name(self, ref: str) -> str | None:
        hit = self._names.get(ref)
        if hit is None and "/" in ref and "?" not in ref and not ref.startswith("urn:"):
            parts = ref.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            hit = self._names.get("/".join(parts[-2:]))
        return hit


def party_of(reference: Any, names: PartyNames) -> Party:
    """The party a FHIR Reference names (NOBODY for anything else)."""
    if not isinstance(reference, Mapping):
        return NOBODY
    ref = reference.get("reference")
    ref = ref.strip() if isinstance(ref, str) else ""
    display = reference.get("display")
    display = display.strip() if isinstance(display, str) else ""
    if not ref and not display:
        return NOBODY
    return Party(ref, (names.name(ref) if ref else None) or display or ref)


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _name_of(res: Mapping[str, Any]) -> str:
    """An Organization's name, or a Practitioner's first HumanName."""
    name = res.get("name")
    if isinstance(name, str):
        return name.strip()
    for n in _list(name):
        text = n.get("text")
        if isinstance(text, str) and text.strip():
            return text.strip()
        parts = [
            *(p for p in _strings(n.get("prefix"))),
            *(g for g in _strings(n.get("given"))),
            *([n["family"]] if isinstance(n.get("family"), str) else []),
        ]
        if parts:
            return " ".join(p.strip() for p in parts if p.strip())
    return ""


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def mrn_of(patient: Mapping[str, Any]) -> str:
    """The medical record number: the identifier typed MR, else the first identifier's value."""
    idents = [i for i in _list(patient.get("identifier")) if isinstance(i.get("value"), str)]
    for i in idents:
        kind = i.get("type")
        codes = _list(kind.get("coding")) if isinstance(kind, Mapping) else []
        if any(c.get("code") == _MR for c in codes):
            return str(i["value"])
    return str(idents[0]["value"]) if idents else ""


def _trigger(source: Source, record: Record, names: PartyNames) -> Trigger:
    res = source.entry.resource
    prescriber = clinic = NOBODY
    if source.entry.type == "MedicationRequest":
        prescriber = party_of(res.get("requester"), names)
        encounter = res.get("encounter")
        ref = encounter.get("reference") if isinstance(encounter, Mapping) else None
        hit = record.resolve(ref) if isinstance(ref, str) else None
        if hit is not None and hit.type == "Encounter":
            clinic = party_of(hit.resource.get("serviceProvider"), names)
    return Trigger(
        resource=source.entry.label,
        system=_SYSTEMS.get(source.system, source.system),
        code=source.code,
        display=source.display,
        started=source.start,
        active=source.active,
        prescriber=prescriber,
        clinic=clinic,
    )


def attribution_of(
    record: Record, mapped: MappedCase, names: PartyNames | None = None
) -> Attribution:
    """The attribution of the patient of ``record`` (``mapped`` is ``to_case`` of it).

    ``names``: the export's clinics and clinicians, when made once for many patients; by default
    the record's own resources and shared resources are searched.
    """
    if names is None:
        names = PartyNames((*record.entries, *record.shared))
    patient = record.patient.resource if record.patient is not None else {}
    clinic, clinician = patient_parties(patient, names)
    sex = patient.get("gender")
    prescribers = {
        party_of(e.resource.get("requester"), names)
        for e in record.entries
        if e.type == "MedicationRequest"
    }
    drugs: dict[str, list[Trigger]] = {}
    concepts: dict[str, list[Trigger]] = {}
    for s in mapped.sources:
        into = drugs if s.kind == "drug" else concepts
        into.setdefault(s.id, []).append(_trigger(s, record, names))
    return Attribution(
        mrn=mrn_of(patient),
        sex=sex if isinstance(sex, str) else "",
        clinic=clinic,
        clinician=clinician,
        prescribers=tuple(sorted(prescribers - {NOBODY})),
        drugs={k: tuple(v) for k, v in drugs.items()},
        concepts={k: tuple(v) for k, v in concepts.items()},
    )


def patient_parties(patient: Mapping[str, Any], names: PartyNames) -> tuple[Party, Party]:
    """A Patient's clinic (``managingOrganization``) and clinician (the first
    ``generalPractitioner``)."""
    gp = _list(patient.get("generalPractitioner"))
    return (
        party_of(patient.get("managingOrganization"), names),
        party_of(gp[0], names) if gp else NOBODY,
    )
