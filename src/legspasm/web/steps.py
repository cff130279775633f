"""The adaptive intake: a first step with the complaint and the red-flag screen, then only the
questions that can change this patient's answer.

Step 1 asks the complaint, age and sex, and the red-flag screen: the red-flag questions the
engine asks about a patient of whom nothing is known yet (its missing-data list for an empty
case, limited to the red flags), grouped by the red flag they point to. Step 2 evaluates the
partial case with the one engine and asks what its ``missing_data`` names (``asked``), keeping
everything else of the full form folded under "More details (optional)", so nothing that could
be entered is lost. Nothing here decides anything clinical: which questions matter is the
engine's missing-data list; this module only maps each ``MissingDatum.where`` to form fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..assessment import MissingDatum
from ..case import Case
from ..engine import evaluate
from ..fhir.intake import intake_leaves
from ..knowledge import Knowledge

__all__ = [
    "COMPLAINT",
    "SCREEN_ITEM",
    "SCREEN_NONE",
    "ScreenGroup",
    "asked_keys",
    "expand_screen",
    "red_flag_screen",
    "step1_keys",
]

# The complaint: the first criterion of each main pathway, so that a "yes" opens it (the engine
# then asks the rest) and a "no" closes it.
COMPLAINT = (
    "symptoms.cramp.present",
    "symptoms.cramp.sudden_painful_contraction",
    "symptoms.rls.urge_to_move",
    "symptoms.cramp.after_strain_or_injury",
    "symptoms.spasticity.velocity_dependent_tone",
)
PATIENT = ("patient.age", "patient.sex")
SCREEN_NONE = "screen_none"
"""Checkbox: every screen question not answered is absent (asked about or examined)."""
SCREEN_ITEM = "screen_item"
"""Hidden fields naming the questions the screen showed (what ``SCREEN_NONE`` answers "no")."""


@dataclass(frozen=True)
class ScreenGroup:
    """One red flag's questions in the first step's screen."""

    red_flag: str
    title: str
    links: tuple[str, ...]


_SCREENS: dict[tuple[str, dt.date], tuple[ScreenGroup, ...]] = {}


def red_flag_screen(kb: Knowledge, as_of: dt.date) -> list[ScreenGroup]:
    """The red-flag questions of step 1, from the engine's missing-data list for an empty case."""
    key = (kb.version, as_of)
    if key not in _SCREENS:
        _SCREENS[key] = _screen(kb, as_of)
    return list(_SCREENS[key])


def _screen(kb: Knowledge, as_of: dt.date) -> tuple[ScreenGroup, ...]:
    leaves = intake_leaves()
    missing = evaluate(Case(), kb, as_of).missing_data
    groups: dict[str, list[str]] = {}
    seen: set[str] = set()
    for m in missing:
        flags = [a for a in m.affects if a in kb.red_flags]
        if not flags or m.where not in leaves or m.where in seen or m.where in COMPLAINT:
            continue
        if leaves[m.where].kind != "boolean":
            continue
        seen.add(m.where)
        groups.setdefault(flags[0], []).append(m.where)
    return tuple(
        ScreenGroup(rf, kb.red_flags[rf].name, tuple(links)) for rf, links in groups.items()
    )


def step1_keys(kb: Knowledge, as_of: dt.date) -> set[str]:
    """The form keys step 1 shows (see ``asked_keys`` for what a key is)."""
    return {*PATIENT, *COMPLAINT, *(ln for g in red_flag_screen(kb, as_of) for ln in g.links)}


def expand_screen(form: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The form with "none of the other red flags" written out as a "no" for each question
    the screen showed and left unanswered (so it reads, and carries on, like any answer)."""
    out = {k: list(v) for k, v in form.items() if k not in (SCREEN_NONE, SCREEN_ITEM)}
    if "yes" not in form.get(SCREEN_NONE, []):
        return out
    leaves = intake_leaves()
    for link in form.get(SCREEN_ITEM, []):
        leaf = leaves.get(link)
        if leaf is not None and leaf.kind == "boolean" and not (out.get(link) or [""])[-1]:
            out[link] = ["no"]
    return out


_WORD = re.compile(r"[a-z][a-z0-9_.]*[a-z0-9]")


def keys_of(where: str, kb: Knowledge) -> set[str]:
    """The form keys that answer one ``MissingDatum.where``.

    A key is a Questionnaire linkId, ``patient.age``, ``patient.sex``, ``patient.weight``,
    ``lab:<id>``, ``condition:<concept>``, ``conditions``, ``medications``, ``orders``,
    ``allergies``, ``none_known`` or ``irls`` (the ten IRLS items and their total).
    """
    leaves = intake_leaves()
    out: set[str] = set()
    head = where.split(":", 1)[0].strip()
    words = _WORD.findall(where)
    if head == "conditions" and ":" in where:
        out |= {f"condition:{w}" for w in words[1:] if w in kb.concepts}
        return out
    is_lab = head.startswith("labs") or "lab" in where
    for w in words:
        if w in leaves:
            out.add(w)
        elif f"symptoms.rls.{w}" in leaves:
            out.add(f"symptoms.rls.{w}")
        elif w.startswith("symptoms.rls.irls_items"):
            out |= {"irls", "symptoms.rls.irls_total"}
        elif w in ("patient.age_years", "patient.birth_date", "age"):
            out.add("patient.age")
        elif w in ("patient.sex", "sex"):
            out.add("patient.sex")
        elif w in ("patient.weight", "weight"):
            out.add("patient.weight")
        elif is_lab and w in kb.labs:
            out.add(f"lab:{w}")
        elif w in ("medications", "orders", "allergies", "none_known", "conditions"):
            out.add(w)
    if "serum creatinine" in where:
        out.add("lab:creatinine")
    return out


def asked_keys(missing: Sequence[MissingDatum], kb: Knowledge) -> set[str]:
    """Every form key the missing-data list asks for."""
    out: set[str] = set()
    for m in missing:
        out |= keys_of(m.where, kb)
    return out


def key_of_name(name: str) -> str | None:
    """The form key a form field belongs to (None for fields without one, e.g. the label)."""
    leaves = intake_leaves()
    if name in leaves:
        return "irls" if ".irls_items." in name else name
    if name in ("patient.age_years", "patient.birth_date"):
        return "patient.age"
    if name == "patient.sex":
        return "patient.sex"
    if name.startswith("patient.weight."):
        return "patient.weight"
    if m := re.fullmatch(r"lab\.(\w+)\.\w+", name):
        return f"lab:{m.group(1)}"
    if m := re.fullmatch(r"(med|order)\.\d+\.\w+", name):
        return "medications" if m.group(1) == "med" else "orders"
    if name in ("allergies", "none_known", "conditions"):
        return name
    return None


def answered_keys(values: Mapping[str, list[str]]) -> set[str]:
    """The form keys that already carry an answer in ``values``."""
    out: set[str] = set()
    for name, vals in values.items():
        if not any(v.strip() for v in vals) or name.endswith((".unit", ".status")):
            continue
        if name == "conditions":
            out |= {f"condition:{c}" for c in vals}
        elif (key := key_of_name(name)) is not None:
            out.add(key)
    return out


def prune(items: Iterable[Mapping[str, Any]], keep: set[str]) -> list[dict[str, Any]]:
    """The Questionnaire tree with only the leaves in ``keep`` (empty groups dropped)."""
    out: list[dict[str, Any]] = []
    for it in items:
        if it["type"] == "group":
            if it["linkId"] == "symptoms.rls.irls_items":
                if "irls" in keep:
                    out.append(dict(it))
                continue
            children = prune(it["item"], keep)
            if children:
                out.append({**it, "item": children})
        elif it["type"] != "display" and it["linkId"] in keep:
            out.append(dict(it))
    return out
