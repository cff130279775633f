"""The reading layer (legspasm.documents) and the readers built on it: every parser failure is an
error naming the file and place, in bounded time, and never a traceback (CLI exit 2)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from legspasm.caseio import load_case, parse_case
from legspasm.cli import app
from legspasm.documents import MAX_NODES, excerpt, parse_json, parse_yaml
from legspasm.errors import CaseFileError, CaseValidationError, DocumentError, FhirError
from legspasm.fhir import read_fhir

# The 333-byte "billion laughs" YAML from the reliability review: 9 levels of 9 aliases.
BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
CASE = """\
patient: {age_years: 60, sex: male}
symptoms:
  cramp: {present: true, timing: night_or_rest}
"""


def test_duplicate_keys_are_refused_with_their_place() -> None:
    with pytest.raises(DocumentError) as err:
        parse_yaml("patient:\n  age_years: 60\n  age_years: 61\n")
    assert err.value.location == "line 3 column 3"
    assert "duplicate key 'age_years'" in err.value.problem
    with pytest.raises(DocumentError, match="duplicate key 'id'"):
        parse_json('{"resourceType": "Patient", "id": "a", "id": "b"}')


def test_yaml_merge_keys_may_be_overridden() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nover:\n  <<: *b\n  y: 3\n")
    assert doc["over"] == {"x": 1, "y": 3}


def test_an_impossible_yaml_date_is_an_error_at_its_line() -> None:
    with pytest.raises(DocumentError) as err:
        parse_yaml("labs:\n  - {name: ferritin, value: 40, unit: ng/mL, date: 2026-13-45}\n")
    assert str(err.value.location).startswith("line 2")
    assert "'2026-13-45' is not a valid date" in err.value.problem


def test_an_alias_bomb_is_measured_not_expanded() -> None:
    assert len(BOMB) < 400
    start = time.perf_counter()
    with pytest.raises(DocumentError, match=f"more than {MAX_NODES:,} values"):
        parse_yaml(BOMB)
    assert time.perf_counter() - start < 1.0
    # A modest shared structure is fine.
    assert parse_yaml("a: &a [1, 2]\nb: [*a, *a]\n") == {"a": [1, 2], "b": [[1, 2], [1, 2]]}


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' + "9" * 5000 + "}",
        '{"a": 1,}',
    ],
)
def test_json_beyond_the_parser_is_an_error(text: str) -> None:
    with pytest.raises(DocumentError):
        parse_json(text)


def test_deep_yaml_is_an_error() -> None:
    with pytest.raises(DocumentError, match="deep"):
        parse_yaml("a: " + "[" * 500 + "]" * 500)
    with pytest.raises(DocumentError, match="deep"):
        parse_yaml(
            "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 150)) + "  " * 150 + "1"
        )


def test_excerpt_is_bounded_on_shared_structures() -> None:
    shared: list[object] = ["x"] * 9
    for _ in range(9):
        shared = [shared] * 9
    start = time.perf_counter()
    text = excerpt(shared)
    assert time.perf_counter() - start < 0.1
    assert len(text) <= 80


def test_a_validation_message_quotes_a_short_excerpt() -> None:
    with pytest.raises(CaseValidationError) as err:
        parse_case({"patient": {"age_years": "x" * 10_000}})
    assert len(str(err.value)) < 400


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("dup.yaml", CASE + "patient: {age_years: 61}\n", "line 4 column 1"),
        ("bomb.yaml", BOMB, "values (YAML aliases)"),
        (
            "date.yaml",
            CASE + "labs: [{name: ferritin, value: 4, unit: ng/mL, date: 2026-02-30}]\n",
            "line 4",
        ),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("int.json", '{"patient": {"age_years": ' + "9" * 5000 + "}}", "digits"),
    ],
)
def test_the_cli_answers_bad_case_files_with_exit_2_naming_the_file(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CaseFileError):
        load_case(path)
    r = CliRunner().invoke(app, ["assess", str(path), "--as-of", "2026-11-21"])
    assert r.exit_code == 2, r.output
    assert name in r.output, r.output
    assert where in r.output, r.output
    assert "Traceback" not in r.output


def test_fhir_json_and_ndjson_go_through_the_same_layer(tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text('{"resourceType": "Bundle", "type": "collection", "type": "batch"}')
    with pytest.raises(FhirError, match="duplicate key 'type'"):
        read_fhir(bundle)
    lines = tmp_path / "p.ndjson"
    lines.write_text('{"resourceType": "Patient", "id": "p"}\n' + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(FhirError) as err:
        read_fhir(lines)
    assert err.value.location == "line 2"


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_document_error(text: str) -> None:
    for parse in (parse_json, parse_yaml):
        problem = "parsed"
        try:
            parse(text)
        except DocumentError as exc:
            problem = exc.problem
        assert problem
