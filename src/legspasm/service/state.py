"""What the CDS Hooks endpoints share, made once per app: :class:`ServiceState`.

The app assembly (``legspasm.server``) builds it from the shared parts (settings, knowledge,
audit store, HTTP client, token verifier, plan-link key) and keeps it on ``app.state.service``;
endpoints and exception handlers reach it with :func:`service_state`.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from starlette.requests import Request

from ..assessment import Assessment
from ..audit import AuditStore, CardRecord, Invocation
from ..audit.journal import Journal
from ..audit.store import RawJSON
from ..capability import sign_token
from ..knowledge import Knowledge
from ..settings import Settings
from .auth import TokenVerifier
from .cards import IssuedCard
from .hooks import SERVICES, discovery, lookback_days, prefetch_templates
from .models import CdsRequest, Discovery
from .prefetch import patient_id
from .refusals import RefusalCounter

__all__ = ["ServiceState", "service_state"]


@dataclass
class ServiceState:
    """The CDS Hooks service's share of the app. ``journal`` is set while the app runs (its
    lifespan): invocations are appended to it, else written to the store directly."""

    settings: Settings
    kb: Knowledge
    store: AuditStore
    http: httpx.Client
    verifier: TokenVerifier | None  # None in dev mode: tokens are not checked
    today: Callable[[], dt.date]
    link_key: bytes
    refusals: RefusalCounter
    journal: Journal | None = None
    templates: dict[str, str] = field(init=False)
    lookback_days: int = field(init=False)
    discovery: Discovery = field(init=False)

    def __post_init__(self) -> None:
        self.templates = prefetch_templates(self.kb)
        self.lookback_days = lookback_days(self.kb)
        self.discovery = Discovery(services=discovery(self.kb))

    def plan_token(self, invocation_id: str) -> str:
        """The signed, expiring token a card's link to its plan carries."""
        expires = int(time.time() + self.settings.plan_link_hours * 3600)
        return sign_token(self.link_key, invocation_id, expires)

    def body_refused(self, path: str, status: int) -> None:
        """A body refused before it was read (``BodyLimit``): counted for a hook invocation."""
        sid = path.removeprefix("/cds-services/")
        if path.startswith("/cds-services/") and sid in SERVICES:
            self.refusals.add(sid, "too-large" if status == 413 else "bad-request")

    def audit(
        self,
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
        """Record one invocation (answered or refused) before its response is sent."""
        svc = SERVICES.get(service_id)
        write = self.journal.append if self.journal is not None else self.store.record_invocation
        write(
            Invocation(
                id=invocation_id or str(uuid.uuid4()),
                received_at=dt.datetime.now(dt.UTC),
                service_id=service_id,
                hook=req.hook if req else (svc.hook if svc else "unknown"),
                hook_instance=req.hookInstance if req else None,
                knowledge_version=self.kb.version,
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


def service_state(request: Request) -> ServiceState:
    """The service state of the app serving ``request``."""
    state: ServiceState = request.app.state.service
    return state
