"""The data a hook needs: the request's prefetch, and what is missing fetched from fhirServer.

A prefetch key that is present (even ``null``, which means "no data") is used as sent; every
prefetch value is read, whatever its key, so data an EHR sends under other names are not lost.
A key that is absent is fetched from ``fhirServer`` with the ``fhirAuthorization`` bearer token,
in parallel, with strict timeouts and a cap on resources; when that is impossible the request
fails with ``DataUnavailable`` (HTTP 412). Tokens never appear in errors or logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import DataUnavailable
from .models import CdsRequest

__all__ = ["Gathered", "gather", "patient_id"]

_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")
_MAX_PAGES = 20


@dataclass
class Gathered:
    resources: list[dict[str, Any]]
    fetched: list[str] = field(default_factory=list)  # keys read from fhirServer


def patient_id(context: Mapping[str, Any]) -> str | None:
    """``context.patientId`` without a ``Patient/`` prefix (some clients send a reference)."""
    pid = context.get("patientId") or context.get("patient")
    if not isinstance(pid, str) or not pid.strip():
        return None
    return pid.strip().removeprefix("Patient/")


def _fill(template: str, context: Mapping[str, Any]) -> str | None:
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1)
        value = patient_id(context) if name == "patientId" else context.get(name)
        if not isinstance(value, str) or not value:
            missing = True
            return ""
        return quote(value, safe="")

    out = _TOKEN.sub(sub, template)
    return None if missing else out


def _server(url: str) -> httpx.URL:
    """``fhirServer`` as a URL, or DataUnavailable naming the problem (never a 500)."""
    try:
        parsed = httpx.URL(url)
        _ = parsed.port  # a malformed port (http://a:1x/) raises here or above
    except (httpx.InvalidURL, ValueError, TypeError):
        raise DataUnavailable([], "fhirServer is not a valid URL") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise DataUnavailable([], "fhirServer is not a valid URL (port out of range)")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DataUnavailable([], "fhirServer is not an http(s) URL")
    return parsed


def _within(url: httpx.URL, server: httpx.URL) -> bool:
    """Whether ``url`` is on the FHIR server: same scheme, host and port, under its path."""
    base = server.path.rstrip("/") + "/"
    return (url.scheme, url.host, url.port) == (server.scheme, server.host, server.port) and (
        url.path + "/"
    ).startswith(base)


def _fetch(
    client: httpx.Client, url: str, headers: dict[str, str], cap: int, server: httpx.URL
) -> list[Any]:
    """Every page of a search. A ``next`` link is followed only on the FHIR server itself: the
    access token is never sent to another host (a link elsewhere fails the fetch, so no data
    are silently dropped)."""
    out: list[Any] = []
    next_url: httpx.URL | None = httpx.URL(url)
    pages = 0
    while next_url is not None and pages < _MAX_PAGES and len(out) < cap:
        r = client.get(next_url, headers=headers)
        pages += 1
        if r.status_code != 200:
            raise DataUnavailable([], f"the FHIR server answered HTTP {r.status_code}")
        try:
            body = r.json()
        except ValueError:
            raise DataUnavailable([], "the FHIR server did not answer JSON") from None
        if not isinstance(body, dict):
            raise DataUnavailable([], "the FHIR server did not answer a FHIR resource")
        if body.get("resourceType") != "Bundle":
            return [body]
        out.append({k: v for k, v in body.items() if k != "link"})
        link = next(
            (
                link.get("url")
                for link in body.get("link") or []
                if isinstance(link, dict) and link.get("relation") == "next"
            ),
            None,
        )
        if not isinstance(link, str) or not link:
            return out
        try:
            next_url = next_url.join(link)
        except (httpx.InvalidURL, ValueError):
            raise DataUnavailable([], "the FHIR server's next link is not a valid URL") from None
        if not _within(next_url, server):
            raise DataUnavailable(
                [], "the FHIR server's next link points outside fhirServer: not followed"
            )
    return out


def gather(
    req: CdsRequest,
    templates: Mapping[str, str],
    client: httpx.Client,
    max_resources: int,
    since: Mapping[str, str] | None = None,
) -> Gathered:
    """Every resource sent or fetched for this request, with the keys fetched. ``since``: extra
    search parameters for a key when it is fetched (a date look-back, e.g. ``date=ge...``)."""
    sent = req.prefetch or {}
    resources = [v for v in sent.values() if v is not None]
    absent = [k for k in templates if k not in sent]
    if not absent:
        return Gathered(resources)
    if not req.fhirServer:
        raise DataUnavailable(absent, "not prefetched, and the request names no fhirServer")
    try:
        server = _server(req.fhirServer)
    except DataUnavailable as exc:
        raise DataUnavailable(absent, exc.problem) from None
    urls: dict[str, str] = {}
    for k in absent:
        query = _fill(templates[k], req.context)
        if query is None:
            raise DataUnavailable([k], "the context lacks a value the query needs (patientId)")
        extra = (since or {}).get(k)
        urls[k] = req.fhirServer.rstrip("/") + "/" + query + (f"&{extra}" if extra else "")
    headers = {"Accept": "application/fhir+json"}
    auth = req.fhirAuthorization
    if auth is not None:
        headers["Authorization"] = f"Bearer {auth.access_token}"

    def one(k: str) -> list[Any]:
        try:
            return _fetch(client, urls[k], headers, max_resources, server)
        except DataUnavailable as exc:
            raise DataUnavailable([k], exc.problem) from None
        except httpx.TimeoutException:
            raise DataUnavailable([k], "the FHIR server did not answer in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DataUnavailable(
                [k], f"cannot reach the FHIR server ({type(exc).__name__})"
            ) from None

    with ThreadPoolExecutor(max_workers=min(8, len(absent))) as pool:
        results = list(pool.map(one, absent))
    for got in results:
        resources.extend(got)
    return Gathered(resources, absent)
