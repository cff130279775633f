"""The stepwise plan: recommendations of established contexts, with patient-specific doses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..assessment import ConditionResult, PlanStep
from ..knowledge import Knowledge
from ..knowledge.model import PHASES, Recommendation
from .derive import CrCl, FactMap
from .dosing import plan_medication
from .explain import known_facts, unknown_facts
from .missing import Missing

__all__ = ["Draft", "draft_plan"]


@dataclass
class Draft:
    """A plan step before the safety passes (avoid rules, red flags) have run."""

    rec: Recommendation
    step: PlanStep
    drug_id: str | None
    warnings: list[str] = field(default_factory=list)


def draft_plan(
    kb: Knowledge,
    facts: FactMap,
    conditions: list[ConditionResult],
    crcl: CrCl,
    as_of: dt.date,
    current: set[str],
    missing: Missing,
    withheld: list[tuple[str, str, str, str]],
) -> list[Draft]:
    status = {c.id: c for c in conditions}
    drafts: list[tuple[int, int, Draft]] = []
    for order, rec in enumerate(kb.recommendations.values()):
        ctx = status[rec.context]
        if ctx.status not in rec.context_status:
            continue
        when = rec.compiled_when(facts) if rec.compiled_when is not None else True
        unless = rec.compiled_unless(facts) if rec.compiled_unless is not None else False
        if when is None:
            missing.add(unknown_facts(rec.compiled_when, facts), rec.id)
        if unless is None:
            missing.add(unknown_facts(rec.compiled_unless, facts), rec.id)
        if when is not True or unless is not False:
            continue
        rationale = [f"{ctx.name}: {ctx.status}"]
        rationale += known_facts(rec.compiled_when, facts)
        med = None
        drug_id = None
        warnings: list[str] = []
        if rec.medication is not None:
            drug = kb.drugs[rec.medication.drug]
            reg = next(r for r in drug.regimens if r.id == rec.medication.regimen)
            res = plan_medication(drug, reg, facts, crcl, as_of)
            if res.needs_crcl:
                missing.add(["crcl"], rec.id)
            if res.not_recommended is not None:
                withheld.append(
                    (
                        rec.id,
                        rec.statement,
                        f"{drug.name}: {res.not_recommended}",
                        f"{drug.id}-renal",
                    )
                )
                continue
            med = res.plan
            drug_id = drug.id
            if drug.id in current:
                warnings.append(
                    f"The patient already takes {drug.name}: review the current dose "
                    "against this schedule rather than starting it again."
                )
        for c in rec.confirm:
            if facts[c.fact] is None:
                warnings.append(c.text)
                missing.add([c.fact], rec.id)
        step = PlanStep(
            id=rec.id,
            context=rec.context,
            phase=rec.phase,
            text=rec.statement,
            strength=rec.strength,
            certainty=rec.certainty,
            grade_note=rec.grade_note,
            basis=rec.basis,
            rationale=rationale,
            citations=list(rec.citations),
            medication=med,
            warnings=[],
        )
        drafts.append((PHASES.index(rec.phase), order, Draft(rec, step, drug_id, warnings)))
    drafts.sort(key=lambda t: (t[0], t[1]))
    return [d for _, _, d in drafts]
