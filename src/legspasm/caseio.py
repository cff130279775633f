"""Reading case files (JSON or YAML) into a validated Case; errors name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .case import Case
from .documents import excerpt, parse_json, parse_yaml
from .errors import CaseFileError, CaseValidationError, DocumentError

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
                msg += f" (got {excerpt(err['input'])})"
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
        return parse_json(text) if p.suffix.lower() == ".json" else parse_yaml(text)
    except DocumentError as exc:
        raise CaseFileError(str(p), str(exc)) from None


def load_case(path: str | Path) -> Case:
    """Read a .json, .yaml or .yml case file."""
    p = Path(path)
    if p.suffix.lower() == ".ndjson":
        raise CaseFileError(str(p), "NDJSON: " + _FHIR_HINT)
    data = read_document(p)
    if isinstance(data, dict) and "resourceType" in data:
        raise CaseFileError(str(p), f"a FHIR {data['resourceType']}: " + _FHIR_HINT)
    return parse_case(data, str(p))
