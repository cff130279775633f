"""The CDS Hooks service (FastAPI): discovery, three hooks, feedback; and the web pages.

``create_app(settings)`` wires the pure parts together: JWT check -> prefetch gathering ->
FHIR mapping -> ``evaluate`` -> cards -> audit row. Every invocation is written to the audit
journal (``audit.journal``, moved into the store in the background) before the response is
sent, including refusals. Errors are OperationOutcomes: 400 bad
request, 401 bare (no detail), 404 unknown service, 412 data unavailable; never a traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..assessment import Assessment
from ..audit import AuditStore, CardRecord, FeedbackRecord, Invocation
from ..audit.journal import Journal, open_journal
from ..audit.store import RawJSON
from ..capability import sign_token
from ..engine import evaluate
from ..errors import AuthError, ConfigError, DataUnavailable, InputError, LegspasmError
from ..fhir import entries_from_resources, records_from_resources, to_case
from ..fhir.queries import lookback_params
from ..fhir.read import Record
from ..knowledge import Knowledge, load_knowledge
from ..settings import Settings
from ..web import STATIC, web_router
from .auth import TokenVerifier
from .cards import IssuedCard, build_cards
from .headers import SecurityHeaders
from .hooks import (
    LEGACY_HOOKS,
    SERVICES,
    Service,
    context_problems,
    discovery,
    lookback_days,
    prefetch_templates,
)
from .limits import BodyLimit
from .models import CdsRequest, CdsResponse, Discovery, FeedbackRequest
from .prefetch import gather, patient_id
from .refusals import RefusalCounter
from .repeat import without_repeats

__all__ = ["create_app"]

log = logging.getLogger("legspasm.service")


class _BadRequest(InputError):
    """A request that is well-formed JSON but cannot be served (names the field)."""

    def __init__(self, field: str, problem: str, more: Sequence[tuple[str, str]] = ()) -> None:
        parts = [(field, problem), *more]
        super().__init__("; ".join(f"{f}: {p}" for f, p in parts))
        self.field = field
        self.fields = [f for f, _ in parts]


def outcome(status: int, code: str, text: str, where: list[str] | None = None) -> JSONResponse:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if where:
        issue["expression"] = where
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=status,
        media_type="application/fhir+json",
    )


class _State:
    def __init__(
        self,
        settings: Settings,
        kb: Knowledge,
        store: AuditStore,
        http: httpx.Client,
        verifier: TokenVerifier | None,
        today: Callable[[], dt.date],
    ) -> None:
        self.settings, self.kb, self.store, self.http = settings, kb, store, http
        self.verifier, self.today = verifier, today
        self.templates = prefetch_templates(kb)
        self.lookback_days = lookback_days(kb)
        self.discovery = Discovery(services=discovery(kb))


def _service(service_id: str) -> Service:
    s = SERVICES.get(service_id)
    if s is None:
        raise StarletteHTTPException(404, f"no CDS service {service_id!r}")
    return s


def _aud(request: Request, settings: Settings) -> str:
    """The audience a token must name: the configured public URL and the path, never the
    request's own Host header (which the caller chooses). ``create_app`` requires public_url
    whenever tokens are verified."""
    assert settings.public_url is not None
    return settings.public_url.rstrip("/") + request.url.path


def _secure(url: str) -> bool:
    """An https URL, or http on the loopback interface (a TLS proxy on the same machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


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
        raise _BadRequest(f"context.{key}", "expected a FHIR Bundle of draft orders")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise _BadRequest(f"context.{key}.entry", "expected an array")
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
        raise _BadRequest(
            "prefetch", f"holds Patient {', '.join(ids)}, not context.patientId {pid!r}"
        )
    return next((r for r in records if r.patient is None), None)


def _invoked_service(request: Request) -> str | None:
    """The service id when ``request`` is a hook invocation (not discovery, not feedback)."""
    sid = request.path_params.get("service_id")
    if isinstance(sid, str) and sid in SERVICES and not request.url.path.endswith("/feedback"):
        return sid
    return None


def _text(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    return v if isinstance(v, str) else None


def create_app(
    settings: Settings,
    *,
    kb: Knowledge | None = None,
    store: AuditStore | None = None,
    http: httpx.Client | None = None,
    today: Callable[[], dt.date] | None = None,
    refusal_window_s: float = 60.0,
) -> FastAPI:
    """The service. Raises LegspasmError when the settings cannot work (no issuers, bad DB)."""
    if not settings.dev and not settings.issuers:
        raise InputError(
            "LEGSPASM_ISSUERS: no trusted issuers: set a JSON list of "
            "{iss, jwks_url | jwks_file}, or use --dev"
        )
    kb = kb or load_knowledge()
    owns_http = http is None
    if not settings.dev and not settings.public_url:
        raise ConfigError(
            "LEGSPASM_PUBLIC_URL",
            "required unless --dev: a JWT's audience is checked against the URL the EHR "
            "calls, never against the Host header a request carries",
        )
    if not settings.dev:
        for name, url in (
            ("LEGSPASM_PUBLIC_URL", settings.public_url),
            ("LEGSPASM_WEB_URL", settings.web_url),
        ):
            if url is not None and not _secure(url):
                raise ConfigError(
                    name,
                    f"{url!r} must be https unless --dev (card links open patient data; plain "
                    "http is allowed only on this machine, 127.0.0.1 or localhost)",
                )
    if not settings.dev and settings.link_secret is None:
        raise ConfigError(
            "LEGSPASM_LINK_SECRET",
            "required unless --dev: card links to the plan are signed with it (32 or more "
            "random characters, the same for every worker)",
        )
    link_key = (
        settings.link_secret.get_secret_value().encode()
        if settings.link_secret is not None
        else secrets.token_bytes(32)
    )
    client = http or httpx.Client(
        timeout=httpx.Timeout(settings.fhir_timeout_s, connect=min(1.0, settings.fhir_timeout_s)),
        follow_redirects=False,
    )
    audit_store = store or AuditStore.open(settings.database_url)
    st = _State(
        settings,
        kb,
        audit_store,
        client,
        None if settings.dev else TokenVerifier(settings, client, replay=audit_store.claim_token),
        today or (lambda: settings.as_of or dt.date.today()),
    )
    refusals = RefusalCounter(audit_store.record_refusals, refusal_window_s)
    if settings.dev:
        log.warning(
            "DEVELOPMENT MODE: CDS Hooks JWTs are NOT verified. Anyone who can reach this port "
            "can call the service. Never run --dev with real patient data."
        )

    # While the app runs (its lifespan), audit records go to the journal, which a background
    # thread moves into the store; outside it (an app never started) straight to the store.
    journal: Journal | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        nonlocal journal
        # Requests are CPU-bound (mapping, evaluate, cards) under one GIL: a few threads serve
        # them faster than anyio's default 40, which mostly contend for the interpreter.
        to_thread.current_default_thread_limiter().total_tokens = settings.threads
        if settings.audit_journal:  # loads what a killed process left, before serving
            journal = await to_thread.run_sync(
                open_journal, audit_store, settings.journal_dir, settings.journal_interval_s
            )
        if journal is not None:
            journal.start()
        try:
            yield
        finally:
            if journal is not None:  # drains everything (SIGTERM included)
                done, journal = journal, None
                await to_thread.run_sync(done.close)
        refusals.flush()
        if owns_http:
            client.close()

    app = FastAPI(
        title="legspasm CDS Hooks service",
        version=kb.version,
        description="Leg cramps, spasms and restless legs: CDS Hooks 2.0 services.",
        lifespan=lifespan,
    )
    app.state.legspasm = st

    def body_refused(path: str, status: int) -> None:
        sid = path.removeprefix("/cds-services/")
        if path.startswith("/cds-services/") and sid in SERVICES:
            refusals.add(sid, "too-large" if status == 413 else "bad-request")

    app.add_middleware(
        BodyLimit, max_bytes=int(settings.max_body_mb * 1024 * 1024), on_refused=body_refused
    )
    app.add_middleware(SecurityHeaders)  # outside the limit: its 413s carry the headers too
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )

    def plan_token(invocation_id: str) -> str:
        expires = int(time.time() + settings.plan_link_hours * 3600)
        return sign_token(link_key, invocation_id, expires)

    def authorize(request: Request) -> None:
        if st.verifier is None:
            return
        st.verifier.verify(request.headers.get("authorization"), _aud(request, settings))

    def audit(
        service_id: str,
        started: float,
        status: int,
        result: str,
        req: CdsRequest | None = None,
        cards: list[IssuedCard] | None = None,
        assessment: Assessment | None = None,
        error: str | None = None,
        invocation_id: str | None = None,
        as_of: dt.date | None = None,
    ) -> None:
        svc = SERVICES.get(service_id)
        write = journal.append if journal is not None else st.store.record_invocation
        write(
            Invocation(
                id=invocation_id or str(uuid.uuid4()),
                received_at=dt.datetime.now(dt.UTC),
                service_id=service_id,
                hook=req.hook if req else (svc.hook if svc else "unknown"),
                hook_instance=req.hookInstance if req else None,
                knowledge_version=st.kb.version,
                patient_id=patient_id(req.context) if req else None,
                user_id=str(req.context.get("userId"))
                if req and req.context.get("userId")
                else None,
                fhir_server=req.fhirServer if req else None,
                status_code=status,
                outcome=result,
                latency_ms=(time.perf_counter() - started) * 1000,
                cards=tuple(
                    CardRecord(c.card.uuid, c.rule, c.card.indicator, c.card.summary)
                    for c in cards or []
                ),
                # serialised once, by pydantic; the journal and the store keep the text
                assessment=RawJSON(assessment.model_dump_json()) if assessment else None,
                as_of=as_of,
                error=error,
            )
        )

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        log.info("401 on %s: %s", request.url.path, exc.reason)
        if (sid := _invoked_service(request)) is not None:
            refusals.add(sid)  # counted, not a row each: a flood cannot fill the store
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            (".".join(str(p) for p in e["loc"] if p != "body") or "body", e["msg"])
            for e in exc.errors()[:20]
        ]
        text = "; ".join(f"{w}: {m}" for w, m in problems)
        if (sid := _invoked_service(request)) is not None:
            audit(sid, time.perf_counter(), 400, "bad-request", error=text)
        return outcome(400, "invalid", text, [w for w, _ in problems])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not-found" if exc.status_code == 404 else "processing"
        # FastAPI's "error parsing the body" (e.g. not UTF-8) is a refused invocation too.
        if exc.status_code == 400 and (sid := _invoked_service(request)) is not None:
            audit(sid, time.perf_counter(), 400, "bad-request", error=str(exc.detail))
        response = outcome(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    @app.get("/healthz", include_in_schema=True)
    async def healthz() -> dict[str, str]:
        """Liveness (no auth, no database): answered on the event loop, never queued behind
        the engine's worker threads, so a probe succeeds under load."""
        return {"status": "ok", "knowledge": st.kb.version}

    @app.get("/cds-services", response_model=Discovery, response_model_exclude_none=True)
    def cds_discovery() -> Discovery:
        """CDS Hooks discovery. Open: it describes the services and holds no patient data."""
        return st.discovery

    @app.post(
        "/cds-services/{service_id}",
        response_model=CdsResponse,
        response_model_exclude_none=True,
        responses={
            400: {"description": "Bad request (OperationOutcome)"},
            401: {"description": "Missing or refused JWT"},
            404: {"description": "Unknown service (OperationOutcome)"},
            412: {"description": "Prefetch missing and not obtainable (OperationOutcome)"},
        },
    )
    def cds_service(
        service_id: str, req: CdsRequest, request: Request, _: None = Depends(authorize)
    ) -> Response:
        started = time.perf_counter()
        service = _service(service_id)
        as_of = st.today()
        try:
            if req.hook != service.hook and service.hook not in LEGACY_HOOKS.get(req.hook, ()):
                raise _BadRequest("hook", f"{req.hook!r} is not served by {service.id}")
            if problems := context_problems(req.hook, req.context):
                raise _BadRequest(*problems[0], more=problems[1:])
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
            audit(service.id, started, 412, "prefetch-unavailable", req, error=exc.message)
            return outcome(412, "not-found", exc.message, [f"prefetch.{k}" for k in exc.keys])
        except InputError as exc:
            audit(service.id, started, 400, "bad-request", req, error=exc.message)
            where = exc.fields if isinstance(exc, _BadRequest) else None
            return outcome(400, "invalid", exc.message, where)
        invocation_id = str(uuid.uuid4())
        drafts = {e.label: e.resource for e in orders if e.type == "MedicationRequest"}
        selections = req.context.get("selections")
        # A card link of type "absolute" must be an absolute URL: without a configured base,
        # the URL this request came to (as for the JWT audience).
        base = (st.settings.web_url or st.settings.public_url or str(request.base_url)).rstrip("/")
        cards = build_cards(
            assessment,
            service.hook,
            new_uuid=lambda: str(uuid.uuid4()),
            drafts=drafts,
            selections=[s for s in selections if isinstance(s, str)]
            if isinstance(selections, list)
            else None,
            plan_url=f"{base}/plan/{invocation_id}?t={plan_token(invocation_id)}",
            subject=f"Patient/{pid}" if pid else None,
            smart_url=f"{base}/smart/launch" if st.settings.smart_client_id else None,
            invocation_id=invocation_id,
            intake_url=f"{base}/",
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
        audit(
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

    @app.post("/cds-services/{service_id}/feedback", responses={401: {}, 404: {}})
    def cds_feedback(
        service_id: str, body: FeedbackRequest, _: None = Depends(authorize)
    ) -> dict[str, int]:
        """CDS Hooks feedback: each card outcome is stored for the per-rule report."""
        service = _service(service_id)
        now = dt.datetime.now(dt.UTC)
        items = []
        for f in body.feedback:
            reason = f.overrideReason.reason if f.overrideReason else None
            reason = reason if isinstance(reason, dict) else {}
            when = None
            if f.outcomeTimestamp:
                try:
                    when = dt.datetime.fromisoformat(f.outcomeTimestamp)
                except ValueError:
                    raise _BadRequest(
                        "feedback.outcomeTimestamp", "not an ISO 8601 instant"
                    ) from None
                if when.tzinfo is None:
                    when = when.replace(tzinfo=dt.UTC)

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
                    outcome_timestamp=when,
                )
            )
        st.store.record_feedback(items)
        return {"stored": len(items)}

    @app.exception_handler(_BadRequest)
    async def _bad(request: Request, exc: _BadRequest) -> Response:
        return outcome(400, "invalid", exc.message, exc.fields)

    # The clinician web pages share the app: the card link /plan/{invocation} is their result
    # page for that invocation.
    app.include_router(web_router(st.kb, st.store, settings, st.today, link_key))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(LegspasmError)
    async def _internal(request: Request, exc: LegspasmError) -> Response:
        log.error("internal error on %s: %s", request.url.path, exc.message)
        return failed(request, exc.message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return failed(request, f"{type(exc).__name__}: {exc}"[:500])

    def failed(request: Request, error: str) -> Response:
        """A 500, with its audit row when it was an invocation (unless the store is what
        failed: then the log has it)."""
        if (sid := _invoked_service(request)) is not None:
            try:
                audit(sid, time.perf_counter(), 500, "error", error=error)
            except LegspasmError as exc:
                log.error("the failed invocation could not be audited: %s", exc.message)
        return outcome(500, "exception", "internal error; see the service log")

    return app
