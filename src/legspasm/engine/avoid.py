"""The avoid list: rules checked against current medicines, proposed medicines and advice.

Each rule is a gate with three outcomes. True: a blocking rule withholds the proposal (a caution
travels with it); unknown: a blocking rule makes the proposal conditional on the unknown facts,
and a current medicine is listed as "avoid unless ..."; false: nothing to say.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..assessment import AvoidItem, Confirmation, GateKind, Stopping
from ..facts import FactValue
from ..knowledge import Knowledge
from ..knowledge.model import AvoidRule
from .context import EvalContext
from .derive import FactMap
from .dosing import daily_limit_mg, drug_ref
from .explain import known_facts, label, short, unknown_facts
from .index import index
from .missing import Missing
from .plan import Draft

__all__ = [
    "BLOCKING",
    "apply_avoid_rules",
    "avoid_item",
    "dedupe",
    "dose_excess",
    "first_sentence",
    "gate_of",
    "rule_confirmation",
]

BLOCKING = ("contraindicated", "avoid")
_COMBINATION = ("takes.", "cns_active_count", "stopped_days_ago.", "intrathecal.")


def first_sentence(text: str) -> str:
    cut = text.find(". ")
    return text if cut < 0 else text[: cut + 1]


def gate_of(facts: Iterable[str]) -> GateKind:
    """The safety gate a set of unknown facts belongs to."""
    for f in facts:
        if f == "age":
            return "age"
        if f in ("renal_function", "crcl", "egfr", "dialysis", "haemodialysis"):
            return "renal"
        if f in ("pregnant", "trimester", "postpartum"):
            return "pregnancy"
        if f == "lactating":
            return "lactation"
        if f == "liver_disease" or f.startswith("condition.hepatic"):
            return "hepatic"
        if f.startswith(_COMBINATION) or f in ("medications_known", "unmapped_medicines"):
            return "interactions"
        if f == "allergies_known":
            return "allergies"
        if f.startswith(("red.", "neuro.")):
            return "red-flag"
        if f == "weight_kg":
            return "weight"
    return "safety"


def rule_confirmation(rule: AvoidRule, unknown: list[str], by: str) -> Confirmation:
    return Confirmation(
        gate=gate_of(unknown),
        question=", ".join(label(f) for f in unknown),
        because=first_sentence(rule.reason),
        facts=unknown,
        by=by,
    )


def avoid_item(
    rule: AvoidRule,
    kb: Knowledge,
    status: Literal["current", "proposed", "general", "ordered"],
    facts: FactMap,
    drug_id: str | None,
    target: str | None = None,
    extra: list[str] | None = None,
    order_id: str | None = None,
    confirm: list[Confirmation] | None = None,
) -> AvoidItem:
    drug = kb.drugs[drug_id] if drug_id else None
    stopping = None
    days_on = None
    if drug_id is not None and status == "current":
        taken = facts[f"days_on.{drug_id}"]
        days_on = taken if isinstance(taken, float) else None
    if drug_id is not None and status == "current" and rule.severity in BLOCKING:
        st = kb.stopping(drug_id)
        stopping = (
            Stopping(text=st.text, basis=st.basis, citations=list(st.citations), gradual=st.gradual)
            if st is not None
            else Stopping(
                text="How to stop it is not encoded: check the label before stopping, and do "
                "not stop abruptly without checking.",
                basis="UNVERIFIED",
                citations=[],
            )
        )
    return AvoidItem(
        id=rule.id,
        target=target or (drug.name if drug else rule.label or ""),
        drug=drug_ref(drug) if drug else None,
        status=status,
        severity=rule.severity,
        reason=rule.reason,
        rationale=(extra or []) + known_facts(rule.compiled, facts),
        basis=rule.basis,
        citations=list(rule.citations),
        order_id=order_id,
        confirm=confirm or [],
        stopping=stopping,
        summary=short(rule.summary, rule.reason),
        days_on=days_on,
        if_taken=rule.if_taken if status == "current" else None,
    )


def as_if_taking(kb: Knowledge, facts: FactMap, drug_id: str) -> FactMap:
    drug = kb.drugs[drug_id]
    extra: dict[str, FactValue] = {f"takes.{g}": True for g in (drug_id, *drug.classes)}
    if "cns_active" in drug.classes and not facts[f"takes.{drug_id}"]:
        count = facts["cns_active_count"]
        extra["cns_active_count"] = (count if isinstance(count, float) else 0.0) + 1.0
    return facts.with_overlay(extra)


def _to_stop(ctx: EvalContext) -> dict[str, str]:
    """Current medicines to stop because of the patient, not a combination: drug id -> rule id.

    A blocking rule that holds whatever else the patient takes (benzodiazepines after a stroke,
    a dopamine agonist in RLS), for a medicine the knowledge base says how to stop, means the
    plan stops it; proposals are then judged as they will be once it is stopped, with a warning
    that they wait for it. (An antipsychotic that worsens RLS is for its prescriber to review.)
    """
    out: dict[str, str] = {}
    for rule in index(ctx.kb).avoid_rules_for(ctx.current_ids, set(), False):
        cond = rule.compiled
        if rule.severity not in BLOCKING or rule.check is not None or cond is None:
            continue
        taken = ctx.current_ids & rule.targets
        if not taken or any(f.startswith(_COMBINATION) for f in cond.facts):
            continue
        for drug_id in sorted(taken):
            known_how = ctx.kb.stopping(drug_id) is not None
            if drug_id not in out and known_how and cond(ctx.facts) is True:
                out[drug_id] = rule.id
    return out


def _without(ctx: EvalContext, stopped: Iterable[str]) -> FactMap:
    """Facts as they will be once the ``stopped`` current medicines are stopped."""
    kb = ctx.kb
    gone = set(stopped)
    staying = [c.drug_id for c in ctx.current if c.drug_id not in gone]
    held = {g for d in staying for g in (d, *kb.drugs[d].classes)}
    extra: dict[str, FactValue] = {}
    for d in gone:
        for g in (d, *kb.drugs[d].classes):
            if g not in held:
                extra[f"takes.{g}"] = False
    cns = {d for d in staying if "cns_active" in kb.drugs[d].classes}
    extra["cns_active_count"] = float(len(cns))
    return ctx.facts.with_overlay(extra)


def dose_excess(
    ctx: EvalContext, drug_id: str, daily_mg: float, missing: Missing, rule_id: str
) -> str | None:
    """Why ``daily_mg`` of a drug is above its ceiling for this patient, or None when it is not."""
    drug = ctx.kb.drugs[drug_id]
    limits = [x for x in (daily_limit_mg(r, ctx) for r in drug.regimens) if x is not None]
    if not limits:
        return None
    renal = ctx.renal
    if not renal.known and any(r.renal_bands for r in drug.regimens):
        missing.add(["renal_function"], rule_id)
    limit = max(limits)
    if daily_mg <= limit:
        return None
    if renal.dialysis is True:
        at = " on haemodialysis" if renal.haemodialysis else " on dialysis"
    elif renal.value is not None:
        at = f" at renal function {renal.value:g} mL/min"
    else:
        at = ""
    return f"daily dose {daily_mg:g} mg > {limit:g} mg allowed{at}"


def _dose_check(rule: AvoidRule, ctx: EvalContext, missing: Missing) -> list[AvoidItem]:
    items: list[AvoidItem] = []
    if rule.compiled is not None and rule.compiled(ctx.facts) is not True:
        return items
    for cm in ctx.current:
        if cm.drug_id not in rule.targets or cm.daily_mg is None:
            continue
        why = dose_excess(ctx, cm.drug_id, cm.daily_mg, missing, rule.id)
        if why is not None:
            items.append(
                avoid_item(rule, ctx.kb, "current", ctx.facts, cm.drug_id, extra=[f"current {why}"])
            )
    return items


def _allergy_check(rule: AvoidRule, ctx: EvalContext, drafts: list[Draft]) -> list[AvoidItem]:
    kb = ctx.kb

    def hit(drug_id: str) -> str | None:
        groups = {drug_id, *kb.drugs[drug_id].classes}
        found = sorted(groups & ctx.allergies)
        return found[0] if found else None

    items = []
    for drug_id in sorted(ctx.current_ids):
        if (why := hit(drug_id)) is not None:
            items.append(
                avoid_item(rule, kb, "current", ctx.facts, drug_id, extra=[f"allergy: {why}"])
            )
    for d in drafts:
        if d.drug_id is None or d.drug_id in ctx.current_ids:
            continue
        if (why := hit(d.drug_id)) is not None:
            items.append(
                avoid_item(rule, kb, "proposed", ctx.facts, d.drug_id, extra=[f"allergy: {why}"])
            )
            d.fail(rule.reason, rule.id, "allergies")
    return items


def _flag(d: Draft, rule: AvoidRule) -> None:
    """A blocking rule withholds the proposal; a caution travels with it as a warning."""
    if rule.severity in BLOCKING:
        d.fail(rule.reason, rule.id, gate_of(rule.compiled.facts if rule.compiled else ()))
    elif rule.reason not in d.warnings:
        d.warnings.append(rule.reason)


def _waits(
    d: Draft,
    rule: AvoidRule,
    after: FactMap | None,
    drug_id: str | None,
    stop_names: str,
    kb: Knowledge,
) -> bool:
    """True when the rule holds only until the medicines the plan stops are stopped: the draft
    then carries a warning that it waits for them, instead of being withheld."""
    if after is None or rule.compiled is None:
        return False
    g = as_if_taking(kb, after, drug_id) if drug_id else after
    if rule.compiled(g) is not False:
        return False
    note = f"Only once {stop_names} is stopped: {first_sentence(rule.reason)}"
    if note not in d.warnings:
        d.warnings.append(note)
    return True


def apply_avoid_rules(ctx: EvalContext, drafts: list[Draft], missing: Missing) -> list[AvoidItem]:
    """Judge every draft and current medicine by the avoid rules; return the avoid items."""
    kb, facts = ctx.kb, ctx.facts
    items: list[AvoidItem] = []
    current_ids = ctx.current_ids
    stopping = _to_stop(ctx)
    after = _without(ctx, stopping) if stopping else None
    stop_names = ", ".join(kb.drugs[d].name for d in sorted(stopping))
    drugs = current_ids | {d.drug_id for d in drafts if d.drug_id is not None}
    draft_tags = {t for d in drafts for t in d.tags}
    for rule in index(kb).avoid_rules_for(drugs, draft_tags, bool(ctx.allergies)):
        targets = rule.targets
        if rule.check == "dose":
            items.extend(_dose_check(rule, ctx, missing))
            continue
        if rule.check == "allergy":
            items.extend(_allergy_check(rule, ctx, drafts))
            continue
        cond = rule.compiled
        blocking = rule.severity in BLOCKING
        current_hits = sorted(current_ids & targets)
        # The rule on the record as it stands: evaluated once, and only when something needs it.
        needed = current_hits or rule.show == "always"
        base = (True if cond is None else cond(facts)) if needed else None
        if base is True:
            items.extend(avoid_item(rule, kb, "current", facts, x) for x in current_hits)
        elif base is None and needed:
            unknown = unknown_facts(cond, facts)
            missing.add(unknown, rule.id)
            if blocking:
                for x in current_hits:
                    ask = [rule_confirmation(rule, unknown, rule.id)]
                    items.append(avoid_item(rule, kb, "current", facts, x, confirm=ask))
        emitted = base is True and bool(current_hits)
        for d in drafts:
            hits_drug = d.drug_id is not None and d.drug_id in targets
            hits_tag = bool(rule.advice_tags) and not set(rule.advice_tags).isdisjoint(d.tags)
            if not (hits_drug or hits_tag) or "review" in d.tags:
                continue
            f = as_if_taking(kb, facts, d.drug_id) if hits_drug and d.drug_id else facts
            r = True if cond is None else cond(f)
            drug = d.drug_id if hits_drug else None
            if r is True and blocking and _waits(d, rule, after, drug, stop_names, kb):
                continue
            if r is None:
                unknown = unknown_facts(cond, f)
                missing.add(unknown, rule.id)
                if blocking:
                    d.ask(rule_confirmation(rule, unknown, rule.id))
                continue
            if r is not True:
                continue
            emitted = True
            if hits_drug and d.drug_id not in current_ids:
                items.append(avoid_item(rule, kb, "proposed", f, d.drug_id))
            elif hits_tag:
                tags = ", ".join(sorted(d.tags & set(rule.advice_tags)))
                target = rule.label or f"advice: {tags}"
                items.append(avoid_item(rule, kb, "proposed", f, None, target=target))
            _flag(d, rule)
        # The other direction: a proposed drug that would make a current drug hazardous.
        for d in drafts:
            added = d.drug_id
            if added is None or added in current_ids:
                continue
            partners = [x for x in current_hits if x != added and x not in stopping]
            if not partners or cond is None or base is True:
                continue
            f = as_if_taking(kb, facts, added)
            r = cond(f)
            if r is True and blocking and _waits(d, rule, after, added, stop_names, kb):
                continue
            if r is None and base is False and blocking:
                unknown = unknown_facts(cond, f)
                missing.add(unknown, rule.id)
                d.ask(rule_confirmation(rule, unknown, rule.id))
                continue
            if r is not True:
                continue
            for partner in partners:
                target = f"{kb.drugs[added].name} with current {kb.drugs[partner].name}"
                items.append(avoid_item(rule, kb, "proposed", f, added, target=target))
            _flag(d, rule)
        if rule.show == "always" and not emitted and base is True:
            names = [kb.drugs[x].name for x in sorted(targets)] if rule.drugs else []
            single = sorted(targets)[0] if len(targets) == 1 else None
            target = (
                ", ".join(names)
                if names
                else rule.label or "advice: " + ", ".join(rule.advice_tags)
            )
            items.append(avoid_item(rule, kb, "general", facts, single, target=target))
    return dedupe(items)


def dedupe(items: list[AvoidItem]) -> list[AvoidItem]:
    """One item per (rule, target, status), most severe first; definite before conditional."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    order = {"contraindicated": 0, "avoid": 1, "caution": 2}
    for it in sorted(items, key=lambda i: (order[i.severity], bool(i.confirm))):
        key = (it.id, it.target, it.status)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out
