"""Tri-state criteria: the small expression language of the knowledge base.

An expression is YAML data::

    {fact: lab.ferritin, le: 75}          comparison (is, eq, ne, lt, le, gt, ge, in)
    {condition: stroke}                   sugar for {fact: condition.stroke, is: true}
    {takes: benzodiazepine}               sugar for {fact: takes.benzodiazepine, is: true}
    {context: rls}                        the routing context is established
    {known: lab.ferritin}                 the fact has a value (never unknown itself; the fact
                                          still counts as read, so it is asked when missing)
    {all: [...]}, {any: [...]}, {not: ...}

Evaluation is Kleene three-valued logic: a comparison on an unknown fact is unknown (None), and
unknowns never count as false. ``compile_expr`` checks every fact name against the declared
vocabulary at load time and returns a pure function of the fact map.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .facts import FAMILIES, STATIC_FACTS, FactValue

__all__ = ["Compiled", "ExprError", "Total", "compile_expr"]

Facts = Mapping[str, FactValue]
Tri = bool | None

_OPS = ("is", "eq", "ne", "lt", "le", "gt", "ge", "in")
_ORDER = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
_SUGAR = ("condition", "takes", "context")  # {condition: x} means {fact: condition.x, is: true}


class ExprError(ValueError):
    """An expression is malformed or names an undeclared fact."""


class Total(dict[str, FactValue]):
    """Facts that answer every name: reading an absent one gives None (unknown), or the default
    a subclass's ``__missing__`` gives it (the engine's FactMap). Compiled expressions read
    facts with ``facts[name]``, a dict lookup."""

    __slots__ = ()

    def __missing__(self, name: str) -> FactValue:
        return None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression: ``fn(facts)`` gives True/False/None; ``facts`` lists names used.
    Called with any mapping of facts (absent means unknown); ``fn`` takes a ``Total``."""

    fn: Callable[[Total], Tri]
    facts: tuple[str, ...]
    source: Any

    def __call__(self, facts: Facts) -> Tri:
        return self.fn(facts if isinstance(facts, Total) else Total(facts))


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_fact(name: str, ids: Mapping[str, frozenset[str]]) -> str:
    if name in STATIC_FACTS:
        return STATIC_FACTS[name].kind
    prefix, _, rest = name.partition(".")
    if prefix in FAMILIES and rest:
        kind, id_space, _ = FAMILIES[prefix]
        if rest not in ids[id_space]:
            raise ExprError(
                f"unknown {id_space} id {rest!r} in fact {name!r}" + _suggest(rest, ids[id_space])
            )
        return kind
    known = list(STATIC_FACTS) + [f"{p}.<id>" for p in FAMILIES]
    raise ExprError(f"unknown fact {name!r}" + _suggest(name, known))


def _leaf(name: str, op: str, want: Any) -> Callable[[Total], Tri]:
    """The comparison of one fact, specialised by operator when compiled (not per call)."""
    if op in ("is", "eq", "ne"):
        negate = op == "ne"

        def equal(f: Total) -> Tri:
            v = f[name]
            return None if v is None else (v != want if negate else v == want)

        return equal
    if op == "in":
        # A list from the knowledge base: a tuple, so nothing can change it after loading.
        options = tuple(want)

        def member(f: Total) -> Tri:
            v = f[name]
            return None if v is None else v in options

        return member
    w = float(want)
    test: Callable[[float, float], bool] = _ORDER[op]

    def order(f: Total) -> Tri:
        v = f[name]
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"ordering comparison on non-number {v!r}")
        return test(v, w)

    return order


def _fold(parts: list[Compiled], decisive: bool) -> Callable[[Total], Tri]:
    """Kleene AND (decisive=False) or OR (decisive=True): one decisive value settles it,
    otherwise any unknown makes the whole unknown."""

    def fn(f: Total) -> Tri:
        unknown = False
        for p in parts:
            r = p.fn(f)
            if r is decisive:
                return decisive
            if r is None:
                unknown = True
        return None if unknown else not decisive

    return fn


def _not(part: Compiled) -> Callable[[Total], Tri]:
    def fn(f: Total) -> Tri:
        r = part.fn(f)
        return None if r is None else not r

    return fn


def compile_expr(src: Any, ids: Mapping[str, frozenset[str]]) -> Compiled:
    """Compile YAML expression data, validating every fact against the vocabulary and ``ids``."""
    if not isinstance(src, dict) or not src:
        raise ExprError(f"an expression must be a non-empty mapping, got {src!r}")
    if "all" in src or "any" in src:
        key = "all" if "all" in src else "any"
        if set(src) != {key} or not isinstance(src[key], list) or not src[key]:
            raise ExprError(f"'{key}' takes a non-empty list and nothing else: {src!r}")
        parts = [compile_expr(s, ids) for s in src[key]]
        used = tuple(dict.fromkeys(n for p in parts for n in p.facts))
        return Compiled(_fold(parts, decisive=key == "any"), used, src)
    if "not" in src:
        if set(src) != {"not"}:
            raise ExprError(f"'not' takes one expression and nothing else: {src!r}")
        inner = compile_expr(src["not"], ids)
        return Compiled(_not(inner), inner.facts, src)
    if "known" in src:
        if set(src) != {"known"} or not isinstance(src["known"], str):
            raise ExprError(f"'known' takes one fact name and nothing else: {src!r}")
        kname = src["known"]
        _check_fact(kname, ids)

        def known(f: Total) -> Tri:
            return f[kname] is not None

        return Compiled(known, (kname,), src)
    for sugar in _SUGAR:
        if sugar in src:
            if set(src) != {sugar} or not isinstance(src[sugar], str):
                raise ExprError(f"'{sugar}' takes one id and nothing else: {src!r}")
            return compile_expr({"fact": f"{sugar}.{src[sugar]}", "is": True}, ids)
    if "fact" not in src:
        raise ExprError(
            f"unknown expression form {sorted(src)}; expected fact, all, any, not, "
            f"condition, takes or context"
        )
    name = src["fact"]
    ops = [k for k in src if k != "fact"]
    if not isinstance(name, str) or len(ops) != 1 or ops[0] not in _OPS:
        raise ExprError(f"a comparison needs 'fact' and exactly one of {_OPS}: {src!r}")
    kind = _check_fact(name, ids)
    op, want = ops[0], src[ops[0]]
    if op in ("lt", "le", "gt", "ge") and (kind != "number" or not isinstance(want, int | float)):
        raise ExprError(f"'{op}' needs a number fact and a number: {src!r}")
    if op == "is" and kind == "bool" and not isinstance(want, bool):
        raise ExprError(f"'is' on a yes/no fact needs true or false: {src!r}")
    if op == "in" and not isinstance(want, list):
        raise ExprError(f"'in' takes a list: {src!r}")
    if name.startswith("context."):
        # A context is established when documented or likely.
        op, want = "in", ["documented", "likely"]
    return Compiled(_leaf(name, op, want), (name,), src)
