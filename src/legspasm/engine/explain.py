"""Rationale in words: which facts made a rule fire, and which unknown facts could change it."""

from __future__ import annotations

import functools
import re

from ..expr import Compiled
from ..facts import FAMILIES, STATIC_FACTS, FactValue
from .derive import FactMap

__all__ = [
    "ORDERED",
    "describe",
    "first_sentence",
    "known_facts",
    "label",
    "short",
    "unknown_facts",
    "where",
]

ORDERED = "being ordered: "  # prefixes the medicines of an order set in a ``takes.`` rationale


_SENTENCE_END = re.compile(r"(?<=[A-Za-z0-9)%])[.;:](?=\s+[A-Z(]|$)")


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (up to its first full stop, semicolon or colon)."""
    m = _SENTENCE_END.search(text)
    return (text[: m.start()] if m else text).strip().rstrip(".") + "."


def short(summary: str | None, text: str) -> str:
    """An entry's short summary, or the first sentence of its text where it has none."""
    return summary if summary else first_sentence(text)


@functools.cache  # a pure function of the fact name (a bounded vocabulary)
def label(name: str) -> str:
    if name in STATIC_FACTS:
        return STATIC_FACTS[name].label
    prefix, _, rest = name.partition(".")
    return FAMILIES[prefix][2].format(rest.replace("_", " "))


@functools.cache
def where(name: str) -> str:
    if name in STATIC_FACTS:
        return STATIC_FACTS[name].case_path
    prefix, _, rest = name.partition(".")
    return {
        "lab": f"labs: {rest}",
        "low": f"labs: {rest}",
        "high": f"labs: {rest}",
        "condition": f"conditions: {rest}",
        "takes": "medications",
        "intrathecal": "medications (route: intrathecal)",
        "stopped_days_ago": "medications (end_date)",
        "days_on": "medications (start_date)",
        "context": "symptoms",
    }[prefix]


def _fmt(value: FactValue) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe(name: str, value: FactValue) -> str:
    return f"{label(name)}: {_fmt(value)}"


def known_facts(expr: Compiled | None, facts: FactMap) -> list[str]:
    """The recorded facts an expression used, worded for a clinician (the rationale)."""
    if expr is None:
        return []
    out = []
    for n in expr.facts:
        v = facts[n]
        if v is None or not facts.recorded(n):
            continue
        if n.startswith("context."):
            if v in ("documented", "likely"):
                name = facts.why.get(n, label(n))
                out.append(f"{name}: {'on the record' if v == 'documented' else v}")
            continue
        if n.startswith("takes.") and n in facts.why:
            what = n.split(".", 1)[1].replace("_", " ")
            who = facts.why[n]
            if not who.startswith(ORDERED):
                who = f"currently takes {who}"
            out.append(who if who.endswith(what) else f"{who} ({what})")
            continue
        if n.startswith(("days_on.", "low.", "high.", "secondary_cause")) and n in facts.why:
            out.append(facts.why[n])
            continue
        out.append(describe(n, v))
    return out


def unknown_facts(expr: Compiled | None, facts: FactMap) -> list[str]:
    if expr is None:
        return []
    return [n for n in expr.facts if facts[n] is None and not n.startswith("context.")]
