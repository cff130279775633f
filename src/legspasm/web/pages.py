"""The intake pages: the adaptive intake, the full form, upload, examples, history, evidence.

Server-rendered (Jinja2), one small script for the live IRLS score and creatinine clearance.
Every assessment made here goes through the one engine and is written to the audit store with
the case it was made from (:meth:`WebState.record`), so it can be reopened from the history and
re-assessed with the missing data answered in place (``web.results``). These pages are served
only when ``LEGSPASM_WEB_PAGES`` (or dev mode) opens them; the evidence review always is.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..case import Case
from ..caseio import parse_case, read_document
from ..engine import evaluate
from ..errors import CaseValidationError, InputError, SeveralPatients
from ..inputs import load_patient
from .examples import EXAMPLES, Example
from .form import FormData, case_to_form, read_form
from .posts import Upload, field_problems, read_post
from .state import WebState, web_state
from .steps import answered_keys, asked_keys, expand_screen
from .view import EVIDENCE_DOCS

__all__ = [
    "assess",
    "derived",
    "edit",
    "evidence",
    "example",
    "history",
    "home",
    "intake_step",
    "upload",
]


def home(request: Request, example: str | None = None, form: str | None = None) -> HTMLResponse:
    """The adaptive intake's first step; ``?form=full`` the whole form; ``?example=`` filled."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    if example is None and form != "full":
        return w.step_page(1, {})
    if example is None:
        return w.intake({})
    ex = EXAMPLES.get(example)
    if ex is None or ex.fhir:
        return w.intake({}, note=f"No form example {example!r}.", status=404)
    case = parse_case(read_document(ex.path), str(ex.path))
    return w.intake(
        case_to_form(case, w.kb), note=f"Example filled in: {ex.title}. Review, then assess."
    )


async def intake_step(request: Request) -> Response:
    """The adaptive intake without JavaScript: each step is a form post."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    fields, _ = await read_post(request)
    return await run_in_threadpool(_next_step, w, fields)


def _next_step(w: WebState, fields: FormData) -> Response:
    """Step 1 posted: step 2. Step 2 posted: the questions its answers raise, or assess."""
    values = expand_screen(fields)
    go = (fields.get("go") or [""])[-1]
    step = 1 if (fields.get("step") or [""])[-1] == "1" else 2
    shown = set(fields.get("shown", []))
    if go == "back":
        return w.step_page(1, values, shown=shown)
    started = time.perf_counter()
    parsed = read_form(values, w.kb)
    errors = dict(parsed.errors)
    if not errors:
        try:
            case = parse_case(parsed.data, "form")
            assessment = evaluate(case, w.kb, w.today())
        except CaseValidationError as exc:
            errors = field_problems(exc, parsed)
    if errors:  # the same step again, with the same questions (``shown``) and the problems
        return w.step_page(step, values, errors, 422, shown=shown)
    if step == 1:
        return w.step_page(2, values, missing=assessment.missing_data, shown=shown)
    new = asked_keys(assessment.missing_data, w.kb) - answered_keys(values) - shown
    if go != "now" and new:
        return w.step_page(2, values, missing=assessment.missing_data, shown=shown, new=len(new))
    label = (values.get("id") or [""])[-1].strip()
    invocation_id = w.record(case, assessment, "web-intake", label or "web form", started)
    return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)


async def assess(request: Request) -> Response:
    """The full form posted: its assessment's page, or the form again with the problems."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    fields, _ = await read_post(request)
    return await run_in_threadpool(_assess_form, w, fields)


def _assess_form(w: WebState, form: FormData) -> Response:
    started = time.perf_counter()
    parsed = read_form(form, w.kb)
    if parsed.errors:
        return w.intake(form, parsed.errors, status=422)
    try:
        case = parse_case(parsed.data, "form")
        assessment = evaluate(case, w.kb, w.today())
    except CaseValidationError as exc:
        return w.intake(form, field_problems(exc, parsed), status=422)
    label = (form.get("id") or [""])[-1].strip() or case.id or "web form"
    invocation_id = w.record(case, assessment, "web-intake", label, started)
    return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)


async def derived(request: Request) -> JSONResponse:
    """Age, creatinine clearance and IRLS total for a form being filled in (live)."""
    w = web_state(request)
    if not w.open_pages:
        return JSONResponse({"error": "web pages are off"}, status_code=404)
    fields, _ = await read_post(request)
    return await run_in_threadpool(_live_values, w, fields)


def _live_values(w: WebState, fields: FormData) -> JSONResponse:
    parsed = read_form(fields, w.kb)
    try:
        a = evaluate(parse_case(parsed.data, "form"), w.kb, w.today())
    except CaseValidationError as exc:
        return JSONResponse({"errors": field_problems(exc, parsed) | parsed.errors})
    out = a.derived.model_dump(mode="json")
    out["errors"] = parsed.errors
    return JSONResponse(out)


_SUFFIXES = (".json", ".yaml", ".yml", ".ndjson")


def _upload_problem(uploads: list[Upload], limit: int, limit_mb: float) -> tuple[str | None, int]:
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


async def upload(request: Request) -> Response:
    """A case file, a FHIR record or the NDJSON files of one bulk export, assessed."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    started = time.perf_counter()
    fields, files = await read_post(request)
    uploads = files.get("file", [])
    patient = (fields.get("patient") or [""])[-1].strip() or None
    limit = int(w.settings.max_upload_mb * 1024 * 1024)
    problem, status = _upload_problem(uploads, limit, w.settings.max_upload_mb)
    if problem is not None:
        return w.intake({}, upload_error=problem, status=status)
    names = [Path(u.filename or "").name for u in uploads]
    label = names[0] + (f" and {len(names) - 1} more files" if len(names) > 1 else "")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            invocation_id = await run_in_threadpool(
                _assess_upload, w, Path(tmp), uploads, names, patient, label, started
            )
        except InputError as exc:
            ids = exc.ids if isinstance(exc, SeveralPatients) else []
            text = (
                f"holds {len(ids)} patients: pick one below, then choose the file(s) again"
                if ids
                else _clean(exc.message, Path(tmp), names[0])
            )
            return w.intake({}, upload_error=f"{label}: {text}", upload_patients=ids, status=422)
    return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)


def _assess_upload(
    w: WebState,
    tmp: Path,
    uploads: list[Upload],
    names: list[str],
    patient: str | None,
    label: str,
    started: float,
) -> str:
    if len(uploads) == 1:
        path = tmp / f"upload{Path(names[0]).suffix.lower()}"
        path.write_bytes(uploads[0].content)
    else:  # the NDJSON files of one bulk export
        path = tmp / "export"
        path.mkdir()
        for i, (name, u) in enumerate(zip(names, uploads, strict=True)):
            (path / f"{i:03d}-{name}").write_bytes(u.content)
    got = load_patient(path, w.kb, w.today(), patient)
    assessment = got.assess(w.kb, w.today())
    return w.record(got.case, assessment, "web-upload", f"upload: {label}", started, got.subject)


def _clean(text: str, tmp: Path, name: str) -> str:
    """An error about the temporary copy of an upload, told about the uploaded files."""
    text = re.sub(re.escape(str(tmp)) + r"/upload\.\w+", name, text)
    text = re.sub(re.escape(str(tmp)) + r"/export/\d{3}-", "", text)
    text = text.replace(str(tmp) + "/export", "the uploaded files")
    return text.replace("--patient", "the patient field")


async def example(request: Request, name: str) -> Response:
    """One of the shipped examples, assessed."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    ex = EXAMPLES.get(name)
    if ex is None:
        return w.not_found(f"example {name!r}")
    invocation_id = await run_in_threadpool(_assess_example, w, ex)
    return RedirectResponse(f"/assessments/{invocation_id}", status_code=303)


def _assess_example(w: WebState, ex: Example) -> str:
    started = time.perf_counter()
    got = load_patient(ex.path, w.kb, w.today())
    assessment = got.assess(w.kb, w.today())
    return w.record(
        got.case, assessment, "web-example", f"example: {ex.title}", started, got.subject
    )


def edit(request: Request, invocation_id: str) -> HTMLResponse:
    """A past assessment's case in the full form, to change and assess again."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    got = w.load(invocation_id)
    if got is None or got[0].case is None:
        return w.not_found(f"assessment {invocation_id!r}")
    case = Case.model_validate(got[0].case)
    return w.intake(
        case_to_form(case, w.kb),
        note="Editing a past assessment: assess again to save a new one.",
    )


def history(request: Request, patient: str | None = None) -> HTMLResponse:
    """The latest assessments (of one patient, when given)."""
    w = web_state(request)
    if not w.open_pages:
        return w.closed()
    rows = w.store.recent(200, patient_id=patient or None, assessed=True)
    return w.pages.history(rows, patient)


def evidence(request: Request, name: str) -> HTMLResponse:
    """The evidence review the knowledge base is encoded from (a citation resolves here).
    Public: it holds no patient data."""
    w = web_state(request)
    doc = EVIDENCE_DOCS.get(name)
    if doc is None:
        return w.pages.page("missing.html", {"title": "Not found", "what": "such document"}, 404)
    return w.pages.document(doc)
