"""Reading one patient from any input legspasm accepts: a case file or a FHIR R4 record.

``load_patient`` detects the format: a folder or ``.ndjson`` file is FHIR NDJSON; a JSON or YAML
document with a ``resourceType`` is FHIR (a Bundle or one resource); anything else is a case file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .assessment import Assessment
from .case import Case
from .caseio import parse_case, read_document
from .engine import evaluate
from .errors import FhirError, SeveralPatients
from .fhir.read import is_fhir
from .knowledge import Knowledge

if TYPE_CHECKING:  # the FHIR mapping is imported only for FHIR input
    from .fhir import MappedCase, Record

__all__ = ["PatientInput", "load_patient", "pick_record"]


@dataclass(frozen=True)
class PatientInput:
    """One patient's case, and for FHIR input the mapping report and the Patient reference."""

    case: Case
    source: str
    mapped: MappedCase | None = None
    subject: str | None = None  # e.g. "Patient/123" when read from FHIR

    def assess(self, kb: Knowledge, as_of: dt.date) -> Assessment:
        """The assessment, with what the record contributed when it was read from FHIR."""
        result = evaluate(self.case, kb, as_of)
        return self.mapped.annotate(result) if self.mapped is not None else result


def pick_record(records: list[Record], source: str, patient: str | None) -> Record:
    """The record of ``patient`` (a Patient id), or the only one; FhirError otherwise."""
    ids = [r.patient_id for r in records]
    if patient is not None:
        for r in records:
            if r.patient_id == patient:
                return r
        known = ", ".join(i for i in ids if i) or "none"
        raise FhirError(source, None, f"no Patient with id {patient!r} (ids: {known})")
    if len(records) > 1:
        shown = ", ".join(i for i in ids[:5] if i) + (", ..." if len(ids) > 5 else "")
        raise SeveralPatients(
            source,
            f"holds {len(records)} patients ({shown}); choose one with --patient ID",
            [i for i in ids if i],
        )
    return records[0]


def load_patient(
    path: str | Path, kb: Knowledge, as_of: dt.date, patient: str | None = None
) -> PatientInput:
    """Read a case file or a FHIR record and return the patient's case."""
    from .fhir import read_fhir, records_from_json, to_case

    p = Path(path)
    source = str(p)
    if p.is_dir() or p.suffix.lower() == ".ndjson":
        records = read_fhir(p)
    else:
        data = read_document(p)
        if not is_fhir(data):
            if patient is not None:
                raise FhirError(source, None, "--patient applies to FHIR input only")
            return PatientInput(parse_case(data, source), source)
        records = records_from_json(data, source)
    record = pick_record(records, source, patient)
    mapped = to_case(record, kb, as_of)
    subject = f"Patient/{record.patient_id}" if record.patient_id else None
    return PatientInput(mapped.case, source, mapped, subject)
