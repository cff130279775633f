"""Parity: each golden vignette as a FHIR bundle gives the same assessment as its case file.

The bundles (tests/vignettes/*/bundle.json) were written by tests/fhir_vignettes.py from the case
files with real codes, without using legspasm's mapping; ``--check`` there revalidates them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from legspasm import Assessment, Knowledge, evaluate, load_case
from legspasm.fhir import assessment_bundle, check_bundle, read_fhir, to_case

VIGNETTES = Path(__file__).parent / "vignettes"
FOLDERS = sorted(p for p in VIGNETTES.iterdir() if p.is_dir())
# Everything clinical; case_id (the Patient id) and the record sections differ by design.
CLINICAL = (
    "red_flags",
    "conditions",
    "plan",
    "withheld",
    "avoid",
    "missing_data",
    "derived",
    "citations",
)


def _as_of(folder: Path) -> dt.date:
    raw = yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8"))["as_of"]
    return raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))


def _clinical(a: Assessment) -> dict[str, Any]:
    return a.model_dump(include=set(CLINICAL))


def test_every_vignette_has_a_bundle() -> None:
    missing = [f.name for f in FOLDERS if not (f / "bundle.json").is_file()]
    assert not missing, f"run tests/fhir_vignettes.py: no bundle.json in {missing}"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_bundle_gives_the_same_assessment_as_the_case_file(folder: Path, kb: Knowledge) -> None:
    as_of = _as_of(folder)
    from_case = evaluate(load_case(folder / "case.yaml"), kb, as_of)
    (record,) = read_fhir(folder / "bundle.json")
    mapped = to_case(record, kb, as_of)
    from_fhir = mapped.annotate(evaluate(mapped.case, kb, as_of))
    assert _clinical(from_fhir) == _clinical(from_case)
    # Nothing in a bundle written from a case file may be left unused, except brand or free-text
    # medicines the knowledge base does not know (the case file lists those as notes too).
    unused = [u for u in from_fhir.unmapped if "not in the knowledge base" not in u.reason]
    assert not unused, unused
    assert from_fhir.data_used, "a mapped record says what it used"


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_fhir_output_validates(folder: Path, kb: Knowledge) -> None:
    as_of = _as_of(folder)
    (record,) = read_fhir(folder / "bundle.json")
    mapped = to_case(record, kb, as_of)
    a = mapped.annotate(evaluate(mapped.case, kb, as_of))
    subject = f"Patient/{record.patient_id}"
    bundle = assessment_bundle(a, subject)
    assert check_bundle(bundle, frozenset({subject})) == []
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("RequestGroup") == 1
    assert kinds.count("CarePlan") == 1
    assert kinds.count("DetectedIssue") == len(a.red_flags) + len(a.avoid)
    # A step that reviews a current medicine is a request to review it, never a new order.
    assert kinds.count("MedicationRequest") == sum(
        1 for s in a.plan if s.medication and not s.review
    )
    reviewed = {s.medication.drug.name for s in a.plan if s.review and s.medication}
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "MedicationRequest":
            assert e["resource"]["medicationCodeableConcept"]["text"] not in reviewed


# --- the same parity over generated cases ------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402

from fhir_vignettes import case_to_bundle  # noqa: E402
from legspasm import parse_case  # noqa: E402
from legspasm.fhir import records_from_json  # noqa: E402
from legspasm.knowledge.loader import DATA_DIR  # noqa: E402
from strategies import AS_OF, KB, case_dicts  # noqa: E402


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_dicts())
def test_generated_case_and_its_bundle_agree(data: dict[str, Any]) -> None:
    """Any case the strategies generate, written as FHIR and read back, is assessed the same.

    One difference is by design: an undated lab in a case file is taken as current, while an
    Observation without an effective date is not used (a record cannot vouch for it). So labs
    are dated here.
    """
    data = {**data, "labs": [{"date": AS_OF, **lab} for lab in data.get("labs", [])]}
    case = parse_case(data)
    bundle = case_to_bundle(case.model_dump(exclude_none=True), AS_OF, DATA_DIR, name="generated")
    (record,) = records_from_json(bundle, "generated")
    mapped = to_case(record, KB, AS_OF)
    assert _clinical(evaluate(mapped.case, KB, AS_OF)) == _clinical(evaluate(case, KB, AS_OF))
