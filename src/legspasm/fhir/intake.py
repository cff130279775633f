"""legspasm's intake Questionnaire and the reading of answers to it.

The Questionnaire is generated from the case model, so the two cannot drift apart: every item's
``linkId`` is the dotted path of a case field (``symptoms.rls.urge_to_move``), booleans are
``boolean`` items, the case file's literal values are ``choice`` answers (codes in
``ANSWER``), numbers are ``decimal``/``integer`` items with the model's limits. Every item's
text (and help, a ``display`` child item) comes from ``legspasm.intake_text``, the one source
the web form uses too. The IRLS is asked as ten 0-4 items named by topic, without their
wording, which is licensed (MAPI Research Trust).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel

from ..case import NeuroFindings, Patient, RedFlagFeatures, Symptoms
from ..intake_text import GROUP_TEXT, IRLS_LICENCE_URL, label_of, option_text
from .elements import Malformed, objs, string
from .systems import ANSWER, INTAKE

__all__ = ["Leaf", "intake_leaves", "questionnaire", "read_answers"]

# Patient fields asked in the intake; the rest (age, sex, weight) come from Patient/Observation.
_PATIENT_ITEMS = (
    "pregnant",
    "trimester",
    "gestational_weeks",
    "postpartum",
    "lactating",
    "dialysis",
    "history_of_falls_or_fractures",
)
_SECTIONS: tuple[tuple[str, type[BaseModel], str], ...] = (
    ("patient", Patient, "About the patient"),
    ("symptoms", Symptoms, "Symptoms"),
    ("neuro", NeuroFindings, "Neurological findings"),
    ("red_flags", RedFlagFeatures, "Red-flag screen"),
)
IRLS_ITEMS = 10

Kind = Literal["boolean", "choice", "decimal", "integer"]


@dataclass(frozen=True, slots=True)
class Leaf:
    """One answerable item: its case path, answer kind and allowed values."""

    path: tuple[str, ...]
    kind: Kind
    options: tuple[str | int, ...] = ()
    repeats: bool = False
    low: float | None = None
    high: float | None = None


def _strip_none(ann: Any) -> Any:
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return args[0] if len(args) == 1 else ann
    return ann


def _bounds(meta: list[Any]) -> tuple[float | None, float | None]:
    low = high = None
    for m in meta:
        for name in ("ge", "gt"):
            if getattr(m, name, None) is not None:
                low = float(getattr(m, name))
        for name in ("le", "lt"):
            if getattr(m, name, None) is not None:
                high = float(getattr(m, name))
    return low, high


def _leaf(path: tuple[str, ...], ann: Any, meta: list[Any]) -> Leaf:
    ann = _strip_none(ann)
    low, high = _bounds(meta)
    if ann is bool:
        return Leaf(path, "boolean")
    if typing.get_origin(ann) is Literal:
        return Leaf(path, "choice", typing.get_args(ann))
    if typing.get_origin(ann) is list:
        (inner,) = typing.get_args(ann)
        if typing.get_origin(inner) is Literal:
            return Leaf(path, "choice", typing.get_args(inner), repeats=True)
    if ann is float:
        return Leaf(path, "decimal", low=low, high=high)
    if ann is int:
        return Leaf(path, "integer", low=low, high=high)
    raise TypeError(f"no questionnaire item type for {'.'.join(path)}: {ann!r}")  # a model bug


def _walk(model: type[BaseModel], prefix: tuple[str, ...]) -> list[tuple[str, Any]]:
    """(kind, payload) pairs in declaration order: ('leaf', Leaf) or ('group', (path, children))."""
    out: list[tuple[str, Any]] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        if prefix == ("patient",) and name not in _PATIENT_ITEMS:
            continue
        ann = _strip_none(info.annotation)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.append(("group", (path, _walk(ann, path))))
        elif path == ("symptoms", "rls", "irls_items"):
            items = [
                ("leaf", Leaf((*path, str(i)), "integer", low=0, high=4))
                for i in range(1, IRLS_ITEMS + 1)
            ]
            out.append(("group", (path, items)))
        else:
            out.append(("leaf", _leaf(path, info.annotation, list(info.metadata))))
    return out


@lru_cache(maxsize=1)
def _tree() -> tuple[tuple[str, Any], ...]:
    return tuple(("group", ((name,), _walk(model, (name,)))) for name, model, _ in _SECTIONS)


@lru_cache(maxsize=1)
def intake_leaves() -> dict[str, Leaf]:
    """Every answerable item by linkId."""
    out: dict[str, Leaf] = {}

    def visit(nodes: Any) -> None:
        for kind, payload in nodes:
            if kind == "leaf":
                out[".".join(payload.path)] = payload
            else:
                visit(payload[1])

    visit(_tree())
    return out


def _text(path: tuple[str, ...]) -> str:
    return label_of(".".join(path)).text


def _item(kind: str, payload: Any) -> dict[str, Any]:
    if kind == "group":
        path, children = payload
        link = ".".join(path)
        title = GROUP_TEXT.get(link) or {n: t for n, _, t in _SECTIONS}.get(link, link)
        return {
            "linkId": link,
            "text": title,
            "type": "group",
            "item": [_item(k, p) for k, p in children],
        }
    leaf: Leaf = payload
    link = ".".join(leaf.path)
    item: dict[str, Any] = {"linkId": link, "text": _text(leaf.path)}
    item["type"] = leaf.kind
    if leaf.kind == "choice":
        item["answerOption"] = [
            {"valueInteger": o}
            if isinstance(o, int)
            else {"valueCoding": {"system": ANSWER, "code": o, "display": option_text(link, o)}}
            for o in leaf.options
        ]
        if leaf.repeats:
            item["repeats"] = True
    ext = []
    if leaf.low is not None:
        ext.append(_limit("minValue", leaf))
    if leaf.high is not None:
        ext.append(_limit("maxValue", leaf, high=True))
    if ext:
        item["extension"] = ext
    help_text = label_of(link).help
    if help_text:
        item["item"] = [_help(link, help_text)]
    return item


def _help(link: str, text: str) -> dict[str, Any]:
    """A help text as SDC renders it: a display child item with itemControl ``help``."""
    control = "http://hl7.org/fhir/questionnaire-item-control"
    return {
        "linkId": f"{link}.help",
        "text": text,
        "type": "display",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl",
                "valueCodeableConcept": {"coding": [{"system": control, "code": "help"}]},
            }
        ],
    }


def _limit(name: str, leaf: Leaf, high: bool = False) -> dict[str, Any]:
    v = leaf.high if high else leaf.low
    assert v is not None
    key = "valueInteger" if leaf.kind == "integer" else "valueDecimal"
    return {
        "url": f"http://hl7.org/fhir/StructureDefinition/{name}",
        key: int(v) if leaf.kind == "integer" else v,
    }


def questionnaire(version: str) -> dict[str, Any]:
    """legspasm's intake Questionnaire as a FHIR R4 resource (JSON)."""
    return {
        "resourceType": "Questionnaire",
        "id": "legspasm-intake",
        "url": INTAKE,
        "version": version,
        "name": "LegspasmIntake",
        "title": "legspasm intake: leg cramps, spasms and restless legs",
        "status": "draft",
        "subjectType": ["Patient"],
        "publisher": "legspasm",
        "description": (
            "Symptom features, IRLSSG 2014 criteria and IRLS item scores, cramp features and a "
            "red-flag screen. Each linkId is the path of the matching field of a legspasm case "
            "file; unanswered items mean unknown, never no. The IRLS items are named by topic "
            "only: their wording is licensed (MAPI Research Trust) and must come from the "
            f"licensed form ({IRLS_LICENCE_URL})."
        ),
        "item": [_item(k, p) for k, p in _tree()],
    }


def _answer(leaf: Leaf, ans: Mapping[str, Any], path: str) -> Any:
    keys = [k for k in ans if k.startswith("value")]
    if len(keys) != 1:
        raise Malformed(path, "an answer needs exactly one value[x]")
    key, value = keys[0], ans[keys[0]]
    want = {
        "boolean": ("valueBoolean",),
        "decimal": ("valueDecimal", "valueInteger"),
        "integer": ("valueInteger",),
        "choice": ("valueInteger",)
        if leaf.options and isinstance(leaf.options[0], int)
        else ("valueCoding", "valueString"),
    }[leaf.kind]
    if key not in want:
        raise Malformed(f"{path}.{key}", f"expected {' or '.join(want)} for a {leaf.kind} item")
    if key == "valueCoding":
        if not isinstance(value, dict):
            raise Malformed(f"{path}.{key}", "expected a Coding object")
        if value.get("system") not in (ANSWER, None):
            raise Malformed(f"{path}.{key}.system", f"expected {ANSWER}")
        value = string(value, "code", f"{path}.{key}")
    if key == "valueBoolean" and not isinstance(value, bool):
        raise Malformed(f"{path}.{key}", "expected true or false")
    if key in ("valueDecimal", "valueInteger") and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise Malformed(f"{path}.{key}", "expected a number")
    if key == "valueInteger" and not isinstance(value, int):
        raise Malformed(f"{path}.{key}", "expected an integer")
    if leaf.options and value not in leaf.options:
        raise Malformed(f"{path}.{key}", f"{value!r} is not one of {list(leaf.options)}")
    if (leaf.low is not None and value < leaf.low) or (leaf.high is not None and value > leaf.high):
        raise Malformed(f"{path}.{key}", f"{value} is outside {leaf.low}-{leaf.high}")
    return value


@dataclass(frozen=True, slots=True)
class Answers:
    """Answers read from a QuestionnaireResponse, as a nested case-file fragment."""

    values: dict[str, Any]
    answered: list[str]  # linkIds used
    problems: list[tuple[str, str]]  # (element path, problem) for items not used


def read_answers(qr: Mapping[str, Any], where: str) -> Answers:
    """Read a QuestionnaireResponse to the intake Questionnaire into case fields."""
    leaves = intake_leaves()
    values: dict[str, Any] = {}
    answered: list[str] = []
    problems: list[tuple[str, str]] = []

    def visit(parent: Mapping[str, Any], path: str) -> None:
        try:
            items = objs(parent, "item", path)
        except Malformed as exc:  # reported like a bad answer, never raised to the caller
            problems.append((exc.path, exc.problem))
            return
        for ipath, item in items:
            try:
                link = string(item, "linkId", ipath)
                answers = objs(item, "answer", ipath)
            except Malformed as exc:
                problems.append((exc.path, exc.problem))
                continue
            leaf = leaves.get(link or "")
            if leaf is None:
                if answers and (link is None or not _is_group(link)):
                    problems.append((ipath, f"linkId {link!r} is not an intake item"))
                elif any(k.startswith("value") for _, a in answers for k in a):
                    problems.append(
                        (ipath, f"an answer on the group {link!r}: a group takes no answer")
                    )
                visit(item, ipath)
                for apath, ans in answers:
                    visit(ans, apath)
                continue
            try:
                got = [_answer(leaf, a, p) for p, a in answers]
                if len(got) > 1 and not leaf.repeats:
                    raise Malformed(ipath, "one answer expected")
            except Malformed as exc:
                problems.append((exc.path, exc.problem))
                continue
            if not got:
                continue
            _put(values, leaf, got if leaf.repeats else got[0])
            answered.append(".".join(leaf.path))

    visit(qr, where)
    if not answered and not problems:
        problems.append((where, "no answers: the intake answers are empty"))
    return Answers(values, answered, problems)


@lru_cache(maxsize=1)
def _groups() -> frozenset[str]:
    out: set[str] = set()
    for link in intake_leaves():
        parts = link.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(out)


def _is_group(link: str) -> bool:
    return link in _groups()


def _put(values: dict[str, Any], leaf: Leaf, value: Any) -> None:
    path = leaf.path
    if path[-2:-1] == ("irls_items",):
        node = values.setdefault("symptoms", {}).setdefault("rls", {})
        items = node.setdefault("irls_items", [None] * IRLS_ITEMS)
        items[int(path[-1]) - 1] = value
        return
    node = values
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
