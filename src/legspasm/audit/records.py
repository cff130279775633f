"""What the audit store keeps: plain frozen values, free of any database type.

The CDS Hooks service builds an :class:`Invocation` per request (with the :class:`CardRecord`
of every card it returned) and a :class:`FeedbackRecord` per feedback item; the store hands the
same values back. Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

__all__ = ["UNKNOWN_CARD", "CardRecord", "FeedbackRecord", "Invocation", "RuleRate"]

UNKNOWN_CARD = "unknown card"  # the report's rule for feedback on a card uuid never stored


@dataclass(frozen=True, slots=True)
class CardRecord:
    """One card as sent to the EHR."""

    uuid: str  # the card's uuid as sent to the EHR
    rule: str  # an avoid rule id ("AV-QUININE"), a red-flag id ("RF-DVT"), or "plan"
    indicator: str  # info | warning | critical
    summary: str


@dataclass(frozen=True, slots=True)
class Invocation:
    """One CDS Hooks request and what the service answered."""

    id: str  # uuid4 string assigned by the service
    received_at: datetime  # timezone-aware UTC
    service_id: str  # e.g. "legspasm-order-sign"
    hook: str  # e.g. "order-sign"
    hook_instance: str | None
    knowledge_version: str
    patient_id: str | None
    user_id: str | None
    fhir_server: str | None  # never any token
    status_code: int  # HTTP status returned
    # "cards" | "no-cards" | "bad-request" | "unauthorized" | "prefetch-unavailable" | "error"
    outcome: str
    latency_ms: float
    cards: tuple[CardRecord, ...] = ()
    # full Assessment JSON, for reopening the plan (to store: a dict, or JSON text already
    # serialised as ``RawJSON``; read back: a dict)
    assessment: dict[str, Any] | str | None = None
    as_of: date | None = None
    error: str | None = None
    case: dict[str, Any] | None = None  # the Case JSON the assessment was made from
    label: str | None = None  # what was assessed, e.g. "web form" or "upload: bundle.json"


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """One CDS Hooks feedback item: what the clinician did with a card."""

    service_id: str
    card_uuid: str
    outcome: str  # "accepted" | "overridden"
    received_at: datetime  # aware UTC
    accepted_suggestions: tuple[str, ...] = ()
    override_system: str | None = None
    override_code: str | None = None
    override_display: str | None = None
    user_comment: str | None = None
    outcome_timestamp: datetime | None = None


@dataclass(slots=True)
class Refusals:
    """Requests refused before they were processed (``outcome`` "unauthorized"), counted for
    one service over a window from ``first_at`` to ``last_at``."""

    service_id: str
    outcome: str
    first_at: datetime
    last_at: datetime
    count: int = 0


@dataclass(frozen=True, slots=True)
class RuleRate:
    """How the cards of one rule fared: one row of the feedback report."""

    rule: str  # UNKNOWN_CARD for feedback whose card uuid was never stored
    cards_shown: int  # distinct card uuids
    accepted: int  # cards whose latest feedback is "accepted"
    overridden: int  # cards whose latest feedback is "overridden"
    no_feedback: int  # shown minus cards with any feedback
    acceptance_rate: float | None  # accepted / cards_shown (None when 0 shown)
    override_rate: float | None  # overridden / cards_shown (None when 0 shown)
    top_override_reasons: tuple[tuple[str, int], ...]  # (display or code, count), up to 3
