"""Repeat suppression for patient-view: a card is not shown again to the same patient for the
same rule within the knowledge base's window (``policy.yaml`` ``card_repeat_days``).

The audit store is the memory: every card returned is recorded there with its rule, so "shown"
means returned in an answered invocation of the same service. A suppressed card is not returned
and not recorded, so the window runs from the last time it was shown. Red flags (critical
cards) are never suppressed, and only patient-view is: an order check answers every order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..audit import AuditStore
from .cards import IssuedCard

__all__ = ["without_repeats"]


def without_repeats(
    cards: Sequence[IssuedCard],
    store: AuditStore,
    *,
    patient_id: str | None,
    service_id: str,
    days: float,
    now: dt.datetime,
) -> list[IssuedCard]:
    """``cards`` without those whose (patient, rule) was shown within ``days`` before ``now``
    (0 or less: every card; no patient id: every card, since nothing says who saw them)."""
    quiet = [c for c in cards if c.card.indicator != "critical"]
    if days <= 0 or patient_id is None or not quiet:
        return list(cards)
    shown = store.rules_shown(patient_id, now - dt.timedelta(days=days), service_id)
    return [c for c in cards if c.card.indicator == "critical" or c.rule not in shown]
