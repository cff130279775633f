"""Code-system and canonical URLs legspasm reads and writes."""

from __future__ import annotations

__all__ = [
    "ANSWER",
    "BASE",
    "CONCEPT",
    "ICD10CM",
    "INTAKE",
    "LOINC",
    "RXNORM",
    "SNOMED",
    "SYSTEM_NAMES",
    "UCUM",
    "system_url",
]

BASE = "https://legspasm.dev/fhir"
INTAKE = BASE + "/Questionnaire/legspasm-intake"
"""Canonical URL of legspasm's intake Questionnaire (``legspasm fhir questionnaire``)."""
ANSWER = BASE + "/CodeSystem/intake-answer"
"""Codes of the intake Questionnaire's choice answers (the case file's literal values)."""
CONCEPT = BASE + "/CodeSystem/concept"
"""Knowledge-base concept ids, for conditions that have no verified standard code."""

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

SYSTEM_NAMES = {SNOMED: "snomed", ICD10CM: "icd10cm", RXNORM: "rxnorm", LOINC: "loinc"}
"""FHIR system URL -> the short name the knowledge base uses."""

_URLS = {v: k for k, v in SYSTEM_NAMES.items()}


def system_url(name: str) -> str:
    """The FHIR system URL for a knowledge-base system name (``snomed`` -> SNOMED URL)."""
    return _URLS[name]
