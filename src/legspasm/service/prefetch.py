"""The data a hook needs: the request's prefetch, and what is missing fetched from fhirServer.

A prefetch key that is present (even ``null``, which means "no data") is used as sent; every
prefetch value is read, whatever its key, so data an EHR sends under other names are not lost.
A key that is absent is fetched from ``fhirServer`` with the ``fhirAuthorization`` bearer token,
in parallel, with strict timeouts and a cap on resources; when that is impossible the request
fails with ``DataUnavailable`` (HTTP 412). Tokens never appear in errors or logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import DataUnavailable
from ..fhir.fetch import fetch_queries, fill, patient_id
from .models import CdsRequest

__all__ = ["Gathered", "gather", "patient_id"]


@dataclass
class Gathered:
    resources: list[dict[str, Any]]
    fetched: list[str] = field(default_factory=list)  # keys read from fhirServer


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
    queries: dict[str, str] = {}
    for k in absent:
        query = fill(templates[k], req.context)
        if query is None:
            raise DataUnavailable([k], "the context lacks a value the query needs (patientId)")
        extra = (since or {}).get(k)
        queries[k] = query + (f"&{extra}" if extra else "")
    token = req.fhirAuthorization.access_token if req.fhirAuthorization is not None else None
    got = fetch_queries(client, req.fhirServer, queries, token, max_resources)
    for k in absent:
        resources.extend(got[k])
    return Gathered(resources, absent)
