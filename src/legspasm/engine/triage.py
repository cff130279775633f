"""Red-flag screen: runs first; a fired red flag tops the output and withholds unsafe advice."""

from __future__ import annotations

from ..assessment import RedFlagResult
from ..knowledge import Knowledge
from .derive import FactMap
from .explain import known_facts, unknown_facts
from .missing import Missing

__all__ = ["triage"]

_URGENCY = {"emergency": 0, "urgent": 1, "same-day": 2}


def triage(kb: Knowledge, facts: FactMap, missing: Missing) -> list[RedFlagResult]:
    fired = []
    for rf in kb.red_flags.values():
        assert rf.compiled is not None
        r = rf.compiled(facts)
        if r is True:
            fired.append(
                RedFlagResult(
                    id=rf.id,
                    name=rf.name,
                    urgency=rf.urgency,
                    action=rf.action,
                    basis=rf.basis,
                    rationale=known_facts(rf.compiled, facts),
                    citations=list(rf.citations),
                )
            )
        elif r is None:
            missing.add(unknown_facts(rf.compiled, facts), rf.id)
    fired.sort(key=lambda f: _URGENCY[f.urgency])
    return fired
