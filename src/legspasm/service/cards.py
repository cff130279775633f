"""CDS Hooks cards from one Assessment. No clinical logic here: the engine decided everything.

Alert budget: a red flag is one critical card; an order that hits avoid rules is one warning
card (all its rules in the detail; cautions alone make an info card); patient-view adds one card
per medicine the record shows the patient takes that a blocking avoid rule applies to (warning;
info when it applies only unless an unrecorded fact says otherwise), and at most one info card
with the documented or likely condition and the next step. Cards are unique by problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..assessment import Assessment, AvoidItem, CitationRef, PlanStep, RedFlagResult
from ..engine.avoid import BLOCKING
from ..fhir.output import plan_step_resource
from ..fhir.systems import BASE
from ..render.words import basis_words, reasons
from .models import Action, Card, Coding, Link, OverrideReason, Source, Suggestion

__all__ = ["INTAKE_LABEL", "OVERRIDE_REASONS", "RULE_SYSTEM", "IssuedCard", "build_cards"]

INTAKE_LABEL = "Complete the legspasm intake"

RULE_SYSTEM = BASE + "/CodeSystem/rule"
"""Codes of legspasm's rules (avoid rules, red flags, plan): a card's ``source.topic``."""
OVERRIDE_SYSTEM = BASE + "/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    OverrideReason(
        system=OVERRIDE_SYSTEM,
        code="benefit-outweighs-risk",
        display="Benefit outweighs the risk for this patient",
    ),
    OverrideReason(
        system=OVERRIDE_SYSTEM,
        code="discussed-will-monitor",
        display="Risk discussed with the patient; will monitor",
    ),
    OverrideReason(
        system=OVERRIDE_SYSTEM,
        code="specialist-advised",
        display="Advised by the treating specialist",
    ),
    OverrideReason(
        system=OVERRIDE_SYSTEM,
        code="record-incorrect",
        display="The record data behind this alert are wrong",
    ),
)
_SEVERITY_WORD = {"contraindicated": "Contraindicated", "avoid": "Avoid", "caution": "Caution"}
# How an order card's summary starts, by the most severe rule the order hits.
_ORDER_VERB = {"contraindicated": "Do not order", "avoid": "Avoid", "caution": "Caution with"}
_MAX_SUMMARY = 139


@dataclass(frozen=True, slots=True)
class IssuedCard:
    card: Card
    rule: str  # what produced it, for the audit store's per-rule feedback report


def _short(text: str, limit: int = _MAX_SUMMARY) -> str:
    """For labels and codings only (never a card summary): cut at a word, marked with '…'."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:.")
    return cut + "…"


def _fit(*candidates: str, limit: int = _MAX_SUMMARY) -> str:
    """The first candidate that fits the summary limit: a summary is whole, never cut. The last
    candidate is the short form; if even that is too long it is cut at a word (a long name)."""
    texts = [" ".join(c.split()) for c in candidates if c]
    for text in texts:
        if len(text) <= limit:
            return text
    return _short(texts[-1], limit)


def _refs(ids: Sequence[str], cites: Mapping[str, CitationRef]) -> str:
    nums = sorted(cites[c].number for c in ids if c in cites)
    return "[" + ", ".join(str(n) for n in nums) + "]" if nums else ""


def _references(ids: Sequence[str], cites: Mapping[str, CitationRef]) -> str:
    shown = sorted((cites[c] for c in dict.fromkeys(ids) if c in cites), key=lambda c: c.number)
    if not shown:
        return ""
    lines = ["", "**References**", ""]
    for c in shown:
        text = f"[{c.text}]({c.url})" if c.url else c.text
        words = basis_words(c.basis)
        lines.append(f"{c.number}. {text}" + (f" *({words})*" if words else ""))
    return "\n".join(lines)


def _source(a: Assessment, code: str, display: str, citations: Sequence[str]) -> Source:
    cites = {c.id: c for c in a.citations}
    url = next((cites[c].url for c in citations if c in cites and cites[c].url), None)
    return Source(
        label=f"legspasm (knowledge {a.knowledge_version})",
        url=url,
        topic=Coding(system=RULE_SYSTEM, code=code, display=_short(display, 120)),
    )


class _Cards:
    def __init__(
        self,
        a: Assessment,
        new_uuid: Callable[[], str],
        plan_url: str | None,
        subject: str | None,
        smart_url: str | None = None,
        invocation_id: str | None = None,
        intake_url: str | None = None,
    ) -> None:
        self.a, self.new_uuid, self.plan_url, self.subject = a, new_uuid, plan_url, subject
        self.smart_url, self.invocation_id = smart_url, invocation_id
        # The intake is offered only while no intake answers were used (a record-only card).
        answered = any(d.matched_by == "answer" for d in a.data_used)
        self.intake_url = None if answered else intake_url
        self.cites = {c.id: c for c in a.citations}
        self.steps = {s.id: s for s in a.plan}
        self.out: list[IssuedCard] = []

    def links(self, *, intake: bool = False) -> list[Link] | None:
        out = []
        if self.smart_url is not None:  # opened by the EHR with the user's authorization
            out.append(
                Link(
                    label="Open the plan in legspasm",
                    url=self.smart_url,
                    type="smart",
                    appContext=self.invocation_id,
                )
            )
        if intake and self.intake_url is not None:
            out.append(Link(label=INTAKE_LABEL, url=self.intake_url))
        if self.plan_url is not None:
            out.append(Link(label="Full plan with citations (legspasm)", url=self.plan_url))
        return out or None

    def red_flags(self) -> None:
        for rf in self.a.red_flags:
            why = "; ".join(rf.rationale)
            held = [w.text for w in self.a.withheld if w.by == rf.id]
            detail = (
                f"**{rf.urgency.upper()}: {rf.action}** {_refs(rf.citations, self.cites)}\n\n"
                + (f"**Order:** {rf.order}\n\n" if rf.order else "")
                + (f"Why: {why}.\n\n" if why else "")
                + (f"Held until it is excluded: {' '.join(held)}\n" if held else "")
                + _references(rf.citations, self.cites)
            )
            card = Card(
                uuid=self.new_uuid(),
                summary=_fit(f"Red flag: {rf.name}. {rf.summary}", f"Red flag: {rf.name}."),
                detail=detail,
                indicator="critical",
                source=_source(self.a, rf.id, rf.name, rf.citations),
                suggestions=self.red_flag_order(rf),
                selectionBehavior="at-most-one" if rf.order else None,
                overrideReasons=list(OVERRIDE_REASONS) if rf.order else None,
                links=self.links(),
            )
            self.out.append(IssuedCard(card, rf.id))

    def red_flag_order(self, rf: RedFlagResult) -> list[Suggestion] | None:
        """The red flag's order as a draft ServiceRequest the clinician can accept."""
        if not rf.order:
            return None
        resource: dict[str, Any] = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "proposal",
            "priority": "stat" if rf.urgency == "emergency" else "urgent",
            "code": {"text": rf.order},
            "reasonCode": [{"text": rf.name}],
            "subject": {"reference": self.subject} if self.subject else {"display": "the patient"},
        }
        return [
            Suggestion(
                label=_short(f"Order: {rf.order}", 80),
                uuid=self.new_uuid(),
                isRecommended=True,
                actions=[
                    Action(type="create", description=_short(rf.order, 200), resource=resource)
                ],
            )
        ]

    def orders(self, drafts: Mapping[str, Mapping[str, Any]], selected: set[str] | None) -> None:
        by_order: dict[str, list[AvoidItem]] = {}
        for item in self.a.avoid:
            if item.status != "ordered":
                continue
            key = item.order_id or f"order of {item.drug.name if item.drug else item.target}"
            if selected is None or key in selected:
                by_order.setdefault(key, []).append(item)
        for order_id, items in by_order.items():
            self.order_card(order_id, items, drafts.get(order_id))

    def order_card(
        self, order_id: str, items: list[AvoidItem], draft: Mapping[str, Any] | None
    ) -> None:
        blocking = [i for i in items if i.severity in BLOCKING]
        head = (blocking or items)[0]
        drug = head.drug.name if head.drug else head.target
        lines = self.rule_lines(items)
        cited = [c for i in items for c in i.citations]
        suggestions = None
        if blocking:
            suggestions = self.suggestions(order_id, head, draft)
        others = len(items) - 1
        more = f" (+{others} more)" if others else ""
        why = head.summary.rstrip(".")
        verb = _ORDER_VERB[head.severity]
        lower = why[:1].lower() + why[1:] if why[1:2].islower() else why
        sep = " — " if ":" in lower else ": "
        summary = _fit(f"{verb} {drug}{more}{sep}{lower}.", f"{verb} {drug}{more}.")
        lead = f"**{'Do not order' if blocking else 'Check before ordering'} {drug}:** {why}."
        if suggestions:
            lead += " " + "; ".join(x.label for x in suggestions) + "."
        card = Card(
            uuid=self.new_uuid(),
            summary=summary,
            detail=lead + "\n\n" + "\n".join(lines) + "\n" + _references(cited, self.cites),
            indicator="warning" if blocking else "info",
            source=_source(self.a, head.id, head.target, head.citations),
            suggestions=suggestions or None,
            selectionBehavior="at-most-one" if suggestions else None,
            overrideReasons=list(OVERRIDE_REASONS) if blocking else None,
            links=self.links(),
        )
        self.out.append(IssuedCard(card, head.id))

    def rule_lines(self, items: Sequence[AvoidItem]) -> list[str]:
        """Each rule of a card's detail: severity, target, reason and references; what is
        assumed until confirmed; the patient's facts that made it apply."""
        lines = []
        for i in items:
            lines.append(
                f"- **{_SEVERITY_WORD[i.severity]}** ({i.target}): {i.reason} "
                f"{_refs(i.citations, self.cites)}".rstrip()
            )
            if i.confirm:
                asks = "; ".join(c.question for c in i.confirm)
                lines.append(f"  - Not recorded, so assumed to apply until confirmed: {asks}.")
            facts = reasons(i.rationale, self.a)
            if facts:
                lines.append(f"  - For this patient: {'; '.join(facts)}.")
        return lines

    def suggestions(
        self, order_id: str, item: AvoidItem, draft: Mapping[str, Any] | None
    ) -> list[Suggestion]:
        deletable = draft is not None and isinstance(draft.get("id"), str) and "/" in order_id
        intent = draft.get("intent") if draft is not None else None
        remove = (
            [
                Action(
                    type="delete",
                    description=f"Remove the order ({item.target})",
                    resourceId=order_id,
                )
            ]
            if deletable
            else []
        )
        out = []
        for n, step_id in enumerate(item.alternatives):
            step = self.steps[step_id]
            resource = plan_step_resource(
                self.a, step, self.subject, intent if isinstance(intent, str) else "proposal"
            )
            conditional = step.status == "conditional"
            label = _label(step)
            m = step.medication
            same = m is not None and item.drug is not None and m.drug.id == item.drug.id
            if same and deletable and draft is not None:
                # The same medicine at another dose: change the draft, keep the order.
                label = label.replace("Instead: ", "Change the dose: ", 1)
                actions = [
                    Action(
                        type="update",
                        description=f"Change the dose of the order: {step.summary}",
                        resource=_with_dosage(draft, resource),
                    )
                ]
            else:
                actions = [
                    *remove,
                    Action(type="create", description=step.summary, resource=resource),
                ]
            if conditional:
                label = "Confirm first: " + label
            out.append(
                Suggestion(
                    label=_short(label, 80),
                    uuid=self.new_uuid(),
                    isRecommended=n == 0 and not conditional,
                    actions=actions,
                )
            )
        if remove:
            out.append(
                Suggestion(
                    label=f"Cancel the {item.drug.name if item.drug else 'medicine'} order",
                    uuid=self.new_uuid(),
                    isRecommended=not out,
                    actions=remove,
                )
            )
        return out

    def summary_card(self) -> None:
        """patient-view: one info card when there is something to say."""
        a = self.a
        shown = [c for c in a.conditions if c.status in ("documented", "likely")]
        if not shown:
            return  # medicines to review from the record have their own cards (exposures)
        # The red flag has its own card: this one is the plan for once it is excluded.
        bottom = [b.text for b in a.bottom_line if b.kind in ("diagnosis", "do", "start", "do-not")]
        if a.red_flags or not bottom:
            names = ", ".join(f"{c.name} ({c.status})" for c in shown)
            lead = "Once the red flag is excluded" if a.red_flags else "Review"
            bottom = [f"{lead}: {names}.", *bottom]
        lines = [f"- {b}" for b in bottom] + [""]
        for c in shown:
            met = sum(1 for k in c.criteria if k.state == "met")
            unknown = sum(1 for k in c.criteria if k.state == "unknown")
            lines.append(
                f"- **{c.name}**: {c.status}; {met} of {len(c.criteria)} criteria met, "
                f"{unknown} unknown {_refs(c.citations, self.cites)}"
            )
        first = [s for s in a.plan if not s.alternative_to][:4]
        if first:
            lines += ["", "**Next steps**", ""]
            for s in first:
                dose = ""
                if s.status == "conditional":
                    asks = "; ".join(c.question for c in s.confirm)
                    lines.append(
                        f"1. **Conditional**, before prescribing confirm {asks}: {s.text} "
                        f"{_refs(s.citations, self.cites)}"
                    )
                    continue
                if s.medication is not None and s.medication.dose:
                    dose = f" ({s.medication.start})"
                lines.append(f"1. {s.text}{dose} {_refs(s.citations, self.cites)}")
        current = sorted({i.target for i in a.avoid if _exposure(i)})
        if current:
            lines += ["", f"Medicines to review, each on its own card: {', '.join(current)}."]
        if a.missing_data:
            lines += ["", f"{len(a.missing_data)} items of missing data would refine this plan."]
        cited = [c for x in shown for c in x.citations] + [c for s in first for c in s.citations]
        code, display = shown[0].id, shown[0].name
        short = "Leg symptoms: see the plan" + (
            " once the red flag is excluded." if a.red_flags else "."
        )
        card = Card(
            uuid=self.new_uuid(),
            summary=_fit(*_summaries(bottom), short),
            detail="\n".join(lines) + "\n" + _references(cited, self.cites),
            indicator="info",
            source=_source(self.a, code, display, cited),
            links=self.links(intake=True),
        )
        self.out.append(IssuedCard(card, "plan"))

    def exposures(self) -> None:
        """patient-view: one card per current medicine a blocking avoid rule applies to, from
        the record alone (the screen's ``exposure`` findings): what to do first, then why."""
        by_drug: dict[str, list[AvoidItem]] = {}
        for i in self.a.avoid:
            if _exposure(i):
                by_drug.setdefault(i.drug.id if i.drug else i.target, []).append(i)
        for items in by_drug.values():
            self.exposure_card(items)

    def exposure_card(self, items: list[AvoidItem]) -> None:
        definite = [i for i in items if not i.confirm]
        head = (definite or items)[0]
        drug = head.drug.name if head.drug else head.target
        days = max((i.days_on for i in items if i.days_on is not None), default=None)
        taken = f"On {drug}" + (f" for {_duration(days)}" if days is not None else "")
        stop = head.stopping
        action = head.if_taken or (
            "Review it; do not stop it abruptly." if stop and stop.gradual else "Review it."
        )
        why = head.summary.rstrip(".")
        unless = ""
        if head.confirm:
            unless = " Unless confirmed otherwise: " + "; ".join(c.question for c in head.confirm)
        summary = _fit(
            f"{taken}: {_lower_first(action)} {why}.{unless and unless + '.'}",
            f"{taken}: {_lower_first(action)}{unless and unless + '.'}",
            f"{taken}: {_lower_first(action)}",
            f"{taken}: review it.",
        )
        lines = [f"**{action}** {_refs(head.citations, self.cites)}".rstrip(), ""]
        lines += self.rule_lines(items)
        if days is not None:
            lines += ["", f"Taken for {_duration(days)}, from the start date on the record."]
        if stop is not None:
            lines += ["", f"**How to stop it:** {stop.text} {_refs(stop.citations, self.cites)}"]
        if self.intake_url is not None:
            lines += [
                "",
                "From the record alone: complete the legspasm intake for the cause of the leg "
                "symptoms and a full plan.",
            ]
        cited = [c for i in items for c in i.citations] + (list(stop.citations) if stop else [])
        blocking = bool(definite)
        card = Card(
            uuid=self.new_uuid(),
            summary=summary,
            detail="\n".join(lines) + "\n" + _references(cited, self.cites),
            indicator="warning" if blocking else "info",
            source=_source(self.a, head.id, head.target, head.citations),
            overrideReasons=list(OVERRIDE_REASONS) if blocking else None,
            links=self.links(intake=True),
        )
        self.out.append(IssuedCard(card, head.id))


def _exposure(i: AvoidItem) -> bool:
    """A medicine the patient takes that a blocking avoid rule applies to (a screen exposure)."""
    return i.status == "current" and i.severity in BLOCKING


def _duration(days: float) -> str:
    """How long, in whole units rounded down: days, weeks, months or years."""
    n, unit = (
        (int(days // 365.25), "year")
        if days >= 730
        else (int(days // 30.44), "month")
        if days >= 61
        else (int(days // 7), "week")
        if days >= 14
        else (int(days), "day")
    )
    return f"{n} {unit}" + ("" if n == 1 else "s")


def _lower_first(text: str) -> str:
    """A sentence continued after a colon: its first letter lower case (not an acronym)."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _with_dosage(draft: Mapping[str, Any], proposed: Mapping[str, Any]) -> dict[str, Any]:
    """The draft order (its id, requester, encounter kept) with the proposed medicine coding
    (the product of the new strength, when one is verified) and dosage, and the proposal's
    notes: an ``update`` the clinician signs as is."""
    out = dict(draft)
    out["dosageInstruction"] = proposed.get("dosageInstruction", [])
    if "medicationCodeableConcept" in proposed:
        out["medicationCodeableConcept"] = proposed["medicationCodeableConcept"]
        out.pop("medicationReference", None)
    if proposed.get("note"):
        out["note"] = [*(draft.get("note") or []), *proposed["note"]]
    return out


def _summaries(lines: Sequence[str]) -> list[str]:
    """Card summaries from the bottom line, longest first: the first line (what it is) with the
    medicine to start, then with the "do not", then alone (a card has room for two lines)."""
    head, rest = lines[0], list(lines[1:])
    start = [x for x in rest if x.startswith("Start ")]
    others = [x for x in rest if x not in start]
    ordered = start + others
    out = [" ".join([head, *ordered])]
    out += [f"{head} {x}" for x in ordered]
    return [*out, head]


def _label(step: PlanStep) -> str:
    med = step.medication
    if med is None:
        return step.summary
    dose = f" {med.dose} {med.frequency}" if med.dose and med.frequency else ""
    return f"Instead: {med.drug.name}{dose}"


def build_cards(
    a: Assessment,
    hook: str,
    *,
    new_uuid: Callable[[], str],
    drafts: Mapping[str, Mapping[str, Any]] | None = None,
    selections: Sequence[str] | None = None,
    plan_url: str | None = None,
    subject: str | None = None,
    smart_url: str | None = None,
    invocation_id: str | None = None,
    intake_url: str | None = None,
) -> list[IssuedCard]:
    """Cards for one hook. ``drafts``: draft order resources by ``Type/id`` (for delete actions).
    ``smart_url``: the web page's SMART launch, offered as a ``smart`` link whose appContext is
    ``invocation_id`` (the launched page opens this assessment). ``intake_url``: the web intake,
    offered on patient-view cards made without intake answers."""
    c = _Cards(a, new_uuid, plan_url, subject, smart_url, invocation_id, intake_url)
    c.red_flags()
    if hook == "patient-view":
        c.exposures()
        c.summary_card()
    else:
        selected = set(selections) if hook == "order-select" and selections else None
        c.orders(drafts or {}, selected)
    return c.out
