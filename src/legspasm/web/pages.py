"""The clinician web pages: intake, result, print and handout, PDF, history.

Server-rendered (Jinja2), one small script for the live IRLS score and creatinine clearance.
Every assessment made here goes through the one engine and is written to the audit store with
the case it was made from, so it can be reopened from the history and re-assessed with the
missing data answered in place. The CDS Hooks card link ``/plan/{invocation}`` is this result
page for that invocation.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..assessment import Assessment
from ..audit import AuditStore, Invocation
from ..capability import LinkCheck, check_token, sign_token
from ..case import Case
from ..caseio import parse_case, read_document
from ..engine import evaluate
from ..errors import CaseValidationError, DataUnavailable, InputError, SeveralPatients
from ..fhir import records_from_resources, to_case
from ..fhir.fetch import fetch_queries, fill
from ..fhir.queries import lookback_days, lookback_params, prefetch_templates
from ..fhir.read import Record
from ..inputs import load_patient
from ..knowledge import Knowledge
from ..render.charts import charts
from ..render.pdf import handout_pdf, summary_pdf
from ..settings import Settings
from . import smart
from .examples import EXAMPLES, Example
from .form import FormData, ParsedForm, case_to_form, field_of, read_form
from .steps import answered_keys, asked_keys, expand_screen
from .view import EVIDENCE_DOCS, Templates

__all__ = ["SERVICE_ID", "web_router"]

SERVICE_ID = "legspasm-web"


@dataclass(frozen=True)
class _Deps:
    kb: Knowledge
    store: AuditStore
    settings: Settings
    today: Callable[[], dt.date]
    pages: Templates

    @property
    def open_pages(self) -> bool:
        return self.settings.web_pages_on


@dataclass(frozen=True)
class _Upload:
    filename: str | None
    content: bytes


async def _form(request: Request) -> tuple[dict[str, list[str]], dict[str, list[_Upload]]]:
    """A submitted form: every field with all its values, and the uploaded files' contents."""
    fields: dict[str, list[str]] = {}
    files: dict[str, list[_Upload]] = {}
    async with request.form() as raw:
        for key, value in raw.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, []).append(value)
            elif value.filename:
                files.setdefault(key, []).append(_Upload(value.filename, await value.read()))
    return fields, files


_SUFFIXES = (".json", ".yaml", ".yml", ".ndjson")


def _upload_problem(uploads: list[_Upload], limit: int, limit_mb: float) -> tuple[str | None, int]:
    """Why these uploads cannot be read (and the status to answer), or (None, 200)."""
    if not uploads or not any(u.content for u in uploads):
        return "choose a file to upload", 422
    if sum(len(u.content) for u in uploads) > limit:
        return f"the upload is larger than {limit_mb:g} MB", 413
    for u in uploads:
        name = Path(u.filename or "").name
        if Path(name).suffix.lower() not in _SUFFIXES:
            return f"{name}: expected a FHIR .json or .ndjson file or a .yaml/.json case", 422
        if len(uploads) > 1 and not name.lower().endswith(".ndjson"):
            return f"{name}: several files must be the .ndjson files of one bulk export", 422
    return None, 200


def same_origin(request: Request) -> None:
    """Refuse a form post another site's page made the browser send (cross-site request
    forgery), by the browser's own Fetch Metadata and Origin headers; clients that send neither
    (curl, tests) are let through. ``Origin: null`` (a sandboxed frame, a data: or file: page)
    is refused unless the browser says the post is same-origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise StarletteHTTPException(403, f"cross-site form post refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin == "null" and site != "same-origin":
        # Our pages send no referrer, so a browser's own same-origin post says Origin: null
        # too; only its Fetch Metadata tells the two apart.
        raise StarletteHTTPException(403, "form post from an opaque origin (Origin: null) refused")
    if origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get("host"):
        raise StarletteHTTPException(403, f"form post from another origin refused ({origin})")


def _problems(exc: CaseValidationError, parsed: ParsedForm) -> dict[str, str]:
    out: dict[str, str] = {}
    for path, problem in exc.problems:
        out.setdefault(field_of(path, parsed.rows), problem)
    return out


def web_router(
    kb: Knowledge,
    store: AuditStore,
    settings: Settings,
    today: Callable[[], dt.date],
    link_key: bytes,
) -> APIRouter:
    """The web pages as one router (the service app includes it). ``link_key`` checks the
    signed plan links (``legspasm.capability``) the CDS Hooks cards carry."""
    d = _Deps(kb, store, settings, today, Templates(kb))
    # Web pages stay out of the OpenAPI schema, except the card link target /plan/{invocation}.
    router = APIRouter()

    def closed() -> HTMLResponse:
        return d.pages.page(
            "closed.html",
            {"title": "Web pages are off"},
            status=404,
        )

    def not_found(what: str) -> HTMLResponse:
        return d.pages.page("missing.html", {"title": "Not found", "what": what}, status=404)

    def refused(invocation_id: str, t: str | None) -> HTMLResponse | None:
        """None when this assessment may be shown: the pages are open (behind the
        organisation's login), or ``t`` is a valid plan-link token for it; else the page that
        says why not (403 for a missing or wrong token, 410 for an expired one)."""
        if d.open_pages:
            return None
        check = check_token(link_key, invocation_id, t, time.time())
        if check is LinkCheck.VALID:
            return None
        expired = check is LinkCheck.EXPIRED
        context = {
            "title": "This link has expired" if expired else "This link does not open a plan",
            "expired": expired,
        }
        return d.pages.page("link.html", context, status=410 if expired else 403)

    def cap(t: str | None) -> str:
        """The query that carries the token on to the page's own links."""
        return "" if d.open_pages or not t else "?" + urlencode({"t": t})

    def record(
        case: Case,
        assessment: Assessment,
        hook: str,
        label: str,
        started: float,
        patient: str | None = None,
    ) -> str:
        invocation_id = str(uuid.uuid4())
        store.record_invocation(
            Invocation(
                id=invocation_id,
                received_at=dt.datetime.now(dt.UTC),
                service_id=SERVICE_ID,
                hook=hook,
                hook_instance=None,
                knowledge_version=kb.version,
                patient_id=patient or case.id,
                user_id=None,
                fhir_server=None,
                status_code=200,
                outcome="assessed",
                latency_ms=(time.perf_counter() - started) * 1000,
                assessment=assessment.model_dump(mode="json"),
                as_of=assessment.as_of,
                case=case.model_dump(mode="json", exclude_none=True),
                label=label[:200],
            )
        )
        return invocation_id

    def intake(
        values: Mapping[str, list[str]],
        errors: Mapping[str, str] | None = None,
        status: int = 200,
        upload_error: str | None = None,
        upload_patients: list[str] | None = None,
        note: str | None = None,
    ) -> HTMLResponse:
        return d.pages.intake(
            values,
            errors or {},
            status=status,
            examples=EXAMPLES,
            upload_error=upload_error,
            upload_patients=upload_patients or [],
            note=note,
            as_of=d.today(),
        )

    def assess_form(
        form: FormData, hook: str, label: str
    ) -> tuple[str | None, HTMLResponse | None]:
        started = time.perf_counter()
        parsed = read_form(form, kb)
        if parsed.errors:
            return None, intake(form, parsed.errors, status=422)
        try:
            case = parse_case(parsed.data, "form")
            assessment = evaluate(case, kb, d.today())
        except CaseValidationError as exc:
            return None, intake(form, _problems(exc, parsed), status=422)
        return record(case, assessment, hook, label or case.id or "web form", started), None

    def load(invocation_id: str) -> tuple[Invocation, Assessment] | None:
        try:
            uuid.UUID(invocation_id)
        except ValueError:
            return None
        inv = store.invocation(invocation_id)
        if inv is None or inv.assessment is None:
            return None
        return inv, Assessment.model_validate(inv.assessment)

    def step_page(
        step: int,
        values: FormData,
        errors: Mapping[str, str] | None = None,
        status: int = 200,
        **kw: Any,
    ) -> HTMLResponse:
        return d.pages.step(step, values, errors or {}, as_of=d.today(), status=status, **kw)

    def next_step(fields: FormData) -> Response:
        """Step 1 posted: step 2. Step 2 posted: the questions its answers raise, or assess."""
        values = expand_screen(fields)
        go = (fields.get("go") or [""])[-1]
        step = 1 if (fields.get("step") or [""])[-1] == "1" else 2
        shown = set(fields.get("shown", []))
        if go == "back":
            return step_page(1, values, shown=shown)
        started = time.perf_counter()
        parsed = read_form(values, kb)
        errors = dict(parsed.errors)
        if not errors:
            try:
                case = parse_case(parsed.data, "form")
                assessment = evaluate(case, kb, d.today())
            except CaseValidationError as exc:
                errors = _problems(exc, parsed)
        if errors:  # the same step again, with the same questions (``shown``) and the problems
            return step_page(step, values, errors, 422, shown=shown)
        if step == 1:
            return step_page(2, values, missing=assessment.missing_data, shown=shown)
        new = asked_keys(assessment.missing_data, kb) - answered_keys(values) - shown
        if go != "now" and new:
            return step_page(2, values, missing=assessment.missing_data, shown=shown, new=len(new))
        label = (values.get("id") or [""])[-1].strip()
        invocation_id = record(case, assessment, "web-intake", label or "web form", started)
        return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)

    @router.post("/intake/step", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def intake_step(request: Request) -> Response:
        """The adaptive intake without JavaScript: each step is a form post."""
        if not d.open_pages:
            return closed()
        fields, _ = await _form(request)
        return await run_in_threadpool(next_step, fields)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(example: str | None = None, form: str | None = None) -> HTMLResponse:
        if not d.open_pages:
            return closed()
        if example is None and form != "full":
            return step_page(1, {})
        if example is None:
            return intake({})
        ex = EXAMPLES.get(example)
        if ex is None or ex.fhir:
            return intake({}, note=f"No form example {example!r}.", status=404)
        case = parse_case(read_document(ex.path), str(ex.path))
        return intake(
            case_to_form(case, kb), note=f"Example filled in: {ex.title}. Review, then assess."
        )

    @router.post("/assess", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def assess(request: Request) -> Response:
        if not d.open_pages:
            return closed()
        fields, _ = await _form(request)
        invocation_id, page = await run_in_threadpool(
            assess_form, fields, "web-intake", (fields.get("id") or [""])[-1].strip()
        )
        if page is not None:
            return page
        return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)

    @router.post("/intake/derived", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def derived(request: Request) -> JSONResponse:
        """Age, creatinine clearance and IRLS total for a form being filled in (live)."""
        if not d.open_pages:
            return JSONResponse({"error": "web pages are off"}, status_code=404)
        fields, _ = await _form(request)
        return await run_in_threadpool(live_values, fields)

    def live_values(fields: FormData) -> JSONResponse:
        parsed = read_form(fields, kb)
        try:
            a = evaluate(parse_case(parsed.data, "form"), kb, d.today())
        except CaseValidationError as exc:
            return JSONResponse({"errors": _problems(exc, parsed) | parsed.errors})
        out = a.derived.model_dump(mode="json")
        out["errors"] = parsed.errors
        return JSONResponse(out)

    @router.post("/upload", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def upload(request: Request) -> Response:
        if not d.open_pages:
            return closed()
        started = time.perf_counter()
        fields, files = await _form(request)
        uploads = files.get("file", [])
        patient = (fields.get("patient") or [""])[-1].strip() or None
        limit = int(settings.max_upload_mb * 1024 * 1024)
        problem, status = _upload_problem(uploads, limit, settings.max_upload_mb)
        if problem is not None:
            return intake({}, upload_error=problem, status=status)
        names = [Path(u.filename or "").name for u in uploads]
        label = names[0] + (f" and {len(names) - 1} more files" if len(names) > 1 else "")

        def work(tmp: Path) -> str:
            if len(uploads) == 1:
                path = tmp / f"upload{Path(names[0]).suffix.lower()}"
                path.write_bytes(uploads[0].content)
            else:  # the NDJSON files of one bulk export
                path = tmp / "export"
                path.mkdir()
                for i, (name, u) in enumerate(zip(names, uploads, strict=True)):
                    (path / f"{i:03d}-{name}").write_bytes(u.content)
            got = load_patient(path, kb, d.today(), patient)
            assessment = got.assess(kb, d.today())
            return record(
                got.case, assessment, "web-upload", f"upload: {label}", started, got.subject
            )

        with tempfile.TemporaryDirectory() as tmp:
            try:
                invocation_id = await run_in_threadpool(work, Path(tmp))
            except InputError as exc:
                ids = exc.ids if isinstance(exc, SeveralPatients) else []
                text = (
                    f"holds {len(ids)} patients: pick one below, then choose the file(s) again"
                    if ids
                    else _clean(exc.message, Path(tmp), names[0])
                )
                return intake({}, upload_error=f"{label}: {text}", upload_patients=ids, status=422)
        return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)

    @router.post("/examples/{name}", include_in_schema=False, dependencies=[Depends(same_origin)])
    async def example(name: str) -> Response:
        if not d.open_pages:
            return closed()
        ex = EXAMPLES.get(name)
        if ex is None:
            return not_found(f"example {name!r}")
        invocation_id = await run_in_threadpool(_assess_example, d, ex, record)
        return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)

    def result(invocation_id: str, t: str | None = None) -> HTMLResponse:
        if (no := refused(invocation_id, t)) is not None:
            return no
        got = load(invocation_id)
        if got is None:
            return not_found(f"assessment {invocation_id!r}")
        inv, a = got
        case = Case.model_validate(inv.case) if inv.case is not None else None
        editable = case is not None and _round_trips(case, kb)
        return d.pages.result(inv, a, case, editable=editable, open_pages=d.open_pages, cap=cap(t))

    router.add_api_route(
        "/assessments/{invocation_id}",
        result,
        methods=["GET"],
        response_class=HTMLResponse,
        include_in_schema=False,
    )
    router.add_api_route(
        "/plan/{invocation_id}",
        result,
        methods=["GET"],
        response_class=HTMLResponse,
        summary="The full plan behind a card (the card link target): an HTML page",
        responses={
            403: {"description": "The link carries no valid token for this plan (HTML page)"},
            404: {"description": "No such assessment (HTML page)"},
            410: {"description": "The link's token has expired (HTML page)"},
        },
    )

    @router.post(
        "/assessments/{invocation_id}/answers",
        include_in_schema=False,
        dependencies=[Depends(same_origin)],
    )
    async def answers(invocation_id: str, request: Request, t: str | None = None) -> Response:
        """Re-assess with the missing data answered on the result page."""
        if (no := refused(invocation_id, t)) is not None:
            return no
        fields, _ = await _form(request)
        return await run_in_threadpool(reassess, invocation_id, fields, t)

    def reassess(invocation_id: str, fields: FormData, t: str | None = None) -> Response:
        got = load(invocation_id)
        if got is None:
            return not_found(f"assessment {invocation_id!r}")
        inv, a = got
        if inv.case is None:
            return not_found(f"the case of assessment {invocation_id!r}")
        started = time.perf_counter()
        parsed = read_form(fields, kb)
        merged = _merge(inv.case, parsed.data)
        errors = dict(parsed.errors)
        new_id = None
        if not errors:
            try:
                case = parse_case(merged, "answers")
                assessment = evaluate(case, kb, d.today())
                if inv.assessment and a.data_used:
                    assessment = assessment.model_copy(
                        update={"data_used": a.data_used, "unmapped": a.unmapped}
                    )
                new_id = record(
                    case,
                    assessment,
                    "web-reassess",
                    _relabel(inv.label),
                    started,
                    inv.patient_id,
                )
            except CaseValidationError as exc:
                errors = _problems(exc, parsed)
        if new_id is None:
            case = Case.model_validate(inv.case)
            return d.pages.result(
                inv,
                a,
                case,
                editable=_round_trips(case, kb),
                open_pages=d.open_pages,
                answers=fields,
                errors=errors,
                status=422,
                cap=cap(t),
            )
        if d.open_pages or t is None:
            return RedirectResponse(f"/assessments/{new_id}", status_code=303)
        # reached through a plan link: the new assessment opens until the same time, no later
        expires = int(t.partition(".")[0])
        again = cap(sign_token(link_key, new_id, expires))
        return RedirectResponse(f"/assessments/{new_id}{again}", status_code=303)

    @router.get(
        "/assessments/{invocation_id}/edit", response_class=HTMLResponse, include_in_schema=False
    )
    def edit(invocation_id: str) -> HTMLResponse:
        if not d.open_pages:
            return closed()
        got = load(invocation_id)
        if got is None or got[0].case is None:
            return not_found(f"assessment {invocation_id!r}")
        case = Case.model_validate(got[0].case)
        return intake(
            case_to_form(case, kb),
            note="Editing a past assessment: assess again to save a new one.",
        )

    @router.get(
        "/assessments/{invocation_id}/print", response_class=HTMLResponse, include_in_schema=False
    )
    def print_view(invocation_id: str, t: str | None = None) -> HTMLResponse:
        if (no := refused(invocation_id, t)) is not None:
            return no
        got = load(invocation_id)
        if got is None:
            return not_found(f"assessment {invocation_id!r}")
        return d.pages.print_view(*got, cap=cap(t))

    @router.get("/assessments/{invocation_id}/{kind}.pdf", include_in_schema=False)
    def pdf(invocation_id: str, kind: str, t: str | None = None) -> Response:
        """The clinician summary (summary.pdf) or the patient handout (handout.pdf)."""
        if (no := refused(invocation_id, t)) is not None:
            return no
        got = load(invocation_id)
        if got is None or kind not in ("summary", "handout"):
            return not_found(f"{kind}.pdf of assessment {invocation_id!r}")
        if kind == "summary":
            content = summary_pdf(
                got[1], charts(got[1], kb), page_size=d.settings.handout_page_size
            )
        else:
            content = handout_pdf(got[1], page_size=d.settings.handout_page_size)
        return _pdf(content, f"legspasm-{kind}-{invocation_id[:8]}.pdf")

    templates, lookback = prefetch_templates(kb), lookback_days(kb)  # once, not per launch

    def callback_url(request: Request) -> str:
        base = settings.web_url or settings.public_url or str(request.base_url)
        return base.rstrip("/") + "/smart/callback"

    def smart_failed(problem: str) -> HTMLResponse:
        context = {"title": "SMART launch failed", "problem": problem}
        return d.pages.page("smart.html", context, status=400)

    @router.get("/smart/launch", include_in_schema=False)
    def smart_launch(
        request: Request, iss: str | None = None, launch: str | None = None
    ) -> Response:
        """SMART EHR launch: to the authorization server, with PKCE (web/smart.py)."""
        if not settings.smart_client_id:
            return not_found("SMART launch here (it is not set up)")
        redirect_uri = callback_url(request)
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
                    key=link_key,
                    now=time.time(),
                )
        except smart.SmartError as exc:
            return smart_failed(exc.message)
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

    @router.get("/smart/callback", include_in_schema=False)
    def smart_callback(
        request: Request,
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> Response:
        """The code for a token naming the patient; the record read with it and assessed (or
        the card's own assessment, when the EHR passes its appContext on)."""
        if not settings.smart_client_id:
            return not_found("SMART launch here (it is not set up)")
        started = time.perf_counter()
        today = d.today()
        try:
            with httpx.Client(timeout=settings.fhir_timeout_s, trust_env=False) as client:
                launched = smart.finish(
                    client,
                    cookie=request.cookies.get(smart.COOKIE),
                    state=state,
                    code=code,
                    error=error,
                    client_id=settings.smart_client_id,
                    redirect_uri=callback_url(request),
                    key=link_key,
                    now=time.time(),
                )
                shown = store.invocation(launched.app_context) if launched.app_context else None
                if shown is not None and shown.patient_id == launched.patient:
                    invocation_id = shown.id
                else:
                    context = {"patientId": launched.patient}
                    extra = lookback_params(lookback, today)
                    queries = {
                        k: (fill(t, context) or "") + (f"&{extra[k]}" if k in extra else "")
                        for k, t in templates.items()
                    }
                    got = fetch_queries(
                        client,
                        launched.iss,
                        queries,
                        launched.access_token,
                        settings.fhir_max_resources,
                    )
                    resources = [r for found in got.values() for r in found]
                    records = records_from_resources(resources, "smart")
                    mine = next((r for r in records if r.patient_id == launched.patient), None)
                    mapped = to_case(mine or Record("smart", None, ()), kb, today)
                    assessment = mapped.annotate(evaluate(mapped.case, kb, today))
                    invocation_id = record(
                        mapped.case,
                        assessment,
                        "smart-launch",
                        f"SMART launch: {launched.iss}",
                        started,
                        launched.patient,
                    )
        except smart.SmartError as exc:
            return smart_failed(exc.message)
        except DataUnavailable as exc:
            return smart_failed(f"the record could not be read: {exc.problem}")
        expires = int(time.time() + settings.plan_link_hours * 3600)
        token = sign_token(link_key, invocation_id, expires)
        response = RedirectResponse(f"/assessments/{invocation_id}{cap(token)}", status_code=303)
        response.delete_cookie(smart.COOKIE, path="/smart")
        return response

    @router.get("/docs/evidence/{name}", response_class=HTMLResponse, include_in_schema=False)
    def evidence(name: str) -> HTMLResponse:
        """The evidence review the knowledge base is encoded from (a citation resolves here).
        Public: it holds no patient data."""
        doc = EVIDENCE_DOCS.get(name)
        if doc is None:
            return d.pages.page(
                "missing.html", {"title": "Not found", "what": "such document"}, 404
            )
        return d.pages.document(doc)

    @router.get("/history", response_class=HTMLResponse, include_in_schema=False)
    def history(patient: str | None = None) -> HTMLResponse:
        if not d.open_pages:
            return closed()
        rows = store.recent(200, patient_id=patient or None, assessed=True)
        return d.pages.history(rows, patient)

    return router


def _assess_example(
    d: _Deps, ex: Example, record: Callable[[Case, Assessment, str, str, float, str | None], str]
) -> str:
    started = time.perf_counter()
    got = load_patient(ex.path, d.kb, d.today())
    assessment = got.assess(d.kb, d.today())
    return record(got.case, assessment, "web-example", f"example: {ex.title}", started, got.subject)


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` added: mappings merge, lists (labs, medicines) are appended."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(old, value)
        elif isinstance(old, list) and isinstance(value, list) and key != "irls_items":
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


def _relabel(label: str | None) -> str:
    base = (label or "assessment").removesuffix(" (answers added)")
    return f"{base} (answers added)"


def _round_trips(case: Case, kb: Knowledge) -> bool:
    """Whether the intake form can show this case without losing anything."""
    parsed = read_form(case_to_form(case, kb), kb)
    if parsed.errors:
        return False
    try:
        again = parse_case(parsed.data)
    except CaseValidationError:
        return False
    return again.model_dump(exclude_none=True) == case.model_dump(exclude_none=True)


def _pdf(content: bytes, filename: str) -> Response:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _clean(text: str, tmp: Path, name: str) -> str:
    """An error about the temporary copy of an upload, told about the uploaded files."""
    text = re.sub(re.escape(str(tmp)) + r"/upload\.\w+", name, text)
    text = re.sub(re.escape(str(tmp)) + r"/export/\d{3}-", "", text)
    text = text.replace(str(tmp) + "/export", "the uploaded files")
    return text.replace("--patient", "the patient field")
