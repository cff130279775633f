"""The cards a journal acknowledged, by patient (``audit.shown.RecentCards``): what repeat
suppression counts before the records reach the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from legspasm.audit.shown import RecentCards

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
VIEW, SIGN = "legspasm-patient-view", "legspasm-order-sign"


def test_rules_per_patient_service_and_time() -> None:
    recent = RecentCards()
    recent.add("p1", VIEW, T0, frozenset({"plan", "AV-QUININE"}))
    recent.add("p1", SIGN, T0 + timedelta(hours=1), frozenset({"AV-SIGN"}))
    recent.add("p2", VIEW, T0, frozenset({"AV-OTHER"}))
    assert recent.rules("p1", T0, None) == {"plan", "AV-QUININE", "AV-SIGN"}
    assert recent.rules("p1", T0, VIEW) == {"plan", "AV-QUININE"}
    assert recent.rules("p1", T0 + timedelta(seconds=1), None) == {"AV-SIGN"}  # inclusive
    assert recent.rules("p1", T0 + timedelta(hours=2), None) == set()
    assert recent.rules("p2", T0 - timedelta(days=30), VIEW) == {"AV-OTHER"}
    assert recent.rules("nobody", T0, None) == set()
    assert len(recent) == 3


def test_the_oldest_records_are_forgotten_past_the_limit_whoever_they_were_for() -> None:
    recent = RecentCards(limit=3)
    recent.add("p1", VIEW, T0, frozenset({"first"}))
    recent.add("p2", VIEW, T0, frozenset({"second"}))
    recent.add("p1", VIEW, T0, frozenset({"third"}))
    recent.add("p3", VIEW, T0, frozenset({"fourth"}))  # the first goes
    assert len(recent) == 3
    assert recent.rules("p1", T0, VIEW) == {"third"}
    recent.add("p3", VIEW, T0, frozenset({"fifth"}))  # the second goes: p2 has none left
    assert recent.rules("p2", T0, VIEW) == set()
    assert recent.rules("p3", T0, VIEW) == {"fourth", "fifth"}
    assert len(recent) == 3
