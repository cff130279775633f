"""Orders being placed now (CDS Hooks order-select / order-sign): avoid rules and alternatives.

Each ordered medicine is checked as if the patient started it today, together with every other
medicine in the same order set: rules that target the ordered drug, rules that the order makes
true for a drug the patient already takes (tizanidine already taken, ciprofloxacin ordered), the
renal dose ceiling and allergies. A blocking finding names plan steps offered in its place.
"""

from __future__ import annotations

from ..assessment import AvoidItem, PlanStep
from ..facts import FactValue
from ..knowledge import Knowledge
from ..knowledge.model import AvoidRule
from .avoid import BLOCKING, avoid_item, dose_excess, rule_confirmation
from .context import EvalContext
from .derive import CurrentMed, FactMap, OrderedMed
from .explain import ORDERED, unknown_facts
from .missing import Missing

__all__ = ["check_orders", "offer_alternatives"]

_MAX_ALTERNATIVES = 3


def _overlay(
    kb: Knowledge, facts: FactMap, orders: list[OrderedMed] | tuple[OrderedMed, ...]
) -> tuple[dict[str, FactValue], dict[str, str]]:
    """Facts as if every ordered medicine were started today."""
    extra: dict[str, FactValue] = {}
    why: dict[str, str] = {}
    cns = facts["cns_active_count"]
    count = cns if isinstance(cns, float) else 0.0
    for o in orders:
        drug = kb.drugs[o.drug_id]
        for g in (o.drug_id, *drug.classes):
            key = f"takes.{g}"
            extra[key] = True
            before = why.get(key) or facts.why.get(key)
            if before is None and facts[key] is True:
                before = drug.name  # the ordered drug itself, already taken
            why[key] = f"{before}; {ORDERED}{drug.name}" if before else f"{ORDERED}{drug.name}"
        days = o.order.duration_days
        key = f"days_on.{o.drug_id}"
        taken = facts[key]
        if days is not None:
            # A renewal continues the course: the days already taken count too.
            extra[key] = float(days) + (taken if isinstance(taken, float) else 0.0)
            why[key] = f"{drug.name} ordered for {days} days" + (
                f" after {taken:g} days already taken" if isinstance(taken, float) and taken else ""
            )
        if "cns_active" in drug.classes and facts[f"takes.{o.drug_id}"] is not True:
            count += 1.0
    extra["cns_active_count"] = count
    return extra, why


def _rule_items(
    rule: AvoidRule,
    kb: Knowledge,
    facts: FactMap,
    with_orders: FactMap,
    current: tuple[CurrentMed, ...],
    orders: tuple[OrderedMed, ...],
    missing: Missing,
) -> list[AvoidItem]:
    cond = rule.compiled
    targets = rule.targets
    hit_orders = [o for o in orders if o.drug_id in targets]
    ordered_ids = {o.drug_id for o in orders}
    partners = sorted({c.drug_id for c in current if c.drug_id in targets} - ordered_ids)
    if not hit_orders and not partners:
        return []
    result = True if cond is None else cond(with_orders)
    if result is None:
        unknown = unknown_facts(cond, with_orders)
        missing.add(unknown, rule.id)
        if rule.severity not in BLOCKING:
            return []
        # Fail closed: the order is flagged unless the unknown facts say otherwise.
        ask = [rule_confirmation(rule, unknown, rule.id)]
        return [
            avoid_item(
                rule, kb, "ordered", with_orders, o.drug_id, order_id=o.order.id, confirm=ask
            )
            for o in hit_orders
        ]
    if result is not True:
        return []
    items = [
        avoid_item(rule, kb, "ordered", with_orders, o.drug_id, order_id=o.order.id)
        for o in hit_orders
    ]
    # A medicine already taken that the order makes hazardous: the order is the one to review.
    if partners and cond is not None and cond(facts) is not True:
        single = {
            o.drug_id: cond(facts.with_overlay(*_overlay(kb, facts, [o]))) is True for o in orders
        }
        to_blame = [o for o in orders if single[o.drug_id]] or orders
        for o in to_blame:
            for p in partners:
                target = f"{kb.drugs[o.drug_id].name} with current {kb.drugs[p].name}"
                items.append(
                    avoid_item(
                        rule, kb, "ordered", with_orders, o.drug_id, target, order_id=o.order.id
                    )
                )
    return items


def _dose_items(
    rule: AvoidRule, ctx: EvalContext, missing: Missing
) -> list[tuple[OrderedMed, str]]:
    """(order, why) for orders above the drug's daily ceiling for this patient."""
    hits = []
    for o in ctx.orders:
        if o.drug_id not in rule.targets:
            continue
        if o.daily_mg is None:
            if any(r.renal_bands for r in ctx.kb.drugs[o.drug_id].regimens):
                missing.add(["order_dose"], rule.id)
            continue
        why = dose_excess(ctx, o.drug_id, o.daily_mg, missing, rule.id)
        if why is not None:
            hits.append((o, f"ordered {why}"))
    return hits


def _allergy_items(
    kb: Knowledge, orders: tuple[OrderedMed, ...], allergies: frozenset[str]
) -> list[tuple[OrderedMed, str]]:
    hits = []
    for o in orders:
        found = sorted({o.drug_id, *kb.drugs[o.drug_id].classes} & allergies)
        if found:
            hits.append((o, f"allergy: {found[0]}"))
    return hits


def check_orders(ctx: EvalContext, missing: Missing) -> list[AvoidItem]:
    """Avoid items (status ``ordered``) for the medicines being ordered now."""
    kb, facts, orders, current = ctx.kb, ctx.facts, ctx.orders, ctx.current
    if not orders:
        return []
    with_orders = facts.with_overlay(*_overlay(kb, facts, orders))
    items: list[AvoidItem] = []
    for rule in kb.avoid_rules.values():
        if rule.check in ("dose", "allergy"):
            hits = (
                _dose_items(rule, ctx, missing)
                if rule.check == "dose"
                else _allergy_items(kb, orders, ctx.allergies)
            )
            items.extend(
                avoid_item(rule, kb, "ordered", facts, o.drug_id, extra=[why], order_id=o.order.id)
                for o, why in hits
            )
        else:
            items.extend(_rule_items(rule, kb, facts, with_orders, current, orders, missing))
    return items


def offer_alternatives(kb: Knowledge, item: AvoidItem, plan: list[PlanStep]) -> list[str]:
    """Plan steps to offer in place of a blocked order: safest and most specific first.

    Only where the rule names the contexts whose plan replaces the medicine (``replace_with``):
    an order that makes a current medicine hazardous (an antibiotic with tizanidine) is flagged,
    never swapped for leg treatment. A dose above the renal ceiling is replaced by the same
    medicine at the plan's dose first; any other blocked medicine by the plan's other medicines of
    those contexts, else by their first-line non-drug steps.
    """
    if item.status != "ordered" or item.severity not in BLOCKING or item.drug is None:
        return []
    rule = kb.avoid_rules[item.id]
    if not rule.replace_with or item.target != item.drug.name:
        return []
    drug_id = item.drug.id
    # Recommended steps before conditional ones (a conditional step is offered, never as the
    # recommended suggestion, and says what to confirm).
    steps = sorted(
        (s for s in plan if s.context in rule.replace_with),
        key=lambda s: s.status != "recommended",
    )
    meds = [s for s in steps if s.medication is not None]
    same = [s.id for s in meds if s.medication and s.medication.drug.id == drug_id]
    other = [s.id for s in meds if s.medication and s.medication.drug.id != drug_id]
    chosen = (same if rule.check == "dose" else []) + other
    if not chosen:
        chosen = [s.id for s in steps if s.medication is None and s.phase == "first-line"]
    return chosen[:_MAX_ALTERNATIVES]
