"""The README is executed, not just read: its Python example runs and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from legspasm import parse_case
from legspasm.cli import app

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_python_example_runs() -> None:
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for block in _blocks("python"):
            exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)


def test_yaml_case_example_is_a_valid_case() -> None:
    (block,) = [b for b in _blocks("yaml") if "patient:" in b]
    parse_case(yaml.safe_load(block))


def test_every_cli_command_is_documented() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["--help"]).output + runner.invoke(app, ["kb", "--help"]).output
    commands = set(re.findall(r"│ (\w+)\s{2,}", out))
    assert {"assess", "schema", "kb", "check", "list", "show"} <= commands
    for cmd in commands:
        assert f" {cmd}" in README, f"command {cmd!r} is not in the README"


def test_two_commands_are_documented() -> None:
    assert "make run" in README
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_curl_examples_give_the_documented_cards(tmp_path: Path) -> None:
    """The README's curl requests, sent over TCP to the real service, give the cards it names."""
    import datetime as dt
    import json

    import httpx

    from legspasm.server import create_app
    from legspasm.settings import Settings
    from live_server import serve

    expected = {
        "order-sign-pramipexole-rls.json": ("legspasm-order-sign", "warning", "AV-DA-RLS"),
        "order-select-quinine-cramps.json": ("legspasm-order-select", "warning", "AV-QUININE"),
        "patient-view-rls.json": ("legspasm-patient-view", "info", "rls"),
    }
    folder = ROOT / "src" / "legspasm" / "examples" / "cds-hooks"
    assert {p.name for p in folder.glob("*.json")} == set(expected)
    for name in expected:
        assert f"examples/cds-hooks/{name}" in README
    settings = Settings(
        dev=True, database_url=f"sqlite:///{tmp_path}/a.sqlite3", as_of=dt.date(2026, 11, 21)
    )
    with serve(create_app(settings)) as base, httpx.Client(base_url=base) as client:
        for name, (service, indicator, topic) in expected.items():
            body = json.loads((folder / name).read_text(encoding="utf-8"))
            r = client.post(f"/cds-services/{service}", json=body)
            assert r.status_code == 200, r.text
            (card,) = r.json()["cards"]
            assert (card["indicator"], card["source"]["topic"]["code"]) == (indicator, topic)


def test_sql_examples_run_on_a_screen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQL block of the README runs, with the command the README gives, on a real screen
    of a synthetic export, and gives rows."""
    import datetime as dt
    import subprocess
    import sys

    import duckdb

    from legspasm import load_knowledge
    from legspasm.screen.run import screen
    from legspasm.screen.synth import synthesize

    synthesize(str(tmp_path / "pop"), 600, 3, load_knowledge())
    monkeypatch.chdir(tmp_path)
    screen(Path("pop"), Path("findings.parquet"), dt.date(2026, 11, 21), echo=lambda _: None)
    (command,) = re.findall(r'\.venv/bin/python -c "(import duckdb.*?)" < query\.sql', README)
    blocks = _blocks("sql")
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        rows = duckdb.sql(block).fetchall()
        assert rows, block
        assert rows[0][0], block  # a clinic, a prescriber: the synthetic export has them
        query = tmp_path / f"query{i}.sql"
        query.write_text(block, encoding="utf-8")
        with query.open(encoding="utf-8") as fh:
            shown = subprocess.run(
                [sys.executable, "-c", command],
                stdin=fh,
                capture_output=True,
                text=True,
                check=True,
            )
        assert "│" in shown.stdout, shown.stderr
    worklists = sorted((tmp_path / "worklists").glob("clinic=*/*.csv"))
    assert len(worklists) >= 10  # one per clinic
