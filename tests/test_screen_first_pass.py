"""The columnar first pass: the same table, problems and summary as assessing every patient, on
every test export; and why skipping a patient is safe (nothing the rules read, no finding).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from legspasm import Knowledge, load_knowledge
from legspasm.fhir import read_fhir, to_case
from legspasm.screen.core import canonical, screen_patient
from legspasm.screen.relevance import relevance_pattern
from legspasm.screen.run import screen
from legspasm.screen.synth import synthesize
from test_screen import SHARED, small_export
from test_screen_integrity import CORRUPTIONS, chooser
from test_screen_worklist import attributed_export

AS_OF = dt.date(2026, 11, 21)
BULK = SHARED / "synthea-smart-bulk-ndjson-10"
BUNDLES = SHARED / "synthea-smart-bulk-data-server" / "bundles"
_VARIES = ("seconds", "patients_per_second", "output", "problems_file", "patients_assessed")


def both(folder: Path, out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Screen ``folder`` with and without the first pass; the same bytes, the same summary."""
    runs = []
    for first_pass in (True, False):
        table = out / ("first" if first_pass else "everyone") / "findings.csv"
        s = screen(
            folder,
            table,
            AS_OF,
            kinds=["all"],
            first_pass=first_pass,
            workers=2,
            echo=lambda _: None,
            show_progress=False,
        )
        problems = Path(str(table) + ".problems.csv")
        runs.append((table.read_bytes(), problems.read_bytes(), s))
    (t1, p1, s1), (t2, p2, s2) = runs
    assert t1 == t2
    assert p1 == p2
    same = {k: v for k, v in s1.items() if k not in (*_VARIES, "patients_without_domain_data")}
    assert same == {k: v for k, v in s2.items() if k in same}
    assert s2["patients_assessed"] == s2["patients"]  # without it, everyone is assessed
    return s1, s2


def _exports() -> dict[str, Callable[[Path, Knowledge], Path]]:
    def synthetic(n: int, prevalence: float) -> Callable[[Path, Knowledge], Path]:
        def make(folder: Path, kb: Knowledge) -> Path:
            synthesize(folder, n, 31, kb, prevalence=prevalence)
            return folder

        return make

    def shared(source: Path) -> Callable[[Path, Knowledge], Path]:
        def copy(folder: Path, kb: Knowledge) -> Path:
            if not source.is_dir():
                pytest.skip(f"shared data not present: {source}")
            shutil.copytree(source, folder)
            return folder

        return copy

    def spark_export(folder: Path, kb: Knowledge) -> Path:
        from test_screen_spark import write_export

        return write_export(folder)

    return {
        "small": lambda folder, kb: small_export(folder),
        "attributed": lambda folder, kb: attributed_export(folder),
        "spark-test": spark_export,
        "synthetic": synthetic(500, 1.0),
        "synthetic-5pc": synthetic(1500, 0.05),
        "synthea-bulk": shared(BULK),
        "synthea-bundles": shared(BUNDLES),
    }


EXPORTS = _exports()


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_the_same_output_with_and_without_the_first_pass(
    name: str, tmp_path: Path, kb: Knowledge
) -> None:
    folder = EXPORTS[name](tmp_path / "export", kb)
    first, everyone = both(folder, tmp_path)
    assert first["patients"] == everyone["patients"] > 0
    if name == "synthetic-5pc":
        assert first["patients_assessed"] < 0.1 * first["patients"]  # most hold nothing


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clean") / "export"
    synthesize(str(folder), 300, 2026, load_knowledge())
    return folder


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_the_same_output_on_every_corruption(name: str, clean: Path, tmp_path: Path) -> None:
    """A file DuckDB reads differently from Python (or not at all) is read line by line, so its
    problems name the same file and line, and the same patients are marked."""
    from test_screen_integrity import _screen

    findings, _, _ = _screen(clean, tmp_path / "baseline.csv")
    folder = tmp_path / "export"
    shutil.copytree(clean, folder)
    CORRUPTIONS[name](folder, chooser(findings))
    first, _ = both(folder, tmp_path)
    assert first["problems"] > 0 or name == "truncated_gzip"


# --- skipping a patient is safe -------------------------------------------------------------


@pytest.fixture(scope="module")
def pattern(kb: Knowledge) -> str:
    return relevance_pattern(kb)


_RE2 = duckdb.connect()  # the first pass matches with DuckDB's regular expressions (RE2)


def matches(pattern: str, lines: list[str]) -> list[bool]:
    if not lines:
        return []
    rows = _RE2.execute(
        "SELECT regexp_matches(t, ?) FROM unnest(?::VARCHAR[]) WITH ORDINALITY u(t, i) ORDER BY i",
        [pattern, lines],
    ).fetchall()
    return [bool(r[0]) for r in rows]


def test_every_datum_taken_from_the_knowledge_base_is_on_a_matching_line(
    pattern: str, kb: Knowledge, tmp_path: Path
) -> None:
    """What the mapping takes from a record because the knowledge base knows it (a code, a drug
    or class name, intake answers) comes from a line the relevance pattern matches."""
    synthesize(tmp_path / "synth", 300, 8, kb, prevalence=0.5)
    files = [tmp_path / "synth", *([BULK] if BULK.is_dir() else [])]
    files += sorted(BUNDLES.glob("*.json")) if BUNDLES.is_dir() else []
    checked = 0
    for record in (r for f in files for r in read_fhir(f)):
        mapped = to_case(record, kb, AS_OF)
        lines = {
            e.label: json.dumps(e.resource, separators=(",", ":"), ensure_ascii=False)
            for e in record.entries
        }
        known = [
            d
            for d in mapped.data_used
            if not d.field.startswith("patient.")
            and "not in the knowledge base" not in d.value
            and "not a drug or class legspasm checks" not in d.value
        ]
        got = matches(pattern, [lines[d.source] for d in known])
        assert all(got), [d for d, ok in zip(known, got, strict=True) if not ok]
        checked += len(known)
    # the synthetic export alone gives about 500 data; the shared Synthea data, when present,
    # twice as many more
    assert checked > (1000 if BULK.is_dir() else 400)


_WORDS = st.text(alphabet="bcdfghjklmnpqrstvwxz", min_size=3, max_size=9)


@st.composite
def unrelated(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A patient of any age and sex with visits, conditions, medicines, observations and
    allergies none of whose codes or names the knowledge base knows."""
    born = draw(st.dates(dt.date(1910, 1, 1), AS_OF))
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p", "birthDate": born.isoformat()}
    if sex := draw(st.sampled_from(["female", "male", "other", None])):
        patient["gender"] = sex
    subject = {"reference": "Patient/p"}
    resources: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 6))):
        code = f"{draw(st.sampled_from('QWXY'))}{draw(st.integers(10, 99))}.{i}"
        kind = draw(st.sampled_from(["Condition", "MedicationRequest", "Observation", "Allergy"]))
        if kind == "Condition":
            resources.append(
                {
                    "resourceType": "Condition",
                    "id": f"c{i}",
                    "subject": subject,
                    "code": {
                        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}],
                        "text": draw(_WORDS),
                    },
                }
            )
        elif kind == "MedicationRequest":
            resources.append(
                {
                    "resourceType": "MedicationRequest",
                    "id": f"m{i}",
                    "status": draw(st.sampled_from(["active", "stopped"])),
                    "intent": "order",
                    "subject": subject,
                    "authoredOn": "2025-01-01",
                    "medicationCodeableConcept": {"text": f"{draw(_WORDS)} 10 MG"},
                }
            )
        elif kind == "Observation":
            resources.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "subject": subject,
                    "effectiveDateTime": "2026-10-01",
                    "code": {
                        "coding": [
                            {
                                "system": "http://loinc.org",
                                "code": f"9{draw(st.integers(1000, 9999))}-0",
                            }
                        ]
                    },
                    "valueQuantity": {"value": draw(st.integers(0, 500)), "unit": "mg"},
                }
            )
        else:
            resources.append(
                {
                    "resourceType": "AllergyIntolerance",
                    "id": f"a{i}",
                    "patient": subject,
                    "code": {"text": draw(_WORDS)},
                }
            )
    for i in range(draw(st.integers(0, 3))):
        resources.append(
            {
                "resourceType": "Encounter",
                "id": f"e{i}",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": subject,
            }
        )
    return patient, resources


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(record=unrelated())
def test_a_patient_with_nothing_the_rules_read_gets_no_finding(
    record: tuple[dict[str, Any], list[dict[str, Any]]], pattern: str, kb: Knowledge
) -> None:
    patient, resources = record
    texts = [canonical(r) for r in (patient, *resources)]
    assume(not any(matches(pattern, texts[1:])))  # the first pass would skip this patient
    one = screen_patient("p", texts, [], kb, AS_OF, "test")
    assert one.assessed
    assert one.rows == []
