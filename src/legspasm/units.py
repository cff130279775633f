"""Unit normalisation with pint.

Each lab the knowledge base knows declares a canonical unit and, when mass and substance units
must be interconverted, a molar mass. ``normalise`` converts a value in any unit pint
understands (plus the clinical spellings below) to that canonical unit, or raises ``UnitError``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from .errors import LegspasmError

__all__ = ["UnitError", "normalise", "parse_unit"]

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


def normalise(
    value: float,
    unit: str,
    canonical: str,
    molar_mass: float | None = None,
    monovalent: bool = False,
) -> float:
    """Convert ``value`` in ``unit`` to ``canonical``; raise UnitError when impossible."""
    if unit.strip() == canonical:
        return value
    # Round away floating-point noise (75 ng/mL must equal 75 ug/L at a <= 75 threshold).
    return round(value * _factor(unit.strip(), canonical, molar_mass, monovalent), 9)
