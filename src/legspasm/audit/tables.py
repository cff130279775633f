"""The audit store's schema: typed SQLAlchemy 2 ORM tables.

The Alembic migrations in ``migrations/versions`` create exactly this schema (a test compares
them). Times are ``DateTime(timezone=True)``: ``timestamptz`` on PostgreSQL; SQLite keeps no
zone, so the store writes UTC and reads it back as UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

__all__ = [
    "Base",
    "CardRow",
    "FeedbackRow",
    "InvocationRow",
    "RefusalRow",
    "RuleShownRow",
    "SeenTokenRow",
    "json_type",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def json_type() -> TypeEngine[Any]:
    """JSON everywhere, JSONB on PostgreSQL."""
    return JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InvocationRow(Base):
    __tablename__ = "invocations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    service_id: Mapped[str] = mapped_column(String(200))
    hook: Mapped[str] = mapped_column(String(100))
    hook_instance: Mapped[str | None] = mapped_column(String(200))
    knowledge_version: Mapped[str] = mapped_column(String(100))
    patient_id: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(200))
    fhir_server: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(40))
    latency_ms: Mapped[float] = mapped_column(Float)
    assessment: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    as_of: Mapped[date | None] = mapped_column(Date)
    error: Mapped[str | None] = mapped_column(Text)
    # The Case the assessment was made from (JSON), so the web page can re-assess it with
    # answers added; and what it was an assessment of (e.g. "upload: bundle.json").
    case_data: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    label: Mapped[str | None] = mapped_column(String(200))

    cards: Mapped[list[CardRow]] = relationship(
        back_populates="invocation", order_by="CardRow.position", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_invocations_patient_received", "patient_id", "received_at"),)


class CardRow(Base):
    __tablename__ = "cards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    invocation_id: Mapped[str] = mapped_column(
        ForeignKey("invocations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)  # order of the card in the response
    uuid: Mapped[str] = mapped_column(String(100), index=True)
    rule: Mapped[str] = mapped_column(String(100), index=True)
    indicator: Mapped[str] = mapped_column(String(20))
    summary: Mapped[str] = mapped_column(Text)

    invocation: Mapped[InvocationRow] = relationship(back_populates="cards")


class RuleShownRow(Base):
    """When a card of each rule was last returned to a patient by a service (answered
    invocations only): what repeat suppression reads, one row per (patient, service, rule)
    however often the chart is opened. The store keeps it with every invocation it records,
    in the same transaction; it holds nothing the invocations and cards do not."""

    __tablename__ = "rules_shown"

    patient_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rule: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_shown_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(200), index=True)
    card_uuid: Mapped[str] = mapped_column(String(100), index=True)
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_suggestions: Mapped[list[str]] = mapped_column(json_type())
    override_system: Mapped[str | None] = mapped_column(Text)
    override_code: Mapped[str | None] = mapped_column(String(200))
    override_display: Mapped[str | None] = mapped_column(Text)
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SeenTokenRow(Base):
    """A JWT seen while it is valid (issuer and jti, hashed), so it cannot be replayed: shared
    by every worker and kept across restarts."""

    __tablename__ = "seen_tokens"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RefusalRow(Base):
    """Refused unauthenticated requests, counted per service over a window of time rather than
    stored one row each (so a flood of bad tokens cannot fill the audit store)."""

    __tablename__ = "refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
