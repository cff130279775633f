"""``legspasm synth``: a synthetic bulk export that is deterministic, valid FHIR, coded only with
the knowledge base's value sets, and rich enough that screening finds every risky combination."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from legspasm import Knowledge
from legspasm.assessment import Assessment
from legspasm.case import Case
from legspasm.cli import app
from legspasm.engine import evaluate
from legspasm.errors import InputError
from legspasm.fhir import read_fhir, to_case
from legspasm.fhir.systems import ICD10CM, LOINC, RXNORM, SNOMED, SYSTEM_NAMES
from legspasm.screen.core import read_file
from legspasm.screen.synth import AS_OF, CLINICAL_TYPES, RESOURCE_TYPES, synthesize

SYNTHEA = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthea-smart-bulk-ndjson-10"
runner = CliRunner()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def lines_of(folder: Path, rtype: str | None = None) -> list[str]:
    out: list[str] = []
    for p in sorted(folder.iterdir()):
        if rtype is not None and not p.name.startswith(rtype + "."):
            continue
        data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
        out += data.decode("utf-8").splitlines()
    return out


def resources_of(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines_of(folder)]


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(kb: Knowledge, tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", 300, 11, kb)
    b = synthesize(tmp_path / "b", 300, 11, kb)
    assert a.resources == b.resources
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")


def test_same_seed_gzip_gives_identical_bytes_and_the_same_content(
    kb: Knowledge, tmp_path: Path
) -> None:
    synthesize(tmp_path / "a", 200, 5, kb, gzip_output=True)
    synthesize(tmp_path / "b", 200, 5, kb, gzip_output=True)
    synthesize(tmp_path / "plain", 200, 5, kb)
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    assert all(n.endswith(".ndjson.gz") for n in files_of(tmp_path / "a"))
    for t in RESOURCE_TYPES:
        assert lines_of(tmp_path / "a", t) == lines_of(tmp_path / "plain", t)


def test_different_seed_gives_different_output(kb: Knowledge, tmp_path: Path) -> None:
    synthesize(tmp_path / "a", 300, 1, kb)
    synthesize(tmp_path / "b", 300, 2, kb)
    a, b = files_of(tmp_path / "a"), files_of(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)
    ids_a = {r["id"] for r in resources_of(tmp_path / "a")}
    ids_b = {r["id"] for r in resources_of(tmp_path / "b")}
    assert not ids_a & ids_b


def test_a_smaller_population_is_a_prefix_of_a_larger_one(kb: Knowledge, tmp_path: Path) -> None:
    synthesize(tmp_path / "small", 50, 3, kb)
    synthesize(tmp_path / "large", 200, 3, kb)
    small, large = lines_of(tmp_path / "small"), lines_of(tmp_path / "large")
    assert set(small) <= set(large)
    assert lines_of(tmp_path / "small", "Patient") == lines_of(tmp_path / "large", "Patient")[:50]


def test_dates_are_relative_to_as_of_and_never_after_it(kb: Knowledge, tmp_path: Path) -> None:
    synthesize(tmp_path / "a", 200, 4, kb)
    synthesize(tmp_path / "b", 200, 4, kb, as_of=AS_OF + dt.timedelta(days=10))
    dates: list[str] = []
    for r in resources_of(tmp_path / "a"):
        for key in ("birthDate", "onsetDateTime", "authoredOn", "effectiveDateTime"):
            if key in r:
                dates.append(r[key][:10])
    assert dates
    assert max(dates) <= AS_OF.isoformat()
    a = resources_of(tmp_path / "a")
    b = resources_of(tmp_path / "b")
    assert [r["id"] for r in a] == [r["id"] for r in b]  # same people, ten days later
    births = [
        (x["birthDate"], y["birthDate"]) for x, y in zip(a, b, strict=True) if "birthDate" in x
    ]
    assert all(
        dt.date.fromisoformat(y) - dt.date.fromisoformat(x) == dt.timedelta(10) for x, y in births
    )


# --- files and counts -------------------------------------------------------------------------


def test_counts_file_names_and_references(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = synthesize(out, 300, 9, kb)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{t}.000.ndjson" for t in RESOURCE_TYPES)
    assert summary.patients == 300
    assert summary.resources["Patient"] == 300
    for t in RESOURCE_TYPES:
        got = lines_of(out, t)
        assert len(got) == summary.resources[t] > 0, t
        assert all(json.loads(line)["resourceType"] == t for line in got)
    resources = resources_of(out)
    patients = {r["id"] for r in resources if r["resourceType"] == "Patient"}
    assert len(patients) == 300
    assert len({r["id"] for r in resources}) == len(resources)  # ids are unique
    for r in resources:
        if r["resourceType"] in ("Organization", "Practitioner"):
            assert "subject" not in r  # shared: who the patients and orders belong to
        elif r["resourceType"] != "Patient":
            ref = (r.get("subject") or r.get("patient"))["reference"]
            assert ref.startswith("Patient/")
            assert ref.removeprefix("Patient/") in patients
    line = summary.line()
    assert "300 patients" in line
    assert all(t in line for t in RESOURCE_TYPES)


def test_files_are_split_every_n_lines(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = synthesize(out, 120, 9, kb, lines_per_file=50)
    patient_files = sorted(p.name for p in out.glob("Patient.*"))
    assert patient_files == ["Patient.000.ndjson", "Patient.001.ndjson", "Patient.002.ndjson"]
    sizes = [len((out / n).read_text().splitlines()) for n in patient_files]
    assert sizes == [50, 50, 20]
    obs = sorted(out.glob("Observation.*"))
    assert len(obs) == -(-summary.resources["Observation"] // 50) > 1
    for t in RESOURCE_TYPES:
        assert (out / f"{t}.000.ndjson").exists()
        assert len(lines_of(out, t)) == summary.resources[t]


def test_gzip_output_is_readable_by_the_screen_reader(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = synthesize(out, 150, 8, kb, gzip_output=True, lines_per_file=100)
    counts: Counter[str] = Counter()
    for p in sorted(out.iterdir()):
        assert p.name.endswith(".ndjson.gz")
        with gzip.open(p, "rt", encoding="utf-8") as fh:  # a valid gzip stream to the end
            assert all(json.loads(line) for line in fh)
        for res, problem in read_file(p):
            assert problem is None, problem
            assert res is not None
            counts[res["resourceType"]] += 1
    assert counts == summary.resources


# --- valid FHIR, coded only with the knowledge base --------------------------------------------


def test_resources_are_valid_fhir(kb: Knowledge, tmp_path: Path) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    synthesize(tmp_path / "out", 200, 12, kb)
    for r in resources_of(tmp_path / "out"):
        get_fhir_model_class(r["resourceType"]).model_validate(r)


def _codings(r: dict[str, Any]) -> list[dict[str, Any]]:
    cc = r.get("code") or r.get("medicationCodeableConcept") or {}
    return list(cc.get("coding", []))


def test_every_code_is_a_verified_knowledge_base_code(kb: Knowledge, tmp_path: Path) -> None:
    verified: set[tuple[str, str]] = set()
    for c in kb.concepts.values():
        verified |= {(x.system, x.code) for x in c.codes if x.verified}
    for d in kb.drugs.values():
        verified |= {(x.system, x.code) for x in d.codes if x.verified}
    for lab in kb.labs.values():
        verified |= {(x.system, x.code) for x in lab.codes if x.verified}
    for rec in kb.record.values():
        for x in (*rec.codes, *rec.positive, *rec.negative):
            if x.verified:
                verified.add((x.system, x.code))
    synthesize(tmp_path / "out", 500, 13, kb)
    seen: Counter[str] = Counter()
    for r in resources_of(tmp_path / "out"):
        codings = _codings(r) + list(r.get("valueCodeableConcept", {}).get("coding", []))
        for c in codings:
            assert c["system"] in (SNOMED, ICD10CM, RXNORM, LOINC), c
            assert (SYSTEM_NAMES[c["system"]], c["code"]) in verified, c
            seen[c["system"]] += 1
        if r["resourceType"] == "MedicationRequest" and not codings:
            # no verified RxNorm code: the name is written, and it is a knowledge-base drug
            assert kb.lookups.drugs_named(r["medicationCodeableConcept"]["text"])
    assert all(seen[s] for s in (SNOMED, ICD10CM, RXNORM, LOINC)), seen


def test_the_mapping_uses_every_resource_written(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = synthesize(out, 300, 14, kb)
    records = read_fhir(out)
    assert len(records) == 300
    used: Counter[str] = Counter()
    for record in records:
        mapped = to_case(record, kb, AS_OF)
        clinical = [u for u in mapped.unmapped if u.resource_type in CLINICAL_TYPES]
        assert clinical == [], (record.patient_id, clinical)
        for rtype, c in mapped.counts.items():
            if rtype in CLINICAL_TYPES:
                assert c["unmapped"] == 0, (record.patient_id, rtype)
            used[rtype] += c["used"]
    for rtype in ("Condition", "MedicationRequest", "Observation", "AllergyIntolerance"):
        assert used[rtype] == summary.resources[rtype], rtype


# --- a 2,000-patient population holds the domain and every risky combination ------------------


@dataclass(frozen=True)
class Screened:
    case: Case
    assessment: Assessment


@pytest.fixture(scope="module")
def population(kb: Knowledge, tmp_path_factory: pytest.TempPathFactory) -> list[Screened]:
    out = tmp_path_factory.mktemp("synth") / "pop"
    synthesize(out, 2000, 2026, kb)
    result = []
    for record in read_fhir(out):
        case = to_case(record, kb, AS_OF).case
        result.append(Screened(case, evaluate(case, kb, AS_OF)))
    return result


def _current(s: Screened, rule: str) -> bool:
    return any(a.id == rule and a.status == "current" for a in s.assessment.avoid)


def _has(s: Screened, concept: str) -> bool:
    return any(c.concept == concept and c.status == "active" for c in s.case.conditions)


def _takes(s: Screened, kb: Knowledge, group: str) -> list[Any]:
    """Current medicines of a drug or class, with their start dates."""
    out = []
    for m in s.case.medications:
        drug = kb.lookups.match_drug(m.name, m.rxnorm)
        if drug is None or m.status != "active":
            continue
        if group == drug or group in kb.drugs[drug].classes:
            out.append(m)
    return out


def _age(s: Screened) -> float:
    assert s.assessment.derived.age_years is not None
    return s.assessment.derived.age_years


COMBINATIONS = {
    "benzodiazepine after a stroke": lambda s, kb: (
        _current(s, "AV-BENZO-STROKE")
        and any(
            c.concept == "stroke" and c.onset and m.start_date and m.start_date >= c.onset
            for c in s.case.conditions
            for m in _takes(s, kb, "benzodiazepine")
        )
    ),
    "long-term dopamine agonist in RLS": lambda s, kb: (
        _current(s, "AV-DA-RLS")
        and _has(s, "restless_legs")
        and any(
            m.start_date and (AS_OF - m.start_date).days > 365
            for d in ("pramipexole", "ropinirole")
            for m in _takes(s, kb, d)
        )
    ),
    "quinine with cramps": lambda s, kb: (
        _current(s, "AV-QUININE")
        and (_has(s, "sleep_related_leg_cramps") or _has(s, "cramp_or_spasm"))
    ),
    "cyclobenzaprine at 65 or older": lambda s, kb: (
        _current(s, "AV-SMR-BEERS") and _age(s) >= 65 and bool(_takes(s, kb, "cyclobenzaprine"))
    ),
    "cyclobenzaprine for more than 3 weeks": lambda s, kb: _current(s, "AV-CYCLO-DURATION"),
    "tizanidine with ciprofloxacin": lambda s, kb: (
        _current(s, "AV-TIZ-CYP1A2") and bool(_takes(s, kb, "ciprofloxacin"))
    ),
    "RLS with low ferritin and no iron": lambda s, kb: (
        _has(s, "restless_legs")
        and any(lab.name == "ferritin" and lab.value < 75 for lab in s.case.labs)
        and not _takes(s, kb, "iron")
        and any(p.id == "RLS-IRON-ORAL-OR-IV" for p in s.assessment.plan)
    ),
    "gabapentin above the renal dose": lambda s, kb: (
        _current(s, "AV-A2D-RENAL-DOSE")
        and s.assessment.derived.crcl_ml_min is not None
        and s.assessment.derived.crcl_ml_min < 60
    ),
    "opioid with a benzodiazepine": lambda s, kb: _current(s, "AV-OPIOID-BENZO"),
}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_every_risky_combination_appears_several_times(
    population: list[Screened], kb: Knowledge, name: str
) -> None:
    hits = sum(1 for s in population if COMBINATIONS[name](s, kb))
    assert 3 <= hits <= 200, (name, hits)  # several times, and "a few percent" at most


def test_the_domain_conditions_are_all_present(population: list[Screened]) -> None:
    concepts: Counter[str] = Counter()
    for s in population:
        concepts.update({c.concept for c in s.case.conditions})
    for concept in (
        "sleep_related_leg_cramps",
        "cramp_or_spasm",
        "restless_legs",
        "stroke",
        "spasticity",
        "cirrhosis",
        "esrd",
        "dialysis_dependence",
        "ckd",
        "pregnancy",
        "heart_failure",
        "parkinson_disease",
    ):
        assert concepts[concept] >= 3, (concept, concepts[concept])
        assert concepts[concept] <= 0.25 * len(population), (concept, concepts[concept])
    contexts: Counter[str] = Counter()
    for s in population:
        contexts.update(
            c.id for c in s.assessment.conditions if c.status in ("documented", "likely")
        )
    for ctx in (
        "nocturnal_cramps",
        "rls",
        "stroke_spasticity",
        "cirrhosis_cramps",
        "dialysis_cramps",
        "pregnancy_cramps",
    ):
        assert contexts[ctx] >= 3, (ctx, contexts[ctx])
    pregnant = [s for s in population if s.case.patient.pregnant]
    assert len(pregnant) >= 3
    assert all(s.case.patient.sex == "female" and 18 <= _age(s) < 46 for s in pregnant)


def test_cockcroft_gault_is_computable_for_most_adults(population: list[Screened]) -> None:
    adults = [s for s in population if _age(s) >= 18]
    computable = [s for s in adults if s.assessment.derived.crcl_ml_min is not None]
    assert len(adults) > 1500
    assert len(computable) >= 0.7 * len(adults)


# --- --from a real bulk export ------------------------------------------------------------------


def _source(folder: Path) -> Path:
    """A small Synthea-like export: three patients, one deceased, and resources of other types."""
    folder.mkdir()
    patients = [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-03-01"},
        {"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1971-07-09"},
        {
            "resourceType": "Patient",
            "id": "p3",
            "gender": "male",
            "birthDate": "1930-01-01",
            "deceasedDateTime": "2001-01-01",
        },
    ]
    (folder / "Patient.000.ndjson").write_text("".join(json.dumps(p) + "\n" for p in patients))
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"text": "Viral sinusitis"},
        "subject": {"reference": "Patient/p1"},
    }
    (folder / "Condition.000.ndjson").write_text(json.dumps(cond) + "\n")
    proc = {"resourceType": "Procedure", "id": "x", "subject": {"reference": "Patient/p1"}}
    (folder / "Procedure.000.ndjson").write_text(json.dumps(proc) + "\n")
    return folder


def test_from_copies_the_source_unchanged_and_fills_up(kb: Knowledge, tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    out = tmp_path / "out"
    summary = synthesize(out, 40, 3, kb, source=src, source_share=1.0)
    assert summary.patients == 40
    assert summary.from_source == 3
    patients = lines_of(out, "Patient")
    assert len(patients) == 40
    assert patients[:3] == (src / "Patient.000.ndjson").read_text().splitlines()
    assert (src / "Condition.000.ndjson").read_text().strip() in lines_of(out, "Condition")
    assert not list(out.glob("Procedure*"))  # only the types an export for screening needs
    subjects = Counter(
        (r.get("subject") or r.get("patient") or {}).get("reference")
        for r in resources_of(out)
        if r["resourceType"] != "Patient"
    )
    assert subjects["Patient/p1"] >= 2  # the copied Condition plus the synthetic layer
    assert subjects["Patient/p2"] >= 1
    assert subjects["Patient/p3"] == 0  # no new data for a deceased patient
    again = tmp_path / "again"
    synthesize(again, 40, 3, kb, source=src, source_share=1.0)
    assert files_of(out) == files_of(again)


def test_from_takes_only_as_many_source_patients_as_asked(kb: Knowledge, tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    summary = synthesize(tmp_path / "out", 2, 3, kb, source=src)
    assert (summary.patients, summary.from_source) == (2, 2)
    ids = [json.loads(line)["id"] for line in lines_of(tmp_path / "out", "Patient")]
    assert ids == ["p1", "p2"]


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="shared Synthea bulk export not present")
def test_from_a_real_synthea_export(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = synthesize(out, 60, 1, kb, source=SYNTHEA)
    source_patients = (SYNTHEA / "Patient.000.ndjson").read_text().splitlines()
    assert summary.from_source == len(source_patients)
    assert lines_of(out, "Patient")[: len(source_patients)] == source_patients
    source_conditions = set((SYNTHEA / "Condition.000.ndjson").read_text().splitlines())
    assert source_conditions <= set(lines_of(out, "Condition"))
    assert len(read_fhir(out)) == 60


# --- errors and the command line --------------------------------------------------------------


def test_refuses_a_non_empty_folder(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        synthesize(out, 10, 1, kb)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_writes_into_an_existing_empty_folder(kb: Knowledge, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert synthesize(out, 5, 1, kb).resources["Patient"] == 5


def assert_exit_2(result: Any, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    for f in fragments:
        assert f in result.stderr, (f, result.stderr)


def test_cli_writes_the_export_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["synth", "--patients", "25", "--seed", "4", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("synth: 25 patients")
    assert "Observation" in result.stderr
    assert result.stderr.rstrip().endswith(" s")
    assert len(lines_of(out, "Patient")) == 25
    gz = tmp_path / "gz"
    result = runner.invoke(app, ["synth", "--patients", "25", "--seed", "4", "--gzip", str(gz)])
    assert result.exit_code == 0, result.output
    for t in RESOURCE_TYPES:
        assert lines_of(gz, t) == lines_of(out, t)


def test_cli_as_of_shifts_the_dates(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert runner.invoke(app, ["synth", "--patients", "5", str(a)]).exit_code == 0
    args = ["synth", "--patients", "5", "--as-of", "2026-11-21", str(b)]
    assert runner.invoke(app, args).exit_code == 0
    assert files_of(a) == files_of(b)  # the default as-of is the fixed 2026-11-21, not today


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.ndjson").write_text("{}\n")
    assert_exit_2(runner.invoke(app, ["synth", "--patients", "5", str(full)]), "not empty")
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert_exit_2(runner.invoke(app, ["synth", str(a_file)]), "not a folder")
    fresh = str(tmp_path / "fresh")
    assert_exit_2(runner.invoke(app, ["synth", "--patients", "0", fresh]), "--patients")
    assert_exit_2(runner.invoke(app, ["synth", "--as-of", "21/11/2026", fresh]), "--as-of")
    missing = str(tmp_path / "missing")
    assert_exit_2(runner.invoke(app, ["synth", "--from", missing, fresh]), "--from", "missing")
    empty_src = tmp_path / "src"
    empty_src.mkdir()
    assert_exit_2(runner.invoke(app, ["synth", "--from", str(empty_src), fresh]), "Patient")
    assert not (tmp_path / "fresh").exists()  # nothing was created on bad input


# --- attribution and prevalence -------------------------------------------------------------


def test_patients_and_orders_are_attributed_to_clinics_and_clinicians(
    kb: Knowledge, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = synthesize(out, 400, 21, kb, clinics=5)
    assert summary.resources["Organization"] == 5
    orgs = {f"Organization/{r['id']}": r for r in map(json.loads, lines_of(out, "Organization"))}
    people = {f"Practitioner/{r['id']}": r for r in map(json.loads, lines_of(out, "Practitioner"))}
    assert len({r["name"][0]["family"] + r["name"][0]["given"][0] for r in people.values()}) == len(
        people
    )  # each clinician's name is theirs alone
    encounters = {f"Encounter/{r['id']}": r for r in map(json.loads, lines_of(out, "Encounter"))}
    homes: Counter[str] = Counter()
    for patient in map(json.loads, lines_of(out, "Patient")):
        homes[patient["managingOrganization"]["reference"]] += 1
        assert patient["identifier"][0]["type"]["coding"][0]["code"] == "MR"
        for gp in patient.get("generalPractitioner", []):
            assert gp["reference"] in people
    assert set(homes) == set(orgs)  # every clinic has patients
    own = 0
    requests = list(map(json.loads, lines_of(out, "MedicationRequest")))
    for r in requests:
        visit = encounters[r["encounter"]["reference"]]
        assert visit["subject"] == r["subject"]
        assert visit["period"]["start"][:10] == r["authoredOn"]
        assert visit["participant"][0]["individual"] == r["requester"]
        assert r["requester"]["reference"] in people
        assert visit["serviceProvider"]["reference"] in orgs
        own += visit["serviceProvider"]["reference"] in {
            p["managingOrganization"]["reference"]
            for p in map(json.loads, lines_of(out, "Patient"))
            if f"Patient/{p['id']}" == r["subject"]["reference"]
        }
    assert 0.6 * len(requests) < own < len(requests)  # mostly the patient's own clinic


def test_prevalence_leaves_most_patients_with_nothing_the_rules_read(
    kb: Knowledge, tmp_path: Path
) -> None:
    full = synthesize(tmp_path / "full", 1000, 22, kb)
    low = synthesize(tmp_path / "low", 1000, 22, kb, prevalence=0.05)
    with_data = {
        (r.get("subject") or r.get("patient"))["reference"]
        for r in resources_of(tmp_path / "low")
        if r["resourceType"] in CLINICAL_TYPES and r["resourceType"] != "Patient"
    }
    assert 20 <= len(with_data) <= 80  # about 5 % of 1,000
    assert low.resources["Encounter"] > 500  # the others are seen all the same
    assert low.resources["Observation"] < full.resources["Observation"] / 10
    # the patients themselves are the same people, in the same clinics
    assert lines_of(tmp_path / "low", "Patient") == lines_of(tmp_path / "full", "Patient")


def test_from_keeps_the_source_attribution(kb: Knowledge, tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    org = {"resourceType": "Organization", "id": "o1", "name": "Source Clinic"}
    doc = {"resourceType": "Practitioner", "id": "d1", "name": [{"family": "Source"}]}
    (src / "Organization.000.ndjson").write_text(json.dumps(org) + "\n")
    (src / "Practitioner.000.ndjson").write_text(json.dumps(doc) + "\n")
    visit = {"resourceType": "Encounter", "id": "e1", "status": "finished",
             "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"},
             "serviceProvider": {"reference": "Organization/o1"}}  # fmt: skip
    (src / "Encounter.000.ndjson").write_text(json.dumps(visit) + "\n")
    patients = (src / "Patient.000.ndjson").read_text().splitlines()
    p1 = {**json.loads(patients[0]), "generalPractitioner": [{"reference": "Practitioner/d1"}]}
    (src / "Patient.000.ndjson").write_text("\n".join([json.dumps(p1), *patients[1:]]) + "\n")
    out = tmp_path / "out"
    synthesize(out, 3, 5, kb, source=src, source_share=1.0, clinics=0)
    assert lines_of(out, "Organization") == [json.dumps(org)]
    assert lines_of(out, "Practitioner") == [json.dumps(doc)]
    assert lines_of(out, "Encounter") == [json.dumps(visit)]
    assert lines_of(out, "Patient")[0] == json.dumps(p1)
    requests = [json.loads(line) for line in lines_of(out, "MedicationRequest")]
    p1_orders = [r for r in requests if r["subject"]["reference"] == "Patient/p1"]
    assert p1_orders
    assert all(r["requester"]["reference"] == "Practitioner/d1" for r in p1_orders)
    assert all("requester" not in r for r in requests if r not in p1_orders)  # none recorded


def test_cli_prevalence_and_clinics(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["synth", "--patients", "50", "--prevalence", "0.1", "--clinics", "3", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(lines_of(out, "Organization")) == 3
    fresh = str(tmp_path / "fresh")
    assert_exit_2(runner.invoke(app, ["synth", "--prevalence", "1.5", fresh]), "--prevalence")
    assert_exit_2(runner.invoke(app, ["synth", "--clinics", "-1", fresh]), "--clinics")
