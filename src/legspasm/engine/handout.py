"""The patient handout: plain-language sections chosen from the knowledge base, in file order.

A section with contexts is shown when one of them is documented or likely; a section without
contexts is shown when one of its lines is relevant. A section is left out when one of its advice
tags is withheld: by a fired red flag (``withhold_tags``) or by a blocking avoid rule on advice
(``advice_tags``, e.g. no stretching in functional dystonia, no extra fluid or salt in heart
failure), the same tags that withhold plan steps, so the handout never says what the plan holds
back.

Each line is kept only when it is relevant to this patient, as the data says: its ``when`` is
true (unknown is not enough), its ``avoid_rule`` is on the patient's avoid list, and none of its
own tags is withheld. A red-flag line is also kept when that red flag is possible; when the red
flag is present, the line is marked ``found`` (a sign found today, not a future "see a doctor
if"). A section left with no line is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..assessment import AvoidItem, ConditionResult, HandoutItem, HandoutSection, RedFlagResult
from ..knowledge import Knowledge
from ..knowledge.model import HandoutItem as ItemEntry
from .derive import FactMap
from .index import index

__all__ = ["handout", "withheld_advice"]

_SHOWN = ("documented", "likely")


def withheld_advice(kb: Knowledge, red_flags: list[RedFlagResult], facts: FactMap) -> set[str]:
    """Advice tags that must not be given: withheld by a fired red flag or a blocking avoid rule."""
    tags = {t for rf in red_flags for t in kb.red_flags[rf.id].withhold_tags}
    for rule in index(kb).blocking_advice:
        if rule.compiled is None or rule.compiled(facts) is True:
            tags.update(rule.advice_tags)
    return tags


def _relevant(
    item: ItemEntry,
    facts: FactMap,
    fired: Mapping[str, str],
    avoided: set[str],
    unsafe: set[str],
) -> bool:
    if item.red_flag is not None and item.red_flag in fired:
        return True
    if unsafe.intersection(item.tags):
        return False
    if item.avoid_rule is not None and item.avoid_rule not in avoided:
        return False
    return item.compiled is None or item.compiled(facts) is True


def handout(
    kb: Knowledge,
    conditions: list[ConditionResult],
    red_flags: list[RedFlagResult],
    facts: FactMap,
    avoid: Sequence[AvoidItem] = (),
) -> list[HandoutSection]:
    """The handout sections for this patient, in knowledge-base order.

    ``facts`` are the case facts with the routing overlay (``context.<id>``), as the avoid rules
    see them; an avoid rule whose condition is unknown does not withhold (as for plan steps).
    ``avoid`` is the patient's avoid list (lines tied to an avoid rule need it on the list).
    """
    status = {c.id: c.status for c in conditions}
    unsafe = withheld_advice(kb, red_flags, facts)
    fired = {rf.id: rf.status for rf in red_flags}
    avoided = {i.id for i in avoid}
    out: list[HandoutSection] = []
    for sec in kb.handouts.values():
        if sec.contexts and not any(status.get(c) in _SHOWN for c in sec.contexts):
            continue
        if unsafe.intersection(sec.tags):
            continue
        items = [i for i in sec.items if _relevant(i, facts, fired, avoided, unsafe)]
        if not items:
            continue
        citations = list(sec.citations)
        for item in items:
            extra: list[str] = []
            if item.red_flag is not None:
                extra = kb.red_flags[item.red_flag].citations
            elif item.avoid_rule is not None:
                extra = kb.avoid_rules[item.avoid_rule].citations
            citations += [c for c in extra if c not in citations]
        out.append(
            HandoutSection(
                id=sec.id,
                heading=sec.heading,
                items=[
                    HandoutItem(
                        text=i.text,
                        red_flag=i.red_flag,
                        found=i.red_flag is not None and fired.get(i.red_flag) == "present",
                    )
                    for i in items
                ],
                note=sec.note,
                citations=citations,
                basis=sec.basis,
            )
        )
    return out
