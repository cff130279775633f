"""Browser-based CDS clients (the CDS Hooks sandbox) can call the service: CORS preflight."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from legspasm.server import create_app
from legspasm.settings import Settings
from live_server import serve


def test_cors_preflight_and_response_headers(tmp_path: Path) -> None:
    settings = Settings(
        dev=True, database_url=f"sqlite:///{tmp_path}/a.sqlite3", as_of=dt.date(2026, 11, 21)
    )
    origin = "https://sandbox.cds-hooks.org"
    with serve(create_app(settings)) as base, httpx.Client(base_url=base) as client:
        pre = client.options(
            "/cds-services/legspasm-order-sign",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "*"
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        got = client.get("/cds-services", headers={"Origin": origin})
        assert got.headers["access-control-allow-origin"] == "*"


def test_cors_can_be_turned_off(tmp_path: Path) -> None:
    settings = Settings(dev=True, database_url=f"sqlite:///{tmp_path}/a.sqlite3", cors_origins=[])
    with serve(create_app(settings)) as base:
        got = httpx.get(f"{base}/cds-services", headers={"Origin": "https://x.example"})
        assert "access-control-allow-origin" not in got.headers
