"""The audit store: every CDS Hooks invocation, the cards it returned, and card feedback.

SQLite by default (WAL, ``synchronous=NORMAL``, a busy timeout, foreign keys on), PostgreSQL
by URL. Every call takes its own connection from the pool and commits before it returns, so the
store is safe to share between threads and a killed process loses nothing it acknowledged.
``AuditStore.open`` migrates the schema to the newest Alembic revision first. Every database
failure is a :class:`~legspasm.errors.StoreError` naming the database with its password masked.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, delete, event, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.pool import StaticPool

from ..errors import StoreError
from .records import CardRecord, FeedbackRecord, Invocation, Refusals, RuleRate
from .report import compute_report
from .shown import ShownQuery, latest_shown, upsert_shown
from .tables import Base, CardRow, FeedbackRow, InvocationRow, RefusalRow, SeenTokenRow

__all__ = ["AuditStore", "RawJSON"]

_INVOCATIONS = Base.metadata.tables[InvocationRow.__tablename__]
_CARDS = Base.metadata.tables[CardRow.__tablename__]

_T = TypeVar("_T")

MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 5000
_PG_MIGRATION_LOCK = 7_404_113_001  # pg_advisory_xact_lock key: one migrating process at a time
_WRITE = "legspasm_write"  # execution option: SQLite writes start with BEGIN IMMEDIATE


# Per database (masked URL): what to call before reading it (the journals writing to it).
_BARRIERS: dict[str, list[Callable[[], object]]] = {}
_BARRIERS_LOCK = threading.Lock()
# Per database: the rules of cards a journal has acknowledged but maybe not yet moved in
# (patient, since, service) -> rules, so repeat suppression sees them without a database write.
PendingRules = Callable[[str, datetime, "str | None"], set[str]]
_PENDING: dict[str, list[PendingRules]] = {}


class RawJSON(str):
    """JSON text already serialised (e.g. read from the audit journal): a JSON column stores
    it as it is, instead of parsing and serialising it again."""

    __slots__ = ()


def _dumps(value: Any) -> str:
    return value if isinstance(value, RawJSON) else json.dumps(value)


def _mask(url: str) -> str:
    """The URL with any password replaced by ``***``, also when it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:
        raise StoreError(f"audit database {_mask(url)}: not a database URL") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise StoreError(
        f"audit database {_mask(url)}: unsupported database {backend!r} "
        "(use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB)"
    )


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
        return create_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args=connect_args,
            json_serializer=_dumps,
        )
    if _sqlite_in_memory(url):  # one shared connection (the store serialises its use)
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            hide_parameters=True,
            json_serializer=_dumps,
        )
    else:
        engine = create_engine(url, hide_parameters=True, json_serializer=_dumps)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's BEGIN (below) drive transactions, not the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front, so they wait (busy_timeout) for each other
        # instead of failing when a read-then-write transaction meets a concurrent commit.
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _reason(exc: BaseException) -> str:
    """A one-line cause: the driver's message, never the SQL statement or its parameters."""
    cause: BaseException = exc
    if isinstance(exc, DBAPIError | StatementError) and exc.orig is not None:
        cause = exc.orig
    lines = str(cause).strip().splitlines()
    text = lines[0].strip() if lines else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _transient(exc: BaseException) -> bool:
    """A failure a concurrent migration of the same database can cause: worth a retry."""
    if isinstance(exc, IntegrityError):
        return True
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(s in text for s in ("locked", "busy", "already exists", "duplicate"))


def _to_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(f"{what} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def _from_db(value: datetime) -> datetime:
    """SQLite hands back the stored UTC time without a zone; PostgreSQL in the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _invocation_values(inv: Invocation) -> dict[str, Any]:
    """The columns of one invocation row (and its cards under ``"cards"``) for a bulk insert."""
    return {
        "id": inv.id,
        "received_at": _to_utc(inv.received_at, f"invocation {inv.id}: received_at"),
        "service_id": inv.service_id,
        "hook": inv.hook,
        "hook_instance": inv.hook_instance,
        "knowledge_version": inv.knowledge_version,
        "patient_id": inv.patient_id,
        "user_id": inv.user_id,
        "fhir_server": inv.fhir_server,
        "status_code": inv.status_code,
        "outcome": inv.outcome,
        "latency_ms": inv.latency_ms,
        "assessment": inv.assessment,
        "as_of": inv.as_of,
        "error": inv.error,
        "case_data": inv.case,
        "label": inv.label,
        "cards": [
            {
                "invocation_id": inv.id,
                "position": i,
                "uuid": c.uuid,
                "rule": c.rule,
                "indicator": c.indicator,
                "summary": c.summary,
            }
            for i, c in enumerate(inv.cards)
        ],
    }


def _without_cards(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "cards"}


def _invocation(row: InvocationRow) -> Invocation:
    return Invocation(
        id=row.id,
        received_at=_from_db(row.received_at),
        service_id=row.service_id,
        hook=row.hook,
        hook_instance=row.hook_instance,
        knowledge_version=row.knowledge_version,
        patient_id=row.patient_id,
        user_id=row.user_id,
        fhir_server=row.fhir_server,
        status_code=row.status_code,
        outcome=row.outcome,
        latency_ms=row.latency_ms,
        cards=tuple(
            CardRecord(uuid=c.uuid, rule=c.rule, indicator=c.indicator, summary=c.summary)
            for c in row.cards
        ),
        assessment=row.assessment,
        as_of=row.as_of,
        error=row.error,
        case=row.case_data,
        label=row.label,
    )


def _feedback_row(item: FeedbackRecord) -> FeedbackRow:
    what = f"feedback on card {item.card_uuid}"
    return FeedbackRow(
        service_id=item.service_id,
        card_uuid=item.card_uuid,
        outcome=item.outcome,
        received_at=_to_utc(item.received_at, f"{what}: received_at"),
        accepted_suggestions=list(item.accepted_suggestions),
        override_system=item.override_system,
        override_code=item.override_code,
        override_display=item.override_display,
        user_comment=item.user_comment,
        outcome_timestamp=(
            None
            if item.outcome_timestamp is None
            else _to_utc(item.outcome_timestamp, f"{what}: outcome_timestamp")
        ),
    )


class AuditStore:
    """Invocations, cards and feedback in SQLite or PostgreSQL. Open with :meth:`open`."""

    def __init__(self, engine: Engine, masked_url: str, password: str | None) -> None:
        self._engine = engine
        self._url = masked_url
        self._password = password
        self._readers = sessionmaker(engine, expire_on_commit=False)
        self._writers = sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        self._shown = ShownQuery(engine)
        self._upsert_shown = upsert_shown(engine.dialect)
        shared = engine.dialect.name == "sqlite" and isinstance(engine.pool, StaticPool)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if shared else contextlib.nullcontext()
        )

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> AuditStore:
        """Connect and migrate the schema to the newest revision (idempotent).

        A relative SQLite path is relative to the working directory; its folder is created
        unless ``create`` is false, in which case a missing SQLite file is an error.
        """
        parsed = _parse(url)
        masked = parsed.render_as_string(hide_password=True)
        password = None if parsed.password is None else str(parsed.password)
        if parsed.get_backend_name() == "sqlite" and not _sqlite_in_memory(parsed):
            path = Path(str(parsed.database))
            if not str(parsed.database).startswith("file:"):
                if not create and not path.exists():
                    raise StoreError(f"audit database {masked}: no such file {path}")
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"audit database {masked}: cannot create {path.parent}: {exc.strerror}"
                    ) from None
        try:
            engine = _engine(parsed)
        except (SQLAlchemyError, ImportError) as exc:  # ImportError: a driver not installed
            raise StoreError(f"audit database {masked}: {_reason(exc)}") from None
        store = cls(engine, masked, password)
        try:
            store._migrate()
        except BaseException:
            engine.dispose()
            raise
        return store

    @staticmethod
    def in_memory(url: str) -> bool:
        """Whether ``url`` names an in-memory SQLite database (one process's own)."""
        parsed = _parse(url)
        return parsed.get_backend_name() == "sqlite" and _sqlite_in_memory(parsed)

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self._url

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditStore({self._url!r})"

    # -- writes ---------------------------------------------------------------------------

    def record_invocation(self, inv: Invocation) -> None:
        """Store one invocation and its cards in one transaction, committed on return (an id
        stored already is a StoreError)."""
        values = self._checked(lambda: _invocation_values(inv))
        with self._connection(f"recording invocation {inv.id}", write=True) as conn:
            self._insert(conn, [values])

    def record_invocations(self, invs: Sequence[Invocation]) -> int:
        """Store a batch of invocations and their cards in one transaction, skipping any whose
        id is stored already (so a journal replayed after a crash never duplicates a row).
        Returns how many were new."""
        rows = self._checked(lambda: {inv.id: _invocation_values(inv) for inv in invs})
        if not rows:
            return 0
        # SQLAlchemy Core on one connection (the journal's drain calls this for every batch):
        # no ORM unit of work, the rows inserted with one executemany per table.
        with self._connection(f"recording {len(rows)} invocations", write=True) as conn:
            have = set(conn.scalars(select(_INVOCATIONS.c.id).where(_INVOCATIONS.c.id.in_(rows))))
            new = [values for key, values in rows.items() if key not in have]
            if new:
                self._insert(conn, new)
        return len(new)

    def _insert(self, conn: Connection, invocations: list[dict[str, Any]]) -> None:
        """Invocations (:func:`_invocation_values`), their cards, and what they add to
        ``rules_shown``, in ``conn``'s transaction."""
        shown = latest_shown(invocations)
        cards = [card for values in invocations for card in values["cards"]]
        conn.execute(insert(_INVOCATIONS), [_without_cards(v) for v in invocations])
        if cards:
            conn.execute(insert(_CARDS), cards)
        if shown:
            conn.execute(self._upsert_shown, shown)

    def add_read_barrier(self, before_read: Callable[[], object]) -> None:
        """Call ``before_read`` (a journal's flush) before every read of this database by any
        store in this process, so a reader sees every record the process acknowledged."""
        with _BARRIERS_LOCK:
            _BARRIERS.setdefault(self._url, []).append(before_read)

    def add_pending_rules(self, pending: PendingRules) -> None:
        """Also count ``pending`` (a journal's acknowledged cards) in :meth:`rules_shown`."""
        with _BARRIERS_LOCK:
            _PENDING.setdefault(self._url, []).append(pending)

    def remove_pending_rules(self, pending: PendingRules) -> None:
        with _BARRIERS_LOCK, contextlib.suppress(ValueError):
            _PENDING.get(self._url, []).remove(pending)

    def remove_read_barrier(self, before_read: Callable[[], object]) -> None:
        with _BARRIERS_LOCK, contextlib.suppress(ValueError):
            _BARRIERS.get(self._url, []).remove(before_read)

    def record_feedback(self, items: Sequence[FeedbackRecord]) -> None:
        """Store a batch of feedback in one transaction, committed on return."""
        rows = self._checked(lambda: [_feedback_row(item) for item in items])
        if not rows:
            return
        with self._session("recording feedback", write=True) as session:
            session.add_all(rows)

    def claim_token(self, key: str, expires_at: float, now: float) -> bool:
        """The JWT replay guard: True the first time ``key`` is claimed while its token is
        valid (it is then remembered until ``expires_at``, epoch seconds), False while an
        unexpired claim exists. Shared by every worker on the database and kept across
        restarts; expired claims are removed as new ones arrive."""
        if expires_at <= now:
            return True
        until = datetime.fromtimestamp(expires_at, UTC)
        cut = datetime.fromtimestamp(now, UTC)
        try:
            with self._session("recording a token id", write=True) as session:
                session.execute(delete(SeenTokenRow).where(SeenTokenRow.expires_at <= cut))
                session.add(SeenTokenRow(key=key, expires_at=until))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def record_refusals(self, counts: Sequence[Refusals]) -> None:
        """Store counts of refused requests (one row per service and outcome per window)."""
        rows = [
            RefusalRow(
                service_id=c.service_id,
                outcome=c.outcome,
                count=c.count,
                first_at=c.first_at,
                last_at=c.last_at,
            )
            for c in counts
            if c.count
        ]
        if rows:
            with self._session("recording refused requests", write=True) as session:
                session.add_all(rows)

    def refusals(self) -> dict[tuple[str, str], int]:
        """Refused requests counted so far, per (service, outcome)."""
        self._sync()
        with self._session("reading refused requests") as session:
            got = session.execute(
                select(RefusalRow.service_id, RefusalRow.outcome, func.sum(RefusalRow.count))
                .group_by(RefusalRow.service_id, RefusalRow.outcome)
                .order_by(RefusalRow.service_id, RefusalRow.outcome)
            ).all()
        return {(sid, outcome): int(n) for sid, outcome, n in got}

    # -- reads ----------------------------------------------------------------------------

    def invocation(self, invocation_id: str) -> Invocation | None:
        """One invocation by id, with its cards in the order they were returned."""
        self._sync()
        with self._session(f"reading invocation {invocation_id}") as session:
            row = session.get(
                InvocationRow, invocation_id, options=[selectinload(InvocationRow.cards)]
            )
            return None if row is None else _invocation(row)

    def recent(
        self, limit: int = 50, patient_id: str | None = None, *, assessed: bool = False
    ) -> list[Invocation]:
        """The newest invocations first (of one patient when ``patient_id`` is given; only
        those that hold an assessment when ``assessed``)."""
        if limit <= 0:
            return []
        self._sync()
        query = (
            select(InvocationRow)
            .options(selectinload(InvocationRow.cards))
            .order_by(InvocationRow.received_at.desc(), InvocationRow.id.desc())
            .limit(limit)
        )
        if patient_id is not None:
            query = query.where(InvocationRow.patient_id == patient_id)
        if assessed:
            query = query.where(InvocationRow.status_code == 200, InvocationRow.as_of.is_not(None))
        with self._session("reading recent invocations") as session:
            return [_invocation(row) for row in session.scalars(query)]

    def rules_shown(
        self, patient_id: str, since: datetime, service_id: str | None = None
    ) -> set[str]:
        """The rules whose cards were returned to ``patient_id`` (answered invocations, of one
        service when given) at or after ``since``: the repeat-suppression query. On the
        request path it does not drain the journal: the cards a journal of this process has
        acknowledged but not yet moved in are counted from memory. It runs on every
        patient-view: a primary-key lookup in ``rules_shown``, which every invocation recorded
        keeps current, compiled once and run on a pooled connection (``audit.shown``)."""
        cut = _to_utc(since, "since")
        with _BARRIERS_LOCK:
            pending = list(_PENDING.get(self._url, ()))
        # what the journals hold first: a record moved in meanwhile is then in the database
        extra = {r for p in pending for r in p(patient_id, cut, service_id)}
        try:
            with self._lock:
                found = self._shown.run(patient_id, cut, service_id)
        except self._shown.errors as exc:
            action = f"reading the cards shown to patient {patient_id}"
            raise StoreError(self._message(action, exc)) from exc
        return found | extra

    def count_invocations(self) -> int:
        self._sync()
        with self._session("counting invocations") as session:
            return session.scalar(select(func.count()).select_from(InvocationRow)) or 0

    def count_feedback(self) -> int:
        self._sync()
        with self._session("counting feedback") as session:
            return session.scalar(select(func.count()).select_from(FeedbackRow)) or 0

    def feedback_report(self, service_id: str | None = None) -> list[RuleRate]:
        """Acceptance and override rates per rule (of one service when given), by rule."""
        self._sync()
        with self._session("computing the feedback report") as session:
            return compute_report(session, service_id)

    # -- internals ------------------------------------------------------------------------

    def _sync(self) -> None:
        with _BARRIERS_LOCK:
            barriers = list(_BARRIERS.get(self._url, ()))
        for before_read in barriers:
            before_read()

    def _message(self, action: str, exc: BaseException) -> str:
        reason = _reason(exc)
        if self._password:  # drivers do not echo it; make sure
            reason = reason.replace(self._password, "***")
        return f"audit database {self._url}: {action} failed: {reason}"

    def _checked(self, build: Callable[[], _T]) -> _T:
        try:
            return build()
        except StoreError as exc:
            raise StoreError(f"audit database {self._url}: {exc.message}") from None

    @contextlib.contextmanager
    def _session(self, action: str, *, write: bool = False) -> Iterator[Session]:
        maker = self._writers if write else self._readers
        with self._errors(action, write=write), self._lock, maker.begin() as session:
            yield session

    @contextlib.contextmanager
    def _connection(self, action: str, *, write: bool = False) -> Iterator[Connection]:
        """A Core connection in a transaction committed on leaving (as :meth:`_session`)."""
        engine = self._engine.execution_options(**{_WRITE: True}) if write else self._engine
        with self._errors(action, write=write), self._lock, engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _errors(self, action: str, *, write: bool) -> Iterator[None]:
        """Database errors as StoreError naming ``action`` (the URL's password masked)."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(self._message(action, exc)) from exc
        except (TypeError, ValueError) as exc:
            if not write:
                raise
            # a value the driver cannot encode (psycopg raises these unwrapped), e.g. a date
            # in the assessment: pass model_dump(mode="json")
            raise StoreError(self._message(action, exc)) from exc

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        attempts = 6
        for attempt in range(attempts):
            try:
                with self._lock, self._engine.execution_options(**{_WRITE: True}).begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                return
            except (OperationalError, IntegrityError) as exc:
                if attempt == attempts - 1 or not _transient(exc):
                    raise StoreError(self._message("opening (connect and migrate)", exc)) from exc
                time.sleep(0.05 * (attempt + 1))
            except (SQLAlchemyError, CommandError) as exc:
                raise StoreError(self._message("opening (connect and migrate)", exc)) from exc
