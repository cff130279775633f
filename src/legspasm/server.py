"""The HTTP server's app: the CDS Hooks service and the clinician web pages, assembled in one
place (what ``legspasm serve`` runs).

``create_app(settings)`` checks the settings, builds what both share once (knowledge, audit
store, HTTP client, token verifier, plan-link key), gives each its state
(``app.state.service``: :class:`~legspasm.service.state.ServiceState`, ``app.state.web``:
:class:`~legspasm.web.state.WebState`) and mounts their route tables
(``service.routes.ROUTES``, ``web.routes.ROUTES``) with the service's exception handlers
(``service.outcome``). ``service/`` and ``web/`` never import each other. While the app runs
(its lifespan) the service's audit records go to the audit journal, which a background thread
moves into the store.

``serve(settings)`` runs it: in this process, or in ``settings.workers`` worker processes
sharing the port (uvicorn's supervisor), each building its own app with :func:`worker_app`
from the settings this process puts in their environment. Every worker uses the one database
(PostgreSQL, or a SQLite file in WAL mode), so the JWT replay guard, repeat suppression, card
links and the feedback report see what every worker did; each worker appends to its own
journal file in the database's journal folder.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import SecretStr, ValidationError
from starlette.middleware import Middleware

from .audit import AuditStore
from .audit.journal import open_journal
from .errors import ConfigError, InputError, LegspasmError
from .knowledge import Knowledge, load_knowledge
from .service.auth import TokenVerifier
from .service.headers import SecurityHeaders
from .service.limits import BodyLimit
from .service.outcome import EXCEPTION_HANDLERS
from .service.refusals import RefusalCounter
from .service.routes import ROUTES as SERVICE_ROUTES
from .service.state import ServiceState
from .settings import Settings
from .web.routes import ROUTES as WEB_ROUTES
from .web.state import WebState

__all__ = ["WORKER_HEADER", "check_settings", "create_app", "serve", "worker_app"]

log = logging.getLogger("legspasm.service")

WORKER_HEADER = "x-legspasm-worker"
"""With several workers, every answer names the process that gave it (its pid, as logged)."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def check_settings(settings: Settings) -> None:
    """Raise InputError (ConfigError naming the setting) when the settings cannot work."""
    if settings.workers > 1 and AuditStore.in_memory(settings.database_url):
        raise ConfigError(
            "LEGSPASM_DATABASE_URL",
            f"an in-memory database lives in one process; {settings.workers} workers need a "
            "SQLite file or PostgreSQL",
        )
    if settings.dev:
        return
    if not settings.issuers:
        raise InputError(
            "LEGSPASM_ISSUERS: no trusted issuers: set a JSON list of "
            "{iss, jwks_url | jwks_file}, or use --dev"
        )
    if not settings.public_url:
        raise ConfigError(
            "LEGSPASM_PUBLIC_URL",
            "required unless --dev: a JWT's audience is checked against the URL the EHR "
            "calls, never against the Host header a request carries",
        )
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
    if settings.link_secret is None:
        raise ConfigError(
            "LEGSPASM_LINK_SECRET",
            "required unless --dev: card links to the plan are signed with it (32 or more "
            "random characters, the same for every worker)",
        )


def _secure(url: str) -> bool:
    """An https URL, or http on the loopback interface (a TLS proxy on the same machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def create_app(
    settings: Settings,
    *,
    kb: Knowledge | None = None,
    store: AuditStore | None = None,
    http: httpx.Client | None = None,
    today: Callable[[], dt.date] | None = None,
    refusal_window_s: float = 60.0,
) -> FastAPI:
    """The app. Raises LegspasmError when the settings cannot work (no issuers, bad DB).
    A store or HTTP client passed in stays the caller's to close; those made here are closed
    when the app stops."""
    check_settings(settings)
    kb = kb or load_knowledge()
    link_key = (
        settings.link_secret.get_secret_value().encode()
        if settings.link_secret is not None
        else secrets.token_bytes(32)  # dev: a random key per process
    )
    owned: list[Callable[[], None]] = []
    if http is None:
        http = httpx.Client(
            timeout=httpx.Timeout(
                settings.fhir_timeout_s, connect=min(1.0, settings.fhir_timeout_s)
            ),
            follow_redirects=False,
        )
        owned.append(http.close)
    if store is None:
        store = AuditStore.open(settings.database_url)
        owned.append(store.close)
    today = today or (lambda: settings.as_of or dt.date.today())
    service = ServiceState(
        settings=settings,
        kb=kb,
        store=store,
        http=http,
        verifier=None if settings.dev else TokenVerifier(settings, http, replay=store.claim_token),
        today=today,
        link_key=link_key,
        refusals=RefusalCounter(store.record_refusals, refusal_window_s),
    )
    if settings.dev:
        log.warning(
            "DEVELOPMENT MODE: CDS Hooks JWTs are NOT verified. Anyone who can reach this port "
            "can call the service. Never run --dev with real patient data."
        )
    app = FastAPI(
        title="legspasm CDS Hooks service",
        version=kb.version,
        description="Leg cramps, spasms and restless legs: CDS Hooks 2.0 services.",
        lifespan=_lifespan,
        # The clinician web pages share the app: the card link /plan/{invocation} is their
        # result page for that invocation.
        routes=[*SERVICE_ROUTES, *WEB_ROUTES],
        middleware=_middleware(settings, service),
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.service = service
    app.state.web = WebState(settings, kb, store, today, link_key)
    app.state.owned = owned
    return app


def _middleware(settings: Settings, service: ServiceState) -> list[Middleware]:
    """Outermost first: CORS, the security headers (so the body limit's 413s carry them too),
    the body limit (before anything reads, parses or authenticates a body)."""
    cors = Middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
    )
    return [
        *([cors] if settings.cors_origins else []),
        Middleware(SecurityHeaders, extra=_worker_header(settings)),
        Middleware(
            BodyLimit,
            max_bytes=int(settings.max_body_mb * 1024 * 1024),
            on_refused=service.body_refused,
        ),
    ]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While the app runs: a few request threads, and the audit journal (loading what a killed
    process left before serving; drained on the way out, SIGTERM included)."""
    service: ServiceState = app.state.service
    settings = service.settings
    # Requests are CPU-bound (mapping, evaluate, cards) under one GIL: a few threads serve
    # them faster than anyio's default 40, which mostly contend for the interpreter.
    to_thread.current_default_thread_limiter().total_tokens = settings.threads
    if settings.audit_journal:
        service.journal = await to_thread.run_sync(
            open_journal, service.store, settings.journal_dir, settings.journal_interval_s
        )
    if service.journal is not None:
        service.journal.start()
    try:
        yield
    finally:
        if service.journal is not None:
            done, service.journal = service.journal, None
            await to_thread.run_sync(done.close)
    service.refusals.flush()
    owned: list[Callable[[], None]] = app.state.owned
    for close in owned:
        close()


def _worker_header(settings: Settings) -> list[tuple[bytes, bytes]]:
    if settings.workers == 1:
        return []
    return [(WORKER_HEADER.encode(), str(os.getpid()).encode())]


# -- serving ----------------------------------------------------------------------------------


def serve(settings: Settings, announce: Callable[[str], None] = print) -> None:
    """Serve until stopped (SIGTERM, Ctrl-C): in this process, or in ``settings.workers``
    processes on the one port. Raises LegspasmError before serving when the settings cannot
    work; ``announce`` is told where the service and the web pages are."""
    import uvicorn

    if settings.workers == 1:
        app = _serving(create_app(settings))
        store_url = app.state.service.store.url
        target: FastAPI | str = app
    else:
        settings = _with_shared_link_secret(settings)
        check_settings(settings)
        with AuditStore.open(settings.database_url) as store:  # migrated once, before workers
            store_url = store.url
        for key, value in worker_environment(settings).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        target = f"{__name__}:{worker_app.__name__}"
    base = f"http://{settings.host}:{settings.port}"
    workers = f", {settings.workers} worker processes" if settings.workers > 1 else ""
    announce(
        f"legspasm CDS Hooks service on {base}/cds-services (audit store {store_url}{workers})"
    )
    announce(
        f"legspasm web page on {base}/"
        if settings.web_pages_on
        else "legspasm web page: intake and history are off (LEGSPASM_WEB_PAGES); "
        "result pages behind card links are served"
    )
    # The audit store records every invocation; a per-request access log would only cost time.
    uvicorn.run(
        target,
        factory=settings.workers > 1,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
    )


def _serving(app: FastAPI) -> FastAPI:
    """``app``, with everything built so far (the knowledge above all) moved out of the garbage
    collector's sight: it lives as long as the process. A request makes many short-lived
    objects, and those still alive when a collection runs (other requests in flight) reach the
    oldest generation; each full collection then walked the whole knowledge again (about
    100 ms, every second or so under load: about a millisecond of CPU per request)."""
    gc.collect()
    gc.freeze()
    return app


def _with_shared_link_secret(settings: Settings) -> Settings:
    """Dev mode signs plan links and SMART launch cookies with a random key per process; with
    several workers, one random key for all of them (a link or launch may end on any worker)."""
    if settings.link_secret is not None:
        return settings
    return settings.model_copy(update={"link_secret": SecretStr(secrets.token_urlsafe(32))})


def worker_environment(settings: Settings) -> dict[str, str | None]:
    """The ``LEGSPASM_*`` variables from which ``Settings()`` reads ``settings`` back, so the
    workers run exactly this process's settings, command-line options included (None: a
    setting that is not set, to be removed from the environment)."""
    env: dict[str, str | None] = {}
    for name, value in settings.model_dump(mode="json").items():
        key = f"LEGSPASM_{name.upper()}"
        if name == "link_secret" and settings.link_secret is not None:
            env[key] = settings.link_secret.get_secret_value()
        else:
            env[key] = value if value is None or isinstance(value, str) else json.dumps(value)
    return env


def worker_app() -> FastAPI:
    """One worker's app (uvicorn's factory in each worker process): the settings from the
    environment :func:`serve` prepared. A setting that cannot work ends the worker with a
    clear error (and uvicorn's startup-failure code, which stops the supervisor)."""
    from uvicorn.config import STARTUP_FAILURE

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        return _serving(create_app(Settings()))
    except (LegspasmError, ValidationError) as exc:
        problem = exc.message if isinstance(exc, LegspasmError) else str(exc)
        log.error("worker %d cannot start: %s", os.getpid(), problem)
        sys.exit(STARTUP_FAILURE)
