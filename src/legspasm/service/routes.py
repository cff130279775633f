"""The CDS Hooks endpoints: discovery, three hooks, feedback, and /healthz; :data:`ROUTES`.

An invocation goes JWT check -> prefetch gathering -> FHIR mapping -> ``evaluate`` -> cards ->
audit record. Every invocation is recorded (the audit journal, ``ServiceState.audit``) before
its response is sent, refusals included. Each endpoint is a module-level function that reads
the service's share of the app from ``request.app.state`` (:func:`service_state`).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..audit import FeedbackRecord
from ..engine import evaluate
from ..errors import DataUnavailable, InputError
from ..fhir import entries_from_resources, records_from_resources, to_case
from ..fhir.queries import lookback_params
from ..fhir.read import Record
from .cards import build_cards
from .hooks import LEGACY_HOOKS, SERVICES, Service, context_problems
from .models import CdsRequest, CdsResponse, Discovery, FeedbackRequest
from .outcome import BadRequest, outcome
from .prefetch import gather, patient_id
from .repeat import without_repeats
from .state import service_state

__all__ = ["ROUTES"]


def authorize(request: Request) -> None:
    """The caller's JWT, verified (dev mode: not checked); raises AuthError."""
    st = service_state(request)
    if st.verifier is None:
        return
    # The audience is the configured public URL and the path, never the request's own Host
    # header (which the caller chooses); the assembly requires public_url unless dev.
    assert st.settings.public_url is not None
    st.verifier.verify(
        request.headers.get("authorization"),
        st.settings.public_url.rstrip("/") + request.url.path,
    )


async def healthz(request: Request) -> dict[str, str]:
    """Liveness (no auth, no database): answered on the event loop, never queued behind
    the engine's worker threads, so a probe succeeds under load."""
    return {"status": "ok", "knowledge": service_state(request).kb.version}


def cds_discovery(request: Request) -> Discovery:
    """CDS Hooks discovery. Open: it describes the services and holds no patient data."""
    return service_state(request).discovery


def cds_service(service_id: str, req: CdsRequest, request: Request) -> Response:
    st = service_state(request)
    started = time.perf_counter()
    service = _service(service_id)
    as_of = st.today()
    try:
        if req.hook != service.hook and service.hook not in LEGACY_HOOKS.get(req.hook, ()):
            raise BadRequest("hook", f"{req.hook!r} is not served by {service.id}")
        if problems := context_problems(req.hook, req.context):
            raise BadRequest(*problems[0], more=problems[1:])
        pid = patient_id(req.context)
        order_resources = _orders(req.context) if service.hook != "patient-view" else []
        sent = req.model_copy(update={"prefetch": _prefetched(req.prefetch)})
        got = gather(
            sent,
            st.templates,
            st.http,
            st.settings.fhir_max_resources,
            lookback_params(st.lookback_days, as_of),
        )
        record = _record(records_from_resources(got.resources, "prefetch"), pid)
        if record is None:
            record = Record("prefetch", None, ())
        orders = entries_from_resources(order_resources, "context.draftOrders")
        mapped = to_case(record, st.kb, as_of, orders=orders)
        assessment = mapped.annotate(evaluate(mapped.case, st.kb, as_of))
    except DataUnavailable as exc:
        st.audit(service.id, started, 412, "prefetch-unavailable", req, error=exc.message)
        return outcome(412, "not-found", exc.message, [f"prefetch.{k}" for k in exc.keys])
    except InputError as exc:
        st.audit(service.id, started, 400, "bad-request", req, error=exc.message)
        where = exc.fields if isinstance(exc, BadRequest) else None
        return outcome(400, "invalid", exc.message, where)
    invocation_id = str(uuid.uuid4())
    drafts = {e.label: e.resource for e in orders if e.type == "MedicationRequest"}
    selections = req.context.get("selections")
    # A card link of type "absolute" must be an absolute URL: without a configured base,
    # the URL this request came to (as for the JWT audience).
    base = (st.settings.web_url or st.settings.public_url or str(request.base_url)).rstrip("/")
    # A record of a patient who has died gets no card (the assessment, kept for the audit, says
    # why).
    cards = (
        []
        if mapped.deceased is not None
        else build_cards(
            assessment,
            service.hook,
            new_uuid=lambda: str(uuid.uuid4()),
            drafts=drafts,
            selections=[s for s in selections if isinstance(s, str)]
            if isinstance(selections, list)
            else None,
            plan_url=f"{base}/plan/{invocation_id}?t={st.plan_token(invocation_id)}",
            subject=f"Patient/{pid}" if pid else None,
            smart_url=f"{base}/smart/launch" if st.settings.smart_client_id else None,
            invocation_id=invocation_id,
            intake_url=f"{base}/",
        )
    )
    if service.hook == "patient-view":  # repeat suppression (service/repeat.py)
        cards = without_repeats(
            cards,
            st.store,
            patient_id=pid,
            service_id=service.id,
            days=st.kb.threshold("card_repeat_days"),
            now=dt.datetime.now(dt.UTC),
        )
    st.audit(
        service.id,
        started,
        200,
        "cards" if cards else "no-cards",
        req,
        cards,
        assessment,
        invocation_id=invocation_id,
        as_of=as_of,
    )
    # Already a validated model: serialised once here, not re-validated by FastAPI.
    body = CdsResponse(cards=[c.card for c in cards]).model_dump_json(exclude_none=True)
    return Response(body, media_type="application/json")


def cds_feedback(service_id: str, body: FeedbackRequest, request: Request) -> dict[str, int]:
    """CDS Hooks feedback: each card outcome is stored for the per-rule report."""
    service = _service(service_id)
    now = dt.datetime.now(dt.UTC)
    items = []
    for f in body.feedback:
        reason = f.overrideReason.reason if f.overrideReason else None
        reason = reason if isinstance(reason, dict) else {}
        items.append(
            FeedbackRecord(
                service_id=service.id,
                card_uuid=f.card,
                outcome=f.outcome,
                received_at=now,
                accepted_suggestions=tuple(s.id for s in f.acceptedSuggestions),
                override_system=_text(reason, "system"),
                override_code=_text(reason, "code"),
                override_display=_text(reason, "display"),
                user_comment=f.overrideReason.userComment if f.overrideReason else None,
                outcome_timestamp=_instant(f.outcomeTimestamp),
            )
        )
    service_state(request).store.record_feedback(items)
    return {"stored": len(items)}


_HOOK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad request (OperationOutcome)"},
    401: {"description": "Missing or refused JWT"},
    404: {"description": "Unknown service (OperationOutcome)"},
    412: {"description": "Prefetch missing and not obtainable (OperationOutcome)"},
}

ROUTES: list[BaseRoute] = [
    APIRoute("/healthz", healthz, methods=["GET"]),
    APIRoute(
        "/cds-services",
        cds_discovery,
        methods=["GET"],
        response_model=Discovery,
        response_model_exclude_none=True,
    ),
    APIRoute(
        "/cds-services/{service_id}",
        cds_service,
        methods=["POST"],
        dependencies=[Depends(authorize)],
        response_model=CdsResponse,
        response_model_exclude_none=True,
        responses=_HOOK_ERRORS,
    ),
    APIRoute(
        "/cds-services/{service_id}/feedback",
        cds_feedback,
        methods=["POST"],
        dependencies=[Depends(authorize)],
        responses={401: {}, 404: {}},
    ),
]


# -- reading a request ------------------------------------------------------------------------


def _service(service_id: str) -> Service:
    s = SERVICES.get(service_id)
    if s is None:
        raise StarletteHTTPException(404, f"no CDS service {service_id!r}")
    return s


def _orders(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """draftOrders (or a legacy medication-prescribe ``medications`` bundle) as resources."""
    key = "draftOrders" if "draftOrders" in context else "medications"
    bundle = context.get(key)
    if bundle is None:
        return []
    # Older clients send one order, or an array of them, instead of a Bundle: read them as one.
    if isinstance(bundle, dict) and bundle.get("resourceType") not in (None, "Bundle"):
        bundle = [bundle]
    if isinstance(bundle, list) and all(
        isinstance(x, dict) and "resourceType" in x for x in bundle
    ):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": bundle}
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest(f"context.{key}", "expected a FHIR Bundle of draft orders")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BadRequest(f"context.{key}.entry", "expected an array")
    fixed = []
    for e in entries:
        # Pre-R4 examples put the resource itself in the entry: read it, do not refuse it.
        if isinstance(e, dict) and "resource" not in e and "resourceType" in e:
            e = {"resource": e}
        fixed.append(e)
    return [{**bundle, "type": bundle.get("type", "collection"), "entry": fixed}]


def _prefetched(prefetch: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Prefetch values as FHIR resources. A CDS Hooks 1.0-draft client wraps each value in a
    ``{"response": ..., "resource": ...}`` envelope: the resource inside is read."""
    if prefetch is None:
        return None
    out: dict[str, Any] = {}
    for key, value in prefetch.items():
        if isinstance(value, dict) and "resourceType" not in value and "resource" in value:
            value = value["resource"]
        out[key] = value
    return out


def _record(records: list[Record], pid: str | None) -> Record | None:
    """The context patient's record; data about another patient is refused, never used."""
    ids = sorted({r.patient_id for r in records if r.patient_id})
    target = pid if pid is not None else (ids[0] if len(ids) == 1 else None)
    mine = next((r for r in records if target is not None and r.patient_id == target), None)
    if mine is not None:
        return mine
    if ids and pid is not None:
        raise BadRequest(
            "prefetch", f"holds Patient {', '.join(ids)}, not context.patientId {pid!r}"
        )
    return next((r for r in records if r.patient is None), None)


def _text(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _instant(value: str | None) -> dt.datetime | None:
    """A feedback's outcomeTimestamp (ISO 8601; without a zone, UTC)."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest("feedback.outcomeTimestamp", "not an ISO 8601 instant") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
