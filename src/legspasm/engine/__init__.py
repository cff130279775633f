"""The pure core: ``evaluate(case, knowledge, as_of) -> Assessment``.

No I/O, no clock, no globals; the case is never mutated (it is frozen). Order of passes:
derive facts -> red-flag screen -> routing -> plan drafts with doses -> the safety gates (red
flags, the knowledge base's medication gates, avoid rules), which leave each proposal
recommended, conditional or withheld -> orders being placed -> patient handout -> numbered
citations. The passes share one frozen EvalContext.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..assessment import (
    Assessment,
    AvoidItem,
    CitationRef,
    ConditionResult,
    Derived,
    HandoutSection,
    PlanStep,
    RedFlagResult,
)
from ..case import Case
from ..knowledge import Knowledge
from ..knowledge.model import Citation
from .avoid import dedupe
from .bottom_line import bottom_line, name_of
from .context import EvalContext
from .derive import derive
from .gates import judge
from .handout import handout
from .index import index
from .missing import Missing
from .options import choose_options
from .orders import check_orders, offer_alternatives
from .plan import draft_plan
from .route import route
from .triage import triage

__all__ = ["evaluate", "format_citation"]


def evaluate(case: Case, knowledge: Knowledge, as_of: dt.date) -> Assessment:
    """Assess one case against the knowledge base at date ``as_of``."""
    kb = knowledge
    missing = Missing()
    d = derive(case, kb, as_of)
    red_flags = triage(kb, d.facts, missing)
    conditions = route(kb, d.facts, missing)
    facts = d.facts.with_overlay(
        {f"context.{c.id}": c.status for c in conditions},
        {f"context.{c.id}": c.name for c in conditions},
    )
    ctx = dataclasses.replace(EvalContext.of(kb, d, as_of), facts=facts)
    drafts = draft_plan(ctx, conditions, missing)
    plan, withheld, avoid = judge(ctx, drafts, red_flags, missing)
    plan = choose_options(kb, plan, withheld)
    ordered = check_orders(ctx, missing)
    if ordered:
        avoid = dedupe(
            [
                *avoid,
                *(
                    i.model_copy(update={"alternatives": offer_alternatives(kb, i, plan)})
                    for i in ordered
                ),
            ]
        )
    sections = handout(kb, conditions, red_flags, facts, avoid)
    irls_label = None
    if d.irls_total is not None:
        irls_label = kb.scales["irls"].label_for(d.irls_total)
    age = d.facts["age"]
    egfr = d.facts["egfr"]
    derived = Derived(
        age_years=age if isinstance(age, float) else None,
        crcl_ml_min=d.crcl.value,
        crcl_note=d.crcl.note,
        egfr=egfr if isinstance(egfr, float) else None,
        renal_function_ml_min=d.renal.value,
        renal_function_note=d.renal.note,
        irls_total=d.irls_total,
        irls_severity=irls_label,
        ferritin_ng_ml=_number_or_none(d.facts["lab.ferritin"]),
        tsat_percent=_number_or_none(d.facts["lab.tsat"]),
    )
    names: dict[str, str] = {}

    def named(ident: str) -> str:
        if ident not in names:
            names[ident] = name_of(kb, ident)
        return names[ident]

    missing_data = missing.result(named)
    return Assessment(
        knowledge_version=kb.version,
        as_of=as_of,
        case_id=case.id,
        bottom_line=bottom_line(
            kb, red_flags, conditions, plan, withheld, avoid, missing_data, derived
        ),
        red_flags=red_flags,
        conditions=conditions,
        plan=plan,
        withheld=withheld,
        avoid=avoid,
        missing_data=missing_data,
        derived=derived,
        notes=d.notes,
        citations=_number(kb, red_flags, conditions, plan, avoid, irls_label is not None, sections),
        handout=sections,
    )


def _number_or_none(v: object) -> float | None:
    return v if isinstance(v, float) else None


def format_citation(c: Citation) -> str:
    parts = [f"{c.authors.rstrip('.')}. {c.title.rstrip('.')}. {c.source.rstrip('.')}."]
    if c.doi:
        parts.append(f"doi:{c.doi}.")
    if c.pmid:
        parts.append(f"PMID {c.pmid}.")
    return " ".join(parts)


def _number(
    kb: Knowledge,
    red_flags: list[RedFlagResult],
    conditions: list[ConditionResult],
    plan: list[PlanStep],
    avoid: list[AvoidItem],
    irls: bool,
    sections: list[HandoutSection],
) -> list[CitationRef]:
    order: list[str] = []
    groups = [rf.citations for rf in red_flags]
    groups += [c.citations for c in conditions if c.status in ("documented", "likely", "possible")]
    groups += [s.citations for s in plan] + [a.citations for a in avoid]
    groups += [a.stopping.citations for a in avoid if a.stopping is not None]
    if irls:
        groups.append(kb.scales["irls"].citations)
    if any(s.medication and s.medication.renal_band for s in plan):
        groups.append(["CG1976"])
    groups += [h.citations for h in sections]
    for g in groups:
        for cid in g:
            if cid not in order:
                order.append(cid)
    out = []
    texts = index(kb).citation_text
    for n, cid in enumerate(order, start=1):
        text, url = texts[cid]
        out.append(CitationRef(number=n, id=cid, text=text, url=url, basis=kb.citations[cid].basis))
    return out
