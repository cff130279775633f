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
    ix = index(kb)
    results = []
    for order, ctx in enumerate(kb.contexts.values()):
        crits = []
        states: dict[str, bool | None] = {}
        for k in ctx.criteria:
            assert k.compiled is not None
            r = k.compiled(facts)
            states[k.id] = r
            crits.append(ix.criteria[ctx.id, k.id][r])
        required = ctx.required or [k.id for k in ctx.criteria]
        req = [states[i] for i in required]
        status: ConditionStatus
        # A diagnosis on the record establishes the condition, not today's complaint: what the
        # patient reports now (a required criterion recorded as absent) outranks the code.
        on_record = any(facts[f"condition.{c}"] for c in ctx.documented_by)
        if on_record and not any(r is False for r in req):
            status = "documented"
        elif all(r is True for r in req):
            status = "likely"
        elif any(r is False for r in req):
            status = "unlikely"
        elif any(
            states[k.id] is True
            for k in ctx.criteria
            if k.id in required and not k.exclusion and not k.generic
        ):
            status = "possible"
        else:
            status = "unknown"
        if status == "possible":
            for k in ctx.criteria:
                if states[k.id] is None and k.id in required:
                    missing.add(unknown_facts(k.compiled, facts), ctx.id)
        results.append(
            (
                order,
                ConditionResult(
                    id=ctx.id,
                    name=ctx.name,
                    kind=ctx.kind,
                    status=status,
                    criteria=crits,
                    citations=list(ctx.citations),
                    on_record=on_record,
                    codes=list(ix.context_codes[ctx.id]),
                ),
            )
        )
    results.sort(key=lambda t: (_RANK[t[1].status], t[0]))
    return [r for _, r in results]
