"""patient-view from what the record holds (issue 16, part 1), over real HTTP.

Golden requests built from real FHIR data: the Synthea patient of tests/fixtures/synthea (a man
born 1955: 71 at AS_OF) with the medicines and coded diagnoses of each scenario added as an EHR's
FHIR server would return them, and no legspasm intake answers. Each gives the card the record
supports: the action first, how long the medicine has been taken, and a link to the web intake.
Repeat suppression (policy ``card_repeat_days``) is tested against the audit store the service
writes (SQLite).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from legspasm.audit import AuditStore, CardRecord, Invocation
from legspasm.knowledge import load_knowledge
from legspasm.server import create_app
from legspasm.service.cards import INTAKE_LABEL
from legspasm.service.hooks import PREFETCH_KEY_OF_TYPE
from legspasm.settings import Settings
from live_server import serve
from test_service import (
    AS_OF,
    CYCLOBENZAPRINE,
    DIAZEPAM,
    PRAMIPEXOLE,
    PREFETCH_KEYS,
    QUININE,
    RLS_LOW_FERRITIN,
    VIEW,
    Live,
    cards_for,
    cds_request,
    check_cards,
    med_request,
    post,
    topic,
    vignette_prefetch,
)

SYNTHEA = (
    Path(__file__).parent / "fixtures" / "synthea" / "0fe762e3-9350-4387-98d4-a7e8a739d4e1.json"
)
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
REPEAT_DAYS = load_knowledge().threshold("card_repeat_days")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service in dev mode with its own SQLite audit store (suppression state is per store)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('record') / 'audit.sqlite3'}"
    store = AuditStore.open(url)
    app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        yield Live(base, client, store, url)
    store.close()


def synthea_record(pid: str, extra: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The Synthea patient's record as prefetch, under patient id ``pid`` (a fresh id per test,
    so repeat suppression from another test cannot hide its cards), plus ``extra`` resources."""
    bundle = json.loads(SYNTHEA.read_text())
    old = next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    raw = json.dumps([e["resource"] for e in bundle["entry"]])
    raw = raw.replace(f"urn:uuid:{old}", f"Patient/{pid}").replace(old, pid)
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_KEYS)
    for r in [*json.loads(raw), *extra]:
        key = PREFETCH_KEY_OF_TYPE[r["resourceType"]]
        if key == "patient":
            prefetch[key] = r
            continue
        prefetch[key] = prefetch[key] or {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
        }
        prefetch[key]["entry"].append({"resource": r})
    return prefetch


def condition(pid: str, system: str, code: str, text: str, onset: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"{pid}-{code}",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "code": {"coding": [{"system": system, "code": code}], "text": text},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
    }


def taking(pid: str, drug: tuple[str, str], mg: float, per_day: int, since: str) -> dict[str, Any]:
    return med_request(f"{pid}-{drug[1]}", pid, drug, mg, per_day, status="active", authored=since)


def view(live: Live, pid: str, prefetch: Mapping[str, Any]) -> list[dict[str, Any]]:
    return cards_for(live, VIEW, cds_request("patient-view", pid, prefetch))


def new_pid() -> str:
    return f"rec-{uuid.uuid4()}"


def exposure(cards: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    [card] = [c for c in cards if topic(c) == rule]
    assert card["indicator"] == "warning", card
    assert len(card["summary"]) < 140, card["summary"]
    assert card["summary"].endswith("."), card["summary"]
    assert "…" not in card["summary"]
    return card


def intake_link(live: Live, card: Mapping[str, Any]) -> None:
    """The card offers the web intake (first link) and the plan; the intake page opens."""
    links = {x["label"]: x["url"] for x in card["links"]}
    assert links[INTAKE_LABEL] == live.base + "/"
    assert card["links"][0]["label"] == INTAKE_LABEL
    page = httpx.get(links[INTAKE_LABEL], timeout=10, trust_env=False)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


# --- golden requests: record only, no intake -------------------------------------------------


def test_record_only_quinine_warns_to_stop_it(live: Live) -> None:
    pid = new_pid()
    prefetch = synthea_record(pid, [taking(pid, QUININE, 324, 1, "2026-06-01")])
    cards = view(live, pid, prefetch)
    assert [topic(c) for c in cards] == ["AV-QUININE"]
    card = exposure(cards, "AV-QUININE")
    assert (
        card["summary"]
        == "On quinine for 5 months: stop it, and watch for bruising, bleeding or dark urine."
    )
    assert card["detail"].startswith("**Stop it, and watch for bruising, bleeding or dark urine.**")
    assert "**How to stop it:**" in card["detail"]
    assert card["overrideReasons"]
    intake_link(live, card)


@pytest.mark.parametrize(
    ("deceased", "cards_shown"),
    [
        ({"deceasedDateTime": "2019-04-02T10:00:00Z"}, False),
        ({"deceasedBoolean": True}, False),
        ({"deceasedDateTime": "2027-01-01"}, True),  # after AS_OF: alive on the day assessed
        ({"deceasedBoolean": False}, True),
    ],
)
def test_no_card_for_a_patient_who_has_died(
    live: Live, deceased: dict[str, Any], cards_shown: bool
) -> None:
    """Synthea records keep a dead patient's last orders active: a patient-view of that chart
    gets no card (tests/test_fhir_input.py checks the assessment's note saying why)."""
    pid = new_pid()
    prefetch = synthea_record(pid, [taking(pid, QUININE, 324, 1, "2016-06-01")])
    prefetch["patient"] = {**prefetch["patient"], **deceased}
    cards = view(live, pid, prefetch)
    assert [topic(c) for c in cards] == (["AV-QUININE"] if cards_shown else [])


def test_record_only_cyclobenzaprine_at_70(live: Live) -> None:
    pid = new_pid()
    prefetch = synthea_record(pid, [taking(pid, CYCLOBENZAPRINE, 10, 1, "2026-11-10")])
    cards = view(live, pid, prefetch)
    assert [topic(c) for c in cards] == ["AV-SMR-BEERS"]
    card = exposure(cards, "AV-SMR-BEERS")
    assert card["summary"].startswith("On cyclobenzaprine for 11 days: review it with the patient")
    assert "65 and older" in card["summary"]
    assert card["detail"].startswith("**Review it with the patient")
    assert "71" in card["detail"]  # the age, among the facts for this patient
    intake_link(live, card)


def test_record_only_diazepam_after_a_coded_stroke(live: Live) -> None:
    pid = new_pid()
    stroke = condition(pid, SNOMED, "230690007", "Cerebrovascular accident", "2025-06-01")
    prefetch = synthea_record(pid, [stroke, taking(pid, DIAZEPAM, 5, 2, "2025-07-01")])
    cards = view(live, pid, prefetch)
    card = exposure(cards, "AV-BENZO-STROKE")
    assert card["summary"].startswith("On diazepam for 16 months: taper it slowly")
    detail = card["detail"]
    assert detail.startswith("**Taper it slowly")
    assert "AGS Beers" in detail  # the second rule on the same medicine: one card, both rules
    assert "**How to stop it:** Taper, never stop abruptly" in detail
    assert [topic(c) for c in cards].count("AV-BENZO-BEERS") == 0
    intake_link(live, card)


@pytest.mark.parametrize(
    ("system", "code"), [(ICD10CM, "G25.81"), (SNOMED, "32914008")], ids=["icd10cm", "snomed"]
)
def test_record_only_rls_on_pramipexole_for_5_years(live: Live, system: str, code: str) -> None:
    pid = new_pid()
    rls = condition(pid, system, code, "Restless legs syndrome", "2021-06-01")
    prefetch = synthea_record(pid, [rls, taking(pid, PRAMIPEXOLE, 0.25, 1, "2021-10-01")])
    cards = view(live, pid, prefetch)
    assert [topic(c) for c in cards] == ["AV-DA-RLS", "rls"]
    card = exposure(cards, "AV-DA-RLS")
    assert card["summary"] == (
        "On pramipexole for 5 years: screen for augmentation and impulse-control disorders; "
        "do not stop it abruptly."
    )
    assert "Taken for 5 years, from the start date on the record." in card["detail"]
    intake_link(live, card)
    plan = cards[1]
    assert plan["indicator"] == "info"
    assert "Restless legs syndrome on the record" in plan["summary"]
    assert "each on its own card: pramipexole" in plan["detail"]
    intake_link(live, plan)


def test_coded_sleep_related_leg_cramps_documents_nocturnal_cramps(live: Live) -> None:
    pid = new_pid()
    cramps = condition(pid, ICD10CM, "G47.62", "Sleep related leg cramps", "2025-01-01")
    cards = view(live, pid, synthea_record(pid, [cramps]))
    assert [topic(c) for c in cards] == ["nocturnal_cramps"]
    assert cards[0]["summary"].startswith("Idiopathic nocturnal leg cramps on the record.")
    intake_link(live, cards[0])


def test_a_record_with_nothing_relevant_gives_no_card(live: Live) -> None:
    pid = new_pid()
    assert view(live, pid, synthea_record(pid)) == []


def test_no_intake_link_once_intake_answers_were_used(live: Live) -> None:
    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    pid_new = new_pid()
    prefetch = json.loads(json.dumps(prefetch).replace(pid, pid_new))
    cards = view(live, pid_new, prefetch)
    assert cards
    for card in cards:
        assert INTAKE_LABEL not in {x["label"] for x in card.get("links") or []}


# --- repeat suppression ------------------------------------------------------------------------


def shown_before(live: Live, pid: str, rule: str, days_ago: float) -> None:
    """An answered patient-view invocation that returned ``rule``'s card ``days_ago`` ago."""
    live.store.record_invocation(
        Invocation(
            id=str(uuid.uuid4()),
            received_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago),
            service_id=VIEW,
            hook="patient-view",
            hook_instance=None,
            knowledge_version="test",
            patient_id=pid,
            user_id=None,
            fhir_server=None,
            status_code=200,
            outcome="cards",
            latency_ms=1.0,
            cards=(CardRecord(str(uuid.uuid4()), rule, "warning", "earlier"),),
        )
    )


def quinine_record(pid: str) -> dict[str, Any]:
    return synthea_record(pid, [taking(pid, QUININE, 324, 1, "2026-06-01")])


def test_a_card_is_not_repeated_within_the_window(live: Live) -> None:
    assert REPEAT_DAYS > 0
    pid = new_pid()
    body = cds_request("patient-view", pid, quinine_record(pid))
    first = cards_for(live, VIEW, body)
    assert [topic(c) for c in first] == ["AV-QUININE"]
    r = post(live, VIEW, {**body, "hookInstance": str(uuid.uuid4())})
    assert r.status_code == 200
    assert check_cards(r.json()) == []
    [latest, earlier] = live.store.recent(limit=2, patient_id=pid)
    assert latest.outcome == "no-cards"
    assert latest.cards == ()
    assert [c.rule for c in earlier.cards] == ["AV-QUININE"]
    # another patient with the same exposure still gets it; an order check always answers
    other = new_pid()
    assert [topic(c) for c in view(live, other, quinine_record(other))] == ["AV-QUININE"]
    order = med_request("q-order", pid, QUININE, 324, 1)
    sign = cds_request("order-sign", pid, quinine_record(pid), [order])
    assert "AV-QUININE" in [topic(c) for c in cards_for(live, "legspasm-order-sign", sign)]


def test_a_card_is_shown_again_after_the_window(live: Live) -> None:
    inside, after = new_pid(), new_pid()
    shown_before(live, inside, "AV-QUININE", REPEAT_DAYS - 1)
    shown_before(live, after, "AV-QUININE", REPEAT_DAYS + 1)
    assert view(live, inside, quinine_record(inside)) == []
    assert [topic(c) for c in view(live, after, quinine_record(after))] == ["AV-QUININE"]
    # and once shown again, the window starts over
    assert view(live, after, quinine_record(after)) == []


def test_suppression_is_per_rule_and_never_hides_a_red_flag(live: Live) -> None:
    pid = new_pid()
    shown_before(live, pid, "AV-BENZO-STROKE", 1)
    stroke = condition(pid, SNOMED, "230690007", "Cerebrovascular accident", "2025-06-01")
    both = [
        stroke,
        taking(pid, DIAZEPAM, 5, 2, "2025-07-01"),
        taking(pid, QUININE, 324, 1, "2026-06-01"),
    ]
    assert [topic(c) for c in view(live, pid, synthea_record(pid, both))] == ["AV-QUININE"]
    dvt_pid, prefetch = vignette_prefetch("dvt-unilateral-swelling")
    dvt_new = new_pid()
    prefetch = json.loads(json.dumps(prefetch).replace(dvt_pid, dvt_new))
    first = view(live, dvt_new, prefetch)
    assert first[0]["indicator"] == "critical"
    again = view(live, dvt_new, prefetch)
    assert [topic(c) for c in again] == [topic(first[0])]  # the red flag, every time
