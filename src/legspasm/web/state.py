"""What the web pages share, made once per app: :class:`WebState`.

The app assembly (``legspasm.server``) builds it from the shared parts (settings, knowledge,
audit store, plan-link key) and keeps it on ``app.state.web``; page endpoints reach it with
:func:`web_state`. Besides the parts, it holds what several pages do alike: record an
assessment, load one, decide whether a plan may be shown, and the common pages.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse
from starlette.requests import Request

from ..assessment import Assessment
from ..audit import AuditStore, Invocation
from ..capability import LinkCheck, check_token
from ..case import Case
from ..fhir.queries import lookback_days, prefetch_templates
from ..knowledge import Knowledge
from ..settings import Settings
from .examples import EXAMPLES
from .form import FormData
from .view import Templates

__all__ = ["SERVICE_ID", "WebState", "web_state"]

SERVICE_ID = "legspasm-web"


@dataclass
class WebState:
    """The web pages' share of the app. ``link_key`` checks the signed plan links
    (``legspasm.capability``) the CDS Hooks cards carry, and signs the SMART launch cookie."""

    settings: Settings
    kb: Knowledge
    store: AuditStore
    today: Callable[[], dt.date]
    link_key: bytes
    pages: Templates = field(init=False)
    templates: dict[str, str] = field(init=False)  # the FHIR queries of a SMART launch
    lookback_days: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = Templates(self.kb)
        self.templates = prefetch_templates(self.kb)
        self.lookback_days = lookback_days(self.kb)

    @property
    def open_pages(self) -> bool:
        """Whether the intake, upload and history pages are served."""
        return self.settings.web_pages_on

    # -- pages several endpoints answer with ----------------------------------------------

    def closed(self) -> HTMLResponse:
        return self.pages.page("closed.html", {"title": "Web pages are off"}, status=404)

    def not_found(self, what: str) -> HTMLResponse:
        return self.pages.page("missing.html", {"title": "Not found", "what": what}, status=404)

    def intake(
        self,
        values: Mapping[str, list[str]],
        errors: Mapping[str, str] | None = None,
        status: int = 200,
        upload_error: str | None = None,
        upload_patients: list[str] | None = None,
        note: str | None = None,
    ) -> HTMLResponse:
        return self.pages.intake(
            values,
            errors or {},
            status=status,
            examples=EXAMPLES,
            upload_error=upload_error,
            upload_patients=upload_patients or [],
            note=note,
            as_of=self.today(),
        )

    def step_page(
        self,
        step: int,
        values: FormData,
        errors: Mapping[str, str] | None = None,
        status: int = 200,
        **kw: Any,
    ) -> HTMLResponse:
        return self.pages.step(step, values, errors or {}, as_of=self.today(), status=status, **kw)

    # -- plan links -----------------------------------------------------------------------

    def refused(self, invocation_id: str, t: str | None) -> HTMLResponse | None:
        """None when this assessment may be shown: the pages are open (behind the
        organisation's login), or ``t`` is a valid plan-link token for it; else the page that
        says why not (403 for a missing or wrong token, 410 for an expired one)."""
        if self.open_pages:
            return None
        check = check_token(self.link_key, invocation_id, t, time.time())
        if check is LinkCheck.VALID:
            return None
        expired = check is LinkCheck.EXPIRED
        context = {
            "title": "This link has expired" if expired else "This link does not open a plan",
            "expired": expired,
        }
        return self.pages.page("link.html", context, status=410 if expired else 403)

    def cap(self, t: str | None) -> str:
        """The query that carries the token on to the page's own links."""
        return "" if self.open_pages or not t else "?" + urlencode({"t": t})

    # -- assessments in the audit store ---------------------------------------------------

    def record(
        self,
        case: Case,
        assessment: Assessment,
        hook: str,
        label: str,
        started: float,
        patient: str | None = None,
    ) -> str:
        """Store an assessment made here with the case it was made from; its id."""
        invocation_id = str(uuid.uuid4())
        self.store.record_invocation(
            Invocation(
                id=invocation_id,
                received_at=dt.datetime.now(dt.UTC),
                service_id=SERVICE_ID,
                hook=hook,
                hook_instance=None,
                knowledge_version=self.kb.version,
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

    def open(
        self, invocation_id: str, t: str | None, what: str | None = None
    ) -> tuple[Invocation, Assessment] | HTMLResponse:
        """A stored assessment a page may show (``refused`` and ``load``), else the page that
        says why not: 403 or 410 for the link, 404 naming ``what`` (default: the assessment)."""
        if (no := self.refused(invocation_id, t)) is not None:
            return no
        got = self.load(invocation_id)
        return got if got is not None else self.not_found(what or f"assessment {invocation_id!r}")

    def load(self, invocation_id: str) -> tuple[Invocation, Assessment] | None:
        """A stored assessment by id, or None (not an id, none such, or no assessment)."""
        try:
            uuid.UUID(invocation_id)
        except ValueError:
            return None
        inv = self.store.invocation(invocation_id)
        if inv is None or inv.assessment is None:
            return None
        return inv, Assessment.model_validate(inv.assessment)


def web_state(request: Request) -> WebState:
    """The web state of the app serving ``request``."""
    state: WebState = request.app.state.web
    return state
