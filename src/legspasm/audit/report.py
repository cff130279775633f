"""The feedback report: how often each rule's cards were accepted or overridden.

Cards are counted once per card uuid (a replayed request stores a card twice). Each card's
outcome is its latest feedback (by time received), so accepted + overridden + no feedback add
up to the cards shown. Feedback on a card uuid the store never saw is reported under
``"unknown card"``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, TypeVarTuple

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.orm import Session

from .records import UNKNOWN_CARD, RuleRate
from .tables import CardRow, FeedbackRow, InvocationRow

__all__ = ["compute_report", "render_report", "report_json"]

TOP_REASONS = 3
_Ts = TypeVarTuple("_Ts")


def _cards(query: Select[*_Ts], service_id: str | None) -> Select[*_Ts]:
    if service_id is None:
        return query
    return query.join(InvocationRow, CardRow.invocation_id == InvocationRow.id).where(
        InvocationRow.service_id == service_id
    )


def compute_report(session: Session, service_id: str | None = None) -> list[RuleRate]:
    """Rates per rule from the cards and feedback stored (of one service when given)."""
    shown_query = _cards(
        select(CardRow.rule, func.count(distinct(CardRow.uuid))).group_by(CardRow.rule),
        service_id,
    )
    shown: dict[str, int] = dict(session.execute(shown_query).all())

    ranked_query = select(
        FeedbackRow.card_uuid,
        FeedbackRow.outcome,
        func.coalesce(FeedbackRow.override_display, FeedbackRow.override_code).label("reason"),
        func.row_number()
        .over(
            partition_by=FeedbackRow.card_uuid,
            order_by=(FeedbackRow.received_at.desc(), FeedbackRow.id.desc()),
        )
        .label("rank"),
    )
    if service_id is not None:
        ranked_query = ranked_query.where(FeedbackRow.service_id == service_id)
    ranked = ranked_query.subquery()
    latest = select(ranked).where(ranked.c.rank == 1).subquery()
    known = _cards(select(CardRow.rule, CardRow.uuid).distinct(), service_id).subquery()
    outcomes = (
        select(known.c.rule, latest.c.outcome, latest.c.reason, func.count())
        .select_from(latest.outerjoin(known, known.c.uuid == latest.c.card_uuid))
        .group_by(known.c.rule, latest.c.outcome, latest.c.reason)
    )

    accepted: Counter[str] = Counter()
    overridden: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    reasons: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for rule, outcome, reason, n in session.execute(outcomes):
        key = UNKNOWN_CARD if rule is None else str(rule)
        answered[key] += n
        if outcome == "accepted":
            accepted[key] += n
        elif outcome == "overridden":
            overridden[key] += n
            if reason:
                reasons[key][str(reason)] += n

    rows = []
    for rule in sorted(set(shown) | set(answered)):
        total = shown.get(rule, 0)
        top = sorted(reasons[rule].items(), key=lambda item: (-item[1], item[0]))
        rows.append(
            RuleRate(
                rule=rule,
                cards_shown=total,
                accepted=accepted[rule],
                overridden=overridden[rule],
                no_feedback=max(total - answered[rule], 0),
                acceptance_rate=accepted[rule] / total if total else None,
                override_rate=overridden[rule] / total if total else None,
                top_override_reasons=tuple(top[:TOP_REASONS]),
            )
        )
    return rows


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def render_report(rows: list[RuleRate]) -> str:
    """A plain-text table, one line per rule, ending in a newline."""
    if not rows:
        return "No cards or feedback recorded.\n"
    header = (
        "rule",
        "shown",
        "accepted",
        "overridden",
        "no feedback",
        "accept %",
        "override %",
        "top override reasons",
    )
    body = [
        (
            r.rule,
            str(r.cards_shown),
            str(r.accepted),
            str(r.overridden),
            str(r.no_feedback),
            _percent(r.acceptance_rate),
            _percent(r.override_rate),
            "; ".join(f"{reason} ({n})" for reason, n in r.top_override_reasons),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        left = cells[0].ljust(widths[0])
        numbers = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([left, *numbers, cells[-1]]).rstrip()

    rule_line = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule_line, *(fmt(line) for line in body)]) + "\n"


def report_json(rows: list[RuleRate]) -> list[dict[str, Any]]:
    """The report as JSON-ready dicts (rates as fractions, None when no card was shown)."""
    return [
        {
            "rule": r.rule,
            "cards_shown": r.cards_shown,
            "accepted": r.accepted,
            "overridden": r.overridden,
            "no_feedback": r.no_feedback,
            "acceptance_rate": r.acceptance_rate,
            "override_rate": r.override_rate,
            "top_override_reasons": [
                {"reason": reason, "count": n} for reason, n in r.top_override_reasons
            ],
        }
        for r in rows
    ]
