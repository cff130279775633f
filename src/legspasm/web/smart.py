"""SMART App Launch (EHR launch with PKCE) for the web page (Authlib's PKCE and URL helpers).

The EHR opens ``/smart/launch?iss=...&launch=...`` (a CDS card's ``smart`` link, or its app
menu). legspasm reads the FHIR server's ``.well-known/smart-configuration``, sends the browser to
its authorization endpoint (``response_type=code``, the launch, ``aud`` = iss, a random state and
an S256 code challenge), and on ``/smart/callback`` exchanges the code with the code verifier
for an access token naming the patient. The patient's record is then read from the FHIR server
with that token (the CDS Hooks prefetch queries) and assessed.

Only FHIR servers on the allowlist (``LEGSPASM_SMART_ISSUERS``) are contacted: ``iss`` comes
from the browser, and an open list would let anyone make legspasm call any address. The state,
the verifier and the endpoints travel in a short-lived cookie signed with the link secret (no
server-side session, so any worker can finish a launch); the access token is used once, for the
reads, and never stored or logged.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ..capability import LinkCheck, check_token, sign_token
from ..errors import InputError

__all__ = ["COOKIE", "Launched", "SmartError", "begin", "finish"]

COOKIE = "legspasm_smart"
LIFETIME_S = 600  # a launch must finish within ten minutes


class SmartError(InputError):
    """A SMART launch that cannot go on (names what is wrong, never a token)."""


@dataclass(frozen=True, slots=True)
class Launched:
    iss: str
    access_token: str
    patient: str
    app_context: str | None  # the CDS card's appContext, when the EHR passes it on


def _issuer(iss: str | None, allowed: Sequence[str]) -> str:
    if not iss:
        raise SmartError("iss: the EHR did not say which FHIR server to use")
    iss = iss.rstrip("/")
    if iss not in {a.rstrip("/") for a in allowed}:
        raise SmartError(f"iss: {iss!r} is not a FHIR server this legspasm is set up to trust")
    return iss


def _configuration(client: httpx.Client, iss: str) -> dict[str, Any]:
    try:
        r = client.get(
            f"{iss}/.well-known/smart-configuration", headers={"Accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise SmartError(f"cannot reach {iss} ({type(exc).__name__})") from None
    if r.status_code != 200:
        raise SmartError(f"{iss}/.well-known/smart-configuration answered HTTP {r.status_code}")
    try:
        conf: dict[str, Any] = r.json()
    except ValueError:
        raise SmartError("the SMART configuration is not JSON") from None
    for key in ("authorization_endpoint", "token_endpoint"):
        if not isinstance(conf.get(key), str):
            raise SmartError(f"the SMART configuration has no {key}")
    if "S256" not in conf.get("code_challenge_methods_supported", ["S256"]):
        raise SmartError("the authorization server does not support PKCE with S256")
    return conf


def _pack(data: dict[str, str], key: bytes, now: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    return f"{payload}.{sign_token(key, payload, int(now) + LIFETIME_S)}"


def _unpack(cookie: str | None, key: bytes, now: float) -> dict[str, str]:
    if not cookie or "." not in cookie:
        raise SmartError("the launch has no state in this browser: start it again from the EHR")
    payload, token = cookie.split(".", 1)
    check = check_token(key, payload, token, now)
    if check is LinkCheck.EXPIRED:
        raise SmartError("the launch took too long: start it again from the EHR")
    if check is not LinkCheck.VALID:
        raise SmartError("the launch state is not valid: start it again from the EHR")
    data: dict[str, str] = json.loads(base64.urlsafe_b64decode(payload.encode()))
    return data


def begin(
    client: httpx.Client,
    *,
    iss: str | None,
    launch: str | None,
    allowed: Sequence[str],
    client_id: str,
    scope: str,
    redirect_uri: str,
    key: bytes,
    now: float,
) -> tuple[str, str]:
    """(the authorization URL to send the browser to, the signed cookie holding the state)."""
    server = _issuer(iss, allowed)
    if not launch:
        raise SmartError("launch: the EHR did not pass a launch context")
    conf = _configuration(client, server)
    verifier = generate_token(64)
    state = secrets.token_urlsafe(24)
    url = add_params_to_uri(
        conf["authorization_endpoint"],
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", state),
            ("aud", server),
            ("launch", launch),
            ("code_challenge", create_s256_code_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    cookie = _pack(
        {"iss": server, "state": state, "verifier": verifier, "token": conf["token_endpoint"]},
        key,
        now,
    )
    return url, cookie


def finish(
    client: httpx.Client,
    *,
    cookie: str | None,
    state: str | None,
    code: str | None,
    error: str | None,
    client_id: str,
    redirect_uri: str,
    key: bytes,
    now: float,
) -> Launched:
    """The token exchange: the access token and the patient in context."""
    data = _unpack(cookie, key, now)
    if error:
        raise SmartError(f"the authorization server refused: {error}")
    if not state or not secrets.compare_digest(state, data["state"]):
        raise SmartError("state: does not match this browser's launch")
    if not code:
        raise SmartError("code: the authorization server sent none")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,  # a public client: PKCE, no secret
        "code_verifier": data["verifier"],
    }
    try:
        r = client.post(data["token"], data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SmartError(f"the token exchange failed ({type(exc).__name__})") from None
    try:
        token: dict[str, Any] = r.json()
    except ValueError:
        token = {}
    if r.status_code != 200 or not isinstance(token, dict):
        why = token.get("error") if isinstance(token, dict) else None
        raise SmartError(f"the token exchange was refused ({why or f'HTTP {r.status_code}'})")
    access = token.get("access_token")
    patient = token.get("patient")
    if not isinstance(access, str) or not access:
        raise SmartError("the token response has no access_token")
    if not isinstance(patient, str) or not patient:
        raise SmartError("the token response names no patient (ask for the launch scope)")
    app_context = token.get("appContext")
    return Launched(
        data["iss"], access, patient, app_context if isinstance(app_context, str) else None
    )
