"""Unit normalisation with pint, kept off the hot path.

Each lab the knowledge base knows declares a canonical unit and, when mass and substance units
must be interconverted, a molar mass. ``normalise`` converts a value in any unit pint
understands (plus the clinical spellings below) to that canonical unit, or raises ``UnitError``.

Building pint's registry costs about 0.3 s per process, more than assessing a case. The factors
of the common clinical units (``COMMON_UNITS`` to every lab's canonical unit, and weights,
heights, doses and weeks) are therefore prebuilt into ``units_table.json`` by
``scripts/units_table.py`` (a test checks the file against pint); pint is loaded only for a
unit outside the table.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LegspasmError

if TYPE_CHECKING:
    from .knowledge import Knowledge

__all__ = ["COMMON_UNITS", "FORM_UNITS", "UnitError", "build_table", "normalise", "parse_unit"]

TABLE = Path(__file__).with_name("units_table.json")
# The units a clinician or an EHR commonly writes for a lab (the web form offers those that
# convert), and the fixed conversions the engine asks for.
FORM_UNITS = (
    "ng/mL",
    "ug/L",
    "ug/dL",
    "umol/L",
    "mg/dL",
    "mg/L",
    "mmol/L",
    "mEq/L",
    "g/dL",
    "g/L",
    "%",
    "mL/min/1.73m2",
    "U/L",
    "mU/L",
)
"""The lab units the web form offers (those that convert to the lab's own unit)."""
COMMON_UNITS = (
    *FORM_UNITS,
    "mL/min/{1.73_m2}",
    "mL/min",
    "mcg/L",
    "mcg/dL",
    "[iU]/L",
    "IU/L",
    "uIU/mL",
    "mIU/L",
    "pg/mL",
    "nmol/L",
)
"""FORM_UNITS and the other spellings records commonly use (the prebuilt table's lab units)."""
_FIXED = {
    "kg": ("kg", "lb", "[lb_av]", "g", "lbs", "kgs"),
    "cm": ("cm", "m", "mm", "in", "[in_i]", "ft"),
    "mg": ("mg", "g", "mcg", "ug", "ng", "kg"),
    "week": ("week", "wk", "wks", "d", "day", "days", "mo"),
}

# Clinical spellings pint does not know, mapped to pint expressions. UCUM-style "mL/min/{1.73_m2}"
# for eGFR is treated as mL/min (the body-surface normalisation is part of the test's definition).
_ALIASES = {
    "mcg/l": "ug/L",
    "mcg/dl": "ug/dL",
    "mcg/ml": "ug/mL",
    "iu/l": "U/L",
    "u/l": "U/L",
    "meq/l": "mmol/L",  # valid only for monovalent ions; labs declare `monovalent: true`
    "%": "percent",
    "ml/min/1.73m2": "mL/min",
    "ml/min/{1.73_m2}": "mL/min",
    "ml/min/1.73_m2": "mL/min",
    "miu/l": "mU/L",
    "uiu/ml": "mU/L",
    "[iu]/l": "U/L",  # UCUM spellings of international units
    "m[iu]/l": "mU/L",
    "u[iu]/ml": "mU/L",
    "kgs": "kg",
    "lbs": "lb",
    "[lb_av]": "lb",
    "wk": "week",  # UCUM week (gestational age)
    "wks": "week",
}


class UnitError(LegspasmError):
    """A unit is unknown or cannot be converted to the unit required."""


@lru_cache(maxsize=1)
def _registry() -> Any:
    import pint  # imported lazily: keeps CLI start-up fast when no conversion is needed

    ureg: Any = pint.UnitRegistry()
    # The enzyme unit (CK, ALT, AST) replaces pint's "U" (atomic mass unit) on purpose; pint
    # logs a warning for every redefinition, which is noise here.
    pint_log = logging.getLogger("pint.util")
    level = pint_log.level
    pint_log.setLevel(logging.ERROR)
    try:
        ureg.define("U = micromole / minute = IU")
    finally:
        pint_log.setLevel(level)
    return ureg


def parse_unit(unit: str) -> str:
    """Return the pint expression for a clinical unit string, or raise UnitError."""
    key = unit.strip()
    alias = _ALIASES.get(key.lower().replace(" ", ""))
    expr = alias or key
    try:
        _registry().Unit(expr)
    except Exception as exc:  # pint raises several unrelated classes for bad units
        raise UnitError(f"unknown unit {unit!r}") from exc
    return expr


@lru_cache(maxsize=512)
def _factor(src: str, dst: str, molar_mass: float | None, monovalent: bool) -> float:
    if src.lower() == "meq/l" and not monovalent:
        raise UnitError("mEq/L is accepted only for monovalent ions; give mmol/L or mg/dL")
    ureg = _registry()
    q = ureg.Quantity(1.0, parse_unit(src))
    target = parse_unit(dst)
    try:
        if molar_mass is not None:
            with ureg.context("chemistry", mw=molar_mass * ureg("g/mol")):
                return float(q.to(target).magnitude)
        return float(q.to(target).magnitude)
    except Exception as exc:
        raise UnitError(f"cannot convert {src!r} to {dst!r}") from exc


def _key(src: str, dst: str, molar_mass: float | None, monovalent: bool) -> str:
    return f"{src}|{dst}|{'' if molar_mass is None else repr(molar_mass)}|{int(monovalent)}"


@lru_cache(maxsize=1)
def _table() -> dict[str, float]:
    try:
        data: dict[str, float] = json.loads(TABLE.read_text(encoding="utf-8"))
    except OSError:
        return {}
    return data


def build_table(kb: Knowledge) -> dict[str, float]:
    """Every common conversion the knowledge base's labs and the engine need, computed by pint
    (what ``units_table.json`` must hold)."""
    pairs: set[tuple[str, str, float | None, bool]] = set()
    for lab in kb.labs.values():
        for unit in (*COMMON_UNITS, lab.unit):
            pairs.add((unit, lab.unit, lab.molar_mass, lab.monovalent))
    for dst, units in _FIXED.items():
        pairs.update((u, dst, None, False) for u in units)
    out: dict[str, float] = {}
    for src, dst, mw, mono in sorted(pairs, key=str):
        if src == dst:
            continue
        try:
            out[_key(src, dst, mw, mono)] = _factor(src, dst, mw, mono)
        except UnitError:
            continue
    return out


def normalise(
    value: float,
    unit: str,
    canonical: str,
    molar_mass: float | None = None,
    monovalent: bool = False,
) -> float:
    """Convert ``value`` in ``unit`` to ``canonical``; raise UnitError when impossible."""
    src = unit.strip()
    if src == canonical:
        return value
    factor = _table().get(_key(src, canonical, molar_mass, monovalent))
    if factor is None:
        factor = _factor(src, canonical, molar_mass, monovalent)
    # Round away floating-point noise (75 ng/mL must equal 75 ug/L at a <= 75 threshold).
    return round(value * factor, 9)


def main() -> None:
    """Write units_table.json from pint and the bundled knowledge base."""
    from .knowledge import load_knowledge

    table = build_table(load_knowledge())
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{TABLE}: {len(table)} factors")
