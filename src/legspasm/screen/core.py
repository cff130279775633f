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
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..documents import NotFinite, finite
from ..engine import evaluate
from ..errors import FhirError
from ..fhir import to_case
from ..fhir.attribution import Party, PartyNames, attribution_of
from ..fhir.read import Entry, Record, subject_reference
from ..knowledge import Knowledge
from .findings import INCOMPLETE, Finding, PatientColumns, mark_row, rows_of

__all__ = [
    "ANYONE",
    "INCOMPLETE",
    "MAX_PROBLEMS_KEPT",
    "Problem",
    "Screened",
    "assess_patient",
    "attribute",
    "canonical",
    "export_loss",
    "input_files",
    "is_resource_type",
    "lost_line",
    "owner_of",
    "parse_line",
    "patient_key",
    "read_file",
    "screen_patient",
    "unique",
]

Resource = Mapping[str, Any]

# Problems are all counted; this many are kept for the report (each engine keeps the first).
MAX_PROBLEMS_KEPT = 10_000


ANYONE = "*"
"""The owner of a problem that lost data whose patient is unknown: any patient may be affected."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """A line or resource that was not used, and why (reported, never silently skipped).

    ``owner`` says whose findings it can change: a patient id; ``ANYONE`` when the lost data's
    patient is unknown (a line that cannot be read, a file that ends early, shared reference
    data), so every patient's findings are marked incomplete; "" when it loses no patient's data
    (a file that is not an export file, a bulk-export log, an identical duplicate).
    """

    file: str
    line: int  # 1-based; 0 for the whole file
    problem: str
    owner: str = ANYONE


Read = Iterator[tuple[Resource | None, Problem | None]]
"""What reading a file yields: a resource, or the problem with a line."""


def parse_line(text: str, file: str, line: int) -> tuple[Resource | None, Problem | None]:
    """One NDJSON line as a FHIR resource, or the problem with it. Blank lines give neither."""
    if not text.strip():
        return None, None
    try:
        obj = json.loads(text, parse_float=finite, parse_constant=finite)
    except json.JSONDecodeError as exc:
        return None, Problem(file, line, f"not valid JSON: {exc.msg}", owner_of(text))
    except NotFinite as exc:
        return None, Problem(file, line, f"not valid JSON: {exc}", owner_of(text))
    except RecursionError:
        return None, Problem(file, line, "not read: JSON nested too deeply", owner_of(text))
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        return None, Problem(file, line, f"not valid JSON: {str(exc)[:120]}", owner_of(text))
    if not isinstance(obj, dict):
        return None, Problem(file, line, "not a JSON object")
    rt = obj.get("resourceType")
    if not isinstance(rt, str) or not rt or not rt[0].isupper() or not rt.isalnum():
        return None, Problem(file, line, _LOG_LINE, _key_of_subject(obj) or ANYONE)
    return obj, None


_SUBJECT_TEXT = re.compile(
    r'"(?:subject|patient|beneficiary)"\s*:\s*\{[^{}]*?"reference"\s*:\s*"([^"\\]{1,512})"'
)


def owner_of(text: str) -> str:
    """Whose data a line that cannot be used holds: the patient its subject names, when the text
    names exactly one; else ``ANYONE`` (a line of shared data, or one too damaged to tell)."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("resourceType"), str):
        key = patient_key(obj)
        return key if key is not None else ANYONE
    found = {_key_of_reference(ref) for ref in _SUBJECT_TEXT.findall(text[:1_000_000])}
    keys = {k for k in found if k}
    return keys.pop() if len(keys) == 1 else ANYONE


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
            what = "not .ndjson or .json (optionally .gz): not read"
            skipped.append(Problem(p.name, 0, what, ""))
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
_NOT_RESOURCES = "its lines are not FHIR resources: not read"


def _lines(fh: io.BufferedIOBase, name: str) -> Iterator[tuple[int, str | None, Problem | None]]:
    """Numbered lines decoded one by one: a byte that is not UTF-8 costs its line (reported
    with its number), and a compressed file that ends early reports how far it was read."""
    n = 0
    try:
        for n, raw in enumerate(fh, start=1):
            codec = "utf-8-sig" if n == 1 else "utf-8"
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as exc:
                owner = owner_of(raw.decode(codec, errors="replace"))
                problem = f"not UTF-8 (byte {exc.start + 1}): line not read"
                yield n, None, Problem(name, n, problem, owner)
                continue
            yield n, text, None
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        what = f"{n} lines read" if n else "no line read"
        problem = f"file ends early ({exc}): {what}, the rest is missing"
        yield n + 1, None, Problem(name, n + 1, problem)


def read_file(path: Path) -> Iterator[tuple[Resource | None, Problem | None]]:
    """Every resource in one export file, or the problem with a line (file name and line number).

    Lines are decoded one by one, so a bad byte or a bad line costs only that line. An NDJSON
    file none of whose lines is a FHIR resource, whose JSON lines name no patient (a bulk-export
    log), is reported as a whole with one problem; otherwise every line without a resourceType
    is reported and every resource read. A JSON
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
        # A file that opens with JSON lines that have no resourceType and name no patient: a
        # bulk-export log when the whole file is like that (one problem for the file). Once any
        # other line comes, each of those lines is a problem of its own (the first _HEAD_KEPT by
        # line, the rest as one range).
        head: list[Problem] = []
        head_more: list[int] = []  # the first and last line past the kept ones
        in_head = True
        for n, text, problem in _lines(fh, name):
            res = None
            if text is not None:
                res, problem = parse_line(text, name, n)
            if res is None and problem is None:
                continue  # a blank line
            if in_head and problem is not None and _is_log_line(problem):
                if len(head) < _HEAD_KEPT:
                    head.append(problem)
                else:
                    head_more[len(head_more) > 0 :] = [n]
                continue
            if in_head:
                in_head = False
                yield from _head(name, head, head_more)
            if res is not None and not is_resource_type(str(res["resourceType"])):
                what = f"unknown resource type {res['resourceType']!r}"
                problem = Problem(name, n, what, patient_key(res) or "")
                res = None
            yield res, problem
        if in_head and head:
            yield None, Problem(name, 0, _NOT_RESOURCES, "")


_HEAD_KEPT = 100


def _is_log_line(problem: Problem) -> bool:
    return problem.problem == _LOG_LINE and problem.owner == ANYONE


def _head(name: str, head: list[Problem], more: list[int]) -> Iterator[tuple[None, Problem]]:
    for problem in head:
        yield None, problem
    if more:
        first, last = more[0], more[-1]
        what = f"lines {first}-{last}: {_LOG_LINE}" if last > first else _LOG_LINE
        yield None, Problem(name, first, what, ANYONE)


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
        data = json.loads(text, parse_float=finite, parse_constant=finite)
    except json.JSONDecodeError as exc:
        yield None, Problem(name, exc.lineno, f"not valid JSON: {exc.msg}")
        return
    except NotFinite as exc:
        yield None, Problem(name, 0, f"not valid JSON: {exc}")
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
            what = f"{e.where}: unknown resource type {e.type!r}"
            yield None, Problem(name, 0, what, patient_key(e.resource) or "")


def canonical(res: Any) -> str:
    """A resource as canonical JSON (sorted keys, no spaces): the order resources are assessed
    in, and the text they travel as. The same text as the local engine's."""
    return json.dumps(res, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def patient_key(res: Resource) -> str | None:
    """The id of the patient a resource is about (a Patient's own id), or None for shared data
    (Medication, Organization...). ``Patient/1``, ``urn:uuid:1``, absolute URLs and versioned
    references (``Patient/1/_history/2``) give ``1``."""
    if res.get("resourceType") == "Patient":
        rid = res.get("id")
        return rid if isinstance(rid, str) and rid else None
    return _key_of_subject(res)


def _key_of_subject(res: Resource) -> str | None:
    ref = subject_reference(res)
    return None if ref is None else _key_of_reference(ref)


def _key_of_reference(ref: str) -> str | None:
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
        return None, Problem(file, 0, f"{what}: a Patient without an id: not assessed", "")
    subject = next((res[k] for k in _SUBJECTS if isinstance(res.get(k), dict)), None)
    if subject is None:
        return None, None
    ref = subject.get("reference")
    if not isinstance(ref, str):
        how = "only by identifier" if "identifier" in subject else "without a reference"
        return None, Problem(file, 0, f"{what}: its patient is given {how}: not attributed")
    what = f"{what}: subject {ref!r} names no Patient: not attributed"
    return None, Problem(file, 0, what, "")


_LOST = "!"  # a lost-line marker among a patient's resource texts (canonical JSON starts "{")


def lost_line(p: Problem) -> str:
    """How a line lost from a patient's data travels with their resources to their assessment."""
    return _LOST + json.dumps([p.file, p.line, p.problem], ensure_ascii=False)


def _where(problems: Sequence[Problem], limit: int = 3) -> str:
    shown = ", ".join(
        f"{p.file}:{p.line}" if p.line else (p.file or p.problem) for p in problems[:limit]
    )
    more = f" and {len(problems) - limit:,} more" if len(problems) > limit else ""
    return shown + more


def export_loss(count: int, first: Sequence[Problem]) -> str:
    """The text every patient's mark carries when the export lost data whose patient is unknown
    (``count`` such problems, ``first`` the smallest few in order); "" when there were none."""
    if not count:
        return ""
    shown = ", ".join(f"{p.file}:{p.line}" if p.line else p.file for p in first)
    more = f" and {count - len(first):,} more" if count > len(first) else ""
    return (
        f"the export lost {count:,} line(s) or file(s) whose patient is unknown "
        f"({shown}{more}), any of which may be this patient's"
    )


def unique(texts: Sequence[str], owner: str) -> tuple[list[Resource], list[Problem]]:
    """Resources (canonical texts, sorted) parsed, each resource id once: copies that are the
    same but for ``meta`` are used once (reported, no data lost); copies with different content
    are all kept and reported as a conflict against ``owner``."""
    out: list[Resource] = []
    problems: list[Problem] = []
    by_id: dict[str, list[Resource]] = {}
    for t in texts:
        res = json.loads(t)
        rid = res.get("id")
        if not isinstance(rid, str) or not rid:
            out.append(res)
            continue
        by_id.setdefault(f"{res['resourceType']}/{rid}", []).append(res)
    for ref, copies in by_id.items():
        contents = {canonical({k: v for k, v in r.items() if k != "meta"}) for r in copies}
        if len(copies) == 1:
            out.extend(copies)
        elif len(contents) == 1:
            out.append(copies[0])
            problems.append(
                Problem("", 0, f"{ref} appears {len(copies)} times, the same: used once", "")
            )
        elif ref.startswith("Patient/"):
            out.extend(copies)  # assess_patient refuses the patient, saying why
        else:
            out.extend(copies)
            what = f"{ref} appears {len(copies)} times with different content: every copy used"
            problems.append(Problem("", 0, what, owner))
    out.sort(key=canonical)
    return out, problems


@dataclass(frozen=True, slots=True)
class Screened:
    """One patient as the screen saw them: their rows, the problems found while assessing them,
    whether they were assessed, and whose patient they are (for the rates' denominators)."""

    rows: list[Finding]
    problems: list[Problem]
    assessed: bool
    patient: PatientColumns = field(default_factory=PatientColumns)
    prescribers: tuple[Party, ...] = ()


def screen_patient(
    patient_id: str,
    texts: Sequence[str],
    shared: Sequence[Resource],
    kb: Knowledge,
    as_of: dt.date,
    source: str,
    lost_elsewhere: str = "",
    names: PartyNames | None = None,
) -> Screened:
    """One patient's group as the screen sees it (canonical resource texts and lost-line
    markers, any order). The rows end with a ``DATA-INCOMPLETE`` row whenever data that may be
    theirs was lost (``lost_elsewhere``: the export-wide loss, from ``export_loss``), their
    resources conflict, or they could not be assessed; every engine calls this, so their rows
    are identical. ``names``: the export's clinics and clinicians (``PartyNames`` of
    ``shared``), made once for many patients."""
    lost: list[Problem] = []
    own: list[str] = []
    for t in texts:
        if t.startswith(_LOST):
            file, line, problem = json.loads(t[1:])
            lost.append(Problem(file, line, problem, patient_id))
        else:
            own.append(t)
    resources, problems = unique(sorted(own), patient_id)
    conflicts = [p for p in problems if p.owner == patient_id]
    try:
        one = assess_patient(patient_id, resources, shared, kb, as_of, source, names)
    except FhirError as exc:
        one = Screened([], [], False)
        problems.append(Problem("", 0, exc.problem, patient_id))
    parts: list[str] = []
    if not one.assessed:
        parts.append(f"not assessed: {problems[-1].problem}")
    lost.sort()
    if lost:
        parts.append(f"{len(lost):,} line(s) of this patient's data not read ({_where(lost)})")
    parts.extend(p.problem for p in conflicts)
    if lost_elsewhere:
        parts.append(lost_elsewhere)
    rows = one.rows
    if parts:
        status = (
            "not_assessed"
            if not one.assessed
            else ("patient_data" if lost or conflicts else "export_data")
        )
        detail = "; ".join(parts) + ": findings may be missing; see the problems file."
        rows = sorted([*rows, mark_row(patient_id, status, detail, kb.version, one.patient)])
    return Screened(rows, problems, one.assessed, one.patient, one.prescribers)


def assess_patient(
    patient_id: str,
    resources: Sequence[Resource],
    shared: Sequence[Resource],
    kb: Knowledge,
    as_of: dt.date,
    source: str = "screen",
    names: PartyNames | None = None,
) -> Screened:
    """The findings for one patient from their resources and the export's shared resources,
    with whose patient they are.

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
    shared_entries = tuple(Entry(r, f"{r.get('resourceType')}/{r.get('id')}") for r in shared)
    record = Record(source, Entry(patient, f"Patient/{patient_id}"), own, shared_entries)
    mapped = to_case(record, kb, as_of)
    a = evaluate(mapped.case, kb, as_of)
    att = attribution_of(record, mapped, names or PartyNames((*own, *shared_entries)))
    # A patient who has died is screened (counted) but on no worklist.
    rows = rows_of(a, kb, patient_id, att) if mapped.deceased is None else []
    return Screened(rows, [], True, PatientColumns.of(a, att), att.prescribers)
