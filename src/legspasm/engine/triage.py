"""Red-flag screen: runs first; a present or possible red flag tops the output and withholds
the advice it makes unsafe."""

from __future__ import annotations

from typing import Literal

from ..assessment import RedFlagResult
from ..knowledge import Knowledge
from .derive import FactMap
from .explain import first_sentence, known_facts, unknown_facts
from .missing import Missing

__all__ = ["triage"]

_URGENCY = {"emergency": 0, "urgent": 1, "same-day": 2}
_STATUS = {"present": 0, "possible": 1}


def triage(kb: Knowledge, facts: FactMap, missing: Missing) -> list[RedFlagResult]:
    """Present (its features recorded) and possible (not excluded, a risk factor or partial
    feature recorded) red flags, most urgent first."""
    fired = []
    for rf in kb.red_flags.values():
        assert rf.compiled is not None
        r = rf.compiled(facts)
        status: Literal["present", "possible"] | None = "present" if r is True else None
        rationale = known_facts(rf.compiled, facts) if r is True else []
        if r is None:
            missing.add(unknown_facts(rf.compiled, facts), rf.id)
            if rf.compiled_possible is not None and rf.compiled_possible(facts) is True:
                status = "possible"
                rationale = known_facts(rf.compiled_possible, facts)
        if status is None:
            continue
        fired.append(
            RedFlagResult(
                id=rf.id,
                name=rf.name,
                urgency=rf.urgency,
                action=rf.possible_action
                if status == "possible" and rf.possible_action
                else rf.action,
                basis=rf.basis,
                rationale=[r for r in rationale if not r.endswith(": no")],
                citations=list(rf.citations),
                status=status,
                order=rf.order,
                summary=first_sentence(rf.possible_action)
                if status == "possible" and rf.possible_action
                else rf.summary,
            )
        )
    fired.sort(key=lambda f: (_URGENCY[f.urgency], _STATUS[f.status]))
    return fired
