"""The CDS Hooks service over real HTTP: discovery, order checks, patient-view, FHIR fetching,
JWT, audit, feedback and bad input.

Each configuration runs ONE real uvicorn server for the module (tests/live_server.py) with its
own SQLite audit store; requests are sent with httpx over TCP. Patient data are the golden
vignettes' FHIR bundles (tests/vignettes/<id>/bundle.json) sent as prefetch, split by resource
type under the service's prefetch keys the way an EHR answers the templates. Missing prefetch is
fetched from a real local FHIR server (``FhirServer``). The published request examples of
/work/shared/data are in tests/test_service_examples.py.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from legspasm import Knowledge
from legspasm.audit import AuditStore, RuleRate
from legspasm.audit.journal import default_directory, recover
from legspasm.errors import ConfigError
from legspasm.server import create_app
from legspasm.service.cards import RULE_SYSTEM
from legspasm.service.hooks import PREFETCH_KEY_OF_TYPE, SERVICES
from legspasm.service.models import CdsResponse
from legspasm.settings import Issuer, Settings
from live_server import FhirServer, free_port, serve

LINK_SECRET = "test-link-secret-0123456789abcdef-xyz"
AS_OF = dt.date(2026, 11, 21)
VIGNETTES = Path(__file__).resolve().parent / "vignettes"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
SIGN = "legspasm-order-sign"
SELECT = "legspasm-order-select"
VIEW = "legspasm-patient-view"
PREFETCH_KEYS = (
    "patient",
    "conditions",
    "medicationRequests",
    "medicationStatements",
    "medicationDispenses",
    "observations",
    "allergies",
    "intake",
)
KEY_OF_TYPE = {t: k for t, k in PREFETCH_KEY_OF_TYPE.items() if t != "Patient"}
INTERRUPTIVE = ("warning", "critical")
PG_ENV = "LEGSPASM_TEST_POSTGRES_URL"

# Medicines (RxNorm ingredient codes as in the knowledge base) used by the order scenarios.
TIZANIDINE = ("57258", "tizanidine")
CIPROFLOXACIN = ("2551", "ciprofloxacin")
DIAZEPAM = ("3322", "diazepam")
PRAMIPEXOLE = ("746741", "pramipexole")
ROPINIROLE = ("72302", "ropinirole")
QUININE = ("9071", "quinine")
CYCLOBENZAPRINE = ("21949", "cyclobenzaprine")
GABAPENTIN = ("25480", "gabapentin")
FERROUS_SULFATE = ("24947", "ferrous sulfate")  # harmless for every vignette used below

STROKE = "stroke-generalised-spasticity-oral-agents"
RLS_LOW_FERRITIN = "rls-low-ferritin-crcl-25"
NLC = "nlc-typical-middle-aged-man-no-drugs"
AGE_65 = "boundary-age-65-cyclobenzaprine-beers-avoid"
AGE_64 = "boundary-age-64-cyclobenzaprine-allowed"
CRCL_59 = "boundary-crcl-59-gabapentin-band-30-59"
MAOI_HF = "msk-cyclo-contraindicated-maoi-stopped-11-days-heart-failure"
DVT = "dvt-unilateral-swelling"


# --- helpers shared with tests/test_service_examples.py ----------------------------------------


def check_cards(body: Any) -> list[dict[str, Any]]:
    """The cards of a 200 body, after checking it is a CDS Hooks 2.0 response card by card."""
    CdsResponse.model_validate(body)
    cards: list[dict[str, Any]] = body["cards"]
    uuids: list[str] = []
    for card in cards:
        assert isinstance(card.get("uuid"), str), card
        assert card["uuid"], card
        uuids.append(card["uuid"])
        assert 0 < len(card["summary"]) < 140, card["summary"]
        assert card["indicator"] in ("info", "warning", "critical"), card
        assert card["source"]["label"].strip(), card
        suggestions = card.get("suggestions") or []
        if suggestions:
            assert card.get("selectionBehavior") in ("at-most-one", "any"), card
        for s in suggestions:
            assert isinstance(s.get("uuid"), str), s
            assert s["uuid"], s
            uuids.append(s["uuid"])
            assert s["label"].strip()
            assert len(s["actions"]) >= 1, s
            for a in s["actions"]:
                assert a["description"].strip(), a
                if a["type"] == "create":
                    assert isinstance(a.get("resource"), dict), a
                    assert a["resource"].get("resourceType"), a
                elif a["type"] == "delete":
                    assert re.fullmatch(r"[A-Z][A-Za-z]+/[^/\s]+", a.get("resourceId") or ""), a
                else:
                    assert a["type"] == "update", a
                    assert isinstance(a.get("resource"), dict), a
        for reason in card.get("overrideReasons") or []:
            assert reason["code"], reason
            assert reason["display"].strip(), reason
        for link in card.get("links") or []:
            assert link["label"].strip()
            if link.get("type", "absolute") == "absolute":
                assert re.match(r"https?://[^/]+/", link["url"]), link  # absolute, as typed
    assert len(uuids) == len(set(uuids)), "card and suggestion uuids must be unique"
    keys = [(c["source"].get("topic", {}).get("code"), c["summary"]) for c in cards]
    assert len(keys) == len(set(keys)), f"duplicate cards: {keys}"
    return cards


def check_outcome(r: httpx.Response, status: int, *where: str) -> dict[str, Any]:
    """An OperationOutcome answer with this status, naming each of ``where`` (in expression or
    diagnostics)."""
    assert r.status_code == status, (r.status_code, r.text)
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    issue = body["issue"][0]
    assert issue["severity"] == "error", body
    assert issue["code"], body
    assert issue["diagnostics"], body
    named = " ".join([issue["diagnostics"], *issue.get("expression", [])])
    for w in where:
        assert w in named, (w, body)
    return body


def topic(card: Mapping[str, Any]) -> str:
    code = card["source"]["topic"]
    assert code["system"] == RULE_SYSTEM
    return str(code["code"])


def vignette_prefetch(
    vignette: str, extra: Sequence[Mapping[str, Any]] = ()
) -> tuple[str, dict[str, Any]]:
    """(patient id, prefetch): the vignette's Patient under ``patient`` and its other resources
    as searchset Bundles under the key whose template finds them; keys with no data are null.
    References are made relative (``Patient/<id>``) as an EHR's FHIR server would return them."""
    bundle = json.loads((VIGNETTES / vignette / "bundle.json").read_text())
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    pid = str(patient["id"])
    raw = json.dumps([e["resource"] for e in bundle["entry"]]).replace(
        f"urn:uuid:{pid}", f"Patient/{pid}"
    )
    resources: list[Mapping[str, Any]] = [*json.loads(raw), *extra]
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_KEYS)
    for r in resources:
        if r["resourceType"] == "Patient":
            prefetch["patient"] = r
            continue
        key = KEY_OF_TYPE[r["resourceType"]]
        prefetch[key] = prefetch[key] or {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
        }
        prefetch[key]["entry"].append({"resource": r})
    return pid, prefetch


def vignette_resources(vignette: str) -> tuple[str, list[Mapping[str, Any]]]:
    """(patient id, the vignette's resources) with relative references, for a FHIR server."""
    pid, prefetch = vignette_prefetch(vignette)
    out: list[Mapping[str, Any]] = [prefetch["patient"]]
    for key in PREFETCH_KEYS[1:]:
        if prefetch[key] is not None:
            out += [e["resource"] for e in prefetch[key]["entry"]]
    return pid, out


def med_request(
    rid: str,
    pid: str,
    drug: tuple[str | None, str],
    dose_mg: float | None = None,
    per_day: int | None = None,
    *,
    days: int | None = None,
    status: str = "draft",
    authored: str = "2026-11-21",
) -> dict[str, Any]:
    """An R4 MedicationRequest: RxNorm-coded (or text only when the code is None)."""
    code, name = drug
    concept: dict[str, Any] = {"text": name}
    if code is not None:
        concept["coding"] = [{"system": RXNORM, "code": code, "display": name}]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept,
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": authored,
    }
    if dose_mg is not None and per_day is not None:
        resource["dosageInstruction"] = [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ]
    if days is not None:
        resource["dispenseRequest"] = {
            "expectedSupplyDuration": {"value": days, "unit": "days", "system": UCUM, "code": "d"}
        }
    return resource


def cds_request(
    hook: str,
    pid: str | None,
    prefetch: Mapping[str, Any] | None,
    orders: Sequence[Mapping[str, Any]] = (),
    **extra: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/example"}
    if pid is not None:
        context["patientId"] = pid
    if hook != "patient-view":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        }
    context.update(extra.pop("context", {}))
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    body.update(extra)
    return body


@dataclass
class Live:
    base: str
    client: httpx.Client
    store: AuditStore
    url: str  # the audit database URL


@pytest.fixture(scope="module")
def live_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The service in dev mode (no JWT) with a SQLite audit store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dev') / 'audit.sqlite3'}"
    store = AuditStore.open(url)
    app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        yield Live(base, client, store, url)
    store.close()


@pytest.fixture(scope="module")
def fhir_shared() -> Iterator[FhirServer]:
    with FhirServer() as server:
        yield server


@pytest.fixture
def fhir(fhir_shared: FhirServer) -> FhirServer:
    """The module's FHIR server, emptied and reset for one test."""
    fhir_shared.resources = []
    fhir_shared.requests = []
    fhir_shared.authorizations = []
    fhir_shared.status = 200
    fhir_shared.delay_s = 0.0
    fhir_shared.next_base = None
    fhir_shared.page_size = 50
    return fhir_shared


def post(live: Live, service: str, body: Any, **kw: Any) -> httpx.Response:
    return live.client.post(f"/cds-services/{service}", json=body, **kw)


def cards_for(live: Live, service: str, body: Any) -> list[dict[str, Any]]:
    r = post(live, service, body)
    assert r.status_code == 200, r.text
    return check_cards(r.json())


# --- 1. discovery ------------------------------------------------------------------------------


def test_discovery_lists_three_services_with_relative_patient_templates(live_dev: Live) -> None:
    r = live_dev.client.get("/cds-services")
    assert r.status_code == 200
    services = r.json()["services"]
    by_id = {s["id"]: s for s in services}
    assert by_id.keys() == {VIEW, SELECT, SIGN}
    assert {s["hook"] for s in services} == {"patient-view", "order-select", "order-sign"}
    assert by_id[VIEW]["hook"] == "patient-view"
    assert by_id[SELECT]["hook"] == "order-select"
    assert by_id[SIGN]["hook"] == "order-sign"
    for s in services:
        assert s["description"].strip()
        assert s["title"].strip()
        assert set(s["prefetch"]) == set(PREFETCH_KEYS)
        for key, template in s["prefetch"].items():
            assert re.fullmatch(r"[A-Z][A-Za-z]+[/?]\S+", template), (key, template)
            assert "://" not in template.split("?")[0]  # (a token search names its system URL)
            assert not template.startswith("/")
            tokens = re.findall(r"\{\{[^}]*\}\}", template)
            assert tokens == ["{{context.patientId}}"], (key, template)
            assert "{" not in re.sub(r"\{\{context\.patientId\}\}", "", template)
    assert by_id[SIGN]["prefetch"]["patient"] == "Patient/{{context.patientId}}"


# --- 3. order scenarios ------------------------------------------------------------------------


def one_warning(cards: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    """The one interruptive card, for ``rule``, with override reasons."""
    interruptive = [c for c in cards if c["indicator"] in INTERRUPTIVE]
    assert len(interruptive) == 1, [(c["indicator"], c["summary"]) for c in cards]
    card = interruptive[0]
    assert card["indicator"] == "warning"
    assert topic(card) == rule
    reasons = card.get("overrideReasons") or []
    assert reasons
    assert all(r["display"] for r in reasons)
    return card


def no_warning(cards: list[dict[str, Any]]) -> None:
    assert not [c for c in cards if c["indicator"] in INTERRUPTIVE], cards


def deletes(card: Mapping[str, Any]) -> set[str]:
    return {
        a["resourceId"]
        for s in card.get("suggestions") or []
        for a in s["actions"]
        if a["type"] == "delete"
    }


def creates(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        a["resource"]
        for s in card.get("suggestions") or []
        for a in s["actions"]
        if a["type"] == "create"
    ]


def sign(
    live: Live,
    vignette: str,
    *orders: dict[str, Any],
    current: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    pid, prefetch = vignette_prefetch(vignette, current)
    return cards_for(live, SIGN, cds_request("order-sign", pid, prefetch, orders))


def pid_of(vignette: str) -> str:
    return vignette_prefetch(vignette)[0]


def test_tizanidine_ordered_while_taking_ciprofloxacin(live_dev: Live) -> None:
    pid = pid_of(STROKE)
    cipro = med_request(
        "cur-cipro", pid, CIPROFLOXACIN, 500, 2, status="active", authored="2026-11-18"
    )
    order = med_request("tiz-1", pid, TIZANIDINE, 2, 3)
    card = one_warning(sign(live_dev, STROKE, order, current=[cipro]), "AV-TIZ-CYP1A2")
    assert "tizanidine" in card["summary"].lower()
    assert deletes(card) == {"MedicationRequest/tiz-1"}
    # negative controls: the same order without ciprofloxacin; the same patient, a harmless order
    no_warning(sign(live_dev, STROKE, order))
    no_warning(
        sign(live_dev, STROKE, med_request("fe-1", pid, FERROUS_SULFATE, 325, 1), current=[cipro])
    )


def test_ciprofloxacin_ordered_while_taking_tizanidine(live_dev: Live) -> None:
    pid = pid_of(STROKE)
    tiz = med_request("cur-tiz", pid, TIZANIDINE, 4, 3, status="active", authored="2026-10-01")
    order = med_request("cipro-1", pid, CIPROFLOXACIN, 500, 2)
    card = one_warning(sign(live_dev, STROKE, order, current=[tiz]), "AV-TIZ-CYP1A2")
    assert "ciprofloxacin" in card["summary"].lower()
    assert "tizanidine" in card["detail"]
    assert deletes(card) == {"MedicationRequest/cipro-1"}
    no_warning(sign(live_dev, STROKE, order))  # not on tizanidine: no interaction
    no_warning(
        sign(live_dev, STROKE, med_request("fe-1", pid, FERROUS_SULFATE, 325, 1), current=[tiz])
    )


def test_diazepam_after_stroke(live_dev: Live) -> None:
    pid = pid_of(STROKE)
    card = one_warning(
        sign(live_dev, STROKE, med_request("dzp-1", pid, DIAZEPAM, 5, 2)), "AV-BENZO-STROKE"
    )
    assert "diazepam" in card["summary"].lower()
    assert deletes(card) == {"MedicationRequest/dzp-1"}
    alternatives = creates(card)
    assert alternatives
    assert all(r["resourceType"] == "MedicationRequest" for r in alternatives)
    assert "baclofen" in json.dumps(alternatives[0]["medicationCodeableConcept"])
    no_warning(sign(live_dev, STROKE, med_request("fe-1", pid, FERROUS_SULFATE, 325, 1)))
    # the same order for a 58-year-old without a stroke: no stroke rule, no Beers rule
    no_warning(sign(live_dev, NLC, med_request("dzp-1", pid_of(NLC), DIAZEPAM, 5, 2)))


@pytest.mark.parametrize("drug", [PRAMIPEXOLE, ROPINIROLE], ids=lambda d: d[1])
def test_dopamine_agonist_for_rls_offers_an_alternative(
    live_dev: Live, drug: tuple[str, str]
) -> None:
    pid = pid_of(RLS_LOW_FERRITIN)
    order = med_request("da-1", pid, drug, 0.25, 1)
    card = one_warning(sign(live_dev, RLS_LOW_FERRITIN, order), "AV-DA-RLS")
    assert drug[1] in card["summary"].lower()
    first = card["suggestions"][0]
    # The record holds no allergy list, so the iron step is conditional: offered, labelled
    # "confirm first", never the recommended suggestion (fail closed).
    assert first["isRecommended"] is False
    assert first["label"].startswith("Confirm first: ")
    kinds = {a["type"]: a for a in first["actions"]}
    assert kinds["delete"]["resourceId"] == "MedicationRequest/da-1"
    alternative = kinds["create"]["resource"]
    assert alternative["resourceType"] == "MedicationRequest"
    assert alternative["status"] == "draft"
    assert alternative["intent"] == "order"
    assert alternative["subject"] == {"reference": f"Patient/{pid}"}
    # ferritin 40 ng/mL: iron first, ferrous sulfate 325 mg once daily
    assert alternative["medicationCodeableConcept"]["coding"] == [
        {"system": RXNORM, "code": FERROUS_SULFATE[0], "display": FERROUS_SULFATE[1]}
    ]
    dosage = alternative["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 325.0,
        "unit": "mg",
        "system": UCUM,
        "code": "mg",
    }
    assert dosage["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "d"}
    assert all(r["resourceType"] == "MedicationRequest" for r in creates(card))
    assert not any(drug[1] in json.dumps(r["medicationCodeableConcept"]) for r in creates(card))
    no_warning(sign(live_dev, RLS_LOW_FERRITIN, med_request("fe-1", pid, FERROUS_SULFATE, 325, 1)))


def test_quinine_for_nocturnal_cramps_is_contraindicated(live_dev: Live) -> None:
    pid = pid_of(NLC)
    card = one_warning(sign(live_dev, NLC, med_request("qn-1", pid, QUININE, 324, 1)), "AV-QUININE")
    assert card["summary"].startswith("Do not order quinine")
    first = card["suggestions"][0]
    kinds = {a["type"]: a for a in first["actions"]}
    assert kinds["delete"]["resourceId"] == "MedicationRequest/qn-1"
    advice = kinds["create"]["resource"]
    assert advice["resourceType"] == "CommunicationRequest"  # non-drug first line
    assert "stretch" in advice["payload"][0]["contentString"].lower()
    assert advice["subject"] == {"reference": f"Patient/{pid}"}
    assert not any(r["resourceType"] == "MedicationRequest" for r in creates(card))
    no_warning(sign(live_dev, NLC, med_request("fe-1", pid, FERROUS_SULFATE, 325, 1)))


@pytest.mark.parametrize(
    ("vignette", "days", "rule"),
    [
        pytest.param(AGE_65, None, "AV-SMR-BEERS", id="age-65-beers"),
        pytest.param(MAOI_HF, None, "AV-CYCLO-MAOI", id="maoi-stopped-11-days"),
        pytest.param(STROKE, None, "AV-CYCLO-SPASTICITY", id="post-stroke-spasticity"),
        pytest.param(AGE_64, 30, "AV-CYCLO-DURATION", id="ordered-for-30-days"),
    ],
)
def test_cyclobenzaprine(live_dev: Live, vignette: str, days: int | None, rule: str) -> None:
    pid = pid_of(vignette)
    order = med_request("cb-1", pid, CYCLOBENZAPRINE, 5, 3, days=days)
    card = one_warning(sign(live_dev, vignette, order), rule)
    assert "cyclobenzaprine" in card["summary"].lower()
    assert deletes(card) == {"MedicationRequest/cb-1"}
    no_warning(sign(live_dev, vignette, med_request("fe-1", pid, FERROUS_SULFATE, 325, 1)))


def test_cyclobenzaprine_with_maoi_and_heart_failure_is_one_card(live_dev: Live) -> None:
    pid = pid_of(MAOI_HF)
    card = one_warning(
        sign(live_dev, MAOI_HF, med_request("cb-1", pid, CYCLOBENZAPRINE, 5, 3)), "AV-CYCLO-MAOI"
    )
    assert "(+1 more)" in card["summary"]  # the heart-failure contraindication, same card
    assert "heart failure" in card["detail"]


def test_cyclobenzaprine_boundaries(live_dev: Live) -> None:
    pid = pid_of(AGE_64)
    for days in (None, 14, 21):
        no_warning(
            sign(live_dev, AGE_64, med_request("cb-1", pid, CYCLOBENZAPRINE, 5, 3, days=days))
        )
    one_warning(
        sign(live_dev, AGE_64, med_request("cb-1", pid, CYCLOBENZAPRINE, 5, 3, days=22)),
        "AV-CYCLO-DURATION",
    )


def test_gabapentin_above_the_renal_band_offers_the_plan_dose(live_dev: Live) -> None:
    pid = pid_of(CRCL_59)
    card = one_warning(
        sign(live_dev, CRCL_59, med_request("gp-1", pid, GABAPENTIN, 900, 3)), "AV-A2D-RENAL-DOSE"
    )
    assert "2700 mg > 1400 mg allowed at renal function 59" in card["detail"]
    first = card["suggestions"][0]
    # The same medicine at the plan's dose: an update of the draft order, not delete + create.
    assert [a["type"] for a in first["actions"]] == ["update"]
    assert first["label"].startswith(("Change the dose: gabapentin", "Confirm first: Change"))
    same = first["actions"][0]["resource"]
    assert same["id"] == "gp-1"
    # The plan dose (300 mg) is one gabapentin 300 MG Oral Capsule: its SCD, then the ingredient.
    codes = [c["code"] for c in same["medicationCodeableConcept"]["coding"]]
    assert codes == ["310431", GABAPENTIN[0]]
    dosage = same["dosageInstruction"][0]
    assert "CrCl >30-59" in dosage["text"]
    # The RLS maximum (1200 mg/day) is below the band's label ceiling (1400 mg/day).
    assert dosage["maxDosePerPeriod"]["numerator"] == {
        "value": 1200.0,
        "unit": "mg",
        "system": UCUM,
        "code": "mg",
    }
    assert dosage["maxDosePerPeriod"]["denominator"]["code"] == "d"


@pytest.mark.parametrize(("dose", "per_day"), [(300, 3), (700, 2), (400, 1)])
def test_gabapentin_inside_the_renal_band_has_no_renal_card(
    live_dev: Live, dose: int, per_day: int
) -> None:
    pid = pid_of(CRCL_59)
    cards = sign(live_dev, CRCL_59, med_request("gp-1", pid, GABAPENTIN, dose, per_day))
    assert not [c for c in cards if topic(c) == "AV-A2D-RENAL-DOSE"]
    no_warning(cards)


def test_order_select_warns_only_on_the_selected_order(live_dev: Live) -> None:
    pid, prefetch = vignette_prefetch(STROKE)
    orders = [
        med_request("dzp-1", pid, DIAZEPAM, 5, 2),
        med_request("cb-1", pid, CYCLOBENZAPRINE, 5, 3),
        med_request("fe-1", pid, FERROUS_SULFATE, 325, 1),
    ]

    def select(*selected: str) -> list[dict[str, Any]]:
        body = cds_request(
            "order-select", pid, prefetch, orders, context={"selections": list(selected)}
        )
        return cards_for(live_dev, SELECT, body)

    card = one_warning(select("MedicationRequest/dzp-1"), "AV-BENZO-STROKE")
    assert deletes(card) == {"MedicationRequest/dzp-1"}
    card = one_warning(select("MedicationRequest/cb-1"), "AV-CYCLO-SPASTICITY")
    assert deletes(card) == {"MedicationRequest/cb-1"}
    no_warning(select("MedicationRequest/fe-1"))
    # order-sign checks every draft: one card per problem order
    both = cards_for(live_dev, SIGN, cds_request("order-sign", pid, prefetch, orders))
    assert sorted(topic(c) for c in both if c["indicator"] in INTERRUPTIVE) == [
        "AV-BENZO-STROKE",
        "AV-CYCLO-SPASTICITY",
    ]
    assert sorted(r for c in both for r in deletes(c)) == [
        "MedicationRequest/cb-1",
        "MedicationRequest/dzp-1",
    ]


def test_patient_also_inside_another_prefetch_bundle_keeps_its_data(live_dev: Live) -> None:
    """The Patient under ``patient`` and again inside a Bundle under another key (the vignette
    bundle as sent): one patient, all of its data (regression: the data were silently dropped,
    so no warning)."""
    bundle = json.loads((VIGNETTES / RLS_LOW_FERRITIN / "bundle.json").read_text())
    pid, split = vignette_prefetch(RLS_LOW_FERRITIN)
    prefetch = dict.fromkeys(PREFETCH_KEYS)
    prefetch["patient"] = split["patient"]
    prefetch["conditions"] = bundle
    order = med_request("da-1", pid, PRAMIPEXOLE, 0.25, 1)
    cards = cards_for(live_dev, SIGN, cds_request("order-sign", pid, prefetch, [order]))
    one_warning(cards, "AV-DA-RLS")


# --- 4. patient-view ---------------------------------------------------------------------------


def test_patient_view_rls_one_info_card_linking_to_the_plan(live_dev: Live) -> None:
    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    cards = cards_for(live_dev, VIEW, cds_request("patient-view", pid, prefetch))
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "info"
    assert "restless legs" in card["summary"].lower()
    assert topic(card) == "rls"
    [link] = card["links"]
    match = re.fullmatch(
        re.escape(live_dev.base) + r"/plan/([0-9a-f-]{36})\?t=[\w.-]+", link["url"]
    )
    assert match, link
    page = httpx.get(link["url"], timeout=10, trust_env=False)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Assessment" in page.text
    assert "What to do" in page.text
    assert "Restless legs syndrome" in page.text
    assert "ferrous sulfate" in page.text.lower()
    inv = live_dev.store.invocation(match.group(1))
    assert inv is not None
    assert inv.patient_id == pid
    assert inv.service_id == VIEW
    assert live_dev.client.get(f"/plan/{uuid.uuid4()}").status_code == 404


def test_patient_view_red_flag_card_comes_first(live_dev: Live) -> None:
    pid, prefetch = vignette_prefetch(DVT)
    cards = cards_for(live_dev, VIEW, cds_request("patient-view", pid, prefetch))
    assert cards[0]["indicator"] == "critical"
    assert topic(cards[0]) == "RF-DVT"
    assert "deep vein thrombosis" in cards[0]["summary"].lower()
    assert [c["indicator"] for c in cards[1:]] == ["info"] * (len(cards) - 1)


def synthea_like_patient(pid: str) -> dict[str, Any]:
    """Prefetch of a Synthea-style record: hypertension, lisinopril, blood pressure; no leg data."""
    subject = {"reference": f"Patient/{pid}"}
    condition = {
        "resourceType": "Condition",
        "id": f"{pid}-htn",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "59621000"}],
            "text": "Essential hypertension",
        },
        "subject": subject,
        "onsetDateTime": "2015-03-02",
    }
    med = med_request(
        f"{pid}-acei", pid, ("314076", "lisinopril 10 MG Oral Tablet"), status="active"
    )
    bp = {
        "resourceType": "Observation",
        "id": f"{pid}-bp",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": subject,
        "effectiveDateTime": "2026-10-01",
        "valueQuantity": {"value": 128, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
    }
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_KEYS)
    prefetch["patient"] = {
        "resourceType": "Patient",
        "id": pid,
        "gender": "female",
        "birthDate": "1962-05-14",
    }
    for key, res in (("conditions", condition), ("medicationRequests", med), ("observations", bp)):
        prefetch[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": res}],
        }
    return prefetch


def test_patient_view_without_leg_data_has_no_cards(live_dev: Live) -> None:
    prefetch = synthea_like_patient("synthea-1")
    assert cards_for(live_dev, VIEW, cds_request("patient-view", "synthea-1", prefetch)) == []


# --- 5. fetching from the FHIR server ----------------------------------------------------------


def test_absent_prefetch_is_fetched_with_the_bearer_token_which_is_never_logged(
    live_dev: Live, fhir: FhirServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = "secret-token-123"
    caplog.set_level(logging.DEBUG)
    pid, fhir.resources = vignette_resources(RLS_LOW_FERRITIN)
    body = cds_request(
        "order-sign",
        pid,
        None,
        [med_request("da-1", pid, PRAMIPEXOLE, 0.25, 1)],
        fhirServer=fhir.url,
        fhirAuthorization={
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "legspasm",
        },
    )
    cards = cards_for(live_dev, SIGN, body)
    one_warning(cards, "AV-DA-RLS")  # the fetched data were used
    paths = sorted(p.split("?")[0] for p in fhir.requests)
    assert paths == sorted(
        [
            f"/fhir/Patient/{pid}",
            "/fhir/Condition",
            "/fhir/MedicationRequest",
            "/fhir/MedicationStatement",
            "/fhir/MedicationDispense",
            "/fhir/Observation",
            "/fhir/AllergyIntolerance",
            "/fhir/QuestionnaireResponse",
        ]
    )
    assert all(f"patient={pid}" in p for p in fhir.requests if "?" in p)
    assert fhir.authorizations == [f"Bearer {token}"] * len(fhir.requests)
    # never in a log record (DEBUG, every logger), nor in the audit store
    fetch_logs = [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert fetch_logs, "the FHIR reads were logged (DEBUG capture works)"
    for rec in caplog.records:
        assert token not in rec.getMessage()
    assert token not in caplog.text
    rows = live_dev.store.recent(limit=5, patient_id=pid)
    assert rows
    assert rows[0].fhir_server == fhir.url
    for row in rows:
        assert token not in json.dumps(dataclasses.asdict(row), default=str)
    database = Path(live_dev.url.removeprefix("sqlite:///"))
    # the file, its WAL and shm, and the audit journal's folder
    for found in database.parent.glob(database.name + "*"):
        for path in [found] if found.is_file() else [p for p in found.iterdir() if p.is_file()]:
            assert token.encode() not in path.read_bytes()


def test_fhir_server_error_is_412(live_dev: Live, fhir: FhirServer) -> None:
    pid, fhir.resources = vignette_resources(NLC)
    fhir.status = 500
    body = cds_request("patient-view", pid, None, fhirServer=fhir.url)
    out = check_outcome(post(live_dev, VIEW, body), 412, "HTTP 500")
    assert all(e.startswith("prefetch.") for e in out["issue"][0]["expression"])


def test_paged_search_results_are_all_read(live_dev: Live, fhir: FhirServer) -> None:
    pid, resources = vignette_resources(CRCL_59)
    # the creatinine last: only the last page of the Observation search has it
    creatinine = [r for r in resources if "2160-0" in json.dumps(r.get("code"))]
    assert len(creatinine) == 1
    fhir.resources = [r for r in resources if r not in creatinine] + creatinine
    fhir.page_size = 1
    observations = sum(r["resourceType"] == "Observation" for r in resources)
    assert observations >= 3
    body = cds_request(
        "order-sign",
        pid,
        None,
        [med_request("gp-1", pid, GABAPENTIN, 900, 3)],
        fhirServer=fhir.url,
    )
    card = one_warning(cards_for(live_dev, SIGN, body), "AV-A2D-RENAL-DOSE")
    assert "at renal function 59" in card["detail"]  # needs the creatinine on the last page
    pages = [p for p in fhir.requests if p.startswith("/fhir/Observation")]
    assert len(pages) == observations
    assert any(f"_page={observations - 1}" in p for p in pages)


def test_the_token_is_never_sent_to_a_host_a_next_link_names(
    live_dev: Live, fhir: FhirServer
) -> None:
    """A next link to another origin (or outside the fhirServer path) is not followed: the
    request fails with 412 rather than leaking the token or dropping the later pages."""
    pid, fhir.resources = vignette_resources(CRCL_59)
    fhir.page_size = 1
    token = {"access_token": "t-0ff-origin", "token_type": "Bearer", "expires_in": 300}
    token |= {"scope": "patient/*.read", "subject": "legspasm"}
    with FhirServer() as elsewhere:
        for base in (elsewhere.url, fhir.url.removesuffix("/fhir") + "/other"):
            fhir.next_base = base
            body = cds_request("patient-view", pid, None, fhirServer=fhir.url)
            body["fhirAuthorization"] = token
            check_outcome(post(live_dev, VIEW, body), 412, "points outside fhirServer")
        assert elsewhere.requests == []
    assert not any(p.startswith("/other") for p in fhir.requests)


@pytest.mark.parametrize("server", ["http://a:1x/", "http://127.0.0.1:99999/fhir", "http:///x"])
def test_a_malformed_fhir_server_is_412_and_audited(live_dev: Live, server: str) -> None:
    pid = "malformed-server"
    before = len(live_dev.store.recent(limit=100, patient_id=pid))
    body = cds_request("patient-view", pid, None, fhirServer=server)
    check_outcome(post(live_dev, VIEW, body), 412, "fhirServer is not")
    assert len(live_dev.store.recent(limit=100, patient_id=pid)) == before + 1
    assert live_dev.client.get("/healthz").status_code == 200  # the connection still serves


@pytest.fixture(scope="module")
def live_slow_fhir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Dev mode with a 0.3 s FHIR timeout."""
    url = f"sqlite:///{tmp_path_factory.mktemp('slow') / 'audit.sqlite3'}"
    store = AuditStore.open(url)
    settings = Settings(dev=True, database_url=url, as_of=AS_OF, fhir_timeout_s=0.3)
    with (
        serve(create_app(settings, store=store)) as base,
        httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
    ):
        yield Live(base, client, store, url)
    store.close()


def test_slow_fhir_server_is_412_quickly(live_slow_fhir: Live, fhir: FhirServer) -> None:
    pid, fhir.resources = vignette_resources(NLC)
    fhir.delay_s = 2.0
    before = live_slow_fhir.store.count_invocations()
    started = time.monotonic()
    r = post(live_slow_fhir, VIEW, cds_request("patient-view", pid, None, fhirServer=fhir.url))
    elapsed = time.monotonic() - started
    check_outcome(r, 412, "in time")
    assert elapsed < 1.2, elapsed
    assert live_slow_fhir.store.count_invocations() == before + 1
    assert live_slow_fhir.store.recent(limit=1)[0].status_code == 412


# --- 6. JWT ------------------------------------------------------------------------------------

ISS = "https://ehr.example.org/fhir"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
JWKS = {
    "keys": [
        {**ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True), "kid": "ec1", "use": "sig"},
        {**RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True), "kid": "rsa1", "use": "sig"},
    ]
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def claims(aud: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": aud,
        "sub": "ehr-client",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    payload.update(overrides)
    return payload


def token(payload: dict[str, Any], alg: str = "ES384") -> str:
    key, kid = (EC_KEY, "ec1") if alg == "ES384" else (RSA_KEY, "rsa1")
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


@pytest.fixture(scope="module")
def live_secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """JWTs verified; the audience is the configured public URL."""
    folder = tmp_path_factory.mktemp("secure")
    port = free_port()
    (folder / "jwks.json").write_text(json.dumps(JWKS))
    url = f"sqlite:///{folder / 'audit.sqlite3'}"
    store = AuditStore.open(url)
    settings = Settings(
        dev=False,
        database_url=url,
        as_of=AS_OF,
        issuers=[Issuer(iss=ISS, jwks_file=folder / "jwks.json")],
        link_secret=LINK_SECRET,
        public_url=f"http://127.0.0.1:{port}",
    )
    with (
        serve(create_app(settings, store=store), port) as base,
        httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
    ):
        yield Live(base, client, store, url)
    store.close()


def minimal_sign_request() -> dict[str, Any]:
    pid = "jwt-patient"
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_KEYS)
    prefetch["patient"] = {"resourceType": "Patient", "id": pid, "birthDate": "1970-01-01"}
    return cds_request("order-sign", pid, prefetch, [med_request("o1", pid, DIAZEPAM, 5, 2)])


def refused(r: httpx.Response, name: str = "") -> None:
    assert r.status_code == 401, (name, r.text)
    assert r.content == b""
    assert r.headers["www-authenticate"] == "Bearer"


def test_jwt_valid_es384_and_rs384(live_secure: Live) -> None:
    aud = f"{live_secure.base}/cds-services/{SIGN}"
    for alg in ("ES384", "RS384"):
        r = post(
            live_secure,
            SIGN,
            minimal_sign_request(),
            headers={"Authorization": f"Bearer {token(claims(aud), alg)}"},
        )
        assert r.status_code == 200, (alg, r.text)
        check_cards(r.json())


def bad_tokens(aud: str) -> dict[str, str | None]:
    now = int(time.time())
    good = token(claims(aud))
    head, body, sig = good.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    hs_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa1'})}.{segment(claims(aud))}"
    hs_sig = hmac.new(RSA_PUBLIC_PEM, hs_input.encode(), hashlib.sha256).digest()
    return {
        "wrong-iss": token(claims(aud, iss="https://evil.example.org")),
        "wrong-aud": token(claims(aud + "/x")),
        "aud-of-another-service": token(claims(aud.replace(SIGN, SELECT))),
        "expired": token(claims(aud, iat=now - 900, exp=now - 600)),
        "alg-none": f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': 'ec1'})}."
        f"{segment(claims(aud))}.",
        "hs256-with-public-key": f"{hs_input}.{b64(hs_sig)}",
        "tampered-signature": f"{head}.{body}.{b64(bytes(raw))}",
        "missing-header": None,
    }


def test_jwt_refusals_are_bare_401s_and_audited(live_secure: Live) -> None:
    aud = f"{live_secure.base}/cds-services/{SIGN}"
    before = live_secure.store.count_invocations()
    cases = bad_tokens(aud)
    for name, bad in cases.items():
        headers = {} if bad is None else {"Authorization": f"Bearer {bad}"}
        r = post(live_secure, SIGN, minimal_sign_request(), headers=headers)
        refused(r, name)
    # a bad body does not change the answer for a refused token
    refused(post(live_secure, SIGN, {"no": "context"}))
    refused(live_secure.client.post(f"/cds-services/{SIGN}", content=b"not json"))
    # replay: the same token twice
    once = token(claims(aud))
    headers = {"Authorization": f"Bearer {once}"}
    assert post(live_secure, SIGN, minimal_sign_request(), headers=headers).status_code == 200
    refused(post(live_secure, SIGN, minimal_sign_request(), headers=headers))
    # refusals are counted (below), not stored a row each: only the answered request has one
    assert live_secure.store.count_invocations() == before + 1
    [row] = live_secure.store.recent(limit=1)
    assert (row.status_code, row.service_id, row.hook) == (200, SIGN, "order-sign")


def test_unauthenticated_requests_are_counted_not_stored_a_row_each(tmp_path: Path) -> None:
    """A flood of bad tokens adds one count per service, written when the window ends and when
    the service stops (4,666 rows in 10 s before)."""
    (tmp_path / "jwks.json").write_text(json.dumps(JWKS))
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    port = free_port()
    settings = Settings(
        database_url=url,
        as_of=AS_OF,
        issuers=[Issuer(iss=ISS, jwks_file=tmp_path / "jwks.json")],
        link_secret=LINK_SECRET,
        public_url=f"http://127.0.0.1:{port}",
    )
    with AuditStore.open(url) as store:
        with (
            serve(create_app(settings, store=store), port) as base,
            httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
        ):
            for i in range(300):
                sid = SIGN if i % 3 else VIEW
                r = client.post(
                    f"/cds-services/{sid}",
                    json=minimal_sign_request(),
                    headers={"Authorization": f"Bearer not-a-token-{i}"},
                )
                assert r.status_code == 401
        assert store.count_invocations() == 0
        assert store.refusals() == {(SIGN, "unauthorized"): 200, (VIEW, "unauthorized"): 100}


def test_the_refusal_counter_writes_one_row_per_service_per_window() -> None:
    from legspasm.audit import Refusals
    from legspasm.service.refusals import RefusalCounter

    written: list[list[Refusals]] = []
    clock = [dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)]
    counter = RefusalCounter(
        lambda rows: written.append(list(rows)), window_s=60, now=lambda: clock[0]
    )
    for _ in range(5):
        counter.add("a")
    counter.add("b")
    clock[0] += dt.timedelta(seconds=59)
    counter.add("a")
    assert written == []  # the window is still open
    clock[0] += dt.timedelta(seconds=1)
    counter.add("a")  # a new window: the first one's counts are written
    assert [(r.service_id, r.count) for r in written[0]] == [("a", 6), ("b", 1)]
    counter.flush()
    assert [(r.service_id, r.count) for r in written[1]] == [("a", 1)]
    counter.flush()
    assert len(written) == 2


def test_the_host_header_does_not_choose_the_audience(live_secure: Live) -> None:
    """A token minted for another vendor's service, sent with ``Host:`` naming that service,
    is refused: the audience is the configured public URL."""
    other = "other-vendor.example:443"
    stolen = token(claims(f"http://{other}/cds-services/{SIGN}"))
    headers = {"Authorization": f"Bearer {stolen}", "Host": other}
    refused(post(live_secure, SIGN, minimal_sign_request(), headers=headers))


def test_an_oversized_body_is_413_before_it_is_read_or_authenticated(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text(json.dumps(JWKS))
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    settings = Settings(
        database_url=url,
        as_of=AS_OF,
        issuers=[Issuer(iss=ISS, jwks_file=tmp_path / "jwks.json")],
        link_secret=LINK_SECRET,
        public_url="http://127.0.0.1",
        max_upload_mb=0.5,
        max_body_mb=1,
    )
    big = b'{"hook": "order-sign", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    with AuditStore.open(url) as store:
        with (
            serve(create_app(settings, store=store)) as base,
            httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
        ):
            r = client.post(f"/cds-services/{SIGN}", content=big)  # no token: still 413, not 401
            check_outcome(r, 413, "larger than 1 MB")
            assert r.headers["cache-control"] == "no-store"

            def chunks(data: bytes) -> Iterator[bytes]:
                for i in range(0, len(data), 65536):
                    yield data[i : i + 65536]

            r = client.post(f"/cds-services/{SIGN}", content=chunks(big))  # chunked, undeclared
            check_outcome(r, 413, "larger than 1 MB")
            small = json.dumps(minimal_sign_request()).encode()
            r = client.post(f"/cds-services/{SIGN}", content=chunks(small))
            assert r.status_code == 401  # under the limit: on to authentication
        # refused before they were read: counted per service (written when the service stops)
        assert store.count_invocations() == 0
        assert store.refusals() == {(SIGN, "too-large"): 2, (SIGN, "unauthorized"): 1}


def test_a_token_replayed_after_a_restart_is_refused(tmp_path: Path) -> None:
    """The replay guard is in the audit database: a restarted service (or a second worker on
    the same database) still refuses a token it has seen."""
    (tmp_path / "jwks.json").write_text(json.dumps(JWKS))
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    port = free_port()
    settings = Settings(
        database_url=url,
        as_of=AS_OF,
        issuers=[Issuer(iss=ISS, jwks_file=tmp_path / "jwks.json")],
        link_secret=LINK_SECRET,
        public_url=f"http://127.0.0.1:{port}",
    )
    once = token(claims(f"http://127.0.0.1:{port}/cds-services/{SIGN}"))
    headers = {"Authorization": f"Bearer {once}"}
    statuses = []
    for _ in range(2):  # the service, then the service restarted on the same database
        with (
            AuditStore.open(url) as store,
            serve(create_app(settings, store=store), port) as base,
            httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
        ):
            r = client.post(f"/cds-services/{SIGN}", json=minimal_sign_request(), headers=headers)
            statuses.append(r.status_code)
    assert statuses == [200, 401]


def test_without_a_public_url_the_secure_service_does_not_start(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}",
        issuers=[Issuer(iss=ISS, jwks_file=tmp_path / "jwks.json")],
    )
    with pytest.raises(ConfigError) as err:
        create_app(settings)
    assert err.value.setting == "LEGSPASM_PUBLIC_URL"


@pytest.mark.parametrize(
    ("setting", "url", "starts"),
    [
        ("public_url", "http://cds.example.org", False),
        ("public_url", "https://cds.example.org", True),
        ("public_url", "http://127.0.0.1:8443", True),  # a TLS proxy on this machine
        ("web_url", "http://plans.example.org", False),
        ("web_url", "https://plans.example.org", True),
    ],
)
def test_card_links_are_https_unless_dev(
    tmp_path: Path, setting: str, url: str, starts: bool
) -> None:
    """Card links open patient data: the secure service refuses plain http for its public or
    web URL (naming the setting), except on the loopback interface; dev mode does not check."""
    values: dict[str, Any] = {"public_url": "https://cds.example", setting: url}
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}",
        issuers=[Issuer(iss=ISS, jwks_file=tmp_path / "jwks.json")],
        link_secret="x" * 32,
        **values,
    )
    if starts:
        create_app(settings)
    else:
        with pytest.raises(ConfigError) as err:
            create_app(settings)
        assert err.value.setting == f"LEGSPASM_{setting.upper()}"
        assert "https" in err.value.message
    create_app(Settings(dev=True, database_url=f"sqlite:///{tmp_path / 'd.sqlite3'}", **values))


def test_without_a_link_secret_the_secure_service_does_not_start(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}",
        issuers=[Issuer(iss=ISS, jwks_file=tmp_path / "jwks.json")],
        public_url="https://cds.example",
    )
    with pytest.raises(ConfigError) as err:
        create_app(settings)
    assert err.value.setting == "LEGSPASM_LINK_SECRET"


def test_jwt_feedback_needs_a_token_and_discovery_is_open(live_secure: Live) -> None:
    r = live_secure.client.get("/cds-services")
    assert r.status_code == 200
    assert len(r.json()["services"]) == 3
    feedback = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted"}]}
    url = f"/cds-services/{SIGN}/feedback"
    refused(live_secure.client.post(url, json=feedback))
    sign_aud = f"{live_secure.base}/cds-services/{SIGN}"
    wrong = {"Authorization": f"Bearer {token(claims(sign_aud))}"}  # the hook's, not feedback's
    refused(live_secure.client.post(url, json=feedback, headers=wrong))
    good = {"Authorization": f"Bearer {token(claims(live_secure.base + url), 'RS384')}"}
    r = live_secure.client.post(url, json=feedback, headers=good)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 1}


# --- 7. audit ----------------------------------------------------------------------------------


def _pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("LEGSPASM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LEGSPASM_REQUIRE_POSTGRES=1 but {PG_ENV} is not set")
        pytest.skip(f"{PG_ENV} is not set")
    return url


@pytest.fixture(scope="module")
def live_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Dev mode with the audit store in a fresh PostgreSQL schema (dropped afterwards)."""
    base_url = make_url(_pg_url())
    schema = f"legspasm_service_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = base_url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
        store = AuditStore.open(url)
        journal = tmp_path_factory.mktemp("journal")
        settings = Settings(dev=True, database_url=url, as_of=AS_OF, journal_dir=journal)
        try:
            with (
                serve(create_app(settings, store=store)) as base,
                httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
            ):
                yield Live(base, client, store, url)
        finally:
            store.close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def audited(request: pytest.FixtureRequest) -> Live:
    name = "live_dev" if request.param == "sqlite" else "live_postgres"
    live: Live = request.getfixturevalue(name)
    return live


def test_concurrent_invocations_are_each_audited(audited: Live) -> None:
    n = 60
    pid, prefetch = vignette_prefetch(STROKE)
    bodies = [
        cds_request("order-sign", pid, prefetch, [med_request(f"dzp-{i}", pid, DIAZEPAM, 5, 2)])
        for i in range(n)
    ]
    before = audited.store.count_invocations()

    def send(body: dict[str, Any]) -> tuple[int, list[str]]:
        with httpx.Client(base_url=audited.base, timeout=60, trust_env=False) as client:
            r = client.post(f"/cds-services/{SIGN}", json=body)
            return r.status_code, [c["uuid"] for c in r.json()["cards"]]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, bodies))
    assert [status for status, _ in results] == [200] * n
    assert audited.store.count_invocations() == before + n
    instances = {b["hookInstance"]: uuids for b, (_, uuids) in zip(bodies, results, strict=True)}
    rows = [r for r in audited.store.recent(limit=before + n) if r.hook_instance in instances]
    assert len(rows) == n
    for row in rows:
        assert row.status_code == 200
        assert row.outcome == "cards"
        assert (row.service_id, row.hook, row.patient_id) == (SIGN, "order-sign", pid)
        assert [c.uuid for c in row.cards] == instances[row.hook_instance]
        assert [(c.rule, c.indicator) for c in row.cards] == [("AV-BENZO-STROKE", "warning")]
        assert row.assessment is not None
        assert row.as_of == AS_OF


def test_killed_server_loses_no_acknowledged_invocation(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGSPASM_")}
    env["LEGSPASM_DATABASE_URL"] = url
    exe = Path(sys.executable).with_name("legspasm")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "serve", "--dev", "--port", str(port), "--as-of", AS_OF.isoformat()],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    k = 7
    try:
        with httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "legspasm serve did not start"
                time.sleep(0.1)
            pid, prefetch = vignette_prefetch(STROKE)
            for i in range(k):
                order = med_request(f"dzp-{i}", pid, DIAZEPAM, 5, 2)
                r = client.post(
                    f"/cds-services/{SIGN}", json=cds_request("order-sign", pid, prefetch, [order])
                )
                assert r.status_code == 200, r.text
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    with AuditStore.open(url, create=False) as store:
        # what the killed process had not yet moved from its journal is loaded now
        folder = default_directory(store.url)
        assert folder is not None
        recover(folder, store)
        assert store.count_invocations() == k
        rows = store.recent(limit=k + 1)
        assert [r.status_code for r in rows] == [200] * k
        assert all(r.cards and r.cards[0].rule == "AV-BENZO-STROKE" for r in rows)


# --- 8. feedback -------------------------------------------------------------------------------


def rates(store: AuditStore) -> dict[str, RuleRate]:
    return {r.rule: r for r in store.feedback_report()}


def test_feedback_is_stored_and_reported_per_rule(live_dev: Live) -> None:
    nlc, stroke = pid_of(NLC), pid_of(STROKE)
    quinine = one_warning(
        sign(live_dev, NLC, med_request("qn-1", nlc, QUININE, 324, 1)), "AV-QUININE"
    )
    benzo = one_warning(
        sign(live_dev, STROKE, med_request("dzp-1", stroke, DIAZEPAM, 5, 2)), "AV-BENZO-STROKE"
    )
    benzo2 = one_warning(
        sign(live_dev, STROKE, med_request("dzp-2", stroke, DIAZEPAM, 2, 1)), "AV-BENZO-STROKE"
    )
    before = rates(live_dev.store)
    reason = benzo["overrideReasons"][1]
    feedback = {
        "feedback": [
            {
                "card": quinine["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": quinine["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-21T10:15:00Z",
            },
            {
                "card": benzo["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason, "userComment": "short course, monitored"},
                "outcomeTimestamp": "2026-11-21T10:16:00+00:00",
            },
            {
                "card": benzo2["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason},
            },
        ]
    }
    r = live_dev.client.post(f"/cds-services/{SIGN}/feedback", json=feedback)
    assert r.status_code == 200, r.text
    assert r.json() == {"stored": 3}
    after = rates(live_dev.store)
    q0, q1 = before["AV-QUININE"], after["AV-QUININE"]
    assert (q1.accepted - q0.accepted, q1.overridden - q0.overridden) == (1, 0)
    assert q1.no_feedback == q0.no_feedback - 1
    b0, b1 = before["AV-BENZO-STROKE"], after["AV-BENZO-STROKE"]
    assert (b1.accepted - b0.accepted, b1.overridden - b0.overridden) == (0, 2)
    assert dict(b1.top_override_reasons)[reason["display"]] >= 2
    assert b1.cards_shown == b0.cards_shown  # feedback adds no cards


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param({"feedback": []}, "feedback", id="empty"),
        pytest.param({}, "feedback", id="missing"),
        pytest.param({"feedback": [{"card": "x", "outcome": "maybe"}]}, "outcome", id="outcome"),
        pytest.param({"feedback": [{"outcome": "accepted"}]}, "card", id="no-card"),
        pytest.param(
            {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "yesterday"}]},
            "outcomeTimestamp",
            id="timestamp",
        ),
        pytest.param(
            {"feedback": [{"card": "x", "outcome": "accepted", "acceptedSuggestions": "all"}]},
            "acceptedSuggestions",
            id="suggestions",
        ),
    ],
)
def test_malformed_feedback_is_400(live_dev: Live, body: Any, where: str) -> None:
    stored = live_dev.store.count_feedback()
    check_outcome(live_dev.client.post(f"/cds-services/{SIGN}/feedback", json=body), 400, where)
    assert live_dev.store.count_feedback() == stored


def test_feedback_not_json_and_unknown_service(live_dev: Live) -> None:
    check_outcome(live_dev.client.post(f"/cds-services/{SIGN}/feedback", content=b"{"), 400)
    feedback = {"feedback": [{"card": "x", "outcome": "accepted"}]}
    r = live_dev.client.post("/cds-services/no-such-service/feedback", json=feedback)
    check_outcome(r, 404, "no-such-service")


# --- 9. bad input ------------------------------------------------------------------------------


def test_bad_requests_are_400_operation_outcomes_and_audited(live_dev: Live) -> None:
    pid, prefetch = vignette_prefetch(NLC)
    good = cds_request("order-sign", pid, prefetch)
    not_bundle = cds_request("order-sign", pid, prefetch)
    not_bundle["context"]["draftOrders"] = "MedicationRequest/x"  # a bare resource is read as one

    entries_not_list = cds_request("order-sign", pid, prefetch)
    entries_not_list["context"]["draftOrders"]["entry"] = {"resource": {}}
    other_patient = cds_request("order-sign", "someone-else", prefetch)
    cases: list[tuple[str, dict[str, Any], bytes | None, tuple[str, ...]]] = [
        ("not-json", {}, b"{not json", ()),
        ("json-array", {}, b"[1, 2]", ()),
        ("missing-context", {k: v for k, v in good.items() if k != "context"}, None, ("context",)),
        ("context-not-object", {**good, "context": "x"}, None, ("context",)),
        ("missing-hook", {k: v for k, v in good.items() if k != "hook"}, None, ("hook",)),
        (
            "missing-hookInstance",
            {k: v for k, v in good.items() if k != "hookInstance"},
            None,
            ("hookInstance",),
        ),
        (
            "prefetch-not-object",
            {**good, "prefetch": {"patient": "Patient/1"}},
            None,
            ("prefetch",),
        ),
        ("draftOrders-not-bundle", not_bundle, None, ("context.draftOrders",)),
        ("draftOrders-entry", entries_not_list, None, ("context.draftOrders.entry",)),
        ("hook-of-another-service", {**good, "hook": "patient-view"}, None, ("hook",)),
        ("unknown-hook", {**good, "hook": "encounter-start"}, None, ("hook",)),
        ("other-patient", other_patient, None, ("prefetch", pid)),
    ]
    before = live_dev.store.count_invocations()
    for name, body, raw, where in cases:
        if raw is not None:
            r = live_dev.client.post(
                f"/cds-services/{SIGN}", content=raw, headers={"Content-Type": "application/json"}
            )
        else:
            r = post(live_dev, SIGN, body)
        assert r.status_code == 400, (name, r.status_code, r.text)
        out = check_outcome(r, 400, *where)
        if where:  # the field is named in OperationOutcome.issue.expression too
            expression = out["issue"][0]["expression"]
            assert any(e.startswith(where[0]) for e in expression), (name, expression)
    # 412: nothing prefetched and no FHIR server; and with one that is not http(s)
    missing = cds_request("patient-view", pid, None)
    out = check_outcome(post(live_dev, VIEW, missing), 412)
    assert out["issue"][0]["expression"] == [f"prefetch.{k}" for k in PREFETCH_KEYS]
    check_outcome(post(live_dev, VIEW, {**missing, "fhirServer": "file:///etc"}), 412, "http")
    audited = len(cases) + 2
    assert live_dev.store.count_invocations() == before + audited
    rows = live_dev.store.recent(limit=audited)
    assert sorted(r.status_code for r in rows) == [400] * len(cases) + [412, 412]
    assert {r.outcome for r in rows} == {"bad-request", "prefetch-unavailable"}
    assert all(r.error for r in rows)
    assert {r.service_id for r in rows} == {SIGN, VIEW}


def test_unknown_service_is_404(live_dev: Live) -> None:
    pid, prefetch = vignette_prefetch(NLC)
    before = live_dev.store.count_invocations()
    r = post(live_dev, "legspasm-nothing", cds_request("order-sign", pid, prefetch))
    check_outcome(r, 404, "legspasm-nothing")
    assert live_dev.client.get("/nowhere").status_code == 404
    assert live_dev.store.count_invocations() == before


def test_null_prefetch_means_no_data(live_dev: Live) -> None:
    prefetch = dict.fromkeys(PREFETCH_KEYS)
    body = cds_request("order-sign", "p-null", prefetch, [med_request("q", "p-null", QUININE)])
    cards = cards_for(live_dev, SIGN, body)
    one_warning(cards, "AV-QUININE")  # shown always: needs no patient data
    assert cards_for(live_dev, VIEW, cds_request("patient-view", "p-null", prefetch)) == []


def test_service_ids_match_the_hooks_module() -> None:
    assert {s.id: s.hook for s in SERVICES.values()} == {
        VIEW: "patient-view",
        SELECT: "order-select",
        SIGN: "order-sign",
    }


# --- the plan link is a capability -------------------------------------------------------------


def test_the_plan_link_is_a_signed_expiring_capability(live_secure: Live) -> None:
    """Secure mode (web pages off): the card link opens its plan, and its print view and PDFs;
    the address without the token, a token altered, one for another plan or one past its time
    opens nothing."""
    from legspasm.capability import sign_token

    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    aud = f"{live_secure.base}/cds-services/{VIEW}"
    r = post(
        live_secure,
        VIEW,
        cds_request("patient-view", pid, prefetch),
        headers={"Authorization": f"Bearer {token(claims(aud))}"},
    )
    assert r.status_code == 200, r.text
    [link] = r.json()["cards"][0]["links"]
    m = re.fullmatch(
        re.escape(live_secure.base) + r"/plan/([0-9a-f-]{36})\?t=(\d+)\.([\w-]{43})", link["url"]
    )
    assert m, link["url"]
    inv, expires, _ = m.groups()
    assert 11.9 * 3600 < int(expires) - time.time() <= 12 * 3600  # plan_link_hours
    t = f"t={expires}.{m.group(3)}"
    get = live_secure.client.get
    page = get(f"/plan/{inv}?{t}")
    assert page.status_code == 200
    assert "Restless legs syndrome" in page.text
    # the page's own links carry the token on
    assert f'href="/assessments/{inv}/handout.pdf?{t}"' in page.text
    assert get(f"/assessments/{inv}/handout.pdf?{t}").headers["content-type"] == "application/pdf"
    assert get(f"/assessments/{inv}/print?{t}").status_code == 200
    other = str(uuid.uuid4())
    forged = sign_token(b"another key, not the server's secret", inv, int(expires))
    for path in (
        f"/plan/{inv}",  # the address alone
        f"/assessments/{inv}",
        f"/assessments/{inv}/handout.pdf",
        f"/assessments/{inv}/print",
        f"/plan/{inv}?t={int(expires) + 3600}.{m.group(3)}",  # expiry moved
        f"/plan/{inv}?t={forged}",
        f"/plan/{other}?{t}",  # another plan's token
        f"/plan/{inv}?t=%F0%9F%92%A9.x",
    ):
        refused_page = get(path)
        assert refused_page.status_code == 403, path
        assert "does not open a plan" in refused_page.text
        assert "Restless" not in refused_page.text
    past = sign_token(LINK_SECRET.encode(), inv, int(time.time()) - 1)
    gone = get(f"/plan/{inv}?t={past}")
    assert gone.status_code == 410
    assert "expired" in gone.text
    assert gone.headers["cache-control"] == "no-store"


def test_an_invocation_that_fails_unexpectedly_has_its_audit_row(tmp_path: Path) -> None:
    """A clock that fails stands in for any unexpected error: a 500 OperationOutcome, no
    traceback to the caller, and the failed invocation is in the audit store."""

    def broken_clock() -> dt.date:
        raise RuntimeError("the clock is broken")

    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    with AuditStore.open(url) as store:
        app = create_app(Settings(dev=True, database_url=url), store=store, today=broken_clock)
        with (
            serve(app) as base,
            httpx.Client(base_url=base, timeout=30, trust_env=False) as client,
        ):
            r = client.post(f"/cds-services/{SIGN}", json=minimal_sign_request())
            check_outcome(r, 500, "internal error")
            assert "clock" not in r.text
        [row] = store.recent(limit=5)
        assert (row.status_code, row.outcome, row.service_id) == (500, "error", SIGN)
        assert row.error is not None
        assert "the clock is broken" in row.error


# --- required context (CDS Hooks 2.0: each hook's REQUIRED context fields) -----------------------

_SERVICE_OF = {
    "patient-view": "legspasm-patient-view",
    "order-select": "legspasm-order-select",
    "order-sign": SIGN,
}


@pytest.mark.parametrize(
    ("hook", "drop"),
    [
        ("patient-view", "patientId"),
        ("order-select", "patientId"),
        ("order-select", "selections"),
        ("order-select", "draftOrders"),
        ("order-sign", "patientId"),
        ("order-sign", "draftOrders"),
    ],
)
def test_a_context_without_a_required_field_is_400_naming_it(
    live_dev: Live, hook: str, drop: str
) -> None:
    """The complete request answers 200; without one REQUIRED field it is a 400 OperationOutcome
    naming context.<field>, never a silent 200 with no cards (review, section 2)."""
    pid, prefetch = vignette_prefetch("rls-low-ferritin-crcl-25")
    extra = {"context": {"selections": []}} if hook == "order-select" else {}
    body = cds_request(hook, pid, prefetch, **extra)
    assert post(live_dev, _SERVICE_OF[hook], body).status_code == 200
    del body["context"][drop]
    r = post(live_dev, _SERVICE_OF[hook], body)
    check_outcome(r, 400, f"context.{drop}")


def test_an_empty_patient_id_is_400(live_dev: Live) -> None:
    pid, prefetch = vignette_prefetch("rls-low-ferritin-crcl-25")
    body = cds_request("patient-view", pid, prefetch)
    body["context"]["patientId"] = "  "
    check_outcome(post(live_dev, "legspasm-patient-view", body), 400, "context.patientId")


def test_prefetch_is_bounded_and_lab_reads_look_back_as_far_as_the_labs_are_used(
    live_dev: Live, fhir: FhirServer, kb: Knowledge
) -> None:
    """Every prefetch template is bounded (_count; observations newest first); legspasm's own
    reads ask for observations no older than the longest lab max_age_days, so a ferritin from
    before the look-back is not used (and the RLS iron step asks for one)."""
    from legspasm.service.hooks import PAGE_SIZE, lookback_days, prefetch_templates

    templates = prefetch_templates(kb)
    meds = {"medicationRequests", "medicationStatements", "medicationDispenses"}
    assert all("_count=" in q for k, q in templates.items() if k not in {"patient", *meds})
    # not cut: how long a medicine has been taken comes from its earliest record
    assert not any("_count=" in templates[k] or "date=" in templates[k] for k in meds)
    assert "_sort=-date" in templates["observations"]
    assert f"_count={PAGE_SIZE}" in templates["observations"]
    days = lookback_days(kb)
    assert days == max(lab.max_age_days for lab in kb.labs.values())
    pid, resources = vignette_resources(RLS_LOW_FERRITIN)
    since = AS_OF - dt.timedelta(days=days)

    def ferritin_on(day: dt.date) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": f"ferritin-{day.isoformat()}",
            "status": "final",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]},
            "effectiveDateTime": day.isoformat(),
            "valueQuantity": {"value": 20, "unit": "ng/mL"},
        }

    others = [
        r for r in resources if not (r.get("resourceType") == "Observation" and "2276-4" in str(r))
    ]
    body = cds_request("patient-view", pid, None, fhirServer=fhir.url)
    used = {}
    for label, day in (("inside", since), ("outside", since - dt.timedelta(days=1))):
        fhir.resources = [*others, ferritin_on(day)]
        fhir.requests = []
        post(live_dev, "legspasm-patient-view", body).raise_for_status()
        obs = [p for p in fhir.requests if p.startswith("/fhir/Observation")]
        assert obs
        assert f"date=ge{since.isoformat()}" in obs[0]
        rows = live_dev.store.recent(limit=1, patient_id=pid)
        used[label] = json.dumps(rows[0].assessment)
    assert f"ferritin-{since.isoformat()}" in used["inside"]
    assert f"ferritin-{(since - dt.timedelta(days=1)).isoformat()}" not in used["outside"]
