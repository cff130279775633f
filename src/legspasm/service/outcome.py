"""Errors as FHIR OperationOutcomes: the app's exception handlers, one module-level function each.

400 bad request (naming the fields), 401 bare (no detail: the reason goes to the log only),
404 unknown service or page, 412 data unavailable, 500 internal error; never a traceback. A
refused hook invocation is audited (a 400, a 500) or counted (a 401), so nothing an EHR sent
goes unrecorded. :data:`EXCEPTION_HANDLERS` is what the app assembly registers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import AuthError, InputError, LegspasmError
from .hooks import SERVICES
from .state import service_state

__all__ = ["EXCEPTION_HANDLERS", "BadRequest", "outcome"]

log = logging.getLogger("legspasm.service")


class BadRequest(InputError):
    """A request that is well-formed JSON but cannot be served (names the field)."""

    def __init__(self, field: str, problem: str, more: Sequence[tuple[str, str]] = ()) -> None:
        parts = [(field, problem), *more]
        super().__init__("; ".join(f"{f}: {p}" for f, p in parts))
        self.field = field
        self.fields = [f for f, _ in parts]


def outcome(status: int, code: str, text: str, where: list[str] | None = None) -> JSONResponse:
    """An OperationOutcome of one issue (``where``: the fields it is about)."""
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if where:
        issue["expression"] = where
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": [issue]},
        status_code=status,
        media_type="application/fhir+json",
    )


def invoked_service(request: Request) -> str | None:
    """The service id when ``request`` is a hook invocation (not discovery, not feedback)."""
    sid = request.path_params.get("service_id")
    if isinstance(sid, str) and sid in SERVICES and not request.url.path.endswith("/feedback"):
        return sid
    return None


def _audit_refused(request: Request, status: int, result: str, error: str) -> None:
    if (sid := invoked_service(request)) is not None:
        service_state(request).audit(sid, time.perf_counter(), status, result, error=error)


async def auth_error(request: Request, exc: AuthError) -> Response:
    log.info("401 on %s: %s", request.url.path, exc.reason)
    if (sid := invoked_service(request)) is not None:
        service_state(request).refusals.add(sid)  # counted: a flood cannot fill the store
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def invalid(request: Request, exc: RequestValidationError) -> Response:
    problems = [
        (".".join(str(p) for p in e["loc"] if p != "body") or "body", e["msg"])
        for e in exc.errors()[:20]
    ]
    text = "; ".join(f"{w}: {m}" for w, m in problems)
    _audit_refused(request, 400, "bad-request", text)
    return outcome(400, "invalid", text, [w for w, _ in problems])


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = "not-found" if exc.status_code == 404 else "processing"
    # FastAPI's "error parsing the body" (e.g. not UTF-8) is a refused invocation too.
    if exc.status_code == 400:
        _audit_refused(request, 400, "bad-request", str(exc.detail))
    response = outcome(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    return response


async def bad_request(request: Request, exc: BadRequest) -> Response:
    return outcome(400, "invalid", exc.message, exc.fields)


async def internal(request: Request, exc: LegspasmError) -> Response:
    log.error("internal error on %s: %s", request.url.path, exc.message)
    return _failed(request, exc.message)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return _failed(request, f"{type(exc).__name__}: {exc}"[:500])


def _failed(request: Request, error: str) -> Response:
    """A 500, with its audit row when it was an invocation (unless the store is what failed:
    then the log has it)."""
    try:
        _audit_refused(request, 500, "error", error)
    except LegspasmError as exc:
        log.error("the failed invocation could not be audited: %s", exc.message)
    return outcome(500, "exception", "internal error; see the service log")


# Each handler takes the exception class it is registered for.
Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

EXCEPTION_HANDLERS: dict[int | type[Exception], Handler] = {
    AuthError: auth_error,
    RequestValidationError: invalid,
    StarletteHTTPException: http_error,
    BadRequest: bad_request,
    LegspasmError: internal,
    Exception: unexpected,
}
