"""legspasm's CDS services: which hook each answers and the data it asks the EHR to prefetch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..fhir.queries import PAGE_SIZE, lookback_days, prefetch_templates
from ..knowledge import Knowledge
from .models import ServiceDescription

__all__ = [
    "LEGACY_HOOKS",
    "PAGE_SIZE",
    "PREFETCH_KEY_OF_TYPE",
    "REQUIRED_CONTEXT",
    "SERVICES",
    "Service",
    "context_problems",
    "discovery",
    "lookback_days",
    "prefetch_templates",
]


PREFETCH_KEY_OF_TYPE = {
    "Patient": "patient",
    "Condition": "conditions",
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
    "MedicationDispense": "medicationDispenses",
    "Observation": "observations",
    "AllergyIntolerance": "allergies",
    "QuestionnaireResponse": "intake",
}
"""The prefetch key whose query returns each resource type (the templates below)."""


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    hook: str
    title: str
    description: str


SERVICES: dict[str, Service] = {
    s.id: s
    for s in (
        Service(
            "legspasm-patient-view",
            "patient-view",
            "Leg cramps, spasms and restless legs: plan",
            "Red flags first; otherwise one card with the likely cause of leg cramps, spasms or "
            "restless legs and the next step, linking to the full cited plan. Medicines the "
            "patient takes that should be reviewed are named.",
        ),
        Service(
            "legspasm-order-select",
            "order-select",
            "Leg cramps, spasms and restless legs: order check",
            "Warns when a medicine being selected should be avoided for this patient (e.g. "
            "quinine for cramps, dopamine agonists as standard RLS therapy, benzodiazepines "
            "after a stroke, tizanidine with a CYP1A2 inhibitor, cyclobenzaprine at 65+, a "
            "gabapentinoid above the renal dose) and offers a safer alternative.",
        ),
        Service(
            "legspasm-order-sign",
            "order-sign",
            "Leg cramps, spasms and restless legs: order check at signing",
            "The order check of legspasm-order-select, on every draft order at signing.",
        ),
    )
}

LEGACY_HOOKS = {"medication-prescribe": ("order-select", "order-sign")}
"""Deprecated hooks still sent by older clients, and the services that accept them."""


REQUIRED_CONTEXT: dict[str, tuple[str, ...]] = {
    "patient-view": ("patientId",),
    "order-select": ("patientId", "selections", "draftOrders"),
    "order-sign": ("patientId", "draftOrders"),
    "medication-prescribe": ("patientId", "medications"),
}
"""The context fields a hook's specification marks REQUIRED and the answer needs. ``userId`` is
also REQUIRED by the specification but not needed to answer; it is not enforced, since published
test requests (HL7 PDDI CDS) omit it. Draft orders may come in their older shapes (one resource,
an array, ``medications`` for the deprecated hook), which ``_orders`` reads."""

_ALIASES = {"draftOrders": ("draftOrders", "medications"), "medications": ("medications",)}


def context_problems(hook: str, context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the request's context lacks for its hook: (field, problem), empty when complete."""
    out: list[tuple[str, str]] = []
    for name in REQUIRED_CONTEXT.get(hook, ()):
        where = f"context.{name}"
        if name == "patientId":
            value = context.get("patientId") or context.get("patient")  # 1.0 called it patient
            if not isinstance(value, str) or not value.strip():
                out.append((where, f"required for {hook}: the id of the patient in context"))
        elif name == "selections":
            value = context.get(name)
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                out.append((where, "required for order-select: the references selected"))
        elif all(context.get(k) is None for k in _ALIASES[name]):
            out.append((where, f"required for {hook}: the draft orders"))
    return out


def discovery(kb: Knowledge) -> list[ServiceDescription]:
    templates = prefetch_templates(kb)
    return [
        ServiceDescription(
            hook=s.hook,
            title=s.title,
            description=s.description,
            id=s.id,
            prefetch=templates,
            usageRequirements="Send the prefetch, or fhirServer with fhirAuthorization "
            "(patient/*.read scopes for the resources in the prefetch templates). Lab results "
            f"older than {lookback_days(kb)} days are not used.",
        )
        for s in SERVICES.values()
    ]
