"""The stepwise plan: recommendations of established contexts, with patient-specific doses.

A draft is a step before the safety gates have judged it (engine.gates). Drafting only decides
whether a step applies (its context, ``applies_when`` and ``unless``) and what its dose would be;
whatever it cannot settle for safety becomes a confirmation, never a silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..assessment import ConditionResult, Confirmation, GateKind, PlanStep
from ..knowledge.model import PHASES, Confirm, Recommendation
from .context import EvalContext
from .derive import FactMap
from .dosing import drug_ref, plan_medication
from .explain import known_facts, label, short, unknown_facts
from .index import index
from .missing import Missing

__all__ = ["Draft", "draft_plan"]


@dataclass
class Draft:
    """A plan step before the safety gates have run."""

    rec: Recommendation
    step: PlanStep
    drug_id: str | None
    warnings: list[str] = field(default_factory=list)
    confirm: list[Confirmation] = field(default_factory=list)
    # (reason, by, gate) of the first gate that failed: the step is withheld.
    failed: tuple[str, str, GateKind | None] | None = None

    @property
    def tags(self) -> frozenset[str]:
        extra = ("medication",) if self.rec.medication is not None else ()
        return frozenset((*self.rec.tags, *extra))

    def fail(self, reason: str, by: str, gate: GateKind | None) -> None:
        if self.failed is None:
            self.failed = (reason, by, gate)

    def ask(self, c: Confirmation) -> None:
        if all(x.question != c.question for x in self.confirm):
            self.confirm.append(c)


def _context_of(rec: Recommendation, status: dict[str, ConditionResult]) -> ConditionResult | None:
    """The first of the step's contexts that is established enough for it."""
    for cid in (rec.context, *rec.also_in):
        ctx = status[cid]
        if ctx.status in rec.context_status:
            return ctx
    return None


def draft_plan(
    ctx: EvalContext, conditions: list[ConditionResult], missing: Missing
) -> list[Draft]:
    kb, facts = ctx.kb, ctx.facts
    status = {c.id: c for c in conditions}
    drafts: list[tuple[int, int, Draft]] = []
    ix = index(kb)
    live = {c.id for c in conditions if c.status in ix.rec_statuses}
    for order, rec in ix.recommendations_for(live):
        cond = _context_of(rec, status)
        if cond is None:
            continue
        when = rec.compiled_when(facts) if rec.compiled_when is not None else True
        unless = rec.compiled_unless(facts) if rec.compiled_unless is not None else False
        if when is None:
            missing.add(unknown_facts(rec.compiled_when, facts), rec.id)
        if when is not True or unless is True:
            continue
        rationale = [f"{cond.name}: {cond.status}"]
        rationale += known_facts(rec.compiled_when, facts)
        med = None
        drug_id = None
        warnings: list[str] = []
        confirm: list[Confirmation] = []
        failed: tuple[str, str, GateKind | None] | None = None
        if unless is None:
            unknown = unknown_facts(rec.compiled_unless, facts)
            missing.add(unknown, rec.id)
            confirm.append(
                Confirmation(
                    gate="safety",
                    question=", ".join(label(f) for f in unknown),
                    because=rec.unless_text or "the step does not apply in some of these cases",
                    facts=unknown,
                    by=rec.id,
                )
            )
        if rec.medication is not None:
            drug = kb.drugs[rec.medication.drug]
            reg = next(r for r in drug.regimens if r.id == rec.medication.regimen)
            res = plan_medication(drug, reg, ctx, rec.id)
            for asked in res.confirm:
                missing.add(asked.facts, rec.id)
            confirm += res.confirm
            if res.not_recommended is not None:
                failed = (f"{drug.name}: {res.not_recommended}", f"{drug.id}-renal", "renal")
            med = res.plan
            drug_id = drug.id
            if drug.id in ctx.current_ids:
                warnings.append(
                    f"The patient already takes {drug.name}: review the current dose "
                    "against this schedule rather than starting it again."
                )
            for rc in reg.confirm:
                _confirm(rc, facts, rec.id, confirm, missing)
        for rc in rec.confirm:
            _confirm(rc, facts, rec.id, confirm, missing)
        step = PlanStep(
            id=rec.id,
            context=cond.id,
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
            products=[drug_ref(kb.drugs[p]) for p in rec.products],
            review="review" in rec.tags,
            summary=short(rec.summary, rec.statement),
        )
        draft = Draft(rec, step, drug_id, warnings, [], failed)
        for asked in confirm:
            draft.ask(asked)
        drafts.append((PHASES.index(rec.phase), order, draft))
    drafts.sort(key=lambda t: (t[0], t[1]))
    return [d for _, _, d in drafts]


def _confirm(
    c: Confirm, facts: FactMap, by: str, out: list[Confirmation], missing: Missing
) -> None:
    """A regimen's or step's own safety fact: confirmed, or a confirmation to ask."""
    assert c.compiled is not None
    if c.compiled(facts) is True:
        return
    if c.fact is not None:
        unknown = [c.fact]
    else:
        unknown = unknown_facts(c.compiled, facts) or list(c.compiled.facts)
    missing.add(unknown, by)
    out.append(
        Confirmation(
            gate=c.gate,
            question=c.text,
            because="",
            facts=unknown,
            by=by,
        )
    )
