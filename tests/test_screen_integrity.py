"""The screen corruption suite (issue 13, item 2): each corruption a careless data feed makes, on
a synthetic export, checked against the clean export's screen. Every lost line is in the problems
file with its file and line, and no patient's findings change without a ``DATA-INCOMPLETE`` row
saying their data may be incomplete, so "no findings" and "data lost" can be told apart.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from legspasm import load_knowledge
from legspasm.screen.core import INCOMPLETE
from legspasm.screen.run import screen
from legspasm.screen.synth import synthesize

AS_OF = dt.date(2026, 11, 21)

Choose = Callable[[Path], int]
"""Which line of a file to damage (0-based): one whose loss changes its patient's findings."""
Corruption = Callable[[Path, Choose], set[tuple[str, int]]]
"""Damages an export folder in place; returns the (file, line) of each line it costs."""


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _subject(line: bytes) -> str:
    return str(json.loads(line)["subject"]["reference"]).removeprefix("Patient/")


def latin1_byte(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "MedicationRequest.000.ndjson"
    data = _lines(path)
    i = choose(path)
    data[i] = data[i].replace(b'"text":"', b'"text":"\xe9', 1)
    path.write_bytes(b"".join(data))
    return {(path.name, i + 1)}


def truncated_gzip(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "Observation.000.ndjson"
    whole = gzip.compress(path.read_bytes())
    path.unlink()
    (folder / "Observation.000.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    return set()  # how many lines are lost is not known: the file "ends early"


def bad_first_line(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "Condition.000.ndjson"
    data = _lines(path)
    i = choose(path)
    data.insert(0, data.pop(i))  # line order changes no finding
    data[0] = data[0].replace(b'"resourceType"', b'"resourceTyp"', 1)
    path.write_bytes(b"".join(data))
    return {(path.name, 1)}


def deep_nesting(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "MedicationRequest.000.ndjson"
    data = _lines(path)
    i = choose(path)
    deep = b"[" * 100_000 + b"]" * 100_000
    data[i] = data[i].replace(b'"subject":', b'"x":' + deep + b',"subject":')
    path.write_bytes(b"".join(data))
    return {(path.name, i + 1)}


def huge_integer(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "Observation.000.ndjson"
    data = _lines(path)
    i = choose(path)
    data[i] = re.sub(rb'"value":-?[0-9.eE+-]+', b'"value":' + b"9" * 5000, data[i], count=1)
    path.write_bytes(b"".join(data))
    return {(path.name, i + 1)}


def infinite_number(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    """1e999 is valid JSON syntax that Python reads as infinity: a ferritin of infinity."""
    path = folder / "Observation.000.ndjson"
    data = _lines(path)
    i = choose(path)
    data[i] = re.sub(rb'"value":-?[0-9.eE+-]+', b'"value":1e999', data[i], count=1)
    path.write_bytes(b"".join(data))
    return {(path.name, i + 1)}


def line_cut_short(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "Condition.000.ndjson"
    data = _lines(path)
    i = choose(path)
    data[i] = data[i][: len(data[i]) * 3 // 4] + b"\n"
    path.write_bytes(b"".join(data))
    return {(path.name, i + 1)}


def lost_patient_line(folder: Path, choose: Choose) -> set[tuple[str, int]]:
    path = folder / "Patient.000.ndjson"
    data = _lines(path)
    i = choose(path)
    data[i] = data[i].replace(b'"id":"', b'"id":"\xff', 1)
    path.write_bytes(b"".join(data))
    return {(path.name, i + 1)}


CORRUPTIONS: dict[str, Corruption] = {
    "latin1_byte": latin1_byte,
    "truncated_gzip": truncated_gzip,
    "bad_first_line": bad_first_line,
    "deep_nesting": deep_nesting,
    "huge_integer": huge_integer,
    "infinite_number": infinite_number,
    "line_cut_short": line_cut_short,
    "lost_patient_line": lost_patient_line,
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clean") / "export"
    synthesize(str(folder), 300, 2026, load_knowledge())
    return folder


def _screen(
    folder: Path, out: Path
) -> tuple[dict[str, set[tuple[str, ...]]], dict[str, str], list[dict[str, str]]]:
    summary = screen(
        folder, out, AS_OF, workers=1, kinds=["all"], echo=lambda _: None, show_progress=False
    )
    findings: dict[str, set[tuple[str, ...]]] = {}
    marks: dict[str, str] = {}
    with out.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["finding_id"] == INCOMPLETE:
                assert row["kind"] == "data_incomplete"
                marks[row["patient_id"]] = row["status"]
            else:
                findings.setdefault(row["patient_id"], set()).add(
                    (row["finding_id"], row["kind"], row["detail"])
                )
    with open(str(out) + ".problems.csv", encoding="utf-8") as fh:
        problems = list(csv.DictReader(fh))
    assert summary["patients_data_incomplete"] == len(marks)
    return findings, marks, problems


@pytest.fixture(scope="module")
def baseline(
    clean: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, set[tuple[str, ...]]]:
    findings, marks, problems = _screen(clean, tmp_path_factory.mktemp("out") / "clean.csv")
    assert marks == {}  # nothing lost, nothing marked
    assert problems == []
    return findings


def chooser(baseline: dict[str, set[tuple[str, ...]]]) -> Choose:
    """A line whose loss changes what the screen says about its patient: a Patient line of a
    patient with findings; the only Condition of a patient with a condition finding; the only
    request for a medicine their findings name; the only ferritin of a patient offered iron for
    it. (The test checks that the findings do change.)"""

    def said(pid: str) -> str:
        return " ".join(" ".join(f) for f in baseline.get(pid, ())).lower()

    def choose(path: Path) -> int:
        rows = [json.loads(line) for line in _lines(path)]
        owners = [
            str(r["id"]) if r["resourceType"] == "Patient" else _subject(json.dumps(r).encode())
            for r in rows
        ]

        def key(r: dict[str, object]) -> str:
            if r["resourceType"] == "MedicationRequest":
                return str(r["medicationCodeableConcept"]["text"]).split()[0].lower()  # type: ignore[index]
            if r["resourceType"] == "Observation":
                return str(r["code"]["coding"][0]["code"])  # type: ignore[index]
            return ""

        def matters(i: int) -> bool:
            r, o = rows[i], owners[i]
            same = sum(1 for j, other in enumerate(owners) if other == o and key(rows[j]) == key(r))
            if r["resourceType"] == "Patient":
                return o in baseline
            if r["resourceType"] == "Condition":
                return same == 1 and any(f[1] == "condition" for f in baseline.get(o, ()))
            if r["resourceType"] == "MedicationRequest":
                return same == 1 and key(r) in said(o)
            iron = {f[0] for f in baseline.get(o, ())} & {"RLS-IRON-IV", "RLS-IRON-ORAL"}
            return same == 1 and key(r) == "2276-4" and bool(iron)

        return next(i for i in range(len(rows)) if matters(i))

    return choose


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_no_finding_changes_without_a_data_incomplete_mark(
    name: str, clean: Path, baseline: dict[str, set[tuple[str, ...]]], tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    shutil.copytree(clean, folder)
    lost = CORRUPTIONS[name](folder, chooser(baseline))
    findings, marks, problems = _screen(folder, tmp_path / "screen.csv")
    # every lost line is in the problems file, with its file and line
    reported = {(p["file"], int(p["line"])) for p in problems}
    assert lost <= reported, (lost, problems)
    # whoever's findings changed (or who vanished) carries the mark
    changed = {
        pid
        for pid in baseline.keys() | findings.keys()
        if baseline.get(pid, set()) != findings.get(pid, set())
    }
    assert changed, "the corruption must change someone's findings, or the test proves nothing"
    unmarked = {pid for pid in changed if pid not in marks}
    assert not unmarked, f"{name}: findings changed without a mark for {sorted(unmarked)[:5]}"


def test_a_line_whose_patient_can_be_read_marks_that_patient_only(
    clean: Path, tmp_path: Path
) -> None:
    """A bad byte or a damaged line still names its subject: only that patient is marked, so
    one bad line does not put all 300 patients in doubt."""
    folder = tmp_path / "export"
    shutil.copytree(clean, folder)
    data = _lines(folder / "MedicationRequest.000.ndjson")
    owner = _subject(data[len(data) // 2])
    ((_, line),) = latin1_byte(folder, lambda path: len(data) // 2)
    _, marks, problems = _screen(folder, tmp_path / "screen.csv")
    assert marks == {owner: "patient_data"}
    (problem,) = problems
    assert (problem["file"], problem["line"], problem["patient"]) == (
        "MedicationRequest.000.ndjson",
        str(line),
        owner,
    )


def test_data_whose_patient_is_unknown_marks_every_patient(clean: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    shutil.copytree(clean, folder)
    truncated_gzip(folder, lambda path: 0)
    _, marks, problems = _screen(folder, tmp_path / "screen.csv")
    assert len(marks) == 300
    assert set(marks.values()) == {"export_data"}
    assert [p["patient"] for p in problems] == ["*"]
    assert "the rest is missing" in problems[0]["problem"]


def test_a_patient_whose_patient_line_is_lost_is_marked_not_assessed(
    clean: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    shutil.copytree(clean, folder)
    pid = json.loads(_lines(folder / "Patient.000.ndjson")[4])["id"]
    lost_patient_line(folder, lambda path: 4)
    findings, marks, _ = _screen(folder, tmp_path / "screen.csv")
    assert pid not in findings
    assert marks[pid] == "not_assessed"


def _ndjson(path: Path, *resources: object) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")


def test_duplicate_resource_ids_are_reported(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01"}
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G25.81"}]},
    }
    other = {**condition, "code": {"coding": [{"system": "x", "code": "y"}]}}
    _ndjson(export / "Patient.ndjson", patient)
    _ndjson(export / "Condition.ndjson", condition, condition)
    findings, marks, problems = _screen(export, tmp_path / "same.csv")
    assert [p["problem"] for p in problems] == ["Condition/c1 appears 2 times, the same: used once"]
    assert problems[0]["patient"] == ""  # nothing lost
    assert marks == {}
    assert ("rls", "condition") in {f[:2] for f in findings["p1"]}
    _ndjson(export / "Condition.ndjson", condition, other)
    findings, marks, problems = _screen(export, tmp_path / "differ.csv")
    assert [(p["problem"], p["patient"]) for p in problems] == [
        ("Condition/c1 appears 2 times with different content: every copy used", "p1")
    ]
    assert marks == {"p1": "patient_data"}
    assert ("rls", "condition") in {f[:2] for f in findings["p1"]}
