"""The app assembly (legspasm.server): the CDS Hooks service and the web pages meet there only,
and every endpoint and exception handler is a module-level function in a route table."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.exceptions import WebSocketRequestValidationError as WebSocketRVE
from fastapi.routing import APIRoute
from typer.testing import CliRunner

from legspasm.cli import app as cli
from legspasm.errors import ConfigError
from legspasm.server import WORKER_HEADER, create_app, worker_environment
from legspasm.settings import Issuer, Settings
from live_server import free_port
from test_audit_journal import journal_folder, journals, pg_schema, rows_by_instance
from test_service import (
    ISS,
    JWKS,
    LINK_SECRET,
    RLS_LOW_FERRITIN,
    VIEW,
    cds_request,
    claims,
    token,
    vignette_prefetch,
)

SRC = Path(__file__).parent.parent / "src" / "legspasm"


def _imports(package: str) -> set[str]:
    """Every module the package's modules import (relative imports resolved)."""
    found: set[str] = set()
    for path in (SRC / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    found.add(node.module or "")
                    continue
                base = ["legspasm", package][: 3 - node.level]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
                if node.module is None:  # from .. import web
                    found.update(".".join([*base, a.name]) for a in node.names)
    return found


@pytest.mark.parametrize(("package", "other"), [("service", "web"), ("web", "service")])
def test_the_interfaces_never_import_each_other(package: str, other: str) -> None:
    imported = _imports(package)
    assert f"legspasm.{package}" in {m.rsplit(".", 1)[0] for m in imported}  # the walk works
    assert not {m for m in imported if m.startswith(f"legspasm.{other}")}


def test_every_endpoint_and_handler_is_a_module_level_function(tmp_path: Path) -> None:
    settings = Settings(
        dev=True, database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}", as_of=dt.date(2026, 11, 21)
    )
    app = create_app(settings)
    ours = [r for r in app.routes if isinstance(r, APIRoute)]
    assert {r.path for r in ours} >= {"/cds-services/{service_id}", "/plan/{invocation_id}", "/"}
    for route in ours:
        fn = route.endpoint
        assert fn.__module__.startswith(("legspasm.service.", "legspasm.web.")), route.path
        assert "<locals>" not in fn.__qualname__, f"{route.path}: {fn.__qualname__}"
    ours_handled = {k: h for k, h in app.exception_handlers.items() if k is not WebSocketRVE}
    assert {Exception, RequestValidationError} <= set(ours_handled)
    for handler in ours_handled.values():
        assert handler.__module__ == "legspasm.service.outcome", handler
        assert "<locals>" not in handler.__qualname__


def test_a_served_app_keeps_what_it_built_out_of_the_garbage_collectors_walks(
    tmp_path: Path,
) -> None:
    """What ``legspasm serve`` and each worker serve: the app built, then everything it holds
    (the knowledge above all) frozen, so a full collection under load no longer walks it."""
    probe = (
        "import gc\n"
        "from legspasm.server import worker_app\n"
        "app = worker_app()\n"
        "kb = app.state.service.kb\n"
        "tracked = {id(o) for o in gc.get_objects()}\n"
        "print(gc.get_freeze_count() > 0, id(kb) in tracked, id(kb.__dict__) in tracked)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGSPASM_")}
    env |= {"LEGSPASM_DEV": "true", "LEGSPASM_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    got = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["True", "False", "False"]


# -- several workers --------------------------------------------------------------------------


def test_the_workers_read_back_exactly_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        workers=3,
        port=8123,
        public_url="https://cds.example.org",
        link_secret="s" * 40,
        issuers=[Issuer(iss="https://ehr.example", jwks_file=Path("/keys/jwks.json"))],
        cors_origins=["https://a.example", "https://b.example"],
        web_pages=False,
        journal_dir=Path("/var/lib/legspasm/journal"),
        journal_interval_s=0.25,
        as_of=dt.date(2026, 11, 21),
        handout_page_size="a4",
    )
    monkeypatch.setenv("LEGSPASM_WEB_URL", "https://stale.example")  # not in these settings
    for key, value in worker_environment(settings).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert Settings() == settings


def test_several_workers_need_a_database_they_can_share(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        create_app(Settings(dev=True, database_url="sqlite://", workers=2))
    assert err.value.setting == "LEGSPASM_DATABASE_URL"
    env = {"LEGSPASM_DATABASE_URL": "sqlite:///:memory:"}
    got = CliRunner().invoke(cli, ["serve", "--dev", "--workers", "2"], env=env)
    assert got.exit_code == 2
    assert "LEGSPASM_DATABASE_URL" in got.output
    assert "2 workers need a SQLite file or PostgreSQL" in got.output


@pytest.fixture(params=["sqlite", "postgresql"])
def service_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a `legspasm serve` on a fresh database: a SQLite file (its journal
    in the default folder beside it), or a fresh PostgreSQL schema (LEGSPASM_JOURNAL_DIR)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGSPASM_")}
    if request.param == "sqlite":
        env["LEGSPASM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        yield env
        return
    with pg_schema() as url:
        env["LEGSPASM_DATABASE_URL"] = url
        env["LEGSPASM_JOURNAL_DIR"] = str(tmp_path / "journal")
        yield env


@dataclass
class Workers:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def post(self, body: Any, token: str | None = None) -> httpx.Response:
        """One request on a connection of its own (so any worker may take it)."""
        headers = {"Connection": "close"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        with httpx.Client(base_url=self.base, timeout=60, trust_env=False) as http:
            return http.post(f"/cds-services/{VIEW}", json=body, headers=headers)

    def stop(self) -> None:
        """SIGTERM: the supervisor stops each worker, which drains its journal."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        log = self.log.read_text()
        assert self.proc.returncode == 0, log
        assert log.count("Application shutdown complete") == 2, log


@contextmanager
def two_workers(env: dict[str, str], tmp_path: Path, port: int, *args: str) -> Iterator[Workers]:
    log = tmp_path / "serve.log"
    exe = Path(sys.executable).with_name("legspasm")
    cmd = [str(exe), "serve", "--workers", "2", "--port", str(port), "--as-of", "2026-11-21"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    service = Workers(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 90
        while log.read_text().count("Application startup complete") < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "legspasm serve --workers 2 did not start"
            time.sleep(0.1)
        yield service
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_two_workers_answer_and_every_answer_has_its_row_after_sigterm(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """Both workers take requests (a header names the one that answered); on SIGTERM each
    drains its journal into the one database: a row for every response, none twice."""
    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    answered: dict[str, tuple[int, str]] = {}  # hookInstance -> (status, worker)

    def client(k: int) -> None:
        for i in range(20):
            body = cds_request("patient-view", pid, prefetch)
            if i % 10 == 9:
                body["hook"] = "order-sign"  # not served by patient-view: a 400, audited too
            instance = body["hookInstance"] = f"c{k}-{i}-{uuid.uuid4()}"
            r = service.post(body)
            answered[instance] = (r.status_code, r.headers[WORKER_HEADER])

    with two_workers(service_env, tmp_path, free_port(), "--dev") as service:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(client, range(8)))
        service.stop()
    assert len({w for _, w in answered.values()}) == 2, "one worker answered everything"
    rows = rows_by_instance(service_env["LEGSPASM_DATABASE_URL"])
    assert sorted(rows) == sorted((i, s) for i, (s, _) in answered.items())
    assert {s for _, s in rows} == {200, 400}
    assert journals(journal_folder(service_env, tmp_path)) == []


def test_a_token_or_a_card_one_worker_saw_is_known_to_the_other(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """The replay guard and repeat suppression live in the one database: a token accepted by
    one worker is refused by the other, and a card one worker showed is not shown again by
    the other (once the first worker's journal has reached the database)."""
    port = free_port()
    (tmp_path / "jwks.json").write_text(json.dumps(JWKS))
    env = {
        **service_env,
        "LEGSPASM_ISSUERS": json.dumps([{"iss": ISS, "jwks_file": str(tmp_path / "jwks.json")}]),
        "LEGSPASM_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "LEGSPASM_LINK_SECRET": LINK_SECRET,
    }
    aud = f"http://127.0.0.1:{port}/cds-services/{VIEW}"
    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    with two_workers(env, tmp_path, port) as service:
        first_token = token(claims(aud))
        first = service.post(cds_request("patient-view", pid, prefetch), first_token)
        assert first.status_code == 200, first.text
        shown = {c["summary"] for c in first.json()["cards"] if c["indicator"] != "critical"}
        assert shown  # the patient-view cards for this patient
        a = first.headers[WORKER_HEADER]
        time.sleep(1.0)  # the first worker's journal drains every 0.1 s
        later: list[tuple[str, set[str]]] = []
        replays: list[tuple[str, int]] = []
        for _ in range(60):
            r = service.post(cds_request("patient-view", pid, prefetch), token(claims(aud)))
            assert r.status_code == 200, r.text
            later.append((r.headers[WORKER_HEADER], {c["summary"] for c in r.json()["cards"]}))
            r = service.post(cds_request("patient-view", pid, prefetch), first_token)
            replays.append((r.headers[WORKER_HEADER], r.status_code))
            if {w for w, _ in later} - {a} and {w for w, _ in replays} - {a}:
                break
        service.stop()
    assert {w for w, _ in later} - {a}, "the other worker never answered"
    assert all(not (cards & shown) for _, cards in later)  # not repeated, by either worker
    assert {w for w, _ in replays} - {a}, "the other worker never got the replayed token"
    assert {s for _, s in replays} == {401}  # refused by both workers


def test_a_worker_killed_under_load_loses_no_answered_response(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """kill -9 of one worker with requests in flight: the supervisor starts another, which
    loads the dead worker's journal before it serves; after SIGTERM every answered response
    has its row once (a request killed between its journal write and its answer may too)."""
    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    answered: dict[str, int] = {}
    lost = 0
    killed: list[int] = []
    once = threading.Lock()

    def client(k: int) -> None:
        nonlocal lost
        i = 0
        while len(answered) < 150:
            body = cds_request("patient-view", pid, prefetch)
            instance = body["hookInstance"] = f"c{k}-{i}-{uuid.uuid4()}"
            i += 1
            try:
                r = service.post(body)
            except httpx.TransportError:  # in flight on the killed worker
                with once:
                    lost += 1
                continue
            answered[instance] = r.status_code
            with once:
                if len(answered) >= 60 and not killed:
                    killed.append(int(r.headers[WORKER_HEADER]))
                    os.kill(killed[0], signal.SIGKILL)

    with two_workers(service_env, tmp_path, free_port(), "--dev") as service:
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(client, range(6)))
        deadline = time.monotonic() + 60
        while service.log.read_text().count("Application startup complete") < 3:
            assert time.monotonic() < deadline, "no worker replaced the killed one"
            time.sleep(0.1)
        service.stop()
    rows = rows_by_instance(service_env["LEGSPASM_DATABASE_URL"])
    instances = [i for i, _ in rows]
    assert len(instances) == len(set(instances))  # none duplicated
    assert set(answered.items()) <= set(rows)  # none lost
    assert len(rows) <= len(answered) + lost
    assert journals(journal_folder(service_env, tmp_path)) == []
