"""The command line: bad input exits 2 naming the field and the problem, never with a traceback."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from legspasm import Case, load_knowledge
from legspasm.cli import app

AS_OF = "2026-11-21"
EXAMPLE = Path(__file__).parents[1] / "src" / "legspasm" / "examples" / "nocturnal-cramps.yaml"
runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def assert_input_error(result: Any, *fragments: str) -> None:
    """Exit 2, a one-screen message on stderr naming every fragment, nothing on stdout."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    for f in fragments:
        assert f in result.stderr, f"{f!r} not in {result.stderr!r}"


def legspasm_exe() -> list[str]:
    exe = Path(sys.executable).parent / "legspasm"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("legspasm")
    assert found, "the legspasm console script is not installed"
    return [found]


# --- bad input --------------------------------------------------------------------------------

BAD_CASES = [
    pytest.param(
        "not-yaml.yaml", "patient: {age_years: [\n", ["not-yaml.yaml", "not valid YAML"], id="yaml"
    ),
    pytest.param("not-json.json", '{"patient": ', ["not-json.json", "not valid JSON"], id="json"),
    pytest.param("list.yaml", "- a\n- b\n", ["(case)", "expected a mapping, got list"], id="list"),
    pytest.param("empty.yaml", "", ["(case)", "expected a mapping"], id="empty-file"),
    pytest.param(
        "old.yaml",
        "patient: {age_years: old}\n",
        ["patient.age_years", "valid number", "'old'"],
        id="age-wrong-type",
    ),
    pytest.param(
        "age300.yaml",
        "patient: {age_years: 300}\n",
        ["patient.age_years", "less than or equal to 125", "300"],
        id="age-300",
    ),
    pytest.param(
        "ferritin.yaml",
        "labs:\n  - {name: ferritin, value: -5, unit: ng/mL}\n",
        ["labs[0].value", "greater than or equal to 0", "-5"],
        id="ferritin-negative",
    ),
    pytest.param(
        "bananas.yaml",
        "labs:\n  - {name: ferritin, value: 50, unit: bananas, date: 2026-11-01}\n",
        ["labs[0].unit", "unknown unit 'bananas'", "Ferritin"],
        id="unknown-unit",
    ),
    pytest.param(
        "creatinine.yaml",
        "labs:\n  - {name: creatinine, value: 1.1, unit: mmHg, date: 2026-11-01}\n",
        ["labs[0].unit", "'mmHg'", "mg/dL", "Creatinine"],
        id="creatinine-impossible-unit",
    ),
    pytest.param(
        "calcium-meq.yaml",
        "labs:\n  - {name: calcium, value: 4.5, unit: mEq/L}\n",
        ["labs[0].unit", "monovalent"],
        id="calcium-in-meq",
    ),
    pytest.param(
        "creatinine-value.yaml",
        "labs:\n  - {name: creatinine, value: 88, unit: mg/dL}\n",
        ["labs[0].value", "not a plausible Creatinine"],
        id="creatinine-implausible-value",
    ),
    pytest.param(
        "field.yaml",
        "patient: {age_years: 50, shoe_size: 9}\n",
        ["patient.shoe_size", "unknown field"],
        id="unknown-field",
    ),
    pytest.param(
        "top-field.yaml",
        "diagnosis: cramps\n",
        ["diagnosis", "unknown field"],
        id="unknown-top-level-field",
    ),
    pytest.param(
        "concept.yaml",
        "conditions:\n  - {concept: cirrhossis}\n",
        ["conditions[0].concept", "unknown concept 'cirrhossis'", "did you mean 'cirrhosis'"],
        id="unknown-concept",
    ),
    pytest.param(
        "ruled-out.yaml",
        "conditions_ruled_out: [heart_failure, hart_failure]\n",
        ["conditions_ruled_out[1]", "unknown concept 'hart_failure'"],
        id="unknown-ruled-out-concept",
    ),
    pytest.param(
        "labname.yaml",
        "labs:\n  - {name: feritin, value: 50, unit: ng/mL}\n",
        ["labs[0].name", "unknown lab 'feritin'", "did you mean 'ferritin'"],
        id="unknown-lab",
    ),
    pytest.param(
        "birth.yaml",
        "patient: {birth_date: 2030-01-01}\n",
        ["patient.birth_date", "2030-01-01 is after as_of 2026-11-21"],
        id="birth-after-as-of",
    ),
    pytest.param(
        "weight.yaml",
        "patient: {weight: {value: 5000, unit: kg}}\n",
        ["patient.weight", "not a plausible body weight"],
        id="weight-implausible",
    ),
    pytest.param(
        "male-pregnant.yaml",
        "patient: {sex: male, pregnant: true}\n",
        ["patient.pregnant", "sex is male"],
        id="male-pregnant",
    ),
    pytest.param(
        "med-dates.yaml",
        "medications:\n  - {name: baclofen, start_date: 2026-01-02, end_date: 2025-01-01}\n",
        ["medications[0]", "end_date is before start_date"],
        id="medication-ends-before-start",
    ),
    pytest.param(
        "two.yaml",
        "patient: {age_years: 300, sex: unknown}\n",
        ["patient.age_years", "patient.sex"],
        id="every-problem-reported",
    ),
]


@pytest.mark.parametrize(("name", "text", "fragments"), BAD_CASES)
def test_bad_case_file_exits_2_naming_field_and_problem(
    tmp_path: Path, name: str, text: str, fragments: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert_input_error(run("assess", str(path), "--as-of", AS_OF), *fragments)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert_input_error(run("assess", str(missing), "--as-of", AS_OF), str(missing), "not found")


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00junk")
    assert_input_error(run("assess", str(tmp_path / "binary.yaml")), "binary.yaml", "cannot read")
    assert_input_error(run("assess", str(tmp_path)), "folder holds no .ndjson files")


@pytest.mark.parametrize("bad", ["2026-13-45", "yesterday", "21/11/2026"])
def test_bad_as_of_date(bad: str) -> None:
    assert_input_error(run("assess", str(EXAMPLE), "--as-of", bad), "--as-of", repr(bad), "date")


def test_bad_format_option_is_a_usage_error() -> None:
    result = run("assess", str(EXAMPLE), "--format", "xml")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "xml" in result.output


def test_subprocess_bad_input_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("labs:\n  - {name: ferritin, value: 50, unit: bananas}\n", encoding="utf-8")
    for args in (
        ["assess", str(bad), "--as-of", AS_OF],
        ["assess", str(tmp_path / "missing.yaml")],
        ["assess", str(EXAMPLE), "--as-of", "not-a-date"],
    ):
        proc = subprocess.run(
            [*legspasm_exe(), *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.stderr.startswith("error: "), proc.stderr
        assert proc.stdout == ""


def test_subprocess_assess_succeeds() -> None:
    proc = subprocess.run(
        [*legspasm_exe(), "assess", str(EXAMPLE), "--as-of", AS_OF, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["case_id"] == "example-nocturnal-cramps"


# --- success paths ----------------------------------------------------------------------------


def test_assess_text() -> None:
    result = run("assess", str(EXAMPLE), "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("LEGSPASM ASSESSMENT: EXAMPLE-NOCTURNAL-CRAMPS")
    assert f"As of {AS_OF}" in out
    for heading in ("WHAT IT PROBABLY IS", "WHAT TO DO", "WHAT NOT TO DO", "REFERENCES"):
        assert heading in out
    # On hydrochlorothiazide: the cramps have a drug cause, so they are not "idiopathic".
    assert "Leg cramps with an electrolyte or drug cause: likely" in out
    # The 71-year-old takes cyclobenzaprine (Flexeril): Beers says avoid it.
    assert "cyclobenzaprine (the patient takes it)" in out
    assert "CONTRAINDICATED: quinine" in out


def test_assess_markdown() -> None:
    result = run("assess", str(EXAMPLE), "--as-of", AS_OF, "--format", "markdown")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("# legspasm assessment: example-nocturnal-cramps")
    assert "## What to do" in out
    assert "## References" in out
    assert "**Leg cramps with an electrolyte or drug cause**: likely" in out


def test_assess_json() -> None:
    result = run("assess", str(EXAMPLE), "--as-of", AS_OF, "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    for key in (
        "knowledge_version",
        "as_of",
        "conditions",
        "red_flags",
        "plan",
        "avoid",
        "missing_data",
        "citations",
    ):
        assert key in doc, key
    assert doc["knowledge_version"] == load_knowledge().version
    assert doc["as_of"] == AS_OF
    assert doc["red_flags"] == []
    status = {c["id"]: c["status"] for c in doc["conditions"]}
    assert status["secondary_cramps"] == "likely"
    assert status["nocturnal_cramps"] == "unlikely"
    assert "NLC-STRETCH" in {s["id"] for s in doc["plan"]}
    # Born 1955-03-02: 71 on 2026-11-21.
    assert doc["derived"]["age_years"] == 71
    # Cockcroft-Gault by hand: (140 - 71) x 64 / (72 x 0.9) x 0.85 = 57.92 mL/min.
    assert doc["derived"]["crcl_ml_min"] == pytest.approx(57.9, abs=0.05)
    schema = json.loads(run("schema", "assessment").stdout)
    jsonschema.Draft202012Validator(schema).validate(doc)


def test_assess_json_case_file(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    path = tmp_path / "case.json"
    path.write_text(json.dumps(data, default=str), encoding="utf-8")
    result = run("assess", str(path), "--as-of", AS_OF, "-f", "json")
    assert result.exit_code == 0, result.output
    from_yaml = json.loads(run("assess", str(EXAMPLE), "--as-of", AS_OF, "-f", "json").stdout)
    assert json.loads(result.stdout) == from_yaml


def test_assess_defaults_to_today() -> None:
    before = dt.date.today()
    result = run("assess", str(EXAMPLE), "-f", "json")
    after = dt.date.today()
    assert result.exit_code == 0, result.output
    assert dt.date.fromisoformat(json.loads(result.stdout)["as_of"]) in {before, after}


def test_schema_case_is_a_valid_json_schema_that_accepts_the_example() -> None:
    result = run("schema", "case")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema == {**Case.model_json_schema(), "$schema": schema["$schema"]}
    validator = jsonschema.Draft202012Validator(schema)
    example = json.loads(json.dumps(yaml.safe_load(EXAMPLE.read_text("utf-8")), default=str))
    validator.validate(example)
    assert not validator.is_valid({"patient": {"age_years": 300}})
    assert not validator.is_valid({"patient": {"shoe_size": 9}})


def test_schema_assessment_is_a_valid_json_schema() -> None:
    result = run("schema", "assessment")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"plan", "avoid", "red_flags", "citations"} <= set(schema["required"])


def test_schema_unknown_name() -> None:
    result = run("schema", "knowledge")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_kb_check() -> None:
    result = run("kb", "check")
    assert result.exit_code == 0, result.output
    kb = load_knowledge()
    assert f"knowledge base {kb.version} is valid" in result.stdout
    assert f"{len(kb.recommendations)} recommendations" in result.stdout


def test_kb_list() -> None:
    result = run("kb", "list")
    assert result.exit_code == 0, result.output
    for kind in ("citations:", "red_flags:", "recommendations:", "avoid_rules:", "drugs:"):
        assert kind in result.stdout
    for ident in ("AV-QUININE", "RF-DVT", "NLC-STRETCH", "cyclobenzaprine", "ferritin"):
        assert ident in result.stdout
    drugs = run("kb", "list", "drugs")
    assert drugs.exit_code == 0
    assert "cyclobenzaprine" in drugs.stdout
    assert "AV-QUININE" not in drugs.stdout
    bad = run("kb", "list", "bogus")
    assert bad.exit_code == 2
    assert "unknown kind 'bogus'" in bad.stderr


def _shown(stdout: str) -> dict[str, Any]:
    head, _, body = stdout.partition("\n")
    assert head.startswith("# ")
    data = yaml.safe_load(body)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("ident", "key", "value"),
    [
        ("RF-DVT", "urgency", "same-day"),
        ("NLC-STRETCH", "context", "nocturnal_cramps"),
        ("cyclobenzaprine", "name", "cyclobenzaprine"),
        ("S12", "basis", "V-stored"),
        ("ferritin", "unit", "ug/L"),
        ("cirrhosis", "name", "Cirrhosis of liver"),
    ],
)
def test_kb_show(ident: str, key: str, value: str) -> None:
    result = run("kb", "show", ident)
    assert result.exit_code == 0, result.output
    data = _shown(result.stdout)
    assert data["id"] == ident
    assert data[key] == value


def test_kb_show_avoid_rule() -> None:
    result = run("kb", "show", "AV-QUININE")
    assert result.exit_code == 0, result.output
    data = _shown(result.stdout)
    assert data["id"] == "AV-QUININE"
    assert data["severity"] == "contraindicated"
    assert data["drugs"] == ["quinine"]


def test_kb_show_context() -> None:
    result = run("kb", "show", "nocturnal_cramps")
    assert result.exit_code == 0, result.output
    data = _shown(result.stdout)
    assert data["id"] == "nocturnal_cramps"
    assert all("compiled" not in k for k in data["criteria"])


def test_kb_show_unknown_id() -> None:
    result = run("kb", "show", "nonexistent")
    assert_input_error(result, "no knowledge-base entry 'nonexistent'")
    near = run("kb", "show", "AV-QUINNE")
    assert_input_error(near, "no knowledge-base entry 'AV-QUINNE'", "did you mean AV-QUININE")


def test_no_arguments_prints_help() -> None:
    result = run()
    assert "assess" in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_to_start_insecure_without_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    """Security is on by default: no trusted issuers and no --dev is a configuration error."""
    monkeypatch.delenv("LEGSPASM_ISSUERS", raising=False)
    monkeypatch.delenv("LEGSPASM_DEV", raising=False)
    res = runner.invoke(app, ["serve", "--port", "8999"])
    assert res.exit_code == 2
    assert "LEGSPASM_ISSUERS" in res.output
    assert "Traceback" not in res.output
