"""Reading a patient's record from a FHIR server: the query templates filled from a context,
every page of each search fetched in parallel with a bearer token, strict timeouts and a cap on
resources. Used by the CDS Hooks service (absent prefetch keys) and the web page (after a SMART
launch). A failure is ``DataUnavailable`` naming the query; tokens never appear in errors."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import DataUnavailable

__all__ = ["fetch_queries", "fill", "patient_id", "server_url"]

_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")
_MAX_PAGES = 20


def patient_id(context: Mapping[str, Any]) -> str | None:
    """``context.patientId`` without a ``Patient/`` prefix (some clients send a reference)."""
    pid = context.get("patientId") or context.get("patient")
    if not isinstance(pid, str) or not pid.strip():
        return None
    return pid.strip().removeprefix("Patient/")


def fill(template: str, context: Mapping[str, Any]) -> str | None:
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


def server_url(url: str) -> httpx.URL:
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


def fetch_queries(
    client: httpx.Client,
    base: str,
    queries: Mapping[str, str],
    token: str | None,
    cap: int,
) -> dict[str, list[Any]]:
    """Each query (relative to ``base``) fetched with every page, in parallel: key -> the
    resources and search Bundles it returned (DataUnavailable naming the key on failure)."""
    try:
        server = server_url(base)
    except DataUnavailable as exc:
        raise DataUnavailable(list(queries), exc.problem) from None
    headers = {"Accept": "application/fhir+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    keys: Sequence[str] = list(queries)

    def one(k: str) -> list[Any]:
        url = base.rstrip("/") + "/" + queries[k]
        try:
            return _fetch(client, url, headers, cap, server)
        except DataUnavailable as exc:
            raise DataUnavailable([k], exc.problem) from None
        except httpx.TimeoutException:
            raise DataUnavailable([k], "the FHIR server did not answer in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DataUnavailable(
                [k], f"cannot reach the FHIR server ({type(exc).__name__})"
            ) from None

    if not keys:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
        return dict(zip(keys, pool.map(one, keys), strict=True))
