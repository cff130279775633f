"""The FHIR R4 boundary: records in, proposals out. One mapping for every surface.

read_fhir(path)                 -> list[Record]   a Bundle, resource, NDJSON file or folder
records_from_json(data, source) -> list[Record]   already-parsed JSON
records_from_resources(...)     -> list[Record]   resources in memory (CDS Hooks prefetch)
entries_from_resources(...)     -> list[Entry]    the same, ungrouped (CDS Hooks draftOrders)
to_case(record, kb, as_of, orders=()) -> MappedCase  .case, .data_used, .unmapped, .annotate()
assessment_bundle(assessment)   -> dict           the plan as a FHIR R4 Bundle
check_bundle(bundle)            -> list[str]      validation problems (R4B models + R4 checks)
questionnaire(version)          -> dict           legspasm's intake Questionnaire
"""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .check import check_bundle
    from .intake import questionnaire
    from .mapping import MappedCase, to_case
    from .output import assessment_bundle
    from .read import (
        Entry,
        Record,
        entries_from_resources,
        is_fhir,
        read_fhir,
        records_from_json,
        records_from_resources,
    )

__all__ = [
    "Entry",
    "MappedCase",
    "Record",
    "assessment_bundle",
    "check_bundle",
    "entries_from_resources",
    "is_fhir",
    "questionnaire",
    "read_fhir",
    "records_from_json",
    "records_from_resources",
    "to_case",
]

__getattr__, __dir__ = exports(
    __name__,
    {
        "check_bundle": ".check",
        "questionnaire": ".intake",
        "MappedCase": ".mapping",
        "to_case": ".mapping",
        "assessment_bundle": ".output",
        **dict.fromkeys(
            (
                "Entry",
                "Record",
                "entries_from_resources",
                "is_fhir",
                "read_fhir",
                "records_from_json",
                "records_from_resources",
            ),
            ".read",
        ),
    },
)
