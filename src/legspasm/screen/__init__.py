"""Population screening over FHIR Bulk Data exports: ``legspasm screen`` (local or Spark)."""

from __future__ import annotations

from .core import Problem, assess_patient, parse_line, patient_key
from .findings import COLUMNS, Finding, rows_of

__all__ = [
    "COLUMNS",
    "Finding",
    "Problem",
    "assess_patient",
    "parse_line",
    "patient_key",
    "rows_of",
]
