"""The web pages' route table: every URL the clinician pages answer, and its endpoint.

Only the card link target ``/plan/{invocation}`` is in the OpenAPI schema; form posts are
refused when another site's page sent them (``posts.same_origin``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from . import STATIC, launch, pages, results
from .posts import same_origin

__all__ = ["ROUTES"]


def _get(path: str, endpoint: Callable[..., Any]) -> APIRoute:
    """A page, kept out of the OpenAPI schema."""
    return APIRoute(path, endpoint, methods=["GET"], include_in_schema=False)


def _post(path: str, endpoint: Callable[..., Any]) -> APIRoute:
    """A form post, kept out of the OpenAPI schema, refused when another site's page sent it."""
    return APIRoute(
        path,
        endpoint,
        methods=["POST"],
        include_in_schema=False,
        dependencies=[Depends(same_origin)],
    )


ROUTES: list[BaseRoute] = [
    _post("/intake/step", pages.intake_step),
    _get("/", pages.home),
    _post("/assess", pages.assess),
    _post("/intake/derived", pages.derived),
    _post("/upload", pages.upload),
    _post("/examples/{name}", pages.example),
    _get("/assessments/{invocation_id}", results.result),
    APIRoute(
        "/plan/{invocation_id}",
        results.result,
        methods=["GET"],
        response_class=HTMLResponse,
        summary="The full plan behind a card (the card link target): an HTML page",
        responses={
            403: {"description": "The link carries no valid token for this plan (HTML page)"},
            404: {"description": "No such assessment (HTML page)"},
            410: {"description": "The link's token has expired (HTML page)"},
        },
    ),
    _post("/assessments/{invocation_id}/answers", results.answers),
    _get("/assessments/{invocation_id}/edit", pages.edit),
    _get("/assessments/{invocation_id}/print", results.print_view),
    _get("/assessments/{invocation_id}/{kind}.pdf", results.pdf),
    _get("/smart/launch", launch.smart_launch),
    _get("/smart/callback", launch.smart_callback),
    _get("/docs/evidence/{name}", pages.evidence),
    _get("/history", pages.history),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]
