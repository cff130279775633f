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
from ..expr import Compiled
from ..knowledge import Knowledge
from ..knowledge.model import AvoidRule, Context, Recommendation

__all__ = ["Index", "Routing", "index"]

_STATES = {True: "met", False: "not_met", None: "unknown"}


@dataclass(frozen=True, slots=True)
class Routing:
    """One context's routing, compiled: its criteria as functions of the facts, in order."""

    context: Context
    tests: tuple[Compiled, ...]
    # each criterion's result in each state (met / not met / unknown)
    results: tuple[dict[bool | None, CriterionResult], ...]
    required: tuple[int, ...]  # positions of the required criteria
    required_in_order: tuple[int, ...]  # the same, once each, in criterion order
    # positions of the required criteria that alone make the context possible
    suggestive: tuple[int, ...]
    record_facts: tuple[str, ...]  # condition.<concept> facts that document it
    codes: tuple[CodeRef, ...]


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
    # Routing: every context, in knowledge-base order.
    routing: tuple[Routing, ...]
    # Citations: the formatted reference and its link.
    citation_text: dict[str, tuple[str, str | None]]
    # Each red flag, context, recommendation and avoid rule by name (bottom_line.name_of).
    names: dict[str, str]

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
    # The private attribute read from pydantic's own slot: ``kb._engine_index`` would go
    # through BaseModel.__getattr__, which costs more than the lookup it guards.
    private = kb.__pydantic_private__
    made = private.get("_engine_index") if private is not None else None
    if made is not None and made[0] == id(kb) and isinstance(made[1], Index):
        return made[1]
    built = _build(kb)
    kb._engine_index = (id(kb), built)  # a private attribute: allowed on a frozen model
    return built


def _routing(kb: Knowledge, ctx: Context) -> Routing:
    position = {k.id: i for i, k in enumerate(ctx.criteria)}
    required = (
        tuple(position[c] for c in ctx.required) if ctx.required else tuple(position.values())
    )
    tests = []
    for k in ctx.criteria:
        assert k.compiled is not None
        tests.append(k.compiled)
    return Routing(
        context=ctx,
        tests=tuple(tests),
        results=tuple(
            {r: CriterionResult(id=k.id, text=k.text, state=s) for r, s in _STATES.items()}
            for k in ctx.criteria
        ),
        required=required,
        required_in_order=tuple(sorted(set(required))),
        suggestive=tuple(
            i for i in required if not ctx.criteria[i].exclusion and not ctx.criteria[i].generic
        ),
        record_facts=tuple(f"condition.{c}" for c in ctx.documented_by),
        codes=tuple(
            CodeRef(system=code.system, code=code.code, display=code.display)
            for cid in ctx.documented_by
            for code in kb.concepts[cid].codes
            if code.verified and code.system in ("snomed", "icd10cm")
        ),
    )


def _build(kb: Knowledge) -> Index:
    # Imported here: these modules import this one.
    from . import format_citation
    from .avoid import BLOCKING
    from .bottom_line import word_name

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
        if rule.advice_tags and rule.severity in BLOCKING:
            advice.append(rule)
    recs: dict[str, list[tuple[int, Recommendation]]] = {}
    statuses: set[str] = set()
    for order, rec in enumerate(kb.recommendations.values()):
        statuses.update(rec.context_status)
        for cid in dict.fromkeys((rec.context, *rec.also_in)):
            recs.setdefault(cid, []).append((order, rec))
    routing = tuple(_routing(kb, ctx) for ctx in kb.contexts.values())
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
        routing=routing,
        citation_text=cites,
        names={  # word_name looks in this order, so an id in two tables gets its first name
            ident: word_name(kb, ident)
            for table in (kb.avoid_rules, kb.recommendations, kb.contexts, kb.red_flags)
            for ident in table
        },
    )
