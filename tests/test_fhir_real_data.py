"""The FHIR mapping on real published FHIR data (``/work/shared/data``; skipped when absent).

Synthea patients (two bundle exports and a bulk NDJSON export), the HL7 US Core examples, CDS
Hooks requests from the HL7 PDDI and CDC opioid guides, the AHRQ pain-management test patient and
the CMS506 eCQM test patients. Every record maps and evaluates; what is recognised is checked by
content; every resource of a type the mapping reads is accounted for (used, or listed unmapped).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from legspasm import Knowledge, evaluate
from legspasm.engine.derive import match_drug
from legspasm.errors import FhirError
from legspasm.fhir import (
    MappedCase,
    Record,
    read_fhir,
    records_from_json,
    records_from_resources,
    to_case,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AS_OF = dt.date(2026, 11, 21)

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# Resource types the mapping reads (Patient is accounted differently: one resource, many fields).
READ_TYPES = frozenset(
    {
        "Condition",
        "MedicationRequest",
        "MedicationDispense",
        "MedicationStatement",
        "Observation",
        "AllergyIntolerance",
        "QuestionnaireResponse",
    }
)
NOT_IN_KB = "not in the knowledge base"
NOT_CHECKED = "not in the knowledge base: interactions not checked"
BENZO_WORDS = re.compile(r"azepam|azolam|chlordiazepoxide|clobazam|clorazepate", re.IGNORECASE)


def _need(folder: Path) -> Path:
    """The folder, or skip the test when this checkout has no shared data."""
    if not folder.is_dir():
        pytest.skip(f"shared data not present: {folder}")
    return folder


def _rtype(label: str) -> str:
    """The resource type of a DataUsed/Unmapped source (``Type/id`` or ``Type at where``)."""
    return label.split("/", 1)[0].split(" at ", 1)[0]


def _label(res: Mapping[str, Any]) -> str | None:
    rid = res.get("id")
    return f"{res['resourceType']}/{rid}" if isinstance(rid, str) and rid else None


def _codes(res: Mapping[str, Any], key: str, system: str) -> set[str]:
    cc = res.get(key)
    if not isinstance(cc, dict):
        return set()
    return {
        str(c.get("code"))
        for c in cc.get("coding", [])
        if isinstance(c, dict) and c.get("system") == system
    }


def _flatten(resources: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """Resources with Bundles opened (entries of R4 shape only)."""
    for res in resources:
        if not isinstance(res, dict):
            continue
        if res.get("resourceType") == "Bundle":
            yield from _flatten(e.get("resource") for e in res.get("entry", []) or [])
        elif "resourceType" in res:
            yield res


def _accounting(mapped: Iterable[MappedCase], resources: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per read type: resources used + resources not used at all == resources in the input.

    A resource may fill several fields (a combination product, a condition in two concepts), and a
    used combination product may also list an ingredient the knowledge base lacks; no other
    resource is both used and unmapped. ``MappedCase.counts`` must agree with the rows.
    """
    wanted: Counter[str] = Counter(
        r["resourceType"] for r in resources if r["resourceType"] in READ_TYPES
    )
    used: dict[str, set[str]] = defaultdict(set)
    counted: Counter[str] = Counter()
    problems = []
    for m in mapped:
        for d in m.data_used:
            used[_rtype(d.source)].add(d.source)
        for rt, c in m.counts.items():
            counted[rt] += c["used"] + c["unmapped"]
        for u in m.unmapped:
            both = {x for x in u.sources if x in {d.source for d in m.data_used}}
            if both and not u.reason.startswith("ingredient not in the knowledge base"):
                problems.append(f"{u.resource_type}: both used and unmapped: {sorted(both)[:3]}")
    for rt in sorted(set(wanted) | {t for t in counted if t in READ_TYPES}):
        if counted[rt] != wanted[rt]:
            problems.append(f"{rt}: counts give {counted[rt]} != {wanted[rt]} in input")
    for m in mapped:
        for rt, c in m.counts.items():
            mine = {d.source for d in m.data_used if _rtype(d.source) == rt}
            if rt in READ_TYPES and c["used"] != len(mine):
                problems.append(f"{rt}: counts used {c['used']} != {len(mine)} distinct sources")
    return problems


def _map_all(records: list[Record], kb: Knowledge, as_of: dt.date = AS_OF) -> list[MappedCase]:
    """Map and evaluate each record; the annotated assessment carries the record sections."""
    out = []
    for rec in records:
        mapped = to_case(rec, kb, as_of)
        assessment = mapped.annotate(evaluate(mapped.case, kb, as_of))
        assert assessment.case_id == rec.patient_id
        assert assessment.data_used == list(mapped.data_used)
        assert assessment.unmapped == list(mapped.unmapped)
        out.append(mapped)
    return out


def _drug_ids(kb: Knowledge, mapped: MappedCase) -> list[str | None]:
    return [match_drug(kb, m.name, m.rxnorm) for m in mapped.case.medications]


def _classes(kb: Knowledge, mapped: MappedCase) -> set[str]:
    return {c for d in _drug_ids(kb, mapped) if d is not None for c in kb.drugs[d].classes}


def _check_known_or_reported(
    kb: Knowledge, mapped: MappedCase, display: str, drug_class: str | None = None
) -> None:
    """A medicine is recognised (in ``drug_class``) if the knowledge base has it, else reported."""
    known = match_drug(kb, display, None)
    if known is not None:
        assert known in _drug_ids(kb, mapped), (display, _drug_ids(kb, mapped))
        assert drug_class is None or drug_class in kb.drugs[known].classes
    else:  # kept by name, and said not to be checked
        hits = [d for d in mapped.data_used if d.field == "medications" and display in d.value]
        assert hits, (display, mapped.data_used)
        assert all(NOT_CHECKED in d.value and d.matched_by == "text" for d in hits), hits
        assert display in [m.name for m in mapped.case.medications]


# -- Synthea: every patient of three exports ------------------------------------------------------

SYNTHEA_BUNDLES = (
    "synthea-smart-generated-sample-data/bundles",
    "synthea-smart-bulk-data-server/bundles",
)
SYNTHEA_BULK = "synthea-smart-bulk-ndjson-10"


@dataclass
class Source:
    """One Synthea input (a bundle file or the bulk-export folder) and what came of it."""

    name: str
    resources: list[Mapping[str, Any]]
    mapped: list[MappedCase] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class SyntheaRun:
    sources: list[Source]
    loinc: dict[str, set[str]]  # Observation label -> its LOINC codes
    rxnorm: dict[str, set[str]]  # MedicationRequest label -> its RxNorm codes

    @property
    def mapped(self) -> list[MappedCase]:
        return [m for s in self.sources for m in s.mapped]


def _synthea_inputs() -> list[tuple[Path, list[Mapping[str, Any]]]]:
    """Each input with its resources, parsed here independently of legspasm's reader."""
    inputs: list[tuple[Path, list[Mapping[str, Any]]]] = []
    for folder in SYNTHEA_BUNDLES:
        for path in sorted(_need(SHARED / folder).glob("*.json")):
            bundle = json.loads(path.read_text(encoding="utf-8"))
            inputs.append((path, [e["resource"] for e in bundle["entry"]]))
    bulk = _need(SHARED / SYNTHEA_BULK)
    lines = []
    for path in sorted(bulk.glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line) if line.strip() else {}
            if "resourceType" in obj:  # log.ndjson holds export events, not resources
                lines.append(obj)
    inputs.append((bulk, lines))
    return inputs


@pytest.fixture(scope="module")
def synthea(kb: Knowledge) -> SyntheaRun:
    """All Synthea patients read, mapped and evaluated once; exceptions are collected."""
    sources: list[Source] = []
    loinc: dict[str, set[str]] = {}
    rxnorm: dict[str, set[str]] = {}
    for path, resources in _synthea_inputs():
        for res in resources:
            label = _label(res)
            if label and res["resourceType"] == "Observation":
                loinc[label] = _codes(res, "code", LOINC)
            if label and res["resourceType"] == "MedicationRequest":
                rxnorm[label] = _codes(res, "medicationCodeableConcept", RXNORM)
        src = Source(path.name, resources)
        sources.append(src)
        try:
            records = read_fhir(path)
        except Exception as exc:  # collected and reported by name, not raised here
            src.errors.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        for rec in records:
            try:
                src.mapped += _map_all([rec], kb)
            except Exception as exc:
                src.errors.append(f"{path} Patient/{rec.patient_id}: {type(exc).__name__}: {exc}")
    return SyntheaRun(sources, loinc, rxnorm)


def test_synthea_every_patient_maps_and_evaluates(
    synthea: SyntheaRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """All patients map and evaluate; one record per Patient; totals printed per type."""
    failures = [e for s in synthea.sources for e in s.errors]
    assert not failures, "\n".join(failures)
    wrong = [
        f"{s.name}: {len(s.mapped)} records for {n} Patients"
        for s in synthea.sources
        if len(s.mapped) != (n := sum(r["resourceType"] == "Patient" for r in s.resources))
    ]
    assert not wrong, wrong
    bulk = next(s for s in synthea.sources if s.name == SYNTHEA_BULK)
    assert len(bulk.mapped) == 9

    inputs: Counter[str] = Counter(r["resourceType"] for s in synthea.sources for r in s.resources)
    used: dict[str, set[str]] = defaultdict(set)
    unmapped: Counter[str] = Counter()
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for m in synthea.mapped:
        for d in m.data_used:
            used[_rtype(d.source)].add(d.source)
            found[d.field][re.split(r" \(| \d", d.value)[0]] += 1
        for u in m.unmapped:
            unmapped[u.resource_type] += u.count
    rows = [f"{'resource type':<22}{'in input':>10}{'used':>8}{'unmapped':>10}"]
    for rt in ("Condition", "MedicationRequest", "Observation", "AllergyIntolerance"):
        rows.append(f"{rt:<22}{inputs[rt]:>10}{len(used[rt]):>8}{unmapped[rt]:>10}")
    for fld in ("conditions", "labs", "medications"):
        rows.append(f"{fld}: " + ", ".join(f"{k} {n}" for k, n in found[fld].most_common()))
    with capsys.disabled():
        print(
            f"\nSynthea: {len(synthea.mapped)} patients from {len(synthea.sources)} inputs\n"
            + "\n".join(rows)
        )


def test_synthea_every_resource_is_accounted_for(synthea: SyntheaRun) -> None:
    """Distinct resources used + unmapped == resources in the input, per source and type."""
    dupes = [
        (s.name, label)
        for s in synthea.sources
        for label, n in Counter(filter(None, map(_label, s.resources))).items()
        if n > 1
    ]
    assert not dupes, dupes  # labels are unique, so distinct labels count resources
    problems = [
        f"{s.name}: {p}" for s in synthea.sources for p in _accounting(s.mapped, s.resources)
    ]
    assert not problems, problems[:20]


def test_synthea_conditions_are_recognised_by_code(synthea: SyntheaRun) -> None:
    """Synthea's SNOMED codes reach knowledge-base concepts (pregnancy, heart failure, stroke)."""
    rows = [d for m in synthea.mapped for d in m.data_used if d.field == "conditions"]
    concepts = Counter(d.value.split(" ")[0] for d in rows)
    assert any(d.value.startswith("pregnancy (") and "SNOMED 72892002" in d.value for d in rows)
    assert concepts["pregnancy"] >= 10
    assert concepts["heart_failure"] >= 1
    assert concepts["stroke"] >= 1
    assert all(d.matched_by == "code" for d in rows)
    in_cases = {c.concept for m in synthea.mapped for c in m.case.conditions}
    assert {"pregnancy", "heart_failure", "stroke"} <= in_cases


def test_synthea_creatinine_is_used_for_every_patient_who_has_one(
    synthea: SyntheaRun, kb: Knowledge
) -> None:
    """Every patient with a serum creatinine (LOINC 38483-4) gets the latest as the lab."""
    with_result = 0
    for m in synthea.mapped:
        creat = [
            label
            for label in {u for g in m.unmapped for u in g.sources}
            | {d.source for d in m.data_used}
            if "38483-4" in synthea.loinc.get(label, ())
        ]
        labs = [lab for lab in m.case.labs if lab.name == "creatinine"]
        rows = [d for d in m.data_used if d.field == "labs" and d.value.startswith("creatinine ")]
        if not creat:
            assert not labs
            continue
        with_result += 1
        assert len(labs) == 1, (m.case.id, labs)
        assert len(rows) == 1, (m.case.id, rows)
        assert "38483-4" in synthea.loinc[rows[0].source]
        assert rows[0].matched_by == "code"
        assert labs[0].unit == "mg/dL"
        assert 0.1 <= labs[0].value <= 20
    assert with_result >= 100
    bad_units = [
        (u.item, u.reason)
        for m in synthea.mapped
        for u in m.unmapped
        if u.reason.startswith("unit not usable")
    ]
    assert not bad_units  # incl. eGFR in mL/min/{1.73_m2} and mL/min, TSH in m[IU]/L


def test_synthea_medicines_are_recognised_by_text(synthea: SyntheaRun, kb: Knowledge) -> None:
    """Synthea codes products, not ingredients: oxycodone etc. are found by name, and say so."""
    for drug, cls in (
        ("oxycodone", "opioid"),
        ("hydrochlorothiazide", None),
        ("diazepam", "benzodiazepine"),  # written "Diazepam [Valium]" in some bundles
    ):
        rows = [
            d
            for m in synthea.mapped
            for d in m.data_used
            if d.field == "medications" and d.value.startswith(f"{drug} (")
        ]
        assert rows, drug
        for d in rows:
            assert d.matched_by == "text", d
            codes = synthea.rxnorm[d.source]
            assert codes, d
            assert not codes & set(kb.lookups.drug_by_code), d  # a product code
        entries = [
            e
            for m in synthea.mapped
            for e in m.case.medications
            if match_drug(kb, e.name, e.rxnorm) == drug
        ]
        assert entries
        assert all(e.name and e.rxnorm is None for e in entries)
        if cls:
            assert cls in kb.drugs[drug].classes


def test_synthea_untrimmed_bundles_report_every_other_resource_type(kb: Knowledge) -> None:
    """Full upstream bundles: Encounter, Claim... are listed as types legspasm does not use."""
    paths = [
        p
        for folder in SYNTHEA_BUNDLES
        for p in sorted((_need(SHARED / folder).parent / "full-untrimmed").glob("*.json"))
    ]
    assert paths
    for path in paths:
        resources = [e["resource"] for e in json.loads(path.read_text("utf-8"))["entry"]]
        (mapped,) = _map_all(read_fhir(path), kb)
        assert not _accounting([mapped], resources), path.name
        other = Counter(
            r["resourceType"]
            for r in resources
            if r["resourceType"] not in READ_TYPES | {"Patient", "Medication"}
        )
        assert other["Encounter"] >= 1
        reported = {
            u.resource_type: u.count
            for u in mapped.unmapped
            if u.reason == "resource type not used by legspasm"
        }
        assert reported == dict(other), path.name


def test_counts_used_counts_resources(synthea: SyntheaRun) -> None:
    """``MappedCase.counts`` says how many resources were used (its docstring)."""
    for m in synthea.mapped:
        distinct = Counter(_rtype(s) for s in {d.source for d in m.data_used})
        assert {t: c["used"] for t, c in m.counts.items() if c["used"]} == dict(distinct)


# -- HL7 US Core examples ------------------------------------------------------------------------

US_CORE = SHARED / "hl7-us-core-examples"
US_CORE_READ = READ_TYPES | {"Patient", "Bundle"}


def _us_core(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_need(US_CORE) / name).read_text(encoding="utf-8"))
    return data


def _one(kb: Knowledge, resources: list[dict[str, Any]], as_of: dt.date = AS_OF) -> MappedCase:
    (mapped,) = _map_all(records_from_resources(resources, "test"), kb, as_of)
    return mapped


def test_us_core_examples_map(kb: Knowledge) -> None:
    """Every example of a type legspasm reads maps and evaluates; each resource is accounted."""
    seen: Counter[str] = Counter()
    failures = []
    for path in sorted(_need(US_CORE).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["resourceType"] not in US_CORE_READ:
            continue
        seen[data["resourceType"]] += 1
        try:
            mapped = _map_all(records_from_json(data, path.name), kb)
        except Exception as exc:
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        failures += [f"{path.name}: {p}" for p in _accounting(mapped, list(_flatten([data])))]
    assert not failures, failures
    assert seen["Observation"] >= 100
    assert seen["Bundle"] >= 3
    assert seen["MedicationRequest"] >= 3


def test_us_core_serum_creatinine(kb: Knowledge) -> None:
    """The serum creatinine example (LOINC 2160-0) becomes the creatinine lab, value and date."""
    found = 0
    for path in sorted(_need(US_CORE).glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        if res["resourceType"] != "Observation" or "2160-0" not in _codes(res, "code", LOINC):
            continue
        found += 1
        (rec,) = records_from_json(res, path.name)
        mapped = to_case(rec, kb, AS_OF)
        (lab,) = mapped.case.labs
        q = res["valueQuantity"]
        assert (lab.name, lab.value, lab.unit) == ("creatinine", q["value"], q["code"])
        assert lab.date == dt.date.fromisoformat(res["effectiveDateTime"][:10])
        (row,) = mapped.data_used
        assert row.source == f"Observation/{res['id']}"
        assert (row.field, row.matched_by) == ("labs", "code")
        assert not mapped.unmapped
    assert found >= 1


def test_us_core_contained_and_referenced_medication(kb: Knowledge) -> None:
    """A contained or referenced Medication is resolved; a dangling reference is reported."""
    contained = _us_core("medicationrequest-contained-oral-axid.json")
    referenced = _us_core("medicationrequest-referenced-oral-axid.json")
    med2 = _us_core("uscore-med2.json")
    text = contained["contained"][0]["code"]["text"]
    assert med2["code"]["text"] == text  # the same nizatidine product both ways
    known = match_drug(kb, text, None)
    for resources in ([contained], [referenced, med2]):
        mapped = _one(kb, resources)
        if known:
            assert _drug_ids(kb, mapped) == [known]
        else:  # kept by the Medication's own text: proof the Medication was found
            (d,) = [d for d in mapped.data_used if d.field == "medications"]
            assert d.source == f"MedicationRequest/{resources[0]['id']}"
            assert text in d.value
            assert NOT_CHECKED in d.value
    alone = _one(kb, [referenced])
    (u,) = alone.unmapped
    assert u.item == "MedicationRequest.medicationReference"
    assert "Medication/uscore-med2 is not in this input" in u.reason
    assert not alone.case.medications


def test_us_core_allergies_are_mapped_or_reported(kb: Knowledge) -> None:
    """Drug and non-drug allergy examples: either an allergy in the case or a stated reason."""
    for name in (
        "allergyintolerance-example.json",
        "allergyintolerance-non-pharmacologic-agent-example.json",
    ):
        res = _us_core(name)
        mapped = _one(kb, [res])
        label = f"AllergyIntolerance/{res['id']}"
        used = [d for d in mapped.data_used if d.source == label]
        unmapped = [u for u in mapped.unmapped if label in u.sources]
        assert len(used) + len(unmapped) == 1, name
        if used:
            assert used[0].field == "allergies"
            assert mapped.case.allergies
        else:
            assert unmapped[0].item == res["code"]["text"]
            assert unmapped[0].reason == "not a knowledge-base drug or drug class"
            assert not mapped.case.allergies


def test_us_core_dated_observations_are_used_while_current(kb: Knowledge) -> None:
    """Pregnancy status and body weight count at their date and are stale years later."""
    for name, fld, value in (
        ("observation-pregnancy-status.json", "patient.pregnant", "true"),
        ("weight.json", "patient.weight", "20.0941 kg"),
    ):
        res = _us_core(name)
        when = dt.date.fromisoformat(res["effectiveDateTime"][:10])
        (row,) = _one(kb, [res], when).data_used
        assert (row.field, row.value.split(" (")[0], row.matched_by) == (fld, value, "code")
        late = _one(kb, [res], AS_OF)
        assert not late.data_used
        (u,) = late.unmapped
        assert u.reason.startswith("older than")
        assert u.reason.endswith("not used")


def test_us_core_individual_sex_extension(kb: Knowledge) -> None:
    """Sex from the US Core individual-sex extension when Patient.gender is absent."""
    res = _us_core("patient-example.json")
    assert "gender" not in res
    assert _one(kb, [res]).case.patient.sex == "female"


# -- CDS Hooks requests: HL7 PDDI and CDC opioid guides --------------------------------------------

PDDI = SHARED / "hl7-pddi-cds"
OPIOID = SHARED / "cdc-opioid-cds-r4"


def _hook_resources(request: Mapping[str, Any]) -> list[Any]:
    """The FHIR content of a CDS Hooks request: prefetch values and the draft orders.

    Prefetch sits at the top level or, in the PDDI medication-prescribe examples, in ``context``;
    a value is a resource, a Bundle or null (nothing to prefetch). Some values use the pre-1.0
    draft shape ``{"response": ..., "resource": ...}``; the resource is taken out of it.
    """
    context = request.get("context") or {}
    prefetch = {**(context.get("prefetch") or {}), **(request.get("prefetch") or {})}
    out: list[Any] = []
    for value in prefetch.values():
        if value is None:
            continue
        if isinstance(value, dict) and "resourceType" not in value and "resource" in value:
            value = value["resource"]
        out.append(value)
    for key in ("draftOrders", "medications"):  # medications: the medication-prescribe hook
        if context.get(key) is not None:
            out.append(context[key])
    return out


def _bundles(obj: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(obj, dict):
        if obj.get("resourceType") == "Bundle":
            yield obj
        for v in obj.values():
            yield from _bundles(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _bundles(v)


def _shape(resources: list[Any]) -> str:
    """'r4'; 'untyped' (a Bundle without type); 'pre-r4' (entries without a resource...)."""
    bundles = list(_bundles(resources))
    bare = any("resource" not in e for b in bundles for e in b.get("entry") or [])
    if bare or not all(isinstance(r, dict) for r in resources):
        return "pre-r4"
    return "untyped" if any("type" not in b for b in bundles) else "r4"


def _requests() -> list[tuple[str, list[Any]]]:
    files = sorted(PDDI.glob("requests/*.json")) + sorted(OPIOID.glob("requests/**/*.json"))
    return [
        (str(p.relative_to(SHARED)), _hook_resources(json.loads(p.read_text(encoding="utf-8"))))
        for p in files
    ]


REQUESTS = _requests()


@pytest.mark.parametrize(
    ("name", "resources"),
    [pytest.param(n, r, id=n) for n, r in REQUESTS if _shape(r) != "pre-r4"],
)
def test_cds_hooks_request_maps(name: str, resources: list[Any], kb: Knowledge) -> None:
    """An R4 request's prefetch and draft orders map and evaluate; null prefetch is no error."""
    records = records_from_resources(resources, name)
    assert records
    mapped = _map_all(records, kb)
    flat = list(_flatten(resources))
    if all(n == 1 for n in Counter(filter(None, map(_label, flat))).values()):
        assert not _accounting(mapped, flat)
        return
    # CDC REC08 on-naloxone gives the prefetched naloxone and the drafted fentanyl one id: the
    # two cannot be told apart by label, but each is still used or listed.
    labels = {d.source for m in mapped for d in m.data_used} | {
        s for m in mapped for u in m.unmapped for s in u.sources
    }
    meds = [r for r in flat if r["resourceType"] == "MedicationRequest"]
    assert all(f"MedicationRequest/{r['id']}" in labels for r in meds)
    # A combination product gives one medicine per recognised ingredient: count it once.
    per_source = Counter(
        (d.source, d.value.rsplit("from ", 1)[-1])
        for m in mapped
        for d in m.data_used
        if d.field == "medications"
    )
    extra = sum(n - 1 for n in per_source.values())
    assert sum(len(m.case.medications) for m in mapped) - extra + sum(
        u.count
        for m in mapped
        for u in m.unmapped
        if u.resource_type == "MedicationRequest"
        and not u.reason.startswith("ingredient not in the knowledge base")
    ) == len(meds)


@pytest.mark.parametrize(
    ("name", "resources"), [pytest.param(n, r, id=n) for n, r in REQUESTS if _shape(r) == "pre-r4"]
)
def test_pre_r4_hooks_request_is_refused_with_its_location(name: str, resources: list[Any]) -> None:
    """PDDI medication-prescribe examples (Bundle entries without ``resource``): a located error."""
    with pytest.raises(FhirError) as err:
        records_from_resources(resources, name)
    assert str(err.value).startswith(name)
    assert err.value.location


def _request(name: str) -> list[Any]:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    return _hook_resources(json.loads(path.read_text(encoding="utf-8")))


REC11 = "cdc-opioid-cds-r4/requests/OpioidCDSREC11{}/request-example-rec-11-{}.json"
FLURAZEPAM = "Flurazepam Hydrochloride 15 MG Oral Capsule"


@pytest.mark.parametrize("view", ["", "PatientView"])
def test_opioid_rec11_benzodiazepine_with_opioid(view: str, kb: Knowledge) -> None:
    """Benzodiazepine ordered for a patient on oxycodone: the opioid is recognised."""
    name = REC11.format(view, ("patient-view-" if view else "") + "benzo-trigger-with-opioid")
    mapped = _one(kb, _request(name))
    assert "oxycodone" in _drug_ids(kb, mapped)
    assert "opioid" in _classes(kb, mapped)
    _check_known_or_reported(kb, mapped, FLURAZEPAM, "benzodiazepine")


@pytest.mark.parametrize("view", ["", "PatientView"])
def test_opioid_rec11_opioid_with_benzodiazepine(view: str, kb: Knowledge) -> None:
    """Opioid ordered with a benzodiazepine on file; the opioid order names no patient of ours.

    Upstream, the draft oxycodone's subject is ``example-rec-11-...`` (no ``Patient/``), so it
    is listed as belonging to another patient instead of being used.
    """
    name = REC11.format(view, ("patient-view-" if view else "") + "opioid-trigger-with-benzo")
    mapped = _one(kb, _request(name))
    _check_known_or_reported(kb, mapped, FLURAZEPAM, "benzodiazepine")
    assert "opioid" not in _classes(kb, mapped)
    (foreign,) = [u for u in mapped.unmapped if u.reason.startswith("belongs to ")]
    assert foreign.sources == ["MedicationRequest/example-rec-11-opioid-trigger-with-benzo-context"]


@pytest.mark.parametrize("view", ["", "PatientView"])
def test_opioid_rec11_without_benzodiazepine(view: str, kb: Knowledge) -> None:
    """No benzodiazepine anywhere: none recognised, none listed."""
    name = REC11.format(view, ("patient-view-" if view else "") + "opioid-trigger-without-benzo")
    mapped = _one(kb, _request(name))
    assert "benzodiazepine" not in _classes(kb, mapped)
    assert not [u for u in mapped.unmapped if BENZO_WORDS.search(u.item)]
    assert [u.resource_type for u in mapped.unmapped] == ["MedicationRequest"]


def test_pddi_warfarin_nsaid_test_patient(kb: Knowledge) -> None:
    """PDDI test patient f101: NSAID and warfarin known or reported; STU3 leftovers located."""
    folder = _need(PDDI / "tests" / "warfarin-nsaids-cds-plandefinition" / "f101")
    resources = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    mapped = _one(kb, resources, dt.date(2018, 8, 2))
    assert not _accounting([mapped], resources)
    _check_known_or_reported(kb, mapped, "Etodolac 200 MG Oral Capsule")
    assert match_drug(kb, "Warfarin Sodium 0.5 MG Oral Tablet", None) is None
    problems = {(u.item, u.reason) for u in mapped.unmapped if u.reason.startswith("malformed")}
    assert problems == {
        ("Condition.verificationStatus", "malformed: expected an object, got a string"),
        (
            "MedicationStatement.medicationCodeableConcept.coding[0].code",
            "malformed: expected a string, got a number",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        f"hl7-pddi-cds/requests/warfarin-nsaids-order-{h}.json"
        for h in ("select-coordination", "sign-no-coordination")
    ],
)
def test_pddi_warfarin_nsaid_request(name: str, kb: Knowledge) -> None:
    """Warfarin on file, ketorolac drafted: neither is a knowledge-base drug. Warfarin is kept
    by name (the medicine list is known; its interactions are not checked); the draft order is
    listed as not used."""
    mapped = _one(kb, _request(name), dt.date(2020, 3, 2))
    assert match_drug(kb, "Ketorolac Tromethamine 10 MG Oral Tablet", None) is None
    assert [m.name for m in mapped.case.medications] == ["Warfarin Sodium 0.5 MG Oral Tablet"]
    kept = [d for d in mapped.data_used if d.field == "medications"]
    assert [d.matched_by for d in kept] == ["text"]
    listed = [u for u in mapped.unmapped if u.resource_type == "MedicationRequest"]
    assert sum(u.count for u in listed) == 1


def test_pddi_digoxin_magnesium(kb: Knowledge) -> None:
    """Magnesium (LOINC 19123-9, in mmol/L) is the magnesium lab; current then, stale now."""
    folder = _need(PDDI / "tests" / "digoxin-cyclosporine-cds-plandefinition" / "f301")
    resources = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    (obs,) = [r for r in resources if "19123-9" in _codes(r, "code", LOINC)]
    taken = dt.date.fromisoformat(obs["effectiveDateTime"][:10])
    for as_of, current in ((taken + dt.timedelta(days=4), True), (AS_OF, False)):
        mapped = _one(kb, resources, as_of)
        assert not _accounting([mapped], resources)
        (row,) = [d for d in mapped.data_used if d.value.startswith("magnesium ")]
        assert row.source == f"Observation/{obs['id']}"
        assert (row.field, row.matched_by) == ("labs", "code")
        (lab,) = [lab for lab in mapped.case.labs if lab.name == "magnesium"]
        assert (lab.value, lab.unit, lab.date) == (0.8, "mmol/L", taken)
        missing = {m.fact for m in evaluate(mapped.case, kb, as_of).missing_data}
        assert ("lab.magnesium" not in missing) is current
    # displays carry U+200B upstream; what is reported is clean text
    assert not [u.item for u in mapped.unmapped if "\u200b" in u.item]
    assert any(u.item.startswith("LOINC 75940-7 Potassium") for u in mapped.unmapped)


# -- AHRQ pain-management patient and CMS506 eCQM patients ----------------------------------------


def test_ahrq_brenda_jackson(kb: Knowledge) -> None:
    """Oxycodone (IR and ER) recognised; chlordiazepoxide and ibuprofen known or reported."""
    path = _need(SHARED / "ahrq-cds-connect-pain-management") / "brenda_jackson.json"
    resources = [e["resource"] for e in json.loads(path.read_text("utf-8"))["entry"]]
    (mapped,) = _map_all(read_fhir(path), kb)
    assert not _accounting([mapped], resources)
    drugs = Counter(_drug_ids(kb, mapped))
    oxy = [
        r
        for r in resources
        if r["resourceType"] == "MedicationRequest"
        and "oxycodone" in r["medicationCodeableConcept"]["text"].lower()
    ]
    assert drugs["oxycodone"] == len(oxy) >= 2
    assert "opioid" in _classes(kb, mapped)
    assert drugs["duloxetine"] == 1
    _check_known_or_reported(
        kb, mapped, "Chlordiazepoxide Hydrochloride 25 MG Oral Tablet", "benzodiazepine"
    )
    _check_known_or_reported(kb, mapped, "Ibuprofen 600 MG Oral Tablet")


def _cms506(kb: Knowledge, patient: str) -> tuple[MappedCase, list[dict[str, Any]]]:
    folder = _need(SHARED / "ecqm-cms506-opioid-benzo") / patient
    resources = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.json"))]
    return _one(kb, resources), resources


def test_cms506_patients_map(kb: Knowledge) -> None:
    """The four measure patients map, evaluate and account for every resource."""
    base = _need(SHARED / "ecqm-cms506-opioid-benzo")
    patients = sorted(p.name for p in base.iterdir() if p.is_dir())
    assert patients == ["denex1-EXM506", "denex2-EXM506", "denom-EXM506", "numer-EXM506"]
    for patient in patients:
        mapped, resources = _cms506(kb, patient)
        assert mapped.case.id == patient
        assert not _accounting([mapped], resources), patient


def test_cms506_numerator_opioid_and_benzodiazepine(kb: Knowledge) -> None:
    """Numerator patient: oxycodone (in an acetaminophen combination) and flurazepam."""
    mapped, _ = _cms506(kb, "numer-EXM506")
    rows = [d for d in mapped.data_used if d.value.startswith("oxycodone (")]
    assert len(rows) == 1
    assert "Acetaminophen 300 MG / Oxycodone" in rows[0].value
    assert rows[0].matched_by == "text"
    assert "opioid" in _classes(kb, mapped)
    _check_known_or_reported(kb, mapped, FLURAZEPAM, "benzodiazepine")


def test_cms506_combination_with_an_unknown_ingredient_is_reported(kb: Knowledge) -> None:
    """An ingredient the knowledge base lacks is reported, even when another one is known."""
    mapped, _ = _cms506(kb, "denom-EXM506")
    assert "naloxone" in _drug_ids(kb, mapped)
    known = match_drug(kb, "buprenorphine", None) is not None
    listed = any("buprenorphine" in f"{u.item} {u.reason}".lower() for u in mapped.unmapped)
    assert known or listed, mapped.unmapped
