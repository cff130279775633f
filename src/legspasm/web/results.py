"""An assessment's pages: the result (also the CDS Hooks card link ``/plan/{invocation}``), the
missing data answered in place, the print view and the PDFs.

Each is shown when the web pages are open, or to whoever holds a valid plan-link token for
that one assessment (``?t=``, signed with the link key: :meth:`WebState.refused`); the token is
carried on to the page's own links, and an assessment re-made from a plan link opens until the
same time, no later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..capability import sign_token
from ..case import Case
from ..caseio import parse_case
from ..engine import evaluate
from ..errors import CaseValidationError
from ..knowledge import Knowledge
from ..render.charts import charts
from ..render.pdf import handout_pdf, summary_pdf
from .form import FormData, case_to_form, read_form
from .posts import field_problems, read_post
from .state import WebState, web_state

__all__ = ["answers", "pdf", "print_view", "result"]


def result(request: Request, invocation_id: str, t: str | None = None) -> HTMLResponse:
    w = web_state(request)
    got = w.open(invocation_id, t)
    if isinstance(got, HTMLResponse):
        return got
    inv, a = got
    case = Case.model_validate(inv.case) if inv.case is not None else None
    editable = case is not None and _round_trips(case, w.kb)
    return w.pages.result(inv, a, case, editable=editable, open_pages=w.open_pages, cap=w.cap(t))


async def answers(request: Request, invocation_id: str, t: str | None = None) -> Response:
    """Re-assess with the missing data answered on the result page."""
    w = web_state(request)
    if (no := w.refused(invocation_id, t)) is not None:
        return no
    fields, _ = await read_post(request)
    return await run_in_threadpool(_reassess, w, invocation_id, fields, t)


def _reassess(w: WebState, invocation_id: str, fields: FormData, t: str | None) -> Response:
    got = w.load(invocation_id)
    if got is None:
        return w.not_found(f"assessment {invocation_id!r}")
    inv, a = got
    if inv.case is None:
        return w.not_found(f"the case of assessment {invocation_id!r}")
    started = time.perf_counter()
    parsed = read_form(fields, w.kb)
    merged = _merge(inv.case, parsed.data)
    errors = dict(parsed.errors)
    new_id = None
    if not errors:
        try:
            case = parse_case(merged, "answers")
            assessment = evaluate(case, w.kb, w.today())
            if inv.assessment and a.data_used:
                assessment = assessment.model_copy(
                    update={"data_used": a.data_used, "unmapped": a.unmapped}
                )
            new_id = w.record(
                case, assessment, "web-reassess", _relabel(inv.label), started, inv.patient_id
            )
        except CaseValidationError as exc:
            errors = field_problems(exc, parsed)
    if new_id is None:
        case = Case.model_validate(inv.case)
        return w.pages.result(
            inv,
            a,
            case,
            editable=_round_trips(case, w.kb),
            open_pages=w.open_pages,
            answers=fields,
            errors=errors,
            status=422,
            cap=w.cap(t),
        )
    if w.open_pages or t is None:
        return RedirectResponse(f"/assessments/{new_id}", status_code=303)
    # reached through a plan link: the new assessment opens until the same time, no later
    expires = int(t.partition(".")[0])
    again = w.cap(sign_token(w.link_key, new_id, expires))
    return RedirectResponse(f"/assessments/{new_id}{again}", status_code=303)


def print_view(request: Request, invocation_id: str, t: str | None = None) -> HTMLResponse:
    w = web_state(request)
    got = w.open(invocation_id, t)
    if isinstance(got, HTMLResponse):
        return got
    return w.pages.print_view(*got, cap=w.cap(t))


def pdf(request: Request, invocation_id: str, kind: str, t: str | None = None) -> Response:
    """The clinician summary (summary.pdf) or the patient handout (handout.pdf)."""
    w = web_state(request)
    got = w.open(invocation_id, t, f"{kind}.pdf of assessment {invocation_id!r}")
    if isinstance(got, HTMLResponse):
        return got
    if kind not in ("summary", "handout"):
        return w.not_found(f"{kind}.pdf of assessment {invocation_id!r}")
    size = w.settings.handout_page_size
    if kind == "summary":
        content = summary_pdf(got[1], charts(got[1], w.kb), page_size=size)
    else:
        content = handout_pdf(got[1], page_size=size)
    filename = f"legspasm-{kind}-{invocation_id[:8]}.pdf"
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


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
