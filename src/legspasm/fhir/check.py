"""Validating FHIR output: fhir.resources R4B models plus checks for R4 that R4B does not make.

fhir.resources has no R4 (4.0.1) models; R4B (4.3.0) is the nearest and accepts the resources
legspasm writes. The extra checks cover what the models cannot see: references that do not
resolve inside the Bundle, R4B-only elements, and element values R4 restricts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["R4_RESOURCE_TYPES", "check_bundle"]

# The resource types legspasm writes; all exist in R4 with these names (RequestGroup was
# replaced in R5, so it is a good canary for a wrong FHIR version).
R4_RESOURCE_TYPES = frozenset(
    {
        "Bundle",
        "CarePlan",
        "CommunicationRequest",
        "Condition",
        "DetectedIssue",
        "Device",
        "MedicationRequest",
        "Patient",
        "Questionnaire",
        "RequestGroup",
        "ServiceRequest",
    }
)
# Elements new in R4B (absent from R4) on the resource types above.
_R4B_ONLY = {"MedicationRequest": {"renderedDosageInstruction"}}


def _references(node: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            out.append((path, ref))
        for k, v in node.items():
            _references(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _references(v, f"{path}[{i}]", out)


def check_bundle(bundle: dict[str, Any], external: frozenset[str] = frozenset()) -> list[str]:
    """Problems found in a Bundle legspasm wrote; an empty list means valid.

    ``external``: references allowed to point outside the Bundle (e.g. ``Patient/123``).
    """
    from fhir.resources.R4B.bundle import Bundle  # imported lazily: about 0.2 s
    from pydantic import ValidationError

    problems: list[str] = []
    try:
        Bundle.model_validate(bundle)
    except ValidationError as exc:
        for err in exc.errors()[:20]:
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(f"R4B model: {loc}: {err['msg']}")
    urls = {e.get("fullUrl") for e in bundle.get("entry", [])}
    for i, e in enumerate(bundle.get("entry", [])):
        res = e.get("resource", {})
        rt = res.get("resourceType")
        where = f"entry[{i}] {rt}/{res.get('id')}"
        if rt not in R4_RESOURCE_TYPES:
            problems.append(f"{where}: not a resource type legspasm writes for R4")
        for el in _R4B_ONLY.get(rt, set()) & set(res):
            problems.append(f"{where}.{el}: element not in FHIR R4")
        refs: list[tuple[str, str]] = []
        for key, value in res.items():  # a resource's own "reference" (DetectedIssue) is a uri
            if key != "reference":
                _references(value, f"{where}.{key}", refs)
        for path, ref in refs:
            if ref not in urls and ref not in external:
                problems.append(f"{path}: reference {ref} does not resolve in the Bundle")
        for j, dose in enumerate(res.get("dosageInstruction", [])):
            rep = dose.get("timing", {}).get("repeat", {})
            freq = rep.get("frequency")
            if freq is not None and (not isinstance(freq, int) or freq < 1):
                problems.append(f"{where}.dosageInstruction[{j}]: frequency must be a positiveInt")
    return problems
