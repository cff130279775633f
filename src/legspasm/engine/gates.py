"""One gate mechanism for every proposal.

A plan step passes, in order: its own dosing (renal and weight bands), the facts its regimen and
recommendation ask to confirm, the red flags (present or possible ones withhold the advice they
make unsafe; for a medicine, the red flags its pathway excludes first must be excluded), the
knowledge base's gates for every medicine (``gates.yaml``: adult dosing, pregnancy, lactation,
allergies, the medicine list; a step that reviews a medicine the patient already takes skips
the gates marked ``new_starts_only``), and the avoid rules. Each gate is known and passing,
known and failing (the step is withheld, with the reason), or unknown: the step is
*conditional* and says what to confirm before prescribing. No surface counts a conditional step
as a recommendation.
"""

from __future__ import annotations

from ..assessment import AvoidItem, Confirmation, PlanStep, RedFlagResult, Withheld
from ..knowledge.model import Gate
from .avoid import apply_avoid_rules
from .context import EvalContext
from .explain import label, unknown_facts
from .missing import Missing
from .plan import Draft

__all__ = ["judge"]


def _red_flags(
    ctx: EvalContext, d: Draft, red_flags: list[RedFlagResult], missing: Missing
) -> None:
    kb = ctx.kb
    for rf in red_flags:
        if kb.red_flags[rf.id].withhold_tags and d.tags & set(kb.red_flags[rf.id].withhold_tags):
            d.fail(f"withheld until {rf.name.lower()} is excluded", rf.id, "red-flag")
    if d.rec.medication is None:
        return
    shown = {rf.id for rf in red_flags}
    for rid in kb.contexts[d.step.context].exclude_first:
        rule = kb.red_flags[rid]
        assert rule.compiled is not None
        if rid in shown or rule.compiled(ctx.facts) is not None:
            continue
        unknown = unknown_facts(rule.compiled, ctx.facts)
        missing.add(unknown, d.rec.id)
        d.ask(
            Confirmation(
                gate="red-flag",
                question=f"{rule.name[0].lower()}{rule.name[1:]} excluded "
                f"({', '.join(label(f) for f in unknown)})",
                because="exclude it before a medicine for this pathway",
                facts=unknown,
                by=rid,
            )
        )


def _gate(ctx: EvalContext, d: Draft, g: Gate, missing: Missing) -> None:
    assert g.compiled is not None
    r = g.compiled(ctx.facts)
    if r is True:
        return
    if r is False and g.fails is not None:
        d.fail(g.fails, g.id, g.gate)
        return
    unknown = unknown_facts(g.compiled, ctx.facts) or [
        f for f in g.compiled.facts if not f.startswith("context.")
    ]
    missing.add(unknown, d.rec.id)
    question = g.question.replace("{unmapped}", ", ".join(ctx.unmapped_current))
    d.ask(Confirmation(gate=g.gate, question=question, because=g.because, facts=unknown, by=g.id))


def judge(
    ctx: EvalContext, drafts: list[Draft], red_flags: list[RedFlagResult], missing: Missing
) -> tuple[list[PlanStep], list[Withheld], list[AvoidItem]]:
    """Pass every draft through every gate: the plan, what is withheld, and the avoid list."""
    for d in drafts:
        _red_flags(ctx, d, red_flags, missing)
        if d.drug_id is not None and ctx.facts[f"failed.{d.drug_id}"] is True:
            d.fail(
                f"tried before: {ctx.facts.why.get(f'failed.{d.drug_id}', 'did not help')}",
                "history",
                "history",
            )
        if d.rec.medication is not None:
            for g in ctx.kb.gates.values():
                if not (g.new_starts_only and d.step.review):
                    _gate(ctx, d, g, missing)
    avoid = apply_avoid_rules(ctx, drafts, missing)
    plan: list[PlanStep] = []
    withheld: list[Withheld] = []
    for d in drafts:
        if d.failed is not None:
            reason, by, gate = d.failed
            withheld.append(
                Withheld(
                    id=d.rec.id,
                    text=d.rec.statement,
                    reason=reason,
                    by=by,
                    gate=gate,
                )
            )
            continue
        update: dict[str, object] = {"warnings": list(d.warnings)}
        if d.confirm:
            update |= {"status": "conditional", "confirm": list(d.confirm)}
        plan.append(d.step.model_copy(update=update))
    return plan, withheld, avoid
