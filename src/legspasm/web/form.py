"""The intake form: its fields, and the reading of a submitted form into a case.

The form mirrors the intake Questionnaire (``fhir.intake``): each of its items is a form field
named by the item's ``linkId``, which is the dotted path of a case field
(``symptoms.rls.urge_to_move``). A boolean is a three-way choice, "yes", "no" or unanswered
(unknown, never "no"). Around those items the form adds what a Questionnaire leaves to the record:
age, sex and weight (``patient.*``), conditions, medicines (``med.N.*``), medicines being
considered (``order.N.*``), one row per knowledge-base lab (``lab.ID.*``) and allergies.

``read_form`` returns the case data and, for every problem, the *form field* it belongs to, so
the page can show the error next to that field; ``field_of`` maps a case path from a later
validation error (``labs[2].unit``) back to its form field (``lab.creatinine.unit``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..case import MEDICINE_OUTCOMES, Case, MedicationEntry, MedicationOrder
from ..engine.derive import coded_concepts
from ..fhir.intake import Leaf, intake_leaves
from ..knowledge import Knowledge
from ..units import FORM_UNITS, UnitError, normalise

__all__ = [
    "DOSE_UNITS",
    "MED_ROWS",
    "ORDER_ROWS",
    "OUTCOME_LABELS",
    "FormData",
    "ParsedForm",
    "case_to_form",
    "field_of",
    "lab_units",
    "read_form",
]

MED_ROWS = 5
ORDER_ROWS = 2
DOSE_UNITS = ("mg", "g", "mcg", "mg/24h")
WEIGHT_UNITS = ("kg", "lb")
# The words the form shows for each outcome a current or past medicine can have (case.py).
_OUTCOME_WORDS = {"partial": "partial benefit", "ineffective": "ineffective after a fair trial"}
OUTCOME_LABELS = tuple((v, _OUTCOME_WORDS.get(v, v.replace("_", " "))) for v in MEDICINE_OUTCOMES)
_YES_NO = {"yes": True, "no": False}

FormData = Mapping[str, list[str]]
"""A submitted form: every field name with all its values (checkboxes repeat)."""


@lru_cache(maxsize=64)
def _convertible(unit: str, canonical: str, molar_mass: float | None, monovalent: bool) -> bool:
    try:
        normalise(1.0, unit, canonical, molar_mass, monovalent)
    except UnitError:
        return False
    return True


def lab_units(kb: Knowledge, lab_id: str) -> list[str]:
    """The units offered for a lab: its canonical unit first, then the common ones that convert."""
    spec = kb.labs[lab_id]
    out = [spec.unit]
    for u in FORM_UNITS:
        if u != spec.unit and _convertible(u, spec.unit, spec.molar_mass, spec.monovalent):
            out.append(u)
    return out


@dataclass
class ParsedForm:
    """What a submitted form says: case data, problems by form field, and the row map."""

    data: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # case-path prefix -> form-field prefix, e.g. "labs[0]" -> "lab.creatinine"
    rows: dict[str, str] = field(default_factory=dict)

    def put(self, path: Iterable[str], value: Any) -> None:
        node = self.data
        *head, last = list(path)
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value


def _one(form: FormData, name: str) -> str:
    values = form.get(name) or []
    return values[-1].strip() if values else ""


def _number(raw: str, name: str, out: ParsedForm, integer: bool = False) -> float | int | None:
    if raw == "":
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        out.errors[name] = f"{raw!r} is not a number"
        return None
    if not math.isfinite(value):
        out.errors[name] = f"{raw!r} is not a number"
        return None
    if integer:
        if value != int(value):
            out.errors[name] = f"{raw!r} is not a whole number"
            return None
        return int(value)
    return value


def _date(raw: str, name: str, out: ParsedForm) -> str | None:
    if raw == "":
        return None
    try:
        return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        out.errors[name] = f"{raw!r} is not a date (YYYY-MM-DD)"
        return None


def _leaf_value(leaf: Leaf, form: FormData, name: str, out: ParsedForm) -> Any:
    if leaf.kind == "boolean":
        raw = _one(form, name)
        if raw == "":
            return None
        if raw not in _YES_NO:
            out.errors[name] = f"{raw!r} is not yes or no"
            return None
        return _YES_NO[raw]
    if leaf.kind == "choice":
        raws = [v.strip() for v in form.get(name, []) if v.strip()]
        if not leaf.repeats:
            raws = raws[-1:]
        values: list[Any] = []
        for raw in raws:
            value: Any = int(raw) if raw.isdigit() and isinstance(leaf.options[0], int) else raw
            if value not in leaf.options:
                out.errors[name] = f"{raw!r} is not one of {', '.join(map(str, leaf.options))}"
                return None
            values.append(value)
        if not values:
            return None
        return values if leaf.repeats else values[0]
    return _number(_one(form, name), name, out, integer=leaf.kind == "integer")


def _quantity(form: FormData, prefix: str, value_key: str, out: ParsedForm) -> Any:
    value = _number(_one(form, f"{prefix}.{value_key}"), f"{prefix}.{value_key}", out)
    unit = _one(form, f"{prefix}.unit")
    if value is None:
        return None
    if not unit:
        out.errors[f"{prefix}.unit"] = "give the unit"
        return None
    return {"value": value, "unit": unit}


def _medicine_rows(
    form: FormData, kind: str, case_key: str, out: ParsedForm, extra: tuple[str, ...]
) -> None:
    rows: list[dict[str, Any]] = []
    for n in _row_numbers(form, kind):
        prefix = f"{kind}.{n}"
        name = _one(form, f"{prefix}.name")
        dose = _quantity(form, prefix, "dose", out)
        times = _number(_one(form, f"{prefix}.times_per_day"), f"{prefix}.times_per_day", out)
        # A number is an RxNorm code (as written by case_to_form for a code-only medicine).
        code = name if name.isdigit() else None
        row: dict[str, Any] = {
            "name": None if code else name or None,
            "rxnorm": code,
            "dose": dose,
            "times_per_day": times,
        }
        if "start_date" in extra:
            row["start_date"] = _date(
                _one(form, f"{prefix}.start_date"), f"{prefix}.start_date", out
            )
            row["end_date"] = _date(_one(form, f"{prefix}.end_date"), f"{prefix}.end_date", out)
            row["status"] = "stopped" if _one(form, f"{prefix}.status") == "stopped" else "active"
            outcome = _one(form, f"{prefix}.outcome")
            if outcome and outcome not in MEDICINE_OUTCOMES:
                out.errors[f"{prefix}.outcome"] = (
                    f"{outcome!r} is not one of {', '.join(MEDICINE_OUTCOMES)}"
                )
            elif outcome:
                row["outcome"] = outcome
        if "duration_days" in extra:
            days = _number(
                _one(form, f"{prefix}.duration_days"), f"{prefix}.duration_days", out, integer=True
            )
            row["duration_days"] = days
        filled = {k: v for k, v in row.items() if v is not None and k not in ("status", "outcome")}
        if not filled:
            continue
        if not name:
            out.errors[f"{prefix}.name"] = "give the medicine's name"
            continue
        out.rows[f"{case_key}[{len(rows)}]"] = prefix
        rows.append({k: v for k, v in row.items() if v is not None})
    if rows:
        out.data[case_key] = rows


def _row_numbers(form: FormData, kind: str) -> list[int]:
    found = {int(m.group(1)) for name in form if (m := re.fullmatch(rf"{kind}\.(\d+)\.\w+", name))}
    return sorted(found)


def read_form(form: FormData, kb: Knowledge) -> ParsedForm:
    """Read a submitted intake form (or a part of one) into case data and field errors."""
    out = ParsedForm()
    label = _one(form, "id")
    if label:
        out.data["id"] = label
    for link, leaf in intake_leaves().items():
        if link not in form:
            continue
        value = _leaf_value(leaf, form, link, out)
        if value is None:
            continue
        if leaf.path[-2:-1] == ("irls_items",):
            continue  # the ten items are read together below
        out.put(leaf.path, value)
    irls_names = [f"symptoms.rls.irls_items.{i}" for i in range(1, 11)]
    if any(name in form for name in irls_names):
        items = [_leaf_value(intake_leaves()[n], form, n, out) for n in irls_names]
        answered = [i for i in items if i is not None]
        if answered and len(answered) < len(items):
            first = irls_names[items.index(None)]
            out.errors[first] = "answer all ten IRLS items, or none"
        elif answered:
            out.put(("symptoms", "rls", "irls_items"), items)
    age = _number(_one(form, "patient.age_years"), "patient.age_years", out)
    if age is not None:
        out.put(("patient", "age_years"), age)
    birth = _date(_one(form, "patient.birth_date"), "patient.birth_date", out)
    if birth is not None:
        out.put(("patient", "birth_date"), birth)
    sex = _one(form, "patient.sex")
    if sex:
        out.put(("patient", "sex"), sex)
    weight = _quantity(form, "patient.weight", "value", out)
    if weight is not None:
        out.put(("patient", "weight"), weight)
    conditions = [c.strip() for c in form.get("conditions", []) if c.strip()]
    for c in conditions:
        if c not in kb.concepts:
            out.errors["conditions"] = f"unknown condition {c!r}"
    if conditions and "conditions" not in out.errors:
        out.data["conditions"] = [{"concept": c} for c in dict.fromkeys(conditions)]
    _medicine_rows(form, "med", "medications", out, ("start_date",))
    _medicine_rows(form, "order", "orders", out, ("duration_days",))
    labs: list[dict[str, Any]] = []
    for lab_id in kb.labs:
        prefix = f"lab.{lab_id}"
        value = _number(_one(form, f"{prefix}.value"), f"{prefix}.value", out)
        if value is None:
            continue
        unit = _one(form, f"{prefix}.unit") or kb.labs[lab_id].unit
        lab: dict[str, Any] = {"name": lab_id, "value": value, "unit": unit}
        date = _date(_one(form, f"{prefix}.date"), f"{prefix}.date", out)
        if date is not None:
            lab["date"] = date
        out.rows[f"labs[{len(labs)}]"] = prefix
        labs.append(lab)
    if labs:
        out.data["labs"] = labs
    allergies = [a.strip() for a in _one(form, "allergies").split(",") if a.strip()]
    if allergies:
        out.data["allergies"] = [{"substance": a} for a in allergies]
    none = [n for n in form.get("none_known", []) if n in _NONE_KNOWN]
    for name in none:
        if out.data.get(name):
            out.errors["none_known"] = f"'no {name}' is ticked but {name} are listed"
    if none and "none_known" not in out.errors:
        out.data["none_known"] = list(dict.fromkeys(none))
    return out


_NONE_KNOWN = ("conditions", "medications", "allergies")
_ROW_FIELD = {"dose.value": "dose", "dose.unit": "unit", "dose": "dose"}


def field_of(path: str, rows: Mapping[str, str]) -> str:
    """The form field of a case path named by a validation error.

    ``labs[0].unit`` -> ``lab.creatinine.unit``; ``patient.weight.value`` stays as it is;
    ``symptoms.rls.irls_items[3]`` -> ``symptoms.rls.irls_items.4``.
    """
    m = re.fullmatch(r"(\w+\[\d+\])(?:\.(.+))?", path)
    if m and m.group(1) in rows:
        prefix, rest = rows[m.group(1)], m.group(2) or "name"
        if prefix.startswith("lab."):
            rest = rest if rest in ("value", "unit", "date") else "value"
        else:
            rest = _ROW_FIELD.get(rest, rest)
        return f"{prefix}.{rest}"
    m = re.fullmatch(r"symptoms\.rls\.irls_items(?:\[(\d+)\])?", path)
    if m:
        return f"symptoms.rls.irls_items.{int(m.group(1) or 0) + 1}"
    if re.fullmatch(r"conditions\[\d+\].*", path):
        return "conditions"
    if re.fullmatch(r"allergies\[\d+\].*", path):
        return "allergies"
    return path


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, "") if isinstance(value, bool) else str(value)


def _medicine_name(kb: Knowledge, name: str | None, rxnorm: str | None) -> str:
    """What the medicine field shows: the name, else the drug an RxNorm code is, else the code."""
    if name:
        return name
    drug = kb.lookups.match_drug(None, rxnorm)
    return kb.drugs[drug].name if drug else rxnorm or ""


def _medicine_fields(
    out: dict[str, list[str]], prefix: str, kb: Knowledge, m: MedicationEntry | MedicationOrder
) -> None:
    """The fields a medicine and a medicine being considered have in common."""
    out[f"{prefix}.name"] = [_medicine_name(kb, m.name, m.rxnorm)]
    if m.dose:
        out[f"{prefix}.dose"] = [f"{m.dose.value:g}"]
        out[f"{prefix}.unit"] = [m.dose.unit]
    if m.times_per_day is not None:
        out[f"{prefix}.times_per_day"] = [f"{m.times_per_day:g}"]


def case_to_form(case: Case, kb: Knowledge) -> dict[str, list[str]]:
    """The form fields that show ``case`` (to edit an assessment or open an example).

    Only what the form can hold: a coded condition without a knowledge-base concept, or a lab
    given by LOINC only, is left out (``read_form(case_to_form(c))`` then differs from ``c``).
    """
    data = case.model_dump(mode="json", exclude_none=True)
    out: dict[str, list[str]] = {}
    if case.id:
        out["id"] = [case.id]
    for link, leaf in intake_leaves().items():
        node: Any = data
        for part in leaf.path:
            if leaf.path[-2:-1] == ("irls_items",) and part == leaf.path[-1]:
                node = node[int(part) - 1] if isinstance(node, list) else None
                break
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        out[link] = [str(v) for v in node] if isinstance(node, list) else [_yes_no(node)]
    p = case.patient
    if p.age_years is not None:
        out["patient.age_years"] = [f"{p.age_years:g}"]
    if p.birth_date is not None:
        out["patient.birth_date"] = [p.birth_date.isoformat()]
    if p.sex is not None:
        out["patient.sex"] = [p.sex]
    if p.weight is not None:
        out["patient.weight.value"] = [f"{p.weight.value:g}"]
        out["patient.weight.unit"] = [p.weight.unit]
    concepts = [
        one
        for c in case.conditions
        if c.status == "active"
        for one in ((c.concept,) if c.concept else coded_concepts(kb, c.code) if c.code else ())
    ]
    known = [c for c in dict.fromkeys(concepts) if c is not None and c in kb.concepts]
    if known:
        out["conditions"] = known
    for n, m in enumerate(case.medications, start=1):
        _medicine_fields(out, f"med.{n}", kb, m)
        if m.start_date:
            out[f"med.{n}.start_date"] = [m.start_date.isoformat()]
        if m.end_date:
            out[f"med.{n}.end_date"] = [m.end_date.isoformat()]
        out[f"med.{n}.status"] = [m.status]
        if m.outcome:
            out[f"med.{n}.outcome"] = [m.outcome]
    for n, o in enumerate(case.orders, start=1):
        _medicine_fields(out, f"order.{n}", kb, o)
        if o.duration_days is not None:
            out[f"order.{n}.duration_days"] = [str(o.duration_days)]
    latest: dict[str, Any] = {}
    for lab in case.labs:
        if lab.name in kb.labs and (
            lab.name not in latest
            or (lab.date or dt.date.min) >= (latest[lab.name].date or dt.date.min)
        ):
            latest[lab.name] = lab
    for lab_id, lab in latest.items():
        prefix = f"lab.{lab_id}"
        out[f"{prefix}.value"] = [f"{lab.value:g}"]
        out[f"{prefix}.unit"] = [lab.unit]
        if lab.date:
            out[f"{prefix}.date"] = [lab.date.isoformat()]
    if case.allergies:
        out["allergies"] = [", ".join(a.substance for a in case.allergies)]
    if case.none_known:
        out["none_known"] = list(case.none_known)
    return out
