"""SMART App Launch of the web page, end to end against a local FHIR and authorization server
(tests/smart_server.py): the EHR launch with PKCE, the record read with the access token and
assessed, the card's own assessment opened through its appContext, and every way a launch is
refused (an issuer not on the allowlist, no or forged state, a refused authorization)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from legspasm.audit import AuditStore
from legspasm.server import create_app
from legspasm.settings import Settings
from live_server import serve
from smart_server import SmartServer

AS_OF = dt.date(2026, 11, 21)
VIGNETTES = Path(__file__).parent / "vignettes"
CLIENT = "legspasm-test"


def _resources(vignette: str) -> tuple[str, list[dict[str, Any]]]:
    bundle = json.loads((VIGNETTES / vignette / "bundle.json").read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    raw = json.dumps(resources).replace(f"urn:uuid:{pid}", f"Patient/{pid}")
    return pid, json.loads(raw)


@dataclass
class Env:
    base: str
    smart: SmartServer
    store: AuditStore
    pid: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    pid, resources = _resources("rls-low-ferritin-crcl-25")
    url = f"sqlite:///{tmp_path_factory.mktemp('smart') / 'audit.sqlite3'}"
    with SmartServer(resources, CLIENT, redirect_uri="") as smart, AuditStore.open(url) as store:
        settings = Settings(
            dev=True,
            database_url=url,
            as_of=AS_OF,
            smart_client_id=CLIENT,
            smart_issuers=[smart.iss],
        )
        with serve(create_app(settings, store=store)) as base:
            smart.redirect_uri = f"{base}/smart/callback"
            yield Env(base, smart, store, pid)


def browser(env: Env) -> httpx.Client:
    """A browser: follows redirects across the two servers, keeps cookies."""
    return httpx.Client(base_url=env.base, follow_redirects=True, timeout=30, trust_env=False)


def test_an_ehr_launch_reads_the_record_with_the_token_and_shows_its_plan(env: Env) -> None:
    env.smart.launches["L1"] = {"patient": env.pid}
    env.smart.fhir_requests.clear()
    with browser(env) as b:
        r = b.get("/smart/launch", params={"iss": env.smart.iss, "launch": "L1"})
    assert r.status_code == 200, r.text
    assert re.search(r"/assessments/[0-9a-f-]{36}$", str(r.url))
    assert "Bottom line" in r.text
    assert "Restless legs syndrome" in r.text
    # The record came from the FHIR server, read with the issued token (it refuses any other),
    # with the bounded queries; observations only as far back as labs are used.
    reads = env.smart.fhir_requests
    assert any(p.startswith(f"/fhir/Patient/{env.pid}") for p in reads)
    obs = [p for p in reads if p.startswith("/fhir/Observation")]
    assert obs
    assert "date=ge" in obs[0]
    assert env.smart.refusals == []
    inv = env.store.invocation(str(r.url).rsplit("/", 1)[-1])
    assert inv is not None
    assert inv.patient_id == env.pid
    assert inv.hook == "smart-launch"
    # The token is used once and kept nowhere.
    for token in env.smart.tokens:
        assert token not in json.dumps(inv.assessment)
        assert token not in (inv.label or "")


def test_a_card_smart_link_opens_the_cards_own_assessment(env: Env) -> None:
    """patient-view offers a smart link whose appContext is its invocation; launched with it,
    the page opens that assessment rather than a new one."""
    pid, resources = env.pid, env.smart.fhir.resources
    body = {
        "hook": "patient-view",
        "hookInstance": "8c3e0f4e-8a55-4c8a-9f44-3c1d8d0f6a11",
        "context": {"userId": "Practitioner/1", "patientId": pid},
        "prefetch": {"patient": next(r for r in resources if r["resourceType"] == "Patient")},
        "fhirServer": env.smart.iss,
    }
    env.smart.tokens.add("cds-token")
    body["fhirAuthorization"] = {
        "access_token": "cds-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": CLIENT,
    }
    r = httpx.post(f"{env.base}/cds-services/legspasm-patient-view", json=body, timeout=30)
    assert r.status_code == 200, r.text
    links = [link for card in r.json()["cards"] for link in card.get("links", [])]
    smart_links = [link for link in links if link["type"] == "smart"]
    assert smart_links
    assert smart_links[0]["url"] == f"{env.base}/smart/launch"
    invocation = smart_links[0]["appContext"]
    env.smart.launches["L2"] = {"patient": pid, "appContext": invocation}
    with browser(env) as b:
        page = b.get(smart_links[0]["url"], params={"iss": env.smart.iss, "launch": "L2"})
    assert page.status_code == 200
    assert str(page.url).endswith(f"/assessments/{invocation}")


def test_an_issuer_not_on_the_allowlist_is_refused_without_contacting_it(env: Env) -> None:
    with browser(env) as b:
        r = b.get("/smart/launch", params={"iss": "http://127.0.0.1:9/fhir", "launch": "x"})
    assert r.status_code == 400
    assert "not a FHIR server this legspasm is set up to trust" in r.text


@pytest.mark.parametrize("tamper", ["no-cookie", "forged-cookie", "other-state"])
def test_a_callback_without_this_browsers_state_is_refused(env: Env, tamper: str) -> None:
    env.smart.launches["L3"] = {"patient": env.pid}
    with browser(env) as b:
        first = b.get(
            "/smart/launch",
            params={"iss": env.smart.iss, "launch": "L3"},
            follow_redirects=False,
        )
        assert first.status_code == 302
        to_auth = b.get(first.headers["location"], follow_redirects=False)
        callback = httpx.URL(to_auth.headers["location"])
        params = dict(callback.params)
        if tamper == "no-cookie":
            b.cookies.clear()
        elif tamper == "forged-cookie":
            value = b.cookies.get("legspasm_smart", path="/smart") or ""
            b.cookies.clear()
            b.cookies.set("legspasm_smart", "x" + value, path="/smart")
        else:
            params["state"] = "not-the-state"
        r = b.get("/smart/callback", params=params)
    assert r.status_code == 400
    assert "SMART launch failed" in r.text


def test_a_refused_authorization_is_a_page_not_an_error(env: Env) -> None:
    with browser(env) as b:
        b.get(
            "/smart/launch",
            params={"iss": env.smart.iss, "launch": "L1"},
            follow_redirects=False,
        )
        r = b.get("/smart/callback", params={"error": "access_denied", "state": "s"})
    assert r.status_code == 400
    assert "refused" in r.text


def test_without_a_client_id_there_is_no_smart_launch(tmp_path: Path) -> None:
    settings = Settings(dev=True, database_url=f"sqlite:///{tmp_path}/a.sqlite3", as_of=AS_OF)
    with serve(create_app(settings)) as base:
        r = httpx.get(f"{base}/smart/launch", params={"iss": "x", "launch": "y"}, timeout=30)
    assert r.status_code == 404
