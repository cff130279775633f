"""The audit store on real databases: SQLite always, PostgreSQL when LEGSPASM_TEST_POSTGRES_URL
is set (required when LEGSPASM_REQUIRE_POSTGRES=1). Each PostgreSQL test gets a fresh schema."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from legspasm.audit import AuditStore, CardRecord, FeedbackRecord, Invocation, RuleRate
from legspasm.audit.report import render_report, report_json
from legspasm.audit.tables import Base
from legspasm.cli import app
from legspasm.errors import StoreError

PG_ENV = "LEGSPASM_TEST_POSTGRES_URL"
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

# A child process: open the store, record COUNT invocations with ids PREFIX-i, print "done".
WRITER = textwrap.dedent(
    """
    import sys, time, datetime as dt
    from legspasm.audit import AuditStore, CardRecord, Invocation
    url, prefix, count, linger = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    store = AuditStore.open(url)
    for i in range(count):
        store.record_invocation(Invocation(
            id=f"{prefix}-{i}", received_at=dt.datetime.now(dt.UTC), service_id="svc",
            hook="order-sign", hook_instance=None, knowledge_version="kb-1", patient_id="p",
            user_id=None, fhir_server=None, status_code=200, outcome="cards", latency_ms=1.0,
            cards=(CardRecord(f"{prefix}-{i}-card", "plan", "info", "plan"),),
        ))
    print("done", flush=True)
    if linger:
        time.sleep(600)
    store.close()
    """
)


def _pg_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("LEGSPASM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LEGSPASM_REQUIRE_POSTGRES=1 but {PG_ENV} is not set")
        pytest.skip(f"{PG_ENV} is not set")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit' / 'audit.sqlite3'}"
        return
    base = make_url(_pg_url())
    schema = f"legspasm_test_{uuid.uuid4().hex[:12]}"
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


@pytest.fixture
def store(db_url: str) -> Iterator[AuditStore]:
    s = AuditStore.open(db_url)
    try:
        yield s
    finally:
        s.close()


def invocation(
    ident: str | None = None,
    *,
    at: datetime = T0,
    patient: str | None = "patient-1",
    cards: tuple[CardRecord, ...] = (),
    service: str = "legspasm-order-sign",
    **extra: Any,
) -> Invocation:
    return Invocation(
        id=ident or str(uuid.uuid4()),
        received_at=at,
        service_id=service,
        hook="order-sign",
        hook_instance="hi-1",
        knowledge_version="2026.11",
        patient_id=patient,
        user_id="Practitioner/7",
        fhir_server="https://ehr.example/fhir",
        status_code=200,
        outcome="cards" if cards else "no-cards",
        latency_ms=12.5,
        cards=cards,
        **extra,
    )


def card(rule: str, uuid_: str | None = None) -> CardRecord:
    return CardRecord(uuid=uuid_ or str(uuid.uuid4()), rule=rule, indicator="warning", summary=rule)


def feedback(card_uuid: str, outcome: str, **extra: Any) -> FeedbackRecord:
    return FeedbackRecord(
        service_id="legspasm-order-sign",
        card_uuid=card_uuid,
        outcome=outcome,
        received_at=extra.pop("received_at", T0 + timedelta(minutes=5)),
        **extra,
    )


# -- round trips ----------------------------------------------------------------------------


def test_invocation_round_trip(store: AuditStore) -> None:
    assessment = {
        "plan": [{"id": "STRETCH", "citations": [1, 2]}],
        "notes": ["naïve ünïcode"],
        "derived": {"egfr": 58.5, "pregnant": None},
    }
    inv = invocation(
        cards=(card("AV-QUININE"), card("RF-DVT"), card("plan")),
        assessment=assessment,
        as_of=date(2026, 11, 21),
        error=None,
    )
    store.record_invocation(inv)
    assert store.invocation(inv.id) == inv
    assert store.invocation("no-such-id") is None
    assert store.count_invocations() == 1


def test_times_come_back_as_utc(store: AuditStore) -> None:
    local = datetime(2026, 11, 21, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    inv = invocation(at=local)
    store.record_invocation(inv)
    got = store.invocation(inv.id)
    assert got is not None
    assert got.received_at == local
    assert got.received_at.tzinfo is UTC
    assert got.received_at.hour == 8


def test_naive_times_are_refused(store: AuditStore) -> None:
    with pytest.raises(StoreError, match="timezone-aware"):
        store.record_invocation(invocation(at=datetime(2026, 11, 21, 9, 0)))
    with pytest.raises(StoreError, match="timezone-aware"):
        store.record_feedback([feedback("c", "accepted", received_at=datetime(2026, 1, 1))])
    assert store.count_invocations() == 0
    assert store.count_feedback() == 0


def test_duplicate_invocation_id_is_a_store_error(store: AuditStore) -> None:
    inv = invocation()
    store.record_invocation(inv)
    with pytest.raises(StoreError, match="audit database"):
        store.record_invocation(inv)
    assert store.count_invocations() == 1


def test_an_assessment_that_is_not_json_is_a_store_error(store: AuditStore) -> None:
    # the service must pass Assessment.model_dump(mode="json"), not Python dates
    with pytest.raises(StoreError, match="not JSON serializable"):
        store.record_invocation(invocation(assessment={"as_of": date(2026, 11, 21)}))
    assert store.count_invocations() == 0
    assert store.feedback_report() == []


def test_recent_is_newest_first_and_filters_by_patient(store: AuditStore) -> None:
    for i in range(6):
        store.record_invocation(
            invocation(
                f"inv-{i}",
                at=T0 + timedelta(minutes=i),
                patient="a" if i % 2 else "b",
                cards=(card("plan"),),
            )
        )
    assert [i.id for i in store.recent()] == [f"inv-{i}" for i in (5, 4, 3, 2, 1, 0)]
    assert [i.id for i in store.recent(limit=2)] == ["inv-5", "inv-4"]
    assert [i.id for i in store.recent(patient_id="b")] == ["inv-4", "inv-2", "inv-0"]
    assert store.recent(patient_id="nobody") == []
    assert store.recent(limit=0) == []
    assert all(len(i.cards) == 1 for i in store.recent())


def test_rules_shown_per_patient_since_a_time(store: AuditStore) -> None:
    """The repeat-suppression query: rules of cards returned to one patient at or after a time
    (answered invocations only; of one service when named), times compared in UTC."""
    view = "legspasm-patient-view"
    store.record_invocation(
        invocation(at=T0 - timedelta(days=40), service=view, cards=(card("AV-OLD"),))
    )
    store.record_invocation(
        invocation(at=T0, service=view, cards=(card("AV-QUININE"), card("plan")))
    )
    store.record_invocation(invocation(at=T0, patient="patient-2", cards=(card("AV-OTHER"),)))
    store.record_invocation(
        dataclasses.replace(
            invocation(at=T0, service=view, cards=(card("AV-FAILED"),)), status_code=500
        )
    )
    store.record_invocation(invocation(at=T0 + timedelta(hours=1), cards=(card("AV-SIGN"),)))
    since = T0 - timedelta(days=30)
    assert store.rules_shown("patient-1", since) == {"AV-QUININE", "plan", "AV-SIGN"}
    assert store.rules_shown("patient-1", since, view) == {"AV-QUININE", "plan"}
    assert store.rules_shown("patient-1", T0 - timedelta(days=41), view) == {
        "AV-OLD",
        "AV-QUININE",
        "plan",
    }
    # the boundary is inclusive, in any zone
    plus2 = timezone(timedelta(hours=2))
    assert store.rules_shown("patient-1", T0.astimezone(plus2), view) == {"AV-QUININE", "plan"}
    assert store.rules_shown("patient-1", T0 + timedelta(seconds=1), view) == set()
    assert store.rules_shown("patient-2", since) == {"AV-OTHER"}
    assert store.rules_shown("nobody", since) == set()
    with pytest.raises(StoreError, match="timezone-aware"):
        store.rules_shown("patient-1", datetime(2026, 11, 1))


def test_rules_shown_from_batches_keeps_the_latest_time_whatever_the_order(
    store: AuditStore,
) -> None:
    """The journal's batches (record_invocations): several records of one patient and rule in
    a batch, a batch of older records stored after newer ones (a journal adopted late), and a
    batch replayed: the rule counts from its latest showing."""
    view = "legspasm-patient-view"
    newer = [
        invocation(f"n{i}", at=T0 + timedelta(hours=i), service=view, cards=(card("plan"),))
        for i in range(3)
    ]
    older = [
        invocation("o1", at=T0 - timedelta(days=10), service=view, cards=(card("plan"),)),
        invocation("o2", at=T0 - timedelta(days=10), service=view, cards=(card("AV-OLD"),)),
        invocation("o3", at=T0 - timedelta(days=10), patient=None, cards=(card("AV-NONE"),)),
    ]
    assert store.record_invocations(newer) == 3
    assert store.record_invocations(older) == 3
    assert store.record_invocations(newer) == 0  # replayed: nothing new
    assert store.rules_shown("patient-1", T0 + timedelta(hours=2), view) == {"plan"}
    assert store.rules_shown("patient-1", T0 + timedelta(hours=2, seconds=1), view) == set()
    assert store.rules_shown("patient-1", T0 - timedelta(days=10), view) == {"plan", "AV-OLD"}
    assert store.rules_shown("patient-1", T0 - timedelta(days=9), view) == {"plan"}


def test_a_0004_database_learns_the_rules_already_shown(db_url: str) -> None:
    """Revision 0005 fills rules_shown from the invocations and cards stored before it, so
    suppression goes on across the upgrade."""
    from alembic import command
    from alembic.config import Config

    from legspasm.audit.store import MIGRATIONS

    view = "legspasm-patient-view"
    rows = [  # id, patient, service, status, at, rules
        ("a", "p1", view, 200, T0 - timedelta(days=3), ["plan", "AV-QUININE"]),
        ("b", "p1", view, 200, T0 - timedelta(days=1), ["plan"]),
        ("c", "p1", view, 500, T0, ["AV-FAILED"]),
        ("d", "p1", "legspasm-order-sign", 200, T0, ["AV-SIGN"]),
        ("e", None, view, 200, T0, ["AV-NOBODY"]),
        ("f", "p2", view, 200, T0 - timedelta(days=2), []),
    ]
    if db_url.startswith("sqlite"):
        Path(str(make_url(db_url).database)).parent.mkdir(parents=True)
    engine = create_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    invocations, cards = Base.metadata.tables["invocations"], Base.metadata.tables["cards"]
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
            for ident, pid, sid, status, at, rules in rows:
                conn.execute(
                    invocations.insert().values(
                        id=ident,
                        received_at=at,
                        service_id=sid,
                        hook="patient-view",
                        knowledge_version="0.8.0",
                        patient_id=pid,
                        status_code=status,
                        outcome="cards" if rules else "no-cards",
                        latency_ms=1.0,
                    )
                )
                for i, rule in enumerate(rules):
                    conn.execute(
                        cards.insert().values(
                            invocation_id=ident,
                            position=i,
                            uuid=f"{ident}-{i}",
                            rule=rule,
                            indicator="info",
                            summary=rule,
                        )
                    )
    finally:
        engine.dispose()
    with AuditStore.open(db_url) as store:
        assert store.rules_shown("p1", T0 - timedelta(days=3), view) == {"plan", "AV-QUININE"}
        assert store.rules_shown("p1", T0 - timedelta(days=2), view) == {"plan"}
        assert store.rules_shown("p1", T0 - timedelta(days=1)) == {"plan", "AV-SIGN"}
        assert store.rules_shown("p1", T0 + timedelta(seconds=1)) == set()
        assert store.rules_shown("p2", T0 - timedelta(days=30)) == set()


def test_rules_shown_failing_is_a_store_error_naming_the_database(db_url: str) -> None:
    """The suppression read runs on a pooled driver connection, not through the ORM: a database
    failure there is still a StoreError naming the database, its password masked."""
    with AuditStore.open(db_url) as store:
        store.record_invocation(invocation(cards=(card("plan"),)))
        assert store.rules_shown("patient-1", T0) == {"plan"}
        admin = create_engine(db_url)
        try:
            with admin.begin() as conn:
                conn.execute(text("DROP TABLE rules_shown"))
        finally:
            admin.dispose()
        with pytest.raises(StoreError) as err:
            store.rules_shown("patient-1", T0)
    message = err.value.message
    assert message.startswith(f"audit database {store.url}: ")
    assert "reading the cards shown to patient patient-1 failed" in message
    assert "rules_shown" in message.split("failed: ", 1)[1]  # the driver's: no such table
    password = make_url(db_url).password
    if password is not None:
        assert f":{password}@" not in message
        assert ":***@" in message


def test_feedback_round_trip_counts(store: AuditStore) -> None:
    store.record_feedback([])
    store.record_feedback(
        [
            feedback(
                "c1",
                "overridden",
                override_system="http://snomed.info/sct",
                override_code="X",
                override_display="Patient already tried it",
                user_comment="free text",
                outcome_timestamp=T0,
                accepted_suggestions=(),
            ),
            feedback("c2", "accepted", accepted_suggestions=("s1", "s2")),
        ]
    )
    assert store.count_feedback() == 2


# -- the report -----------------------------------------------------------------------------


def test_report_rates(store: AuditStore) -> None:
    a_cards = [card("AV-QUININE") for _ in range(4)]
    b_cards = [card("RF-DVT") for _ in range(2)]
    store.record_invocation(invocation(cards=(*a_cards[:2], b_cards[0])))
    store.record_invocation(invocation(cards=(*a_cards[2:], b_cards[1], card("plan"))))
    # a replayed request stores a card uuid twice: still one card shown
    store.record_invocation(invocation(cards=(a_cards[0],)))
    store.record_feedback(
        [
            feedback(a_cards[0].uuid, "accepted"),
            feedback(a_cards[1].uuid, "accepted"),
            feedback(a_cards[2].uuid, "accepted"),
            feedback(a_cards[3].uuid, "overridden", override_code="X", override_display="Reason X"),
            feedback(b_cards[0].uuid, "overridden", override_code="Y"),
            feedback("never-stored", "accepted"),
            feedback("never-stored-2", "overridden", override_display="Reason Z"),
        ]
    )
    rows = {r.rule: r for r in store.feedback_report()}
    assert list(rows) == ["AV-QUININE", "RF-DVT", "plan", "unknown card"]
    assert rows["AV-QUININE"] == RuleRate(
        rule="AV-QUININE",
        cards_shown=4,
        accepted=3,
        overridden=1,
        no_feedback=0,
        acceptance_rate=0.75,
        override_rate=0.25,
        top_override_reasons=(("Reason X", 1),),
    )
    assert rows["RF-DVT"] == RuleRate("RF-DVT", 2, 0, 1, 1, 0.0, 0.5, (("Y", 1),))
    assert rows["plan"] == RuleRate("plan", 1, 0, 0, 1, 0.0, 0.0, ())
    assert rows["unknown card"] == RuleRate(
        "unknown card", 0, 1, 1, 0, None, None, (("Reason Z", 1),)
    )

    text_ = render_report(list(rows.values()))
    assert "75.0%" in text_
    assert "25.0%" in text_
    assert "Reason X (1)" in text_
    assert json.loads(json.dumps(report_json(list(rows.values()))))[0]["acceptance_rate"] == 0.75


def test_report_counts_a_card_by_its_latest_feedback(store: AuditStore) -> None:
    c = card("AV-QUININE")
    store.record_invocation(invocation(cards=(c,)))
    store.record_feedback([feedback(c.uuid, "overridden", override_display="first")])
    store.record_feedback([feedback(c.uuid, "accepted", received_at=T0 + timedelta(minutes=9))])
    (row,) = store.feedback_report()
    assert (row.cards_shown, row.accepted, row.overridden, row.no_feedback) == (1, 1, 0, 0)


def test_report_top_reasons_and_service_filter(store: AuditStore) -> None:
    cards = [card("AV-QUININE") for _ in range(7)]
    store.record_invocation(invocation(cards=tuple(cards)))
    other = card("AV-QUININE")
    store.record_invocation(invocation(cards=(other,), service="legspasm-patient-view"))
    reasons = ["B", "A", "A", "C", "C", "D"]  # A 2, C 2, B 1, D 1
    store.record_feedback(
        [
            feedback(c.uuid, "overridden", override_display=r)
            for c, r in zip(cards, reasons, strict=False)
        ]
    )
    (row,) = store.feedback_report("legspasm-order-sign")
    assert row.cards_shown == 7
    assert row.overridden == 6
    assert row.no_feedback == 1
    assert row.top_override_reasons == (("A", 2), ("C", 2), ("B", 1))
    (everything,) = store.feedback_report()
    assert everything.cards_shown == 8
    assert store.feedback_report("no-such-service") == []
    assert render_report([]) == "No cards or feedback recorded.\n"


# -- concurrency and durability -------------------------------------------------------------


def test_many_threads_at_once(store: AuditStore) -> None:
    ids = [f"thread-{i}" for i in range(200)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: store.record_invocation(invocation(i, cards=(card("plan"),))), ids))
    assert store.count_invocations() == 200
    assert {i.id for i in store.recent(limit=500)} == set(ids)
    assert all(store.invocation(i) is not None for i in ids)


def _writer(url: str, prefix: str, count: int, *, linger: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, prefix, str(count), "1" if linger else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_write_the_same_database(db_url: str) -> None:
    # Both start on a database that does not exist yet, so both migrate at the same time.
    procs = [_writer(db_url, name, 100) for name in ("first", "second")]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with AuditStore.open(db_url) as s:
        assert s.count_invocations() == 200
        ids = {i.id for i in s.recent(limit=1000)}
    assert ids == {f"{p}-{i}" for p in ("first", "second") for i in range(100)}


def test_rows_survive_sigkill(db_url: str) -> None:
    proc = _writer(db_url, "killed", 25, linger=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "done", proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with AuditStore.open(db_url) as s:
        assert s.count_invocations() == 25
        assert {i.id for i in s.recent(limit=100)} == {f"killed-{i}" for i in range(25)}


# -- schema and errors ----------------------------------------------------------------------


def test_open_is_idempotent_and_schema_matches_metadata(db_url: str) -> None:
    with AuditStore.open(db_url) as first:
        first.record_invocation(invocation("kept"))
    with AuditStore.open(db_url) as second:
        assert second.invocation("kept") is not None
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
            tables = set(inspect(conn).get_table_names())
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(version) == ["0005"]
    finally:
        engine.dispose()
    assert tables == {
        "alembic_version",
        "invocations",
        "cards",
        "feedback",
        "seen_tokens",
        "refusals",
        "rules_shown",
    }


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with AuditStore.open(f"sqlite:///{tmp_path / 'p.sqlite3'}") as s:
        engine = s._engine  # the connection settings are the point of this test
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_relative_sqlite_path_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with AuditStore.open("sqlite:///nested/dir/audit.sqlite3") as s:
        s.record_invocation(invocation())
        assert s.url == "sqlite:///nested/dir/audit.sqlite3"
    assert (tmp_path / "nested" / "dir" / "audit.sqlite3").is_file()


def test_bad_url_names_the_database_without_the_password() -> None:
    url = "postgresql+psycopg://u:secret@127.0.0.1:1/x"
    with pytest.raises(StoreError) as info:
        AuditStore.open(url)
    message = info.value.message
    assert "secret" not in message
    assert "secret" not in str(info.value)
    assert "postgresql+psycopg://u:***@127.0.0.1:1/x" in message


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://u:secret@db/x", "unsupported database"),
        ("not a url", "not a database URL"),
        ("postgresql://u:secret@127.0.0.1:1/x", "postgresql+psycopg://u:***@127.0.0.1:1/x"),
    ],
)
def test_unusable_urls(url: str, fragment: str) -> None:
    with pytest.raises(StoreError, match="audit database") as info:
        AuditStore.open(url)
    assert fragment in info.value.message
    assert "secret" not in info.value.message


def test_missing_sqlite_file_is_not_created_when_create_is_false(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"
    with pytest.raises(StoreError, match="no such file"):
        AuditStore.open(f"sqlite:///{path}", create=False)
    assert not path.exists()


# -- the command line -----------------------------------------------------------------------


def _filled(url: str) -> None:
    cards = [card("AV-QUININE") for _ in range(4)]
    with AuditStore.open(url) as s:
        s.record_invocation(invocation(cards=tuple(cards)))
        s.record_feedback(
            [feedback(c.uuid, "accepted") for c in cards[:3]]
            + [feedback(cards[3].uuid, "overridden", override_display="Reason X")]
        )


def test_cli_feedback_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    _filled(url)
    runner = CliRunner()
    result = runner.invoke(app, ["feedback", "report", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "AV-QUININE" in result.stdout
    assert "75.0%" in result.stdout
    assert "25.0%" in result.stdout
    assert "Reason X (1)" in result.stdout

    result = runner.invoke(app, ["feedback", "report", "--database-url", url, "-f", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["rule"] == "AV-QUININE"
    assert (row["accepted"], row["overridden"], row["acceptance_rate"]) == (3, 1, 0.75)

    result = runner.invoke(
        app, ["feedback", "report", "--database-url", url, "--service", "other", "-f", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_cli_feedback_report_loads_what_a_stopped_service_left_in_its_journal(
    tmp_path: Path,
) -> None:
    """A card a service acknowledged but had not moved into the database (it stopped, or was
    killed) counts in the report: the report first loads journals no process holds."""
    from legspasm.audit.journal import default_directory, open_journal

    url = f"sqlite:///{tmp_path / 'left.sqlite3'}"
    store = AuditStore.open(url)
    journal = open_journal(store, interval_s=60)
    assert journal is not None
    cards = (card("AV-QUININE"),)
    journal.append(invocation(cards=cards))
    journal.close(drain=False)  # as if killed: the record stays in the journal only
    store.close()
    folder = default_directory(url)
    assert folder is not None
    assert any(folder.glob("audit-*.jsonl"))
    with AuditStore.open(url) as s:
        s.record_feedback([feedback(cards[0].uuid, "accepted")])
    result = CliRunner().invoke(app, ["feedback", "report", "--database-url", url, "-f", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["rule"], row["accepted"], row["cards_shown"]) == ("AV-QUININE", 1, 1)


def test_cli_feedback_report_default_url_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    _filled(url)
    monkeypatch.setenv("LEGSPASM_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["feedback", "report"])
    assert result.exit_code == 0, result.output
    assert "AV-QUININE" in result.stdout


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://u:secret@127.0.0.1:1/x", "sqlite:///{tmp}/missing.sqlite3"],
)
def test_cli_feedback_report_unusable_database_exits_2(tmp_path: Path, url: str) -> None:
    url = url.format(tmp=tmp_path)
    result = CliRunner().invoke(app, ["feedback", "report", "--database-url", url])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: audit database ")
    assert "secret" not in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "missing.sqlite3").exists()


def test_a_0001_database_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    """A store made before the web page (revision 0001) gains case_data and label; old rows
    read back with neither."""
    from alembic import command
    from alembic.config import Config

    from legspasm.audit.store import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(
                text(
                    "INSERT INTO invocations (id, received_at, service_id, hook, "
                    "knowledge_version, status_code, outcome, latency_ms) VALUES "
                    "('old', '2026-01-01 00:00:00', 's', 'patient-view', '0.1.0', 200, "
                    "'no-cards', 1.0)"
                )
            )
    finally:
        engine.dispose()
    with AuditStore.open(url) as store:
        old = store.invocation("old")
        assert old is not None
        assert (old.case, old.label) == (None, None)
        store.record_invocation(invocation("new", case={"id": "c"}, label="web form"))
        new = store.invocation("new")
        assert new is not None
        assert (new.case, new.label) == ({"id": "c"}, "web form")
        assert [i.id for i in store.recent(10, assessed=True)] == []
        store.record_invocation(invocation("assessed", as_of=date(2026, 11, 21)))
        assert [i.id for i in store.recent(10, assessed=True)] == ["assessed"]


def test_the_replay_guard_is_shared_durable_and_expires(db_url: str) -> None:
    """A token id claimed through one store is refused through another on the same database
    (a second worker, or the service after a restart) until the token expires."""
    now = 1_800_000_000.0
    with AuditStore.open(db_url) as first:
        assert first.claim_token("k1", now + 60, now) is True
        assert first.claim_token("k1", now + 60, now + 1) is False
    with AuditStore.open(db_url) as restarted:
        assert restarted.claim_token("k1", now + 60, now + 59) is False
        assert restarted.claim_token("k2", now + 60, now + 59) is True
        assert restarted.claim_token("k1", now + 120, now + 60) is True  # k1 expired at now+60
        assert restarted.claim_token("k3", now, now) is True  # already expired: not stored
        assert restarted.claim_token("k3", now + 10, now) is True
