"""Rates a quality team reads: per clinic, clinician and prescriber, patients screened (the
denominator), patients with each finding (the numerator) and the rate.

- **Clinic** and **clinician**: the patient's own (``Patient.managingOrganization`` and
  ``Patient.generalPractitioner``); every patient screened counts in the denominator of theirs
  (or of "not recorded"), and a patient with a finding in its numerator.
- **Prescriber**: the requester of the order that triggered the finding; the denominator is the
  patients screened with at least one MedicationRequest by that prescriber (any medicine), so a
  rate reads "of the patients Dr X prescribes for, N % take ... prescribed by Dr X".

A finding counts patients, not rows: two benzodiazepines of one patient are one patient.
``Population`` (the denominators) is gathered by the engines as they screen; ``Numerators`` as
the findings stream past, sorted by patient; ``rate_tables`` joins them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..fhir.attribution import Party
from .findings import FLAGGED, Finding

__all__ = ["ANY", "GROUPS", "NOT_RECORDED", "Numerators", "Population", "rate_tables"]

GROUPS = ("clinic", "clinician", "prescriber")
NOT_RECORDED = "(not recorded)"
ANY = "ANY-RED-FLAG-OR-EXPOSURE"
"""The numerator of patients with any red flag or exposure (each patient once)."""
ANY_NAME = "Any red flag or exposure"


@dataclass
class Population:
    """Patients screened, in total and per clinic, clinician and prescriber key (a reference,
    else a name; "" for none), with the names seen for each key."""

    patients: int = 0
    counts: dict[str, Counter[str]] = field(default_factory=lambda: {g: Counter() for g in GROUPS})
    names: dict[str, str] = field(default_factory=dict)

    def add(self, clinic: Party, clinician: Party, prescribers: Iterable[Party]) -> None:
        """One patient screened (each prescriber counted once, by key)."""
        self.add_many(clinic, clinician, 1)
        seen: set[str] = set()
        for p in prescribers:
            self.name(p)
            if p.key and p.key not in seen:
                seen.add(p.key)
                self.add_prescriber(p)

    def add_many(self, clinic: Party, clinician: Party, n: int) -> None:
        """``n`` patients of one clinic and clinician screened (their prescribers apart)."""
        self.patients += n
        self._count("clinic", clinic, n)
        self._count("clinician", clinician, n)

    def add_prescriber(self, p: Party) -> None:
        """One more patient screened with an order of ``p``."""
        self._count("prescriber", p, 1)

    def _count(self, group: str, p: Party, n: int) -> None:
        self.counts[group][p.key] += n
        self.name(p)

    def name(self, p: Party) -> None:
        """Remember a name for a key: the smallest seen, so any order gives the same name."""
        if p.key and p.name and (p.key not in self.names or p.name < self.names[p.key]):
            self.names[p.key] = p.name

    def merge(self, other: Population) -> None:
        self.patients += other.patients
        for g in GROUPS:
            self.counts[g].update(other.counts[g])
        for k, n in other.names.items():
            self.name(Party(k, n))

    def as_tuple(self) -> tuple[Any, ...]:
        """As plain data (to travel between processes)."""
        return (self.patients, {g: dict(c) for g, c in self.counts.items()}, self.names)

    @classmethod
    def from_tuple(cls, t: tuple[Any, ...]) -> Population:
        patients, counts, names = t
        return cls(patients, {g: Counter(counts[g]) for g in GROUPS}, dict(names))


@dataclass
class Numerators:
    """Patients per (group, key, finding id), counted once per patient as the sorted findings
    stream past."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)
    _patient: str | None = None
    _seen: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, f: Finding) -> None:
        if f.kind == "data_incomplete":
            return
        if f.patient_id != self._patient:
            self._patient = f.patient_id
            self._seen.clear()
        keys = [("clinic", f.clinic_ref or f.clinic), ("clinician", f.clinician_ref or f.clinician)]
        if f.prescriber_ref or f.prescriber:
            keys.append(("prescriber", f.prescriber_ref or f.prescriber))
        ids = (f.finding_id, ANY) if f.kind in FLAGGED else (f.finding_id,)
        for group, key in keys:
            for fid in ids:
                k = (group, key, fid)
                if k not in self._seen:
                    self._seen.add(k)
                    self.counts[k] += 1
        for key, name in (
            (f.clinic_ref or f.clinic, f.clinic),
            (f.clinician_ref or f.clinician, f.clinician),
            (f.prescriber_ref or f.prescriber, f.prescriber),
        ):
            if key and name and (key not in self.names or name < self.names[key]):
                self.names[key] = name


def rate_tables(
    population: Population, numerators: Numerators, findings: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Per group, one row per (key, finding) with patients, denominator and rate, sorted by
    group key then by the finding's patients (most first). ``findings``: the finding ids to
    report (and their names)."""
    names = {**numerators.names, **population.names}
    findings = {**findings, ANY: ANY_NAME}
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for (group, key, fid), n in numerators.counts.items():
        if fid not in findings:
            continue
        denominator = population.counts[group].get(key, 0)
        out[group].append(
            {
                "key": key,
                "name": names.get(key, key) or NOT_RECORDED,
                "finding_id": fid,
                "finding": findings[fid],
                "patients": n,
                "screened": denominator,
                "rate": round(n / denominator, 4) if denominator else None,
            }
        )
    for rows in out.values():
        rows.sort(
            key=lambda r: (
                r["name"],
                r["key"],
                r["finding_id"] != ANY,
                -r["patients"],
                r["finding_id"],
            )
        )
    return out
