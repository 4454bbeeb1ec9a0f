"""Event notifications the producer could not use, kept for inspection instead of retried.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copy of the type at this revision: migrations never import the live tables.
EPOCH_MS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rejected_events",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("received_at", EPOCH_MS, nullable=False),
    )
    op.create_index("idx_rejected_received", "rejected_events", ["received_at"])


def downgrade() -> None:
    op.drop_table("rejected_events")
