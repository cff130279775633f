"""Reading FHIR R4 input into one ``Record`` per patient.

Accepted: a Bundle (collection, transaction, searchset, batch, batch-response,
transaction-response, document), a single resource, an NDJSON file (one resource a line), or a
folder of NDJSON files (a FHIR Bulk Data export). Structural problems (not JSON, no
``resourceType``, an entry without a resource) raise ``FhirError`` naming the file and the
line or entry; problems inside a resource are left to the mapping, which lists them as unmapped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..documents import parse_json
from ..errors import DocumentError, FhirError
from .elements import json_kind

__all__ = [
    "BUNDLE_TYPES",
    "Entry",
    "Record",
    "entries_from_resources",
    "is_fhir",
    "read_fhir",
    "records_from_json",
    "records_from_resources",
]

BUNDLE_TYPES = frozenset(
    {
        "collection",
        "transaction",
        "searchset",
        "batch",
        "batch-response",
        "transaction-response",
        "document",
    }
)

Resource = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource and where it was found (``entry[3]``, ``Condition.000.ndjson:12``)."""

    resource: Resource
    where: str
    full_url: str | None = None

    @property
    def type(self) -> str:
        return str(self.resource.get("resourceType"))

    @property
    def label(self) -> str:
        """``Type/id`` when the resource has an id, else ``Type at <where>``."""
        rid = self.resource.get("id")
        return (
            f"{self.type}/{rid}" if isinstance(rid, str) and rid else f"{self.type} at {self.where}"
        )


@dataclass(frozen=True)
class Record:
    """The resources of one patient, with an index to resolve references between them.

    ``entries`` are the patient's own resources (and, in a single-patient file, everything else);
    ``shared`` are resources without a patient (Medication, Practitioner...) that references may
    point at; ``foreign`` are patient-data resources that name a patient not in this file.
    """

    source: str
    patient: Entry | None
    entries: tuple[Entry, ...]
    shared: tuple[Entry, ...] = ()
    foreign: tuple[Entry, ...] = ()
    notes: tuple[str, ...] = ()
    _index: dict[str, Entry] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for e in (*self.entries, *self.shared):
            rid = e.resource.get("id")
            if isinstance(rid, str):
                self._index.setdefault(f"{e.type}/{rid}", e)
            if e.full_url:
                self._index.setdefault(e.full_url, e)

    @property
    def patient_id(self) -> str | None:
        if self.patient is None:
            return None
        rid = self.patient.resource.get("id")
        return rid if isinstance(rid, str) else None

    def resolve(self, reference: str) -> Entry | None:
        """The entry a reference points at (``Medication/1``, ``urn:uuid:..``, absolute URL)."""
        hit = self._index.get(reference)
        if hit is None and "/" in reference and not reference.startswith("urn:"):
            parts = reference.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            hit = self._index.get("/".join(parts[-2:]))
        return hit


def is_fhir(data: Any) -> bool:
    """True when parsed JSON is a FHIR resource (it has a ``resourceType``)."""
    return isinstance(data, dict) and "resourceType" in data


def _check_resource(obj: Any, source: str, where: str) -> Resource:
    if not isinstance(obj, dict):
        raise FhirError(
            source, where, f"expected a FHIR resource (a JSON object), got {json_kind(obj)}"
        )
    rt = obj.get("resourceType")
    if not isinstance(rt, str) or not rt:
        raise FhirError(source, where, "a resource needs a 'resourceType'")
    if not rt[0].isupper() or not rt.isalnum():
        raise FhirError(source, where, f"{rt!r} is not a FHIR resource type")
    return obj


def _bundle_entries(
    bundle: Resource, source: str, notes: list[str], prefix: str = "Bundle"
) -> list[Entry]:
    btype = bundle.get("type")
    if btype is None:
        # R4 requires Bundle.type, but CDS Hooks draftOrders and prefetch examples often omit it.
        notes.append(f"{prefix} has no 'type': read as a collection")
    elif not isinstance(btype, str) or btype not in BUNDLE_TYPES:
        raise FhirError(
            source,
            f"{prefix}.type",
            f"{btype!r} is not a bundle type legspasm reads "
            f"(use one of {', '.join(sorted(BUNDLE_TYPES))})",
        )
    raw = bundle.get("entry", [])
    if not isinstance(raw, list):
        raise FhirError(source, f"{prefix}.entry", f"expected an array, got {json_kind(raw)}")
    out: list[Entry] = []
    for i, item in enumerate(raw):
        where = f"{prefix}.entry[{i}]"
        if not isinstance(item, dict):
            raise FhirError(source, where, f"expected an object, got {json_kind(item)}")
        if "resource" not in item:
            if "response" in item or "request" in item:
                continue  # a response or a delete carries no patient data
            raise FhirError(source, where, "entry has no 'resource'")
        res = _check_resource(item["resource"], source, where + ".resource")
        search = item.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue  # an OperationOutcome about the search, not data
        full_url = item.get("fullUrl")
        if res.get("resourceType") == "Bundle":
            out.extend(_bundle_entries(res, source, notes, f"{where}.resource"))
            continue
        out.append(Entry(res, where, full_url if isinstance(full_url, str) else None))
    return out


def records_from_json(data: Any, source: str) -> list[Record]:
    """Records from one parsed JSON document: a Bundle or a single resource."""
    res = _check_resource(data, source, None)  # type: ignore[arg-type]
    if res["resourceType"] == "Bundle":
        notes: list[str] = []
        entries = _bundle_entries(res, source, notes)
        return _group(entries, source, tuple(notes))
    return _group([Entry(res, res["resourceType"])], source)


def entries_from_resources(
    resources: Iterable[Resource], source: str, notes: list[str] | None = None
) -> list[Entry]:
    """Entries of resources already in memory, Bundles flattened (e.g. CDS Hooks draftOrders)."""
    entries: list[Entry] = []
    notes = [] if notes is None else notes
    for i, obj in enumerate(resources):
        res = _check_resource(obj, source, f"[{i}]")
        if res["resourceType"] == "Bundle":
            entries.extend(_bundle_entries(res, source, notes, f"[{i}]"))
        else:
            entries.append(Entry(res, f"[{i}]"))
    return entries


def records_from_resources(resources: Iterable[Resource], source: str) -> list[Record]:
    """Records from resources already in memory (e.g. a CDS Hooks prefetch)."""
    notes: list[str] = []
    entries = entries_from_resources(resources, source, notes)
    return _group(entries, source, tuple(notes))


def _ndjson(path: Path, skip_non_fhir: bool) -> tuple[list[Entry], str | None]:
    entries: list[Entry] = []
    try:
        fh = path.open(encoding="utf-8-sig")
    except OSError as exc:
        raise FhirError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    with fh:
        try:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path.name}:{n}"
                try:
                    obj = parse_json(line)
                except DocumentError as exc:
                    raise FhirError(str(path), f"line {n}", exc.problem) from None
                if skip_non_fhir and not entries and not is_fhir(obj):
                    return [], f"{path.name} skipped: its lines are not FHIR resources"
                entries.append(Entry(_check_resource(obj, str(path), f"line {n}"), where))
        except UnicodeDecodeError:
            raise FhirError(str(path), None, "not UTF-8 text") from None
    return entries, None


def read_fhir(path: str | Path) -> list[Record]:
    """Read a FHIR file or bulk-export folder into one Record per patient."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.ndjson"))
        if not files:
            raise FhirError(str(p), None, "folder holds no .ndjson files")
        entries: list[Entry] = []
        notes: list[str] = []
        for f in files:
            got, note = _ndjson(f, skip_non_fhir=True)
            entries.extend(got)
            if note:
                notes.append(note)
        return _group(entries, str(p), tuple(notes))
    if not p.exists():
        raise FhirError(str(p), None, "file not found")
    if p.suffix.lower() == ".ndjson":
        return _group(_ndjson(p, skip_non_fhir=False)[0], str(p))
    try:
        data = parse_json(p.read_text(encoding="utf-8-sig"))
    except DocumentError as exc:
        raise FhirError(str(p), exc.location, exc.problem) from None
    except UnicodeDecodeError:
        raise FhirError(str(p), None, "not UTF-8 text") from None
    except OSError as exc:
        raise FhirError(str(p), None, f"cannot read: {exc.strerror or exc}") from None
    return records_from_json(data, str(p))


_SUBJECT_KEYS = ("subject", "patient", "beneficiary")


def subject_reference(res: Resource) -> str | None:
    """The patient a resource is about, as written (``Patient/1`` or ``urn:uuid:...``)."""
    for key in _SUBJECT_KEYS:
        ref = res.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return str(ref["reference"])
    return None


def _content(res: Resource) -> str:
    return json.dumps({k: v for k, v in res.items() if k != "meta"}, sort_keys=True)


def _group(entries: list[Entry], source: str, notes: tuple[str, ...] = ()) -> list[Record]:
    """One Record per patient. The same Patient sent twice (a CDS Hooks prefetch under two keys,
    or a searchset and a read) is one patient: its copies are merged, the first one kept. Two
    copies that differ (other than in ``meta``) are an error: which one is right is not ours to
    guess (the screen refuses the same patient the same way)."""
    patients: list[Entry] = []
    keys: dict[str, int] = {}
    for pe in (e for e in entries if e.type == "Patient"):
        rid = pe.resource.get("id")
        known = keys.get(f"Patient/{rid}") if isinstance(rid, str) else None
        if known is not None and _content(pe.resource) != _content(patients[known].resource):
            raise FhirError(
                source,
                f"Patient/{rid}",
                "appears more than once with different content (which copy is right must be "
                "settled in the source)",
            )
        i = known if known is not None else len(patients)
        if known is None:
            patients.append(pe)
        if isinstance(rid, str):
            keys[f"Patient/{rid}"] = i
        if pe.full_url:
            keys[pe.full_url] = i
    if not patients:
        return [Record(source, None, tuple(entries), notes=notes)]
    own: list[list[Entry]] = [[] for _ in patients]
    shared: list[Entry] = []
    foreign: list[Entry] = []
    for e in entries:
        if e.type == "Patient":
            continue
        ref = subject_reference(e.resource)
        if ref is None:
            if len(patients) == 1:
                own[0].append(e)
            else:
                shared.append(e)
            continue
        key = ref if ref in keys else "/".join(ref.rstrip("/").split("/")[-2:])
        if key in keys:
            own[keys[key]].append(e)
        else:
            foreign.append(e)
    return [
        Record(source, pe, tuple(own[i]), tuple(shared), tuple(foreign), notes)
        for i, pe in enumerate(patients)
    ]
