"""The SMART App Launch endpoints: ``/smart/launch`` and ``/smart/callback`` (the protocol
itself is ``web.smart``). A launch ends on the result page of the patient's assessment, opened
with a plan-link token; when the EHR passes the card's own assessment on (appContext), that one.
"""

from __future__ import annotations

import time

import httpx
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.requests import Request

from ..capability import sign_token
from ..engine import evaluate
from ..errors import DataUnavailable
from ..fhir import records_from_resources, to_case
from ..fhir.fetch import fetch_queries, fill
from ..fhir.queries import lookback_params
from ..fhir.read import Record
from . import smart
from .state import WebState, web_state

__all__ = ["smart_callback", "smart_launch"]

_NOT_SET_UP = "SMART launch here (it is not set up)"


def smart_launch(request: Request, iss: str | None = None, launch: str | None = None) -> Response:
    """SMART EHR launch: to the authorization server, with PKCE (web/smart.py)."""
    w = web_state(request)
    settings = w.settings
    if not settings.smart_client_id:
        return w.not_found(_NOT_SET_UP)
    redirect_uri = _callback_url(w, request)
    try:
        with httpx.Client(timeout=settings.fhir_timeout_s, trust_env=False) as client:
            url, cookie = smart.begin(
                client,
                iss=iss,
                launch=launch,
                allowed=settings.smart_issuers,
                client_id=settings.smart_client_id,
                scope=settings.smart_scope,
                redirect_uri=redirect_uri,
                key=w.link_key,
                now=time.time(),
            )
    except smart.SmartError as exc:
        return _failed(w, exc.message)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        smart.COOKIE,
        cookie,
        max_age=smart.LIFETIME_S,
        httponly=True,
        samesite="lax",
        secure=redirect_uri.startswith("https://"),
        path="/smart",
    )
    return response


def smart_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """The code for a token naming the patient; the record read with it and assessed (or
    the card's own assessment, when the EHR passes its appContext on)."""
    w = web_state(request)
    settings = w.settings
    if not settings.smart_client_id:
        return w.not_found(_NOT_SET_UP)
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=settings.fhir_timeout_s, trust_env=False) as client:
            launched = smart.finish(
                client,
                cookie=request.cookies.get(smart.COOKIE),
                state=state,
                code=code,
                error=error,
                client_id=settings.smart_client_id,
                redirect_uri=_callback_url(w, request),
                key=w.link_key,
                now=time.time(),
            )
            invocation_id = _assessed(w, client, launched, started)
    except smart.SmartError as exc:
        return _failed(w, exc.message)
    except DataUnavailable as exc:
        return _failed(w, f"the record could not be read: {exc.problem}")
    expires = int(time.time() + settings.plan_link_hours * 3600)
    token = sign_token(w.link_key, invocation_id, expires)
    response = RedirectResponse(f"/assessments/{invocation_id}{w.cap(token)}", status_code=303)
    response.delete_cookie(smart.COOKIE, path="/smart")
    return response


def _assessed(w: WebState, client: httpx.Client, launched: smart.Launched, started: float) -> str:
    """The id of the launched patient's assessment: the card's own (appContext) when it is
    this patient's, else the record read with the launch's token, assessed and stored."""
    shown = w.store.invocation(launched.app_context) if launched.app_context else None
    if shown is not None and shown.patient_id == launched.patient:
        return shown.id
    today = w.today()
    context = {"patientId": launched.patient}
    extra = lookback_params(w.lookback_days, today)
    queries = {
        k: (fill(t, context) or "") + (f"&{extra[k]}" if k in extra else "")
        for k, t in w.templates.items()
    }
    got = fetch_queries(
        client, launched.iss, queries, launched.access_token, w.settings.fhir_max_resources
    )
    resources = [r for found in got.values() for r in found]
    records = records_from_resources(resources, "smart")
    mine = next((r for r in records if r.patient_id == launched.patient), None)
    mapped = to_case(mine or Record("smart", None, ()), w.kb, today)
    assessment = mapped.annotate(evaluate(mapped.case, w.kb, today))
    return w.record(
        mapped.case,
        assessment,
        "smart-launch",
        f"SMART launch: {launched.iss}",
        started,
        launched.patient,
    )


def _callback_url(w: WebState, request: Request) -> str:
    base = w.settings.web_url or w.settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/smart/callback"


def _failed(w: WebState, problem: str) -> HTMLResponse:
    context = {"title": "SMART launch failed", "problem": problem}
    return w.pages.page("smart.html", context, status=400)
