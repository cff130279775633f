"""Routing: the differential over every context, each criterion met / not met / unknown."""

from __future__ import annotations

from ..assessment import ConditionResult, ConditionStatus
from ..knowledge import Knowledge
from .derive import FactMap
from .explain import unknown_facts
from .index import index
from .missing import Missing

__all__ = ["route"]

_RANK = {"documented": 0, "likely": 1, "possible": 2, "unknown": 3, "unlikely": 4}


def route(kb: Knowledge, facts: FactMap, missing: Missing) -> list[ConditionResult]:
    results = []
    for order, r in enumerate(index(kb).routing):
        ctx = r.context
        states = [test(facts) for test in r.tests]
        req = [states[i] for i in r.required]
        status: ConditionStatus
        # A diagnosis on the record establishes the condition, not today's complaint: what the
        # patient reports now (a required criterion recorded as absent) outranks the code.
        on_record = any(facts[f] for f in r.record_facts)
        if on_record and False not in req:
            status = "documented"
        elif all(x is True for x in req):
            status = "likely"
        elif False in req:
            status = "unlikely"
        elif any(states[i] is True for i in r.suggestive):
            status = "possible"
            for i in r.required_in_order:
                if states[i] is None:
                    missing.add(unknown_facts(r.tests[i], facts), ctx.id)
        else:
            status = "unknown"
        results.append(
            (
                order,
                ConditionResult(
                    id=ctx.id,
                    name=ctx.name,
                    kind=ctx.kind,
                    status=status,
                    criteria=[r.results[i][x] for i, x in enumerate(states)],
                    citations=list(ctx.citations),
                    on_record=on_record,
                    codes=list(r.codes),
                ),
            )
        )
    results.sort(key=lambda t: (_RANK[t[1].status], t[0]))
    return [r for _, r in results]
