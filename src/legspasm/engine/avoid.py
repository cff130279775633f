"""The avoid list: rules checked against current medicines, proposed medicines and advice."""

from __future__ import annotations

from typing import Literal

from ..assessment import AvoidItem
from ..facts import FactValue
from ..knowledge import Knowledge
from ..knowledge.model import AvoidRule
from .derive import CrCl, CurrentMed, FactMap
from .dosing import daily_limit_mg, drug_ref
from .explain import known_facts, unknown_facts
from .missing import Missing
from .plan import Draft

__all__ = ["BLOCKING", "apply_avoid_rules", "avoid_item", "dedupe", "dose_excess"]

BLOCKING = ("contraindicated", "avoid")


def avoid_item(
    rule: AvoidRule,
    kb: Knowledge,
    status: Literal["current", "proposed", "general", "ordered"],
    facts: FactMap,
    drug_id: str | None,
    target: str | None = None,
    extra: list[str] | None = None,
    order_id: str | None = None,
) -> AvoidItem:
    drug = kb.drugs[drug_id] if drug_id else None
    return AvoidItem(
        id=rule.id,
        target=target or (drug.name if drug else ""),
        drug=drug_ref(drug) if drug else None,
        status=status,
        severity=rule.severity,
        reason=rule.reason,
        rationale=(extra or []) + known_facts(rule.compiled, facts),
        basis=rule.basis,
        citations=list(rule.citations),
        order_id=order_id,
    )


def _as_if_taking(kb: Knowledge, facts: FactMap, drug_id: str) -> FactMap:
    drug = kb.drugs[drug_id]
    extra: dict[str, FactValue] = {f"takes.{g}": True for g in (drug_id, *drug.classes)}
    if "cns_active" in drug.classes and not facts[f"takes.{drug_id}"]:
        count = facts["cns_active_count"]
        extra["cns_active_count"] = (count if isinstance(count, float) else 0.0) + 1.0
    return facts.with_overlay(extra)


def dose_excess(
    kb: Knowledge,
    facts: FactMap,
    crcl: CrCl,
    drug_id: str,
    daily_mg: float,
    missing: Missing,
    rule_id: str,
) -> str | None:
    """Why ``daily_mg`` of a drug is above its ceiling for this patient, or None when it is not."""
    drug = kb.drugs[drug_id]
    limits = [x for x in (daily_limit_mg(r, facts, crcl) for r in drug.regimens) if x is not None]
    if not limits:
        return None
    if (
        crcl.value is None
        and facts["haemodialysis"] is not True
        and any(r.renal_bands for r in drug.regimens)
    ):
        missing.add(["crcl"], rule_id)
    limit = max(limits)
    if daily_mg <= limit:
        return None
    at = f" at CrCl {crcl.value:g} mL/min" if crcl.value is not None else ""
    return f"daily dose {daily_mg:g} mg > {limit:g} mg allowed{at}"


def _dose_check(
    rule: AvoidRule,
    kb: Knowledge,
    facts: FactMap,
    crcl: CrCl,
    current: list[CurrentMed],
    targets: frozenset[str],
    missing: Missing,
) -> list[AvoidItem]:
    items = []
    for cm in current:
        if cm.drug_id not in targets or cm.daily_mg is None:
            continue
        why = dose_excess(kb, facts, crcl, cm.drug_id, cm.daily_mg, missing, rule.id)
        if why is not None:
            items.append(
                avoid_item(rule, kb, "current", facts, cm.drug_id, extra=[f"current {why}"])
            )
    return items


def _allergy_check(
    rule: AvoidRule,
    kb: Knowledge,
    facts: FactMap,
    current_ids: set[str],
    drafts: list[Draft],
    allergies: frozenset[str],
    blocked: dict[str, tuple[str, str]],
) -> list[AvoidItem]:
    def hit(drug_id: str) -> str | None:
        groups = {drug_id, *kb.drugs[drug_id].classes}
        found = sorted(groups & allergies)
        return found[0] if found else None

    items = []
    for drug_id in sorted(current_ids):
        if (why := hit(drug_id)) is not None:
            items.append(avoid_item(rule, kb, "current", facts, drug_id, extra=[f"allergy: {why}"]))
    for d in drafts:
        if d.drug_id is None or d.drug_id in current_ids:
            continue
        if (why := hit(d.drug_id)) is not None:
            items.append(
                avoid_item(rule, kb, "proposed", facts, d.drug_id, extra=[f"allergy: {why}"])
            )
            blocked.setdefault(d.rec.id, (rule.reason, rule.id))
    return items


def _flag(d: Draft, rule: AvoidRule, blocked: dict[str, tuple[str, str]]) -> None:
    """A blocking rule withholds the proposal; a caution travels with it as a warning."""
    if rule.severity in BLOCKING:
        blocked.setdefault(d.rec.id, (rule.reason, rule.id))
    else:
        d.warnings.append(rule.reason)


def apply_avoid_rules(
    kb: Knowledge,
    facts: FactMap,
    crcl: CrCl,
    current: list[CurrentMed],
    drafts: list[Draft],
    missing: Missing,
    withheld: list[tuple[str, str, str, str]],
    allergies: frozenset[str] = frozenset(),
) -> tuple[list[Draft], list[AvoidItem]]:
    """Return the surviving plan drafts and the avoid items; record withheld steps."""
    items: list[AvoidItem] = []
    blocked: dict[str, tuple[str, str]] = {}  # recommendation id -> (reason, rule id)
    current_ids = {c.drug_id for c in current}
    for rule in kb.avoid_rules.values():
        targets = rule.targets
        if rule.check == "dose":
            items.extend(_dose_check(rule, kb, facts, crcl, current, targets, missing))
            continue
        if rule.check == "allergy":
            items.extend(_allergy_check(rule, kb, facts, current_ids, drafts, allergies, blocked))
            continue
        cond = rule.compiled
        current_hits = sorted(current_ids & targets)
        # The rule on the record as it stands: evaluated once, and only when something needs it.
        needed = current_hits or rule.show == "always"
        base = (True if cond is None else cond(facts)) if needed else None
        if base is True:
            items.extend(avoid_item(rule, kb, "current", facts, x) for x in current_hits)
        elif base is None and needed:
            missing.add(unknown_facts(cond, facts), rule.id)
        emitted = base is True and bool(current_hits)
        for d in drafts:
            hits_drug = d.drug_id is not None and d.drug_id in targets
            hits_tag = bool(rule.advice_tags) and not set(rule.advice_tags).isdisjoint(d.rec.tags)
            if not (hits_drug or hits_tag):
                continue
            f = _as_if_taking(kb, facts, d.drug_id) if hits_drug and d.drug_id else facts
            r = True if cond is None else cond(f)
            if r is None:
                missing.add(unknown_facts(cond, f), rule.id)
                continue
            if r is not True:
                continue
            emitted = True
            if hits_drug and d.drug_id not in current_ids:
                items.append(avoid_item(rule, kb, "proposed", f, d.drug_id))
            elif hits_tag:
                items.append(
                    avoid_item(
                        rule,
                        kb,
                        "proposed",
                        f,
                        None,
                        target="advice: "
                        + ", ".join(sorted(set(d.rec.tags) & set(rule.advice_tags))),
                    )
                )
            _flag(d, rule, blocked)
        # The other direction: a proposed drug that would make a current drug hazardous.
        for d in drafts:
            added = d.drug_id
            if added is None or added in current_ids:
                continue
            partners = [x for x in current_hits if x != added]
            if not partners or cond is None or base is True:
                continue
            f = _as_if_taking(kb, facts, added)
            if cond(f) is not True:
                continue
            for partner in partners:
                target = f"{kb.drugs[added].name} with current {kb.drugs[partner].name}"
                items.append(avoid_item(rule, kb, "proposed", f, added, target=target))
            _flag(d, rule, blocked)
        if rule.show == "always" and not emitted and base is True:
            names = [kb.drugs[x].name for x in sorted(targets)] if rule.drugs else []
            single = sorted(targets)[0] if len(targets) == 1 else None
            target = ", ".join(names) if names else "advice: " + ", ".join(rule.advice_tags)
            items.append(avoid_item(rule, kb, "general", facts, single, target=target))
    kept = []
    for d in drafts:
        if d.rec.id in blocked:
            reason, by = blocked[d.rec.id]
            withheld.append((d.rec.id, d.rec.statement, reason, by))
        else:
            kept.append(d)
    return kept, dedupe(items)


def dedupe(items: list[AvoidItem]) -> list[AvoidItem]:
    """One item per (rule, target, status), most severe first."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    order = {"contraindicated": 0, "avoid": 1, "caution": 2}
    for it in sorted(items, key=lambda i: order[i.severity]):
        key = (it.id, it.target, it.status)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out
