"""Every published CDS Hooks request example in /work/shared/data, sent to the live service.

The examples come from the CDS Hooks specification and documentation, the HL7 PDDI CDS guide and
the CDC Opioid CDS guide; any other JSON object under the shared data with ``hook`` and
``context`` keys is included too. Each is sent to the service answering its hook (a hook no
service answers goes to legspasm-order-sign and must be refused naming ``hook``). Their
``fhirServer`` names servers that are unreachable here, so it is replaced by a real local FHIR
server holding the example's own prefetch resources plus the context Patient: our prefetch keys,
which the examples never use, are then fetched for real. The answer must be 200 with spec-valid
cards, never a 5xx; the few examples that are legitimately refused are listed below with the
reason, and the list must match exactly. Skipped when the shared data are absent.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from legspasm.audit import AuditStore
from legspasm.server import create_app
from legspasm.settings import Settings
from live_server import FhirServer, serve
from test_service import AS_OF, PREFETCH_KEYS, SIGN, check_cards, check_outcome

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SERVICE_OF_HOOK = {
    "patient-view": "legspasm-patient-view",
    "order-select": "legspasm-order-select",
    "order-sign": SIGN,
    "medication-prescribe": SIGN,  # the deprecated hook order-sign still accepts
}

# Examples the service refuses, with why. Older shapes are read, not refused: prefetch values in
# a pre-1.0 envelope ({"response": ..., "resource": ...}), draft orders as one resource or as an
# array (CDS Hooks 0.x). Kind "no-patient": the context has no patientId, which every hook's
# specification requires: 400 naming context.patientId, whatever the prefetch.
REFUSED = {
    # a patient-view context with only userId
    "cds-hooks-spec-examples/requests/hl7-cds-hooks__index__38__patient-view.json": "no-patient",
}
# The answer expected, per kind, when the example is sent (a) with the local FHIR server,
# (b) with no fhirServer, (c) with all our prefetch keys added as null.
EXPECTED = {
    "no-patient": {
        "fhir": (400, "context.patientId"),
        "none": (400, "context.patientId"),
        "null": (400, "context.patientId"),
    },
    "ok": {"fhir": (200, ""), "none": (412, "prefetch.patient"), "null": (200, "")},
    # a hook no legspasm service answers, sent to legspasm-order-sign (none in the data today)
    "other-hook": {"fhir": (400, "hook"), "none": (400, "hook"), "null": (400, "hook")},
}


def _examples() -> list[Path]:
    """Every JSON file under the shared data that is an object with ``hook`` and ``context``."""
    if not SHARED.is_dir():
        return []
    found = []
    for path in sorted(SHARED.rglob("*.json")):
        raw = path.read_bytes()
        if b'"hook"' not in raw or b'"context"' not in raw:  # cheap pre-filter (53 MB of JSON)
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict) and "hook" in data and "context" in data:
            found.append(path)
    return found


EXAMPLES = _examples()
NAMES = [p.relative_to(SHARED).as_posix() for p in EXAMPLES]
PARAMS = [pytest.param(n, id=n) for n in NAMES] or [
    pytest.param(None, marks=pytest.mark.skip(reason=f"shared data not present: {SHARED}"))
]


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SHARED / name).read_text(encoding="utf-8"))
    return data


def _resources(value: Any) -> list[dict[str, Any]]:
    """The FHIR resources in one prefetch value (a Bundle, a resource, or an entry envelope)."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        return [r for e in value.get("entry") or [] for r in _resources(e)]
    if "resourceType" in value:
        return [value]
    return _resources(value.get("resource"))


def _patient_id(example: dict[str, Any]) -> str | None:
    pid = example["context"].get("patientId")
    return pid.removeprefix("Patient/") if isinstance(pid, str) else None


def _service(example: dict[str, Any]) -> str:
    return SERVICE_OF_HOOK.get(example["hook"], SIGN)


def _kind(name: str, example: dict[str, Any]) -> str:
    if example["hook"] not in SERVICE_OF_HOOK:
        return "other-hook"
    return REFUSED.get(name, "ok")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, AuditStore]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('examples') / 'audit.sqlite3'}"
    store = AuditStore.open(url)
    app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), store=store)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30, trust_env=False) as client:
        yield client, store
    store.close()


@pytest.fixture(scope="module")
def fhir_shared() -> Iterator[FhirServer]:
    with FhirServer() as server:
        yield server


@pytest.fixture
def fhir(fhir_shared: FhirServer) -> FhirServer:
    fhir_shared.resources, fhir_shared.requests, fhir_shared.authorizations = [], [], []
    return fhir_shared


def test_examples_found() -> None:
    if not EXAMPLES:
        pytest.skip(f"shared data not present: {SHARED}")
    assert set(REFUSED) <= set(NAMES), sorted(set(REFUSED) - set(NAMES))
    hooks = {_load(n)["hook"] for n in NAMES}
    assert {"patient-view", "order-select", "order-sign", "medication-prescribe"} <= hooks
    for folder in ("cds-hooks-spec-examples", "hl7-pddi-cds", "cdc-opioid-cds-r4"):
        assert any(n.startswith(folder + "/requests/") for n in NAMES), folder


def _check(r: httpx.Response, expected: tuple[int, str]) -> None:
    status, where = expected
    assert r.status_code < 500, r.text
    assert r.status_code != 422
    if status == 200:
        assert r.status_code == 200, r.text
        check_cards(r.json())
    else:
        check_outcome(r, status, where)


@pytest.mark.parametrize("name", PARAMS)
def test_example_with_a_local_fhir_server(
    live: tuple[httpx.Client, AuditStore], fhir: FhirServer, name: str
) -> None:
    client, store = live
    example = _load(name)
    resources: list[Mapping[str, Any]] = [
        r for v in (example.get("prefetch") or {}).values() for r in _resources(v)
    ]
    pid = _patient_id(example)
    if pid and not any(r["resourceType"] == "Patient" and r.get("id") == pid for r in resources):
        resources.append({"resourceType": "Patient", "id": pid})
    fhir.resources = resources
    body = {**copy.deepcopy(example), "fhirServer": fhir.url}
    before = store.count_invocations()
    r = client.post(f"/cds-services/{_service(example)}", json=body)
    kind = _kind(name, example)
    _check(r, EXPECTED[kind]["fhir"])
    if kind in ("ok", "envelope"):  # every one of our keys was absent, so all were fetched
        fetched = {p.split("?")[0].split("/")[2] for p in fhir.requests}
        assert fetched == {
            "Patient",
            "Condition",
            "MedicationRequest",
            "MedicationStatement",
            "MedicationDispense",
            "Observation",
            "AllergyIntolerance",
            "QuestionnaireResponse",
        }
    assert store.count_invocations() == before + 1  # refusals are audited too
    assert store.recent(limit=1)[0].status_code == r.status_code


@pytest.mark.parametrize("name", PARAMS)
def test_example_without_fhir_server_is_412_naming_the_keys(
    live: tuple[httpx.Client, AuditStore], name: str
) -> None:
    client, _ = live
    example = _load(name)
    body = {k: v for k, v in copy.deepcopy(example).items() if k != "fhirServer"}
    r = client.post(f"/cds-services/{_service(example)}", json=body)
    expected = EXPECTED[_kind(name, example)]["none"]
    _check(r, expected)
    if expected[0] == 412:
        assert r.json()["issue"][0]["expression"] == [f"prefetch.{k}" for k in PREFETCH_KEYS]


@pytest.mark.parametrize("name", PARAMS)
def test_example_with_our_keys_null_needs_no_fetch(
    live: tuple[httpx.Client, AuditStore], name: str
) -> None:
    client, _ = live
    example = copy.deepcopy(_load(name))
    example["prefetch"] = {**dict.fromkeys(PREFETCH_KEYS), **(example.get("prefetch") or {})}
    example.pop("fhirServer", None)  # nothing may be fetched: null means "no data"
    r = client.post(f"/cds-services/{_service(example)}", json=example)
    _check(r, EXPECTED[_kind(name, example)]["null"])


@pytest.mark.parametrize("hook", ["encounter-start", "appointment-book", "order-review"])
def test_an_example_for_a_hook_no_service_answers_is_400_naming_hook(
    live: tuple[httpx.Client, AuditStore], hook: str
) -> None:
    if not EXAMPLES:
        pytest.skip(f"shared data not present: {SHARED}")
    client, _ = live
    name = "cds-hooks-spec-examples/requests/hl7-cds-hooks__index__07__order-sign.json"
    example = {**_load(name), "hook": hook}
    example["prefetch"] = {**dict.fromkeys(PREFETCH_KEYS), **example["prefetch"]}
    out = check_outcome(client.post(f"/cds-services/{SIGN}", json=example), 400, hook)
    assert out["issue"][0]["expression"] == ["hook"]
