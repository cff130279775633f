"""The bottom line: the answer first, in at most five short lines and sixty words.

Every surface (page, CLI, PDF, card, FHIR) leads with the same lines, built here from the
assessment's own parts, never from new clinical content:

1. a red flag (the most urgent; it replaces the diagnosis: act on it first) or what it most
   likely is;
2. the one thing to do now: the first non-medicine step of the plan, or, under a red flag, the
   advice held back until it is excluded;
3. the medicine to start: the first preferred new start, with the facts to confirm first when
   it is conditional (fail closed: a conditional start never reads as a recommendation); none
   under a red flag, whose page folds the plan under "once the red flag is excluded";
4. the one thing not to do: a medicine the patient takes or is being ordered first, then one the
   plan would have proposed, then a general warning; among these the warning for fewest
   pathways (most about this patient), then the most severe;
5. the missing fact that would change the answer most.

Lines are dropped from the end (missing, then do) while the total is over the word budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..assessment import (
    AvoidItem,
    BottomLine,
    ConditionResult,
    Confirmation,
    Derived,
    MissingDatum,
    PlanStep,
    RedFlagResult,
    Withheld,
)
from ..knowledge import Knowledge
from .explain import first_sentence, short
from .index import index

__all__ = ["MAX_LINES", "MAX_WORDS", "bottom_line", "name_of"]

MAX_LINES = 5
MAX_WORDS = 60

_URGENCY = {"emergency": 0, "urgent": 1, "same-day": 2}
_AVOID_STATUS = {"current": 0, "ordered": 0, "proposed": 1, "general": 2}
_SEVERITY = {"contraindicated": 0, "avoid": 1, "caution": 2}
_VERB = {"contraindicated": "Do not use", "avoid": "Avoid", "caution": "Caution with"}
_WHERE = {"current": " (taken now)", "ordered": " (being ordered)", "proposed": "", "general": ""}
# The safety gates in the words of "once ... confirmed".
_GATE_WORDS = {
    "age": "age",
    "renal": "renal function",
    "hepatic": "liver function",
    "pregnancy": "pregnancy status",
    "lactation": "breastfeeding",
    "interactions": "other medicines",
    "allergies": "allergies",
    "red-flag": "the red-flag screen",
    "weight": "weight",
    "safety": "its safety checks",
    "history": "treatment history",
}


def name_of(kb: Knowledge, ident: str) -> str:
    """A rule, red flag, recommendation or context id in a clinician's words."""
    named = index(kb).names.get(ident)
    return named if named is not None else ident.replace("_", " ").replace("-", " ")


def word_name(kb: Knowledge, ident: str) -> str:
    """``name_of`` worked out from the knowledge base (``engine.index`` keeps its results)."""
    if ident in kb.red_flags:
        return kb.red_flags[ident].name
    if ident in kb.contexts:
        return kb.contexts[ident].name
    if ident in kb.recommendations:
        rec = kb.recommendations[ident]
        if rec.medication is not None and rec.medication.drug in kb.drugs:
            ctx = kb.contexts[rec.context].name if rec.context in kb.contexts else ""
            drug = kb.drugs[rec.medication.drug].name
            return f"{drug} for {ctx.lower()}" if ctx else drug
        return _lower_first(_clause(short(rec.summary, rec.statement)))
    if ident in kb.avoid_rules:
        rule = kb.avoid_rules[ident]
        what = rule.label or ", ".join(kb.drugs[d].name for d in rule.drugs if d in kb.drugs)
        return f"the warning on {what}" if what else "a safety warning"
    return ident.replace("_", " ").replace("-", " ")


def _clause(text: str) -> str:
    """The lead clause of a summary: up to its first colon or semicolon, without the stop."""
    return re.split(r"[:;] ", text, maxsplit=1)[0].rstrip(".")


def _words(lines: Sequence[BottomLine]) -> int:
    return sum(len(line.text.split()) for line in lines)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _red_flag(rf: RedFlagResult, others: int) -> BottomLine:
    possible = rf.status == "possible" and not rf.name.lower().startswith("possible")
    lead = "Red flag, not excluded" if possible else "Red flag"
    more = f" ({others} more below)" if others else ""
    return BottomLine(
        kind="red-flag",
        text=f"{lead}: {rf.name}{more}. {_sentence(rf.summary)}",
        about=rf.id,
    )


def _diagnosis(conditions: Sequence[ConditionResult], derived: Derived) -> BottomLine:
    for status in ("documented", "likely", "possible"):
        shown = [c for c in conditions if c.status == status]
        if shown:
            break
    else:
        return BottomLine(
            kind="diagnosis", text="No condition established yet: see what is missing."
        )
    names = [c.name if i == 0 else _lower_first(c.name) for i, c in enumerate(shown[:2])]
    extra = []
    if derived.irls_total is not None and any(c.id == "rls" for c in shown):
        extra.append(f"IRLS {derived.irls_total}, {derived.irls_severity}")
    word = {"documented": "on the record", "likely": "likely", "possible": "possible"}[status]
    text = " and ".join(names) + f" {word}" + (f" ({'; '.join(extra)})" if extra else "")
    if len(shown) > 2:
        text += f"; {len(shown) - 2} more below"
    return BottomLine(kind="diagnosis", text=_sentence(text), about=shown[0].id)


# The one thing to do now: a work-up or first-line step before advice for the next episode.
_DO_PHASES = ("work-up", "first-line", "referral", "prevention", "acute", "refractory")


def _do(plan: Sequence[PlanStep]) -> BottomLine | None:
    steps = [s for s in plan if s.medication is None and not s.alternative_to]
    for phase in _DO_PHASES:
        for s in steps:
            if s.phase == phase:
                return BottomLine(kind="do", text=s.summary, about=s.id)
    return None


def _gate_words(c: Confirmation) -> str:
    """A gate in a few words; a safety check says what it checks when that is short."""
    if c.gate == "safety":
        lead = c.question.split(" (")[0]
        if len(lead.split()) <= 14:
            return lead
    return _GATE_WORDS[c.gate]


def _confirm_words(s: PlanStep) -> str:
    words = list(dict.fromkeys(_gate_words(c) for c in s.confirm))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _start(plan: Sequence[PlanStep]) -> BottomLine | None:
    for s in plan:
        m = s.medication
        if m is None or s.alternative_to or s.review:
            continue
        if m.dose and m.frequency:
            what = f"{m.drug.name} {m.dose} {m.frequency}"
        else:
            how = _lower_first(_clause(first_sentence(m.start)))
            what = (
                f"{m.drug.name}: {how}" if m.drug.name.endswith(")") else f"{m.drug.name} ({how})"
            )
        if s.status == "conditional":
            text = f"Start {what}, only after confirming {_confirm_words(s)}."
        else:
            text = f"Start {what}."
        return BottomLine(kind="start", text=text, about=s.id)
    return None


def _breadth(kb: Knowledge, rule_id: str) -> int:
    """How many pathways a rule's condition names: a warning for one pathway (no dopamine
    agonists in RLS) says more about this patient than one for every cramp (no quinine)."""
    rule = kb.avoid_rules.get(rule_id)
    if rule is None or rule.compiled is None:
        return 0
    return sum(1 for f in rule.compiled.facts if f.startswith("context."))


def _target(kb: Knowledge, a: AvoidItem) -> str:
    """What to avoid in a few words: a rule on one drug class names the class, not its list
    of members (a current or ordered medicine is named as itself)."""
    rule = kb.avoid_rules.get(a.id)
    if a.drug is not None or rule is None or a.target.count(",") < 3:
        return a.target
    classes = [d for d in rule.drugs if d in kb.classes]
    if len(classes) == 1 and len(rule.drugs) == 1:
        name = kb.classes[classes[0]].name
        return name if name.endswith("s") else name + "s"
    return a.target


def _do_not(kb: Knowledge, avoid: Sequence[AvoidItem]) -> BottomLine | None:
    # A caution on a medicine the patient does not take belongs with its plan step, not here.
    avoid = [a for a in avoid if a.severity != "caution" or a.status in ("current", "ordered")]
    if not avoid:
        return None
    a = min(
        avoid,
        key=lambda i: (_AVOID_STATUS[i.status], _breadth(kb, i.id), _SEVERITY[i.severity]),
    )
    why = _lower_first(a.summary.rstrip("."))
    sep = " — " if ":" in why else ": "
    text = f"{_VERB[a.severity]} {_target(kb, a)}{_WHERE[a.status]}{sep}{why}"
    if a.stopping is not None and not re.search(r"\b(taper|stop)", why):
        text += "; check how to stop it first"
    return BottomLine(kind="do-not", text=_sentence(text), about=a.id)


def _hold(kb: Knowledge, withheld: Sequence[Withheld], rf: RedFlagResult) -> BottomLine | None:
    held = list(dict.fromkeys(name_of(kb, w.id) for w in withheld if w.by == rf.id))
    if not held:
        return None
    what = held[0] + (f" (and {len(held) - 1} more)" if len(held) > 1 else "")
    return BottomLine(kind="hold", text=f"Until it is excluded, hold: {what}.", about=rf.id)


def _missing(kb: Knowledge, missing: Sequence[MissingDatum], asked: set[str]) -> BottomLine | None:
    """The unknown fact that could change most of the plan; else the undone red-flag screen."""
    care = [
        m for m in missing if m.fact not in asked and any(x not in kb.red_flags for x in m.affects)
    ]
    if care:
        m = max(care, key=lambda m: sum(x not in kb.red_flags for x in m.affects))
        changes = [_lower_first(name_of(kb, x)) for x in m.affects if x not in kb.red_flags]
        more = f" and {len(changes) - 2} more" if len(changes) > 2 else ""
        return BottomLine(
            kind="missing",
            text=f"Not recorded: {_lower_first(m.question)}; it would change the advice on "
            f"{', '.join(changes[:2])}{more}.",
            about=m.fact,
        )
    flags = list(dict.fromkeys(x for m in missing for x in m.affects if x in kb.red_flags))
    if not flags:
        return None
    names = [kb.red_flags[f].name for f in flags[:2]]
    more = f" and {len(flags) - 2} more" if len(flags) > 2 else ""
    return BottomLine(
        kind="missing",
        text=f"Red-flag screen incomplete: {', '.join(names)}{more} not excluded.",
        about=flags[0],
    )


def _missing_for(missing: Sequence[MissingDatum], rf: RedFlagResult) -> BottomLine | None:
    """Under a red flag, the unknown fact that decides it (not the usual plan's)."""
    facts = [m for m in missing if rf.id in m.affects]
    if not facts:
        return None
    more = f" (and {len(facts) - 1} more)" if len(facts) > 1 else ""
    return BottomLine(
        kind="missing",
        text=f"Not recorded: {_lower_first(facts[0].question)}{more}; it decides this red flag.",
        about=facts[0].fact,
    )


def bottom_line(
    kb: Knowledge,
    red_flags: Sequence[RedFlagResult],
    conditions: Sequence[ConditionResult],
    plan: Sequence[PlanStep],
    withheld: Sequence[Withheld],
    avoid: Sequence[AvoidItem],
    missing: Sequence[MissingDatum],
    derived: Derived,
) -> list[BottomLine]:
    """At most five lines and sixty words, most urgent first (see the module docstring)."""
    lines: list[BottomLine | None]
    start = _start(plan)
    # The facts the start line already asks for are not asked again.
    asked = {f for s in plan if start and s.id == start.about for c in s.confirm for f in c.facts}
    if red_flags:
        rf = min(red_flags, key=lambda r: (r.status != "present", _URGENCY[r.urgency]))
        lines = [
            _red_flag(rf, len(red_flags) - 1),
            _hold(kb, withheld, rf),
            _do_not(kb, [a for a in avoid if a.status in ("current", "ordered")]),
            _missing_for(missing, rf),
        ]
    else:
        lines = [
            _diagnosis(conditions, derived),
            _do(plan),
            start,
            _do_not(kb, avoid),
            _missing(kb, missing, asked),
        ]
    out = [line for line in lines if line is not None][:MAX_LINES]
    for kind in ("missing", "do", "hold"):
        if _words(out) <= MAX_WORDS:
            break
        out = [line for line in out if line.kind != kind]
    return out
