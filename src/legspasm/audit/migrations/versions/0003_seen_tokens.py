"""Token ids seen while their tokens are valid: the JWT replay guard, shared by every worker
and kept across restarts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_tokens",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_seen_tokens")),
    )
    op.create_index(op.f("ix_seen_tokens_expires_at"), "seen_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_seen_tokens_expires_at"), table_name="seen_tokens")
    op.drop_table("seen_tokens")
