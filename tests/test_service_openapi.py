"""Schemathesis over the live CDS Hooks service: no generated request may cause a 5xx.

The app runs under uvicorn on a loopback port (tests/live_server.py) and the schema is read from
the server's own ``/openapi.json`` with ``schemathesis.openapi.from_url``, so every case travels
the path a real EHR's request takes. Cases come from each operation's Hypothesis strategy
(``APIOperation.as_strategy``), positive (fits the schema) and negative (does not), and are sent
with ``case.call_and_validate(..., checks=[not_a_server_error])``.

Why not ``@schema.parametrize()``: the schema only exists once the server is up, so it would
need ``schemathesis.pytest.from_fixture``, whose lazy runner sets ``request.node._nodeid``, an
attribute pytest 9.2 no longer has (AttributeError with schemathesis 4.32.5). The operations are
therefore listed here and parametrized by pytest; ``test_schema_operations`` fails when the
service gains or loses one, so a new endpoint cannot escape this test.

Besides every operation as the schema describes it (random service ids and hooks: mostly 404
and 400 answers), each real service gets generated bodies whose ``hook`` is the one it serves,
so the random ``context`` and ``prefetch`` reach prefetch gathering, FHIR mapping and the
engine; there, every call must also leave exactly one audit row. Schemathesis' random objects
rarely look like FHIR, though, so a third test sends the golden vignettes as prefetch with a
few values damaged by Hypothesis: that is what found the 500s kept as regressions below.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from conftest import every_card_every_time
from legspasm.audit import AuditStore
from legspasm.fhir.intake import read_answers
from legspasm.server import create_app
from legspasm.service.hooks import PREFETCH_KEY_OF_TYPE, SERVICES
from legspasm.settings import Settings
from live_server import serve

AS_OF = dt.date(2026, 11, 21)
# Per operation and generation mode; FUZZ_EXAMPLES=1000 for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
OPERATIONS = (
    "GET /healthz",
    "GET /cds-services",
    "POST /cds-services/{service_id}",
    "POST /cds-services/{service_id}/feedback",
    "GET /plan/{invocation_id}",
)
VIGNETTES = Path(__file__).parent / "vignettes"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DRAFTS = [("pramipexole", "746741"), ("gabapentin", "25480"), ("cyclobenzaprine", "21949")]
PREFETCH_KEYS = PREFETCH_KEY_OF_TYPE
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Negative cases exist only where the schema constrains something a client controls: the
# request bodies. (Without parameters there is one possible request; a free string path
# parameter has no invalid value, so Hypothesis would report the negative mode unsatisfiable.)
CASES = [
    pytest.param(label, mode, id=f"{label}-{mode}")
    for label in OPERATIONS
    for mode in (MODES if label.startswith("POST") else MODES[:1])
]


def _settings() -> settings:
    return settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,  # real HTTP and the engine: timing varies with the machine
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,  # no .hypothesis/ directory from this file
    )


@dataclass(frozen=True)
class Live:
    base: str
    database_url: str
    schema: Any  # schemathesis' OpenApiSchema, read from the live server
    http: httpx.Client  # keep-alive, base_url set


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'audit.sqlite3'}"
    # The same example patient is sent again and again: every card every time.
    kb = every_card_every_time()
    app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), kb=kb)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        yield Live(base, url, schemathesis.openapi.from_url(base + "/openapi.json"), http)


def _operation(live: Live, label: str) -> Any:
    method, path = label.split(" ", 1)
    return live.schema[path][method]


def _audited(live: Live) -> int:
    with AuditStore.open(live.database_url) as store:
        return store.count_invocations()


def test_schema_operations(live: Live) -> None:
    labels = {r.ok().label for r in live.schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_no_server_error(live: Live, label: str, mode: GenerationMode) -> None:
    operation = _operation(live, label)
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @_settings()
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(base_url=live.base, checks=[not_a_server_error])

    run()
    # Generation did not silently give up (an operation without parameters has one request).
    assert calls >= (MAX_EXAMPLES // 2 if "{" in label else 1)


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("service_id", sorted(SERVICES))
def test_services_no_server_error_and_every_call_audited(
    live: Live, service_id: str, mode: GenerationMode
) -> None:
    strategy = _operation(live, "POST /cds-services/{service_id}").as_strategy(
        generation_mode=mode, path_parameters={"service_id": service_id}
    )
    hook = SERVICES[service_id].hook
    calls = 0
    before = _audited(live)

    @given(case=strategy, complete=st.booleans())
    @_settings()
    def run(case: Any, complete: bool) -> None:
        nonlocal calls
        if isinstance(case.body, dict):
            case.body = {**case.body, "hook": hook}
            prefetch = case.body.get("prefetch")
            if complete and (prefetch is None or isinstance(prefetch, dict)):
                # Every key the service asks for (null: no data), or it answers 412 before
                # reading any of the generated values.
                case.body["prefetch"] = {
                    **dict.fromkeys(PREFETCH_KEYS.values()),
                    **(prefetch or {}),
                }
        calls += 1
        case.call_and_validate(base_url=live.base, checks=[not_a_server_error])

    run()
    assert calls >= MAX_EXAMPLES // 2
    assert _audited(live) - before == calls  # refusals are audited too


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_feedback_no_server_error(live: Live, mode: GenerationMode) -> None:
    """Feedback to a real service (the schema's random service ids only ever get a 404).
    One service: the feedback endpoint does not depend on which."""
    strategy = _operation(live, "POST /cds-services/{service_id}/feedback").as_strategy(
        generation_mode=mode, path_parameters={"service_id": "legspasm-order-sign"}
    )
    before = _audited(live)

    @given(case=strategy)
    @_settings()
    def run(case: Any) -> None:
        case.call_and_validate(base_url=live.base, checks=[not_a_server_error])

    run()
    assert _audited(live) == before  # feedback is not an invocation


# --- regressions: 5xx and audit gaps found by fuzzing this service -------------------------


@functools.cache
def _vignette(name: str) -> tuple[str, str]:
    """The patient id and the resources (JSON text) of a vignette, with Patient/<id> refs."""
    bundle = json.loads((VIGNETTES / name / "bundle.json").read_text())
    resources = [e["resource"] for e in bundle["entry"]]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    # An EHR refers to its patient as Patient/<id>, not by the bundle's urn:uuid.
    return pid, json.dumps(resources).replace(f"urn:uuid:{pid}", f"Patient/{pid}")


def _vignette_request(name: str, hook: str) -> dict[str, Any]:
    """A vignette as an EHR would prefetch it: the Patient, searchset Bundles, nulls."""
    pid, text = _vignette(name)
    resources = json.loads(text)  # a fresh copy: callers damage it
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_KEYS.values())
    for r in resources:
        key = PREFETCH_KEYS[r["resourceType"]]
        if key == "patient":
            prefetch[key] = r
        else:
            prefetch[key] = prefetch[key] or {"resourceType": "Bundle", "type": "searchset"}
            prefetch[key].setdefault("entry", []).append({"resource": r})
    context: dict[str, Any] = {"patientId": pid, "userId": "Practitioner/1"}
    if hook != "patient-view":
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": _draft(pid, drug, code)} for drug, code in DRAFTS],
        }
    return {"hook": hook, "hookInstance": "regression", "context": context, "prefetch": prefetch}


def _draft(pid: str, drug: str, rxnorm: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{drug}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxnorm, "display": drug}],
            "text": drug,
        },
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": AS_OF.isoformat(),
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "mg", "code": "mg"}}],
            }
        ],
    }


def _rls_request(hook: str = "patient-view") -> dict[str, Any]:
    return _vignette_request("rls-low-ferritin-crcl-25", hook)


def _intake(req: dict[str, Any]) -> dict[str, Any]:
    qr: dict[str, Any] = req["prefetch"]["intake"]["entry"][0]["resource"]
    return qr


def _bad_item(qr: dict[str, Any]) -> None:
    qr["item"].insert(0, 1.5)


def _bad_link_id(qr: dict[str, Any]) -> None:
    qr["item"].insert(0, {"linkId": 7, "item": []})


def _bad_answer_list(qr: dict[str, Any]) -> None:
    qr["item"].append({"linkId": "not-an-intake-item", "answer": {"valueBoolean": True}})


def _bad_nested_items(qr: dict[str, Any]) -> None:
    patient = next(i for i in qr["item"] if i["linkId"] == "patient")
    patient["item"] = {"linkId": "patient.dialysis"}


@pytest.mark.parametrize(
    ("damage", "rls_still_read"),
    [
        # A non-object in an item array: that array is skipped (reported), so here all of it.
        (_bad_item, False),
        (_bad_link_id, True),
        (_bad_answer_list, True),
        (_bad_nested_items, True),
    ],
    ids=lambda v: v.__name__ if callable(v) else str(v),
)
def test_malformed_intake_items_are_skipped_not_a_500(
    live: Live, damage: Any, rls_still_read: bool
) -> None:
    """Was HTTP 500 (fhir.elements.Malformed escaped read_answers): now the bad item is
    reported as a problem and skipped, and the rest of the intake still read."""
    req = _rls_request()
    damage(_intake(req))
    before = _audited(live)
    r = live.http.post("/cds-services/legspasm-patient-view", json=req)
    assert r.status_code == 200, r.text
    rls = any("Restless legs syndrome" in c["summary"] for c in r.json()["cards"])
    assert rls is rls_still_read
    assert _audited(live) - before == 1


def test_malformed_intake_answers_are_reported_as_problems() -> None:
    answers = read_answers({"resourceType": "QuestionnaireResponse", "item": [1.5]}, "QR")
    assert answers.values == {}
    assert [where for where, _ in answers.problems] == ["QR.item[0]"]


@pytest.mark.parametrize("where", ["prefetch", "draftOrders"])
@pytest.mark.parametrize("bundle_type", [{"code": "searchset"}, ["collection"]], ids=str)
def test_bundle_type_not_a_string_is_a_400(live: Live, where: str, bundle_type: Any) -> None:
    """Was HTTP 500 (TypeError: unhashable type, from ``type in BUNDLE_TYPES``)."""
    req = _rls_request("order-sign")
    if where == "prefetch":
        req["prefetch"]["observations"]["type"] = bundle_type
    else:
        req["context"]["draftOrders"] = {"resourceType": "Bundle", "type": bundle_type}
    before = _audited(live)
    r = live.http.post("/cds-services/legspasm-order-sign", json=req)
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert _audited(live) - before == 1


def test_unparseable_body_is_a_400_and_audited(live: Live) -> None:
    """A body that is not UTF-8 was answered 400 but left no audit row."""
    before = _audited(live)
    r = live.http.post(
        "/cds-services/legspasm-patient-view",
        content=b"\xe7\x87\xe1~\x9d",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"
    assert _audited(live) - before == 1


# Values a broken EHR might send where the vignettes have real ones.
JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities too: Starlette's JSON parser accepts them
    | st.text(max_size=8)
    | st.sampled_from(["2026-13-45", "Patient/other", "mg", "746741"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["value", "unit", "code", "system", "reference", "item", "answer"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


@pytest.mark.parametrize("service_id", sorted(SERVICES))
def test_damaged_vignettes_no_server_error_and_every_call_audited(
    live: Live, service_id: str
) -> None:
    """Real prefetch data with a few values replaced or deleted: 2xx or 4xx, never 5xx.

    Schemathesis' random ``context`` and ``prefetch`` objects rarely look like FHIR, so they stop
    at the first check; damaged real resources reach every reader. (This found the 500s above.)
    """
    hook = SERVICES[service_id].hook
    names = sorted(p.parent.name for p in VIGNETTES.glob("*/bundle.json"))
    calls = 0
    before = _audited(live)

    @given(data=st.data())
    @settings(
        max_examples=3 * MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    def run(data: st.DataObject) -> None:
        nonlocal calls
        req = _vignette_request(data.draw(st.sampled_from(names), label="vignette"), hook)
        for _ in range(data.draw(st.integers(1, 6), label="damages")):
            # Anything inside context and prefetch (not those two themselves).
            paths = [p for p in _paths(req) if p[0] in ("context", "prefetch") and len(p) > 1]
            *parents, key = data.draw(st.sampled_from(paths), label="path")
            node: Any = req
            for p in parents:
                node = node[p]
            if isinstance(node, dict) and data.draw(st.booleans(), label="delete"):
                del node[key]
            else:
                node[key] = data.draw(JUNK, label="value")
        calls += 1
        r = live.http.post(
            f"/cds-services/{service_id}",
            content=json.dumps(req, allow_nan=True),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert r.status_code < 500, r.text[:500]

    run()
    assert _audited(live) - before == calls


def test_live_schema_is_the_apps(live: Live) -> None:
    """The schema under test is the one the server serves (not a stale copy)."""
    served = live.http.get("/openapi.json").json()
    assert served["info"]["title"] == "legspasm CDS Hooks service"
    assert set(served["paths"]) == {label.split(" ", 1)[1] for label in OPERATIONS}
