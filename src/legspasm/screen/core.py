"""What every screening engine shares: reading a line, finding its patient, assessing a patient.

The local engine and the Spark engine both call these, so they cannot disagree: a line becomes a
resource (or a problem naming file and line), a resource is keyed by the patient it is about, and
one patient's resources (plus the export's resources that belong to no patient, such as
Medication) are mapped and assessed exactly as ``legspasm assess EXPORT --patient ID`` does.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..engine import evaluate
from ..errors import FhirError
from ..fhir import to_case
from ..fhir.read import Entry, Record, subject_reference
from ..knowledge import Knowledge
from .findings import Finding, rows_of

__all__ = [
    "MAX_PROBLEMS_KEPT",
    "Problem",
    "assess_patient",
    "attribute",
    "canonical",
    "input_files",
    "is_resource_type",
    "parse_line",
    "patient_key",
    "patient_problem",
    "read_file",
]

Resource = Mapping[str, Any]

# Problems are all counted; this many are kept for the report (each engine keeps the first).
MAX_PROBLEMS_KEPT = 10_000


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """A line or resource that was not used, and why (reported, never silently skipped)."""

    file: str
    line: int  # 1-based; 0 for the whole file
    problem: str


Read = Iterator[tuple[Resource | None, Problem | None]]
"""What reading a file yields: a resource, or the problem with a line."""


def parse_line(text: str, file: str, line: int) -> tuple[Resource | None, Problem | None]:
    """One NDJSON line as a FHIR resource, or the problem with it. Blank lines give neither."""
    if not text.strip():
        return None, None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, Problem(file, line, f"not valid JSON: {exc.msg}")
    except RecursionError:
        return None, Problem(file, line, "not read: JSON nested too deeply")
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        return None, Problem(file, line, f"not valid JSON: {str(exc)[:120]}")
    if not isinstance(obj, dict):
        return None, Problem(file, line, "not a JSON object")
    rt = obj.get("resourceType")
    if not isinstance(rt, str) or not rt or not rt[0].isupper() or not rt.isalnum():
        return None, Problem(file, line, "no valid 'resourceType'")
    return obj, None


@lru_cache(maxsize=512)
def is_resource_type(name: str) -> bool:
    """Whether ``name`` is a FHIR resource type (R4B's list, a superset of R4's)."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource as FhirResource

    try:
        cls = get_fhir_model_class(name)
    except ValueError:
        return False
    return issubclass(cls, FhirResource)


_NDJSON = (".ndjson", ".ndjson.gz")
_JSON = (".json", ".json.gz")


def input_files(folder: Path) -> tuple[list[Path], list[Problem]]:
    """The files of an export folder to read, in name order, and the files left out (reported).

    NDJSON (``.ndjson``, ``.ndjson.gz``: one resource a line) and JSON (``.json``, ``.json.gz``:
    a Bundle or one resource each, e.g. a folder of Synthea bundles). Sub-folders are not read,
    and each is reported.
    """
    files, skipped = [], []
    for p in sorted(folder.iterdir()):
        name = p.name.lower()
        if p.is_file() and name.endswith(_NDJSON + _JSON):
            files.append(p)
        elif p.is_file() and not name.startswith("."):
            skipped.append(Problem(p.name, 0, "not .ndjson or .json (optionally .gz): not read"))
        elif p.is_dir() and not name.startswith("."):
            skipped.append(
                Problem(p.name + "/", 0, "a sub-folder: not read (screen it on its own)")
            )
    return files, skipped


def _binary(path: Path) -> io.BufferedIOBase:
    """The file's bytes (gunzipped when ``.gz``); the caller closes it."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


_LOG_LINE = "no valid 'resourceType'"


def _lines(fh: io.BufferedIOBase, name: str) -> Iterator[tuple[int, str | None, Problem | None]]:
    """Numbered lines decoded one by one: a byte that is not UTF-8 costs its line (reported
    with its number), and a compressed file that ends early reports how far it was read."""
    n = 0
    try:
        for n, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield n, None, Problem(name, n, f"not UTF-8 (byte {exc.start + 1}): line not read")
                continue
            yield n, text, None
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        what = f"{n} lines read" if n else "no line read"
        problem = f"file ends early ({exc}): {what}, the rest is missing"
        yield n + 1, None, Problem(name, n + 1, problem)


def read_file(path: Path) -> Iterator[tuple[Resource | None, Problem | None]]:
    """Every resource in one export file, or the problem with a line (file name and line number).

    Lines are decoded one by one, so a bad byte or a bad line costs only that line. An NDJSON
    file whose first two lines are JSON but not FHIR resources (a bulk-export log) is left out
    as a whole with one problem; one such line alone is reported and the file read on. A JSON
    file's Bundle entries are its resources (nested Bundles flattened); problems inside it are
    reported against line 0 with the entry path.
    """
    name = path.name
    try:
        fh = _binary(path)
    except OSError as exc:
        yield None, Problem(name, 0, f"cannot read: {exc.strerror or exc}")
        return
    with fh:
        if name.lower().endswith(_JSON):
            yield from _json_file(fh, name)
            return
        seen = 0  # content lines so far (resources or problems)
        pending: Problem | None = None  # a first line that is JSON but not a resource
        for n, text, problem in _lines(fh, name):
            res = None
            if text is not None:
                res, problem = parse_line(text, name, n)
            if res is None and problem is None:
                continue  # a blank line
            seen += 1
            if problem is not None and problem.problem == _LOG_LINE and seen <= 2:
                if seen == 1:
                    pending = problem
                    continue
                if pending is not None:
                    yield None, Problem(name, 0, "its lines are not FHIR resources: not read")
                    return
            if pending is not None:
                yield None, pending
                pending = None
            if res is not None and not is_resource_type(str(res["resourceType"])):
                problem = Problem(name, n, f"unknown resource type {res['resourceType']!r}")
                res = None
            yield res, problem
        if pending is not None:
            yield None, Problem(name, 0, "its lines are not FHIR resources: not read")


def _json_file(fh: io.BufferedIOBase, name: str) -> Read:
    try:
        data = fh.read()
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        yield None, Problem(name, 0, f"cannot read to the end ({exc}): not read")
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield None, Problem(name, line, f"not UTF-8 (byte {exc.start + 1}): file not read")
        return
    yield from _bundle_resources(text, name)


def _bundle_resources(text: str, name: str) -> Iterator[tuple[Resource | None, Problem | None]]:
    from ..fhir.read import entries_from_resources

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield None, Problem(name, exc.lineno, f"not valid JSON: {exc.msg}")
        return
    except RecursionError:
        yield None, Problem(name, 0, "not read: JSON nested too deeply")
        return
    except ValueError as exc:
        yield None, Problem(name, 0, f"not valid JSON: {str(exc)[:120]}")
        return
    try:
        entries = entries_from_resources([data], name)
    except FhirError as exc:
        yield None, Problem(name, 0, exc.message)
        return
    for e in entries:
        if is_resource_type(e.type):
            yield e.resource, None
        else:
            yield None, Problem(name, 0, f"{e.where}: unknown resource type {e.type!r}")


def canonical(res: Any) -> str:
    """A resource as canonical JSON (sorted keys, no spaces): the order resources are assessed
    in, and the text they travel as. The same text as the local engine's."""
    return json.dumps(res, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def patient_problem(exc: FhirError) -> Problem:
    """The problem a patient group that cannot be assessed is reported as (as the local engine:
    no file, line 0, the error's text without its source)."""
    return Problem("", 0, exc.problem)


def patient_key(res: Resource) -> str | None:
    """The id of the patient a resource is about (a Patient's own id), or None for shared data
    (Medication, Organization...). ``Patient/1``, ``urn:uuid:1``, absolute URLs and versioned
    references (``Patient/1/_history/2``) give ``1``."""
    if res.get("resourceType") == "Patient":
        rid = res.get("id")
        return rid if isinstance(rid, str) and rid else None
    ref = subject_reference(res)
    if ref is None:
        return None
    if ref.startswith("urn:uuid:"):
        return ref.removeprefix("urn:uuid:")
    tail = ref.split("?")[0].rstrip("/").split("/")
    if len(tail) >= 4 and tail[-2] == "_history":
        tail = tail[:-2]
    if len(tail) >= 2 and tail[-2] == "Patient" and tail[-1]:
        return tail[-1]
    return None


_SUBJECTS = ("subject", "patient", "beneficiary")


def attribute(res: Resource, file: str) -> tuple[str | None, Problem | None]:
    """Whose resource this is: (patient id, None); (None, None) for shared reference data (no
    subject); or (None, problem) for a resource that is about someone legspasm cannot name
    (a Patient without an id, a subject given only by identifier or naming no Patient), which
    is reported rather than silently treated as shared."""
    key = patient_key(res)
    if key is not None:
        return key, None
    what = f"{res.get('resourceType')}/{res.get('id', '?')}"
    if res.get("resourceType") == "Patient":
        return None, Problem(file, 0, f"{what}: a Patient without an id: not assessed")
    subject = next((res[k] for k in _SUBJECTS if isinstance(res.get(k), dict)), None)
    if subject is None:
        return None, None
    ref = subject.get("reference")
    if not isinstance(ref, str):
        how = "only by identifier" if "identifier" in subject else "without a reference"
        return None, Problem(file, 0, f"{what}: its patient is given {how}: not attributed")
    return None, Problem(file, 0, f"{what}: subject {ref!r} names no Patient: not attributed")


def assess_patient(
    patient_id: str,
    resources: Sequence[Resource],
    shared: Sequence[Resource],
    kb: Knowledge,
    as_of: dt.date,
    source: str = "screen",
) -> list[Finding]:
    """The findings for one patient from their resources and the export's shared resources.

    Raises FhirError when no Patient resource with ``patient_id`` is among ``resources``.
    """
    copies = [
        r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == patient_id
    ]
    if not copies:
        raise FhirError(source, None, f"resources name Patient/{patient_id}, which is not in it")
    if len({canonical({k: v for k, v in r.items() if k != "meta"}) for r in copies}) > 1:
        raise FhirError(
            source,
            None,
            f"Patient/{patient_id} appears {len(copies)} times with different content: "
            "not assessed (which copy is right must be settled in the source)",
        )
    patient = copies[0]
    own = tuple(
        Entry(r, f"{r.get('resourceType')}/{r.get('id')}") for r in resources if r not in copies
    )
    record = Record(
        source,
        Entry(patient, f"Patient/{patient_id}"),
        own,
        tuple(Entry(r, f"{r.get('resourceType')}/{r.get('id')}") for r in shared),
    )
    mapped = to_case(record, kb, as_of)
    return rows_of(evaluate(mapped.case, kb, as_of), patient_id)
