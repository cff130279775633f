"""Cards from assessments, without a server: the CDS Hooks card rules and the alert budget hold
for every vignette, with and without draft orders of every knowledge-base medicine."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from legspasm import Case, evaluate
from legspasm.assessment import Assessment
from legspasm.service.cards import OVERRIDE_REASONS, build_cards
from legspasm.service.models import Card
from strategies import KB

AS_OF = dt.date(2026, 11, 21)
VIGNETTES = sorted(p.parent for p in (Path(__file__).parent / "vignettes").glob("*/case.yaml"))
DRUGS = sorted(KB.drugs)


def counter() -> Any:
    numbers = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(numbers):012d}"


def assess(folder: Path, orders: list[dict[str, Any]]) -> Assessment:
    data = yaml.safe_load((folder / "case.yaml").read_text())
    return evaluate(Case.model_validate({**data, "orders": orders}), KB, AS_OF)


def check_card(card: Card) -> None:
    assert 0 < len(card.summary) < 140
    assert card.source.label
    if card.suggestions:
        assert card.selectionBehavior == "at-most-one"
        for s in card.suggestions:
            assert s.actions
            for action in s.actions:
                if action.type == "create":
                    assert action.resource is not None
                    assert action.resource["resourceType"] in (
                        "MedicationRequest",
                        "ServiceRequest",
                        "CommunicationRequest",
                    )
                if action.type == "delete":
                    assert action.resourceId
    if card.indicator != "info" and card.suggestions:
        assert card.overrideReasons == list(OVERRIDE_REASONS)


@pytest.mark.parametrize("folder", VIGNETTES, ids=lambda p: p.name)
def test_cards_for_every_vignette_and_order(folder: Path) -> None:
    orders = [{"id": f"MedicationRequest/{d}", "name": KB.drugs[d].name} for d in DRUGS]
    a = assess(folder, orders)
    drafts = {
        o["id"]: {"resourceType": "MedicationRequest", "id": o["id"].split("/")[1]} for o in orders
    }
    for hook in ("patient-view", "order-sign"):
        issued = build_cards(a, hook, new_uuid=counter(), drafts=drafts, plan_url="/plan/x")
        cards = [c.card for c in issued]
        for card in cards:
            check_card(card)
        assert len({c.uuid for c in cards}) == len(cards)
        # Red flags first, each once, critical.
        crit = [c for c in cards if c.indicator == "critical"]
        assert cards[: len(crit)] == crit
        assert len(crit) == len(a.red_flags)
        if hook == "patient-view":
            # One card per current medicine with a blocking exposure (warning when definite,
            # info when it holds unless confirmed otherwise), at most one plan card.
            exposed: dict[str, list[str]] = {}
            for i in a.avoid:
                if i.status == "current" and i.severity in ("avoid", "contraindicated"):
                    exposed.setdefault(i.drug.id if i.drug else i.target, []).append(i.id)
            rules = [x.rule for x in issued if x.card.indicator != "critical"]
            assert len([r for r in rules if r != "plan"]) == len(exposed)
            assert rules.count("plan") <= 1
            warned = [c for c in cards if c.indicator == "warning"]
            assert len(warned) <= len(exposed)
        else:
            # One card per order with findings; interruptive only when one is blocking.
            orders_hit = {i.order_id for i in a.avoid if i.status == "ordered"}
            assert None not in orders_hit
            assert len(cards) - len(crit) == len(orders_hit)
            blocking = {
                i.order_id
                for i in a.avoid
                if i.status == "ordered" and i.severity in ("avoid", "contraindicated")
            }
            assert len([c for c in cards if c.indicator == "warning"]) == len(blocking)


def test_order_select_warns_only_on_the_selected_order() -> None:
    folder = Path(__file__).parent / "vignettes" / "rls-low-ferritin-crcl-25"
    orders = [
        {"id": "MedicationRequest/a", "name": "pramipexole"},
        {"id": "MedicationRequest/b", "name": "ropinirole"},
    ]
    a = assess(folder, orders)
    both = build_cards(a, "order-sign", new_uuid=counter())
    assert len(both) == 2
    one = build_cards(a, "order-select", new_uuid=counter(), selections=["MedicationRequest/b"])
    assert [c.rule for c in one] == ["AV-DA-RLS"]
    assert one[0].card.summary.startswith("Avoid ropinirole")


def test_an_order_without_an_id_gets_no_delete_action() -> None:
    folder = Path(__file__).parent / "vignettes" / "rls-low-ferritin-crcl-25"
    for orders in (
        [{"name": "pramipexole"}],
        [{"id": "MedicationRequest at [0] › entry[0]", "name": "pramipexole"}],
    ):
        a = assess(folder, orders)
        (issued,) = build_cards(a, "order-sign", new_uuid=counter(), drafts={})
        assert issued.card.suggestions
        for s in issued.card.suggestions:
            assert all(x.type == "create" for x in s.actions)


def test_a_red_flag_card_offers_its_order_as_a_draft_service_request() -> None:
    """The red flag's own order (knowledge base) is one accept-able suggestion; a red flag
    without an order has none, and dismissing one that has asks for a reason."""
    seen = 0
    for folder in VIGNETTES:
        a = assess(folder, [])
        results = {rf.id: rf for rf in a.red_flags}
        for issued in build_cards(a, "patient-view", new_uuid=counter(), subject="Patient/p"):
            rf = results.get(issued.rule)
            if rf is None or issued.card.indicator != "critical":
                continue
            if not rf.order:
                assert not issued.card.suggestions
                continue
            seen += 1
            (suggestion,) = issued.card.suggestions or []
            (action,) = suggestion.actions
            assert action.resource is not None
            assert action.resource["resourceType"] == "ServiceRequest"
            assert action.resource["code"] == {"text": rf.order}
            assert action.resource["subject"] == {"reference": "Patient/p"}
            assert action.resource["priority"] == (
                "stat" if rf.urgency == "emergency" else "urgent"
            )
    assert seen >= 3
