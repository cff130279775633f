"""Repeat suppression's memory of the cards shown, made cheap: it is read on every
patient-view request.

In the database, ``rules_shown`` (:class:`~legspasm.audit.tables.RuleShownRow`) holds when a
card of each rule was last returned to a patient by a service; the store keeps it with every
invocation it records (:func:`latest_shown`, :func:`upsert_shown`, in the same transaction).
Reading it is a primary-key lookup of a few rows, where the join of invocations and cards grew
with every time the patient's chart was opened in the window (each open is an invocation).

:class:`ShownQuery` is that read, compiled once per database dialect into SQL text and its
parameter binding and run on a pooled DB-API connection: no ORM session, no statement
compilation or cache-key lookup per call.

:class:`RecentCards` is the other half: the cards this process's journal acknowledged, by
patient, so the read counts them before they reach the database.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Engine, Insert, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from .tables import Base, RuleShownRow

__all__ = ["RecentCards", "ShownQuery", "latest_shown", "upsert_shown"]

_SHOWN = Base.metadata.tables[RuleShownRow.__tablename__]


def latest_shown(invocations: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``rules_shown`` rows that invocations (the store's column values, their cards under
    ``"cards"``) make: per (patient, service, rule) of an answered one, its latest time. In key
    order, so that concurrent writers lock rows in the same order."""
    latest: dict[tuple[str, str, str], dt.datetime] = {}
    for inv in invocations:
        if inv["status_code"] != 200 or inv["patient_id"] is None:
            continue
        at: dt.datetime = inv["received_at"]
        for card in inv["cards"]:
            key = (inv["patient_id"], inv["service_id"], card["rule"])
            if key not in latest or latest[key] < at:
                latest[key] = at
    return [
        {"patient_id": p, "service_id": s, "rule": r, "last_shown_at": at}
        for (p, s, r), at in sorted(latest.items())
    ]


def upsert_shown(dialect: Dialect) -> Insert:
    """Insert a ``rules_shown`` row, or keep the later time of it and the row stored."""
    if dialect.name == "postgresql":
        pg = postgresql.insert(_SHOWN)
        later = func.greatest(_SHOWN.c.last_shown_at, pg.excluded.last_shown_at)
        return pg.on_conflict_do_update(
            index_elements=_SHOWN.primary_key.columns, set_={"last_shown_at": later}
        )
    lite = sqlite.insert(_SHOWN)
    # SQLite keeps these times as text in one fixed UTC format: the larger string is later
    later = func.max(_SHOWN.c.last_shown_at, lite.excluded.last_shown_at)
    return lite.on_conflict_do_update(
        index_elements=_SHOWN.primary_key.columns, set_={"last_shown_at": later}
    )


class _Compiled:
    """One statement as the driver takes it: SQL text, and how to turn named values into its
    parameters (bind processors applied, positional or named as the driver wants)."""

    def __init__(self, dialect: Dialect, with_service: bool) -> None:
        query = select(RuleShownRow.rule).where(
            RuleShownRow.patient_id == bindparam("patient_id"),
            RuleShownRow.last_shown_at >= bindparam("since"),
        )
        if with_service:
            query = query.where(RuleShownRow.service_id == bindparam("service_id"))
        compiled = query.compile(dialect=dialect)
        self.sql = str(compiled)
        self._defaults = dict(compiled.params)  # any literal, as a parameter
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._processors[name] = processor
        self._order: Sequence[str] | None = (
            list(compiled.positiontup or ()) if compiled.positional else None
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        given = {**self._defaults, **values}
        for name, processor in self._processors.items():
            given[name] = processor(given[name])
        if self._order is None:
            return given
        return tuple(given[name] for name in self._order)


class ShownQuery:
    """The rules of cards returned to a patient since a time, read from ``engine``'s database.

    ``run`` raises the driver's own errors, or SQLAlchemy's for a failed connection: ``errors``
    (the store turns them into a StoreError naming the database)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._any_service = _Compiled(engine.dialect, with_service=False)
        self._one_service = _Compiled(engine.dialect, with_service=True)
        self.errors: tuple[type[Exception], ...] = (
            SQLAlchemyError,
            engine.dialect.loaded_dbapi.Error,
        )

    def run(self, patient_id: str, since: dt.datetime, service_id: str | None) -> set[str]:
        """``since`` in UTC. On a pooled connection, returned to the pool (rolled back)."""
        values: dict[str, Any] = {"patient_id": patient_id, "since": since}
        statement = self._any_service
        if service_id is not None:
            values["service_id"] = service_id
            statement = self._one_service
        params = statement.parameters(values)
        conn = self._engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(statement.sql, params)
                return {row[0] for row in cursor.fetchall()}
            finally:
                cursor.close()
        finally:
            conn.close()


_Entry = tuple[str, dt.datetime, frozenset[str]]  # service, when (aware), rules


class RecentCards:
    """The rules of the last ``limit`` records with cards, by patient (thread-safe): what a
    journal acknowledged, drained or not. Looking up one patient costs that patient's entries
    only, however many records are held."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._order: collections.deque[str] = collections.deque()  # patient of each entry
        self._by_patient: dict[str, collections.deque[_Entry]] = {}

    def __len__(self) -> int:
        return len(self._order)

    def add(
        self, patient_id: str, service_id: str, when: dt.datetime, rules: frozenset[str]
    ) -> None:
        with self._lock:
            self._by_patient.setdefault(patient_id, collections.deque()).append(
                (service_id, when, rules)
            )
            self._order.append(patient_id)
            if len(self._order) > self._limit:  # the oldest entry is its patient's oldest
                oldest = self._order.popleft()
                entries = self._by_patient[oldest]
                entries.popleft()
                if not entries:
                    del self._by_patient[oldest]

    def rules(self, patient_id: str, since: dt.datetime, service_id: str | None) -> set[str]:
        with self._lock:
            entries = list(self._by_patient.get(patient_id, ()))
        return {
            rule
            for sid, at, rules in entries
            if at >= since and (service_id is None or sid == service_id)
            for rule in rules
        }
