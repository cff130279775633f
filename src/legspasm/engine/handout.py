"""The patient handout: plain-language sections chosen from the knowledge base, in file order.

A section with contexts is shown when one of them is documented or likely; a section without
contexts (the urgent "when to get help" sections) is always shown. A section is left out when one
of its advice tags is withheld: by a fired red flag (``withhold_tags``) or by a blocking avoid rule
on advice (``advice_tags``, e.g. no stretching in functional dystonia, no extra fluid or salt in
heart failure), the same tags that withhold plan steps, so the handout never says what the plan
holds back.
"""

from __future__ import annotations

from ..assessment import ConditionResult, HandoutItem, HandoutSection, RedFlagResult
from ..knowledge import Knowledge
from .avoid import BLOCKING
from .derive import FactMap

__all__ = ["handout", "withheld_advice"]

_SHOWN = ("documented", "likely")


def withheld_advice(kb: Knowledge, red_flags: list[RedFlagResult], facts: FactMap) -> set[str]:
    """Advice tags that must not be given: withheld by a fired red flag or a blocking avoid rule."""
    tags = {t for rf in red_flags for t in kb.red_flags[rf.id].withhold_tags}
    for rule in kb.avoid_rules.values():
        if not rule.advice_tags or rule.severity not in BLOCKING:
            continue
        if rule.compiled is None or rule.compiled(facts) is True:
            tags.update(rule.advice_tags)
    return tags


def handout(
    kb: Knowledge,
    conditions: list[ConditionResult],
    red_flags: list[RedFlagResult],
    facts: FactMap,
) -> list[HandoutSection]:
    """The handout sections for this patient, in knowledge-base order.

    ``facts`` are the case facts with the routing overlay (``context.<id>``), as the avoid rules
    see them; an avoid rule whose condition is unknown does not withhold (as for plan steps).
    """
    status = {c.id: c.status for c in conditions}
    unsafe = withheld_advice(kb, red_flags, facts)
    out: list[HandoutSection] = []
    for sec in kb.handouts.values():
        if sec.contexts and not any(status.get(c) in _SHOWN for c in sec.contexts):
            continue
        if unsafe.intersection(sec.tags):
            continue
        citations = list(sec.citations)
        for item in sec.items:
            if item.red_flag is not None:
                citations += [
                    c for c in kb.red_flags[item.red_flag].citations if c not in citations
                ]
        out.append(
            HandoutSection(
                id=sec.id,
                heading=sec.heading,
                items=[HandoutItem(text=i.text, red_flag=i.red_flag) for i in sec.items],
                note=sec.note,
                citations=citations,
                basis=sec.basis,
            )
        )
    return out
