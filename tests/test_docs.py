"""The README is executed, not just read: its Python example runs and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

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
