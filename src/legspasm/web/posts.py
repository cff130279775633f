"""Form posts: reading a submitted form, refusing one another site made, and showing a case's
validation problems next to the form fields they came from."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from ..errors import CaseValidationError
from .form import ParsedForm, field_of

__all__ = ["Upload", "field_problems", "read_post", "same_origin"]


@dataclass(frozen=True)
class Upload:
    filename: str | None
    content: bytes


async def read_post(request: Request) -> tuple[dict[str, list[str]], dict[str, list[Upload]]]:
    """A submitted form: every field with all its values, and the uploaded files' contents."""
    fields: dict[str, list[str]] = {}
    files: dict[str, list[Upload]] = {}
    async with request.form() as raw:
        for key, value in raw.multi_items():
            if isinstance(value, str):
                fields.setdefault(key, []).append(value)
            elif value.filename:
                files.setdefault(key, []).append(Upload(value.filename, await value.read()))
    return fields, files


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


def field_problems(exc: CaseValidationError, parsed: ParsedForm) -> dict[str, str]:
    """The problems of a case made from ``parsed``, by the form field each belongs to."""
    out: dict[str, str] = {}
    for path, problem in exc.problems:
        out.setdefault(field_of(path, parsed.rows), problem)
    return out
