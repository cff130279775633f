"""The audit journal on real databases (SQLite always, PostgreSQL when LEGSPASM_TEST_POSTGRES_URL
is set) and the real service in a subprocess: every response answered has its audit row, after
SIGTERM and after kill -9, none lost and none duplicated."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from legspasm.audit import AuditStore, Invocation
from legspasm.audit.journal import (
    SUFFIX,
    Journal,
    decode,
    default_directory,
    encode,
    open_journal,
    recover,
)
from legspasm.audit.tables import InvocationRow
from legspasm.errors import StoreError
from live_server import free_port
from test_audit_store import _pg_url, card, invocation
from test_service import AS_OF, RLS_LOW_FERRITIN, VIEW, cds_request, vignette_prefetch


@contextmanager
def pg_schema() -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema, dropped afterwards (skips without PostgreSQL)."""
    base = make_url(_pg_url())
    schema = f"legspasm_journal_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[AuditStore]:
    s = AuditStore.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def journals(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"audit-*{SUFFIX}"))


def full(i: int) -> Invocation:
    return invocation(
        f"inv-{i}",
        cards=(card("AV-QUININE"), card("plan")),
        assessment={"as_of": "2026-11-21", "nested": {"list": [1, 2.5, None, "é"]}},
        as_of=dt.date(2026, 11, 21),
        error=None,
        case={"id": f"case-{i}"},
        label="web form",
    )


# -- unit: the journal ----------------------------------------------------------------------


def test_a_line_decodes_to_the_same_invocation() -> None:
    inv = full(1)
    line = encode(inv)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode(line) == inv
    with pytest.raises(StoreError, match="timezone-aware"):
        encode(invocation(at=dt.datetime(2026, 11, 21, 9, 0)))
    with pytest.raises(StoreError, match="not JSON"):
        encode(invocation(assessment={"as_of": dt.date(2026, 11, 21)}))


def test_append_then_flush_stores_each_record_once(store: AuditStore, folder: Path) -> None:
    journal = Journal.open(folder, store)
    try:
        invs = [full(i) for i in range(5)]
        for inv in invs:
            journal.append(inv)
        assert journal.path.read_bytes().count(b"\n") == 5  # on disk before any drain
        assert journal.flush() == 5
        assert journal.flush() == 0
        for inv in invs:
            assert store.invocation(inv.id) == inv
        assert store.count_invocations() == 5
    finally:
        journal.close()
    assert journals(folder) == []  # a clean stop drains and removes its journal


def test_reads_in_the_process_see_what_was_just_appended(store: AuditStore, folder: Path) -> None:
    journal = Journal.open(folder, store, interval_s=60)  # the thread would not get to it
    journal.start()
    try:
        inv = full(7)
        journal.append(inv)
        assert store.invocation(inv.id) == inv  # the read drained the journal first
        assert [i.id for i in store.recent(patient_id=inv.patient_id)] == [inv.id]
        assert {r.rule for r in store.feedback_report()} == {"AV-QUININE", "plan"}
    finally:
        journal.close()


def test_repeat_suppression_sees_acknowledged_cards_without_draining(
    store: AuditStore, db_url: str, folder: Path
) -> None:
    """rules_shown (the patient-view suppression query, on the request path) counts the cards
    this process acknowledged from memory: it does not move the journal into the database."""
    journal = Journal.open(folder, store, interval_s=60)
    journal.start()
    reader = AuditStore.open(db_url)
    try:
        inv = full(8)
        journal.append(inv)
        assert inv.patient_id is not None
        since = inv.received_at - dt.timedelta(days=1)
        assert store.rules_shown(inv.patient_id, since) == {"AV-QUININE", "plan"}
        assert store.rules_shown(inv.patient_id, inv.received_at + dt.timedelta(seconds=1)) == set()
        assert store.rules_shown("someone-else", since) == set()
        with reader._session("counting without a barrier") as session:  # no drain happened
            assert session.scalar(select(func.count()).select_from(InvocationRow)) == 0
    finally:
        reader.close()
        journal.close()


def test_the_background_thread_moves_records_in_batches(
    store: AuditStore, db_url: str, folder: Path
) -> None:
    journal = Journal.open(folder, store, batch=7, interval_s=0.02)
    journal.start()
    reader = AuditStore.open(db_url)
    try:
        n = 50
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(journal.append, [full(i) for i in range(n)]))
        deadline = time.monotonic() + 20
        while reader.count_invocations() < n:  # this reader does not drain the journal
            assert time.monotonic() < deadline, "the journal was not drained"
            time.sleep(0.02)
        assert reader.count_invocations() == n
    finally:
        reader.close()
        journal.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AuditStore]:
    with AuditStore.open(f"sqlite:///{tmp_path / 'audit.sqlite3'}") as s:
        yield s


def test_concurrent_appends_share_an_fdatasync_and_each_waits_for_its_own(
    sqlite_store: AuditStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: requests appending at once share fdatasyncs, yet each append returns only
    after an fdatasync that began once its line was in the file (on a slow disk here)."""
    real = os.fdatasync
    syncs: list[tuple[int, float]] = []  # (the journal's size as it began, when it ended)

    def slow_fdatasync(fd: int) -> None:
        size = os.fstat(fd).st_size
        time.sleep(0.005)
        real(fd)
        syncs.append((size, time.monotonic()))

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    journal = Journal.open(folder, sqlite_store, interval_s=60)
    returned: dict[str, float] = {}

    def append(i: int) -> None:
        inv = full(i)
        journal.append(inv)
        returned[inv.id] = time.monotonic()

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(append, range(120)))
        data = journal.path.read_bytes()
        for inv_id, at in returned.items():
            start = data.index(f'"id":"{inv_id}"'.encode())
            end = data.index(b"\n", start) + 1
            assert any(size >= end and done <= at for size, done in syncs), inv_id
        assert len(returned) == 120
        assert len(syncs) < 120  # shared
    finally:
        journal.close()
    assert sqlite_store.count_invocations() == 120


def test_a_failed_fdatasync_fails_its_request_and_later_ones_sync_again(
    sqlite_store: AuditStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.fdatasync
    calls: list[int] = []

    def fdatasync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:  # the disk fails once
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    journal = Journal.open(folder, sqlite_store, interval_s=60)
    try:
        with pytest.raises(StoreError, match=r"fdatasync failed: .*Input/output error"):
            journal.append(full(1))
        journal.append(full(2))  # written after the failed sync: synced by a new one
        journal.append(full(3))
    finally:
        journal.close()
    assert len(calls) == 3
    assert sqlite_store.count_invocations() == 3  # the first was written, not acknowledged


def test_replay_after_a_crash_before_the_offset_was_written_duplicates_nothing(
    store: AuditStore, folder: Path
) -> None:
    journal = Journal.open(folder, store)
    for i in range(4):
        journal.append(full(i))
    journal.flush()
    [path] = journals(folder)
    journal.close(drain=False)  # as if killed: the file stays
    path.with_suffix(".offset").write_text("0\n")  # the offset write never happened
    again = Journal.open(folder, store)  # adopts the journal, replays all four lines
    try:
        assert store.count_invocations() == 4
        assert [p for p in journals(folder) if p != again.path] == []
    finally:
        again.close()


def test_a_torn_last_line_is_ignored_and_the_rest_loaded(store: AuditStore, folder: Path) -> None:
    journal = Journal.open(folder, store, interval_s=60)
    for i in range(3):
        journal.append(full(i))
    path = journal.path
    journal.close(drain=False)
    with path.open("ab") as f:  # killed in the middle of writing a fourth record
        f.write(encode(full(3))[:40])
    assert store.count_invocations() == 0  # nothing drained yet
    assert recover(folder, store) == 3
    assert store.count_invocations() == 3
    assert store.invocation("inv-3") is None
    assert journals(folder) == []


def test_a_restart_loads_what_a_stopped_process_left(store: AuditStore, folder: Path) -> None:
    first = Journal.open(folder, store)
    for i in range(10):
        first.append(full(i))
    first.close(drain=False)
    second = open_journal(store, folder)
    assert second is not None
    try:
        assert store.count_invocations() == 10
        assert journals(folder) == [second.path]
    finally:
        second.close()


def test_a_living_journal_is_never_adopted(store: AuditStore, folder: Path) -> None:
    first = Journal.open(folder, store, interval_s=60)
    second = Journal.open(folder, store, interval_s=60)
    try:
        first.append(full(1))
        assert second.adopt() == 0
        assert recover(folder, store) == 0  # held by a living journal: left alone
        assert len(journals(folder)) == 2
        assert store.count_invocations() == 1  # the store's read drains both journals
    finally:
        second.close()
        first.close()
    assert journals(folder) == []


def test_journals_opened_at_once_in_one_folder_stay_their_own(tmp_path: Path) -> None:
    """Workers start together in the database's folder: none fails to open its journal, and
    none adopts (drains and deletes) another's new journal as if its process were gone."""
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    folder = tmp_path / "journal"
    with AuditStore.open(url) as store:
        for _ in range(15):
            with ThreadPoolExecutor(max_workers=8) as pool:
                opened = list(pool.map(lambda _: Journal.open(folder, store), range(8)))
            try:
                assert all(j.path.exists() for j in opened)
                assert journals(folder) == sorted(j.path for j in opened)
            finally:
                for j in opened:
                    j.close()
            assert journals(folder) == []


def test_a_drained_journal_is_emptied(store: AuditStore, folder: Path) -> None:
    journal = Journal.open(folder, store, rotate_bytes=1)
    try:
        journal.append(full(1))
        journal.flush()
        assert journal.path.stat().st_size == 0
        assert journal.path.with_suffix(".offset").read_text().strip() == "0"
        journal.append(full(2))
        journal.flush()
        assert store.count_invocations() == 2
    finally:
        journal.close()


def test_a_folder_holding_another_databases_records_is_refused(
    tmp_path: Path, folder: Path
) -> None:
    with AuditStore.open(f"sqlite:///{tmp_path / 'a.sqlite3'}") as a:
        journal = Journal.open(folder, a)
        journal.append(full(1))
        journal.close(drain=False)
        with AuditStore.open(f"sqlite:///{tmp_path / 'b.sqlite3'}") as b:
            with pytest.raises(StoreError, match="holds records for"):
                Journal.open(folder, b)
            assert b.count_invocations() == 0
        assert recover(folder, a) == 1


def test_a_record_the_database_refuses_is_set_aside(store: AuditStore, folder: Path) -> None:
    if not store.url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce the column lengths")
    journal = Journal.open(folder, store)
    try:
        journal.append(full(1))
        journal.append(invocation("too-long", patient="p" * 300))  # String(200)
        journal.append(full(2))
        assert journal.flush() == 2
        assert store.invocation("too-long") is None
        rejected = folder / f"{journal.path.name}.rejected"
        assert decode(rejected.read_bytes()).id == "too-long"
    finally:
        journal.close()


def test_default_folders() -> None:
    assert default_directory("sqlite:///tmp/x/a.sqlite3") == Path("tmp/x/a.sqlite3.journal")
    assert default_directory("sqlite:////srv/a.sqlite3") == Path("/srv/a.sqlite3.journal")
    assert default_directory("sqlite://") is None
    assert default_directory("sqlite:///:memory:") is None
    pg = default_directory("postgresql+psycopg://u:***@h/cds")
    assert pg is not None
    assert pg.parent == Path("legspasm-journal")
    assert pg.name.startswith("cds-")
    assert pg != default_directory("postgresql+psycopg://u:***@other/cds")


# -- the service in a subprocess --------------------------------------------------------------


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path


def start(env: dict[str, str], tmp_path: Path, name: str) -> Service:
    port = free_port()
    log = tmp_path / f"{name}.log"
    exe = Path(sys.executable).with_name("legspasm")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "serve", "--dev", "--port", str(port), "--as-of", AS_OF.isoformat()],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=5, trust_env=False) as client:
        while True:
            try:
                if client.get(base + "/healthz").status_code == 200:
                    return Service(proc, base, log)
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "legspasm serve did not start"
            time.sleep(0.05)


def stop(service: Service, sig: signal.Signals) -> None:
    service.proc.send_signal(sig)
    service.proc.wait(timeout=60)
    log = service.log.read_text()
    if sig is signal.SIGTERM:  # uvicorn shuts down, then re-raises the signal
        assert service.proc.returncode in (0, -signal.SIGTERM), log
        assert "Application shutdown complete" in log, log
    else:
        assert service.proc.returncode == -sig, log


@dataclass
class Sent:
    answered: dict[str, int]  # hookInstance -> status, for every response received
    in_flight: int  # requests sent whose answer never came (the server was killed)


def send(base: str, n: int, clients: int, *, kill: subprocess.Popen[bytes] | None = None) -> Sent:
    """``n`` patient-view requests (a few of them bad requests: a 400 is audited too) from
    ``clients`` clients. With ``kill``: keep sending, and kill -9 the server the moment the
    ``n``-th answer arrives, with requests still in flight."""
    pid, prefetch = vignette_prefetch(RLS_LOW_FERRITIN)
    answered: dict[str, int] = {}
    lost = 0
    done = False

    def client(k: int) -> None:
        nonlocal lost, done
        with httpx.Client(base_url=base, timeout=60, trust_env=False) as http:
            i = 0
            while not done:
                body = cds_request("patient-view", pid, prefetch)
                if i % 10 == 9:
                    body["hook"] = "order-sign"  # not served by patient-view: a 400
                instance = body["hookInstance"] = f"c{k}-{i}-{uuid.uuid4()}"
                i += 1
                try:
                    r = http.post(f"/cds-services/{VIEW}", json=body)
                except httpx.TransportError:
                    assert kill is not None
                    lost += 1
                    return
                answered[instance] = r.status_code
                if len(answered) >= n:
                    if kill is not None and not done:
                        kill.send_signal(signal.SIGKILL)
                    done = True

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return Sent(answered, lost)


def rows_by_instance(url: str) -> list[tuple[str, int]]:
    with AuditStore.open(url, create=False) as store:
        got = store.recent(limit=100_000)
    return [(r.hook_instance or "", r.status_code) for r in got]


@pytest.fixture(params=["sqlite", "postgresql"])
def service_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a `legspasm serve` on a fresh database (SQLite with its journal in
    the default folder; PostgreSQL in a fresh schema with LEGSPASM_JOURNAL_DIR)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGSPASM_")}
    if request.param == "sqlite":
        env["LEGSPASM_DATABASE_URL"] = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
        yield env
        return
    with pg_schema() as url:
        env["LEGSPASM_DATABASE_URL"] = url
        env["LEGSPASM_JOURNAL_DIR"] = str(tmp_path / "journal")
        yield env


def journal_folder(env: dict[str, str], tmp_path: Path) -> Path:
    if "LEGSPASM_JOURNAL_DIR" in env:
        return Path(env["LEGSPASM_JOURNAL_DIR"])
    return tmp_path / "audit.sqlite3.journal"


def test_after_sigterm_every_answered_response_has_its_row(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    service = start(service_env, tmp_path, "serve")
    try:
        sent = send(service.base, 120, clients=8)
    finally:
        stop(service, signal.SIGTERM)
    assert journals(journal_folder(service_env, tmp_path)) == []  # drained on the way out
    rows = rows_by_instance(service_env["LEGSPASM_DATABASE_URL"])
    assert sorted(rows) == sorted(sent.answered.items())  # none lost, none duplicated
    assert {s for _, s in rows} == {200, 400}


def test_after_kill_9_a_restart_loads_every_answered_response(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """Killed the moment the last answer arrived, with nothing moved to the database yet (a
    slow drain): the next start loads the journal before it serves."""
    env = {**service_env, "LEGSPASM_JOURNAL_INTERVAL_S": "60"}
    service = start(env, tmp_path, "first")
    try:
        sent = send(service.base, 60, clients=4)
    finally:
        stop(service, signal.SIGKILL)
    folder = journal_folder(env, tmp_path)
    assert len(journals(folder)) == 1
    assert rows_by_instance(env["LEGSPASM_DATABASE_URL"]) == []  # all still in the journal
    again = start(env, tmp_path, "second")
    try:
        rows = rows_by_instance(env["LEGSPASM_DATABASE_URL"])  # loaded before serving
    finally:
        stop(again, signal.SIGTERM)
    assert sorted(rows) == sorted(sent.answered.items())
    assert journals(folder) == []


def test_kill_9_under_load_loses_no_answered_response(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """Killed with requests in flight and the background drain running: every answered
    response has its row once; a request killed between its journal write and its answer may
    have one too (it was written, not answered), never twice."""
    service = start(service_env, tmp_path, "first")
    sent = send(service.base, 150, clients=8, kill=service.proc)
    service.proc.wait(timeout=30)
    assert service.proc.returncode == -signal.SIGKILL
    url = service_env["LEGSPASM_DATABASE_URL"]
    with AuditStore.open(url, create=False) as store:
        recover(journal_folder(service_env, tmp_path), store)  # without starting the service
    rows = rows_by_instance(url)
    instances = [i for i, _ in rows]
    assert len(instances) == len(set(instances))  # none duplicated
    assert set(sent.answered.items()) <= set(rows)  # none lost
    assert len(rows) <= len(sent.answered) + sent.in_flight
