"""When each rule's card was last shown to a patient by a service: the repeat-suppression read
becomes a primary-key lookup, however many times the patient's chart was opened. Filled from
the invocations and cards already stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rules_shown",
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("service_id", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("last_shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("patient_id", "service_id", "rule", name=op.f("pk_rules_shown")),
    )
    op.execute(
        "INSERT INTO rules_shown (patient_id, service_id, rule, last_shown_at) "
        "SELECT i.patient_id, i.service_id, c.rule, MAX(i.received_at) "
        "FROM invocations i JOIN cards c ON c.invocation_id = i.id "
        "WHERE i.status_code = 200 AND i.patient_id IS NOT NULL "
        "GROUP BY i.patient_id, i.service_id, c.rule"
    )


def downgrade() -> None:
    op.drop_table("rules_shown")
