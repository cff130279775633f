"""The FHIR queries whose results the engine reads (R4 search syntax), as templates over a CDS
Hooks context (``{{context.patientId}}``): the CDS Hooks prefetch templates, and what the web
page reads after a SMART launch."""

from __future__ import annotations

import datetime as dt

from ..knowledge import Knowledge
from .systems import INTAKE, LOINC, system_url

__all__ = ["PAGE_SIZE", "PATIENT", "lookback_days", "lookback_params", "prefetch_templates"]

PATIENT = "{{context.patientId}}"

PAGE_SIZE = 100
"""``_count`` of the prefetch queries: an EHR sends the first page, newest first where sorted;
legspasm's own reads follow ``next`` links up to the configured resource cap."""


def lookback_days(kb: Knowledge) -> int:
    """How far back a lab result can still be used: the longest ``max_age_days`` of the
    knowledge base's labs (older results are stale for every rule). Reads from the EHR's FHIR
    server ask only for observations this recent (``date=ge``)."""
    return max(lab.max_age_days for lab in kb.labs.values())


def lookback_params(days: int, as_of: dt.date) -> dict[str, str]:
    """The extra search parameters of legspasm's own reads, by prefetch key: observations no
    older than ``days`` (:func:`lookback_days`) before ``as_of``."""
    return {"observations": f"date=ge{(as_of - dt.timedelta(days=days)).isoformat()}"}


def prefetch_templates(kb: Knowledge) -> dict[str, str]:
    """Prefetch templates: the FHIR queries whose results the engine reads (R4 search syntax),
    each bounded by ``_count``. Medicine queries are not sorted or cut by date: how long a
    medicine has been taken comes from its earliest record."""
    loinc = sorted(set(kb.lookups.lab_by_loinc))
    for rule in ("body_weight", "pregnancy_status"):
        loinc += sorted(
            c.code for c in kb.record[rule].codes if c.verified and system_url(c.system) == LOINC
        )
    codes = ",".join(f"{LOINC}|{c}" for c in dict.fromkeys(loinc))
    return {
        "patient": f"Patient/{PATIENT}",
        "conditions": f"Condition?patient={PATIENT}&_count={PAGE_SIZE}",
        "medicationRequests": f"MedicationRequest?patient={PATIENT}",
        "medicationStatements": f"MedicationStatement?patient={PATIENT}",
        "medicationDispenses": f"MedicationDispense?patient={PATIENT}",
        "observations": f"Observation?patient={PATIENT}&code={codes}&_sort=-date"
        f"&_count={PAGE_SIZE}",
        "allergies": f"AllergyIntolerance?patient={PATIENT}&_count={PAGE_SIZE}",
        "intake": f"QuestionnaireResponse?patient={PATIENT}&questionnaire={INTAKE}"
        "&_sort=-authored&_count=5",
    }
