"""The knowledge base compiled for the engine: rules indexed by drug and tag, and the parts of the
output that depend only on the knowledge base made once.

``index(kb)`` is built on first use and kept on the (frozen) Knowledge object it was made from,
so it is made once per knowledge base, never shared between two, and ``evaluate`` stays a pure
function of its arguments. Everything here is immutable: the shared output parts are frozen
models, which several assessments may hold at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..assessment import CodeRef, CriterionResult
from ..knowledge import Knowledge
from ..knowledge.model import AvoidRule, Recommendation

__all__ = ["Index", "index"]

_STATES = {True: "met", False: "not_met", None: "unknown"}


@dataclass(frozen=True, slots=True)
class Index:
    # Avoid rules: position in the knowledge base, and which rules can apply to what.
    avoid_position: dict[str, int]
    avoid_by_drug: dict[str, tuple[AvoidRule, ...]]
    avoid_by_tag: dict[str, tuple[AvoidRule, ...]]
    avoid_always: tuple[AvoidRule, ...]
    avoid_allergy: tuple[AvoidRule, ...]
    blocking_advice: tuple[AvoidRule, ...]
    # Recommendations by the contexts they belong to, with their knowledge-base position.
    recs_by_context: dict[str, tuple[tuple[int, Recommendation], ...]]
    rec_statuses: frozenset[str]
    # Routing: each criterion's result in each state, and each context's diagnosis codes.
    criteria: dict[tuple[str, str], dict[bool | None, CriterionResult]]
    context_codes: dict[str, tuple[CodeRef, ...]]
    # Citations: the formatted reference and its link.
    citation_text: dict[str, tuple[str, str | None]]

    def avoid_rules_for(
        self, drugs: frozenset[str] | set[str], tags: set[str], allergies: bool
    ) -> list[AvoidRule]:
        """The avoid rules that can say anything about these drugs, advice tags and allergies,
        in knowledge-base order (a superset: each rule still decides for itself)."""
        found: dict[str, AvoidRule] = {r.id: r for r in self.avoid_always}
        for d in drugs:
            found.update((r.id, r) for r in self.avoid_by_drug.get(d, ()))
        for t in tags:
            found.update((r.id, r) for r in self.avoid_by_tag.get(t, ()))
        if allergies:
            found.update((r.id, r) for r in self.avoid_allergy)
        return sorted(found.values(), key=lambda r: self.avoid_position[r.id])

    def recommendations_for(self, contexts: set[str]) -> list[tuple[int, Recommendation]]:
        """The recommendations of these contexts, in knowledge-base order."""
        seen: dict[int, Recommendation] = {}
        for c in contexts:
            seen.update(self.recs_by_context.get(c, ()))
        return sorted(seen.items(), key=lambda t: t[0])


def index(kb: Knowledge) -> Index:
    """The engine's index of ``kb``, made on first use and kept with it."""
    made = kb._engine_index
    if made is not None and made[0] == id(kb) and isinstance(made[1], Index):
        return made[1]
    built = _build(kb)
    kb._engine_index = (id(kb), built)  # a private attribute: allowed on a frozen model
    return built


def _build(kb: Knowledge) -> Index:
    # Imported here: engine/__init__ imports this module, and format_citation lives there.
    from . import format_citation

    by_drug: dict[str, list[AvoidRule]] = {}
    by_tag: dict[str, list[AvoidRule]] = {}
    always, allergy, advice = [], [], []
    for rule in kb.avoid_rules.values():
        if rule.check == "allergy":
            allergy.append(rule)
            continue
        if rule.show == "always" and rule.check is None:
            always.append(rule)
        for d in rule.targets:
            by_drug.setdefault(d, []).append(rule)
        for t in rule.advice_tags:
            by_tag.setdefault(t, []).append(rule)
        if rule.advice_tags and rule.severity in ("contraindicated", "avoid"):
            advice.append(rule)
    recs: dict[str, list[tuple[int, Recommendation]]] = {}
    statuses: set[str] = set()
    for order, rec in enumerate(kb.recommendations.values()):
        statuses.update(rec.context_status)
        for cid in dict.fromkeys((rec.context, *rec.also_in)):
            recs.setdefault(cid, []).append((order, rec))
    criteria = {
        (ctx.id, k.id): {
            r: CriterionResult(id=k.id, text=k.text, state=s)
            for r, s in _STATES.items()
        }
        for ctx in kb.contexts.values()
        for k in ctx.criteria
    }
    codes = {
        ctx.id: tuple(
            CodeRef(system=code.system, code=code.code, display=code.display)
            for cid in ctx.documented_by
            for code in kb.concepts[cid].codes
            if code.verified and code.system in ("snomed", "icd10cm")
        )
        for ctx in kb.contexts.values()
    }
    cites: dict[str, tuple[str, str | None]] = {}
    for cid, c in kb.citations.items():
        url = (
            f"https://doi.org/{c.doi}"
            if c.doi
            else (f"https://pubmed.ncbi.nlm.nih.gov/{c.pmid}/" if c.pmid else c.url)
        )
        cites[cid] = (format_citation(c), url)
    return Index(
        avoid_position={r: i for i, r in enumerate(kb.avoid_rules)},
        avoid_by_drug={k: tuple(v) for k, v in by_drug.items()},
        avoid_by_tag={k: tuple(v) for k, v in by_tag.items()},
        avoid_always=tuple(always),
        avoid_allergy=tuple(allergy),
        blocking_advice=tuple(advice),
        recs_by_context={k: tuple(v) for k, v in recs.items()},
        rec_statuses=frozenset(statuses),
        criteria=criteria,
        context_codes=codes,
        citation_text=cites,
    )
