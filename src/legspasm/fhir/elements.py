"""Reading FHIR elements from plain JSON with the element path in every complaint.

The mapping reads only the elements it needs; each accessor checks the JSON type and raises
``Malformed(path, problem)`` so a bad resource is reported with its location, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "Malformed",
    "codings",
    "concept_text",
    "fhir_date",
    "first_code",
    "json_kind",
    "number",
    "obj",
    "objs",
    "string",
]


class Malformed(Exception):
    """An element has the wrong JSON type or an impossible value."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def json_kind(v: Any) -> str:
    """How a JSON value reads in an error message: 'an object', 'a string'..."""
    if isinstance(v, bool):
        return "a boolean"
    return {dict: "an object", list: "an array", str: "a string", int: "a number"}.get(
        type(v), type(v).__name__
    )


def obj(parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    v = parent.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise Malformed(f"{path}.{key}", f"expected an object, got {json_kind(v)}")
    return v


def objs(parent: Mapping[str, Any], key: str, path: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The objects of an array element, each with its path (``code.coding[0]``)."""
    v = parent.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise Malformed(f"{path}.{key}", f"expected an array, got {json_kind(v)}")
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise Malformed(f"{path}.{key}[{i}]", f"expected an object, got {json_kind(item)}")
        out.append((f"{path}.{key}[{i}]", item))
    return out


def string(parent: Mapping[str, Any], key: str, path: str) -> str | None:
    v = parent.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise Malformed(f"{path}.{key}", f"expected a string, got {json_kind(v)}")
    return v.replace("\u200b", "").strip() or None


def number(parent: Mapping[str, Any], key: str, path: str) -> float | None:
    v = parent.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Malformed(f"{path}.{key}", f"expected a number, got {json_kind(v)}")
    if v != v or v in (float("inf"), float("-inf")):
        raise Malformed(f"{path}.{key}", "not a finite number")
    return float(v)


def codings(cc: Mapping[str, Any] | None, path: str) -> list[tuple[str | None, str, str | None]]:
    """(system, code, display) of each coding of a CodeableConcept that has a code."""
    if cc is None:
        return []
    out = []
    for p, c in objs(cc, "coding", path):
        code = string(c, "code", p)
        if code is not None:
            out.append((string(c, "system", p), code, string(c, "display", p)))
    return out


def first_code(cc: Mapping[str, Any] | None, path: str, system: str) -> str | None:
    return next((code for s, code, _ in codings(cc, path) if s == system), None)


def concept_text(cc: Mapping[str, Any] | None, path: str) -> str | None:
    """A CodeableConcept's text, else its first coding display, else its first code."""
    if cc is None:
        return None
    text = string(cc, "text", path)
    if text:
        return text
    cs = codings(cc, path)
    return next((d for _, _, d in cs if d), cs[0][1] if cs else None)


_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def fhir_date(value: Any, path: str) -> dt.date | None:
    """The calendar date of a FHIR date, dateTime or instant (partial dates: the first day).

    The date is taken as written: a dateTime's time and zone do not shift it.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(path, f"expected a date string, got {json_kind(value)}")
    m = _DATE.match(value.strip())
    rest = value.strip()[m.end() :] if m else ""
    if m is None or (rest and not rest.startswith("T")):
        raise Malformed(path, f"{value!r} is not a FHIR date or dateTime")
    try:
        return dt.date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        raise Malformed(path, f"{value!r} is not a real calendar date") from None
