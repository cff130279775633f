"""Reading case files (JSON or YAML) into a validated Case; errors name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .case import Case
from .errors import CaseFileError, CaseValidationError

__all__ = ["load_case", "parse_case", "read_document"]


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(case)"


def parse_case(data: Any, source: str | None = None) -> Case:
    """Validate already-parsed case data; raise CaseValidationError naming every bad field."""
    if not isinstance(data, dict):
        raise CaseValidationError(
            [("(case)", f"expected a mapping, got {type(data).__name__}")], source
        )
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field"
            elif "input" in err and err["type"] not in ("missing",):
                msg += f" (got {err['input']!r})"
            problems.append((_field(loc), msg))
        raise CaseValidationError(problems, source) from None


_FHIR_HINT = (
    "this is FHIR data, not a legspasm case file: read it with legspasm.fhir.read_fhir "
    "(`legspasm assess` does this for you)"
)


def read_document(path: str | Path) -> Any:
    """Parse a .json, .yaml or .yml file; raise CaseFileError naming the file on failure."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseFileError(str(p), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseFileError(str(p), f"cannot read: {exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        raise CaseFileError(str(p), f"not valid {kind}: {exc}") from None
    return data


def load_case(path: str | Path) -> Case:
    """Read a .json, .yaml or .yml case file."""
    p = Path(path)
    if p.suffix.lower() == ".ndjson":
        raise CaseFileError(str(p), "NDJSON: " + _FHIR_HINT)
    data = read_document(p)
    if isinstance(data, dict) and "resourceType" in data:
        raise CaseFileError(str(p), f"a FHIR {data['resourceType']}: " + _FHIR_HINT)
    return parse_case(data, str(p))
